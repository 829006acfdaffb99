/**
 * CSV run files written by calorimeter software (Parr 6100/6200/6300 `.csv` run files, PROTOCOLS.md §3.1,
 * manual appendix D) and, by profile, other instrument PCs' CSV exports. One file -> one result per data row,
 * each carrying SHA-256 of the exact file bytes (so the file on disk is the evidence) and its line number.
 *
 * Status mapping, Parr: `State` 0 = preweigh, 1 = preliminary, 2 = final; only 2 is final. A profile for another
 * instrument names its status column and the values that mean final/approved (e.g. an audit column `已审核`).
 * File-level failures (encoding, quoting, header) throw CoalError; a bad row is rejected with a code and the
 * other rows still decode.
 */
import type { Measurement } from '@stele/core';
import { sha256 } from '@stele/core';
import { CoalError } from './errors.ts';
import { type CoalTextEncoding, decodeText, parseCsv } from './csv.ts';
import { COAL_ASSAY_CODE, type CoalKind } from './parameters.ts';
import { type CoalResult, DECIMAL_RE, expandYear, localTimeToMs, trimField } from './result.ts';

export interface RunCsvColumn {
  code: string;
  kind: CoalKind;
  /** A fixed unit, or `calorific`: the unit the file's units column (or the profile) gives for heat values. */
  unit?: string;
  /** Flag put on the measurement (e.g. `entered` for values typed in by the operator, not determined). */
  flag?: string;
  /** `decimal`: the value must be a plain decimal number when present. Default `text`. */
  check?: 'decimal' | 'text';
}

export type RunCsvTimeFormat = 'MM/DD/YY HH:mm:ss' | 'YYYY-MM-DD HH:mm:ss';

export interface RunCsvProfile {
  instrument: string;
  /** Header name (normalised with {@link normaliseHeader}) -> measurement. Several names may map to one code. */
  columns: Readonly<Record<string, RunCsvColumn>>;
  /** Normalised header of the sample id column. */
  sampleIdColumn: string;
  /** Normalised header of the status column and the values that mean final/approved. */
  statusColumn: string;
  finalStatuses: readonly string[];
  timeColumn?: string;
  timeFormat?: RunCsvTimeFormat;
  /** Normalised header of a units code column, and its codes -> calorific unit. */
  unitsColumn?: string;
  unitCodes?: Readonly<Record<string, string>>;
  /** Calorific unit when there is no units column. */
  calorificUnit?: string;
  /** Default `,`. */
  delimiter?: string;
}

/** Header names compare case-, space-, `_`, `-` and `.`-insensitively (`Sample ID` = `SampleID` = `sample_id`). */
export function normaliseHeader(header: string): string {
  return header.replace(/^\uFEFF/, '').trim().toLowerCase().replace(/[\s_.\-]/g, '');
}

const dec = (code: string, kind: CoalKind, unit?: string, flag?: string): RunCsvColumn => {
  const c: RunCsvColumn = { code, kind, check: 'decimal' };
  if (unit !== undefined) c.unit = unit;
  if (flag !== undefined) c.flag = flag;
  return c;
};

/**
 * Parr 6100/6200/6300 run files (manual appendix D, as summarised in PROTOCOLS.md §3.1). HOC is the gross heat
 * of combustion of the sample as analysed (air-dried), so HOC -> Qgr,v,ad, NetHOC -> Qnet,v,ad, DryHOC -> Qgr,v,d,
 * DryNetHOC -> Qnet,v,d. Sulfur, Hydrogen and MAD are values the operator enters for the thermochemical
 * corrections, not determinations of this instrument: they are kept with flag `entered`.
 */
