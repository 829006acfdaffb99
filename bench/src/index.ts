export { bench, formatRate, resultsTable } from './harness.ts';
export type { BenchOptions, BenchResult } from './harness.ts';
