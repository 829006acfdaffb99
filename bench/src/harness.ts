import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { keyIdOf, type Signer } from '@stele/core';
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';

/**
 * A small benchmark harness: run a function for about `durationMs`, `repeats` times (default 3), and report the
 * median rate and every run. Sync functions run in a tight loop; a function that returns a promise is awaited
 * one call at a time (sequential latency-bound throughput, which is what a single verifier loop sees).
 */

export interface BenchOptions {
  /** Length of each measured run in ms. Default 1000. Each run does at least one call, however long it takes. */
  durationMs?: number;
  /** Number of measured runs. Default 3. */
  repeats?: number;
  /** Warm-up before the first run, in ms (JIT, caches, lazy key import). Default 200. */
  warmupMs?: number;
  /** Units of work per call (e.g. bytes / 1e6 for MB/s, 100 for a batch of 100 records). Default 1. */
  unitsPerCall?: number;
  /** Name of the unit reported. Default 'ops/s'. */
  unit?: string;
  /** Called after each run with its rate (for progress lines). */
  onRun?: (run: number, rate: number) => void;
}

export interface BenchResult {
  name: string;
  unit: string;
  /** Median of `runs`. */
  median: number;
  /** Rate of each run, in `unit`. */
  runs: number[];
  /** Calls made in each run. */
  calls: number[];
}

type Fn = () => unknown;

const isThenable = (v: unknown): v is PromiseLike<unknown> =>
  typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';

/** Runs `fn` for about `ms` (at least one call); returns [calls, elapsed ms]. */
async function runFor(fn: Fn, ms: number, async: boolean): Promise<[number, number]> {
  const start = performance.now();
  const deadline = start + ms;
  let calls = 0;
  let now = start;
  // Check the clock every `stride` calls so that very fast functions (~1 µs) are not dominated by now().
  let stride = 1;
  do {
    const t0 = now;
    for (let i = 0; i < stride; i++) {
      if (async) await fn();
      else fn();
    }
    calls += stride;
    now = performance.now();
    if (now - t0 < 1 && stride < 1 << 20) stride *= 2;
  } while (now < deadline);
  return [calls, now - start];
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Measures `fn` (see BenchOptions for the defaults). */
export async function bench(name: string, fn: Fn, options: BenchOptions = {}): Promise<BenchResult> {
  const durationMs = options.durationMs ?? 1000;
  const repeats = options.repeats ?? 3;
  const unitsPerCall = options.unitsPerCall ?? 1;
  const first = fn();
  const async = isThenable(first);
  if (async) await first;
  await runFor(fn, options.warmupMs ?? 200, async);
  const runs: number[] = [];
  const calls: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const [n, elapsedMs] = await runFor(fn, durationMs, async);
    const rate = (n * unitsPerCall) / (elapsedMs / 1000);
    runs.push(rate);
    calls.push(n);
    options.onRun?.(r + 1, rate);
  }
  return { name, unit: options.unit ?? 'ops/s', median: median(runs), runs, calls };
}

/** Formats a rate with 3 significant digits and thousands separators (e.g. 12 300, 45.6, 0.123). */
export function formatRate(rate: number): string {
  if (rate >= 1000) return Math.round(Number(rate.toPrecision(3))).toLocaleString('en-US');
  return rate.toPrecision(3);
}

/** A markdown table of results: name, median, unit, the runs. */
export function resultsTable(results: readonly BenchResult[]): string {
  const lines = ['| benchmark | median | unit | runs |', '|---|---:|---|---|'];
  for (const r of results) {
    lines.push(`| ${r.name} | ${formatRate(r.median)} | ${r.unit} | ${r.runs.map(formatRate).join(' / ')} |`);
  }
  return lines.join('\n');
}

/**
 * Replaces the section `heading` (a "## " line, up to the next "## " heading) of the markdown file at `path`, or
 * appends it; creates the file with a short preamble when it is missing. Returns `path`.
 */
export async function writeMarkdownSection(path: string, heading: string, body: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    text = '# Benchmarks\n\nMeasured numbers only; every figure says where and how it was measured.\n\n';
  }
  const section = `${heading}\n\n${body.trim()}\n\n`;
  const start = text.indexOf(`${heading}\n`);
  if (start === -1) {
    text = `${text.trimEnd()}\n\n${section}`;
  } else {
    const next = text.indexOf('\n## ', start + heading.length);
    text = text.slice(0, start) + section + (next === -1 ? '' : text.slice(next + 1));
  }
  await writeFile(path, `${text.trimEnd()}\n`);
  return path;
}

/** A fresh P-256 key pair from node:crypto: the private KeyObject and the SEC1 uncompressed public key (65 bytes). */
export function nodeP256Key(): { privateKey: KeyObject; publicKey: KeyObject; raw: Uint8Array<ArrayBuffer> } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const raw = new Uint8Array(65);
  raw[0] = 0x04;
  raw.set(Buffer.from(jwk.x!, 'base64url'), 1);
  raw.set(Buffer.from(jwk.y!, 'base64url'), 33);
  return { privateKey, publicKey, raw };
}

/** An ES256 signer over node:crypto: about 40,000 signatures/s here, against about 1,000 for the noble test signer. */
export function nodeSigner(): Signer {
  const { privateKey, raw } = nodeP256Key();
  return {
    algorithm: 'ES256',
    backend: 'software',
    keyId: keyIdOf(raw),
    publicKey: raw,
    sign: async (message: Uint8Array) => new Uint8Array(sign('sha256', message, { key: privateKey, dsaEncoding: 'ieee-p1363' })),
  };
}

/** USER_HZ on Linux: the unit of the CPU times in /proc. */
export const USER_HZ = 100;

/**
 * CPU seconds (user + system) of a process, or of one of its threads (`tid`), from /proc/PID/stat (Linux). Throws
 * when the process is gone.
 */
export function procCpuSeconds(pid: number, tid?: number): number {
  const stat = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8');
  // the name in parentheses may hold spaces and parentheses: the fields start after the last ')'
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / USER_HZ;
}

/** A process's name (/proc/PID/comm), or undefined when it is gone. */
export function procComm(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}
