/**
 * The plug-in shape of a sensor driver (STYLE.md "Plug-in shapes"): a pure decoder plus a session over a
 * SerialTransport. One deviation from the sketch there: readings carry the exact frames and their SHA-256 with
 * the measurements (not bare Measurement[]), because a Stele reading signs the digest of the bytes received
 * (FORMAT.md §2 `raw`), and only the driver still has them.
 */
import type { Measurement, SteleError } from '@stele/core';
import type { SerialTransport } from '../transport/serial-transport.ts';

/** What a driver yields: everything edge-agent's `Acquired` needs except the clock state. */
export interface SensorReading {
  /** Sensor id on this gateway (HJ 212: the logger's MN unless configured; Modbus: the device's configured id). */
  sensor: string;
  /** Gateway time when the last byte arrived, ms since the epoch (untrusted, FORMAT.md §8). */
  time: number;
  /** In the order the instrument sent them. */
  meas: Measurement[];
  /** SHA-256 of each exact frame in `frames`. */
  raw: Uint8Array[];
  /** The exact frames received. */
  frames: Uint8Array[];
  /** The instrument's own time of the record (FORMAT.md §2.3 `itime`: HJ 212 DataTime), when it sent a valid one. */
  itime?: string;
  /** The instrument's record type (FORMAT.md §2.3 `rtype`: HJ 212 CN). */
  rtype?: string;
  /** What was off but accepted (HJ 212 lenient mode). */
  anomalies?: { code: string; message: string }[];
}

/** A reading that failed its checks, a timeout, a dropped reading: counted and surfaced, never silently dropped. */
export interface DriverIssue {
  code: string;
  error: SteleError;
  /** The rejected bytes, when there are any. */
  raw?: Uint8Array;
  sensor?: string;
}

/** Options every driver takes (each driver's options extend these). */
export interface DriverCommonOptions {
  /** Called for every issue, in order. */
  onIssue?: (issue: DriverIssue) => void;
  /**
   * What a broken link does to readings(): `resume` (default) waits while the transport reconnects and goes on
   * (readings() rejects only when the transport gives up or is closed); `reject` rejects at once with the
   * SerialError SERIAL_DISCONNECTED (`disconnected: true`).
   */
  onDisconnect?: 'resume' | 'reject';
  /** Readings kept while nobody reads; beyond, the oldest is dropped with a DRIVER_OVERFLOW issue. Default 1000. */
  maxQueuedReadings?: number;
  /** Clock for SensorReading.time. Default Date.now. */
  now?: () => number;
}

export interface SessionStats {
  readings: number;
  /** Issues by code. */
  issues: Record<string, number>;
  /** Disconnects seen while the session was open. */
  disconnects: number;
}

export interface SensorSession {
  /**
   * Yields readings until the session is closed or `signal` aborts (then it simply ends). A broken link rejects
   * with `disconnected: true` (at once, or when the transport gives up: see DriverCommonOptions.onDisconnect).
   */
  readings(signal?: AbortSignal): AsyncIterable<SensorReading>;
  stats(): SessionStats;
  /** Stops reading and detaches from the transport; the transport stays with its owner. Safe to call twice. */
  close(): Promise<void>;
}

export interface SensorDriver<O extends DriverCommonOptions> {
  /** 'hj212', 'modbus-rtu', … */
  readonly kind: string;
  /** Opens the transport if needed and starts a session on it. */
  open(options: O, transport: SerialTransport): Promise<SensorSession>;
}
