/**
 * The fault injectors of `stele sim` beyond the first five (run.ts): each breaks one part of the shipped path from
 * outside the component under test, the way the fault happens in the field.
 *
 * - {@link TcpProxy}: a network partition between a gateway and the broker (the gateway's config names the proxy).
 * - {@link StatementTap}: a client of the broker that sees a gateway's statements and puts copies back on the wire
 *   (a duplicate delivery; an old statement replayed).
 * - {@link deleteOutboxEntry}: a reading deleted from a stopped gateway's LevelDB outbox.
 * - {@link swapKey}: the gateway's key file replaced by another key.
 * - {@link SimClock}: the gateway's wall clock (a preload, clock-hook.mjs, shifts Date in that process only; a
 *   `timedatectl` on the gateway's PATH answers whether "NTP" is synchronised). Used only by the sim.
 * - {@link SmallDisk}: the outbox on a small tmpfs that a ballast file fills (needs root to mount).
 */
import { execFile } from 'node:child_process';
import { chmod, mkdir, open, rm, statfs, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Level } from 'level';
import mqtt, { type MqttClient } from 'mqtt';
import { decodeCbor, encodeCbor } from '@stele/core';
import { loadOrCreateSoftwareSigner } from '@stele/device';

/** A TCP proxy on 127.0.0.1: `drop` resets every connection and refuses new ones; `stall` holds every byte until healed. */
export class TcpProxy {
  private server: net.Server | undefined;
  private readonly pairs = new Set<{ a: net.Socket; b: net.Socket }>();
  private mode: 'pass' | 'drop' | 'stall' = 'pass';
  /** Connections accepted, and reset by a drop, since start. */
  accepted = 0;
  reset = 0;

  constructor(
    readonly port: number,
    private readonly target: { host: string; port: number },
  ) {}

  async start(): Promise<void> {
    const server = net.createServer({ noDelay: true }, (a) => {
      this.accepted++;
      if (this.mode === 'drop') {
        this.reset++;
        a.resetAndDestroy();
        return;
      }
      const b = net.connect({ host: this.target.host, port: this.target.port, noDelay: true });
      const pair = { a, b };
      this.pairs.add(pair);
      const end = () => {
        this.pairs.delete(pair);
        a.destroy();
        b.destroy();
      };
      a.on('error', end).on('close', end);
      b.on('error', end).on('close', end);
      // Held, a side is unpiped as well as paused: pipe() resumes its source whenever the other side drains, and
      // piping a paused socket resumes it, so a pause alone let bytes through a stall (a reconnect got a free link).
      if (this.mode !== 'stall') this.flow(pair);
    });
    await new Promise<void>((res, rej) => {
      server.once('error', rej);
      server.listen(this.port, '127.0.0.1', () => res());
    });
    this.server = server;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  /** The partition: `drop` (connections reset, new ones refused) or `stall` (bytes held both ways, as on a dead link TCP keeps retrying). */
  partition(mode: 'drop' | 'stall'): void {
    this.mode = mode;
    for (const { a, b } of this.pairs) {
      if (mode === 'drop') {
        this.reset++;
        a.resetAndDestroy();
        b.destroy();
      } else {
        this.hold({ a, b });
      }
    }
  }

  heal(): void {
    this.mode = 'pass';
    for (const pair of this.pairs) this.flow(pair);
  }

  private flow({ a, b }: { a: net.Socket; b: net.Socket }): void {
    a.pipe(b);
    b.pipe(a);
  }

  private hold({ a, b }: { a: net.Socket; b: net.Socket }): void {
    a.unpipe(b);
    b.unpipe(a);
    a.pause();
    b.pause();
  }

  async close(): Promise<void> {
    for (const { a, b } of this.pairs) {
      a.destroy();
      b.destroy();
    }
    const server = this.server;
    this.server = undefined;
    if (server !== undefined) await new Promise<void>((r) => server.close(() => r()));
  }
}

/** Most statements a tap keeps (the first ones: a replay uses an old one). */
const TAP_KEEP = 4096;

/**
 * A client of the broker subscribed to one gateway's statements topic. While `duplicating`, every statement it sees
 * is published again on the same topic (ingest gets each twice); `replayOldest` publishes the first one it kept.
 */
export class StatementTap {
  readonly kept: Uint8Array[] = [];
  seen = 0;
  republished = 0;
  duplicating = false;
  /** Copies this tap published and will see again on its subscription. */
  readonly echoes = new Map<string, number>();
  private constructor(
    private readonly client: MqttClient,
    readonly topic: string,
  ) {}

