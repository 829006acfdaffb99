/**
 * The gateway's clock state, recorded in every reading (`clock`, FORMAT.md §2) and never used to expire
 * anything (FORMAT.md §8: device time is untrusted).
 *
 * Unsynchronised when: the system says NTP is not synchronised (timedatectl, else systemd-timesyncd's flag
 * file); the date is before 2024 (a board without RTC booted at 1970 or its image date); or the wall clock
 * jumped against the monotonic clock by more than the threshold, until a later check confirms sync again.
 */
import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';
import type { ClockState } from '@stele/core';

/** Earliest plausible wall-clock time: before it, the board has no RTC and no sync yet. */
export const MIN_PLAUSIBLE_TIME_MS = Date.UTC(2024, 0, 1);

export type ClockReason = 'ntp' | 'not-synchronised' | 'no-rtc' | 'jump' | 'unknown';

export interface ClockProbeResult {
  /** Undefined when nothing on this system can tell (no timedatectl, no timesyncd flag). */
  synced: boolean | undefined;
  /** How it was found: `timedatectl`, `timesyncd`, `none`. */
  via: string;
}

export type ClockProbe = () => Promise<ClockProbeResult>;

export interface ClockStatus extends ClockState {
  reason: ClockReason;
  via: string;
  /** Jumps seen since start. */
  jumps: number;
  /** Size of the last jump, ms (positive: the wall clock went forward). */
  lastJumpMs: number | undefined;
  /** Wall-clock time of the last check. */
  checkedAt: number | undefined;
}

export interface ClockMonitorOptions {
  /** Wall clock. Default Date.now. */
  now?: () => number;
  /** Monotonic clock, ms. Default performance.now. */
  monotonic?: () => number;
  /** Default {@link probeSystemClock}. */
  probe?: ClockProbe;
  /** Default 2000. */
  jumpThresholdMs?: number;
  /** Default 10 000. */
  checkEveryMs?: number;
  onChange?: (status: ClockStatus) => void;
}

/** Asks the system whether the clock is NTP-synchronised: `timedatectl show`, else timesyncd's flag file. */
export async function probeSystemClock(): Promise<ClockProbeResult> {
  const answer = await new Promise<string | undefined>((resolve) => {
    execFile('timedatectl', ['show', '-p', 'NTPSynchronized', '--value'], { timeout: 3000 }, (err, stdout) => resolve(err ? undefined : stdout.trim()));
  });
  if (answer === 'yes') return { synced: true, via: 'timedatectl' };
  if (answer === 'no') return { synced: false, via: 'timedatectl' };
  try {
    // systemd-timesyncd touches this file once synchronised (systemd-timesyncd.service(8))
    await access('/run/systemd/timesync/synchronized');
    return { synced: true, via: 'timesyncd' };
  } catch {
    return { synced: undefined, via: 'none' };
  }
}

export class ClockMonitor {
  readonly #now: () => number;
  readonly #mono: () => number;
  readonly #probe: ClockProbe;
  readonly #thresholdMs: number;
  readonly #checkEveryMs: number;
  readonly #onChange: ((s: ClockStatus) => void) | undefined;
  #lastWall: number;
  #lastMono: number;
  #probed: ClockProbeResult = { synced: undefined, via: 'none' };
  /** Set by a jump; cleared only by a probe that started after it. */
  #jumpPending = false;
  #jumps = 0;
  #lastJumpMs: number | undefined;
  #checkedAt: number | undefined;
  #timer: NodeJS.Timeout | undefined;
  #last: string | undefined;

  constructor(options: ClockMonitorOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#mono = options.monotonic ?? (() => performance.now());
    this.#probe = options.probe ?? probeSystemClock;
    this.#thresholdMs = options.jumpThresholdMs ?? 2000;
    this.#checkEveryMs = options.checkEveryMs ?? 10_000;
    this.#onChange = options.onChange;
    if (!(this.#thresholdMs > 0)) throw new RangeError('jumpThresholdMs must be positive');
    this.#lastWall = this.#now();
    this.#lastMono = this.#mono();
  }

  /** Probes now, then every `checkEveryMs` (unref'd timer). */
  async start(): Promise<void> {
    await this.check();
    this.#timer ??= setInterval(() => void this.check().catch(() => undefined), this.#checkEveryMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One check: jump detection, then the system probe. */
  async check(): Promise<ClockStatus> {
    this.#detectJump();
    const hadJump = this.#jumpPending;
    const probed = await this.#probe();
    this.#probed = probed;
    this.#checkedAt = this.#now();
    // a jump is confirmed away only by a sync probe that began after it, and no new jump since
    if (hadJump && probed.synced === true && !this.#detectJump()) this.#jumpPending = false;
    return this.status();
  }

  /** The state to record in a reading taken now (runs the cheap jump check first). */
  state(): ClockState {
    const s = this.status();
    return { synced: s.synced, source: s.source };
  }

  status(): ClockStatus {
    this.#detectJump();
    let reason: ClockReason;
    if (this.#now() < MIN_PLAUSIBLE_TIME_MS) reason = 'no-rtc';
    else if (this.#jumpPending) reason = 'jump';
    else if (this.#probed.synced === true) reason = 'ntp';
    else if (this.#probed.synced === false) reason = 'not-synchronised';
    else reason = 'unknown';
    const synced = reason === 'ntp';
    const status: ClockStatus = {
      synced,
      source: synced ? 'ntp' : 'none',
      reason,
      via: this.#probed.via,
      jumps: this.#jumps,
      lastJumpMs: this.#lastJumpMs,
      checkedAt: this.#checkedAt,
    };
    const key = `${reason}`;
    if (key !== this.#last) {
      this.#last = key;
      this.#onChange?.(status);
    }
    return status;
  }

  /** True when the wall clock moved against the monotonic clock by more than the threshold since last call. */
  #detectJump(): boolean {
    const wall = this.#now();
    const mono = this.#mono();
    const drift = wall - this.#lastWall - (mono - this.#lastMono);
    this.#lastWall = wall;
    this.#lastMono = mono;
    if (Math.abs(drift) <= this.#thresholdMs) return false;
    this.#jumps++;
    this.#lastJumpMs = Math.round(drift);
    this.#jumpPending = true;
    return true;
  }
}
