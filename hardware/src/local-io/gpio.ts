/**
 * GPIO through libgpiod's command-line tools (Debian package `gpiod`): `gpioget` to read a door contact,
 * `gpiomon` to follow its edges, `gpioset` to drive the local audible/visual alarm. No native addon: the tools
 * use the kernel's character-device ABI (`/dev/gpiochipN`), unlike the deprecated sysfs ABI.
 *
 * Two dialects: `v1` (libgpiod 1.x: Debian 12 / Raspberry Pi OS bookworm ship 1.6.3) and `v2` (libgpiod 2.x,
 * Debian 13): they differ in arguments and output. The command runner is injectable; tests put fake `gpioget`,
 * `gpiomon`, `gpioset` scripts first on PATH, because this machine has no GPIO chip.
 *
 * Holding an output: v1 `gpioset` releases the line when it exits (the level may then revert), so the alarm
 * output is held by a long-running `gpioset --mode=signal` (v1) / `gpioset` (v2, holds by default), which is
 * stopped and replaced when the level changes. If it exits on its own, `onError` gets GPIO_EXITED.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Measurement } from '@stele/core';
import { LocalIoError } from './errors.ts';

export type GpiodDialect = 'v1' | 'v2';

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface SpawnedCommand {
  /** stdout, line by line, until the process exits or is stopped. */
  lines: AsyncIterable<string>;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  /** SIGTERM, then wait for exit. */
  stop(): Promise<void>;
}

export interface CommandRunner {
  run(cmd: string, args: readonly string[]): Promise<CommandResult>;
  spawn(cmd: string, args: readonly string[]): SpawnedCommand;
}

/**
 * Runs commands without a shell. `env` replaces the environment (tests prepend a fake-tools folder to PATH);
 * `timeoutMs` bounds `run` (default 5000). A missing command is GPIO_COMMAND_MISSING.
 */
