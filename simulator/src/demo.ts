/**
 * `stele demo`: the whole chain on one machine, with nothing installed but `npm ci`.
 *
 *   simulated CEMS data logger --HJ 212 over a serial link (serialport mock binding)--> gateway driver
 *   --> reading, signed with the gateway key --> LevelDB outbox --> MQTT QoS 1 (aedes, in process)
 *   --> ingest: verify, chain check, store, batch (RFC 9162), receipt, anchor (anvil, child process)
 *   --> evidence bundle --> the verifier the CLI uses.
 *
 * Everything it keeps lives under `--out DIR`: keys, the gateway outbox, the ingest store and the chain state,
 * so a second run with the same DIR continues the device's hash chain and keeps earlier anchors verifiable.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join, resolve } from 'node:path';
import { parseCommand, usageError } from '@stele/command';
import { Aedes } from 'aedes';
import { SerialPortMock } from 'serialport';
import { completePolicyDraft, draftTrustPolicy, formatFingerprint, loadTrustPolicy, parseBundle, readAnchor, signTrustPolicy, toBase64Url, toHex, verifyBundle, type Verdict } from '@stele/core';
import { loadOrCreateSoftwareSigner, makeEnrolmentRecord } from '@stele/device';
import { loadConfig, startGateway, type RunningGateway } from '@stele/edge-agent';
import { MockSerialLine } from '@stele/hardware';
import { ANVIL_DEV_PRIVATE_KEY, IngestService, aedesAccessHooks, BrokerAccess, connectEvmAnchorer, limitServerSocket, startAnvil } from '@stele/ingest';
import { AlertBook, loadRuleFiles, startIngestHttp } from '@stele/ingest';
import { runEvidence } from '@stele/ingest/cli';
import { formatVerdict } from '@stele/verifier';
import { runVerify } from '@stele/verifier/cli';
import { EPISODE_DEVICES, episodeRuleFiles, runEpisodes } from './episodes.ts';
import { hj212Instrument, softwareGatewayYaml } from './gateway-yaml.ts';
import { CemsSimulator } from './instruments/cems.ts';

export interface DemoIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

const HELP = `usage: stele demo [--seconds N] [--out DIR] [--interval-ms MS] [--batch-ms MS] [--chain-port PORT] [--serve]

Runs a simulated CEMS data logger, a gateway, an MQTT broker, ingest and a local EVM chain (anvil) on this
machine for N seconds, then writes DIR/summary.json and an evidence bundle under DIR/evidence/, verifies it
with the same code as \`stele verify\`, and prints a summary. Then three scripted episodes on gateways configured
from gateway.yaml files (DIR/episodes/*/gateway.yaml: hj212, cold-room, custody-folder) give an emission
exceedance, a cold-chain excursion and a custody break; ingest's rules find them, and each alert's bundle is
written with \`stele evidence\` and checked with \`stele verify --trust\`.

  --seconds N        how long the instrument sends frames (default 30)
  --out DIR          where keys, stores, chain state and results go (default ./demo-out); reuse it to continue
  --interval-ms MS   time between HJ 212 frames (default 1000)
  --batch-ms MS      ingest batch interval (default 5000)
  --chain-port PORT  port of the local chain on 127.0.0.1 (default 18545; recorded in the bundles)
  --serve            keep the chain and ingest running after the summary, until Ctrl-C (to try \`stele verify\`)
`;

const DEMO_SPEC = {
  name: 'stele demo',
  usage: HELP,
  options: {
    seconds: { type: 'string', default: '30' },
    out: { type: 'string', default: 'demo-out' },
    'interval-ms': { type: 'string', default: '1000' },
    'batch-ms': { type: 'string', default: '5000' },
    'chain-port': { type: 'string', default: '18545' },
    serve: { type: 'boolean', default: false },
  },
} as const;

