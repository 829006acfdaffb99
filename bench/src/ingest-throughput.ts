/**
 * Ingest throughput against the raw P-256 verify limit (issue #11 acceptance): sustained readings/s through real
 * ingest (`stele ingest run` as a child process: mosquitto, signature check, chain check, store, signed `stored`
 * confirmations, batches sealed, anchored on its embedded anvil chain), on LevelDB and on PostgreSQL, next to the
 * raw WebCrypto P-256 verify rate measured in the same run with the same number in flight.
 *
 *   npm run bench -- ingest-throughput [--store level,postgres] [--workers 1,2] [--devices 32] [--readings 20000]
 *                                      [--warmup 10000]
 *                                      [--window 256] [--in-flight 64] [--profile DIR] [--skip-ceiling] [--pin]
 *                                      [--node-flags "..."] [--write]
 *
 * Setup (not timed): a broker (mosquitto on a free port, aedes when not installed), ingest with its embedded chain,
 * `devices` enrolled gateways and `warmup` + `readings` statements signed in advance (node:crypto, spread over the
 * devices).
 * Warm-up, not timed: the first `warmup` readings (spread over the devices) published as below until all are
 * confirmed, so that the timed readings meet a service that has run a while (its code optimised by V8: a cold
 * ingest spends a tenth of its core compiling during the first tens of thousands of readings).
 * Timed: every gateway publishes its chain at QoS 1 with at most `window` readings not yet confirmed by ingest
 * (what edge-agent's Publisher does; mosquitto's max_queued_messages raised so that nothing is dropped) until ingest's signed `stored` confirmation reaches its last seq:
 *  - stored/s, sustained: readings confirmed between 10 % and 90 % of the total over that time (verified, chained,
 *    stored and confirmed);
 *  - anchored/s: every reading from the first publish until POST /flush returns (every batch sealed, signed and
 *    final on the chain).
 * Raw limit: WebCrypto `subtle.verify` (ECDSA P-256, SHA-256, key imported once, the API ingest uses through
 * core/src/ecdsa.ts) over a signed 200-byte message with `in-flight` verifications outstanding, for 2 s before and
 * after each store's run; the table gives the mean of those. Ingest runs with `--verify-in-flight` set to the same.
 * `--workers 1,2`: each PostgreSQL run once per worker count (LevelDB: 1 only, it is one process's store). Two
 * workers are two `stele ingest run --share` processes on one MQTT 5 shared subscription, one PostgreSQL store, one
 * ingest key and one anvil chain with the contract deployed once (as test/e2e/workers.test.ts runs them).
 * First, unless `--skip-ceiling`: the setup's own ceiling (runCeiling), a consumer that only receives, decodes and
 * verifies, fed by the same gateways through the same broker on the same machine.
 * `--pin` (Linux, taskset): each run's workers on CPUs of their own (one worker: the last CPU), this process (the
 * gateways), mosquitto, the chain and PostgreSQL's server processes on the others, and the raw loop moved to
 * the workers' CPUs while it runs: the raw rate is that of the cores the worker had, and the worker's rate is not what
 * the load generator left it. A run with no CPU left for the load (two workers on two CPUs) is not pinned.
 * `--node-flags "..."`: node options for every ingest process; by default those of ingest's systemd unit
 * (ingest/systemd/stele-ingest.service), so that the bench runs ingest as it ships (`--node-flags=` for none).
 * `--profile DIR` runs ingest under `node --cpu-prof --cpu-prof-dir DIR` (open the .cpuprofile in Chrome DevTools).
 * `--write` replaces the "Ingest throughput" section of docs/BENCHMARKS.md.
 * PostgreSQL: STELE_TEST_POSTGRES (default postgres://stele:stele@127.0.0.1:5432/postgres, a role with CREATEDB); a
 * database with a random name is created and dropped.
 */
import { webcrypto } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import { encodeReading, GENESIS_PREV, readingDigest, toHex, type Signer } from '@stele/core';
import { parseConfirmation, signStatement } from '@stele/core/cose';
import { encodeStatementMessage } from '@stele/core/wire';
import { makeEnrolmentRecord } from '@stele/device';
import { ANVIL_DEV_PRIVATE_KEY, startAnvil } from '@stele/ingest/anchor';
import { runIngest } from '@stele/ingest/cli';
import { createTestDatabase, postgresAvailable, readingAt } from '@stele/ingest/testing';
import { freePort, INGEST_SCRIPT, sleep, spawnChild, spawnTs, startMosquitto, type Child } from '../../test/e2e/chaos/processes.ts';
import { INGEST_UNIT_FILE, unitNodeFlags } from '../../edge-agent/scripts/unit-flags.ts';
import { hasMosquitto, machineLine, startStack, type BenchStack } from './gateway-stack.ts';
import { nodeSigner, procComm, procCpuSeconds, USER_HZ, writeMarkdownSection } from './harness.ts';
import { allCpus, CPUS, cpuSplit, onCpus, pin, pinByName, type CpuSplit } from './pin.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const say = (s: string) => process.stderr.write(`${s}\n`);
/** A gateway sends again from its confirmed mark after this long without a confirmation (edge-agent's default). */
const RESEND_MS = 10_000;

