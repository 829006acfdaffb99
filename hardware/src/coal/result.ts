/**
 * What every coal-lab adapter produces: one analysis result with its measurements and the SHA-256 of the exact
 * bytes it came from (a serial record, a run file, a canonical database row). Only a result whose `final` is true
 * may become a reading ({@link coalReading} enforces it).
 */
import type { ClockState, Measurement } from '@stele/core';
import { CoalError } from './errors.ts';

export interface CoalResult {
  /** Which adapter/profile produced it: `cal3k`, `parr-6x00`, a database profile name… */
  instrument: string;
  /** The sample's id as the instrument recorded it (exact text; under blind coding, the assay code). */
  sampleId: string;
  /** The instrument's own status text (CAL3K `Status`, Parr `State`, a database audit column). */
  status: string;
  /** True when the profile's status mapping says final/approved. */
  final: boolean;
  /** Instrument clock, ms since the epoch, when the record carried a parseable time. Untrusted (FORMAT.md §8). */
  time?: number;
  meas: Measurement[];
  /** SHA-256 of the exact bytes this result came from (record without its line terminator, whole file, row). */
  raw: Uint8Array;
  /** The bytes themselves, when the adapter was asked to keep them. */
  bytes?: Uint8Array;
  /** Where it came from: stream offset of the record, file name and 1-based line, database key. */
  source: { offset?: number; file?: string; line?: number; key?: string };
}

/** The shape the edge agent takes (edge-agent `Acquired`), built from a final result. */
export interface CoalAcquired {
  sensor: string;
  time: number;
  clock: ClockState;
  meas: Measurement[];
  raw: Uint8Array[];
}

/**
 * A final result as a reading's content. A result that is not final is refused with COAL_NOT_FINAL
 * (PROTOCOLS.md §3.1: sign only final/approved records). `now` is used when the record had no time.
 */
export function coalReading(result: CoalResult, options: { sensor: string; clock: ClockState; now?: () => number }): CoalAcquired {
  if (!result.final) {
    throw new CoalError('COAL_NOT_FINAL', `result for ${result.sampleId} has status ${result.status}, not final`, {
      where: { instrument: result.instrument, status: result.status, sampleId: result.sampleId },
    });
  }
  return {
    sensor: options.sensor,
    time: result.time ?? (options.now ?? Date.now)(),
    clock: options.clock,
    meas: result.meas.map((m) => ({ ...m })),
    raw: [result.raw],
  };
}

/** `' 25.5 '` -> `'25.5'`: padding spaces of a printed field are not part of the value; nothing else changes. */
export function trimField(text: string): string {
  return text.replace(/^[ \t]+|[ \t]+$/g, '');
}

/** A decimal number as instruments print it: optional sign, digits, optional fraction. No exponent, no commas. */
export const DECIMAL_RE = /^[+-]?(\d+(\.\d*)?|\.\d+)$/;

/**
 * Local wall-clock time to ms since the epoch, with an explicit UTC offset (instrument PCs in China run on
 * UTC+8). Returns undefined when the fields do not form a real date/time (e.g. 31/02, 25:00).
 */
export function localTimeToMs(y: number, mo: number, d: number, h: number, mi: number, s: number, utcOffsetMinutes: number): number | undefined {
  const ms = Date.UTC(y, mo - 1, d, h, mi, s);
  const check = new Date(ms);
  if (check.getUTCFullYear() !== y || check.getUTCMonth() !== mo - 1 || check.getUTCDate() !== d) return undefined;
  if (h > 23 || mi > 59 || s > 59) return undefined;
  return ms - utcOffsetMinutes * 60_000;
}

/** Two-digit years: 00–69 -> 2000–2069, 70–99 -> 1970–1999 (POSIX strptime %y). */
export function expandYear(yy: number): number {
  return yy < 70 ? 2000 + yy : 1900 + yy;
}
