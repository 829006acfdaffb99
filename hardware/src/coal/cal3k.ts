/**
 * DDS CAL3K bomb calorimeter, result records over RS-232 (PROTOCOLS.md §3.1; vendor page [V]): after each
 * determination the unit sends, unsolicited, one semicolon-separated record per line, 8N1 at 1.2–115.2 kbaud:
 *
 *   Date ;Time ;Status ;Group ID ;Sample ID ;Result ;Mass ;Version ;Vessel ;Cal.Date ;Cal.Num ;Cal.Temp ;FireTemp ;
 *   Sulphur Correct ;Cotton Correct ;Spike value ;Spike Mass ;PressDiff ;3.0 Rise ;
 *
 * The header is not sent in a real transfer and its order may change, so the column order is configurable and a
 * header line, if one does arrive (as when a terminal capture is replayed), re-defines it.
 *
 * Status mapping: the meaning of the CAL3K `Status` digits is not public (PROTOCOLS.md §3.1 gives one example
 * record, a completed simulated determination, with Status 4). There is therefore no built-in default: the site
 * configures `finalStatuses` after checking its unit's manual; `CAL3K_EXAMPLE_FINAL_STATUSES` holds the value of
 * the published example. A record whose status is not listed decodes with `final: false` and never becomes a
 * reading (see `coalReading`).
 *
 * The digest of a record is SHA-256 of the record's bytes without its line terminator (CR, LF or CR LF), so the
 * same record hashes the same whatever the line ending setting of the unit.
 */
import type { Measurement } from '@stele/core';
import { sha256 } from '@stele/core';
import { CoalError, type CoalErrorCode } from './errors.ts';
import { COAL_ASSAY_CODE, type CoalKind, basisOf } from './parameters.ts';
import { type CoalResult, DECIMAL_RE, expandYear, localTimeToMs, trimField } from './result.ts';

type FieldCheck = 'date' | 'time' | 'digits' | 'decimal' | 'text';

interface Cal3kColumnSpec {
  code: string;
  kind: CoalKind;
  unit?: string;
  check: FieldCheck;
  required?: boolean;
}

/** Header order as the vendor documents it (PROTOCOLS.md §3.1). */
export const CAL3K_HEADER: readonly string[] = [
  'Date', 'Time', 'Status', 'Group ID', 'Sample ID', 'Result', 'Mass', 'Version', 'Vessel', 'Cal.Date', 'Cal.Num',
  'Cal.Temp', 'FireTemp', 'Sulphur Correct', 'Cotton Correct', 'Spike value', 'Spike Mass', 'PressDiff', '3.0 Rise',
];

/** Status of the one published example record (a completed determination). Not a documented code table. */
export const CAL3K_EXAMPLE_FINAL_STATUSES: readonly string[] = ['4'];

/**
 * Column -> measurement. `Result` is set from the options (default `Qgr,v,ad` in MJ/kg: the CAL3K reports the
 * gross calorific value of the sample as analysed, i.e. air-dried). Units are given only where the vendor states them;
 * corrections and rises are left without a unit rather than guessed.
 */
