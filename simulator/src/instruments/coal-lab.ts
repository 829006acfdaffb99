/**
 * Simulated coal-lab instruments: a DDS CAL3K calorimeter that prints one semicolon record per determination
 * (PROTOCOLS.md §3.1 record shape, 8N1, CR LF), Parr 6x00 CSV run files (appendix D columns; UTF-8 or GB18030),
 * and the custody events of a sample from batch to assay (§3.3). Deterministic for a seed.
 *
 * Simulator conventions (not vendor facts): CAL3K status `4` = completed determination (the status of the vendor's
 * example record), `1` = a determination that did not complete; Parr file names `<id>.det.finl.csv` (State 2)
 * and `<id>.det.prel.csv` (State 1).
 */
import type { CustodyEvent } from '@stele/hardware';
import { mulberry32 } from '@stele/core';

const pad2 = (n: number) => String(n).padStart(2, '0');

/** Local wall-clock parts of `ms` at `utcOffsetMinutes`. */
function localParts(ms: number, utcOffsetMinutes: number) {
  const d = new Date(ms + utcOffsetMinutes * 60_000);
  return { y: d.getUTCFullYear(), mo: d.getUTCMonth() + 1, d: d.getUTCDate(), h: d.getUTCHours(), mi: d.getUTCMinutes(), s: d.getUTCSeconds() };
}

export interface Cal3kSimulatorOptions {
  seed?: number;
  /** Instrument clock of the first record, ms. Default 2024-03-01T08:00:00+08:00. */
  startMs?: number;
  /** Time between determinations, ms. Default 12 min. */
  intervalMs?: number;
  /** Default 480 (UTC+8). */
  utcOffsetMinutes?: number;
  /** Default 'CR LF'. */
  lineEnding?: '\r\n' | '\n' | '\r';
  groupId?: string;
  vessel?: string;
}

export interface Cal3kSimRecord {
  /** The record as sent, line ending included. */
  bytes: Uint8Array;
  /** The record without its line ending (what the decoder hashes). */
  record: Uint8Array;
  sampleId: string;
  status: string;
  /** `Result` field text (MJ/kg, six decimals, space-padded as the unit prints it). */
  result: string;
  timeMs: number;
}

/** Status the simulator uses for a completed determination (as in the vendor's example record). */
export const CAL3K_SIM_FINAL_STATUS = '4';
export const CAL3K_SIM_ABORTED_STATUS = '1';

export class Cal3kSimulator {
  private readonly rand: () => number;
  private n = 0;
  private readonly o: Required<Cal3kSimulatorOptions>;

  constructor(options: Cal3kSimulatorOptions = {}) {
    this.rand = mulberry32(options.seed ?? 1);
    this.o = {
      seed: options.seed ?? 1,
      startMs: options.startMs ?? Date.parse('2024-03-01T08:00:00+08:00'),
      intervalMs: options.intervalMs ?? 12 * 60_000,
      utcOffsetMinutes: options.utcOffsetMinutes ?? 480,
      lineEnding: options.lineEnding ?? '\r\n',
      groupId: options.groupId ?? 'COAL',
      vessel: options.vessel ?? '3KAP',
    };
  }

  /** The next determination's record. `sampleId` defaults to an assay-code style id `HY…`. */
  next(options: { sampleId?: string; final?: boolean } = {}): Cal3kSimRecord {
    this.n++;
    const timeMs = this.o.startMs + (this.n - 1) * this.o.intervalMs;
    const p = localParts(timeMs, this.o.utcOffsetMinutes);
    const sampleId = options.sampleId ?? `HY${String(240000 + this.n)}`;
    const status = options.final === false ? CAL3K_SIM_ABORTED_STATUS : CAL3K_SIM_FINAL_STATUS;
    const q = 18 + this.rand() * 9; // Qgr,ad of thermal coal, MJ/kg
    const mass = 0.95 + this.rand() * 0.1;
    const rise = 2.2 + this.rand() * 0.8;
    const num = (x: number, d: number) => ` ${x.toFixed(d)}`;
    const result = num(q, 6);
    const fields = [
      `${pad2(p.d)}/${pad2(p.mo)}/${pad2(p.y % 100)}`,
      `${pad2(p.h)}:${pad2(p.mi)}:${pad2(p.s)}`,
      status,
      this.o.groupId,
      sampleId,
      result,
      num(mass, 6),
      '',
      this.o.vessel,
      '00/00/00',
      '',
      '',
      '',
      num(0.1 + this.rand() * 0.05, 6),
      num(0.02 + this.rand() * 0.01, 6),
      '',
      '',
      '1.11',
      num(rise, 6),
    ];
    const text = `${fields.join(';')};`;
    const record = new TextEncoder().encode(text);
    const bytes = new TextEncoder().encode(text + this.o.lineEnding);
    return { bytes, record, sampleId, status, result: result.trim(), timeMs };
  }

