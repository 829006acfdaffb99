/**
 * Free space of the data folder, checked periodically. Below `warnAtFreeBytes`: a warning (log, /status, the
 * MQTT health topic). Below `stopAtFreeBytes`: the policy. The one policy today, `refuse-new`, stops taking new
 * readings (each one refused is counted, per instrument, and an alarm is raised) and never deletes an unsent
 * reading: what was taken stays until ingest has confirmed it. A refused reading was never taken, so the chain
 * has no gap; the instrument's own memory (a data logger keeps its history) is where it can be recovered.
 */
import { statfs as fsStatfs } from 'node:fs/promises';
import type { DiskPolicy } from '../config/config.ts';

export type DiskLevel = 'ok' | 'warn' | 'stop' | 'unknown';

export interface FsSpace {
  /** Blocks available to an unprivileged user. */
  bavail: number | bigint;
  /** Block size, bytes. */
  bsize: number | bigint;
}

export type StatfsFn = (path: string) => Promise<FsSpace>;

export interface DiskStatus {
  level: DiskLevel;
  freeBytes: number | undefined;
  warnAtFreeBytes: number;
  stopAtFreeBytes: number;
  policy: DiskPolicy;
  /** Readings refused since start (policy `refuse-new` at the stop level). */
  refused: number;
  checkedAt: number | undefined;
  error: string | undefined;
}

export interface DiskMonitorOptions {
  dir: string;
  warnAtFreeBytes: number;
  stopAtFreeBytes: number;
  policy?: DiskPolicy;
  checkEveryMs?: number;
  /** Default fs.promises.statfs. */
  statfs?: StatfsFn;
  now?: () => number;
  onChange?: (status: DiskStatus, previous: DiskLevel) => void;
}

/** Leaving a level needs this much more than its threshold, so a disk hovering at the line does not flap. */
const HYSTERESIS = 0.02;

export class DiskMonitor {
  readonly #o: Required<Omit<DiskMonitorOptions, 'onChange'>> & Pick<DiskMonitorOptions, 'onChange'>;
  #level: DiskLevel = 'unknown';
  #free: number | undefined;
  #refused = 0;
  #checkedAt: number | undefined;
  #error: string | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: DiskMonitorOptions) {
    if (typeof options.dir !== 'string' || options.dir === '') throw new TypeError('dir must be a non-empty string');
    if (!(options.stopAtFreeBytes < options.warnAtFreeBytes)) throw new RangeError('stopAtFreeBytes must be below warnAtFreeBytes');
    this.#o = {
      policy: 'refuse-new',
      checkEveryMs: 30_000,
      statfs: (p) => fsStatfs(p),
      now: Date.now,
      ...options,
    };
  }

  async start(): Promise<void> {
    await this.check();
    this.#timer ??= setInterval(() => void this.check(), this.#o.checkEveryMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async check(): Promise<DiskStatus> {
    try {
      const s = await this.#o.statfs(this.#o.dir);
      this.#free = Math.floor(Number(s.bavail) * Number(s.bsize));
      this.#error = undefined;
    } catch (err) {
      // cannot tell: keep taking (refusing on a failed statfs would stop evidence for a monitoring fault)
      this.#free = undefined;
      this.#error = (err as Error).message;
    }
    this.#checkedAt = this.#o.now();
    this.#setLevel(this.#levelFor(this.#free));
    return this.status();
  }

  /** False when a new reading must be refused now (stop level under `refuse-new`). */
  admits(): boolean {
    return !(this.#level === 'stop' && this.#o.policy === 'refuse-new');
  }

  /** Counts one refused reading. */
  refuse(): void {
    this.#refused++;
  }

  status(): DiskStatus {
    return {
      level: this.#level,
      freeBytes: this.#free,
      warnAtFreeBytes: this.#o.warnAtFreeBytes,
      stopAtFreeBytes: this.#o.stopAtFreeBytes,
      policy: this.#o.policy,
      refused: this.#refused,
      checkedAt: this.#checkedAt,
      error: this.#error,
    };
  }

  #levelFor(free: number | undefined): DiskLevel {
    if (free === undefined) return 'unknown';
    const { warnAtFreeBytes: warn, stopAtFreeBytes: stop } = this.#o;
    const up = (t: number) => t * (1 + HYSTERESIS);
    if (free < stop) return 'stop';
    if (this.#level === 'stop' && free < up(stop)) return 'stop';
    if (free < warn) return 'warn';
    if (this.#level === 'warn' && free < up(warn)) return 'warn';
    return 'ok';
  }

  #setLevel(level: DiskLevel): void {
    const previous = this.#level;
    if (level === previous) return;
    this.#level = level;
    this.#o.onChange?.(this.status(), previous);
  }
}
