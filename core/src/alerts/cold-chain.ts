/**
 * Cold-chain rules (FORMAT.md §15.4; PROTOCOLS.md §4.3): excursions of a probe outside its product profile by
 * continuous and cumulative duration and by peak, mean kinetic temperature over the window, logging-interval rules
 * and probes gone quiet. Time is the gateway's `time` (probes have no clock of their own); order is seq.
 *
 * Duration convention: a sample holds until the next sample of the same probe. An excursion (a run of consecutive
 * out-of-range samples) lasts from its first sample's time to the time of the first in-range sample after it; at
 * the end of the data it lasts to its last sample's time and is reported `open`. A value exactly at a limit is in
 * range. Time going backwards between two samples counts as 0 ms.
 */
import { cmp, decimal, formatDecimal, meanKineticTemperature, parseDecimal, type Rational } from './decimal.ts';
import { DEFAULT_UTC_OFFSET, makeAlert, msIso, normUnit, selectReadings } from './common.ts';
import type { Aggregate, Alert, AlertWindow, ColdChainParams, EvalOptions, EvalReading, ReadingRef, Rule, RuleSet } from './types.ts';

type ColdChainRule = Rule & { type: 'cold-chain'; params: ColdChainParams };

interface Sample {
  ref: ReadingRef;
  time: number;
  text: string;
  value: Rational;
  out: boolean;
}