  /** A record with a broken Result field (letters), for decoder tests and demos. */
  nextBadField(): Uint8Array {
    const r = this.next();
    const text = new TextDecoder().decode(r.bytes).replace(r.result, 'ERR.OR');
    return new TextEncoder().encode(text);
  }
}

// ---------------------------------------------------------------------------------------------------------------

let gbTable: Map<string, Uint8Array> | undefined;

/**
 * Text -> GB18030 bytes for ASCII and the two-byte (GBK) range: the table is built once from Node's own
 * GB18030 decoder (every two-byte sequence decoded, ~0.1 s), so encoder and decoder agree by construction.
 * Spot-checked against glibc iconv 2.36 (`煤样` -> c3 ba d1 f9). Characters outside GBK are a RangeError.
 */
export function encodeGb18030(text: string): Uint8Array {
  if (gbTable === undefined) {
    const table = new Map<string, Uint8Array>();
    const dec = new TextDecoder('gb18030');
    const pair = new Uint8Array(2);
    for (let lead = 0x81; lead <= 0xfe; lead++) {
      for (let trail = 0x40; trail <= 0xfe; trail++) {
        if (trail === 0x7f) continue;
        pair[0] = lead;
        pair[1] = trail;
        const s = dec.decode(pair);
        if (s.length === 1 && s !== '\ufffd' && !table.has(s)) table.set(s, Uint8Array.of(lead, trail));
      }
    }
    gbTable = table;
  }
  const out: number[] = [];
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    if (c < 0x80) {
      out.push(c);
      continue;
    }
    const b = gbTable.get(ch);
    if (b === undefined) throw new RangeError(`character U+${c.toString(16)} is outside the GBK range`);
    out.push(b[0]!, b[1]!);
  }
  return Uint8Array.from(out);
}

export const PARR_SIM_HEADER = [
  'SampleID', 'Timestamp', 'Mode', 'Method', 'State', 'Units', 'BombID', 'BombEE', 'SampleWt', 'SpikeWt', 'Fuse',
  'Acid', 'Sulfur', 'Hydrogen', 'MAD', 'JacketTemp', 'InitTemp', 'DeltaT', 'HOC', 'NetHOC', 'DryHOC', 'DryNetHOC',
] as const;

export interface ParrRunOptions {
  sampleId?: string;
  /** 0 preweigh, 1 preliminary, 2 final. Default 2. */
  state?: 0 | 1 | 2;
  /** Parr units code: 0 MJ/kg (default), 1 Btu/lb, 2 cal/g, 3 J/kg. */
  units?: 0 | 1 | 2 | 3;
  encoding?: 'utf-8' | 'gb18030';
  /** Rows in the file (a batch export). Default 1. */
  rows?: number;
  /** Line ending. Default CR LF (Windows instrument PC). */
  lineEnding?: '\r\n' | '\n';
}

export interface ParrRunFile {
  name: string;
  bytes: Uint8Array;
  /** Per row: the HOC text written. */
  hoc: string[];
  sampleIds: string[];
}

export class ParrCsvSimulator {
  private readonly rand: () => number;
  private n = 0;

  constructor(private readonly options: { seed?: number; startMs?: number; utcOffsetMinutes?: number } = {}) {
    this.rand = mulberry32(options.seed ?? 7);
  }