export interface DemoSummary {
  device: string;
  readings: number;
  firstSeq: number;
  lastSeq: number;
  batches: number;
  transactions: { batchId: number; txHash: string; blockNumber: number; root: string; size: number }[];
  chain: { chainId: number; contract: string; rpc: string };
  evidence: string[];
  /** The episodes' alerts: each one's bundle file and the verdict of \`stele verify --trust\` on it. */
  alerts: { kind: string; id: string; device: string; file: string; verdict: Verdict['state'] | 'missing' }[];
  /** The signed trust policy the demo wrote as the authority, and the file with its key fingerprint. */
  trust: { policy: string; fingerprintFile: string; fingerprint: string };
  verdict: Verdict['state'];
  startedAt: string;
  finishedAt: string;
}

export async function runDemo(argv: string[], io: DemoIo): Promise<number> {
  const args = parseCommand(argv, DEMO_SPEC, io);
  if (typeof args === 'number') return args;
  const seconds = Number(args.values.seconds);
  const intervalMs = Number(args.values['interval-ms']);
  const batchMs = Number(args.values['batch-ms']);
  const chainPort = Number(args.values['chain-port']);
  for (const [name, v] of [['seconds', seconds], ['interval-ms', intervalMs], ['batch-ms', batchMs], ['chain-port', chainPort]] as const) {
    if (!Number.isFinite(v) || v <= 0) {
      return usageError(io, DEMO_SPEC, `--${name} must be a positive number`);
    }
  }
  const out = resolve(args.values.out);
  const summary = await demo({ seconds, out, intervalMs, batchMs, chainPort, serve: args.values.serve, io });
  return summary.verdict === 'verified' && summary.alerts.every((a) => a.verdict === 'verified') ? 0 : 1;
}

interface DemoOptions {
  seconds: number;
  out: string;
  intervalMs: number;
  batchMs: number;
  chainPort: number;
  serve: boolean;
  io: DemoIo;
}

const DEVICE_ID = 'gw-demo-0001';

