/**
 * Polling an instrument PC's database (PROTOCOLS.md §3.1: Kaiyuan 5E software writes a local MS Access DB and a
 * gatherer selects recent rows). No driver here: the site passes a `query(since)` function (ODBC bridge,
 * mdb-export, a LIMS REST call…) that returns the rows whose cursor column is >= `since`.
 *
 * - Cursor: the poller asks again from the last cursor *inclusive*, so rows sharing the cursor value are never
 *   missed, and drops rows it already handled (same key and same row digest).
 * - Only rows `isFinal` accepts are handed over. A row not yet final holds the cursor back (the cursor never
 *   moves past the oldest non-final row), because a later approval usually does not change the time column.
 *   A row that will never be final (aborted test) is let go with `isAbandoned`.
 * - A final row that changes afterwards (a re-approved correction) has a new digest and is handed over again.
 * - Digest: there are no "exact bytes" for a database row, so the row is encoded canonically
 *   ({@link canonicalRowBytes}: JSON, keys sorted, values as the driver returned them) and that is hashed; the
 *   handler receives those bytes to keep with the evidence.
 */
import { toHex, sha256 } from '@stele/core';
import type { Measurement } from '@stele/core';
import { loadJsonState, saveJsonState } from './state-file.ts';
import type { RunCsvColumn } from './run-csv.ts';
import { COAL_ASSAY_CODE } from './parameters.ts';
import type { CoalResult } from './result.ts';

export type DbRow = Readonly<Record<string, unknown>>;

export interface DbPollerOptions<R extends DbRow> {
  /** Rows with cursor >= since (all rows when since is undefined). */
  query: (since: string | undefined) => Promise<readonly R[]>;
  /** A stable primary key of the row. */
  key: (row: R) => string;
  /** The row's cursor value as text that sorts in time order (e.g. ISO 8601 of the time column). */
  cursor: (row: R) => string;
  isFinal: (row: R) => boolean;
  /** A non-final row that will never become final: stops holding the cursor. Default: never. */
  isAbandoned?: (row: R) => boolean;
  /** Bytes that are hashed and kept for the row. Default {@link canonicalRowBytes}. */
  encode?: (row: R) => Uint8Array;
  stateFile: string;
}

export interface DbRowEvent<R extends DbRow> {
  row: R;
  key: string;
  bytes: Uint8Array;
  sha256: Uint8Array;
}

export interface DbPollReport {
  processed: string[];
  /** Keys of rows seen but not final (holding the cursor). */
  waiting: string[];
  /** The handler threw: not recorded, retried next poll; the poll stops there. */
  failed: { key: string; error: unknown }[];
  cursor: string | undefined;
}

interface DbState {
  v: 1;
  cursor?: string;
  /** key -> [cursor, digest hex] of rows handled at or after the cursor. */
  seen: Record<string, [string, string]>;
}

function isDbState(v: unknown): v is DbState {
  if (v === null || typeof v !== 'object') return false;
  const s = v as Partial<DbState>;
  return s.v === 1 && (s.cursor === undefined || typeof s.cursor === 'string') && s.seen !== null && typeof s.seen === 'object';
}

function canonical(value: unknown): unknown {
  if (value instanceof Date) return value.toISOString();
  if (value instanceof Uint8Array) return toHex(value);
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) out[k] = canonical((value as Record<string, unknown>)[k]);
    return out;
  }
  return value === undefined ? null : value;
}

/** JSON with keys sorted at every level; Date -> ISO 8601, bytes -> hex, bigint -> decimal text, undefined -> null. */
export function canonicalRowBytes(row: DbRow): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(canonical(row)));
}

export class DatabasePoller<R extends DbRow> {
  private state: DbState | undefined;
  private busy = false;

  constructor(private readonly o: DbPollerOptions<R>) {
    for (const f of ['query', 'key', 'cursor', 'isFinal'] as const) {
      if (typeof o?.[f] !== 'function') throw new TypeError(`options.${f} must be a function`);
    }
    if (typeof o.stateFile !== 'string') throw new TypeError('options.stateFile must be a path');
  }

