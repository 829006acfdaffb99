/**
 * Emission rules (FORMAT.md §15.3; PROTOCOLS.md §2.3–2.4): per pollutant per clock hour of instrument time, from
 * minute records (rtype 2051) flagged N, each corrected to the reference O2 with the same record's O2; an hour is
 * valid with at least 45 valid minutes, a day with at least 20 valid hours; an exceedance is a valid hourly mean
 * above the limit. Early warning on corrected real-time values (rtype 2011).
 */
import { cmp, decimal, div, formatDecimal, fromInt, mul, parseDecimal, roundHalfEven, sub, sum, type Rational } from './decimal.ts';
import { DEFAULT_UTC_OFFSET, dayWindow, hourWindow, itimeIso, makeAlert, normUnit, selectReadings } from './common.ts';
import type { Aggregate, Alert, EmissionParams, EvalReading, InvalidPeriod, PollutantLimit, ReadingRef, Rule, RuleSet } from './types.ts';

type EmissionRule = Rule & { type: 'emission-hourly'; params: EmissionParams };

/** Corrected minute values are rounded half to even to this many decimals before averaging (FORMAT.md §15.3). */
export const CORRECTED_DECIMALS = 6;
const TWENTY_ONE = fromInt(21);

interface MinuteValue {
  ref: ReadingRef;
  itime: string;
  value: string;
  o2?: string;
  o2Used?: string;
  corrected: Rational;
}

interface Excluded extends ReadingRef {
  itime: string;
  reason: string;
}

/** What one record gives for one pollutant: a usable value or the reason it is not. */
function correctedValue(
  meas: EvalReading['reading']['meas'],
  pollutant: PollutantLimit,
  kind: string,
  p: EmissionParams,
): { ok: true; value: string; o2?: string; o2Used?: string; corrected: Rational } | { ok: false; reason: string } | undefined {
  const m = meas.find((x) => x.code === pollutant.code && x.kind === kind);
  if (m === undefined) return undefined; // this record does not carry the pollutant
  if (m.flag !== 'N') return { ok: false, reason: `FLAG_${m.flag ?? 'NONE'}` };
  const unit = normUnit(pollutant.unit ?? 'mg/m³');
  if (m.unit !== undefined && normUnit(m.unit) !== unit) return { ok: false, reason: 'UNIT_MISMATCH' };
  const c = parseDecimal(m.value);
  if (c === undefined) return { ok: false, reason: 'BAD_VALUE' };
  if (p.referenceO2 === undefined) return { ok: true, value: m.value, corrected: c };
  const o2m = meas.find((x) => x.code === (p.o2Code ?? 'a19001') && x.kind === kind);
  if (o2m === undefined) return { ok: false, reason: 'NO_O2' };
  if (o2m.flag !== 'N') return { ok: false, reason: `O2_FLAG_${o2m.flag ?? 'NONE'}` };
  const o2 = parseDecimal(o2m.value);
  if (o2 === undefined || o2.n < 0n) return { ok: false, reason: 'O2_BAD_VALUE' };
  const policy = p.o2Policy ?? { maxO2: '19', action: 'exclude' as const };
  const maxO2 = decimal(policy.maxO2);
  let used = o2;
  let usedText = o2m.value;
  if (cmp(o2, maxO2) > 0) {
    if (policy.action === 'exclude') return { ok: false, reason: 'O2_ABOVE_POLICY' };
    used = maxO2;
    usedText = policy.maxO2;
  }
  // C × (21 − O2ref) / (21 − O2), GB 13223-2011 §5.2 / HJ 212-2017 eq. (28); 21 − O2 > 0 because maxO2 < 21.
  const factor = div(sub(TWENTY_ONE, decimal(p.referenceO2)), sub(TWENTY_ONE, used));
  return { ok: true, value: m.value, o2: o2m.value, o2Used: usedText, corrected: roundHalfEven(mul(c, factor), CORRECTED_DECIMALS) };
}

function markedInvalid(periods: readonly InvalidPeriod[] | undefined, r: EvalReading['reading'], itime: string): InvalidPeriod | undefined {
  const t = itime.slice(0, 14);
  return periods?.find((x) => (x.device === undefined || x.device === r.device) && (x.sensor === undefined || x.sensor === r.sensor) && x.from <= t && t < x.to);
}

const mean = (xs: readonly Rational[]): Rational => div(sum(xs), fromInt(xs.length));