/** Evaluates one cold-chain rule. */
export function evaluateColdChain(rule: ColdChainRule, readings: readonly EvalReading[], set: RuleSet, options: EvalOptions, at: number): { aggregates: Aggregate[]; alerts: Alert[] } {
  const p = rule.params;
  const off = set.utcOffset ?? DEFAULT_UTC_OFFSET;
  const places = p.decimals ?? 4;
  const low = p.low === undefined ? undefined : decimal(p.low);
  const high = p.high === undefined ? undefined : decimal(p.high);
  const isOut = (v: Rational) => (low !== undefined && cmp(v, low) < 0) || (high !== undefined && cmp(v, high) > 0);
  const match = p.match ?? { kind: 'temperature' };
  const win = (from: number, to: number): AlertWindow => ({ from: msIso(from, off), to: msIso(to, off), basis: 'time' });
  const aggregates: Aggregate[] = [];
  const alerts: Alert[] = [];
  void options;

  const probes = new Map<string, { samples: Sample[]; unusable: (ReadingRef & { reason: string })[] }>();
  for (const name of p.probes ?? []) probes.set(name, { samples: [], unusable: [] });
  for (const er of selectReadings(rule, readings)) {
    const r = er.reading;
    for (const m of r.meas) {
      if ((match.code !== undefined && m.code !== match.code) || (match.kind !== undefined && m.kind !== match.kind)) continue;
      const probe = `${r.device}/${r.sensor}/${m.code}`;
      let pr = probes.get(probe);
      if (pr === undefined) probes.set(probe, (pr = { samples: [], unusable: [] }));
      const ref = { device: r.device, seq: r.seq };
      const value = parseDecimal(m.value);
      if (m.unit !== undefined && normUnit(m.unit) !== '°C') pr.unusable.push({ ...ref, reason: 'UNIT_MISMATCH' });
      else if (value === undefined) pr.unusable.push({ ...ref, reason: 'BAD_VALUE' });
      else if (m.flag !== undefined && m.flag !== 'N') pr.unusable.push({ ...ref, reason: `FLAG_${m.flag}` });
      else pr.samples.push({ ref, time: r.time, text: m.value, value, out: isOut(value) });
    }
  }

  for (const [probe, { samples, unusable }] of [...probes.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    samples.sort((a, b) => (a.ref.device === b.ref.device ? a.ref.seq - b.ref.seq : a.time - b.time));
    const input = (s: Sample) => ({ device: s.ref.device, seq: s.ref.seq, time: msIso(s.time, off), value: s.text });
    if (samples.length === 0) {
      if (p.quietMs !== undefined) {
        const w = win(at - p.quietMs, at);
        alerts.push(makeAlert({ kind: 'cold-chain-probe-quiet', rule, window: w, subject: probe, values: { quietMs: p.quietMs, samples: 0 }, inputs: [], readings: [], ...(unusable.length > 0 ? { excluded: unusable } : {}) }));
      }
      continue;
    }
    // Excursions.
    let cumulativeMs = 0;
    let excursions = 0;
    for (let i = 0; i < samples.length; ) {
      if (!samples[i]!.out) {
        i++;
        continue;
      }
      let j = i;
      while (j + 1 < samples.length && samples[j + 1]!.out) j++;
      const run = samples.slice(i, j + 1);
      const next = samples[j + 1];
      const open = next === undefined;
      const end = open ? run[run.length - 1]!.time : next.time;
      const durationMs = Math.max(0, end - run[0]!.time);
      i = j + 1;
      if (run.length < (p.minSamples ?? 1)) continue;
      excursions++;
      cumulativeMs += durationMs;
      const peakHigh = run.reduce((a, b) => (cmp(b.value, a.value) > 0 ? b : a));
      const peakLow = run.reduce((a, b) => (cmp(b.value, a.value) < 0 ? b : a));
      const highSide = high !== undefined && cmp(peakHigh.value, high) > 0;
      const peak = highSide ? peakHigh : peakLow;
      const byDuration = p.maxContinuousMs === undefined || durationMs > p.maxContinuousMs;
      const byPeak = (p.peakHigh !== undefined && cmp(peakHigh.value, decimal(p.peakHigh)) > 0) || (p.peakLow !== undefined && cmp(peakLow.value, decimal(p.peakLow)) < 0);
      if (!byDuration && !byPeak) continue;
      alerts.push(
        makeAlert({
          kind: 'cold-chain-excursion',
          rule,
          window: win(run[0]!.time, end),
          subject: probe,
          values: {
            profile: p.profile,
            ...(p.low === undefined ? {} : { low: p.low }),
            ...(p.high === undefined ? {} : { high: p.high }),
            direction: highSide ? 'above' : 'below',
            peak: peak.text,
            samples: run.length,
            continuousMs: durationMs,
            open,
            byDuration,
            byPeak,
          },
          inputs: [...run, ...(next === undefined ? [] : [next])].map(input),
          readings: [...run, ...(next === undefined ? [] : [next])].map((s) => s.ref),
        }),
      );
    }
    const first = samples[0]!;
    const last = samples[samples.length - 1]!;
    const window = win(first.time, last.time);
    if (p.maxCumulativeMs !== undefined && cumulativeMs > p.maxCumulativeMs) {
      const outs = samples.filter((s) => s.out);
      alerts.push(
        makeAlert({
          kind: 'cold-chain-cumulative',
          rule,
          window,
          subject: probe,
          values: { profile: p.profile, cumulativeMs, maxCumulativeMs: p.maxCumulativeMs, excursions },
          inputs: outs.map(input),
          readings: outs.map((s) => s.ref),
        }),
      );
    }
    // Mean kinetic temperature over the window (equal intervals assumed, USP <1079>).
    const mkt = meanKineticTemperature(samples.map((s) => s.value));
    const min = samples.reduce((a, b) => (cmp(b.value, a.value) < 0 ? b : a));
    const max = samples.reduce((a, b) => (cmp(b.value, a.value) > 0 ? b : a));
    const mktExceeded = p.mktMax !== undefined && cmp(mkt, decimal(p.mktMax)) > 0;
    aggregates.push({
      kind: 'cold-chain-probe',
      ruleId: rule.id,
      subject: probe,
      window,
      values: { samples: samples.length, unusable: unusable.length, min: min.text, max: max.text, mkt: formatDecimal(mkt, places), excursions, cumulativeMs, ...(p.mktMax === undefined ? {} : { mktMax: p.mktMax, mktExceeded }) },
    });
    if (mktExceeded) {
      alerts.push(makeAlert({ kind: 'cold-chain-mkt', rule, window, subject: probe, values: { profile: p.profile, mkt: formatDecimal(mkt, places), mktMax: p.mktMax!, samples: samples.length }, inputs: samples.map(input), readings: samples.map((s) => s.ref) }));
    }
    // Logging interval and quiet probes.
    for (let i = 1; i < samples.length; i++) {
      const a = samples[i - 1]!;
      const b = samples[i]!;
      const gapMs = b.time - a.time;
      if (p.quietMs !== undefined && gapMs > p.quietMs) {
        alerts.push(makeAlert({ kind: 'cold-chain-probe-quiet', rule, window: win(a.time, b.time), subject: probe, values: { gapMs, quietMs: p.quietMs }, inputs: [input(a), input(b)], readings: [a.ref, b.ref] }));
        continue;
      }
      const allowed = a.out && p.maxIntervalOutOfRangeMs !== undefined ? p.maxIntervalOutOfRangeMs : p.maxIntervalMs;
      if (allowed !== undefined && gapMs > allowed) {
        alerts.push(
          makeAlert({ kind: 'cold-chain-logging-interval', rule, window: win(a.time, b.time), subject: probe, values: { gapMs, maxIntervalMs: allowed, outOfRange: a.out }, inputs: [input(a), input(b)], readings: [a.ref, b.ref] }),
        );
      }
    }
    if (p.quietMs !== undefined && at - last.time > p.quietMs) {
      alerts.push(makeAlert({ kind: 'cold-chain-probe-quiet', rule, window: win(last.time, at), subject: probe, values: { gapMs: at - last.time, quietMs: p.quietMs, open: true }, inputs: [input(last)], readings: [last.ref] }));
    }
  }
  return { aggregates, alerts };
}