/** WebCrypto P-256 verifications per second with `inFlight` outstanding, for `ms`. */
/** A raw verify loop's rate, and the CPU it took per verify (this process, all its threads). */
export interface RawRate {
  perSec: number;
  cpuUsPerVerify: number;
}

export async function rawVerifyRate(inFlight: number, ms: number): Promise<RawRate> {
  const subtle = globalThis.crypto?.subtle ?? webcrypto.subtle;
  const signer = nodeSigner();
  const message = new Uint8Array(200).map((_, i) => (i * 7 + 3) & 0xff);
  const signature = new Uint8Array(await signer.sign(message));
  const key = await subtle.importKey('raw', new Uint8Array(signer.publicKey), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
  const algo = { name: 'ECDSA', hash: 'SHA-256' };
  let n = 0;
  const until = performance.now() + ms;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < until) {
        if (!(await subtle.verify(algo, key, signature, message))) throw new Error('raw verify failed');
        n++;
      }
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  return { perSec: n / ((performance.now() - t0) / 1000), cpuUsPerVerify: (cpu.user + cpu.system) / n };
}

/** The raw rate on the workers' CPUs when the run is pinned (this process moved there for it), else where it runs. */
function rawOn(split: CpuSplit | undefined, inFlight: number): Promise<RawRate> {
  return split === undefined ? rawVerifyRate(inFlight, 2000) : onCpus(split.worker, split.load, () => rawVerifyRate(inFlight, 2000));
}

/**
 * With `--pin`, the CPUs of a run of `workers`: this process (and the broker, the chain and the workers it starts
 * next) moved to the load's CPUs, or to every CPU when the workers would leave the load none (then not pinned).
 */
function pinRun(o: { pin: boolean }, workers: number): CpuSplit | undefined {
  if (!o.pin) return undefined;
  const split = cpuSplit(workers);
  pin(process.pid, split?.load ?? allCpus());
  if (split === undefined) say(`--pin: ${workers} worker(s) on ${CPUS} CPUs leave none for the load: this run is not pinned`);
  return split;
}

interface Gateway {
  id: string;
  envelopes: Uint8Array[];
  acked: number;
  /** Readings published (from the mark again after a resend). */
  sent: number;
  client: MqttClient;
  /** Resolved (and replaced) on each confirmation that moves `acked`. */
  wake: () => void;
}

/** The ingest side of a run: one worker (startStack) or several sharing one PostgreSQL store and chain. */
interface Cluster {
  broker: string;
  mqttUrl: string;
  /** Each worker's HTTP API and data directory (its admin token). */
  workers: { api: string; dataDir: string; child: Child }[];
  enrol(signer: Signer, deviceId: string): Promise<void>;
  stop(): Promise<void>;
}

function oneWorker(stack: BenchStack, dir: string): Cluster {
  return { broker: stack.broker, mqttUrl: stack.mqttUrl, workers: [{ api: stack.api, dataDir: join(dir, 'ingest'), child: stack.ingest }], enrol: (s, id) => stack.enrol(s, id), stop: () => stack.stop() };
}