const CAL3K_SPECS: Readonly<Record<string, Cal3kColumnSpec>> = {
  date: { code: 'Date', kind: 'run', check: 'date', required: true },
  time: { code: 'Time', kind: 'run', check: 'time', required: true },
  status: { code: 'Status', kind: 'run', check: 'digits', required: true },
  'group id': { code: 'GroupId', kind: 'id', check: 'text' },
  'sample id': { code: COAL_ASSAY_CODE, kind: 'id', check: 'text', required: true },
  result: { code: 'Result', kind: 'ad', check: 'decimal', required: true },
  mass: { code: 'SampleMass', kind: 'run', unit: 'g', check: 'decimal' },
  version: { code: 'Version', kind: 'run', check: 'text' },
  vessel: { code: 'Vessel', kind: 'run', check: 'text' },
  'cal.date': { code: 'CalDate', kind: 'run', check: 'text' },
  'cal.num': { code: 'CalNum', kind: 'run', check: 'text' },
  'cal.temp': { code: 'CalTemp', kind: 'run', check: 'decimal' },
  firetemp: { code: 'FireTemp', kind: 'run', check: 'decimal' },
  'sulphur correct': { code: 'SulphurCorrection', kind: 'run', check: 'decimal' },
  'cotton correct': { code: 'CottonCorrection', kind: 'run', check: 'decimal' },
  'spike value': { code: 'SpikeValue', kind: 'run', check: 'decimal' },
  'spike mass': { code: 'SpikeMass', kind: 'run', unit: 'g', check: 'decimal' },
  pressdiff: { code: 'PressDiff', kind: 'run', check: 'decimal' },
  '3.0 rise': { code: 'Rise3', kind: 'run', check: 'decimal' },
};
const REQUIRED = Object.entries(CAL3K_SPECS).filter(([, s]) => s.required).map(([k]) => k);

export interface Cal3kOptions {
  /** Status values that mean final (required: see the module comment). */
  finalStatuses: readonly string[];
  /** Column order of the records. Default {@link CAL3K_HEADER}. */
  columns?: readonly string[];
  /** Symbol of the `Result` column. Default `Qgr,v,ad`. */
  resultCode?: string;
  /** Unit of the `Result` column as configured on the unit. Default `MJ/kg`. */
  resultUnit?: string;
  /** Order of the `Date` field. Default `DMY` (the example's `15/05/11` can only be 15 May 2011). */
  dateOrder?: 'DMY' | 'MDY' | 'YMD';
  /** Offset of the instrument's clock from UTC, minutes. Default 480 (China Standard Time). */
  utcOffsetMinutes?: number;
  /** Longest accepted record, bytes. Default 1024. */
  maxLineBytes?: number;
  /** Keep each record's bytes on the result. Default false. */
  keepBytes?: boolean;
  /** `instrument` of the results. Default `cal3k`. */
  instrument?: string;
}

export type Cal3kEvent =
  | { type: 'result'; result: CoalResult }
  /** A header line arrived; `columns` is the new order. */
  | { type: 'header'; columns: string[]; offset: number }
  | { type: 'rejected'; error: CoalError; offset: number; length: number };

const LF = 0x0a;
const CR = 0x0d;
const utf8 = new TextDecoder('utf-8', { fatal: true });

function normalise(header: string): string {
  return trimField(header).toLowerCase();
}

/**
 * Streaming decoder: feed chunks as they come off the serial port (split or glued records are fine), get
 * results, header changes and rejections in stream order. A bad record is rejected with a code and the decoder
 * carries on with the next line.
 */
export class Cal3kStreamDecoder {
  private columns: string[];
  private readonly opts: Required<Omit<Cal3kOptions, 'columns' | 'finalStatuses'>> & { finalStatuses: ReadonlySet<string> };
  private parts: Uint8Array[] = [];
  private partBytes = 0;
  private lineStart = 0;
  private offset = 0;
  private skipLf = false;
  private discarding = false;

  constructor(options: Cal3kOptions) {
    if (options === null || typeof options !== 'object' || !Array.isArray(options.finalStatuses)) {
      throw new TypeError('options.finalStatuses must be an array of status strings');
    }
    const max = options.maxLineBytes ?? 1024;
    if (!Number.isInteger(max) || max < 16) throw new RangeError('options.maxLineBytes must be an integer >= 16');
    const resultCode = options.resultCode ?? 'Qgr,v,ad';
    basisOf(resultCode); // RangeError for an unknown symbol
    this.opts = {
      finalStatuses: new Set(options.finalStatuses),
      resultCode,
      resultUnit: options.resultUnit ?? 'MJ/kg',
      dateOrder: options.dateOrder ?? 'DMY',
      utcOffsetMinutes: options.utcOffsetMinutes ?? 480,
      maxLineBytes: max,
      keepBytes: options.keepBytes ?? false,
      instrument: options.instrument ?? 'cal3k',
    };
    this.columns = [...(options.columns ?? CAL3K_HEADER)];
    const missing = this.missingRequired(this.columns);
    if (missing.length > 0) throw new RangeError(`options.columns lacks ${missing.join(', ')}`);
  }

