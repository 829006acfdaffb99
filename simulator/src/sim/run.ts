/**
 * Runs one scenario on the path the product ships:
 *
 *   simulated instrument --pty pair (socat)--> `stele gateway run` (its config file, drivers, serial transport)
 *   --MQTT (aedes, here)--> `stele ingest run --embedded-chain` (store, batches, receipts, anchors on anvil)
 *
 * The timeline's episodes change what the instruments send; its faults break the path (broker outage, power cuts of
 * a gateway or of ingest and its chain, a value altered in an outbox, a forged confirmation). At the end the
 * assertions count independently of the components under test: every frame is counted at the instrument (its
 * SHA-256, when it was sent) and looked up at ingest's API (`GET /frames/<sha256>`); each gateway's window is
 * exported from ingest and verified with the verifier's code against a trust policy the simulation signs as the
 * authority (as the demo does).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Level } from 'level';
import mqtt from 'mqtt';
import {
  completePolicyDraft,
  decodeCbor,
  decodeReading,
  draftTrustPolicy,
  encodeCbor,
  encodeReading,
  loadTrustPolicy,
  parseBundle,
  readAnchor,
  sha256,
  signConfirmation,
  signTrustPolicy,
  toHex,
  verifyBundle,
  type Reading,
  type Verdict,
} from '@stele/core';
import { loadOrCreateSoftwareSigner, loadSoftwareSigner, makeEnrolmentRecord } from '@stele/device';
import { SerialTransport } from '@stele/hardware';
import { freePort } from '@stele/testkit';
import { CemsSimulator } from '../instruments/cems.ts';
import { ModbusThSlave } from '../instruments/modbus-th.ts';
import { PtyPair, socatAvailable } from '../pty.ts';
import { SimError } from './errors.ts';
import { SimClock, SmallDisk, StatementTap, TcpProxy, deleteOutboxEntry, smallDiskSkipReason, statementSignature, swapKey } from './faults.ts';
import { SimBroker, findRepoRoot, runStele, spawnStele, trackHelper, type Child } from './processes.ts';
import type { AssertionName, GatewaySpec, InstrumentSpec, Scenario, StepSpec } from './scenario.ts';

export interface SimIo {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
}

export interface RunOptions {
  scenario: Scenario;
  /** Overrides the scenario's `seconds`. */
  seconds?: number;
  /** Overrides the scenario's `seed`. */
  seed?: number;
  /** Keep everything here (keys, outboxes, ingest store, chain); default a temp folder removed at the end. */
  out?: string;
  io: SimIo;
}

export interface AssertionResult {
  name: AssertionName;
  ok: boolean;
  detail: string;
  /** Could not be checked on this machine (the reason); counted as holding, printed SKIP. */
  skipped?: string;
}

export interface SimReport {
  scenario: string;
  seconds: number;
  seed: number;
  frames: { sent: number; whileDown: number };
  steps: { at: number; what: string; note: string }[];
  assertions: AssertionResult[];
  ok: boolean;
}

/** One frame as the instrument put it on the line. */
interface SentFrame {
  gateway: string;
  instrument: string;
  digest: string;
  atMs: number;
  /** The values it carried that the episodes' assertions look for. */
  values?: Record<string, string>;
}

interface Window {
  from: number;
  to: number;
}

interface GatewayRun {
  spec: GatewaySpec;
  config: string;
  dataDir: string;
  opsPort: number;
  child: Child | undefined;
  /** When the gateway could not hear its instruments (down, starting, refused), for the frame count. */
  down: Window[];
  pairs: PtyPair[];
  instruments: InstrumentRun[];
  /** Faults that need the gateway set up for them (faults.ts). */
  proxy?: TcpProxy;
  clock?: SimClock;
  latencyFile?: string;
  disk?: SmallDisk;
  /** Why disk-full cannot run here (not root, mount refused). */
  diskSkip?: string | undefined;
  tap?: StatementTap;
  keyFile?: string;
  /** Extra environment of `stele gateway run` (the sim's clock and signer hooks). */
  env?: Record<string, string>;
  /** Its key was swapped: ingest never acknowledges it again (no drain). */
  keySwapped?: boolean;
}

/** What the faults of faults.ts injected, for their assertions. */
interface FaultRecords {
  partitions: { gateway: string; mode: 'drop' | 'stall'; forMs: number; reset: number; ackedBefore: number; ackedDuring: number; headDuring: number }[];
  clocks: { gateway: string; kind: 'clock-jump' | 'boot-1970'; byMs: number; fromWallMs: number; toWallMs: number; jumpsSeen?: number }[];
  slow: { gateway: string; latencyMs: number; headBefore: number; headAfter: number }[];
  duplicates: { gateway: string; republished: number; duplicatesBefore: number; duplicatesAfter?: number }[];
  deletes: { gateway: string; seq: number; acked: number; head: number; refusal?: string; ingestHead?: number | undefined; forks?: number }[];
  replays: { gateway: string; duplicatesBefore: number; duplicatesAfter: number; headBefore: number | undefined; headAfter: number | undefined; forks?: number }[];
  swaps: { gateway: string; newKid: string; gatewayHeadAtSwap: number; rejectedBefore: number; rejectedAfter?: number; ingestHeadEnd?: number | undefined }[];
  disks: { gateway: string; skipped?: string; sawStop: boolean; sawUnhealthy: boolean; refused: number; headAtFill: number; ackedEnd?: number | undefined; headEnd?: number | undefined; ingestHeadEnd?: number | undefined }[];
}

interface InstrumentRun {
  spec: InstrumentSpec;
  transport: SerialTransport;
  cems?: CemsSimulator;
  slave?: ModbusThSlave;
  stop(): void;
}

interface TamperRecord {
  gateway: string;
  seq: number;
  frame: string;
  from: string;
  to: string;
  refusal?: string;
  ingestHead?: number | undefined;
}

interface ForgeryRecord {
  gateway: string;
  ackedBefore: number;
  ackedAfter: number;
  ignoredBefore: number;
  ignoredAfter: number;
  ingestHeadAfter: number | undefined;
  ackedAtEnd?: number | undefined;
  headAtEnd?: number | undefined;
}

interface EpisodeRecord {
  step: StepSpec;
  /** The values sent during the episode that the evidence must hold. */
  sent: string[];
}

/** Frames sent this close to a power cut may be lost with the process that was reading them. */
const CUT_GRACE_MS = 1500;

