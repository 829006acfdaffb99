/**
 * Verifies a bundle file in Node a few times and prints wall and CPU time per run: run it under
 * `node --import tsx --cpu-prof bench/src/prof-verify.ts BUNDLE [RUNS]` for the CPU profile behind the
 * breakdown in docs/BENCHMARKS.md (the verifier page section).
 */
import { readFileSync } from 'node:fs';
import { parseBundleBytes } from '@stele/core';
import { verifyBundle } from '@stele/core/verify';

const file = process.argv[2];
if (file === undefined) throw new Error('usage: prof-verify.ts BUNDLE [RUNS]');
const bytes = new Uint8Array(readFileSync(file));
for (let i = 0; i < Number(process.argv[3] ?? 2); i++) {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const b = parseBundleBytes(bytes);
  const t1 = performance.now();
  const v = await verifyBundle(b);
  const t2 = performance.now();
  const cu = process.cpuUsage(c0);
  process.stdout.write(`cpu ${((cu.user + cu.system) / 1000).toFixed(0)} ms; parse ${(t1 - t0).toFixed(0)} ms, verify ${(t2 - t1).toFixed(0)} ms wall; ${v.state}\n`);
}