export const PARR_6X00_PROFILE: RunCsvProfile = {
  instrument: 'parr-6x00',
  columns: {
    sampleid: { code: COAL_ASSAY_CODE, kind: 'id' },
    timestamp: { code: 'Timestamp', kind: 'run' },
    mode: { code: 'Mode', kind: 'run' },
    method: { code: 'Method', kind: 'run' },
    state: { code: 'State', kind: 'run' },
    units: { code: 'Units', kind: 'run' },
    bombid: { code: 'BombId', kind: 'run' },
    bombee: dec('BombEE', 'run'),
    samplewt: dec('SampleMass', 'run', 'g'),
    spikewt: dec('SpikeMass', 'run', 'g'),
    fuse: dec('FuseCorrection', 'run'),
    acid: dec('AcidCorrection', 'run'),
    sulfur: dec('St,ad', 'ad', '%', 'entered'),
    hydrogen: dec('Had', 'ad', '%', 'entered'),
    mad: dec('Mad', 'ad', '%', 'entered'),
    jackettemp: dec('JacketTemp', 'run', '°C'),
    inittemp: dec('InitTemp', 'run', '°C'),
    deltat: dec('DeltaT', 'run', '°C'),
    hoc: dec('Qgr,v,ad', 'ad', 'calorific'),
    nethoc: dec('Qnet,v,ad', 'ad', 'calorific'),
    dryhoc: dec('Qgr,v,d', 'd', 'calorific'),
    drynethoc: dec('Qnet,v,d', 'd', 'calorific'),
  },
  sampleIdColumn: 'sampleid',
  statusColumn: 'state',
  finalStatuses: ['2'],
  timeColumn: 'timestamp',
  timeFormat: 'MM/DD/YY HH:mm:ss',
  unitsColumn: 'units',
  // Parr `Units` codes (appendix D): 0 MJ/kg, 1 Btu/lb, 2 cal/g, 3 J/kg.
  unitCodes: { '0': 'MJ/kg', '1': 'Btu/lb', '2': 'cal/g', '3': 'J/kg' },
};

export interface RunCsvOptions {
  /** File name, recorded in each result's source. */
  file?: string;
  /** Default `auto` (BOM, strict UTF-8, then GB18030). */
  encoding?: CoalTextEncoding;
  /** Offset of the instrument PC's clock from UTC, minutes. Default 480 (China Standard Time). */
  utcOffsetMinutes?: number;
  /** Columns the profile does not know: kept as kind `run` under their header text (default) or dropped. */
  unknownColumns?: 'keep' | 'drop';
  /** Largest accepted file. Default 4 MiB. */
  maxBytes?: number;
  /** Keep the file bytes on each result. Default false. */
  keepBytes?: boolean;
}

export interface RunCsvRejection {
  line: number;
  error: CoalError;
}

export interface RunCsvFile {
  encoding: 'utf-8' | 'gb18030';
  /** SHA-256 of the file bytes (also each result's `raw`). */
  sha256: Uint8Array;
  results: CoalResult[];
  rejected: RunCsvRejection[];
}

