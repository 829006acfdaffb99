/**
 * Raw limits of this machine: the primitives Stele's throughput is built from.
 *
 *   npm run bench                     all benchmarks, table on stdout
 *   npm run bench -- sha              only those whose name contains "sha" (case-insensitive)
 *   npm run bench -- --write          all, then rewrite the "Raw limits" section of docs/BENCHMARKS.md
 *   npm run bench -- --ms 500         length of each of the 3 runs (default 1000)
 *   npm run bench -- slow-key [...]   the slow-key scenario instead (bench/src/slow-key.ts; `--write` rewrites the
 *                                     "Slow keys" section; about 75 s)
 *   npm run bench -- gateway-replay   100k buffered readings replayed to real ingest (gateway-replay.ts)
 *   npm run bench -- ingest-throughput  readings/s through real ingest (LevelDB, PostgreSQL) next to the raw P-256
 *                                     verify rate of the same run (ingest-throughput.ts)
 *   npm run bench -- hj212-resync     HJ 212 decoder on valid, noisy and hostile streams (hj212-resync.ts)
 *   npm run bench -- gateway-soak     16 instruments at 1 Hz for 10 minutes, max RSS per minute (gateway-soak.ts)
 *   npm run bench -- fleet [...]      500 gateways x 4 instruments against one ingest, 10 minutes (fleet.ts; --minutes,
 *                                     --gateways for a short run; `--write` rewrites the "Fleet" section)
 *   npm run bench -- seed-fleet [...] 19,000 signing devices, one reading a minute each, 10 minutes (seed-fleet.ts;
 *                                     --devices, --minutes, --store leveldb|postgres; `--write`)
 *
 * Progress goes to stderr, the markdown table to stdout. The whole run takes about 40 s with the defaults.
 */
import { createHash, sign, verify, webcrypto } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { p256 } from '@noble/curves/nist.js';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { Level } from 'level';
import { MerkleTree, hashLeaf, rootFromLeafHashes } from '@stele/core/rfc9162';
import { bench, formatRate, nodeP256Key, resultsTable, writeMarkdownSection, type BenchOptions, type BenchResult } from './harness.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

interface Case {
  name: string;
  /** Prepares state; returns the function to measure and an optional cleanup. */
  setup(): Promise<{ fn: () => unknown; cleanup?: () => Promise<void> }>;
  options?: BenchOptions;
}

const MESSAGE = new Uint8Array(200).map((_, i) => (i * 7 + 3) & 0xff); // about one signed reading
const MIB = new Uint8Array(1 << 20).map((_, i) => (i * 13) & 0xff);

/** A P-256 key as node KeyObjects, SEC1 public key bytes and a signature over MESSAGE (r||s, 64 bytes). */
function p256Fixture() {
  const { privateKey, publicKey, raw } = nodeP256Key();
  const signature = new Uint8Array(sign('sha256', MESSAGE, { key: privateKey, dsaEncoding: 'ieee-p1363' }));
  return { privateKey, publicKey, raw, signature };
}

