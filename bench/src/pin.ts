/**
 * CPU affinity for the benches (Linux, util-linux `taskset`): the system under test on CPUs of its own, the load
 * generator and the broker on the others, so that what a worker reaches is not what the load left it, and a raw loop
 * run on the worker's CPUs measures the limit of the same cores.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { procComm } from './harness.ts';

/** CPU lists in taskset's form (`3`, `2-3`, `0-1`). */
export interface CpuSplit {
  /** The workers' CPUs (the last ones), where the raw loop runs too. */
  worker: string;
  /** Everything else: the load generator (this process), the broker, the chain. */
  load: string;
  /** Every CPU, to give back what was pinned for a run. */
  all: string;
}

const range = (from: number, to: number) => (from === to ? String(from) : `${from}-${to}`);
/** The CPUs this process may use, read before it pins itself anywhere (availableParallelism follows the pinning). */
export const CPUS = availableParallelism();

/** Every CPU of this machine. */
export function allCpus(): string {
  return range(0, CPUS - 1);
}

/**
 * `workers` CPUs for the workers and the rest for the load, or undefined when that leaves the load none (or this is
 * not Linux with taskset).
 */
export function cpuSplit(workers: number): CpuSplit | undefined {
  return spawnSync('taskset', ['--version']).error !== undefined ? undefined : splitOf(CPUS, workers);
}

/** The split of `cpus` CPUs for `workers`: the last ones theirs, at least one left for the load, else undefined. */
export function splitOf(cpus: number, workers: number): CpuSplit | undefined {
  if (!(workers >= 1 && workers < cpus)) return undefined;
  return { worker: range(cpus - workers, cpus - 1), load: range(0, cpus - workers - 1), all: range(0, cpus - 1) };
}

/** Every thread of `pid` (and those it starts later, which inherit it) on `cpus`. Throws when taskset fails. */
export function pin(pid: number, cpus: string): void {
  const r = spawnSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`taskset -a -p -c ${cpus} ${pid} failed: ${r.stderr || r.error?.message}`);
}

/**
 * Every process named `comm` (with its threads) on `cpus`, e.g. PostgreSQL's postmaster and backends (the backends
 * it forks later inherit the postmaster's); the pids pinned. Processes that end meanwhile are skipped.
 */
export function pinByName(comm: string, cpus: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || procComm(Number(entry)) !== comm) continue;
    try {
      pin(Number(entry), cpus);
      pids.push(Number(entry));
    } catch (e) {
      if (procComm(Number(entry)) !== undefined) throw e;
    }
  }
  return pids;
}

/** `work()` with this process moved to `cpus` and moved back to `back` after. */
export async function onCpus<T>(cpus: string, back: string, work: () => Promise<T>): Promise<T> {
  pin(process.pid, cpus);
  try {
    return await work();
  } finally {
    pin(process.pid, back);
  }
}