  static async start(brokerUrl: string, device: string): Promise<StatementTap> {
    const client = await mqtt.connectAsync(brokerUrl, { clientId: `sim-tap-${device}-${Math.random().toString(16).slice(2, 10)}`, reconnectPeriod: 200, connectTimeout: 5000 });
    const tap = new StatementTap(client, `stele/v1/${device}/statements`);
    // our own copies come back on the subscription: each is recognised (by its bytes) and not copied again
    const echoes = tap.echoes;
    client.on('message', (topic, payload) => {
      if (topic !== tap.topic) return;
      const hex = payload.toString('hex');
      const echo = echoes.get(hex) ?? 0;
      if (echo > 0) {
        if (echo === 1) echoes.delete(hex);
        else echoes.set(hex, echo - 1);
        return;
      }
      tap.seen++;
      const bytes = new Uint8Array(payload);
      if (tap.kept.length < TAP_KEEP) tap.kept.push(bytes);
      if (tap.duplicating && echoes.size < TAP_KEEP) {
        tap.republished++;
        echoes.set(hex, (echoes.get(hex) ?? 0) + 1);
        client.publish(tap.topic, Buffer.from(bytes), { qos: 1 });
      }
    });
    await client.subscribeAsync(tap.topic, { qos: 1 });
    // after a broker outage, subscribe again (the sim's broker keeps no sessions)
    client.on('connect', () => void client.subscribeAsync(tap.topic, { qos: 1 }).catch(() => undefined));
    return tap;
  }

  /** Publishes the oldest statement kept again, as an attacker replaying a recorded message would. */
  async replayOldest(): Promise<Uint8Array | undefined> {
    const old = this.kept[0];
    if (old === undefined) return undefined;
    const hex = Buffer.from(old).toString('hex');
    this.echoes.set(hex, (this.echoes.get(hex) ?? 0) + 1);
    await this.client.publishAsync(this.topic, Buffer.from(old), { qos: 1 });
    return old;
  }

  async close(): Promise<void> {
    await this.client.endAsync(true).catch(() => undefined);
  }
}

/** The 64-byte ES256 signature at the end of a COSE_Sign1 statement (the last bstr of its array). */
export function statementSignature(statement: Uint8Array): string {
  return Buffer.from(statement.subarray(statement.length - 64)).toString('hex');
}

function asMap(v: unknown): Map<unknown, unknown> {
  if (v instanceof Map) return v;
  if (v !== null && typeof v === 'object') return new Map(Object.entries(v));
  throw new Error('outbox record is not a map');
}

/**
 * Deletes one unacknowledged reading from a stopped gateway's outbox (the middle one of the unacknowledged range).
 * Returns its seq and the acked/head marks, or undefined when nothing is unacknowledged.
 */
export async function deleteOutboxEntry(dataDir: string): Promise<{ seq: number; acked: number; head: number } | undefined> {
  const db = new Level<string, Uint8Array>(join(dataDir, 'outbox'), { keyEncoding: 'utf8', valueEncoding: 'view' });
  await db.open();
  try {
    const acked = asMap(decodeCbor((await db.get('m!acked')) ?? encodeCbor({ upTo: 0 }))).get('upTo') as number;
    const head = asMap(decodeCbor((await db.get('m!head'))!)).get('seq') as number;
    if (head <= acked) return undefined;
    const seq = acked + Math.ceil((head - acked) / 2);
    await db.del(`e!${String(seq).padStart(16, '0')}`);
    return { seq, acked, head };
  } finally {
    await db.close();
  }
}

/** Replaces the key file at `path` with a new P-256 key (same path, mode 0600); returns the new key id (hex). */
export async function swapKey(path: string): Promise<string> {
  await rm(path, { force: true });
  const signer = await loadOrCreateSoftwareSigner(path);
  return Buffer.from(signer.keyId).toString('hex');
}

/**
 * The wall clock of one gateway process, as the sim sets it: `offsetMs` added to Date (clock-hook.mjs reads the
 * state file, at most every 50 ms), and what its `timedatectl show -p NTPSynchronized --value` answers.
 */
export class SimClock {
  readonly file: string;
  readonly binDir: string;
  offsetMs = 0;
  synced = true;

