/**
 * `tsx bench/src/verify-steps.ts BUNDLE`: core's verification of a bundle file with its per-step times
 * (VerifyOptions.timings: parse, format, signatures, inclusion, rest), wall and CPU. See docs/BENCHMARKS.md.
 */
import { readFileSync } from 'node:fs';
import { verifyBundleBytes } from '@stele/core/verify';

const file = process.argv[2];
if (file === undefined) throw new Error('usage: verify-steps.ts BUNDLE');
const bytes = new Uint8Array(readFileSync(file));
const timings: Record<string, number> = {};
const t0 = performance.now();
const c0 = process.cpuUsage();
const r = await verifyBundleBytes(bytes, { timings });
const cu = process.cpuUsage(c0);
const steps = Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, Math.round(v)]));
process.stdout.write(`${r.verdict.state}: ${(performance.now() - t0).toFixed(0)} ms wall, ${((cu.user + cu.system) / 1000).toFixed(0)} ms CPU; steps (ms wall) ${JSON.stringify(steps)}\n`);
