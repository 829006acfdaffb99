/**
 * Reading a rule set (FORMAT.md §15.1) from untrusted JSON: every field checked, every decimal parsed, every
 * problem an AlertError `RULES_FORMAT_ERROR` naming the JSON path. A local standard is one more JSON file of this
 * shape: no code.
 */
import { SteleError } from '../errors.ts';
import { parseDecimal } from './decimal.ts';
import type { InvalidPeriod, Rule, RuleSet } from './types.ts';

export type AlertErrorCode = 'RULES_FORMAT_ERROR' | 'READINGS_FORMAT_ERROR';
export class AlertError extends SteleError<AlertErrorCode> {}

/** Rules per set, pollutants per rule, tiers: bounds on the work one rule set can ask for. */
export const MAX_RULES = 256;
const MAX_LIST = 256;
const UTC_OFFSET = /^[+-](0\d|1[0-4]):[0-5]\d$/;
const ITIME14 = /^\d{14}$/;

function bad(path: string, message: string): never {
  throw new AlertError('RULES_FORMAT_ERROR', `${path}: ${message}`, { where: { path } });
}

type Obj = Record<string, unknown>;

function obj(v: unknown, path: string): Obj {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) bad(path, 'is not an object');
  return v as Obj;
}
function keys(o: Obj, allowed: readonly string[], path: string): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) bad(`${path}.${k}`, 'unknown key');
}
function text(o: Obj, k: string, path: string, required = true): string | undefined {
  const v = o[k];
  if (v === undefined && !required) return undefined;
  if (typeof v !== 'string' || v.length === 0 || v.length > 200) bad(`${path}.${k}`, 'is not a non-empty text of at most 200 characters');
  return v;
}
function dec(o: Obj, k: string, path: string, required = false): string | undefined {
  const v = o[k];
  if (v === undefined && !required) return undefined;
  if (typeof v !== 'string' || parseDecimal(v) === undefined) bad(`${path}.${k}`, 'is not decimal text such as "35" or "6.0"');
  return v;
}
function int(o: Obj, k: string, path: string, min: number, max: number): number | undefined {
  const v = o[k];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) bad(`${path}.${k}`, `is not an integer in ${min}..${max}`);
  return v;
}
function texts(o: Obj, k: string, path: string): string[] | undefined {
  const v = o[k];
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.length > MAX_LIST || v.some((x) => typeof x !== 'string' || x.length === 0)) bad(`${path}.${k}`, 'is not a list of non-empty texts');
  return v as string[];
}
function list(o: Obj, k: string, path: string, required = false): unknown[] | undefined {
  const v = o[k];
  if (v === undefined && !required) return undefined;
  if (!Array.isArray(v) || v.length > MAX_LIST) bad(`${path}.${k}`, `is not a list of at most ${MAX_LIST} items`);
  return v;
}
const MAX_MS = 366 * 24 * 3600_000;
const decimals = (p: Obj, path: string): number | undefined => int(p, 'decimals', path, 0, 12);

/** Copies the defined entries only (exactOptionalPropertyTypes: absent keys stay absent). */
function defined<T extends Obj>(o: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]: Exclude<T[K], undefined> };
}

