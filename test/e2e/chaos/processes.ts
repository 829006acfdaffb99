/**
 * Child processes for the chaos test and the gateway benches: a real mosquitto on a free 127.0.0.1 port with a
 * temp config (never the system one on 1883), and TypeScript entry points run with node + tsx.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mulberry32 } from '@stele/core';
import { readLines } from '../../../simulator/src/sim/processes.ts';

export { mulberry32 };
export { freePort, waitForPort } from '@stele/testkit';
export { sleep } from '@stele/core';
import { freePort, waitForPort } from '@stele/testkit';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const AGENT_SCRIPT = join(REPO_ROOT, 'test', 'e2e', 'chaos', 'agent-process.ts');
export const INGEST_SCRIPT = join(REPO_ROOT, 'test', 'e2e', 'chaos', 'ingest-process.ts');



export interface Child {
  proc: ChildProcess;
  /** Every stdout line, as read. */
  lines: string[];
  /** The last stderr lines (bounded). */
  errTail: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILLs the child's whole process group (it and what it started, e.g. ingest and its anvil); needs `group`. */
  killGroup(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawns `node --import tsx SCRIPT ARGS` from the repo root. */
export interface SpawnOptions {
  onLine?: (line: string) => void;
  keepLines?: number;
  /** Start it as the leader of its own process group, so that {@link Child.killGroup} reaches its children too. */
  group?: boolean;
}

export function spawnTs(script: string, args: string[], options: SpawnOptions = {}): Child {
  return spawnChild(process.execPath, ['--import', 'tsx', script, ...args], options);
}

export function spawnChild(cmd: string, args: string[], options: SpawnOptions = {}): Child {
  const proc = spawn(cmd, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env }, detached: options.group === true });
  const { lines, errTail } = readLines(proc, options.keepLines ?? 2000, options.onLine);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => proc.once('exit', (code, signal) => r({ code, signal })));
  return {
    proc,
    lines,
    errTail,
    exited,
    async kill(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      let timer: NodeJS.Timeout | undefined;
      const forced = new Promise<void>((r) => {
        timer = setTimeout(() => {
          proc.kill('SIGKILL');
          r();
        }, 20_000);
      });
      await Promise.race([exited, forced]);
      clearTimeout(timer);
      return exited;
    },
    async killGroup() {
      if (options.group !== true || proc.pid === undefined) throw new Error('killGroup needs a child spawned with group: true');
      try {
        process.kill(-proc.pid, 'SIGKILL');
      } catch {
        /* the group is gone already */
      }
      return exited;
    },
  };
}

export interface Mosquitto {
  port: number;
  url: string;
  /** SIGTERM and wait (the broker is down). */
  stop(): Promise<void>;
  /** Starts it again on the same port. */
  start(): Promise<void>;
  running(): boolean;
}

/** A mosquitto broker of our own: temp config, 127.0.0.1 only, anonymous, no persistence. */
export async function startMosquitto(dir: string, extraConfig: string[] = []): Promise<Mosquitto> {
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(conf, [`listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence false', 'log_dest stderr', 'log_type error', 'log_type warning', ...extraConfig, ''].join('\n'));
  let child: Child | undefined;
  const start = async () => {
    child = spawnChild('mosquitto', ['-c', conf]);
    await Promise.race([
      waitForPort(port),
      child.exited.then(({ code }) => {
        throw new Error(`mosquitto exited (${code}): ${child?.errTail.join(' | ')}`);
      }),
    ]);
  };
  await start();
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    async stop() {
      await child?.kill('SIGTERM');
      child = undefined;
    },
    start,
    running: () => child !== undefined,
  };
}

/** JSON lines of a child's stdout that parse (others ignored). */
export function jsonLines(lines: readonly string[]): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const l of lines) {
    if (!l.startsWith('{')) continue;
    try {
      out.push(JSON.parse(l) as Record<string, unknown>);
    } catch {
      // a partial line
    }
  }
  return out;
}