  async pollOnce(handler: (event: DbRowEvent<R>) => Promise<void> | void): Promise<DbPollReport> {
    if (this.busy) throw new Error('pollOnce is already running');
    this.busy = true;
    try {
      const state = (this.state ??= (await loadJsonState(this.o.stateFile, isDbState)) ?? { v: 1, seen: {} });
      const rows = [...(await this.o.query(state.cursor))];
      const keyed = rows.map((row) => ({ row, key: this.o.key(row), cursor: this.o.cursor(row) }));
      keyed.sort((a, b) => (a.cursor < b.cursor ? -1 : a.cursor > b.cursor ? 1 : 0));
      const report: DbPollReport = { processed: [], waiting: [], failed: [], cursor: state.cursor };
      let hold: string | undefined; // oldest cursor of a non-final row
      let maxCursor = state.cursor;
      let stopped = false;
      for (const { row, key, cursor } of keyed) {
        if (stopped) break;
        if (!this.o.isFinal(row)) {
          if (!(this.o.isAbandoned?.(row) ?? false)) {
            report.waiting.push(key);
            if (hold === undefined || cursor < hold) hold = cursor;
          }
          continue;
        }
        const bytes = (this.o.encode ?? canonicalRowBytes)(row);
        const digest = sha256(bytes);
        const hex = toHex(digest);
        if (state.seen[key]?.[1] !== hex) {
          try {
            await handler({ row, key, bytes, sha256: digest });
          } catch (error) {
            report.failed.push({ key, error });
            if (hold === undefined || cursor < hold) hold = cursor;
            stopped = true;
            break;
          }
          state.seen[key] = [cursor, hex];
          report.processed.push(key);
        }
        if (maxCursor === undefined || cursor > maxCursor) maxCursor = cursor;
      }
      const next = hold !== undefined && (maxCursor === undefined || hold < maxCursor) ? hold : maxCursor;
      if (next !== undefined && (state.cursor === undefined || next > state.cursor)) state.cursor = next;
      // Forget rows the next query can no longer return.
      for (const [k, [c]] of Object.entries(state.seen)) if (state.cursor !== undefined && c < state.cursor) delete state.seen[k];
      await saveJsonState(this.o.stateFile, state);
      report.cursor = state.cursor;
      return report;
    } finally {
      this.busy = false;
    }
  }
}

/**
 * Kaiyuan 5E calorimeter table `win5emdb` (PROTOCOLS.md §3.1, field list from a real fuel-management system;
 * facts only). The calorific unit is not stated there: pass it to {@link measurementsFromRow}. The table has no
 * approval column, so `isFinal` must come from the site (e.g. the LIMS audit state `IsAssay`, §3.3).
 */
export const KAIYUAN_5E_CALORIMETER_COLUMNS: Readonly<Record<string, RunCsvColumn>> = {
  Mancoding: { code: COAL_ASSAY_CODE, kind: 'id' },
  Number: { code: 'TestNumber', kind: 'run' },
  Testtime: { code: 'TestTime', kind: 'run' },
  Method: { code: 'Method', kind: 'run' },
  Weight: { code: 'SampleMass', kind: 'run', unit: 'g', check: 'decimal' },
  Qb: { code: 'Qb,ad', kind: 'ad', unit: 'calorific', check: 'decimal' },
  Qgrad: { code: 'Qgr,v,ad', kind: 'ad', unit: 'calorific', check: 'decimal' },
  Qgrd: { code: 'Qgr,v,d', kind: 'd', unit: 'calorific', check: 'decimal' },
  Qnetar: { code: 'Qnet,v,ar', kind: 'ar', unit: 'calorific', check: 'decimal' },
  St: { code: 'St,ad', kind: 'ad', unit: '%', check: 'decimal' },
  Mad: { code: 'Mad', kind: 'ad', unit: '%', check: 'decimal' },
  Mar: { code: 'Mt', kind: 'ar', unit: '%', check: 'decimal' },
  Had: { code: 'Had', kind: 'ad', unit: '%', check: 'decimal' },
  Oad: { code: 'Oad', kind: 'ad', unit: '%', check: 'decimal' },
  Nad: { code: 'Nad', kind: 'ad', unit: '%', check: 'decimal' },
  Testman: { code: 'Operator', kind: 'run' },
};

function cellText(value: unknown): string | undefined {
  if (value === null || value === undefined) return undefined;
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'string') return value.trim() === '' ? undefined : value.trim();
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  return JSON.stringify(canonical(value));
}

/**
 * Row -> measurements by a column map (row column name -> measurement), in the map's order. Values are the
 * driver's values as text (numbers via String(): the driver, not the instrument, formatted them; the digest of
 * the canonical row bytes is the evidence). Columns absent, null or empty are left out.
 */
export function measurementsFromRow(row: DbRow, columns: Readonly<Record<string, RunCsvColumn>>, options: { calorificUnit?: string } = {}): Measurement[] {
  const out: Measurement[] = [];
  for (const [column, spec] of Object.entries(columns)) {
    const value = cellText(row[column]);
    if (value === undefined) continue;
    const m: Measurement = { code: spec.code, kind: spec.kind, value };
    const unit = spec.unit === 'calorific' ? options.calorificUnit : spec.unit;
    if (unit !== undefined) m.unit = unit;
    if (spec.flag !== undefined) m.flag = spec.flag;
    out.push(m);
  }
  return out;
}

/** A handled row as a CoalResult (final by construction: the poller hands over final rows only). */
export function coalResultFromRow<R extends DbRow>(
  event: DbRowEvent<R>,
  options: { instrument: string; columns: Readonly<Record<string, RunCsvColumn>>; sampleIdColumn: string; status?: string; time?: number; calorificUnit?: string; keepBytes?: boolean },
): CoalResult {
  const meas = measurementsFromRow(event.row, options.columns, options.calorificUnit === undefined ? {} : { calorificUnit: options.calorificUnit });
  const r: CoalResult = {
    instrument: options.instrument,
    sampleId: cellText(event.row[options.sampleIdColumn]) ?? '',
    status: options.status ?? 'final',
    final: true,
    meas,
    raw: event.sha256,
    source: { key: event.key },
  };
  if (options.time !== undefined) r.time = options.time;
  if (options.keepBytes) r.bytes = event.bytes.slice();
  return r;
}