/** Checks and copies one rule (of a set, or the one an alert carries). */
export function parseRule(value: unknown, path = '$.rule'): Rule {
  const o = obj(value, path);
  keys(o, ['id', 'type', 'standard', 'version', 'devices', 'sensors', 'params'], path);
  const base = defined({
    id: text(o, 'id', path)!,
    standard: text(o, 'standard', path)!,
    version: text(o, 'version', path)!,
    devices: texts(o, 'devices', path),
    sensors: texts(o, 'sensors', path),
  });
  const pp = `${path}.params`;
  const p = obj(o.params ?? {}, pp);
  switch (o.type) {
    case 'emission-hourly': {
      keys(p, ['pollutants', 'referenceO2', 'o2Code', 'o2Policy', 'minValidMinutes', 'minValidHours', 'minuteKind', 'realtimeKind', 'minuteType', 'realtimeType', 'decimals'], pp);
      const pollutants = list(p, 'pollutants', pp, true)!.map((x, i) => {
        const q = `${pp}.pollutants[${i}]`;
        const po = obj(x, q);
        keys(po, ['code', 'name', 'limit', 'dayLimit', 'unit', 'warnAt'], q);
        return defined({ code: text(po, 'code', q)!, name: text(po, 'name', q, false), limit: dec(po, 'limit', q, true)!, dayLimit: dec(po, 'dayLimit', q), unit: text(po, 'unit', q, false), warnAt: dec(po, 'warnAt', q) });
      });
      if (pollutants.length === 0) bad(`${pp}.pollutants`, 'is empty');
      let o2Policy: { maxO2: string; action: 'exclude' | 'clamp' } | undefined;
      if (p.o2Policy !== undefined) {
        const q = `${pp}.o2Policy`;
        const op = obj(p.o2Policy, q);
        keys(op, ['maxO2', 'action'], q);
        const maxO2 = dec(op, 'maxO2', q, true)!;
        const m = parseDecimal(maxO2)!;
        if (!(m.n < 21n * m.d && m.n >= 0n)) bad(`${q}.maxO2`, 'must be >= 0 and below 21');
        if (op.action !== 'exclude' && op.action !== 'clamp') bad(`${q}.action`, 'must be "exclude" or "clamp"');
        o2Policy = { maxO2, action: op.action };
      }
      const ref = dec(p, 'referenceO2', pp);
      if (ref !== undefined) {
        const r = parseDecimal(ref)!;
        if (!(r.n < 21n * r.d && r.n >= 0n)) bad(`${pp}.referenceO2`, 'must be >= 0 and below 21');
      }
      return {
        ...base,
        type: 'emission-hourly',
        params: defined({
          pollutants,
          referenceO2: ref,
          o2Code: text(p, 'o2Code', pp, false),
          o2Policy,
          minValidMinutes: int(p, 'minValidMinutes', pp, 1, 60),
          minValidHours: int(p, 'minValidHours', pp, 1, 24),
          minuteKind: text(p, 'minuteKind', pp, false),
          realtimeKind: text(p, 'realtimeKind', pp, false),
          minuteType: text(p, 'minuteType', pp, false),
          realtimeType: text(p, 'realtimeType', pp, false),
          decimals: decimals(p, pp),
        }),
      };
    }
    case 'cold-chain': {
      keys(p, ['match', 'profile', 'low', 'high', 'maxContinuousMs', 'maxCumulativeMs', 'peakHigh', 'peakLow', 'minSamples', 'maxIntervalMs', 'maxIntervalOutOfRangeMs', 'quietMs', 'mktMax', 'probes', 'decimals'], pp);
      let match: { code?: string; kind?: string } | undefined;
      if (p.match !== undefined) {
        const mo = obj(p.match, `${pp}.match`);
        keys(mo, ['code', 'kind'], `${pp}.match`);
        match = defined({ code: text(mo, 'code', `${pp}.match`, false), kind: text(mo, 'kind', `${pp}.match`, false) });
      }
      const low = dec(p, 'low', pp);
      const high = dec(p, 'high', pp);
      if (low === undefined && high === undefined) bad(pp, 'needs low, high or both');
      if (low !== undefined && high !== undefined) {
        const l = parseDecimal(low)!;
        const h = parseDecimal(high)!;
        if (l.n * h.d > h.n * l.d) bad(`${pp}.low`, 'is above high');
      }
      return {
        ...base,
        type: 'cold-chain',
        params: defined({
          match,
          profile: text(p, 'profile', pp)!,
          low,
          high,
          maxContinuousMs: int(p, 'maxContinuousMs', pp, 0, MAX_MS),
          maxCumulativeMs: int(p, 'maxCumulativeMs', pp, 0, MAX_MS),
          peakHigh: dec(p, 'peakHigh', pp),
          peakLow: dec(p, 'peakLow', pp),
          minSamples: int(p, 'minSamples', pp, 1, 1000),
          maxIntervalMs: int(p, 'maxIntervalMs', pp, 1, MAX_MS),
          maxIntervalOutOfRangeMs: int(p, 'maxIntervalOutOfRangeMs', pp, 1, MAX_MS),
          quietMs: int(p, 'quietMs', pp, 1, MAX_MS),
          mktMax: dec(p, 'mktMax', pp),
          probes: texts(p, 'probes', pp),
          decimals: decimals(p, pp),
        }),
      };
    }
    case 'coal-lab': {
      keys(p, ['requiredSteps', 'weightTolerance', 'repeatability', 'determinationCode', 'decimals'], pp);
      let repeatability: Record<string, { upTo?: string; limit: string }[]> | undefined;
      if (p.repeatability !== undefined) {
        const ro = obj(p.repeatability, `${pp}.repeatability`);
        if (Object.keys(ro).length > MAX_LIST) bad(`${pp}.repeatability`, 'has too many parameters');
        repeatability = {};
        for (const [symbol, tiers] of Object.entries(ro)) {
          const q = `${pp}.repeatability.${symbol}`;
          if (!Array.isArray(tiers) || tiers.length === 0 || tiers.length > 16) bad(q, 'is not a list of 1 to 16 tiers');
          repeatability[symbol] = tiers.map((t, i) => {
            const to = obj(t, `${q}[${i}]`);
            keys(to, ['upTo', 'limit'], `${q}[${i}]`);
            return defined({ upTo: dec(to, 'upTo', `${q}[${i}]`), limit: dec(to, 'limit', `${q}[${i}]`, true)! });
          });
        }
      }
      const steps = texts(p, 'requiredSteps', pp);
      for (const s of steps ?? []) if (!['sampling', 'preparation', 'storage', 'retrieval', 'handover'].includes(s)) bad(`${pp}.requiredSteps`, `unknown step ${s}`);
      return {
        ...base,
        type: 'coal-lab',
        params: defined({ requiredSteps: steps, weightTolerance: dec(p, 'weightTolerance', pp), repeatability, determinationCode: text(p, 'determinationCode', pp, false), decimals: decimals(p, pp) }),
      };
    }
    case 'integrity': {
      keys(p, ['maxSilenceMs', 'gapGraceMs', 'maxClockSkewMs', 'skewTypes', 'unsyncedClock'], pp);
      if (p.unsyncedClock !== undefined && typeof p.unsyncedClock !== 'boolean') bad(`${pp}.unsyncedClock`, 'is not a boolean');
      return {
        ...base,
        type: 'integrity',
        params: defined({
          maxSilenceMs: int(p, 'maxSilenceMs', pp, 1, MAX_MS),
          gapGraceMs: int(p, 'gapGraceMs', pp, 0, MAX_MS),
          maxClockSkewMs: int(p, 'maxClockSkewMs', pp, 0, MAX_MS),
          skewTypes: texts(p, 'skewTypes', pp),
          unsyncedClock: p.unsyncedClock as boolean | undefined,
        }),
      };
    }
    default:
      return bad(`${path}.type`, 'is not one of emission-hourly, cold-chain, coal-lab, integrity');
  }
}