  /** The column order in force. */
  currentColumns(): string[] {
    return [...this.columns];
  }

  push(chunk: Uint8Array): Cal3kEvent[] {
    if (!(chunk instanceof Uint8Array)) throw new TypeError('chunk must be a Uint8Array');
    const out: Cal3kEvent[] = [];
    let from = 0;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i];
      if (this.skipLf) {
        this.skipLf = false;
        if (b === LF) {
          from = i + 1;
          this.lineStart = this.offset + i + 1;
          continue;
        }
      }
      if (b === LF || b === CR) {
        this.append(chunk.subarray(from, i));
        this.endLine(out, this.offset + i);
        this.skipLf = b === CR;
        from = i + 1;
        this.lineStart = this.offset + i + 1;
      } else if (!this.discarding && this.partBytes + (i - from + 1) > this.opts.maxLineBytes) {
        out.push(this.reject('COAL_OVERSIZE', `record longer than ${this.opts.maxLineBytes} bytes`, this.lineStart, this.partBytes + (i - from + 1)));
        this.discarding = true;
        this.parts = [];
        this.partBytes = 0;
        from = i + 1;
      }
    }
    this.append(chunk.subarray(from));
    this.offset += chunk.length;
    return out;
  }

  /** End of stream: an unterminated record cannot be known complete and is rejected (COAL_BAD_RECORD). */
  end(): Cal3kEvent[] {
    const out: Cal3kEvent[] = [];
    if (this.partBytes > 0) {
      out.push(this.reject('COAL_BAD_RECORD', 'stream ended inside a record (no line terminator)', this.lineStart, this.partBytes));
    }
    this.parts = [];
    this.partBytes = 0;
    this.discarding = false;
    return out;
  }

  private append(bytes: Uint8Array): void {
    if (this.discarding || bytes.length === 0) return;
    this.parts.push(bytes.slice());
    this.partBytes += bytes.length;
  }

  private endLine(out: Cal3kEvent[], _at: number): void {
    const wasDiscarding = this.discarding;
    this.discarding = false;
    const line = this.parts.length === 1 ? this.parts[0]! : concat(this.parts, this.partBytes);
    this.parts = [];
    this.partBytes = 0;
    if (wasDiscarding || line.length === 0) return;
    const ev = this.decodeLine(line, this.lineStart);
    if (ev !== undefined) out.push(ev);
  }

  private reject(code: CoalErrorCode, message: string, offset: number, length: number, where: Record<string, unknown> = {}): Cal3kEvent {
    return { type: 'rejected', error: new CoalError(code, message, { where: { offset, length, ...where } }), offset, length };
  }

  private missingRequired(columns: readonly string[]): string[] {
    const have = new Set(columns.map(normalise));
    return REQUIRED.filter((r) => !have.has(r));
  }

  /** One line (terminator removed). Whitespace-only lines are ignored. */
  decodeLine(line: Uint8Array, offset = 0): Cal3kEvent | undefined {
    for (const b of line) {
      if ((b < 0x20 && b !== 0x09) || b === 0x7f) {
        return this.reject('COAL_BAD_RECORD', 'control byte inside a record', offset, line.length);
      }
    }
    let text: string;
    try {
      text = utf8.decode(line);
    } catch (cause) {
      return { type: 'rejected', error: new CoalError('COAL_BAD_ENCODING', 'record is not valid UTF-8/ASCII', { cause, where: { offset, length: line.length } }), offset, length: line.length };
    }
    if (trimField(text) === '') return undefined;
    const fields = text.split(';');
    if (fields.length > 1 && trimField(fields[fields.length - 1]!) === '') fields.pop(); // the record ends with ';'

    const names0 = new Set(fields.map(normalise));
    if (names0.has('date') && names0.has('sample id')) {
      const names = fields.map(trimField);
      const missing = this.missingRequired(names);
      const dup = names.find((n, i) => names.findIndex((m) => normalise(m) === normalise(n)) !== i);
      if (missing.length > 0 || dup !== undefined) {
        return this.reject('COAL_BAD_HEADER', missing.length > 0 ? `header lacks ${missing.join(', ')}` : `header repeats ${dup}`, offset, line.length);
      }
      this.columns = names;
      return { type: 'header', columns: [...names], offset };
    }

    if (fields.length !== this.columns.length) {
      return this.reject('COAL_BAD_FIELD_COUNT', `record has ${fields.length} fields, header ${this.columns.length}`, offset, line.length, {
        fields: fields.length,
        expected: this.columns.length,
      });
    }

    const meas: Measurement[] = [];
    const byKey = new Map<string, string>();
    for (let i = 0; i < fields.length; i++) {
      const header = this.columns[i]!;
      const key = normalise(header);
      const value = trimField(fields[i]!);
      const spec = CAL3K_SPECS[key];
      if (value === '') {
        if (spec?.required) return this.reject('COAL_BAD_FIELD', `${header} is empty`, offset, line.length, { field: header });
        continue;
      }
      if (spec !== undefined && !checkField(spec.check, value)) {
        return this.reject('COAL_BAD_FIELD', `${header} is not a valid ${spec.check}`, offset, line.length, { field: header });
      }
      byKey.set(key, value);
      if (spec === undefined) {
        meas.push({ code: header, kind: 'run', value });
      } else if (key === 'result') {
        meas.push({ code: this.opts.resultCode, kind: basisOf(this.opts.resultCode), value, unit: this.opts.resultUnit });
      } else {
        const m: Measurement = { code: spec.code, kind: spec.kind, value };
        if (spec.unit !== undefined) m.unit = spec.unit;
        meas.push(m);
      }
    }
    const time = this.parseTime(byKey.get('date')!, byKey.get('time')!);
    if (time === undefined) return this.reject('COAL_BAD_FIELD', 'Date/Time is not a real date', offset, line.length, { field: 'Date' });
    const status = byKey.get('status')!;
    const result: CoalResult = {
      instrument: this.opts.instrument,
      sampleId: byKey.get('sample id')!,
      status,
      final: this.opts.finalStatuses.has(status),
      time,
      meas,
      raw: sha256(line),
      source: { offset },
    };
    if (this.opts.keepBytes) result.bytes = line.slice();
    return { type: 'result', result };
  }

  private parseTime(date: string, time: string): number | undefined {
    const [a, b, c] = date.split('/').map(Number) as [number, number, number];
    const [h, mi, s] = time.split(':').map(Number) as [number, number, number];
    const order = this.opts.dateOrder;
    const [y, mo, d] = order === 'DMY' ? [c, b, a] : order === 'MDY' ? [c, a, b] : [a, b, c];
    return localTimeToMs(expandYear(y), mo, d, h, mi, s, this.opts.utcOffsetMinutes);
  }
}

function checkField(check: FieldCheck, value: string): boolean {
  switch (check) {
    case 'date':
      return /^\d{2}\/\d{2}\/\d{2}$/.test(value);
    case 'time':
      return /^\d{2}:\d{2}:\d{2}$/.test(value);
    case 'digits':
      return /^\d+$/.test(value);
    case 'decimal':
      return DECIMAL_RE.test(value);
    case 'text':
      return true;
  }
}

function concat(parts: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Decodes a whole capture (all chunks at once, then end of stream). */
export function decodeCal3k(bytes: Uint8Array, options: Cal3kOptions): Cal3kEvent[] {
  const d = new Cal3kStreamDecoder(options);
  return [...d.push(bytes), ...d.end()];
}