const cases: Case[] = [
  {
    name: 'node:crypto P-256 sign (ieee-p1363)',
    async setup() {
      const { privateKey } = p256Fixture();
      return { fn: () => sign('sha256', MESSAGE, { key: privateKey, dsaEncoding: 'ieee-p1363' }) };
    },
    options: { unit: 'sign/s' },
  },
  {
    name: 'node:crypto P-256 verify (ieee-p1363)',
    async setup() {
      const { publicKey, signature } = p256Fixture();
      return {
        fn: () => {
          if (!verify('sha256', MESSAGE, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature)) throw new Error('bad');
        },
      };
    },
    options: { unit: 'verify/s' },
  },
  {
    name: 'WebCrypto P-256 verify (key imported once)',
    async setup() {
      const { raw, signature } = p256Fixture();
      const subtle = globalThis.crypto?.subtle ?? webcrypto.subtle;
      const key = await subtle.importKey('raw', raw, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
      return {
        fn: async () => {
          if (!(await subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, key, signature, MESSAGE))) throw new Error('bad');
        },
      };
    },
    options: { unit: 'verify/s' },
  },
  {
    name: 'WebCrypto P-256 importKey + verify',
    async setup() {
      const { raw, signature } = p256Fixture();
      const subtle = globalThis.crypto?.subtle ?? webcrypto.subtle;
      return {
        fn: async () => {
          const key = await subtle.importKey('raw', raw, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
          if (!(await subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, key, signature, MESSAGE))) throw new Error('bad');
        },
      };
    },
    options: { unit: 'verify/s' },
  },
  {
    name: '@noble/curves p256 verify (lowS: false)',
    async setup() {
      const { raw, signature } = p256Fixture();
      return {
        fn: () => {
          if (!p256.verify(signature, MESSAGE, raw, { lowS: false })) throw new Error('bad');
        },
      };
    },
    options: { unit: 'verify/s' },
  },
  {
    name: 'node:crypto SHA-256, 200 B',
    async setup() {
      return { fn: () => createHash('sha256').update(MESSAGE).digest() };
    },
    options: { unit: 'MB/s', unitsPerCall: MESSAGE.length / 1e6 },
  },
  {
    name: '@noble/hashes SHA-256, 200 B',
    async setup() {
      return { fn: () => nobleSha256(MESSAGE) };
    },
    options: { unit: 'MB/s', unitsPerCall: MESSAGE.length / 1e6 },
  },
  {
    name: 'node:crypto SHA-256, 1 MiB',
    async setup() {
      return { fn: () => createHash('sha256').update(MIB).digest() };
    },
    options: { unit: 'MB/s', unitsPerCall: MIB.length / 1e6 },
  },
  {
    name: '@noble/hashes SHA-256, 1 MiB',
    async setup() {
      return { fn: () => nobleSha256(MIB) };
    },
    options: { unit: 'MB/s', unitsPerCall: MIB.length / 1e6 },
  },
  {
    name: 'LevelDB batch sync:true, 100 x 200 B',
    async setup() {
      const dir = await mkdtemp(join(tmpdir(), 'stele-bench-level-'));
      const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' });
      await db.open();
      let seq = 0;
      return {
        fn: () => {
          const ops = [];
          for (let i = 0; i < 100; i++) {
            ops.push({ type: 'put' as const, key: `r/${String(seq++).padStart(12, '0')}`, value: MESSAGE });
          }
          return db.batch(ops, { sync: true });
        },
        cleanup: async () => {
          await db.close();
          await rm(dir, { recursive: true, force: true });
        },
      };
    },
    options: { unit: 'records/s', unitsPerCall: 100 },
  },
  {
    name: 'MerkleTree build, 100k leaves (append + root)',
    async setup() {
      const leaves = Array.from({ length: 100_000 }, (_, i) => hashLeaf(new Uint8Array([i & 0xff, (i >> 8) & 0xff, i >> 16])));
      return {
        fn: () => {
          const tree = new MerkleTree();
          for (const h of leaves) tree.append(h);
          return tree.root();
        },
      };
    },
    options: { unit: 'leaves/s', unitsPerCall: 100_000, warmupMs: 0 },
  },
  {
    name: 'rootFromLeafHashes, 100k leaves',
    async setup() {
      const leaves = Array.from({ length: 100_000 }, (_, i) => hashLeaf(new Uint8Array([i & 0xff, (i >> 8) & 0xff, i >> 16])));
      return { fn: () => rootFromLeafHashes(leaves) };
    },
    options: { unit: 'leaves/s', unitsPerCall: 100_000, warmupMs: 0 },
  },
];

function parseArgs(argv: string[]): { filter: string | undefined; write: boolean; durationMs: number } {
  let filter: string | undefined;
  let write = false;
  let durationMs = 1000;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--write') write = true;
    else if (a === '--ms') durationMs = Number(argv[++i]);
    else if (a.startsWith('--')) throw new Error(`unknown option ${a}`);
    else filter = a.toLowerCase();
  }
  if (!Number.isFinite(durationMs) || durationMs <= 0) throw new Error('--ms needs a positive number');
  if (write && filter !== undefined) throw new Error('--write rewrites the whole section: run it without a filter');
  return { filter, write, durationMs };
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

