/**
 * Slow keys (issue #3, item 6): a gateway whose key signs only 20 times a second, fed 200 readings a second.
 *
 *   npm run bench -- slow-key                      defaults below, report on stdout
 *   npm run bench -- slow-key --write              the same, then rewrite "## Slow keys" of docs/BENCHMARKS.md
 *   npm run bench -- slow-key --rate 200 --seconds 60 --sign-ms 50 --max-batch 64 --contrast-seconds 10
 *
 * The real pipeline, in one process on 127.0.0.1: a source yielding `rate` readings/s on a fixed schedule ->
 * GatewayAgent (outbox.takeUnsigned: durable at once; signing stage with a software P-256 key wrapped to take
 * `signMs` per signature, one signature at a time like a token) -> Publisher -> aedes -> the real IngestService
 * (LevelDB store, every statement verified and chained; anchoring to an in-process recorder, no chain).
 * Afterwards every reading is verified with core from the gateway's outbox (signature, body, chain link) and the
 * whole window is exported from ingest as an evidence bundle and run through verifyBundle.
 *
 * The contrast run (default 10 s, `--contrast-seconds 0` skips it) is the same feed with `maxSignBatch: 1`: every
 * reading signed alone, as before device-level batches; it shows the backlog the key cannot work off.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import net from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Aedes } from 'aedes';
import { toBase64Url, utf8, sha256, decodeReading, GENESIS_PREV, readingDigest, equalBytes } from '@stele/core';
import { checkStatementAgainstReading, parseStatement, verifyStatementSignature } from '@stele/core/cose';
import type { Signer } from '@stele/core';
import { verifyBundle } from '@stele/core/verify';
import { createSoftwareKey } from '@stele/device';
import { GatewayAgent, Outbox, type Acquired, Publisher } from '@stele/edge-agent';
import type { Anchorer } from '@stele/ingest/anchor';
import { IngestService } from '@stele/ingest';
import { writeMarkdownSection } from './harness.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DEVICE = 'gw-slow-key';

export interface SlowKeyOptions {
  /** Readings per second fed to the agent. Default 200. */
  rate: number;
  /** Length of the feed, s. Default 60. */
  seconds: number;
  /** Latency of one signature, ms. Default 50 (a key that sustains 20 signatures/s). */
  signMs: number;
  /** Most readings per signature. Default 64. */
  maxBatch: number;
  /** Length of the maxSignBatch 1 contrast run, s (0: none). Default 10. */
  contrastSeconds: number;
  write: boolean;
}