/** Evaluates one emission rule. */
export function evaluateEmission(rule: EmissionRule, readings: readonly EvalReading[], set: RuleSet): { aggregates: Aggregate[]; alerts: Alert[] } {
  const p = rule.params;
  const off = set.utcOffset ?? DEFAULT_UTC_OFFSET;
  const places = p.decimals ?? 4;
  const minMinutes = p.minValidMinutes ?? 45;
  const minHours = p.minValidHours ?? 20;
  const minuteKind = p.minuteKind ?? 'Avg';
  const minuteType = p.minuteType ?? '2051';
  const fmt = (r: Rational) => formatDecimal(r, places);
  const aggregates: Aggregate[] = [];
  const alerts: Alert[] = [];

  // stream (device/sensor) -> pollutant -> hour -> minutes
  const hours = new Map<string, { used: MinuteValue[]; excluded: Excluded[] }>();
  const seenMinute = new Map<string, ReadingRef>();
  const bucket = (key: string) => {
    let b = hours.get(key);
    if (b === undefined) hours.set(key, (b = { used: [], excluded: [] }));
    return b;
  };
  const sel = selectReadings(rule, readings);
  for (const er of sel) {
    const r = er.reading;
    if (r.rtype !== minuteType || r.itime === undefined) continue;
    const ref = { device: r.device, seq: r.seq };
    const stream = `${r.device}/${r.sensor}`;
    const minute = r.itime.slice(0, 12);
    const hour = r.itime.slice(0, 10);
    const first = seenMinute.get(`${stream}/${minute}`);
    const marked = markedInvalid(set.invalidPeriods, r, r.itime);
    for (const pol of p.pollutants) {
      const got = correctedValue(r.meas, pol, minuteKind, p);
      if (got === undefined) continue;
      const b = bucket(`${stream}\u0000${pol.code}\u0000${hour}`);
      if (first !== undefined) b.excluded.push({ ...ref, itime: r.itime, reason: `DUPLICATE_MINUTE_OF_SEQ_${first.seq}` });
      else if (marked !== undefined) b.excluded.push({ ...ref, itime: r.itime, reason: `MARKED_${marked.reason}` });
      else if (!got.ok) b.excluded.push({ ...ref, itime: r.itime, reason: got.reason });
      else b.used.push({ ref, itime: r.itime, value: got.value, ...(got.o2 === undefined ? {} : { o2: got.o2, o2Used: got.o2Used! }), corrected: got.corrected });
    }
    if (first === undefined) seenMinute.set(`${stream}/${minute}`, ref);
  }

  // days: stream/pollutant/day -> valid hourly means
  const days = new Map<string, { hours: { hour: string; mean: Rational; refs: ReadingRef[] }[]; total: number }>();
  const keys = [...hours.keys()].sort();
  for (const key of keys) {
    const [stream, code, hour] = key.split('\u0000') as [string, string, string];
    const pol = p.pollutants.find((x) => x.code === code)!;
    const b = hours.get(key)!;
    const k = b.used.length;
    const valid = k >= minMinutes;
    const window = hourWindow(hour, off);
    const subject = `${stream}/${code}`;
    const limit = decimal(pol.limit);
    const m = k > 0 ? mean(b.used.map((u) => u.corrected)) : undefined;
    const exceeded = valid && m !== undefined && cmp(m, limit) > 0;
    aggregates.push({
      kind: 'emission-hour',
      ruleId: rule.id,
      subject,
      window,
      values: {
        validMinutes: k,
        excludedMinutes: b.excluded.length,
        valid,
        ...(m === undefined ? {} : { mean: fmt(m) }),
        limit: pol.limit,
        exceeded,
      },
    });
    const day = hour.slice(0, 8);
    const dkey = `${stream}\u0000${code}\u0000${day}`;
    let d = days.get(dkey);
    if (d === undefined) days.set(dkey, (d = { hours: [], total: 0 }));
    d.total++;
    if (valid && m !== undefined) d.hours.push({ hour, mean: m, refs: b.used.map((u) => u.ref) });
    if (!exceeded) continue;
    alerts.push(
      makeAlert({
        kind: 'emission-exceedance',
        rule,
        window,
        subject,
        values: {
          pollutant: code,
          mean: fmt(m!),
          limit: pol.limit,
          unit: pol.unit ?? 'mg/m³',
          ...(p.referenceO2 === undefined ? {} : { referenceO2: p.referenceO2 }),
          validMinutes: k,
          minValidMinutes: minMinutes,
        },
        inputs: b.used.map((u) => ({
          device: u.ref.device,
          seq: u.ref.seq,
          itime: u.itime,
          value: u.value,
          ...(u.o2 === undefined ? {} : { o2: u.o2, o2Used: u.o2Used }),
          corrected: formatDecimal(u.corrected, CORRECTED_DECIMALS),
        })),
        readings: b.used.map((u) => u.ref),
        excluded: b.excluded.map(({ device, seq, reason }) => ({ device, seq, reason })),
      }),
    );
  }

  for (const [dkey, d] of [...days.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const [stream, code, day] = dkey.split('\u0000') as [string, string, string];
    const pol = p.pollutants.find((x) => x.code === code)!;
    const valid = d.hours.length >= minHours;
    const m = d.hours.length > 0 ? mean(d.hours.map((h) => h.mean)) : undefined;
    const window = dayWindow(day, off);
    const subject = `${stream}/${code}`;
    const exceeded = valid && m !== undefined && pol.dayLimit !== undefined && cmp(m, decimal(pol.dayLimit)) > 0;
    aggregates.push({
      kind: 'emission-day',
      ruleId: rule.id,
      subject,
      window,
      values: { validHours: d.hours.length, hoursWithData: d.total, valid, ...(m === undefined ? {} : { mean: fmt(m) }), ...(pol.dayLimit === undefined ? {} : { dayLimit: pol.dayLimit, exceeded }) },
    });
    if (exceeded) {
      alerts.push(
        makeAlert({
          kind: 'emission-day-exceedance',
          rule,
          window,
          subject,
          values: { pollutant: code, mean: fmt(m!), dayLimit: pol.dayLimit!, unit: pol.unit ?? 'mg/m³', validHours: d.hours.length, minValidHours: minHours },
          inputs: d.hours.map((h) => ({ hour: itimeIso(`${h.hour}0000`, off), mean: formatDecimal(h.mean, CORRECTED_DECIMALS + 2) })),
          readings: d.hours.flatMap((h) => h.refs),
        }),
      );
    }
  }

  // Early warning on real-time values: one alert per stream, pollutant and clock hour with the values above warnAt.
  const realtimeType = p.realtimeType ?? '2011';
  const warn = new Map<string, { pol: PollutantLimit; items: { ref: ReadingRef; itime: string; value: string; o2?: string; corrected: Rational }[] }>();
  for (const er of sel) {
    const r = er.reading;
    if (r.rtype !== realtimeType || r.itime === undefined || markedInvalid(set.invalidPeriods, r, r.itime) !== undefined) continue;
    for (const pol of p.pollutants) {
      if (pol.warnAt === undefined) continue;
      const got = correctedValue(r.meas, pol, p.realtimeKind ?? 'Rtd', p);
      if (got === undefined || !got.ok || cmp(got.corrected, decimal(pol.warnAt)) <= 0) continue;
      const key = `${r.device}/${r.sensor}/${pol.code}\u0000${r.itime.slice(0, 10)}`;
      let w = warn.get(key);
      if (w === undefined) warn.set(key, (w = { pol, items: [] }));
      w.items.push({ ref: { device: r.device, seq: r.seq }, itime: r.itime, value: got.value, ...(got.o2 === undefined ? {} : { o2: got.o2 }), corrected: got.corrected });
    }
  }
  for (const [key, w] of warn) {
    const [subject, hour] = key.split('\u0000') as [string, string];
    const peak = w.items.reduce((a, b) => (cmp(b.corrected, a) > 0 ? b.corrected : a), w.items[0]!.corrected);
    alerts.push(
      makeAlert({
        kind: 'emission-early-warning',
        rule,
        window: hourWindow(hour, off),
        subject,
        values: { pollutant: w.pol.code, count: w.items.length, peak: fmt(peak), warnAt: w.pol.warnAt!, limit: w.pol.limit },
        inputs: w.items.map((i) => ({ device: i.ref.device, seq: i.ref.seq, itime: i.itime, value: i.value, ...(i.o2 === undefined ? {} : { o2: i.o2 }), corrected: formatDecimal(i.corrected, CORRECTED_DECIMALS) })),
        readings: w.items.map((i) => i.ref),
      }),
    );
  }
  return { aggregates, alerts };
}