/** `n` workers on mosquitto's shared subscription, one PostgreSQL store (`storeArgs`), one ingest key, one anvil. */
async function startWorkers(dir: string, n: number, storeArgs: string[], mosquittoConfig: string[], nodeArgs: string[] | undefined): Promise<Cluster> {
  const broker = await startMosquitto(dir, mosquittoConfig);
  const anvil = await startAnvil({ stateDir: join(dir, 'anvil') });
  const stops: (() => Promise<unknown>)[] = [() => anvil.stop(), () => broker.stop()];
  try {
    const dirs = Array.from({ length: n }, (_, i) => join(dir, `w${i + 1}`));
    const key = join(dir, 'ingest.pem');
    const anchorKey = join(dir, 'anchor.key');
    await writeFile(anchorKey, `${ANVIL_DEV_PRIVATE_KEY}\n`, { mode: 0o600 });
    const quiet = { stdout: { write: () => true }, stderr: { write: (c: string) => process.stderr.write(c) } };
    for (const [i, d] of dirs.entries()) {
      if ((await runIngest(['init', '--data', d, '--key', i === 0 ? key : join(dir, `unused-${i}.pem`)], quiet)) !== 0) throw new Error(`ingest init ${d} failed`);
    }
    if ((await runIngest(['deploy-contract', '--rpc', anvil.rpcUrl, '--anchor-key-file', anchorKey, '--data', dirs[0]!], quiet)) !== 0) throw new Error('deploy-contract failed');
    for (const d of dirs.slice(1)) await copyFile(join(dirs[0]!, 'anchor-contract.json'), join(d, 'anchor-contract.json'));
    const workers: Cluster['workers'] = [];
    for (const d of dirs) {
      const port = await freePort();
      const args = ['run', '--mqtt', broker.url, '--data', d, '--key', key, '--rpc', anvil.rpcUrl, '--anchor-key-file', anchorKey, ...storeArgs, '--share', 'stele-bench', '--batch-ms', '1000', '--health-port', String(port), '--log-level', 'warn'];
      const child = nodeArgs === undefined ? spawnTs(INGEST_SCRIPT, args) : spawnChild(process.execPath, [...nodeArgs, '--import', 'tsx', INGEST_SCRIPT, ...args]);
      stops.unshift(() => child.kill('SIGTERM'));
      workers.push({ api: `http://127.0.0.1:${port}`, dataDir: d, child });
    }
    for (const w of workers) {
      const until = Date.now() + 90_000;
      while (!(await fetch(`${w.api}/health`).then((r) => r.ok, () => false))) {
        if (w.child.proc.exitCode !== null) throw new Error(`ingest worker exited: ${w.child.errTail.join(' | ')}`);
        if (Date.now() > until) throw new Error('ingest worker did not come up');
        await sleep(200);
      }
    }
    return {
      broker: 'mosquitto',
      mqttUrl: broker.url,
      workers,
      async enrol(signer, deviceId) {
        const token = (await readFile(join(workers[0]!.dataDir, 'admin-token'), 'utf8')).trim();
        const res = await fetch(`${workers[0]!.api}/enrol`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body: JSON.stringify(makeEnrolmentRecord(signer, deviceId, 'bench')),
        });
        if (!res.ok) throw new Error(`enrol failed: ${await res.text()}`);
      },
      async stop() {
        for (const f of stops) await f();
      },
    };
  } catch (err) {
    for (const f of stops) await f();
    throw err;
  }
}

/** `devices` signed chains of `total` readings in all (setup, not timed), each device enrolled with `enrol`. */
async function signChains(devices: number, total: number, tag: string, enrol: (signer: Signer, deviceId: string) => Promise<void>): Promise<{ id: string; signer: Signer; envelopes: Uint8Array[] }[]> {
  const per = Math.ceil(total / devices);
  const out: { id: string; signer: Signer; envelopes: Uint8Array[] }[] = [];
  for (let d = 0; d < devices; d++) {
    const id = `gw-tp-${tag}-${d}`;
    const signer = nodeSigner();
    await enrol(signer, id);
    const envelopes: Uint8Array[] = [];
    let prev = GENESIS_PREV;
    for (let seq = 1; seq <= per; seq++) {
      const reading = encodeReading(readingAt(id, seq, prev));
      const statement = await signStatement(reading, signer);
      envelopes.push(encodeStatementMessage({ statement, reading }));
      prev = readingDigest(reading);
    }
    out.push({ id, signer, envelopes });
  }
  return out;
}

async function prepare(stack: Cluster, devices: number, total: number, tag: string): Promise<Gateway[]> {
  const out: Gateway[] = [];
  for (const { id, envelopes } of await signChains(devices, total, tag, (s, id) => stack.enrol(s, id))) {
    const client = await mqtt.connectAsync(stack.mqttUrl, { clientId: `${id}-${Math.random().toString(16).slice(2)}`, reconnectPeriod: 0 });
    const g: Gateway = { id, envelopes, acked: 0, sent: 0, client, wake: () => {} };
    client.on('message', (topic, payload) => {
      try {
        const c = parseConfirmation(new Uint8Array(payload));
        if (c.type === 'stored' && c.upTo > g.acked) {
          g.acked = c.upTo;
          g.wake();
        }
      } catch {
        // not a confirmation: not counted
      }
    });
    await client.subscribeAsync(`stele/v1/${id}/acks`, { qos: 1 });
    out.push(g);
  }
  return out;
}

/**
 * The setup's own ceiling, measured like a store's run: the same broker, gateways and readings, but the consumer
 * (bench/src/ceiling-consumer.ts, a child process as ingest is) only receives, decodes and verifies at the same
 * number in flight. The gateways keep at most `window` readings each not yet verified (counted by the consumer).
 */
