/**
 * Coal-quality parameters (PROTOCOLS.md §3.2, GB/T 483 symbols) and the basis each one is on. A coal result
 * becomes a core Measurement with `code` = the full symbol (e.g. `Qgr,v,ad`, `Mad`, `St,ad`), `kind` = its basis
 * (`ar`, `ad`, `d`, `daf`, `dmmf`), `value` = the instrument's text and `unit`. Fields that are not analysis results
 * use two more kinds: `id` (the sample's code as the lab saw it) and `run` (mass, vessel, corrections, dates, status).
 */
export type CoalBasis = 'ar' | 'ad' | 'd' | 'daf' | 'dmmf';
/** Measurement kinds used by the coal adapters. */
export type CoalKind = CoalBasis | 'id' | 'run';

/** Kind `id`, code `AssayCode`: under blind coding (PROTOCOLS.md §3.3) the lab's sample id *is* the assay code. */
export const COAL_ASSAY_CODE = 'AssayCode';

export interface CoalParameter {
  basis: CoalBasis;
  name: string;
  /** Usual unit when the source does not say (mass fractions are %). Calorific values take the source's unit. */
  unit?: string;
}

/** GB/T 483 symbols used by the adapters (PROTOCOLS.md §3.2). */
export const COAL_PARAMETERS: Readonly<Record<string, CoalParameter>> = {
  Mt: { basis: 'ar', name: 'total moisture (= Mar)', unit: '%' },
  Mad: { basis: 'ad', name: 'moisture, air-dried', unit: '%' },
  Aad: { basis: 'ad', name: 'ash, air-dried', unit: '%' },
  Ad: { basis: 'd', name: 'ash, dry', unit: '%' },
  Aar: { basis: 'ar', name: 'ash, as received', unit: '%' },
  Vad: { basis: 'ad', name: 'volatile matter, air-dried', unit: '%' },
  Vd: { basis: 'd', name: 'volatile matter, dry', unit: '%' },
  Vdaf: { basis: 'daf', name: 'volatile matter, dry ash-free', unit: '%' },
  FCad: { basis: 'ad', name: 'fixed carbon, air-dried', unit: '%' },
  'St,ad': { basis: 'ad', name: 'total sulfur, air-dried', unit: '%' },
  'St,d': { basis: 'd', name: 'total sulfur, dry', unit: '%' },
  'St,ar': { basis: 'ar', name: 'total sulfur, as received', unit: '%' },
  Had: { basis: 'ad', name: 'hydrogen, air-dried', unit: '%' },
  Oad: { basis: 'ad', name: 'oxygen, air-dried', unit: '%' },
  Nad: { basis: 'ad', name: 'nitrogen, air-dried', unit: '%' },
  'Qb,ad': { basis: 'ad', name: 'bomb calorific value' },
  'Qgr,v,ad': { basis: 'ad', name: 'gross calorific value at constant volume, air-dried' },
  'Qgr,v,d': { basis: 'd', name: 'gross calorific value at constant volume, dry' },
  'Qnet,v,ad': { basis: 'ad', name: 'net calorific value at constant volume, air-dried' },
  'Qnet,v,d': { basis: 'd', name: 'net calorific value at constant volume, dry' },
  'Qnet,v,ar': { basis: 'ar', name: 'net calorific value at constant volume, as received' },
  'Qnet,p,ar': { basis: 'ar', name: 'net calorific value at constant pressure, as received' },
};

/** The basis of a GB/T 483 symbol in {@link COAL_PARAMETERS}; RangeError for an unknown symbol (misuse). */
export function basisOf(symbol: string): CoalBasis {
  const p = COAL_PARAMETERS[symbol];
  if (p === undefined) throw new RangeError(`unknown coal parameter symbol ${JSON.stringify(symbol)}`);
  return p.basis;
}