export function createCommandRunner(options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): CommandRunner {
  const timeoutMs = options.timeoutMs ?? 5000;
  const env = options.env ?? process.env;
  return {
    run(cmd, args) {
      return new Promise((resolve, reject) => {
        const child = spawn(cmd, [...args], { env, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
        let stdout = '';
        let stderr = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
        child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        child.on('error', (e: NodeJS.ErrnoException) => {
          reject(new LocalIoError(e.code === 'ENOENT' ? 'GPIO_COMMAND_MISSING' : 'GPIO_COMMAND_FAILED', `${cmd}: ${e.message}`, { cause: e, where: { cmd } }));
        });
        child.on('close', (code) => resolve({ code, stdout, stderr }));
      });
    },
    spawn(cmd, args) {
      const child = spawn(cmd, [...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let startError: LocalIoError | undefined;
      const exited = new Promise<number | null>((resolve) => {
        child.on('error', (e: NodeJS.ErrnoException) => {
          startError = new LocalIoError(e.code === 'ENOENT' ? 'GPIO_COMMAND_MISSING' : 'GPIO_COMMAND_FAILED', `${cmd}: ${e.message}`, { cause: e, where: { cmd } });
          resolve(null);
        });
        child.on('close', (code) => resolve(code));
      });
      const rl = createInterface({ input: child.stdout });
      async function* lines(): AsyncGenerator<string> {
        for await (const line of rl) yield line;
        if (startError !== undefined) throw startError;
      }
      return {
        lines: lines(),
        exited,
        async stop() {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
          await exited;
        },
      };
    },
  };
}

export interface GpioLine {
  /** Chip name, number or path as the tools accept it (`gpiochip0`, `0`). */
  chip: string;
  /** Line offset on the chip. */
  offset: number;
  /** Invert the logical level (`-l`). Default false. */
  activeLow?: boolean;
  /** Bias for inputs. Default: leave as is. */
  bias?: 'pull-up' | 'pull-down' | 'disable';
}

function checkLine(line: GpioLine): void {
  if (typeof line?.chip !== 'string' || line.chip === '' || line.chip.startsWith('-')) throw new TypeError('line.chip must be a chip name');
  if (!Number.isInteger(line.offset) || line.offset < 0) throw new RangeError('line.offset must be a non-negative integer');
}

function inputArgs(line: GpioLine, dialect: GpiodDialect): string[] {
  const a: string[] = [];
  if (line.activeLow) a.push('-l');
  if (line.bias !== undefined) a.push(dialect === 'v1' ? `--bias=${line.bias === 'disable' ? 'disable' : line.bias}` : `--bias=${line.bias === 'disable' ? 'disabled' : line.bias}`);
  return a;
}

/** gpioget: the line's logical level, 0 or 1. */
export async function readGpio(runner: CommandRunner, line: GpioLine, dialect: GpiodDialect = 'v1'): Promise<0 | 1> {
  checkLine(line);
  const args =
    dialect === 'v1'
      ? [...inputArgs(line, dialect), line.chip, String(line.offset)]
      : ['--numeric', ...inputArgs(line, dialect), '-c', line.chip, String(line.offset)];
  const r = await runner.run('gpioget', args);
  if (r.code !== 0) throw new LocalIoError('GPIO_COMMAND_FAILED', `gpioget exited ${String(r.code)}: ${r.stderr.trim()}`, { where: { chip: line.chip, offset: line.offset } });
  const out = r.stdout.trim();
  if (out !== '0' && out !== '1') throw new LocalIoError('GPIO_BAD_OUTPUT', 'gpioget printed neither 0 nor 1', { where: { output: out.slice(0, 40) } });
  return out === '1' ? 1 : 0;
}

export interface GpioEdge {
  offset: number;
  /** Level after the edge: 1 for rising, 0 for falling. */
  level: 0 | 1;
  /** Kernel timestamp text as printed (seconds, monotonic clock by default). */
  timestamp: string;
}

/** Parses one gpiomon line printed with the format {@link gpiomonArgs} asks for. */
export function parseGpiomonLine(text: string, dialect: GpiodDialect = 'v1'): GpioEdge {
  const m = /^(\d+) (\d) (\d+(?:\.\d+)?)$/.exec(text.trim());
  // v1 %e: 1 rising, 0 falling. v2 %e: 1 rising, 2 falling.
  const rising = '1';
  const falling = dialect === 'v1' ? '0' : '2';
  if (m === null || (m[2] !== rising && m[2] !== falling)) {
    throw new LocalIoError('GPIO_BAD_OUTPUT', 'gpiomon line is not "<offset> <edge> <time>"', { where: { output: text.slice(0, 60) } });
  }
  return { offset: Number(m[1]), level: m[2] === rising ? 1 : 0, timestamp: m[3]! };
}

/** Arguments for gpiomon watching `line` with a machine-readable format. */
export function gpiomonArgs(line: GpioLine, dialect: GpiodDialect = 'v1'): string[] {
  checkLine(line);
  return dialect === 'v1'
    ? [...inputArgs(line, dialect), '-b', '--format=%o %e %s.%n', line.chip, String(line.offset)]
    : [...inputArgs(line, dialect), '--format=%o %e %S', '-c', line.chip, String(line.offset)];
}

/** Follows the edges of a line until the signal aborts; a monitor that dies on its own throws GPIO_EXITED. */
export async function* watchGpio(runner: CommandRunner, line: GpioLine, options: { dialect?: GpiodDialect; signal?: AbortSignal } = {}): AsyncGenerator<GpioEdge> {
  const dialect = options.dialect ?? 'v1';
  const proc = runner.spawn('gpiomon', gpiomonArgs(line, dialect));
  const onAbort = () => void proc.stop();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const text of proc.lines) {
      if (options.signal?.aborted) return;
      if (text.trim() === '') continue;
      yield parseGpiomonLine(text, dialect);
    }
    if (!options.signal?.aborted) {
      const code = await proc.exited;
      throw new LocalIoError('GPIO_EXITED', `gpiomon exited (${String(code)})`, { where: { chip: line.chip, offset: line.offset } });
    }
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    await proc.stop();
  }
}

export interface DoorContact {
  id: string;
  line: GpioLine;
  /** Logical level that means open. Default 1 (reed switch to ground with pull-up: closed door pulls low). */
  openLevel?: 0 | 1;
}

export interface DoorState {
  id: string;
  open: boolean;
  level: 0 | 1;
}

export async function readDoor(runner: CommandRunner, door: DoorContact, dialect: GpiodDialect = 'v1'): Promise<DoorState> {
  const level = await readGpio(runner, door.line, dialect);
  return { id: door.id, level, open: level === (door.openLevel ?? 1) };
}

/** `{code: door id, kind: 'door', value: 'open' | 'closed'}`. */
export function doorMeasurement(state: DoorState): Measurement {
  return { code: state.id, kind: 'door', value: state.open ? 'open' : 'closed' };
}

/**
 * The local audible/visual alarm (GSP: sounder and beacon at the store) on one output line, held by a
 * long-running gpioset. `set` is idempotent; `close` leaves the line at its last level (v2) or releases it (v1).
 */
export class GpioAlarmOutput {
  private proc: SpawnedCommand | undefined;
  private level: 0 | 1 | undefined;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly runner: CommandRunner,
    private readonly line: GpioLine,
    private readonly options: { dialect?: GpiodDialect; onError?: (e: LocalIoError) => void } = {},
  ) {
    checkLine(line);
  }

  /** The level last asked for (undefined before the first set). */
  current(): boolean | undefined {
    return this.level === undefined ? undefined : this.level === 1;
  }

  set(on: boolean): Promise<void> {
    const level: 0 | 1 = on ? 1 : 0;
    this.chain = this.chain.then(async () => {
      if (this.level === level && this.proc !== undefined) return;
      const old = this.proc;
      this.proc = undefined;
      await old?.stop();
      const dialect = this.options.dialect ?? 'v1';
      const assign = `${this.line.offset}=${level}`;
      const args =
        dialect === 'v1'
          ? ['--mode=signal', ...(this.line.activeLow ? ['-l'] : []), this.line.chip, assign]
          : [...(this.line.activeLow ? ['-l'] : []), '-c', this.line.chip, assign];
      const proc = this.runner.spawn('gpioset', args);
      this.proc = proc;
      this.level = level;
      void proc.exited.then((code) => {
        if (this.proc === proc) {
          this.proc = undefined;
          this.options.onError?.(new LocalIoError('GPIO_EXITED', `gpioset exited (${String(code)}) while holding the alarm line`, { where: { chip: this.line.chip, offset: this.line.offset } }));
        }
      });
      void (async () => {
        for await (const _ of proc.lines) {
          /* drain */
        }
      })().catch(() => undefined);
    });
    return this.chain;
  }

  async close(): Promise<void> {
    await this.chain;
    const p = this.proc;
    this.proc = undefined;
    await p?.stop();
  }
}
