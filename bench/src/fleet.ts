/**
 * A fleet of gateways against one ingest (issue #14 acceptance): N gateways x M emulated HJ 212 instruments, one
 * reading per interval per instrument, spread over several processes (bench/src/fleet-worker.ts: each gateway is
 * the shipped one, loadConfig + startGateway from its own gateway.yaml, with its own LevelDB outbox and key).
 *
 *   npm run bench -- fleet [--gateways 500] [--instruments 4] [--interval 10] [--minutes 10] [--processes P]
 *                          [--per-process 125] [--broker mosquitto|aedes] [--write]
 *
 * Against: a broker (mosquitto on a free port, else aedes) and `stele ingest run --embedded-chain` as a child
 * process (bench/src/gateway-stack.ts). Measured outside the gateways: frames counted at the emulated
 * instruments, each gateway's head read back from ingest's API (GET /devices/ID/head) and compared; CPU and RSS
 * of every process (workers, ingest, broker) read from /proc every 5 s; latency from the frame leaving the
 * instrument to the gateway holding ingest's signed `stored` and `anchored` (final) confirmation for it.
 * `--write` replaces the "## Fleet of gateways (issue #14)" section of docs/BENCHMARKS.md.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { toBase64Url } from '@stele/core';
import { createSoftwareKey } from '@stele/device';
import { hj212Instrument, softwareGatewayYaml } from '@stele/simulator';
import { procComm, procCpuSeconds, writeMarkdownSection } from './harness.ts';
import { machineLine, startStack, type BenchStack } from './gateway-stack.ts';
import type { FleetWorkerResult, FleetWorkerSpec } from './fleet-worker.ts';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..', '..');
const WORKER = join(here, 'fleet-worker.ts');

export interface FleetOptions {
  gateways: number;
  instruments: number;
  intervalMs: number;
  durationMs: number;
  processes: number;
  broker?: 'mosquitto' | 'aedes';
  drainMs?: number;
  say?: (line: string) => void;
}

export interface ProcUsage {
  name: string;
  pid: number;
  /** CPU time over the load phase / wall time of the load phase (1.0 = one core). */
  cpu: number;
  maxRssMiB: number;
  lastRssMiB: number;
}

export interface FleetReport {
  options: FleetOptions;
  broker: string;
  sent: number;
  dropped: number;
  /** Sum of the heads ingest reports for the fleet's devices. */
  atIngest: number;
  /** Devices whose head at ingest differs from the frames their instruments sent. */
  mismatched: string[];
  stored: number;
  anchored: number;
  storedMs: { p50: number; p99: number; max: number };
  anchoredMs: { p50: number; p99: number; max: number };
  procs: ProcUsage[];
  loadBefore: number[];
  loadAfter: number[];
  loadWallS: number;
}

interface Worker {
  proc: ChildProcess;
  name: string;
  lines: Record<string, unknown>[];
  waiters: ((o: Record<string, unknown>) => void)[];
  errTail: string[];
}

function startWorker(name: string, specFile: string): Worker {
  const proc = spawn(process.execPath, ['--import', 'tsx', WORKER, specFile], { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'] });
  const w: Worker = { proc, name, lines: [], waiters: [], errTail: [] };
  createInterface({ input: proc.stdout! }).on('line', (l) => {
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(l) as Record<string, unknown>;
    } catch {
      return;
    }
    w.lines.push(o);
    for (const f of w.waiters.splice(0)) f(o);
  });
  createInterface({ input: proc.stderr! }).on('line', (l) => {
    w.errTail.push(l);
    if (w.errTail.length > 30) w.errTail.shift();
  });
  return w;
}

/** Resolves with the first line of that type (already read or to come); rejects if the worker exits first. */
function waitFor(w: Worker, type: string, timeoutMs: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const check = (o: Record<string, unknown>) => {
      if (o['type'] === type) done(() => resolve(o));
      else if (o['type'] === 'error') done(() => reject(new Error(`${w.name}: ${String(o['message'])}`)));
      else w.waiters.push(check);
    };
    const onExit = (code: number | null) => done(() => reject(new Error(`${w.name} exited (${code}) before '${type}': ${w.errTail.slice(-5).join(' | ')}`)));
    const timer = setTimeout(() => done(() => reject(new Error(`${w.name}: no '${type}' within ${timeoutMs} ms`))), timeoutMs);
    let settled = false;
    const done = (f: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      w.proc.off('exit', onExit);
      f();
    };
    w.proc.once('exit', onExit);
    const seen = w.lines.find((o) => o['type'] === type || o['type'] === 'error');
    if (seen !== undefined) check(seen);
    else w.waiters.push(check);
  });
}