/** Decodes one run file with a profile (default: Parr). */
export function parseRunCsv(bytes: Uint8Array, profile: RunCsvProfile = PARR_6X00_PROFILE, options: RunCsvOptions = {}): RunCsvFile {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('bytes must be a Uint8Array');
  const maxBytes = options.maxBytes ?? 4 * 1024 * 1024;
  if (bytes.length > maxBytes) throw new CoalError('COAL_OVERSIZE', `file is ${bytes.length} bytes, limit ${maxBytes}`, { where: { file: options.file } });
  const digest = sha256(bytes);
  const { text, encoding } = decodeText(bytes, options.encoding ?? 'auto');
  const rows = parseCsv(text, profile.delimiter ?? ',');
  const header = rows.shift();
  if (header === undefined) throw new CoalError('COAL_BAD_HEADER', 'file has no header row', { where: { file: options.file } });
  const names = header.fields.map((h) => trimField(h));
  const keys = names.map(normaliseHeader);
  const index = new Map<string, number>();
  keys.forEach((k, i) => {
    if (k === '') return;
    if (index.has(k)) throw new CoalError('COAL_BAD_HEADER', `header repeats ${names[i]}`, { where: { file: options.file, column: names[i] } });
    index.set(k, i);
  });
  for (const required of [profile.sampleIdColumn, profile.statusColumn, ...(profile.timeColumn ? [profile.timeColumn] : [])]) {
    if (!index.has(required)) throw new CoalError('COAL_BAD_HEADER', `header lacks ${required}`, { where: { file: options.file, column: required } });
  }
  const utcOffset = options.utcOffsetMinutes ?? 480;
  const finals = new Set(profile.finalStatuses);
  const results: CoalResult[] = [];
  const rejected: RunCsvRejection[] = [];

  for (const row of rows) {
    const bad = (code: 'COAL_BAD_FIELD' | 'COAL_BAD_FIELD_COUNT' | 'COAL_BAD_UNITS', message: string, where: Record<string, unknown> = {}) =>
      rejected.push({ line: row.line, error: new CoalError(code, message, { where: { file: options.file, line: row.line, ...where } }) });
    // Spreadsheet tools pad short rows with nothing and long ones with empty cells: only non-empty extras count.
    if (row.fields.length > names.length && row.fields.slice(names.length).some((f) => trimField(f) !== '')) {
      bad('COAL_BAD_FIELD_COUNT', `row has ${row.fields.length} fields, header ${names.length}`);
      continue;
    }
    if (row.fields.length < names.length) {
      bad('COAL_BAD_FIELD_COUNT', `row has ${row.fields.length} fields, header ${names.length}`);
      continue;
    }
    const get = (key: string) => trimField(row.fields[index.get(key) ?? -1] ?? '');
    const sampleId = get(profile.sampleIdColumn);
    const status = get(profile.statusColumn);
    if (sampleId === '') {
      bad('COAL_BAD_FIELD', 'sample id is empty', { field: profile.sampleIdColumn });
      continue;
    }
    if (status === '') {
      bad('COAL_BAD_FIELD', 'status is empty', { field: profile.statusColumn });
      continue;
    }
    let calorific = profile.calorificUnit;
    if (profile.unitsColumn !== undefined && index.has(profile.unitsColumn)) {
      const code = get(profile.unitsColumn);
      calorific = profile.unitCodes?.[code];
      if (calorific === undefined) {
        bad('COAL_BAD_UNITS', `units code ${JSON.stringify(code)} is not known`, { field: profile.unitsColumn });
        continue;
      }
    }
    let time: number | undefined;
    if (profile.timeColumn !== undefined) {
      time = parseRunTime(get(profile.timeColumn), profile.timeFormat ?? 'MM/DD/YY HH:mm:ss', utcOffset);
      if (time === undefined) {
        bad('COAL_BAD_FIELD', 'timestamp is not a real date/time in the profile format', { field: profile.timeColumn });
        continue;
      }
    }
    const meas: Measurement[] = [];
    let failed = false;
    for (let i = 0; i < names.length; i++) {
      const value = trimField(row.fields[i]!);
      if (value === '' || keys[i] === '') continue;
      const spec = profile.columns[keys[i]!];
      if (spec === undefined) {
        if ((options.unknownColumns ?? 'keep') === 'keep') meas.push({ code: names[i]!, kind: 'run', value });
        continue;
      }
      if (spec.check === 'decimal' && !DECIMAL_RE.test(value)) {
        bad('COAL_BAD_FIELD', `${names[i]} is not a decimal number`, { field: names[i] });
        failed = true;
        break;
      }
      const m: Measurement = { code: spec.code, kind: spec.kind, value };
      const unit = spec.unit === 'calorific' ? calorific : spec.unit;
      if (spec.unit === 'calorific' && unit === undefined) {
        bad('COAL_BAD_UNITS', `no calorific unit for ${names[i]}`, { field: names[i] });
        failed = true;
        break;
      }
      if (unit !== undefined) m.unit = unit;
      if (spec.flag !== undefined) m.flag = spec.flag;
      meas.push(m);
    }
    if (failed) continue;
    const source: CoalResult['source'] = { line: row.line };
    if (options.file !== undefined) source.file = options.file;
    const result: CoalResult = { instrument: profile.instrument, sampleId, status, final: finals.has(status), meas, raw: digest, source };
    if (time !== undefined) result.time = time;
    if (options.keepBytes) result.bytes = bytes.slice();
    results.push(result);
  }
  return { encoding, sha256: digest, results, rejected };
}

function parseRunTime(text: string, format: RunCsvTimeFormat, utcOffsetMinutes: number): number | undefined {
  if (format === 'MM/DD/YY HH:mm:ss') {
    const m = /^(\d{1,2})\/(\d{1,2})\/(\d{2})\s+(\d{1,2}):(\d{2}):(\d{2})$/.exec(text);
    if (m === null) return undefined;
    return localTimeToMs(expandYear(Number(m[3])), Number(m[1]), Number(m[2]), Number(m[4]), Number(m[5]), Number(m[6]), utcOffsetMinutes);
  }
  const m = /^(\d{4})[-/](\d{1,2})[-/](\d{1,2})[ T](\d{1,2}):(\d{2}):(\d{2})$/.exec(text);
  if (m === null) return undefined;
  return localTimeToMs(Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]), utcOffsetMinutes);
}
