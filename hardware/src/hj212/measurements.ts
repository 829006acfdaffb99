/**
 * HJ 212 frame -> Stele measurements (docs/FORMAT.md §2): one measurement per `code-Sub` pair, in the order the
 * instrument sent them, value as the exact received text; the item's `-Flag` becomes the measurement's flag,
 * and units come from HJ 212-2017 table B.2 / HJ/T 212-2005 appendix B for the common CEMS codes
 * (PROTOCOLS.md §1.10). Params (DataTime, …) are not measurements; they stay in the signed raw frame.
 */
import { isInstrumentTime, RTYPE_PATTERN, type Measurement } from '@stele/core';
import type { Hj212Cp, Hj212Parsed } from './types.ts';

interface CodeInfo {
  name: string;
  /** Unit of concentrations and instantaneous values (Rtd, Min, Avg, Max and their Zs forms). */
  unit?: string;
  /** Unit of the interval amount (Cou). */
  amountUnit?: string;
}

/** HJ 212-2017 table B.2 (CEMS-relevant rows). */
export const HJ212_CEMS_CODES: Readonly<Record<string, CodeInfo>> = {
  a00000: { name: 'flue gas flow', unit: 'm³/s', amountUnit: 'm³' },
  a01011: { name: 'flue gas velocity', unit: 'm/s' },
  a01012: { name: 'flue gas temperature', unit: '°C' },
  a01013: { name: 'flue gas static pressure', unit: 'kPa' },
  a01014: { name: 'flue gas humidity', unit: '%' },
  a01015: { name: 'condenser temperature', unit: '°C' },
  a01016: { name: 'duct cross-section', unit: 'm²' },
  a01017: { name: 'dynamic pressure', unit: 'kPa' },
  a19001: { name: 'O2', unit: '%' },
  a21026: { name: 'SO2', unit: 'mg/m³', amountUnit: 'kg' },
  a21002: { name: 'NOx (as NO2)', unit: 'mg/m³', amountUnit: 'kg' },
  a21003: { name: 'NO', unit: 'mg/m³', amountUnit: 'kg' },
  a21004: { name: 'NO2', unit: 'mg/m³', amountUnit: 'kg' },
  a34013: { name: 'particulate (smoke dust)', unit: 'mg/m³', amountUnit: 'kg' },
  a21005: { name: 'CO', unit: 'mg/m³', amountUnit: 'kg' },
  a21024: { name: 'HCl', unit: 'mg/m³', amountUnit: 'kg' },
  a21018: { name: 'fluoride', unit: 'mg/m³', amountUnit: 'kg' },
  a21028: { name: 'H2S', unit: 'mg/m³', amountUnit: 'kg' },
  a05001: { name: 'CO2', unit: 'mg/m³', amountUnit: 'kg' },
  a20057: { name: 'mercury and compounds', unit: 'mg/m³', amountUnit: 'kg' },
  a24088: { name: 'non-methane hydrocarbons', unit: 'mg/m³', amountUnit: 'kg' },
  a01901: { name: 'furnace mean temperature', unit: '°C' },
  a01902: { name: 'furnace DCS temperature', unit: '°C' },
  // a21001 NH3 is left without a unit: table B.2 prints ng/m³ for it, which is not what CEMS send.
};

/**
 * HJ/T 212-2005 code -> 2017 code (the mapping in PROTOCOLS.md §1.10). The 2005 table gives the two pressures
 * in MPa; that unit is kept for the 2005 codes.
 */
export const HJ212_2005_TO_2017: Readonly<Record<string, string>> = {
  B02: 'a00000',
  S02: 'a01011',
  S03: 'a01012',
  S08: 'a01013',
  S05: 'a01014',
  S06: 'a01015',
  S07: 'a01016',
  S04: 'a01017',
  S01: 'a19001',
  '02': 'a21026',
  '03': 'a21002',
  '01': 'a34013',
  '04': 'a21005',
  '08': 'a21024',
  '06': 'a21018',
  '05': 'a21028',
  '30': 'a05001',
  '31': 'a20057',
};
const UNIT_2005_OVERRIDE: Readonly<Record<string, string>> = { S08: 'MPa', S04: 'MPa' };

/** Sub-fields that carry a concentration or instantaneous value in the code's unit. */
const VALUE_KINDS = new Set(['Rtd', 'Min', 'Avg', 'Max', 'ZsRtd', 'ZsMin', 'ZsAvg', 'ZsMax']);

/** The unit of `code`'s `kind` values, when the tables know it (2017 or 2005 code). */
export function unitOf(code: string, kind: string): string | undefined {
  const code2017 = HJ212_CEMS_CODES[code] !== undefined ? code : HJ212_2005_TO_2017[code];
  if (code2017 === undefined) return undefined;
  const info = HJ212_CEMS_CODES[code2017];
  if (info === undefined) return undefined;
  if (kind === 'Cou') return info.amountUnit;
  if (!VALUE_KINDS.has(kind)) return undefined;
  return UNIT_2005_OVERRIDE[code] ?? info.unit;
}

/**
 * Measurements of a CP data area: for each item in received order, each sub-field except `Flag` in received
 * order, as `{code, kind, value, unit?, flag?}`. Nothing is dropped or re-formatted: EFlag, SampleTime, Info,
 * vendor sub-fields all become measurements with their own kind.
 */
export function measurementsFromCp(cp: Hj212Cp): Measurement[] {
  const out: Measurement[] = [];
  for (const code of cp.item_order) {
    const item = cp.items[code];
    if (item === undefined) continue;
    const flag = item.Flag;
    for (const [kind, value] of Object.entries(item)) {
      if (kind === 'Flag') continue;
      const m: Measurement = { code, kind, value };
      const unit = unitOf(code, kind);
      if (unit !== undefined) m.unit = unit;
      if (flag !== undefined) m.flag = flag;
      out.push(m);
    }
  }
  return out;
}

/** Measurements of a decoded frame (or of a reassembled message: anything with `parsed.cp` or `cp`). */
export function measurementsFromFrame(frame: { parsed: Pick<Hj212Parsed, 'cp'> } | { cp: Hj212Cp }): Measurement[] {
  return measurementsFromCp('cp' in frame ? frame.cp : frame.parsed.cp);
}

/**
 * The reading's instrument time and record type (FORMAT.md §2.3) of an HJ 212 message: `itime` = the CP's
 * `DataTime` when it is a valid `YYYYMMDDhhmmss[zzz]`, `rtype` = the header's `CN`. Either is left out when the
 * frame has none or an unusable one (the signed frame keeps the text either way); `badDataTime` says so.
 */
export function recordFieldsOf(cp: Hj212Cp, cn: string | undefined): { itime?: string; rtype?: string; badDataTime?: string } {
  const out: { itime?: string; rtype?: string; badDataTime?: string } = {};
  const dataTime = cp.params.DataTime;
  if (dataTime !== undefined) {
    if (isInstrumentTime(dataTime)) out.itime = dataTime;
    else out.badDataTime = dataTime;
  }
  if (cn !== undefined && RTYPE_PATTERN.test(cn)) out.rtype = cn;
  return out;
}
