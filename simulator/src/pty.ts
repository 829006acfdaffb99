/**
 * Real pseudo-terminal pairs for tests and demos: `socat pty,raw,echo=0,link=A pty,raw,echo=0,link=B` joins two
 * ptys, so a SerialTransport on A and an instrument on B talk through the kernel's tty layer with the native
 * serialport binding, as over a null-modem cable. cut() kills socat (the line is gone: both ends see a
 * disconnect, bytes in flight are lost) and restore() starts a new socat with the same link paths.
 *
 * Findings (socat 1.7.4.4, Debian 12): the link symlinks appear a few ms after start and socat removes them on
 * SIGTERM; bytes written towards a pty whose slave side nobody has open are lost (so, as on a real line, an
 * instrument talking while the gateway's port is closed talks to no one); the baud rate means nothing on a pty
 * (LinePacer below spaces bytes as the line would).
 *
 * Needs the `socat` binary (Debian: `apt-get install socat`); socatAvailable() tells, SOCAT_SKIP_REASON says why a
 * suite skipped.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const SOCAT_SKIP_REASON = 'skipped: socat is not installed (Debian: apt-get install socat; CI installs it from .ci/apt-packages)';

let available: boolean | undefined;
/** True when `socat -V` runs. Cached. */
export function socatAvailable(): boolean {
  if (available === undefined) {
    const r = spawnSync('socat', ['-V'], { stdio: 'ignore', timeout: 5000 });
    available = r.status === 0;
  }
  return available;
}

export interface PtyPairOptions {
  /** Directory for the links. Default: a new temp dir, removed by stop(). */
  dir?: string;
  /** Link names inside dir. Default 'ttyA' (gateway side) and 'ttyB' (instrument side). */
  names?: [string, string];
  /** How long to wait for socat's links. Default 5000 ms. */
  startTimeoutMs?: number;
}


export class PtyPair {
  /** Gateway side. */
  readonly pathA: string;
  /** Instrument side. */
  readonly pathB: string;
  readonly dir: string;
  private child: ChildProcess | undefined;
  private readonly ownsDir: boolean;
  private readonly startTimeoutMs: number;
  private generationCount = 0;

  private constructor(dir: string, ownsDir: boolean, names: [string, string], startTimeoutMs: number) {
    this.dir = dir;
    this.ownsDir = ownsDir;
    this.pathA = join(dir, names[0]);
    this.pathB = join(dir, names[1]);
    this.startTimeoutMs = startTimeoutMs;
  }

  /** Starts socat and waits for both links. Throws when socat is missing or the links do not appear. */
  static async start(options: PtyPairOptions = {}): Promise<PtyPair> {
    const ownsDir = options.dir === undefined;
    const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'stele-pty-')));
    const pair = new PtyPair(dir, ownsDir, options.names ?? ['ttyA', 'ttyB'], options.startTimeoutMs ?? 5000);
    try {
      await pair.restore();
    } catch (e) {
      await pair.stop();
      throw e;
    }
    return pair;
  }

  /** socat's pid while the line is up. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  get up(): boolean {
    return this.child !== undefined;
  }

  /** How many socat processes this pair has started (1 after start, +1 per restore). */
  get generation(): number {
    return this.generationCount;
  }

  /** Cuts the line: kills socat by pid and waits for it to exit and its links to go. */
  async cut(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    this.child = undefined;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill(signal);
      await exited;
    }
    // SIGKILL leaves the links behind; remove them so the path is really gone.
    for (const p of [this.pathA, this.pathB]) await unlink(p).catch(() => {});
  }

  /** (Re)starts socat with the same link paths and waits for both links. */
  async restore(): Promise<void> {
    if (this.child !== undefined) return;
    for (const p of [this.pathA, this.pathB]) await unlink(p).catch(() => {});
    const child = spawn('socat', [`pty,raw,echo=0,link=${this.pathA}`, `pty,raw,echo=0,link=${this.pathB}`], { stdio: 'ignore' });
    const failed = new Promise<Error>((resolve) => {
      child.once('error', (e) => resolve(e));
      child.once('exit', (code, sig) => resolve(new Error(`socat exited (${code ?? sig}) before its links appeared`)));
    });
    let failure: Error | undefined;
    void failed.then((e) => (failure = e));
    const deadline = Date.now() + this.startTimeoutMs;
    while (!(existsSync(this.pathA) && existsSync(this.pathB))) {
      if (failure !== undefined) throw failure;
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`socat links did not appear within ${this.startTimeoutMs} ms`);
      }
      await sleep(5);
    }
    this.child = child;
    this.generationCount++;
  }

  /** Kills socat and removes the temp dir (if this pair made it). Safe to call twice. */
  async stop(): Promise<void> {
    await this.cut();
    if (this.ownsDir) await rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * Spaces writes as a serial line of `baudRate` would (`bitsPerChar` per byte, default 10 = 8N1), in chunks of
 * `chunkBytes`: on a pty the bytes would otherwise arrive at once, whatever the baud rate. Writes are
 * serialised. `onProgress(written, total)` runs after each chunk and is awaited, e.g. to cut the line mid-frame.
 */
export class LinePacer {
  private chain: Promise<void> = Promise.resolve();
  constructor(
    private readonly write: (bytes: Uint8Array) => Promise<void>,
    readonly baudRate: number,
    private readonly options: { chunkBytes?: number; bitsPerChar?: number } = {},
  ) {
    if (!(Number.isFinite(baudRate) && baudRate > 0)) throw new RangeError('baudRate must be a positive number');
  }

  /** Resolves when the last chunk is written; rejects (and stops) when a chunk write fails. */
  send(bytes: Uint8Array, onProgress?: (written: number, total: number) => void | Promise<void>): Promise<void> {
    const run = this.chain.then(async () => {
      const chunk = this.options.chunkBytes ?? 16;
      const msPerByte = ((this.options.bitsPerChar ?? 10) * 1000) / this.baudRate;
      for (let off = 0; off < bytes.length; off += chunk) {
        const part = bytes.subarray(off, Math.min(bytes.length, off + chunk));
        const started = Date.now();
        await this.write(part);
        await onProgress?.(off + part.length, bytes.length);
        const wait = part.length * msPerByte - (Date.now() - started);
        if (wait >= 1) await sleep(wait);
      }
    });
    this.chain = run.catch(() => {});
    return run;
  }
}