  constructor(dir: string) {
    this.file = join(dir, 'clock.json');
    this.binDir = join(dir, 'clock-bin');
  }

  async init(): Promise<void> {
    await mkdir(this.binDir, { recursive: true });
    const script = join(this.binDir, 'timedatectl');
    // the gateway's probe runs `timedatectl show -p NTPSynchronized --value`: answer from the state file
    await writeFile(script, `#!/bin/sh\ngrep -q '"synced":true' ${JSON.stringify(this.file)} && echo yes || echo no\n`);
    await chmod(script, 0o755);
    await this.write();
  }

  async set(state: { offsetMs?: number; synced?: boolean }): Promise<void> {
    if (state.offsetMs !== undefined) this.offsetMs = state.offsetMs;
    if (state.synced !== undefined) this.synced = state.synced;
    await this.write();
  }

  private async write(): Promise<void> {
    const tmp = `${this.file}.tmp`;
    await writeFile(tmp, JSON.stringify({ offsetMs: this.offsetMs, synced: this.synced }));
    const { rename } = await import('node:fs/promises');
    await rename(tmp, this.file);
  }

  /** The environment of the gateway process: the preload and the PATH with the fake timedatectl first. */
  env(): Record<string, string> {
    const hook = fileURLToPath(new URL('./clock-hook.mjs', import.meta.url));
    return {
      STELE_SIM_CLOCK_FILE: this.file,
      NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${new URL(`file://${hook}`).href}`.trim(),
      PATH: `${this.binDir}:${process.env.PATH ?? ''}`,
    };
  }
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => execFile(cmd, args, { timeout: 10_000 }, (err, _o, stderr) => (err ? reject(new Error(`${cmd} ${args.join(' ')}: ${stderr.trim() || err.message}`)) : resolve())));
}

/** Why a small disk cannot be made here, or undefined when it can (root, Linux). */
export function smallDiskSkipReason(): string | undefined {
  if (process.platform !== 'linux') return 'disk-full needs Linux (a tmpfs mount)';
  if (process.getuid?.() !== 0) return 'disk-full needs root to mount a small tmpfs for the outbox (run stele sim as root, or in a container)';
  return undefined;
}

/** A small tmpfs mounted where a gateway keeps its data; `fill` leaves `freeBytes` free with a ballast file. */
export class SmallDisk {
  private mounted = false;
  constructor(
    readonly dir: string,
    readonly sizeBytes: number,
  ) {}

  async mount(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await run('mount', ['-t', 'tmpfs', '-o', `size=${this.sizeBytes},mode=0700`, 'stele-sim', this.dir]);
    this.mounted = true;
  }

  async free(): Promise<number> {
    const s = await statfs(this.dir);
    return s.bavail * s.bsize;
  }

  /** Writes a ballast file so that about `freeBytes` stay free. */
  async fill(freeBytes: number): Promise<void> {
    const extra = (await this.free()) - freeBytes;
    if (extra <= 0) return;
    const fh = await open(join(this.dir, 'ballast'), 'a');
    try {
      const chunk = Buffer.alloc(1 << 20);
      for (let left = extra; left > 0; left -= chunk.length) await fh.write(chunk, 0, Math.min(chunk.length, left));
    } finally {
      await fh.close();
    }
  }

  async empty(): Promise<void> {
    await rm(join(this.dir, 'ballast'), { force: true });
  }

  async unmount(): Promise<void> {
    if (!this.mounted) return;
    await run('umount', ['-l', this.dir]).catch(() => undefined);
    this.mounted = false;
  }
}