async function runCeiling(o: RunOptions): Promise<RunResult> {
  const dir = await mkdtemp(join(tmpdir(), 'stele-bench-tp-ceiling-'));
  const split = pinRun(o, 1);
  const broker = await startMosquitto(dir, ['max_queued_messages 100000']);
  const clients: MqttClient[] = [];
  let consumer: Child | undefined;
  try {
    say(`ceiling: signing ${o.warmup} + ${o.readings} readings for ${o.devices} gateways (mosquitto)`);
    const chains = await signChains(o.devices, o.readings + o.warmup, 'ceiling', async () => {});
    await writeFile(join(dir, 'keys.json'), JSON.stringify(Object.fromEntries(chains.map((c) => [c.id, toHex(c.signer.publicKey)]))));
    // with ingest's node flags: the same runtime settings as the worker it is the ceiling of
    const child = spawnChild(process.execPath, [...o.nodeFlags, '--import', 'tsx', join(repoRoot, 'bench', 'src', 'ceiling-consumer.ts'), broker.url, join(dir, 'keys.json'), String(o.inFlight)]);
    consumer = child;
    if (split !== undefined) pin(child.proc.pid!, split.worker);
    const verifiedNow = () => {
      const [v, f] = (child.lines.at(-1) ?? '0 0').split(' ').map(Number);
      if (f !== 0) throw new Error(`the ceiling consumer failed ${f} checks`);
      return v ?? 0;
    };
    const until = Date.now() + 60_000;
    while (!child.lines.includes('ready')) {
      if (child.proc.exitCode !== null || Date.now() > until) throw new Error(`ceiling consumer did not start: ${child.errTail.join(' | ')}`);
      await sleep(50);
    }
    for (const c of chains) clients.push(await mqtt.connectAsync(broker.url, { clientId: `${c.id}-${Math.random().toString(16).slice(2)}`, reconnectPeriod: 0 }));
    const deadline = Date.now() + 600_000;
    const sent = chains.map(() => 0);
    // publishes each gateway's readings up to `per` (at most `window` ahead of its share of what is verified) until
    // `upTo` in all are verified; `see` is told the count every turn
    const feed = async (per: number, upTo: number, see: (done: number) => void) => {
      for (;;) {
        const done = verifiedNow();
        see(done);
        if (done >= upTo) return;
        if (Date.now() > deadline) throw new Error(`ceiling: ${done} of ${upTo} verified after 10 minutes`);
        // each gateway's share of what is verified so far frees room in its window
        const perGateway = done / chains.length;
        for (const [i, c] of chains.entries()) {
          for (; sent[i]! < Math.min(per, c.envelopes.length) && sent[i]! - perGateway < o.window; sent[i]!++) {
            const e = c.envelopes[sent[i]!]!;
            clients[i]!.publish(`stele/v1/${c.id}/statements`, Buffer.from(e.buffer, e.byteOffset, e.byteLength), { qos: 1 });
          }
        }
        await sleep(5);
      }
    };
    // warm-up, not timed, as for the stores
    const warmPer = Math.ceil(o.warmup / o.devices);
    if (warmPer > 0) await feed(warmPer, warmPer * chains.length, () => {});
    const warmed = verifiedNow();
    const total = chains.reduce((n, c) => n + c.envelopes.length, 0) - warmed;
    const rawBefore = await rawOn(split, o.inFlight);
    say(`ceiling: raw WebCrypto P-256 verify ${Math.round(rawBefore.perSec)}/s (${o.inFlight} in flight); publishing`);
    const readCpu = cpuMeter([child.proc.pid!]);
    const rate = sustainedRate(total, () => cpuMeter([child.proc.pid!]));
    const t0 = performance.now();
    await feed(Number.MAX_SAFE_INTEGER, warmed + total, (done) => rate.see(done - warmed));
    const wall = (performance.now() - t0) / 1000;
    const cpu = readCpu(wall);
    const load = loadavg().map((x) => x.toFixed(2)).join(' ');
    const rawAfter = await rawOn(split, o.inFlight);
    const storedPerSec = rate.perSec(wall);
    say(
      `ceiling: ${total} readings: verified ${Math.round(storedPerSec)}/s sustained (all after ${wall.toFixed(1)} s); raw after ${Math.round(rawAfter.perSec)}/s; ` +
        `CPU cores busy: machine ${cpu.machine.toFixed(2)}, consumer ${cpu.ingest.toFixed(2)} (main thread ${cpu.ingestMain.toFixed(2)}), bench ${cpu.bench.toFixed(2)}`,
    );
    return { store: 'none (receive, decode, verify only: the ceiling)', workers: 1, readings: total, storedPerSec, anchoredPerSec: Number.NaN, rawBefore, rawAfter, load, cpu, span: rate.span(), resent: 0, ...(split === undefined ? {} : { cpus: split }) };
  } finally {
    for (const c of clients) await c.endAsync().catch(() => {});
    await consumer?.kill('SIGTERM');
    await broker.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * CPU seconds (user + system) of a process from /proc/PID/stat (of its main thread alone with `mainThread`), or of
 * the whole machine from /proc/stat.
 */
function cpuSeconds(pid?: number, mainThread = false): number {
  if (pid !== undefined) return procCpuSeconds(pid, mainThread ? pid : undefined);
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return (cpu.reduce((a, b) => a + b, 0) - cpu[3]! - cpu[4]!) / USER_HZ;
}

/** CPU seconds of every process named `comm` now (PostgreSQL's postmaster and backends are all `postgres`). */
function cpuByName(comm: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || procComm(Number(entry)) !== comm) continue;
    try {
      out.set(Number(entry), procCpuSeconds(Number(entry)));
    } catch {
      // the process ended meanwhile
    }
  }
  return out;
}