/** Parses a rule set from its JSON value (FORMAT.md §15.1); AlertError RULES_FORMAT_ERROR with `where.path`. */
export function parseRuleSet(value: unknown): RuleSet {
  const o = obj(value, '$');
  keys(o, ['format', 'name', 'notes', 'utcOffset', 'rules', 'invalidPeriods'], '$');
  if (o.notes !== undefined && (typeof o.notes !== 'string' || o.notes.length > 4000)) bad('$.notes', 'is not a text of at most 4000 characters');
  if (o.format !== 'stele-rules/1') bad('$.format', 'is not "stele-rules/1"');
  const utcOffset = o.utcOffset;
  if (utcOffset !== undefined && (typeof utcOffset !== 'string' || !UTC_OFFSET.test(utcOffset))) bad('$.utcOffset', 'is not ±HH:MM');
  const rulesRaw = list(o, 'rules', '$', true)!;
  if (rulesRaw.length > MAX_RULES) bad('$.rules', `has more than ${MAX_RULES} rules`);
  const rules = rulesRaw.map((r, i) => parseRule(r, `$.rules[${i}]`));
  const ids = new Set<string>();
  rules.forEach((r, i) => {
    if (ids.has(r.id)) bad(`$.rules[${i}].id`, `duplicate rule id ${r.id}`);
    ids.add(r.id);
  });
  const invalidPeriods = list(o, 'invalidPeriods', '$')?.map((x, i): InvalidPeriod => {
    const q = `$.invalidPeriods[${i}]`;
    const po = obj(x, q);
    keys(po, ['device', 'sensor', 'from', 'to', 'reason'], q);
    const from = text(po, 'from', q)!;
    const to = text(po, 'to', q)!;
    if (!ITIME14.test(from)) bad(`${q}.from`, 'is not YYYYMMDDhhmmss');
    if (!ITIME14.test(to) || to <= from) bad(`${q}.to`, 'is not YYYYMMDDhhmmss after from');
    return defined({ device: text(po, 'device', q, false), sensor: text(po, 'sensor', q, false), from, to, reason: text(po, 'reason', q)! });
  });
  return defined({ format: 'stele-rules/1' as const, name: text(o, 'name', '$', false), notes: o.notes as string | undefined, utcOffset: utcOffset as string | undefined, rules, invalidPeriods });
}