export async function runScenario(o: RunOptions): Promise<SimReport> {
  const s = o.scenario;
  const seconds = o.seconds ?? s.seconds;
  const seed = o.seed ?? s.seed;
  const say = (line: string) => void o.io.stdout.write(`${line}\n`);
  if (!socatAvailable()) throw new SimError('SIM_START_FAILED', 'socat is not installed: the simulated instruments reach the gateway over pseudo-terminal pairs (Debian: apt-get install socat)');
  const root = findRepoRoot();
  const work = o.out ?? (await mkdtemp(join(tmpdir(), 'stele-sim-')));
  await mkdir(work, { recursive: true });
  const cleanups: (() => Promise<unknown>)[] = [];
  const started = Date.now();
  const t = () => Date.now() - started;
  const steps: SimReport['steps'] = [];
  const note = (what: string, text: string) => {
    steps.push({ at: t(), what, note: text });
    say(`  ${(t() / 1000).toFixed(1).padStart(6)} s  ${what}: ${text}`);
  };
  try {
    say(`scenario ${s.name}: ${s.description.replace(/\s+/g, ' ').trim()}`);
    say(`work dir ${work}`);

    // 1. The broker, in this process: an outage closes it and reopens it on the same port.
    const broker = await SimBroker.start(await freePort());
    cleanups.push(() => broker.close());

    // 2. Ingest as its operator runs it: init makes the key, run starts the service and its embedded chain.
    const ingestDir = join(work, 'ingest');
    const init = await runStele(root, ['ingest', 'init', '--data', ingestDir]);
    if (init.code !== 0) throw new SimError('SIM_START_FAILED', `stele ingest init exited ${init.code}: ${init.stderr}`);
    const ingestKey = /public key (\S+)/.exec(init.stdout)?.[1];
    if (ingestKey === undefined) throw new SimError('SIM_START_FAILED', `stele ingest init printed no public key: ${init.stdout}`);
    const chainPort = await freePort(); // fixed across restarts: the anchors name this RPC URL
    const apiPort = await freePort();
    const api = `http://127.0.0.1:${apiPort}`;
    let anvilPid: number | undefined;
    const ingestArgs = ['ingest', 'run', '--mqtt', broker.url, '--data', ingestDir, '--embedded-chain', '--chain-port', String(chainPort), '--batch-ms', String(s.batchMs), '--health-port', String(apiPort), '--log-level', 'info'];
    const startIngest = async (): Promise<Child> => {
      anvilPid = undefined;
      const child = spawnStele(root, ingestArgs, {
        onLine: (l) => {
          if (l.includes('"embedded chain up"')) anvilPid = (JSON.parse(l) as { anvilPid?: number }).anvilPid;
        },
      });
      const until = Date.now() + 90_000;
      while (!(await fetch(`${api}/health`).then((r) => r.ok, () => false))) {
        if (child.proc.exitCode !== null) throw new SimError('SIM_START_FAILED', `stele ingest run exited ${child.proc.exitCode}: ${child.errTail.join(' | ')}`);
        if (Date.now() > until) throw new SimError('SIM_START_FAILED', 'stele ingest run did not answer /health within 90 s');
        await sleep(100);
      }
      return child;
    };
    let ingest = await startIngest();
    cleanups.push(() => ingest.stop());
    const adminToken = (await readFile(join(ingestDir, 'admin-token'), 'utf8')).trim();
    const admin = { authorization: `Bearer ${adminToken}` };
    note('ingest', `stele ingest run on ${api}, embedded chain on 127.0.0.1:${chainPort}, batches every ${s.batchMs} ms`);

    // 3. Gateways: a software key each (flagged as such in its enrolment), enrolled through ingest's admin API;
    // a config file as an installer writes it; the instruments on pty pairs; `stele gateway run`.
    const gateways = new Map<string, GatewayRun>();
    const frames: SentFrame[] = [];
    const faultsOf = (id: string) => new Set(s.timeline.filter((x) => x.gateway === id && x.fault !== undefined).map((x) => x.fault!));
    /** Sets a gateway up for the faults its steps inject: a proxy to the broker, the clock and signer hooks, a small disk. */
    const setUpFaults = async (g: GatewayRun, dir: string): Promise<{ diskCheckEvery?: string; clockCheckEvery?: string }> => {
      const f = faultsOf(g.spec.id);
      const extra: { diskCheckEvery?: string; clockCheckEvery?: string } = {};
      if (f.has('network-partition')) {
        g.proxy = new TcpProxy(await freePort(), { host: '127.0.0.1', port: broker.port });
        await g.proxy.start();
        const proxy = g.proxy;
        cleanups.push(() => proxy.close());
      }
      if (f.has('clock-jump') || f.has('boot-1970')) {
        g.clock = new SimClock(dir);
        await g.clock.init();
        g.env = { ...g.env, ...g.clock.env() };
        extra.clockCheckEvery = '1s';
      }
      if (f.has('slow-signer')) {
        g.latencyFile = join(dir, 'sign-latency-ms');
        await writeFile(g.latencyFile, '0\n');
        g.env = { ...g.env, STELE_SIM_SIGN_LATENCY_FILE: g.latencyFile };
      }
      if (f.has('disk-full')) {
        g.diskSkip = smallDiskSkipReason();
        if (g.diskSkip === undefined) {
          const disk = new SmallDisk(join(dir, 'data'), 48 * 1024 * 1024);
          try {
            await disk.mount();
            g.disk = disk;
            cleanups.push(() => disk.unmount());
            extra.diskCheckEvery = '500ms';
          } catch (e) {
            g.diskSkip = `cannot mount a small tmpfs for the outbox here (${(e as Error).message})`;
          }
        }
      }
      if (f.has('duplicate-delivery') || f.has('statement-replay')) {
        g.tap = await StatementTap.start(broker.url, g.spec.id);
        const tap = g.tap;
        cleanups.push(() => tap.close());
      }
      return extra;
    };
    let insIndex = 0;
    for (const spec of s.gateways) {
      const dir = join(work, spec.id);
      await mkdir(dir, { recursive: true });
      const keyFile = join(dir, 'gateway.pem');
      const signer = await loadOrCreateSoftwareSigner(keyFile);
      const enrol = await fetch(`${api}/enrol`, { method: 'POST', headers: { 'content-type': 'application/json', ...admin }, body: JSON.stringify(makeEnrolmentRecord(signer, spec.id, `stele sim ${s.name}`)) });
      if (enrol.status !== 200) throw new SimError('SIM_START_FAILED', `enrolment of ${spec.id} refused: ${enrol.status} ${await enrol.text()}`);
      const pairs: PtyPair[] = [];
      for (const ins of spec.instruments) {
        const pair = await PtyPair.start({ dir, names: [`${ins.id}.gw`, `${ins.id}.dev`] });
        pairs.push(pair);
        trackHelper(pair.pid);
        cleanups.push(() => pair.stop());
      }
      const opsPort = await freePort();
      const config = join(dir, 'gateway.yaml');
      const run: GatewayRun = { spec, config, dataDir: join(dir, 'data'), opsPort, child: undefined, down: [], pairs, instruments: [], keyFile };
      const extra = await setUpFaults(run, dir);
      await writeFile(config, gatewayConfig(spec, { dataDir: join(dir, 'data'), keyFile, brokerUrl: run.proxy?.url ?? broker.url, ingestKey, api, opsPort, ports: pairs.map((p) => p.pathA), ...extra }));
      gateways.set(spec.id, run);
    }
    const startGateway = async (g: GatewayRun): Promise<void> => {
      g.child = spawnStele(root, ['gateway', 'run', '--config', g.config], g.env === undefined ? {} : { env: g.env });
      const until = Date.now() + 60_000;
      for (;;) {
        const st = await gatewayStatus(g).catch(() => undefined);
        if (st?.state === 'refused') return;
        if (st?.state === 'running' && st.instruments.every((i) => i.state === 'open')) return;
        if (g.child.proc.exitCode !== null) throw new SimError('SIM_START_FAILED', `stele gateway run (${g.spec.id}) exited ${g.child.proc.exitCode}: ${g.child.errTail.join(' | ')}`);
        if (Date.now() > until) throw new SimError('SIM_START_FAILED', `stele gateway run (${g.spec.id}) did not open its instruments within 60 s`);
        await sleep(100);
      }
    };
    for (const g of gateways.values()) {
      g.down.push({ from: 0, to: Number.POSITIVE_INFINITY });
      await startGateway(g);
      g.down[g.down.length - 1]!.to = t() + 500;
      cleanups.push(() => g.child?.stop() ?? Promise.resolve());
      note('gateway', `${g.spec.id}: stele gateway run --config ${g.config} (${g.spec.instruments.map((i) => `${i.id} ${i.kind}`).join(', ')})`);
    }
    // The instruments start talking once their gateways listen (a frame sent to a closed pty is lost, as on a line).
    for (const g of gateways.values()) {
      for (const [i, ins] of g.spec.instruments.entries()) {
        g.instruments.push(await startInstrument(ins, g.pairs[i]!.pathB, seed + insIndex++, g.spec.id, frames, () => Date.now() - started));
      }
      cleanups.push(async () => {
        for (const ins of g.instruments) {
          ins.stop();
          await ins.transport.close().catch(() => undefined);
        }
      });
    }

    // 4. The timeline.
    const tampers: TamperRecord[] = [];
    const forgeries: ForgeryRecord[] = [];
    const episodes: EpisodeRecord[] = [];
    const timelineStart = Date.now();
    const endAt = timelineStart + seconds * 1000;
    const running: Promise<void>[] = [];
    const failures: string[] = [];
    /** Ingest's committed head for a device; undefined while ingest does not answer. */
    const ingestHead = async (device: string): Promise<number | undefined> => {
      const r = await fetch(`${api}/devices/${encodeURIComponent(device)}/head`).catch(() => undefined);
      if (r === undefined) return undefined;
      if (!r.ok) return 0;
      return ((await r.json()) as { seq: number }).seq;
    };

    const runStep = async (step: StepSpec): Promise<void> => {
      const g = gateways.get(step.gateway)!;
      const label = step.episode ?? step.fault!;
      if (step.episode !== undefined) {
        const ins = g.instruments.find((i) => i.spec.id === step.instrument)!;
        const rec: EpisodeRecord = { step, sent: [] };
        episodes.push(rec);
        const from = frames.length;
        if (step.episode === 'exceedance') ins.cems!.setScale(step.channel, step.factor);
        if (step.episode === 'calibration') ins.cems!.setFlag('C');
        if (step.episode === 'door-open') ins.slave!.temperatureOverrideC = step.temperatureC;
        if (step.episode === 'probe-quiet') ins.slave!.behaviour = 'silent';
        note(label, `${ins.spec.id} for ${step.forMs} ms${step.episode === 'exceedance' ? ` (${step.channel} x${step.factor})` : step.episode === 'door-open' ? ` (${step.temperatureC} °C)` : ''}`);
        await sleep(Math.min(step.forMs, Math.max(0, endAt - Date.now())));
        if (step.episode === 'exceedance') ins.cems!.setScale(step.channel, 1);
        if (step.episode === 'calibration') ins.cems!.setFlag(undefined);
        if (step.episode === 'door-open') ins.slave!.temperatureOverrideC = undefined;
        if (step.episode === 'probe-quiet') ins.slave!.behaviour = 'normal';
        rec.sent = frames.slice(from).filter((f) => f.instrument === ins.spec.id && f.values !== undefined).map((f) => f.values![step.channel] ?? f.values!.temperature ?? '');
        note(`${label} ends`, `${ins.spec.id}, ${rec.sent.length} frames sent during it`);
        return;
      }
      switch (step.fault) {
        case 'broker-outage':
          await broker.outage();
          note(label, `broker down for ${step.forMs} ms`);
          await sleep(step.forMs);
          await broker.listen();
          note('broker back', broker.url);
          return;
        case 'gateway-power-cut': {
          const w: Window = { from: t() - CUT_GRACE_MS, to: Number.POSITIVE_INFINITY };
          g.down.push(w);
          await g.child?.powerCut();
          note(label, `${g.spec.id}: SIGKILL of stele gateway run, down for ${step.forMs} ms`);
          await sleep(step.forMs);
          await startGateway(g);
          w.to = t() + 500;
          note('gateway back', `${g.spec.id} restarted`);
          return;
        }
        case 'ingest-power-cut': {
          const pid = anvilPid;
          await ingest.powerCut();
          if (pid !== undefined) {
            try {
              process.kill(pid, 'SIGKILL');
            } catch {
              /* gone with its group */
            }
          }
          note(label, `SIGKILL of stele ingest run and its chain, down for ${step.forMs} ms`);
          await sleep(step.forMs);
          ingest = await startIngest();
          note('ingest back', api);
          return;
        }
        case 'outbox-tamper': {
          const w: Window = { from: t() - CUT_GRACE_MS, to: Number.POSITIVE_INFINITY };
          g.down.push(w);
          await g.child?.powerCut();
          const rec = await tamperOutbox(g);
          if (rec === undefined) {
            failures.push(`outbox-tamper at ${step.where}: no unacknowledged reading in ${g.spec.id}'s outbox to alter (put it inside a broker outage)`);
            note(label, `${g.spec.id}: nothing unacknowledged to alter`);
          } else {
            tampers.push(rec);
            note(label, `${g.spec.id}: seq ${rec.seq} altered in the outbox (${rec.from} -> ${rec.to}), its sum recomputed`);
          }
          await startGateway(g);
          const st = await gatewayStatus(g).catch(() => undefined);
          if (st?.state === 'refused') {
            if (rec !== undefined) rec.refusal = st.refusal?.code ?? 'refused';
            note('gateway refused', `${g.spec.id}: ${st.refusal?.code ?? ''} ${st.refusal?.message ?? ''}`.trim());
          } else {
            w.to = t() + 500;
            note('gateway back', `${g.spec.id} restarted (state ${st?.state ?? 'unknown'})`);
          }
          return;
        }
        case 'forged-confirmation': {
          const before = await gatewayStatus(g);
          const forger = await loadOrCreateSoftwareSigner(join(work, 'forger.pem'));
          const head = before.outbox.head;
          const bytes = await signConfirmation({ type: 'anchored', device: g.spec.id, upTo: Math.max(1, head), head: sha256(randomBytes(32)), issuedAt: Math.floor(Date.now() / 1000) }, forger);
          const client = await mqtt.connectAsync(broker.url, { clientId: `sim-forger-${randomBytes(4).toString('hex')}`, reconnectPeriod: 0 });
          await client.publishAsync(`stele/v1/${g.spec.id}/acks`, Buffer.from(bytes), { qos: 1 });
          await client.endAsync();
          await sleep(2000);
          const after = await gatewayStatus(g);
          const sum = (r: Record<string, number> | undefined) => Object.values(r ?? {}).reduce((a, b) => a + b, 0);
          forgeries.push({ gateway: g.spec.id, ackedBefore: before.outbox.acked, ackedAfter: after.outbox.acked, ignoredBefore: sum(before.broker.ignored), ignoredAfter: sum(after.broker.ignored), ingestHeadAfter: await ingestHead(g.spec.id) });
          note(label, `${g.spec.id}: a confirmation up to seq ${head} signed by a key ingest never had, published on stele/v1/${g.spec.id}/acks`);
          return;
        }
        default:
          return injectFault(step, g);
      }
    };

    // Faults of faults.ts (network partition, clock, slow signer, duplicates, outbox delete, replay, key swap, full disk).
    const rec: FaultRecords = { partitions: [], clocks: [], slow: [], duplicates: [], deletes: [], replays: [], swaps: [], disks: [] };
    const ingestHealth = async () => (await (await fetch(`${api}/health`)).json()) as { duplicates: number; rejected: Record<string, number>; readings: number };
    const forksOf = async (device: string) => ((await (await fetch(`${api}/devices/${encodeURIComponent(device)}/forks`)).json()) as { forks: unknown[] }).forks.length;
    const injectFault = async (step: StepSpec, g: GatewayRun): Promise<void> => {
      const label = step.fault!;
      switch (step.fault) {
        case 'network-partition': {
          const proxy = g.proxy!;
          const resetBefore = proxy.reset;
          const ackedBefore = (await gatewayStatus(g)).outbox.acked;
          proxy.partition(step.mode);
          note(label, `${g.spec.id} <-> broker: ${step.mode === 'drop' ? 'connections reset, new ones refused' : 'every byte held both ways'} for ${step.forMs} ms (TCP proxy 127.0.0.1:${proxy.port})`);
          await sleep(step.forMs);
          const during = await gatewayStatus(g);
          proxy.heal();
          rec.partitions.push({ gateway: g.spec.id, mode: step.mode, forMs: step.forMs, reset: proxy.reset - resetBefore, ackedBefore, ackedDuring: during.outbox.acked, headDuring: during.outbox.head });
          note('partition healed', `${g.spec.id}: ${proxy.reset - resetBefore} connections reset; outbox head ${during.outbox.head}, acked ${during.outbox.acked}`);
          return;
        }
        case 'clock-jump': {
          const clock = g.clock!;
          const from = Date.now() + step.byMs;
          await clock.set({ offsetMs: step.byMs, synced: false });
          note(label, `${g.spec.id}: wall clock ${step.byMs >= 0 ? '+' : ''}${step.byMs / 1000} s, NTP not synchronised, for ${step.forMs} ms`);
          await sleep(step.forMs);
          await clock.set({ offsetMs: 0, synced: true });
          const st = (await gatewayStatus(g).catch(() => undefined)) as (Status & { clock?: { jumps?: number } }) | undefined;
          rec.clocks.push({ gateway: g.spec.id, kind: 'clock-jump', byMs: step.byMs, fromWallMs: from, toWallMs: Date.now() + step.byMs, ...(st?.clock?.jumps === undefined ? {} : { jumpsSeen: st.clock.jumps }) });
          note('clock synchronised', `${g.spec.id}: NTP set the clock back to the right time (${st?.clock?.jumps ?? '?'} jumps seen by the gateway)`);
          return;
        }
        case 'boot-1970': {
          const clock = g.clock!;
          const w: Window = { from: t() - CUT_GRACE_MS, to: Number.POSITIVE_INFINITY };
          g.down.push(w);
          await g.child?.powerCut();
          const offset = Date.UTC(1970, 0, 1) + 60_000 - Date.now();
          await clock.set({ offsetMs: offset, synced: false });
          await startGateway(g);
          w.to = t() + 500;
          note(label, `${g.spec.id}: power cut, boots with its clock at 1970-01-01 (no RTC, no NTP) for ${step.forMs} ms`);
          await sleep(step.forMs);
          await clock.set({ offsetMs: 0, synced: true });
          rec.clocks.push({ gateway: g.spec.id, kind: 'boot-1970', byMs: offset, fromWallMs: 0, toWallMs: Date.UTC(2024, 0, 1) });
          note('clock synchronised', `${g.spec.id}: NTP set the clock`);
          return;
        }
        case 'slow-signer': {
          const headBefore = (await gatewayStatus(g)).outbox.head;
          await writeFile(g.latencyFile!, `${step.latencyMs}\n`);
          note(label, `${g.spec.id}: each signature waits ${step.latencyMs} ms (software key behind a slow secure element) for ${step.forMs} ms`);
          await sleep(step.forMs);
          await writeFile(g.latencyFile!, '0\n');
          const headAfter = (await gatewayStatus(g)).outbox.head;
          rec.slow.push({ gateway: g.spec.id, latencyMs: step.latencyMs, headBefore, headAfter });
          note('signer fast again', `${g.spec.id}: readings ${headBefore + 1}..${headAfter} were taken while it was slow`);
          return;
        }
        case 'duplicate-delivery': {
          const tap = g.tap!;
          const before = (await ingestHealth()).duplicates;
          const from = tap.republished;
          tap.duplicating = true;
          note(label, `${g.spec.id}: every statement on stele/v1/${g.spec.id}/statements is published a second time for ${step.forMs} ms`);
          await sleep(step.forMs);
          tap.duplicating = false;
          rec.duplicates.push({ gateway: g.spec.id, republished: tap.republished - from, duplicatesBefore: before });
          note('duplicates end', `${g.spec.id}: ${tap.republished - from} statements delivered twice`);
          return;
        }
        case 'outbox-delete': {
          const w: Window = { from: t() - CUT_GRACE_MS, to: Number.POSITIVE_INFINITY };
          g.down.push(w);
          await g.child?.powerCut();
          const del = await deleteOutboxEntry(g.dataDir);
          if (del === undefined) {
            failures.push(`outbox-delete at ${step.where}: no unacknowledged reading in ${g.spec.id}'s outbox to delete (put it inside a broker outage)`);
            note(label, `${g.spec.id}: nothing unacknowledged to delete`);
          } else note(label, `${g.spec.id}: seq ${del.seq} deleted from the outbox (acked ${del.acked}, head ${del.head})`);
          await startGateway(g);
          const st = await gatewayStatus(g).catch(() => undefined);
          if (del !== undefined) rec.deletes.push({ ...del, gateway: g.spec.id, ...(st?.state === 'refused' ? { refusal: st.refusal?.code ?? 'refused' } : {}) });
          if (st?.state === 'refused') note('gateway refused', `${g.spec.id}: ${st.refusal?.code ?? ''} ${st.refusal?.message ?? ''}`.trim());
          else {
            w.to = t() + 500;
            note('gateway back', `${g.spec.id} restarted (state ${st?.state ?? 'unknown'})`);
          }
          return;
        }
        case 'statement-replay': {
          const tap = g.tap!;
          const before = (await ingestHealth()).duplicates;
          const headBefore = await ingestHead(g.spec.id);
          const old = await tap.replayOldest();
          if (old === undefined) {
            failures.push(`statement-replay at ${step.where}: no statement of ${g.spec.id} was seen to replay`);
            return;
          }
          note(label, `${g.spec.id}: its first statement (${old.length} bytes, seen ${tap.seen} since) published again on the wire`);
          await sleep(Math.min(step.forMs, 3000));
          rec.replays.push({ gateway: g.spec.id, duplicatesBefore: before, duplicatesAfter: (await ingestHealth()).duplicates, headBefore, headAfter: await ingestHead(g.spec.id) });
          return;
        }
        case 'key-swap': {
          const w: Window = { from: t() - CUT_GRACE_MS, to: Number.POSITIVE_INFINITY };
          g.down.push(w);
          const rejectedBefore = (await ingestHealth()).rejected.UNKNOWN_KEY_ERROR ?? 0;
          await g.child?.powerCut();
          const newKid = await swapKey(g.keyFile!);
          g.keySwapped = true;
          const gatewayHeadAtSwap = await outboxHead(g.dataDir);
          await startGateway(g);
          rec.swaps.push({ gateway: g.spec.id, newKid, gatewayHeadAtSwap, rejectedBefore });
          note(label, `${g.spec.id}: key file replaced by another P-256 key (kid ${newKid.slice(0, 16)}...) at outbox head ${gatewayHeadAtSwap}; restarted`);
          return;
        }
        case 'disk-full': {
          if (g.disk === undefined) {
            const reason = g.diskSkip ?? 'no small disk';
            rec.disks.push({ gateway: g.spec.id, skipped: reason, sawStop: false, sawUnhealthy: false, refused: 0, headAtFill: 0 });
            note(label, `skipped: ${reason}`);
            return;
          }
          const w: Window = { from: t(), to: Number.POSITIVE_INFINITY };
          g.down.push(w);
          const headAtFill = (await gatewayStatus(g)).outbox.head;
          await g.disk.fill(2 * 1024 * 1024);
          note(label, `${g.spec.id}: its data disk (tmpfs, 48 MB) filled to ${Math.round((await g.disk.free()) / 1024)} KiB free for ${step.forMs} ms`);
          const until = Date.now() + step.forMs;
          let sawStop = false;
          let sawUnhealthy = false;
          let refused = 0;
          while (Date.now() < until) {
            const st = (await gatewayStatus(g).catch(() => undefined)) as (Status & { disk?: { level: string; refused: number } }) | undefined;
            if (st?.disk?.level === 'stop') sawStop = true;
            if (st?.disk !== undefined) refused = Math.max(refused, st.disk.refused);
            const hz = await fetch(`http://127.0.0.1:${g.opsPort}/healthz`).then((r) => r.status, () => 0);
            if (hz === 503) sawUnhealthy = true;
            await sleep(250);
          }
          await g.disk.empty();
          w.to = t() + 1500;
          rec.disks.push({ gateway: g.spec.id, sawStop, sawUnhealthy, refused, headAtFill });
          note('disk freed', `${g.spec.id}: ${refused} readings refused while full; ${Math.round((await g.disk.free()) / 1024 / 1024)} MB free again`);
          return;
        }
      }
    };

    say(`running  ${seconds} s, seed ${seed}, ${s.timeline.length} steps`);
    for (const step of s.timeline) {
      const at = timelineStart + step.atMs;
      if (at >= endAt) {
        note('skipped', `${step.episode ?? step.fault} at ${step.atMs} ms is after the end of this run`);
        continue;
      }
      await sleep(Math.max(0, at - Date.now()));
      running.push(runStep(step).catch((e: unknown) => void failures.push(`${step.episode ?? step.fault} at ${step.where}: ${(e as Error).message}`)));
    }
    await sleep(Math.max(0, endAt - Date.now()));
    await Promise.all(running);
    for (const g of gateways.values()) for (const i of g.instruments) i.stop();
    note('instruments stopped', `${frames.length} frames sent`);

    // 5. Drain: every gateway that runs has its whole chain acknowledged, then ingest anchors the last batch.
    const drainUntil = Date.now() + 90_000;
    for (const g of gateways.values()) {
      for (;;) {
        const st = await gatewayStatus(g).catch(() => undefined);
        if (st?.state === 'refused') break;
        if (g.keySwapped === true) break; // ingest never acknowledges readings signed by the swapped-in key
        if (st !== undefined && st.outbox.acked >= st.outbox.head) break;
        if (Date.now() > drainUntil) {
          failures.push(`${g.spec.id}: ingest acknowledged only up to seq ${st?.outbox.acked} of ${st?.outbox.head} within 90 s`);
          break;
        }
        await sleep(200);
      }
    }
    let flushed = await fetch(`${api}/flush`, { method: 'POST', headers: admin });
    for (let attempt = 1; attempt < 8 && flushed.status !== 200; attempt++) {
      await sleep(1000);
      flushed = await fetch(`${api}/flush`, { method: 'POST', headers: admin });
    }
    if (flushed.status !== 200) failures.push(`ingest /flush answered ${flushed.status}: ${await flushed.text()}`);
    for (const f of forgeries) {
      const st = await gatewayStatus(gateways.get(f.gateway)!).catch(() => undefined);
      f.ackedAtEnd = st?.outbox.acked;
      f.headAtEnd = st?.outbox.head;
    }
    for (const r of tampers) r.ingestHead = await ingestHead(r.gateway);
    await finishFaultRecords();
    note('drained', 'every running gateway acknowledged; last batch anchored');
    async function finishFaultRecords(): Promise<void> {
      const h = await ingestHealth();
      for (const d of rec.duplicates) d.duplicatesAfter = h.duplicates;
      for (const d of rec.deletes) {
        d.ingestHead = await ingestHead(d.gateway);
        d.forks = await forksOf(d.gateway);
      }
      for (const r of rec.replays) r.forks = await forksOf(r.gateway);
      for (const k of rec.swaps) {
        k.rejectedAfter = h.rejected.UNKNOWN_KEY_ERROR ?? 0;
        k.ingestHeadEnd = await ingestHead(k.gateway);
      }
      for (const d of rec.disks) {
        if (d.skipped !== undefined) continue;
        const st = await gatewayStatus(gateways.get(d.gateway)!).catch(() => undefined);
        d.ackedEnd = st?.outbox.acked;
        d.headEnd = st?.outbox.head;
        d.ingestHeadEnd = await ingestHead(d.gateway);
      }
    }

    // 6. The assertions.
    const results: AssertionResult[] = [];
    const isDown = (g: GatewayRun, at: number) => g.down.some((w) => at >= w.from && at <= w.to);
    const found = async (digest: string) => (await fetch(`${api}/frames/${digest}`)).status === 200;
    let whileDown = 0;
    const verdicts = new Map<string, { verdict: Verdict; readings: Reading[] }>();
    // A device's evidence, seq 1 to `last`. A reading the gateway took from its instrument's last frame may reach
    // ingest after the drain's flush (its status was read just before): 409 INGEST_NOT_ANCHORED then, and one more
    // flush anchors it. Any other answer is reported with its code, never parsed as a bundle.
    const bundleOf = async (device: string, last: number): Promise<unknown> => {
      for (let attempt = 1; ; attempt++) {
        const res = await fetch(`${api}/bundle?device=${encodeURIComponent(device)}&first=1&last=${last}`);
        const body = (await res.json()) as { code?: unknown; error?: unknown };
        if (res.status === 200) return body;
        if (res.status !== 409 || body.code !== 'INGEST_NOT_ANCHORED' || attempt >= 5) throw new Error(`GET /bundle for ${device} answered ${res.status} ${String(body.code)}: ${String(body.error)}`);
        await fetch(`${api}/flush`, { method: 'POST', headers: admin });
      }
    };
    const evidence = async (device: string) => {
      const cached = verdicts.get(device);
      if (cached !== undefined) return cached;
      const head = (await ingestHead(device)) ?? 0;
      const bundle = parseBundle(await bundleOf(device, Math.max(1, head)));
      const verdict = await verifyBundle(bundle, { anchorReader: (ref, batchId) => readAnchor(`http://127.0.0.1:${chainPort}`, ref, batchId), trust: await simTrustPolicy(work, ingestDir, chainPort) });
      const readings = bundle.entries.flatMap((e) => (e.reading === undefined ? [] : [decodeReading(e.reading)]));
      const r = { verdict, readings };
      verdicts.set(device, r);
      return r;
    };
    for (const name of s.assertions) {
      try {
        results.push(await check(name));
      } catch (e) {
        results.push({ name, ok: false, detail: `could not be checked: ${(e as Error).message}` });
      }
    }
    async function check(name: AssertionName): Promise<AssertionResult> {
      switch (name) {
        case 'frames-reach-ingest': {
          let counted = 0;
          const missing: SentFrame[] = [];
          whileDown = 0;
          for (const f of frames) {
            if (isDown(gateways.get(f.gateway)!, f.atMs)) {
              whileDown++;
              continue;
            }
            counted++;
            if (!(await found(f.digest))) missing.push(f);
          }
          // once: no frame stands behind two readings of the evidence (a duplicate delivery committed twice)
          // (two Modbus answers with the same values are the same bytes: compare counts per digest, not presence)
          let twice = 0;
          for (const g of gateways.values()) {
            const sent = new Map<string, number>();
            for (const f of frames) if (f.gateway === g.spec.id) sent.set(f.digest, (sent.get(f.digest) ?? 0) + 1);
            const seen = new Map<string, number>();
            for (const r of (await evidence(g.spec.id)).readings) {
              for (const raw of r.raw) {
                const h = toHex(raw);
                const n = (seen.get(h) ?? 0) + 1;
                seen.set(h, n);
                if (n > (sent.get(h) ?? 0)) twice++;
              }
            }
          }
          const ok = missing.length === 0 && counted > 0 && twice === 0;
          return {
            name,
            ok,
            detail: `${counted - missing.length} of ${counted} frames sent while their gateway listened are at ingest (GET /frames/<sha256>), ${twice === 0 ? 'none more often than sent' : `${twice} readings more than frames sent`}${whileDown > 0 ? `; ${whileDown} sent while it was down, lost on the line` : ''}${missing.length > 0 ? `; missing: ${missing.slice(0, 3).map((m) => `${m.instrument}@${(m.atMs / 1000).toFixed(1)}s`).join(', ')}` : ''}`,
          };
        }
        case 'bundles-verify': {
          const parts: string[] = [];
          let ok = true;
          for (const g of gateways.values()) {
            const { verdict } = await evidence(g.spec.id);
            const codes = verdict.checks.flatMap((c) => c.failures.map((f) => f.code));
            ok &&= verdict.state === 'verified';
            parts.push(`${g.spec.id} seq 1..${verdict.summary.readings ?? '?'}: ${verdict.state}${codes.length > 0 ? ` (${[...new Set(codes)].join(', ')})` : ''}`);
          }
          return { name, ok, detail: parts.join('; ') };
        }
        case 'anchors-final': {
          const h = (await (await fetch(`${api}/health`)).json()) as { batches: number; anchored: number; anchoring: { unanchored: number } };
          return { name, ok: h.batches > 0 && h.anchored === h.batches && h.anchoring.unanchored === 0, detail: `${h.anchored} of ${h.batches} batches anchored and final, ${h.anchoring.unanchored} queued` };
        }
        case 'exceedance-in-evidence':
        case 'door-open-in-evidence': {
          const kind = name === 'exceedance-in-evidence' ? 'exceedance' : 'door-open';
          const eps = episodes.filter((e) => e.step.episode === kind);
          if (eps.length === 0) return { name, ok: false, detail: `the timeline has no ${kind} episode` };
          const parts: string[] = [];
          let ok = true;
          for (const e of eps) {
            const { readings } = await evidence(e.step.gateway);
            const sensorReadings = readings.filter((r) => r.sensor === e.step.instrument);
            const values = new Set(sensorReadings.flatMap((r) => r.meas.map((m) => m.value)));
            const sent = e.sent.filter((v) => v !== '');
            const inEvidence = sent.filter((v) => values.has(v));
            const limitNote = kind === 'exceedance' ? `${e.step.channel} up to ${Math.max(...sent.map(Number))}` : `temperature ${e.step.temperatureC} °C`;
            const good = sent.length > 0 && inEvidence.length > 0;
            ok &&= good;
            parts.push(`${e.step.instrument}: ${inEvidence.length} of ${sent.length} episode values (${limitNote}) are in the verified evidence`);
          }
          return { name, ok, detail: parts.join('; ') };
        }
        case 'tamper-detected': {
          if (tampers.length === 0) return { name, ok: false, detail: 'no value was altered (see the outbox-tamper step)' };
          const parts: string[] = [];
          let ok = true;
          for (const r of tampers) {
            const refused = r.refusal === 'OUTBOX_CORRUPT';
            const kept = (r.ingestHead ?? 0) < r.seq;
            const absent = !(await found(r.frame));
            ok &&= refused && kept && absent;
            parts.push(`${r.gateway} seq ${r.seq}: gateway ${refused ? 'refused its outbox (OUTBOX_CORRUPT)' : `did not refuse (${r.refusal ?? 'running'})`}; ingest head ${r.ingestHead ?? '?'} ${kept ? '<' : '>='} ${r.seq}; the altered reading ${absent ? 'never reached ingest' : 'IS at ingest'}`);
          }
          return { name, ok, detail: parts.join('; ') };
        }
        case 'forged-confirmation-ignored': {
          if (forgeries.length === 0) return { name, ok: false, detail: 'no confirmation was forged' };
          const parts: string[] = [];
          let ok = true;
          for (const f of forgeries) {
            const ignored = f.ignoredAfter > f.ignoredBefore;
            const notMoved = f.ackedAfter <= Math.max(f.ackedBefore, f.ingestHeadAfter ?? 0);
            const drained = f.ackedAtEnd !== undefined && f.ackedAtEnd === f.headAtEnd;
            ok &&= ignored && notMoved && drained;
            parts.push(`${f.gateway}: ${ignored ? 'ignored (counted)' : 'NOT counted as ignored'}; acked ${f.ackedBefore} -> ${f.ackedAfter} (ingest ${f.ingestHeadAfter === undefined ? 'down' : `head ${f.ingestHeadAfter}`}); at the end acked ${f.ackedAtEnd} of ${f.headAtEnd}`);
          }
          return { name, ok, detail: parts.join('; ') };
        }
        default:
          return checkFault(name);
      }
    }
    /** Frames of one gateway sent while it listened: how many are at ingest, and how many readings stand behind more frames than were sent. */
    async function framesOf(gateway: string): Promise<{ counted: number; missing: number; twice: number }> {
      const g = gateways.get(gateway)!;
      let counted = 0;
      let missing = 0;
      const sent = new Map<string, number>();
      for (const f of frames) {
        if (f.gateway !== gateway) continue;
        sent.set(f.digest, (sent.get(f.digest) ?? 0) + 1);
        if (isDown(g, f.atMs)) continue;
        counted++;
        if (!(await found(f.digest))) missing++;
      }
      const seen = new Map<string, number>();
      let twice = 0;
      for (const r of (await evidence(gateway)).readings) {
        for (const raw of r.raw) {
          const h = toHex(raw);
          const n = (seen.get(h) ?? 0) + 1;
          seen.set(h, n);
          if (n > (sent.get(h) ?? 0)) twice++;
        }
      }
      return { counted, missing, twice };
    }
    async function checkFault(name: AssertionName): Promise<AssertionResult> {
      const parts: string[] = [];
      let ok = true;
      const none = (what: string): AssertionResult => ({ name, ok: false, detail: `no ${what} step ran` });
      switch (name) {
        case 'partition-survived': {
          if (rec.partitions.length === 0) return none('network-partition');
          for (const p of rec.partitions) {
            const f = await framesOf(p.gateway);
            const { verdict } = await evidence(p.gateway);
            const good = f.counted > 0 && f.missing === 0 && f.twice === 0 && verdict.state === 'verified' && p.headDuring > p.ackedDuring && (p.mode === 'stall' || p.reset > 0);
            ok &&= good;
            parts.push(`${p.gateway} (${p.mode} ${p.forMs} ms, ${p.reset} connections reset): ${p.headDuring - p.ackedDuring} readings waited unacknowledged; after healing ${f.counted - f.missing} of ${f.counted} frames at ingest, ${f.twice === 0 ? 'none twice' : `${f.twice} twice`}, evidence ${verdict.state}`);
          }
          return { name, ok, detail: parts.join('; ') };
        }
        case 'clock-state-recorded': {
          if (rec.clocks.length === 0) return none('clock-jump or boot-1970');
          for (const c of rec.clocks) {
            const { verdict, readings } = await evidence(c.gateway);
            const shifted = c.kind === 'boot-1970' ? readings.filter((r) => r.time < Date.UTC(2024, 0, 1)) : c.byMs > 0 ? readings.filter((r) => r.time > Date.now() + c.byMs / 2) : readings.filter((r) => r.time < started + c.byMs / 2);
            const wronglySynced = shifted.filter((r) => r.clock.synced).length;
            const synced = readings.filter((r) => r.clock.synced).length;
            const time = verdict.checks.find((x) => x.id === 'time');
            const good = shifted.length > 0 && wronglySynced === 0 && synced > 0 && time !== undefined && time.status === 'pass' && verdict.state === 'verified';
            ok &&= good;
            parts.push(`${c.gateway} ${c.kind}${c.kind === 'clock-jump' ? ` ${c.byMs / 1000} s` : ''}: ${shifted.length} readings carry the wrong time, ${wronglySynced === 0 ? 'all' : `${shifted.length - wronglySynced} of them`} with clock.synced false; ${synced} synced readings time-bounded (check 8: ${time?.status ?? '?'}${time !== undefined && time.failures.length > 0 ? ` ${time.failures[0]!.code}` : ''})${c.jumpsSeen === undefined ? '' : `; the gateway saw ${c.jumpsSeen} jumps`}`);
          }
          return { name, ok, detail: parts.join('; ') };
        }
        case 'signer-batched': {
          if (rec.slow.length === 0) return none('slow-signer');
          for (const sl of rec.slow) {
            const bundleJson = await bundleOf(sl.gateway, Math.max(1, (await ingestHead(sl.gateway)) ?? 1));
            const entries = parseBundle(bundleJson).entries.filter((e) => e.seq > sl.headBefore && e.seq <= sl.headAfter);
            const perSig = new Map<string, number>();
            for (const e of entries) perSig.set(statementSignature(e.statement), (perSig.get(statementSignature(e.statement)) ?? 0) + 1);
            const max = Math.max(0, ...perSig.values());
            const f = await framesOf(sl.gateway);
            const good = entries.length === sl.headAfter - sl.headBefore && entries.length > 0 && max > 1 && f.missing === 0 && f.twice === 0;
            ok &&= good;
            parts.push(`${sl.gateway} (${sl.latencyMs} ms per signature): ${entries.length} readings taken while slow under ${perSig.size} signatures (device-level batches of up to ${max}); ${f.counted - f.missing} of ${f.counted} frames at ingest`);
          }
          return { name, ok, detail: parts.join('; ') };
        }
        case 'duplicates-stored-once': {
          if (rec.duplicates.length === 0) return none('duplicate-delivery');
          for (const d of rec.duplicates) {
            const f = await framesOf(d.gateway);
            const { verdict, readings } = await evidence(d.gateway);
            const seqs = new Set(readings.map((r) => r.seq));
            const counted = (d.duplicatesAfter ?? 0) - d.duplicatesBefore;
            const good = d.republished > 0 && f.twice === 0 && f.missing === 0 && seqs.size === readings.length && verdict.state === 'verified';
            ok &&= good;
            parts.push(`${d.gateway}: ${d.republished} statements delivered twice, ingest counted ${counted} duplicates in all (re-acked); ${readings.length} readings stored, ${readings.length - seqs.size} seqs twice, ${f.twice} frames behind two readings; ${f.counted - f.missing} of ${f.counted} frames at ingest`);
          }
          return { name, ok, detail: parts.join('; ') };
        }
        case 'gap-detected': {
          if (rec.deletes.length === 0) return none('outbox-delete');
          for (const d of rec.deletes) {
            const { verdict } = await evidence(d.gateway);
            const good = d.refusal === 'OUTBOX_GAP' && (d.ingestHead ?? 0) < d.seq && d.forks === 0 && verdict.state === 'verified';
            ok &&= good;
            parts.push(`${d.gateway} seq ${d.seq} deleted: gateway ${d.refusal === undefined ? 'did NOT refuse' : `refused its outbox (${d.refusal})`}; ingest head ${d.ingestHead ?? '?'} ${(d.ingestHead ?? 0) < d.seq ? '<' : '>='} ${d.seq}; ${d.forks} forks; evidence 1..${d.ingestHead ?? '?'} ${verdict.state}`);
          }
          return { name, ok, detail: parts.join('; ') };
        }
        case 'replay-ignored': {
          if (rec.replays.length === 0) return none('statement-replay');
          for (const r of rec.replays) {
            const { verdict, readings } = await evidence(r.gateway);
            const seqs = new Set(readings.map((x) => x.seq));
            const good = r.duplicatesAfter > r.duplicatesBefore && r.forks === 0 && seqs.size === readings.length && verdict.state === 'verified';
            ok &&= good;
            parts.push(`${r.gateway}: the replayed statement was ${r.duplicatesAfter > r.duplicatesBefore ? 'counted as a duplicate (stele_ingest_duplicates_total)' : 'NOT counted'}, ${r.forks} forks, head ${r.headBefore ?? '?'} -> ${r.headAfter ?? '?'}; evidence ${verdict.state}`);
          }
          return { name, ok, detail: parts.join('; ') };
        }
        case 'key-swap-rejected': {
          if (rec.swaps.length === 0) return none('key-swap');
          for (const k of rec.swaps) {
            const { verdict } = await evidence(k.gateway);
            const rejected = (k.rejectedAfter ?? 0) - k.rejectedBefore;
            const good = rejected > 0 && (k.ingestHeadEnd ?? 0) <= k.gatewayHeadAtSwap && verdict.state === 'verified';
            ok &&= good;
            parts.push(`${k.gateway}: ingest rejected ${rejected} statements with UNKNOWN_KEY_ERROR; head ${k.ingestHeadEnd ?? '?'} ${(k.ingestHeadEnd ?? 0) <= k.gatewayHeadAtSwap ? '<=' : '>'} ${k.gatewayHeadAtSwap} (the outbox head when the key was swapped): nothing accepted under the new key; evidence ${verdict.state}`);
          }
          return { name, ok, detail: parts.join('; ') };
        }
        case 'disk-full-refused': {
          if (rec.disks.length === 0) return none('disk-full');
          const skipped = rec.disks.find((d) => d.skipped !== undefined);
          if (skipped !== undefined) return { name, ok: true, detail: `skipped: ${skipped.skipped}`, skipped: skipped.skipped! };
          for (const d of rec.disks) {
            const { verdict } = await evidence(d.gateway);
            const drained = d.ackedEnd !== undefined && d.ackedEnd === d.headEnd && d.ingestHeadEnd === d.headEnd && (d.headEnd ?? 0) >= d.headAtFill;
            const good = d.sawStop && d.sawUnhealthy && d.refused > 0 && drained && verdict.state === 'verified';
            ok &&= good;
            parts.push(`${d.gateway}: disk level ${d.sawStop ? 'reached stop' : 'never reached stop'}, /healthz ${d.sawUnhealthy ? '503 (alarm)' : 'never 503'}, ${d.refused} new readings refused (refuse-new); every reading taken (1..${d.headEnd ?? '?'}) is at ingest (head ${d.ingestHeadEnd ?? '?'}), none deleted; evidence ${verdict.state}`);
          }
          return { name, ok, detail: parts.join('; ') };
        }
        default:
          return { name, ok: false, detail: 'not an assertion of this sim' };
      }
    }
    for (const f of failures) results.push({ name: 'frames-reach-ingest', ok: false, detail: `step failed: ${f}` });
    const report: SimReport = { scenario: s.name, seconds, seed, frames: { sent: frames.length, whileDown }, steps, assertions: results, ok: results.every((r) => r.ok) };
    say('');
    say(`report   ${s.name} (${seconds} s, seed ${seed}): ${frames.length} frames sent by ${s.gateways.reduce((n, g) => n + g.instruments.length, 0)} instruments`);
    for (const r of results) say(`  ${r.skipped !== undefined ? 'SKIP' : r.ok ? 'PASS' : 'FAIL'}  ${r.name}: ${r.detail}`);
    say(report.ok ? `result   PASS: every assertion holds` : `result   FAIL: ${results.filter((r) => !r.ok).length} of ${results.length} assertions failed`);
    await writeFile(join(work, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
    return report;
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    if (o.out === undefined) await rm(work, { recursive: true, force: true }).catch(() => undefined);
  }
}

function gatewayConfig(spec: GatewaySpec, o: { dataDir: string; keyFile: string; brokerUrl: string; ingestKey: string; api: string; opsPort: number; ports: string[]; diskCheckEvery?: string; clockCheckEvery?: string }): string {
  const instruments = spec.instruments.map((ins, i) => {
    const port = JSON.stringify(o.ports[i]);
    if (ins.kind === 'cems') {
      return [`  - id: ${ins.id}`, '    driver: hj212', `    port: ${port}`, '    baud: 9600', '    reconnect: 100ms', '    reconnectMax: 1s', '    options:', `      crc: ${ins.crc}`].join('\n');
    }
    return [
      `  - id: ${ins.id}`,
      '    driver: modbus-th',
      `    port: ${port}`,
      '    baud: 9600',
      '    reconnect: 100ms',
      '    reconnectMax: 1s',
      '    options:',
      '      timeout: 500ms',
      '      devices:',
      `        - sensor: ${ins.id}`,
      `          slave: ${ins.slave}`,
      `          profile: ${ins.family}`,
      `          interval: ${ins.intervalMs}ms`,
    ].join('\n');
  });
  return `# written by stele sim: the config an installer would write for this gateway
gateway:
  id: ${spec.id}
  dataDir: ${JSON.stringify(o.dataDir)}
  logLevel: info
key:
  software:
    path: ${JSON.stringify(o.keyFile)}
broker:
  url: ${o.brokerUrl}
  resendAfter: 2s
ingest:
  publicKey: ${o.ingestKey}
  url: ${o.api}
instruments:
${instruments.join('\n')}
disk:
  warnAtFreeBytes: 20MB
  stopAtFreeBytes: 5MB
${o.diskCheckEvery === undefined ? '' : `  checkEvery: ${o.diskCheckEvery}\n`}health:
  port: ${o.opsPort}
${o.clockCheckEvery === undefined ? '' : `clock:\n  checkEvery: ${o.clockCheckEvery}\n`}`;
}

interface Status {
  state: string;
  refusal?: { code: string; message: string };
  outbox: { head: number; acked: number };
  broker: { ignored?: Record<string, number> };
  instruments: { id: string; state: string }[];
}

async function gatewayStatus(g: GatewayRun): Promise<Status> {
  const r = await fetch(`http://127.0.0.1:${g.opsPort}/status`, { signal: AbortSignal.timeout(5000) });
  if (!r.ok) throw new Error(`status ${r.status}`);
  return (await r.json()) as Status;
}

async function startInstrument(spec: InstrumentSpec, path: string, seed: number, gateway: string, frames: SentFrame[], now: () => number): Promise<InstrumentRun> {
  const transport = new SerialTransport({ path, baudRate: 9600, reconnect: { initialDelayMs: 50, maxDelayMs: 500 }, presenceCheckMs: 200 });
  await transport.open();
  if (spec.kind === 'cems') {
    const cems = new CemsSimulator({ mn: spec.mn, seed, crc: spec.crc });
    const timer = setInterval(() => {
      const frame = cems.nextFrame(Date.now());
      const text = Buffer.from(frame).toString('latin1');
      const values: Record<string, string> = {};
      for (const m of text.matchAll(/([a-z]\d{5})-Rtd=([-0-9.]+)/g)) values[m[1]!] = m[2]!;
      frames.push({ gateway, instrument: spec.id, digest: toHex(sha256(frame)), atMs: now(), values });
      void transport.write(frame).catch(() => undefined);
    }, spec.intervalMs);
    return { spec, transport, cems, stop: () => clearInterval(timer) };
  }
  const slave = new ModbusThSlave({ slave: spec.slave, family: spec.family, seed, meanTemperatureC: spec.setPointC });
  let stopped = false;
  const attached = slave.attach(transport, {
    send: (bytes, info) => {
      if (stopped) return;
      if (info.seq !== undefined) {
        const values = slave.temperatureOverrideC === undefined ? undefined : { temperature: slave.temperatureOverrideC.toFixed(1) };
        frames.push({ gateway, instrument: spec.id, digest: toHex(sha256(bytes)), atMs: now(), ...(values === undefined ? {} : { values }) });
      }
      return transport.write(bytes);
    },
  });
  return {
    spec,
    transport,
    slave,
    stop: () => {
      stopped = true;
      attached.detach();
    },
  };
}

/**
 * What a careful attacker with the gateway's disk does: opens the outbox of the stopped gateway, changes a value
 * in the oldest unacknowledged reading and recomputes the record's `sum` (FORMAT.md §12.1: a check against
 * accidents, not a secret). The statement's signature over the reading's digest is what they cannot redo.
 */
async function tamperOutbox(g: GatewayRun): Promise<TamperRecord | undefined> {
  const db = new Level<string, Uint8Array>(join(g.dataDir, 'outbox'), { keyEncoding: 'utf8', valueEncoding: 'view' });
  await db.open();
  try {
    const acked = asMap(decodeCbor(await db.get('m!acked') ?? encodeCbor({ upTo: 0 }))).get('upTo') as number;
    const head = asMap(decodeCbor((await db.get('m!head'))!)).get('seq') as number;
    if (head <= acked) return undefined;
    const seq = acked + 1;
    const key = `e!${String(seq).padStart(16, '0')}`;
    const value = asMap(decodeCbor((await db.get(key))!));
    const reading = decodeReading(value.get('reading') as Uint8Array);
    const m = reading.meas[0]!;
    const from = m.value;
    const to = (Number(from) / 10).toFixed(Math.max(0, (from.split('.')[1] ?? '').length));
    const altered: Reading = { ...reading, meas: [{ ...m, value: to === from ? `${from}1` : to }, ...reading.meas.slice(1)] };
    const fields: Record<string, unknown> = {};
    for (const [k, v] of value) if (k !== 'sum') fields[k as string] = v;
    fields.reading = encodeReading(altered);
    await db.put(key, encodeCbor({ ...fields, sum: sha256(encodeCbor(fields)).subarray(0, 8) }));
    const raw = reading.raw[0];
    const frame = raw === undefined ? '' : toHex(raw);
    return { gateway: g.spec.id, seq, frame, from, to: altered.meas[0]!.value };
  } finally {
    await db.close();
  }
}

/** The outbox head of a stopped gateway (its `m!head` record). */
async function outboxHead(dataDir: string): Promise<number> {
  const db = new Level<string, Uint8Array>(join(dataDir, 'outbox'), { keyEncoding: 'utf8', valueEncoding: 'view' });
  await db.open();
  try {
    return asMap(decodeCbor((await db.get('m!head'))!)).get('seq') as number;
  } finally {
    await db.close();
  }
}

function asMap(v: unknown): Map<unknown, unknown> {
  if (v instanceof Map) return v;
  if (v !== null && typeof v === 'object') return new Map(Object.entries(v));
  throw new Error('outbox record is not a map');
}

/** The simulation plays the authority (FORMAT.md §14), as the demo does: it signs a policy naming this ingest's key and chain. */
async function simTrustPolicy(work: string, ingestDir: string, chainPort: number) {
  const ingestSigner = await loadSoftwareSigner(join(ingestDir, 'keys', 'ingest.pem'));
  const contract = JSON.parse(await readFile(join(ingestDir, 'chain', 'anchor-contract.json'), 'utf8')) as { chainId: number; contract: string };
  const authority = await loadOrCreateSoftwareSigner(join(work, 'authority.pem'));
  const draft = draftTrustPolicy({
    ingest: { publicKey: ingestSigner.publicKey, issuer: 'stele-ingest', validFrom: '2020-01-01T00:00:00Z' },
    anchors: [{ chainId: contract.chainId, contract: contract.contract, startBlock: 0, endpoints: [{ operator: 'stele sim (local anvil)', url: `http://127.0.0.1:${chainPort}` }] }],
  });
  const now = new Date();
  const json = completePolicyDraft(draft, { authorityName: 'stele sim authority', authorityPublicKey: authority.publicKey, version: 1, issuedAt: now.toISOString(), expiresAt: new Date(now.getTime() + 86_400_000).toISOString() });
  return loadTrustPolicy(await signTrustPolicy(json, authority), authority.keyId);
}