function procTimes(pid: number): { cpuS: number; rssMiB: number; hwmMiB: number } | undefined {
  try {
    const cpuS = procCpuSeconds(pid);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
    return { cpuS, rssMiB: kb('VmRSS') / 1024, hwmMiB: kb('VmHWM') / 1024 };
  } catch {
    return undefined;
  }
}

/** Children of a pid (ingest's anvil), from /proc. */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export async function runFleet(o: FleetOptions): Promise<FleetReport> {
  const say = o.say ?? ((s: string) => process.stderr.write(`${s}\n`));
  const dir = await mkdtemp(join(tmpdir(), 'stele-fleet-'));
  let stack: BenchStack | undefined;
  const workers: Worker[] = [];
  const timers: NodeJS.Timeout[] = [];
  try {
    stack = await startStack(dir, o.broker === undefined ? {} : { broker: o.broker });
    const ingestKey = toBase64Url(stack.ingestKey);
    say(`fleet: broker ${stack.broker} ${stack.mqttUrl}, ingest ${stack.api}; enrolling ${o.gateways} gateways`);
    const ids = Array.from({ length: o.gateways }, (_, i) => `fleet-gw-${String(i + 1).padStart(4, '0')}`);
    const configs: { id: string; config: string }[] = [];
    let next = 0;
    const enrolOne = async () => {
      for (let i = next++; i < ids.length; i = next++) {
        const id = ids[i]!;
        const gwDir = join(dir, 'gw', id);
        await mkdir(join(gwDir, 'keys'), { recursive: true, mode: 0o700 });
        const signer = await createSoftwareKey(join(gwDir, 'keys', 'gateway.pem'));
        await stack!.enrol(signer, id);
        const yaml = softwareGatewayYaml({
          comment: `fleet bench gateway ${id}: what an installer writes to /etc/stele/gateway.yaml`,
          id,
          dataDir: join(gwDir, 'data'),
          keyFile: join(gwDir, 'keys', 'gateway.pem'),
          broker: { url: stack!.mqttUrl },
          ingestKey,
          instruments: Array.from({ length: o.instruments }, (_, k) => hj212Instrument(`cems-${k + 1}`, `/dev/ttyFLEET-${id}-${k + 1}`)),
        });
        const file = join(gwDir, 'gateway.yaml');
        await writeFile(file, yaml);
        configs[i] = { id, config: file };
      }
    };
    await Promise.all(Array.from({ length: 8 }, enrolOne));

    const per = Math.ceil(o.gateways / o.processes);
    const drainMs = o.drainMs ?? 120_000;
    for (let p = 0; p < o.processes; p++) {
      const mine = configs.slice(p * per, (p + 1) * per);
      if (mine.length === 0) break;
      const spec: FleetWorkerSpec = {
        gateways: mine,
        instrumentsPerGateway: o.instruments,
        intervalMs: o.intervalMs,
        durationMs: o.durationMs,
        drainMs,
        pollMs: 250,
        result: join(dir, `result-${p}.json`),
      };
      const file = join(dir, `spec-${p}.json`);
      await writeFile(file, JSON.stringify(spec));
      workers.push(startWorker(`worker ${p + 1}`, file));
    }
    say(`fleet: ${workers.length} processes x up to ${per} gateways x ${o.instruments} instruments; starting`);
    const startupTimeout = 120_000 + per * 2_000;
    await Promise.all(workers.map((w) => waitFor(w, 'ready', startupTimeout)));

    // CPU and RSS of every process, from /proc (outside the processes measured)
    const ingestPid = stack.ingest.proc.pid!;
    const watched: { name: string; pid: number }[] = [
      ...workers.map((w) => ({ name: w.name, pid: w.proc.pid! })),
      { name: 'ingest', pid: ingestPid },
      ...descendantsOf(ingestPid).map((pid) => ({ name: `ingest's ${readComm(pid)}`, pid })),
    ];
    for (const pid of childrenOf(process.pid)) if (readComm(pid) === 'mosquitto') watched.push({ name: 'mosquitto', pid });
    if (stack.broker === 'aedes') watched.push({ name: 'bench (aedes broker)', pid: process.pid });
    const first = new Map(watched.map((w) => [w.pid, procTimes(w.pid)]));
    const maxRss = new Map<number, number>();
    const last = new Map<number, number>();
    const sampler = setInterval(() => {
      for (const w of watched) {
        const t = procTimes(w.pid);
        if (t === undefined) continue;
        maxRss.set(w.pid, Math.max(maxRss.get(w.pid) ?? 0, t.rssMiB));
        last.set(w.pid, t.rssMiB);
      }
    }, 5_000);
    timers.push(sampler);

    const loadBefore = loadavg();
    const t0 = performance.now();
    for (const w of workers) w.proc.stdin!.write('go\n');
    const progress = setInterval(() => {
      void fetch(`${stack!.api}/health`)
        .then((r) => r.json() as Promise<{ readings?: number; batches?: number; anchored?: number; duplicates?: number; shed?: number; queued?: number; pending?: number; anchoring?: unknown }>)
        .then((h) => say(`fleet: ${((performance.now() - t0) / 60_000).toFixed(1)} min; ingest ${JSON.stringify({ readings: h.readings, batches: h.batches, anchored: h.anchored, duplicates: h.duplicates, shed: h.shed, queued: h.queued, pending: h.pending, anchoring: h.anchoring })}`))
        .catch(() => undefined);
    }, 30_000);
    timers.push(progress);
    await Promise.all(workers.map((w) => waitFor(w, 'sent', o.durationMs + 60_000)));
    const loadWallS = (performance.now() - t0) / 1000;
    const end = new Map(watched.map((w) => [w.pid, procTimes(w.pid)]));
    const loadAfter = loadavg();
    say(`fleet: instruments stopped after ${loadWallS.toFixed(0)} s; draining`);
    const results: FleetWorkerResult[] = [];
    for (const w of workers) {
      const r = await waitFor(w, 'result', drainMs + 60_000);
      results.push(JSON.parse(await readFile(String(r['file']), 'utf8')) as FleetWorkerResult);
    }
    clearInterval(sampler);
    clearInterval(progress);

    const outcomes = results.flatMap((r) => r.gateways);
    const mismatched: string[] = [];
    let atIngest = 0;
    for (const g of outcomes) {
      const head = await stack.head(g.id);
      atIngest += head;
      if (head !== g.sent) mismatched.push(`${g.id}: sent ${g.sent}, ingest head ${head}`);
    }
    const stored = results.flatMap((r) => r.storedMs).sort((a, b) => a - b);
    const anchored = results.flatMap((r) => r.anchoredMs).sort((a, b) => a - b);
    const summary = (s: number[]) => ({ p50: pct(s, 50), p99: pct(s, 99), max: s[s.length - 1] ?? NaN });
    const procs: ProcUsage[] = watched.map((w) => {
      const a = first.get(w.pid);
      const b = end.get(w.pid);
      return {
        name: w.name,
        pid: w.pid,
        cpu: a !== undefined && b !== undefined ? (b.cpuS - a.cpuS) / loadWallS : NaN,
        maxRssMiB: Math.max(maxRss.get(w.pid) ?? 0, b?.rssMiB ?? 0),
        lastRssMiB: last.get(w.pid) ?? b?.rssMiB ?? NaN,
      };
    });
    return {
      options: (({ say: _say, ...rest }) => rest)(o),
      broker: stack.broker,
      sent: outcomes.reduce((a, g) => a + g.sent, 0),
      dropped: outcomes.reduce((a, g) => a + g.dropped, 0),
      atIngest,
      mismatched,
      stored: stored.length,
      anchored: anchored.length,
      storedMs: summary(stored),
      anchoredMs: summary(anchored),
      procs,
      loadBefore,
      loadAfter,
      loadWallS,
    };
  } finally {
    for (const t of timers) clearInterval(t); // a failed run must not keep the process alive
    for (const w of workers) if (w.proc.exitCode === null && w.proc.signalCode === null) w.proc.kill('SIGKILL');
    await stack?.stop().catch(() => undefined);
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** Descendants of a pid other than shells (ingest's anvil may run under sh). */
function descendantsOf(pid: number): number[] {
  const out: number[] = [];
  for (const c of childrenOf(pid)) {
    if (readComm(c) !== 'sh') out.push(c);
    out.push(...descendantsOf(c));
  }
  return out;
}

function readComm(pid: number): string {
  return procComm(pid) ?? '?';
}

export function formatFleetReport(r: FleetReport, command: string, machine: string): string {
  const o = r.options;
  const f = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
  const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
  return [
    `- Date: ${new Date().toISOString()}; machine: ${machine}`,
    `- Command: \`${command}\` (broker: ${r.broker}; ingest \`stele ingest run --embedded-chain --batch-ms 1000\`, one process)`,
    `- Load: ${o.gateways} gateways x ${o.instruments} HJ 212 instruments (mock serial binding), one reading per ${o.intervalMs / 1000} s per instrument ` +
      `(${((o.gateways * o.instruments * 1000) / o.intervalMs).toFixed(0)} readings/s), for ${(r.loadWallS / 60).toFixed(1)} min, in ${r.procs.filter((p) => p.name.startsWith('worker')).length} gateway processes; ` +
      `load average ${load(r.loadBefore)} before, ${load(r.loadAfter)} at the end of the load`,
    `- Readings: ${f(r.sent)} frames sent by the instruments (${f(r.dropped)} written while a port was closed), ${f(r.atIngest)} at ingest ` +
      `(sum of GET /devices/ID/head; ${r.mismatched.length === 0 ? 'every device matches' : `${r.mismatched.length} devices differ: ${r.mismatched.slice(0, 3).join('; ')}`}), ` +
      `${f(r.stored)} with a stored confirmation and ${f(r.anchored)} with an anchored (final) one at their gateway`,
    `- Reading to stored confirmation: p50 **${f(r.storedMs.p50)} ms**, p99 **${f(r.storedMs.p99)} ms**, max ${f(r.storedMs.max)} ms`,
    `- Reading to final anchor (the gateway holds ingest's signed \`anchored\` confirmation): p50 **${f(r.anchoredMs.p50)} ms**, p99 **${f(r.anchoredMs.p99)} ms**, max ${f(r.anchoredMs.max)} ms`,
    '',
    '| process | CPU (cores, mean over the load) | RSS max (MiB) | RSS at end (MiB) |',
    '| --- | ---: | ---: | ---: |',
    ...r.procs.map((p) => `| ${p.name} | ${Number.isFinite(p.cpu) ? p.cpu.toFixed(2) : 'n/a'} | ${p.maxRssMiB.toFixed(0)} | ${p.lastRssMiB.toFixed(0)} |`),
  ].join('\n');
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      gateways: { type: 'string', default: '500' },
      instruments: { type: 'string', default: '4' },
      interval: { type: 'string', default: '10' },
      minutes: { type: 'string', default: '10' },
      processes: { type: 'string' },
      'per-process': { type: 'string', default: '125' },
      broker: { type: 'string' },
      write: { type: 'boolean', default: false },
    },
  });
  const num = (name: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new Error(`--${name} needs a number >= ${min} (got ${JSON.stringify(v)})`);
    return n;
  };
  const gateways = Math.floor(num('gateways', values.gateways, 1));
  const perProcess = Math.floor(num('per-process', values['per-process'], 1));
  const processes = values.processes === undefined ? Math.ceil(gateways / perProcess) : Math.floor(num('processes', values.processes, 1));
  if (values.broker !== undefined && values.broker !== 'mosquitto' && values.broker !== 'aedes') throw new Error('--broker is mosquitto or aedes');
  const options: FleetOptions = {
    gateways,
    instruments: Math.floor(num('instruments', values.instruments, 1)),
    intervalMs: num('interval', values.interval, 0.1) * 1000,
    durationMs: num('minutes', values.minutes, 0.05) * 60_000,
    processes,
    ...(values.broker === undefined ? {} : { broker: values.broker }),
  };
  const command = `npm run bench -- fleet ${argv.filter((a) => a !== '--write').join(' ')}`.trim();
  const report = await runFleet(options);
  const text = formatFleetReport(report, command, await machineLine());
  process.stdout.write(`${text}\n`);
  if (values.write) {
    const body = [
      'Issue #14: a fleet of shipped gateways (`startGateway` from each gateway.yaml, own LevelDB outbox and key) with emulated HJ 212',
      'data loggers on the mock serial binding, several gateways per process, against one ingest (bench/src/fleet.ts).',
      '',
      text,
    ].join('\n');
    process.stderr.write(`wrote ${await writeMarkdownSection(join(repoRoot, 'docs', 'BENCHMARKS.md'), '## Fleet of gateways (issue #14)', body)}\n`);
  }
  const ok = report.mismatched.length === 0 && report.anchored === report.sent && report.sent > 0;
  if (!ok) process.exitCode = 1;
}