export async function demo(o: DemoOptions): Promise<DemoSummary> {
  const say = (line: string) => o.io.stdout.write(`${line}\n`);
  const startedAt = new Date().toISOString();
  const data = join(o.out, 'data');
  await mkdir(join(o.out, 'evidence'), { recursive: true });
  await mkdir(join(data, 'keys'), { recursive: true });

  const cleanups: (() => Promise<void>)[] = [];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    cleanups.length = 0;
  };
  try {
    // 1. The MQTT broker, in process, with Stele's access policy (docs/broker.md): one user per client, fresh
    // passwords each run (ingest's in a 0600 file, as `--mqtt-password-file` reads it), no anonymous clients,
    // packets over 65 KiB refused at their header.
    const ingestPassword = randomBytes(24).toString('base64url');
    const gatewayPassword = randomBytes(24).toString('base64url');
    const ingestPasswordFile = join(data, 'keys', 'mqtt-ingest.password');
    await writeFile(ingestPasswordFile, `${ingestPassword}\n`, { mode: 0o600 });
    const episodePasswords = Object.fromEntries(Object.values(EPISODE_DEVICES).map((id) => [id, randomBytes(24).toString('base64url')]));
    const access = new BrokerAccess([
      { username: 'stele-ingest', password: ingestPassword, role: { kind: 'ingest' } },
      { username: DEVICE_ID, password: gatewayPassword, role: { kind: 'gateway', device: DEVICE_ID } },
      ...Object.entries(episodePasswords).map(([id, password]) => ({ username: id, password, role: { kind: 'gateway' as const, device: id } })),
    ]);
    const broker = await Aedes.createBroker({ ...aedesAccessHooks(access) });
    const server = net.createServer({ noDelay: true }, (socket) => {
      limitServerSocket(socket);
      broker.handle(socket);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const mqttUrl = `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    cleanups.push(async () => {
      await new Promise<void>((r) => server.close(() => r()));
      await new Promise<void>((r) => broker.close(() => r()));
    });
    say(`broker   aedes on ${mqttUrl} (access control: ingest and gateway users, no anonymous clients)`);

    // 2. The chain: anvil as a child process, its state kept under DIR so a rerun keeps earlier anchors.
    const chain = await startAnvil({ stateDir: join(data, 'chain'), port: o.chainPort });
    cleanups.push(() => chain.stop());
    const anchorer = await connectEvmAnchorer({
      rpcUrl: chain.rpcUrl,
      privateKey: ANVIL_DEV_PRIVATE_KEY,
      stateFile: join(data, 'chain', 'anchor-contract.json'),
    });
    say(`chain    anvil on ${chain.rpcUrl} (chain id ${chain.chainId}), SteleAnchor at ${anchorer.contract}`);

    // 3. Ingest with its own receipt key.
    const ingestSigner = await loadOrCreateSoftwareSigner(join(data, 'keys', 'ingest.pem'));
    const ingest = await IngestService.start({
      mqttUrl,
      dataDir: join(data, 'ingest'),
      signer: ingestSigner,
      issuer: 'stele-ingest-demo',
      anchorer,
      batchIntervalMs: o.batchMs,
      broker: { username: 'stele-ingest', passwordFile: ingestPasswordFile },
    });
    cleanups.push(() => ingest.stop());

    // 4. The gateway, configured as an installer configures one: DIR/data/gateway/gateway.yaml with the hj212
    // driver on a serial port, run by the same startGateway that `stele gateway run` runs (signer, outbox,
    // publisher, driver, serial transport); only the port is serialport's mock binding instead of a USB adapter.
    const gwDir = join(data, 'gateway');
    if (existsSync(join(gwDir, 'CURRENT'))) {
      throw new Error(`${o.out} was written by an older stele demo (its outbox sits directly in ${gwDir}); run with a new --out DIR`);
    }
    const deviceSigner = await loadOrCreateSoftwareSigner(join(data, 'keys', 'gateway.pem'));
    await ingest.enrol(makeEnrolmentRecord(deviceSigner, DEVICE_ID, 'demo site: stack 2'));
    await mkdir(gwDir, { recursive: true, mode: 0o700 });
    const gatewayPasswordFile = join(data, 'keys', 'mqtt-gateway.password');
    await writeFile(gatewayPasswordFile, `${gatewayPassword}\n`, { mode: 0o600 });
    const line = new MockSerialLine('/dev/serial/by-id/usb-STELE_DEMO_CEMS-if00-port0');
    const configFile = join(gwDir, 'gateway.yaml');
    await writeFile(
      configFile,
      softwareGatewayYaml({
        comment: 'written by `stele demo`: what an installer writes to /etc/stele/gateway.yaml',
        id: DEVICE_ID,
        dataDir: gwDir,
        keyFile: join(data, 'keys', 'gateway.pem'),
        broker: { url: mqttUrl, username: DEVICE_ID, passwordFile: gatewayPasswordFile, resendAfter: '5s' },
        ingestKey: toBase64Url(ingestSigner.publicKey),
        instruments: [hj212Instrument('cems', line.path)],
      }),
    );
    const gateway = await startGateway(await loadConfig(configFile), {
      bindingFor: (c) => (c.driver === 'hj212' ? line.binding : undefined),
      clock: { probe: async () => ({ synced: false, via: 'demo (no time source)' }) },
      healthPort: 0,
    });
    cleanups.push(() => gateway.stop('demo done'));
    const seqBefore = gateway.status().outbox.head;
    say(`gateway  ${DEVICE_ID} from ${configFile}, software key ${hex8(deviceSigner.keyId)}, chain head seq ${seqBefore}`);

    // 5. The instrument on the other end of the serial line.
    for (let i = 0; i < 400 && gateway.status().instruments?.[0]?.state !== 'open'; i++) await sleep(25);
    if (gateway.status().instruments?.[0]?.state !== 'open') throw new Error(`the gateway did not open ${line.path}: ${JSON.stringify(gateway.status().instruments?.[0])}`);
    const cems = new CemsSimulator({ mn: '010000A8900016F000169DC0' });
    say(`serial   simulated CEMS data logger (HJ 212-2017, CN=2011) on ${line.path}, one frame every ${o.intervalMs} ms`);

    // 6. Run: the instrument sends frames for N seconds; progress every second.
    const endAt = Date.now() + o.seconds * 1000;
    let nextFrameAt = Date.now();
    let sent = 0; // counted here, at the instrument, not by the gateway
    while (Date.now() < endAt) {
      if (Date.now() >= nextFrameAt) {
        line.device.write(cems.nextFrame(Date.now()));
        sent++;
        nextFrameAt += o.intervalMs;
      }
      await sleep(Math.max(10, Math.min(1000, nextFrameAt - Date.now())));
      progress(o.io, gateway, ingest, Math.ceil((endAt - Date.now()) / 1000));
    }
    o.io.stdout.write('\n');

    // 7. Drain: every frame taken and acknowledged by ingest, then the last batch cut and anchored.
    const drainUntil = Date.now() + 30_000;
    const caughtUp = () => {
      const st = gateway.status();
      return st.outbox.head - seqBefore >= sent && st.outbox.acked >= st.outbox.head;
    };
    while (!caughtUp() && Date.now() < drainUntil) await sleep(50);
    const end = gateway.status().outbox;
    if (end.head - seqBefore < sent) throw new Error(`the gateway took ${end.head - seqBefore} of the ${sent} frames the instrument sent`);
    if (end.acked < end.head) throw new Error(`ingest acknowledged only up to seq ${end.acked} of ${end.head}`);
    const lastSeq = end.head;
    await ingest.flush();

    // 8. Evidence for this run's window, verified with the code `stele verify` uses.
    const firstSeq = seqBefore + 1;
    const bundle = await ingest.exportBundle(DEVICE_ID, firstSeq, lastSeq);
    const file = join(o.out, 'evidence', `${DEVICE_ID}-${firstSeq}-${lastSeq}.json`);
    await writeFile(file, `${JSON.stringify(bundle, null, 2)}\n`);
    // 9. The demo plays the authority (FORMAT.md §14): it signs a trust policy naming this ingest's key and the
    // chain and contract it anchors on, and writes it with the authority's fingerprint beside the bundles. A real
    // officer gets the fingerprint by another channel (docs/officer.md); here both come from this run.
    const authority = await loadOrCreateSoftwareSigner(join(data, 'keys', 'authority.pem'));
    const draft = draftTrustPolicy({
      // A fixed, early start: every anchor this demo directory ever made falls inside the key's window.
      ingest: { publicKey: ingestSigner.publicKey, issuer: 'stele-ingest-demo', validFrom: '2020-01-01T00:00:00Z' },
      anchors: [{ chainId: chain.chainId, contract: anchorer.contract, startBlock: 0, endpoints: [{ operator: 'demo (local anvil)', url: chain.rpcUrl }] }],
    });
    const now = new Date();
    const policyJson = completePolicyDraft(draft, {
      authorityName: 'Stele demo authority',
      authorityPublicKey: authority.publicKey,
      version: 1,
      issuedAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + 365 * 86_400_000).toISOString(),
    });
    const policyFile = join(o.out, 'evidence', 'trust-policy.cose');
    const fingerprintFile = join(o.out, 'evidence', 'authority.fingerprint');
    const policyBytes = await signTrustPolicy(policyJson, authority);
    await writeFile(policyFile, policyBytes);
    await writeFile(fingerprintFile, `${toHex(authority.keyId)}\n`);
    const verdict = await verifyBundle(parseBundle(bundle), {
      anchorReader: (ref, batchId) => readAnchor(chain.rpcUrl, ref, batchId),
      trust: await loadTrustPolicy(policyBytes, authority.keyId),
    });

    // 10. The alert episodes, then the officer's path: `stele evidence` and `stele verify --trust` per alert.
    say('');
    const alerts = await alertEpisodes({ out: o.out, mqttUrl, ingest, passwords: episodePasswords, say, policyFile, fingerprintFile, io: o.io, cleanups });

    const summary: DemoSummary = {
      device: DEVICE_ID,
      readings: lastSeq - seqBefore,
      firstSeq,
      lastSeq,
      batches: bundle.batches.length,
      transactions: bundle.batches.map((b) => ({
        batchId: b.batchId,
        txHash: b.anchor.txHash,
        blockNumber: b.anchor.blockNumber,
        root: b.root,
        size: b.size,
      })),
      chain: { chainId: chain.chainId, contract: anchorer.contract, rpc: chain.rpcUrl },
      evidence: [file],
      alerts,
      trust: { policy: policyFile, fingerprintFile, fingerprint: toHex(authority.keyId) },
      verdict: verdict.state,
      startedAt,
      finishedAt: new Date().toISOString(),
    };
    await writeFile(join(o.out, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);

    say('');
    say(`readings  ${summary.readings} (seq ${firstSeq}..${lastSeq}), all acknowledged by ingest`);
    say(`batches   ${summary.batches} anchored on chain ${chain.chainId}:`);
    for (const t of summary.transactions) say(`          batch ${t.batchId}: ${t.size} leaves, root ${t.root.slice(0, 18)}…, tx ${t.txHash} (block ${t.blockNumber})`);
    say(`evidence  ${file}`);
    say(`policy    ${policyFile} (signed by the demo authority, fingerprint ${formatFingerprint(authority.keyId)})`);
    say('');
    o.io.stdout.write(formatVerdict(verdict, 'en'));
    say('');
    say('');
    for (const a of alerts) say(`alert     ${a.kind.padEnd(22)} ${a.device.padEnd(14)} ${a.verdict.toUpperCase().padEnd(9)} ${a.file}`);
    say(`summary   ${join(o.out, 'summary.json')}`);
    say(`check it  npx stele verify ${file} --trust ${policyFile} --authority-file ${fingerprintFile}`);
    say('          (exits 3, not fully checked, once this demo\'s chain is stopped, and without --trust)');

    if (o.serve) {
      say(`serving   chain ${chain.rpcUrl} and ingest until Ctrl-C`);
      await new Promise<void>((r) => {
        process.once('SIGINT', r);
        process.once('SIGTERM', r);
      });
    }
    return summary;
  } finally {
    await cleanup();
    SerialPortMock.binding.reset();
  }
}

function progress(io: DemoIo, gateway: RunningGateway, ingest: IngestService, left: number): void {
  const g = gateway.status();
  const s = ingest.stats();
  io.stdout.write(
    `\rrunning  ${String(left).padStart(3)} s left · outbox seq ${g.outbox.head} · acked up to seq ${g.outbox.acked} · ingest ${s.readings} readings, ${s.batches} batches, ${s.anchored} anchored   `,
  );
}

const hex8 = (b: Uint8Array) => Buffer.from(b).toString('hex').slice(0, 16);

/** The instrument hour of this run's plant episode: the clock hour before now (UTC+08:00), or one before any used. */
async function plantHour(out: string): Promise<number> {
  const ledger = join(out, 'episodes', 'hours.json');
  const used = await readFile(ledger, 'utf8').then((t) => JSON.parse(t) as number[], () => [] as number[]);
  const hour = Math.min(Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000, ...used.map((h) => h - 3_600_000));
  await mkdir(join(out, 'episodes'), { recursive: true });
  await writeFile(ledger, `${JSON.stringify([...used, hour])}\n`);
  return hour;
}

/** The kinds the episodes must produce, one alert each (the first of its kind on its device). */
const EPISODE_ALERTS = [
  { kind: 'emission-exceedance', device: EPISODE_DEVICES.plant },
  { kind: 'cold-chain-excursion', device: EPISODE_DEVICES.cold },
  { kind: 'coal-custody-break', device: EPISODE_DEVICES.lab },
] as const;

interface AlertEpisodeOptions {
  out: string;
  mqttUrl: string;
  ingest: IngestService;
  passwords: Record<string, string>;
  say: (line: string) => void;
  policyFile: string;
  fingerprintFile: string;
  io: DemoIo;
  cleanups: (() => Promise<void>)[];
}

/** Runs the episodes, serves ingest's alert routes, and fetches and verifies each alert's bundle through the CLI. */
async function alertEpisodes(o: AlertEpisodeOptions): Promise<DemoSummary['alerts']> {
  const dir = join(o.out, 'episodes');
  await runEpisodes({ dir, mqttUrl: o.mqttUrl, ingest: o.ingest, passwords: o.passwords, say: o.say, plantHourMs: await plantHour(o.out) });
  await o.ingest.flush();
  const book = new AlertBook(o.ingest, await loadRuleFiles(episodeRuleFiles(dir)));
  const http = await startIngestHttp({ service: o.ingest, alerts: book });
  o.cleanups.push(() => http.close());
  o.say(`ingest    rules ${episodeRuleFiles(dir).join(', ')}; alerts at ${http.url}/alerts`);
  const list = await book.alerts();
  const result: DemoSummary['alerts'] = [];
  for (const want of EPISODE_ALERTS) {
    // The newest alert of its kind on its device (a reused --out keeps earlier runs' alerts).
    const found = list.filter((a) => a.kind === want.kind && a.readings.every((r) => r.device === want.device)).sort((a, b) => Math.max(...b.readings.map((r) => r.seq)) - Math.max(...a.readings.map((r) => r.seq)))[0];
    if (found === undefined) {
      o.say(`alert     ${want.kind}: none found (the episode did not give one)`);
      result.push({ kind: want.kind, id: '', device: want.device, file: '', verdict: 'missing' });
      continue;
    }
    const file = join(o.out, 'evidence', `alert-${want.kind}-${found.id.slice(0, 12)}.bundle.json`);
    const cli = captureIo();
    const code = await runEvidence([found.id, '--url', http.url, '--out', file], cli.io);
    if (code !== 0) throw new Error(`stele evidence ${found.id}: exit ${code}: ${cli.err()}`);
    o.say('');
    o.say(`$ stele evidence ${found.id} --url ${http.url} --out ${file}`);
    o.io.stdout.write(cli.out());
    o.say(`$ stele verify --trust ${o.policyFile} --authority-file ${o.fingerprintFile} ${file}`);
    const v = captureIo();
    const exit = await runVerify(['--trust', o.policyFile, '--authority-file', o.fingerprintFile, '--lang', 'en', file], v.io);
    // Checks that passed or do not apply are left out here (the file verifies in full with the command above).
    const shown = v.out().split('\n').filter((l) => !/^\s+\[(pass|n\/a)\]/.test(l));
    o.io.stdout.write(shown.filter((l, i) => !(l === 'Checks:' && (shown[i + 1] ?? '') === '')).join('\n'));
    result.push({ kind: want.kind, id: found.id, device: want.device, file, verdict: exit === 0 ? 'verified' : exit === 3 ? 'partial' : 'failed' });
  }
  return result;
}

function captureIo(): { io: { stdout: { write(s: string): boolean }; stderr: { write(s: string): boolean } }; out(): string; err(): string } {
  let out = '';
  let err = '';
  return {
    io: { stdout: { write: (s: string) => ((out += s), true) }, stderr: { write: (s: string) => ((err += s), true) } },
    out: () => out,
    err: () => err,
  };
}