  runFile(options: ParrRunOptions = {}): ParrRunFile {
    const state = options.state ?? 2;
    const units = options.units ?? 0;
    const rows = options.rows ?? 1;
    // Factor from MJ/kg to the file's unit.
    const factor = [1, 429.923, 238.846, 1e6][units]!;
    const decimals = [4, 1, 1, 0][units]!;
    const lines: string[] = [PARR_SIM_HEADER.join(',')];
    const hoc: string[] = [];
    const ids: string[] = [];
    for (let r = 0; r < rows; r++) {
      this.n++;
      const id = rows === 1 && options.sampleId !== undefined ? options.sampleId : `${options.sampleId ?? 'HY'}${String(500 + this.n)}`;
      const t = (this.options.startMs ?? Date.parse('2024-03-01T09:00:00+08:00')) + (this.n - 1) * 15 * 60_000;
      const p = localParts(t, this.options.utcOffsetMinutes ?? 480);
      const q = 18 + this.rand() * 9;
      const mad = 1 + this.rand() * 3;
      const had = 3 + this.rand() * 1.5;
      const net = q - 0.206 * had;
      const dry = (q * 100) / (100 - mad);
      const dryNet = (net * 100) / (100 - mad);
      const f = (x: number) => (x * factor).toFixed(decimals);
      const final = state === 2;
      const fields = [
        id,
        `${pad2(p.mo)}/${pad2(p.d)}/${pad2(p.y % 100)} ${pad2(p.h)}:${pad2(p.mi)}:${pad2(p.s)}`,
        'Determination',
        'Equilibrium',
        String(state),
        String(units),
        '1',
        '2410.5',
        (0.95 + this.rand() * 0.1).toFixed(4),
        '0.0000',
        '50.0',
        '8.2',
        (0.4 + this.rand() * 0.8).toFixed(2),
        had.toFixed(2),
        mad.toFixed(2),
        '30.00',
        '27.512',
        (2.2 + this.rand() * 0.8).toFixed(4),
        final ? f(q) : '',
        final ? f(net) : '',
        final ? f(dry) : '',
        final ? f(dryNet) : '',
      ];
      hoc.push(fields[18]!);
      ids.push(id);
      lines.push(fields.map(csvField).join(','));
    }
    const text = lines.join(options.lineEnding ?? '\r\n') + (options.lineEnding ?? '\r\n');
    const bytes = options.encoding === 'gb18030' ? encodeGb18030(text) : new TextEncoder().encode(text);
    const name = `${ids[0]}.det.${state === 2 ? 'finl' : state === 1 ? 'prel' : 'prew'}.csv`;
    return { name, bytes, hoc, sampleIds: ids };
  }
}

function csvField(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

// ---------------------------------------------------------------------------------------------------------------

/** A custody event as @stele/core/alerts' checkCustodyEvents takes it. */
export type SimCustodyEvent = CustodyEvent;

function isoAt(ms: number, utcOffsetMinutes: number): string {
  const p = localParts(ms, utcOffsetMinutes);
  const sign = utcOffsetMinutes >= 0 ? '+' : '-';
  const off = Math.abs(utcOffsetMinutes);
  return `${p.y}-${pad2(p.mo)}-${pad2(p.d)}T${pad2(p.h)}:${pad2(p.mi)}:${pad2(p.s)}${sign}${pad2(Math.floor(off / 60))}:${pad2(off % 60)}`;
}

/**
 * The custody events of one batch, sampling to assay, with blind re-coding at preparation and assay
 * (PROTOCOLS.md §3.3). Returns the events in recording order and the three codes.
 */
export function simulateCustodyChain(options: { seed?: number; batch?: string; startMs?: number; utcOffsetMinutes?: number } = {}): {
  events: SimCustodyEvent[];
  samplingCode: string;
  preparationCode: string;
  assayCode: string;
} {
  const rand = mulberry32(options.seed ?? 3);
  const off = options.utcOffsetMinutes ?? 480;
  let t = options.startMs ?? Date.parse('2024-03-01T07:00:00+08:00');
  const at = (minutes: number) => isoAt((t += minutes * 60_000), off);
  const code = (prefix: string) => `${prefix}${String(Math.floor(rand() * 900000) + 100000)}`;
  const samplingCode = code('CY');
  const preparationCode = code('ZY');
  const assayCode = code('HY');
  const gross = (8 + rand() * 4).toFixed(2); // kg of gross sample
  const lab = (0.1 + rand() * 0.05).toFixed(4); // kg of 0.2 mm analysis sample
  const events: SimCustodyEvent[] = [
    { step: 'sampling', at: at(0), by: 'sampler-01', code: samplingCode, batch: options.batch ?? 'RC20240301-01', weight: gross, weightUnit: 'kg', method: 'auto-train' },
    { step: 'handover', at: at(25), by: 'sampler-01', to: 'prep-02', code: samplingCode, weight: gross, weightUnit: 'kg' },
    { step: 'preparation', at: at(90), by: 'prep-02', code: preparationCode, fromCode: samplingCode, weight: lab, weightUnit: 'kg', backupCode: code('BY'), method: '0.2mm' },
    { step: 'storage', at: at(10), by: 'prep-02', code: preparationCode, place: 'cabinet-A/door-07', weight: lab, weightUnit: 'kg' },
    { step: 'retrieval', at: at(60), by: 'courier-03', code: preparationCode, place: 'cabinet-A/door-07', weight: lab, weightUnit: 'kg' },
    { step: 'handover', at: at(15), by: 'courier-03', to: 'analyst-04', code: preparationCode, weight: lab, weightUnit: 'kg' },
    { step: 'assay', at: at(20), by: 'analyst-04', code: assayCode, fromCode: preparationCode },
  ];
  return { events, samplingCode, preparationCode, assayCode };
}