/**
 * Cores busy from now until the returned function is called with the seconds elapsed: the whole machine, the
 * processes `pids` (summed; `ingestMain` the busiest main thread of them), the store's server (the processes named
 * `storeComm`, those started meanwhile counted whole) and this process (the load generator).
 */
function cpuMeter(pids: readonly number[], storeComm?: string): (wallS: number) => RunResult['cpu'] {
  const store0 = storeComm === undefined ? new Map<number, number>() : cpuByName(storeComm);
  const machine0 = cpuSeconds();
  const process0 = pids.map((pid) => cpuSeconds(pid));
  const main0 = pids.map((pid) => cpuSeconds(pid, true));
  const bench0 = process.cpuUsage();
  return (wallS) => {
    const u = process.cpuUsage(bench0);
    let store = 0;
    if (storeComm !== undefined) for (const [pid, s] of cpuByName(storeComm)) store += s - (store0.get(pid) ?? 0);
    return {
      machine: (cpuSeconds() - machine0) / wallS,
      ingest: pids.reduce((n, pid, i) => n + cpuSeconds(pid) - process0[i]!, 0) / wallS,
      ingestMain: Math.max(...pids.map((pid, i) => cpuSeconds(pid, true) - main0[i]!)) / wallS,
      bench: (u.user + u.system) / 1e6 / wallS,
      store: store / wallS,
      wallS,
    };
  };
}

/**
 * The sustained rate: what was done between 10 % and 90 % of `total`, over that time (else all over `wallS`); and
 * the CPU over that same span (`meter` started at 10 % and read at 90 %), with the readings done in it.
 */
function sustainedRate(
  total: number,
  meter: () => (wallS: number) => RunResult['cpu'],
): { see(done: number): void; perSec(wallS: number): number; span(): RunResult['span'] } {
  let t10: number | undefined;
  let t90: number | undefined;
  let a10 = 0;
  let a90 = 0;
  let read: ((wallS: number) => RunResult['cpu']) | undefined;
  let span: RunResult['span'];
  return {
    see(done) {
      if (t10 === undefined && done >= total * 0.1) {
        [t10, a10] = [performance.now(), done];
        read = meter();
      }
      if (t90 === undefined && done >= total * 0.9) {
        [t90, a90] = [performance.now(), done];
        if (read !== undefined && t10 !== undefined && t90 > t10 && a90 > a10) span = { cpu: read((t90 - t10) / 1000), readings: a90 - a10 };
      }
    },
    perSec(wallS) {
      return t10 !== undefined && t90 !== undefined && t90 > t10 ? (a90 - a10) / ((t90 - t10) / 1000) : total / wallS;
    },
    span: () => span,
  };
}

interface RunResult {
  store: string;
  workers: number;
  readings: number;
  storedPerSec: number;
  anchoredPerSec: number;
  rawBefore: RawRate;
  rawAfter: RawRate;
  load: string;
  resent: number;
  /**
   * Over the timed publishing: cores the whole machine was busy (of availableParallelism), ingest's (its busiest main
   * thread's) and this process's; `wallS` long.
   */
  cpu: { machine: number; ingest: number; ingestMain: number; bench: number; store: number; wallS: number };
  /** The same over the span the sustained rate is of (10 to 90 %), and the readings done in it. */
  span?: { cpu: RunResult['cpu']; readings: number } | undefined;
  /** With `--pin`: the CPUs the workers (and the raw loop) had, and the load's. */
  cpus?: CpuSplit;
}

interface RunOptions {
  devices: number;
  readings: number;
  window: number;
  inFlight: number;
  profile?: string;
  /** Readings published and confirmed before the timed ones (spread over the devices). */
  warmup: number;
  pin: boolean;
  nodeFlags: string[];
}