function parseArgs(argv: string[]): SlowKeyOptions {
  const o: SlowKeyOptions = { rate: 200, seconds: 60, signMs: 50, maxBatch: 64, contrastSeconds: 10, write: false };
  const num = (name: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new Error(`${name} needs a number >= ${min}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--write') o.write = true;
    else if (a === '--rate') o.rate = num(a, argv[++i], 1);
    else if (a === '--seconds') o.seconds = num(a, argv[++i], 1);
    else if (a === '--sign-ms') o.signMs = num(a, argv[++i], 0);
    else if (a === '--max-batch') o.maxBatch = Math.floor(num(a, argv[++i], 1));
    else if (a === '--contrast-seconds') o.contrastSeconds = num(a, argv[++i], 0);
    else throw new Error(`unknown option ${a}`);
  }
  return o;
}

/** `inner` slowed to `delayMs` per signature (a real timer delay), one signature at a time, like a token. */
export function slowSigner(inner: Signer, delayMs: number): Signer {
  let tail: Promise<unknown> = Promise.resolve();
  return {
    algorithm: inner.algorithm,
    keyId: inner.keyId,
    publicKey: inner.publicKey,
    backend: inner.backend,
    sign(message: Uint8Array): Promise<Uint8Array> {
      const run = tail.then(async () => {
        await new Promise((r) => setTimeout(r, delayMs));
        return inner.sign(message);
      });
      tail = run.catch(() => undefined);
      return run;
    },
  };
}

/** An anchorer that records roots in memory (ingest needs one; no chain is involved in this benchmark). */
function recordingAnchorer(): Anchorer {
  const contract = '0x5fbdb2315678afecb367f032d93f642f64180aa3';
  return {
    chainId: 31337,
    contract,
    rpcUrl: 'http://127.0.0.1:8545',
    anchor: async (batchId) => ({ chainId: 31337, contract, txHash: `0x${'00'.repeat(31)}${(batchId & 0xff).toString(16).padStart(2, '0')}`, blockNumber: batchId, blockTime: Math.floor(Date.now() / 1000) }),
  };
}

async function startBroker(): Promise<{ url: string; close(): Promise<void> }> {
  const broker = await Aedes.createBroker();
  const server = net.createServer((socket) => {
    socket.setNoDelay(true); // small QoS 1 packets both ways (see edge-agent/src/publisher.ts)
    broker.handle(socket);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    close: async () => {
      await new Promise<void>((r) => broker.close(() => r()));
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const nowMs = (): number => performance.timeOrigin + performance.now();

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

interface RunResult {
  produced: number;
  taken: number;
  failed: number;
  /** Largest lateness of the source against its schedule, ms (how long a take held the feed up). */
  sourceLagMaxMs: number;
  feedSeconds: number;
  maxUnsigned: number;
  backlogP99: number;
  unsignedAtFeedEnd: number;
  signatures: number;
  batchSizes: Record<string, number>;
  signMsAvg: number;
  keyRatePerSec: number;
  /** Acquired -> signed (sampled every 5 ms), ms. */
  signLatency: { p50: number; p99: number; max: number };
  /** Acquired -> committed by ingest (ack received by the gateway), ms. */
  e2e: { p50: number; p99: number; max: number };
  drainMs: number;
  acked: number;
  verified?: { readings: number; signatures: number; bundleFailures: string[]; bundleState: string; verifyMs: number };
}

/** One run of the pipeline. `verify`: wait for everything to be acked, then verify it all. */
async function runOnce(o: SlowKeyOptions, seconds: number, maxBatch: number, verify: boolean): Promise<RunResult> {
  const dir = await mkdtemp(join(tmpdir(), 'stele-slow-key-'));
  const stops: (() => Promise<unknown>)[] = [];
  try {
    const broker = await startBroker();
    stops.push(() => broker.close());
    const ingestKey = await createSoftwareKey(join(dir, 'ingest.pem'));
    const ingest = await IngestService.start({
      mqttUrl: broker.url,
      dataDir: join(dir, 'ingest'),
      signer: ingestKey,
      issuer: 'stele-bench-slow-key',
      anchorer: recordingAnchorer(),
      batchIntervalMs: 1000,
    });
    stops.push(() => ingest.stop());
    const key = await createSoftwareKey(join(dir, 'device.pem'));
    await ingest.enrol({ deviceId: DEVICE, publicKey: toBase64Url(key.publicKey), kid: toBase64Url(key.keyId), keyBackend: key.backend, enrolledAt: new Date().toISOString() });
    const outbox = await Outbox.open(join(dir, 'outbox'));
    stops.push(() => outbox.close());
    const publisher = new Publisher({ mqttUrl: broker.url, deviceId: DEVICE, outbox, ingestKey: ingestKey.publicKey });
    const agent = new GatewayAgent({ deviceId: DEVICE, signer: slowSigner(key, o.signMs), outbox, publisher, maxSignBatch: maxBatch });
    stops.push(() => agent.stop());

    const n = Math.round(o.rate * seconds);
    const acquiredAt = new Float64Array(n + 1); // by seq (fresh outbox, one source: seq i is the i-th item)
    const signedAt = new Float64Array(n + 1);
    const ackedAt = new Float64Array(n + 1);
    let acked = 0;
    publisher.on('acked', (upTo: number) => {
      const t = nowMs();
      for (let s = acked + 1; s <= Math.min(upTo, n); s++) ackedAt[s] = t;
      acked = Math.max(acked, upTo);
    });
    await publisher.start();
    await new Promise<void>((r) => publisher.once('connect', () => r()));

    let produced = 0;
    let lagMax = 0;
    async function* feed(): AsyncIterable<Acquired> {
      const t0 = performance.now();
      for (let i = 0; i < n; i++) {
        const due = t0 + (i * 1000) / o.rate;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
        lagMax = Math.max(lagMax, performance.now() - due);
        produced++;
        acquiredAt[i + 1] = nowMs();
        yield {
          sensor: 'cems-1',
          time: Date.now(),
          clock: { synced: true, source: 'ntp' },
          meas: [{ code: 'a21026', kind: 'Rtd', value: (20 + (i % 100) / 10).toFixed(1), unit: 'mg/m3', flag: 'N' }],
          raw: [sha256(utf8(`bench frame ${i}`))],
        };
      }
    }
    // Sample the backlog and what is signed every 5 ms.
    const backlog: number[] = [];
    let signedMark = 0;
    const sampler = setInterval(() => {
      backlog.push(outbox.unsignedCount());
      const upTo = Math.min(outbox.signedUpTo(), n);
      if (upTo > signedMark) {
        const t = nowMs();
        for (let s = signedMark + 1; s <= upTo; s++) signedAt[s] = t;
        signedMark = upTo;
      }
    }, 5);
    const feedStart = performance.now();
    agent.addSource('feed', feed());
    while (agent.status().sources['feed']?.state === 'running') await sleep(20);
    const feedSeconds = (performance.now() - feedStart) / 1000;
    const unsignedAtFeedEnd = outbox.unsignedCount();

    let drainMs = Number.NaN;
    if (verify) {
      const drainStart = performance.now();
      const limit = drainStart + 120_000;
      while (acked < n && performance.now() < limit) await sleep(10);
      drainMs = performance.now() - drainStart;
    }
    clearInterval(sampler);
    const status = agent.status();
    const lat = (from: Float64Array, to: Float64Array) => {
      const v: number[] = [];
      for (let s = 1; s <= n; s++) if (to[s]! > 0 && from[s]! > 0) v.push(to[s]! - from[s]!);
      v.sort((a, b) => a - b);
      return { p50: percentile(v, 50), p99: percentile(v, 99), max: v.at(-1) ?? Number.NaN };
    };
    const sortedBacklog = [...backlog].sort((a, b) => a - b);
    const result: RunResult = {
      produced,
      taken: status.taken,
      failed: status.failed,
      sourceLagMaxMs: lagMax,
      feedSeconds,
      maxUnsigned: status.signing.maxUnsigned,
      backlogP99: percentile(sortedBacklog, 99),
      unsignedAtFeedEnd,
      signatures: status.signing.signatures,
      batchSizes: status.signing.batchSizes,
      signMsAvg: status.signing.signMsAvg,
      keyRatePerSec: status.signing.keyRatePerSec,
      signLatency: lat(acquiredAt, signedAt),
      e2e: lat(acquiredAt, ackedAt),
      drainMs,
      acked,
    };

    if (verify) {
      const started = performance.now();
      // Every reading, from the gateway's outbox, with core: the statement parses, its signature verifies under the
      // device key, the body is the signed one, and its prev is the digest of the reading before it.
      let readings = 0;
      const signatures = new Set<string>();
      let prev = GENESIS_PREV;
      for (let from = 1; from <= n; ) {
        const page = await outbox.pendingFrom(from, 1000);
        if (page.length === 0) break;
        for (const e of page) {
          const st = parseStatement(e.statement);
          if (st.seq !== e.seq) throw new Error(`seq ${e.seq}: statement names ${st.seq}`);
          if (!(await verifyStatementSignature(st, key.publicKey))) throw new Error(`seq ${e.seq}: signature does not verify`);
          if (checkStatementAgainstReading(st, e.reading) !== 'ok') throw new Error(`seq ${e.seq}: body is not the signed one`);
          if (!equalBytes(decodeReading(e.reading).prev, prev)) throw new Error(`seq ${e.seq}: chain link broken`);
          prev = readingDigest(e.reading);
          signatures.add(toBase64Url(st.signature));
          readings++;
        }
        from = page.at(-1)!.seq + 1;
      }
      // And ingest's view: the whole window as an evidence bundle (offline: the anchor stays unchecked).
      await ingest.flush();
      const bundle = await ingest.exportEvidence(DEVICE, 1, n);
      const verdict = await verifyBundle(bundle);
      result.verified = {
        readings,
        signatures: signatures.size,
        bundleFailures: verdict.checks.flatMap((c) => c.failures.map((f) => f.code)),
        bundleState: verdict.state,
        verifyMs: performance.now() - started,
      };
    }
    return result;
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1]!.trim();
  } catch {
    // not Linux
  }
  return cpus()[0]?.model ?? 'unknown';
}

const f0 = (x: number): string => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '–');
const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '–');

function sizesText(sizes: Record<string, number>): string {
  const entries = Object.entries(sizes).map(([k, v]) => [Number(k), v] as const).sort((a, b) => a[0] - b[0]);
  const total = entries.reduce((a, [, v]) => a + v, 0);
  const readings = entries.reduce((a, [k, v]) => a + k * v, 0);
  const min = entries[0]?.[0] ?? 0;
  const max = entries.at(-1)?.[0] ?? 0;
  const top = [...entries].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([k, v]) => `${k}: ${v}`).join(', ');
  return `${total} signatures, sizes ${min}..${max}, mean ${(readings / Math.max(1, total)).toFixed(1)} (most frequent: ${top})`;
}

export async function runSlowKey(argv: string[]): Promise<void> {
  const o = parseArgs(argv);
  const loadBefore = loadavg();
  const date = new Date().toISOString();
  process.stderr.write(`slow-key: ${o.rate} readings/s for ${o.seconds} s, ${o.signMs} ms per signature, batches up to ${o.maxBatch}\n`);
  const main = await runOnce(o, o.seconds, o.maxBatch, true);
  process.stderr.write(`slow-key: main run done (${JSON.stringify({ taken: main.taken, maxUnsigned: main.maxUnsigned, signatures: main.signatures })})\n`);
  let contrast: RunResult | undefined;
  if (o.contrastSeconds > 0) {
    process.stderr.write(`slow-key: contrast run, maxSignBatch 1, ${o.contrastSeconds} s\n`);
    contrast = await runOnce(o, o.contrastSeconds, 1, false);
  }
  const load = (l: number[]): string => l.map((x) => x.toFixed(2)).join(' ');
  const v = main.verified!;
  const dropped = main.produced - main.taken;
  const ok = dropped === 0 && main.failed === 0 && v.readings === main.produced && v.bundleFailures.length === 0;
  const command = `npm run bench -- slow-key${o.write ? ' --write' : ''}${argv.filter((a) => a !== '--write').length > 0 ? ` ${argv.filter((a) => a !== '--write').join(' ')}` : ''}`;
  const lines = [
    `A key slowed to ${o.signMs} ms per signature (a software P-256 key behind a real ${o.signMs} ms timer, one signature at a`,
    `time, like a token: it sustains ${f1(1000 / Math.max(1, o.signMs))} signatures/s), fed ${o.rate} readings/s for ${o.seconds} s through the real outbox, agent,`,
    'publisher, an in-process aedes broker and the real ingest service (LevelDB, every statement verified and chained;',
    'anchoring recorded in memory, no chain). The agent signs device-level batches (FORMAT.md §3.1) of up to',
    `${o.maxBatch} readings when readings arrive faster than its key sustains. Code: \`bench/src/slow-key.ts\`.`,
    '',
    `- Machine: ${availableParallelism()} CPUs (nproc), ${cpuModel()}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM; Node ${process.version} (${process.platform}-${process.arch})`,
    `- Date: ${date}; load average (1/5/15 min) ${load(loadBefore)} before, ${load(loadavg())} after`,
    `- Command: \`${command}\``,
    '',
    '| measure | value |',
    '|---|---:|',
    `| readings fed (${o.rate}/s for ${o.seconds} s; feed took ${f1(main.feedSeconds)} s) | ${f0(main.produced)} |`,
    `| readings taken (durable in the outbox) | ${f0(main.taken)} |`,
    `| readings dropped / failed to take | ${dropped} / ${main.failed} |`,
    `| largest lateness of the feed against its schedule | ${f1(main.sourceLagMaxMs)} ms |`,
    `| signing backlog (taken, not yet signed): max / p99 of 5 ms samples | ${main.maxUnsigned} / ${main.backlogP99} |`,
    `| signatures | ${f0(main.signatures)} |`,
    `| readings per signature | ${sizesText(main.batchSizes)} |`,
    `| measured signature latency (EWMA) / what the key sustains | ${f1(main.signMsAvg)} ms / ${f1(main.keyRatePerSec)} signatures/s |`,
    `| acquired → signed: p50 / p99 / max | ${f0(main.signLatency.p50)} / ${f0(main.signLatency.p99)} / ${f0(main.signLatency.max)} ms |`,
    `| acquired → committed by ingest (ack at the gateway): p50 / p99 / max | ${f0(main.e2e.p50)} / ${f0(main.e2e.p99)} / ${f0(main.e2e.max)} ms |`,
    `| all acknowledged after the feed ended | ${f0(main.drainMs)} ms (${f0(main.acked)} acked) |`,
    `| verified with core from the outbox (signature, body, chain link) | ${f0(v.readings)} of ${f0(main.produced)} (${f0(v.signatures)} distinct signatures) |`,
    `| evidence bundle of seq 1..${main.produced} from ingest, verifyBundle offline | ${v.bundleState}, failures: ${v.bundleFailures.length === 0 ? 'none' : [...new Set(v.bundleFailures)].join(', ')} (anchor unchecked offline) |`,
    '',
  ];
  if (contrast !== undefined) {
    const growth = (contrast.unsignedAtFeedEnd / contrast.feedSeconds).toFixed(0);
    lines.push(
      `Contrast, the same feed for ${o.contrastSeconds} s with \`maxSignBatch: 1\` (every reading signed alone, as before device-level`,
      `batches): ${f0(contrast.taken)} readings taken (${contrast.produced - contrast.taken} dropped: taking never waits for the key), but`,
      `${f0(contrast.signatures)} signed and a backlog of ${f0(contrast.unsignedAtFeedEnd)} unsigned at the end of the feed, growing by about ${growth}`,
      `readings/s; acquired → signed p99 ${f0(contrast.signLatency.p99)} ms and rising. Unbounded: a 50 ms key cannot keep up one by one.`,
      '',
    );
  }
  lines.push(
    'The backlog counts the batch being signed plus what arrives meanwhile: about twice rate × signature latency',
    '(each signature covers what arrived during the one before), so it is bounded for any rate up to maxSignBatch ×',
    'key rate. Signed → committed (about 40 ms here) is the publisher, broker and ingest path, not the key. A load',
    'average above the CPU count means other processes shared the CPUs (feed lateness and latencies include their share).',
  );
  const body = lines.join('\n');
  process.stdout.write(`${body}\n`);
  if (!ok) process.exitCode = 1;
  if (o.write) process.stderr.write(`wrote ${await writeMarkdownSection(join(repoRoot, 'docs', 'BENCHMARKS.md'), '## Slow keys', body)}\n`);
}
