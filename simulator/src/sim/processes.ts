/**
 * The processes of a simulation: `stele` subcommands spawned exactly as an installer or operator runs them
 * (node cli/bin/stele.mjs …), each the leader of its own process group so a power cut (SIGKILL of the group) takes
 * its children (ingest's anvil) with it; and the MQTT broker, aedes in this process, that an outage closes and
 * reopens on the same port. Taken over from test/e2e/chaos/processes.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Aedes } from 'aedes';

/** The project root: the folder holding cli/bin/stele.mjs, found upwards from this module (sources or cli/dist). */
export function findRepoRoot(start = dirname(fileURLToPath(import.meta.url))): string {
  let dir = start;
  for (let i = 0; i < 8; i++) {
    if (existsSync(join(dir, 'cli', 'bin', 'stele.mjs')) && existsSync(join(dir, 'simulator'))) return dir;
    const up = resolve(dir, '..');
    if (up === dir) break;
    dir = up;
  }
  throw new Error(`cannot find the Stele project root above ${start}`);
}

export type Exit = { code: number | null; signal: NodeJS.Signals | null };

export interface Child {
  proc: ChildProcess;
  /** The last stdout lines (bounded). */
  lines: string[];
  /** The last stderr lines (bounded). */
  errTail: string[];
  exited: Promise<Exit>;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<Exit>;
  /** SIGKILL of the whole process group: a power cut. */
  powerCut(): Promise<Exit>;
}

/** Every `stele` process group this process started and that has not exited: Ctrl-C of `stele sim` ends them too. */
const live = new Set<number>();

/** Other helpers of this run (socat of the pty pairs) to end with the groups. */
const helpers = new Set<number>();
export function trackHelper(pid: number | undefined): void {
  if (pid !== undefined) helpers.add(pid);
}

/** SIGKILLs every process group spawnStele started that still runs, and the tracked helpers (a sim interrupted by a signal). */
export function killSpawnedGroups(): void {
  for (const pid of helpers) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* gone */
    }
  }
  helpers.clear();
  for (const pid of live) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  live.clear();
}

/**
 * A child's output as lines: the last `keepLines` of stdout (each also to `onLine`) and the last 50 of stderr, for
 * the processes the simulator and the tests start.
 */
export function readLines(proc: ChildProcess, keepLines: number, onLine?: (line: string) => void): { lines: string[]; errTail: string[] } {
  const lines: string[] = [];
  const errTail: string[] = [];
  createInterface({ input: proc.stdout! }).on('line', (l) => {
    lines.push(l);
    if (lines.length > keepLines) lines.splice(0, lines.length - keepLines);
    onLine?.(l);
  });
  createInterface({ input: proc.stderr! }).on('line', (l) => {
    errTail.push(l);
    if (errTail.length > 50) errTail.shift();
  });
  return { lines, errTail };
}

export function spawnStele(root: string, args: string[], options: { onLine?: (line: string) => void; keepLines?: number; env?: Record<string, string> } = {}): Child {
  // its own process group (detached), so a power cut reaches its children; the terminal's Ctrl-C does not, hence `live`
  const proc = spawn(process.execPath, [join(root, 'cli', 'bin', 'stele.mjs'), ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env }, detached: true });
  const pid = proc.pid;
  if (pid !== undefined) {
    live.add(pid);
    proc.once('exit', () => live.delete(pid));
  }
  const { lines, errTail } = readLines(proc, options.keepLines ?? 400, options.onLine);
  const exited = new Promise<Exit>((r) => proc.once('exit', (code, signal) => r({ code, signal })));
  const alive = () => proc.exitCode === null && proc.signalCode === null;
  return {
    proc,
    lines,
    errTail,
    exited,
    async stop(graceMs = 15_000) {
      if (alive()) proc.kill('SIGTERM');
      const timer = setTimeout(() => {
        try {
          if (proc.pid !== undefined) process.kill(-proc.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }, graceMs);
      const r = await exited;
      clearTimeout(timer);
      return r;
    },
    async powerCut() {
      try {
        if (proc.pid !== undefined) process.kill(-proc.pid, 'SIGKILL');
      } catch {
        /* the group is gone already */
      }
      return exited;
    },
  };
}

/** Runs a `stele` subcommand to its end; resolves with its exit code and output. */
export async function runStele(root: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const c = spawnStele(root, args, { keepLines: 10_000 });
  const { code } = await c.exited;
  return { code, stdout: c.lines.join('\n'), stderr: c.errTail.join('\n') };
}

/** aedes on 127.0.0.1:port (anonymous: the sim's broker is local). stop() closes every connection; start() listens again on the same port. */
export class SimBroker {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private constructor(
    private readonly broker: Aedes,
    readonly port: number,
  ) {}

  static async start(port: number): Promise<SimBroker> {
    const b = new SimBroker(await Aedes.createBroker(), port);
    await b.listen();
    return b;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  get up(): boolean {
    return this.server !== undefined;
  }

  async listen(): Promise<void> {
    if (this.server !== undefined) return;
    const server = net.createServer({ noDelay: true }, (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
      this.broker.handle(socket);
    });
    await new Promise<void>((res, rej) => {
      server.once('error', rej);
      server.listen(this.port, '127.0.0.1', () => res());
    });
    this.server = server;
  }

  /** The broker goes away: no new connections, every open one reset. */
  async outage(): Promise<void> {
    const server = this.server;
    if (server === undefined) return;
    this.server = undefined;
    const closed = new Promise<void>((r) => server.close(() => r()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  async close(): Promise<void> {
    await this.outage();
    await new Promise<void>((r) => this.broker.close(() => r()));
  }
}