async function runOne(kind: 'level' | 'postgres', workers: number, o: RunOptions): Promise<RunResult | undefined> {
  const dir = await mkdtemp(join(tmpdir(), `stele-bench-tp-${kind}-`));
  let db: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
  // ingest verifies with as many checks in flight as the raw loop (the acceptance compares them at the same number)
  const ingestArgs: string[] = ['--verify-in-flight', String(o.inFlight)];
  if (kind === 'postgres') {
    const ok = await postgresAvailable();
    if (!ok.ok) {
      say(`PostgreSQL skipped: ${ok.reason}`);
      return undefined;
    }
    db = await createTestDatabase();
    const u = new URL(db.url);
    const password = decodeURIComponent(u.password);
    u.password = '';
    const pwFile = join(dir, 'pg-password');
    await writeFile(pwFile, password, { mode: 0o600 });
    ingestArgs.push('--store', u.toString(), '--store-password-file', pwFile);
  }
  // room for every gateway's window in ingest's broker queue (the default 1000 drops beyond, and this load sends no resends)
  const mosquittoConfig = ['max_queued_messages 100000'];
  const nodeArgs = o.profile === undefined && o.nodeFlags.length === 0 ? undefined : [...o.nodeFlags, ...(o.profile === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', o.profile])];
  const split = pinRun(o, workers);
  const stack =
    workers === 1
      ? oneWorker(await startStack(dir, { ingestArgs, mosquittoConfig, ...(nodeArgs === undefined ? {} : { nodeArgs }) }), dir)
      : await startWorkers(dir, workers, ingestArgs, mosquittoConfig, nodeArgs);
  let pgPinned = false;
  try {
    if (split !== undefined) {
      for (const w of stack.workers) pin(w.child.proc.pid!, split.worker);
      // the store's server is shared by the workers, as the broker is (in production a host of its own): with the
      // load, off the workers' CPUs (its CPU is still counted in the store's cost per reading)
      if (kind === 'postgres') pgPinned = pinByName('postgres', split.load).length > 0;
    }
    say(`${kind}: enrolling ${o.devices} gateways and signing ${o.warmup} + ${o.readings} readings (${stack.broker})`);
    const gws = await prepare(stack, o.devices, o.readings + o.warmup, kind);
    // Each gateway keeps at most `window` readings sent and not confirmed by ingest and, when no confirmation moves
    // its mark for RESEND_MS, sends again from the mark (as edge-agent's Publisher: ingest may leave a statement to
    // the gateway's resend, e.g. a group given up after commit conflicts between workers).
    let resent = 0;
    const acked = () => gws.reduce((n, g) => n + g.acked, 0);
    const deadline = Date.now() + 600_000;
    const publishUpTo = (end: (g: Gateway) => number) =>
      Promise.all(
        gws.map(async (g) => {
          const topic = `stele/v1/${g.id}/statements`;
          while (g.acked < end(g)) {
            if (Date.now() > deadline) throw new Error(`not all confirmed after 10 minutes: ${acked()} of ${o.readings + o.warmup}`);
            for (const w of stack.workers) if (w.child.proc.exitCode !== null) throw new Error(`ingest exited: ${w.child.errTail.join(' | ')}`);
            for (; g.sent < end(g) && g.sent - g.acked < o.window; g.sent++) {
              const e = g.envelopes[g.sent]!;
              g.client.publish(topic, Buffer.from(e.buffer, e.byteOffset, e.byteLength), { qos: 1 });
            }
            const moved = await Promise.race([new Promise<boolean>((r) => (g.wake = () => r(true))), sleep(RESEND_MS).then(() => false)]);
            if (!moved && g.acked < end(g)) {
              resent += g.sent - g.acked;
              g.sent = g.acked;
            }
          }
        }),
      );
    // warm-up, not timed: each gateway's first readings, until all are confirmed (ingest's code optimised, its
    // store's files and caches in use, as in a service that has run a while)
    const warmPer = Math.ceil(o.warmup / o.devices);
    if (warmPer > 0) {
      say(`${kind} x${workers}: warming up with ${warmPer * gws.length} readings`);
      await publishUpTo(() => warmPer);
    }
    const warmed = acked();
    const total = gws.reduce((n, g) => n + g.envelopes.length, 0) - warmed;
    const rawBefore = await rawOn(split, o.inFlight);
    say(`${kind} x${workers}: raw WebCrypto P-256 verify ${Math.round(rawBefore.perSec)}/s (${o.inFlight} in flight); publishing`);
    const meter = () => cpuMeter(stack.workers.map((w) => w.child.proc.pid!), kind === 'postgres' ? 'postgres' : undefined);
    const readCpu = meter();
    const rate = sustainedRate(total, meter);
    const t0 = performance.now();
    const progress = setInterval(() => rate.see(acked() - warmed), 20);
    await publishUpTo((g) => g.envelopes.length);
    for (const w of stack.workers) if (w.child.proc.exitCode !== null) throw new Error(`ingest exited: ${w.child.errTail.join(' | ')}`);
    const tStored = performance.now();
    clearInterval(progress);
    const wall = (tStored - t0) / 1000;
    const cpu = readCpu(wall);
    // Every worker cuts and anchors what it holds (the store's pending leaves are shared: one of them seals them).
    for (const w of stack.workers) {
      const token = (await readFile(join(w.dataDir, 'admin-token'), 'utf8')).trim();
      const res = await fetch(`${w.api}/flush`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
      if (!res.ok) throw new Error(`flush failed: ${await res.text()}`);
    }
    // Each flush returned with the batches its worker cut final on chain; nothing may be left pending in the store
    // (each worker's /health reads the store's count after its flush) nor unanchored in any worker.
    const tAnchored = performance.now();
    type Health = { pending: number; batches: number; anchoring: { unanchored: number } };
    const healths = await Promise.all(stack.workers.map(async (w) => (await (await fetch(`${w.api}/health`)).json()) as Health));
    for (const h of healths) if (h.pending !== 0 || h.anchoring.unanchored !== 0) throw new Error(`not all anchored: ${JSON.stringify(h)}`);
    const health = { batches: Math.max(...healths.map((h) => h.batches)) };
    const load = loadavg().map((x) => x.toFixed(2)).join(' ');
    const rawAfter = await rawOn(split, o.inFlight);
    const storedPerSec = rate.perSec(wall);
    const anchoredPerSec = total / ((tAnchored - t0) / 1000);
    say(
      `${kind}: ${total} readings: stored ${Math.round(storedPerSec)}/s sustained (all confirmed after ${((tStored - t0) / 1000).toFixed(1)} s), ` +
        `anchored ${Math.round(anchoredPerSec)}/s (${((tAnchored - t0) / 1000).toFixed(1)} s, ${health.batches} batches); raw after ${Math.round(rawAfter.perSec)}/s; ${resent} resent; load ${load}; CPU cores busy: machine ${cpu.machine.toFixed(2)}, ingest ${cpu.ingest.toFixed(2)} (main thread ${cpu.ingestMain.toFixed(2)}), bench ${cpu.bench.toFixed(2)}`,
    );
    for (const g of gws) await g.client.endAsync();
    return { store: kind === 'level' ? 'LevelDB' : 'PostgreSQL 15', workers, readings: total, storedPerSec, anchoredPerSec, rawBefore, rawAfter, load, cpu, span: rate.span(), resent, ...(split === undefined ? {} : { cpus: split }) };
  } finally {
    if (pgPinned && split !== undefined) pinByName('postgres', split.all);
    await stack.stop();
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  }
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      store: { type: 'string', default: 'level,postgres' },
      workers: { type: 'string', default: '1,2' },
      devices: { type: 'string', default: '32' },
      readings: { type: 'string', default: '20000' },
      warmup: { type: 'string', default: '10000' },
      window: { type: 'string', default: '256' },
      'in-flight': { type: 'string', default: '64' },
      profile: { type: 'string' },
      'skip-ceiling': { type: 'boolean', default: false },
      pin: { type: 'boolean', default: false },
      'node-flags': { type: 'string' },
      write: { type: 'boolean', default: false },
    },
  });
  const o: RunOptions = {
    pin: values.pin,
    nodeFlags: values['node-flags'] === undefined ? unitNodeFlags(readFileSync(INGEST_UNIT_FILE, 'utf8'), 'stele-ingest.service') : values['node-flags'].split(' ').filter((x) => x !== ''),
    devices: Number(values.devices),
    readings: Number(values.readings),
    warmup: Number(values.warmup),
    window: Number(values.window),
    inFlight: Number(values['in-flight']),
    ...(values.profile === undefined ? {} : { profile: resolve(values.profile) }),
  };
  for (const [k, v] of Object.entries(o)) if (typeof v === 'number' && !(Number.isSafeInteger(v) && (v > 0 || (k === 'warmup' && v === 0)))) throw new RangeError(`--${k} must be a positive integer`);
  const machine = await machineLine();
  const results: RunResult[] = [];
  const counts = values.workers.split(',').map(Number);
  if (!counts.every((n) => Number.isSafeInteger(n) && n >= 1 && n <= 8)) throw new RangeError('--workers takes worker counts from 1 to 8, e.g. 1,2');
  if (!values['skip-ceiling'] && hasMosquitto()) results.push(await runCeiling(o));
  for (const kind of values.store.split(',')) {
    if (kind !== 'level' && kind !== 'postgres') throw new RangeError('--store takes level and/or postgres');
    // LevelDB is one process's store: one worker only
    for (const n of kind === 'level' ? [1] : counts) {
      const r = await runOne(kind, n, o);
      if (r !== undefined) results.push(r);
    }
  }
  const rows = results.map((r) => {
    const raw = (r.rawBefore.perSec + r.rawAfter.perSec) / 2;
    const rawUs = (r.rawBefore.cpuUsPerVerify + r.rawAfter.cpuUsPerVerify) / 2;
    const anchored = Number.isNaN(r.anchoredPerSec) ? '-' : String(Math.round(r.anchoredPerSec));
    // CPU per reading over the span the sustained rate is of (10 to 90 %; the whole publishing when there is none)
    const c = r.span?.cpu ?? r.cpu;
    const perReading = (cores: number) => (cores * c.wallS * 1e6) / (r.span?.readings ?? r.readings);
    const ingestUs = perReading(c.ingest + c.store);
    const mainUs = r.workers === 1 ? perReading(c.ingestMain).toFixed(0) : '-';
    return `| ${r.store} | ${r.workers} | ${r.readings} | ${Math.round(r.storedPerSec)} | ${anchored} | ${Math.round(raw)} | ${Math.round((100 * r.storedPerSec) / raw)} % | ${ingestUs.toFixed(0)} (${mainUs}) / ${rawUs.toFixed(0)} | ${Math.round((100 * rawUs) / ingestUs)} % | ${c.machine.toFixed(2)} / ${c.ingest.toFixed(2)} (${c.ingestMain.toFixed(2)}) / ${c.store.toFixed(2)} / ${c.bench.toFixed(2)} | ${r.cpus === undefined ? 'all, shared' : `${r.cpus.worker} / ${r.cpus.load}`} | ${r.resent} | ${r.load} |`;
  });
  const body = [
    `- Machine: ${machine}`,
    `- Date: ${new Date().toISOString().slice(0, 10)}`,
    `- Command: \`${['npm run bench -- ingest-throughput', ...argv].join(' ')}\``,
    `- Load: ${o.devices} gateways, ${o.readings} signed readings in all (timed, after ${o.warmup} published and confirmed to warm up), each gateway with at most ${o.window} readings sent and not yet confirmed by ingest; broker ${hasMosquitto() ? 'mosquitto' : 'aedes'}; one worker: ingest a child process (\`stele ingest run --embedded-chain\`); several: \`stele ingest run --share\` processes on one PostgreSQL store and one anvil; batches every 1 s or 4096 leaves.`,
    `- Raw limit: WebCrypto P-256 verify, key imported once, ${o.inFlight} in flight, 2 s before and 2 s after each store's run in the same process (mean)${o.pin ? ", moved to the workers' CPUs while it runs" : ''}; ingest runs with \`--verify-in-flight ${o.inFlight}\` and node ${o.nodeFlags.length === 0 ? 'with no flags' : `\`${o.nodeFlags.join(' ')}\``}.`,
    o.pin
      ? "- CPUs (`--pin`, the column \"CPUs\"): the workers on the last CPUs; this process (the load generator), mosquitto, anvil and PostgreSQL's server processes (shared by the workers, as the broker is) on the others; a run whose workers would leave the load no CPU is not pinned. The raw rate is then that of the CPUs the workers had."
      : '- CPUs: not pinned; ingest, the load generator, mosquitto and the store server share the machine.',
    '- CPU per reading: CPU time (user + system, all threads, from /proc) of ingest, and for PostgreSQL of every `postgres` process (the server is part of what that store costs), over the span the sustained rate is of (from 10 % to 90 % of the readings confirmed), per reading confirmed in it; of the raw loop, per verify (this process over its 2 s). Their ratio is the rate one worker would reach against the raw rate with the same cores as the raw loop, whatever else runs on the machine; the main-thread figure is what caps one worker on a larger machine (one core: 1,000,000 / that many readings/s).',
    '- Ceiling (first row, unless `--skip-ceiling`): the same broker, gateways and readings into a consumer that only receives, decodes and verifies (bench/src/ceiling-consumer.ts, WebCrypto at the same number in flight): what this machine leaves for verification once the load generator and the broker run on it too.',
    '',
    '| store | workers | readings | stored/s (sustained, 10-90 %) | anchored/s (first publish to every batch final) | raw P-256 verify/s | stored / raw | CPU per reading, us: ingest and its store server (main thread of ingest) / raw verify | raw verify us / ingest us (same-CPU ratio) | CPU cores busy, 10-90 %: machine / ingest (its main thread) / store server / load generator | CPUs: workers / load | resent | load average after |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
  process.stdout.write(`${body}\n`);
  if (values.write) {
    const path = await writeMarkdownSection(join(repoRoot, 'docs', 'BENCHMARKS.md'), '## Ingest throughput (issue #11)', `${body}\n`);
    say(`wrote ${path}`);
  }
}