function machineLines(command: string, durationMs: number, loadBefore: number[]): string[] {
  const load = (l: number[]): string => l.map((x) => x.toFixed(2)).join(' ');
  return [
    `- Machine: ${availableParallelism()} CPUs (nproc), ${cpuModel()}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM`,
    `- Node ${process.version} (${process.platform}-${process.arch}), @noble/curves ${pkgVersion('@noble/curves')}, ` +
      `@noble/hashes ${pkgVersion('@noble/hashes')}, level ${pkgVersion('level')}`,
    `- Date: ${new Date().toISOString()}; load average (1/5/15 min) ${load(loadBefore)} before, ${load(loadavg())} after`,
    `- Command: \`${command}\` (each figure: median of 3 runs of ~${durationMs} ms after a warm-up; the runs are listed)`,
  ];
}

function pkgVersion(name: string): string {
  try {
    const json = JSON.parse(readFileSync(join(repoRoot, 'node_modules', name, 'package.json'), 'utf8')) as { version?: string };
    return json.version ?? '?';
  } catch {
    return '?';
  }
}

const SECTION = '## Raw limits';

/** Replaces the "## Raw limits" section (up to the next "## " heading) of docs/BENCHMARKS.md, or creates it. */
async function writeSection(body: string): Promise<string> {
  return writeMarkdownSection(join(repoRoot, 'docs', 'BENCHMARKS.md'), SECTION, body);
}

async function main(): Promise<void> {
  if (process.argv[2] === 'slow-key') {
    // A scenario, not a micro-benchmark: it runs the real outbox, agent, publisher and ingest for a minute.
    const { runSlowKey } = await import('./slow-key.ts');
    await runSlowKey(process.argv.slice(3));
    return;
  }
  if (process.argv[2] === 'ingest-throughput') {
    const { main } = await import('./ingest-throughput.ts');
    await main(process.argv.slice(3));
    return;
  }
  if (process.argv[2] === 'hj212-resync') {
    const { main } = await import('./hj212-resync.ts');
    await main(process.argv.slice(3));
    return;
  }
  if (process.argv[2] === 'fleet' || process.argv[2] === 'seed-fleet') {
    const { main } = process.argv[2] === 'fleet' ? await import('./fleet.ts') : await import('./seed-fleet.ts');
    await main(process.argv.slice(3));
    return;
  }
  if (process.argv[2] === 'gateway-replay' || process.argv[2] === 'gateway-soak') {
    // Whole-system gateway benches (issue #5): 100k replay to real ingest; 16 instruments, 10-minute RSS soak.
    const bench = process.argv[2] === 'gateway-replay' ? await import('./gateway-replay.ts') : await import('./gateway-soak.ts');
    await bench.main(process.argv.slice(3));
    return;
  }
  const { filter, write, durationMs } = parseArgs(process.argv.slice(2));
  const selected = cases.filter((c) => filter === undefined || c.name.toLowerCase().includes(filter));
  if (selected.length === 0) throw new Error(`no benchmark matches ${JSON.stringify(filter)}`);
  const results: BenchResult[] = [];
  const started = performance.now();
  const loadBefore = loadavg();
  for (const c of selected) {
    process.stderr.write(`${c.name}: setting up\n`);
    const { fn, cleanup } = await c.setup();
    try {
      const result = await bench(c.name, fn, {
        durationMs,
        ...c.options,
        onRun: (run, rate) => process.stderr.write(`${c.name}: run ${run}/3 ${formatRate(rate)} ${c.options?.unit ?? 'ops/s'}\n`),
      });
      results.push(result);
    } finally {
      await cleanup?.();
    }
  }
  const table = resultsTable(results);
  process.stderr.write(`done in ${((performance.now() - started) / 1000).toFixed(1)} s\n\n`);
  process.stdout.write(`${table}\n`);
  if (write) {
    const command = `npm run bench -- --write${durationMs === 1000 ? '' : ` --ms ${durationMs}`}`;
    const body = [
      'The primitives Stele is built from, on one machine, single-threaded (one call at a time).',
      '',
      ...machineLines(command, durationMs, loadBefore),
      '',
      table,
      '',
      'WebCrypto and LevelDB calls are awaited one at a time. The LevelDB figure is bounded by fsync (`sync: true`);',
      'it is the write ceiling of an outbox or an ingest store that commits each batch durably.',
      'A load average above the CPU count means other processes shared the CPUs: treat the figures as lower bounds.',
    ].join('\n');
    process.stderr.write(`wrote ${await writeSection(body)}\n`);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
