/**
 * Integrity rules (FORMAT.md §15.6), as far as a stream of readings shows them: a device silent beyond its
 * interval, a seq gap not filled in time, a fork (two readings with one seq), a broken hash chain, a clock that is
 * not synchronised or far from the instrument's, and readings that failed verification (signature, digest).
 * Unlike the other rules these look at rejected readings too.
 */
import { toHex } from '../bytes.ts';
import { DEFAULT_UTC_OFFSET, itimeMs, makeAlert, msIso } from './common.ts';
import type { Aggregate, Alert, EvalReading, IntegrityParams, ReadingRef, Rule, RuleSet } from './types.ts';

type IntegrityRule = Rule & { type: 'integrity'; params: IntegrityParams };

/** Evaluates one integrity rule at evaluation time `at` (ms). */
export function evaluateIntegrity(rule: IntegrityRule, readings: readonly EvalReading[], set: RuleSet, at: number): { aggregates: Aggregate[]; alerts: Alert[] } {
  const p = rule.params;
  const off = set.utcOffset ?? DEFAULT_UTC_OFFSET;
  const alerts: Alert[] = [];
  const aggregates: Aggregate[] = [];
  const win = (from: number, to: number) => ({ from: msIso(from, off), to: msIso(to, off), basis: 'time' as const });
  const ref = (e: EvalReading): ReadingRef => ({ device: e.reading.device, seq: e.reading.seq });
  const view = (e: EvalReading) => ({ device: e.reading.device, seq: e.reading.seq, time: msIso(e.reading.time, off), digest: e.digest, ...(e.rejected === undefined ? {} : { rejected: e.rejected }) });

  const byDevice = new Map<string, EvalReading[]>();
  for (const e of readings) {
    if ((rule.devices !== undefined && !rule.devices.includes(e.reading.device)) || (rule.sensors !== undefined && !rule.sensors.includes(e.reading.sensor))) continue;
    const list = byDevice.get(e.reading.device) ?? [];
    list.push(e);
    byDevice.set(e.reading.device, list);
  }
  for (const [device, all] of [...byDevice.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    all.sort((a, b) => a.reading.seq - b.reading.seq);
    // Rejected readings (signature, digest…): reported, and not used for the chain below.
    for (const e of all.filter((x) => x.rejected !== undefined)) {
      alerts.push(makeAlert({ kind: 'integrity-rejected', rule, window: win(e.reading.time, e.reading.time), subject: `${device}/${e.reading.seq}`, values: { code: e.rejected! }, inputs: [view(e)], readings: [ref(e)] }));
    }
    const ok = all.filter((x) => x.rejected === undefined);
    // Forks: one seq, two different readings.
    const bySeq = new Map<number, EvalReading[]>();
    for (const e of ok) bySeq.set(e.reading.seq, [...(bySeq.get(e.reading.seq) ?? []), e]);
    for (const [seq, list] of bySeq) {
      const distinct = [...new Map(list.map((e) => [e.digest, e])).values()];
      if (distinct.length > 1) {
        alerts.push(makeAlert({ kind: 'integrity-fork', rule, window: win(Math.min(...distinct.map((e) => e.reading.time)), Math.max(...distinct.map((e) => e.reading.time))), subject: `${device}/${seq}`, values: { seq, readings: distinct.length }, inputs: distinct.map(view), readings: distinct.map(ref) }));
      }
    }
    const chain = [...bySeq.values()].map((l) => l[0]!);
    // Broken hash chain: reading n's prev is not the digest of reading n - 1.
    for (let i = 1; i < chain.length; i++) {
      const a = chain[i - 1]!;
      const b = chain[i]!;
      if (b.reading.seq === a.reading.seq + 1 && toHex(b.reading.prev) !== a.digest) {
        alerts.push(makeAlert({ kind: 'integrity-chain-break', rule, window: win(a.reading.time, b.reading.time), subject: `${device}/${b.reading.seq}`, values: { seq: b.reading.seq, prev: toHex(b.reading.prev), expected: a.digest }, inputs: [view(a), view(b)], readings: [ref(a), ref(b)] }));
      }
    }
    // Seq gaps not filled within the grace period after the reading that revealed them.
    for (let i = 1; i < chain.length; i++) {
      const a = chain[i - 1]!;
      const b = chain[i]!;
      if (b.reading.seq === a.reading.seq + 1) continue;
      const seenAt = b.receivedAt ?? b.reading.time;
      const open = at - seenAt;
      if (open > (p.gapGraceMs ?? 0)) {
        alerts.push(
          makeAlert({ kind: 'integrity-seq-gap', rule, window: win(a.reading.time, b.reading.time), subject: `${device}/${a.reading.seq + 1}`, values: { firstMissing: a.reading.seq + 1, lastMissing: b.reading.seq - 1, missing: b.reading.seq - a.reading.seq - 1, openMs: open, gapGraceMs: p.gapGraceMs ?? 0 }, inputs: [view(a), view(b)], readings: [ref(a), ref(b)] }),
        );
      }
    }
    // Silence: gateway time between consecutive readings, and from the last one to the evaluation time.
    if (p.maxSilenceMs !== undefined) {
      for (let i = 1; i < chain.length; i++) {
        const a = chain[i - 1]!;
        const b = chain[i]!;
        const gapMs = b.reading.time - a.reading.time;
        if (gapMs > p.maxSilenceMs) alerts.push(makeAlert({ kind: 'integrity-silent', rule, window: win(a.reading.time, b.reading.time), subject: device, values: { gapMs, maxSilenceMs: p.maxSilenceMs }, inputs: [view(a), view(b)], readings: [ref(a), ref(b)] }));
      }
      const last = chain[chain.length - 1];
      if (last !== undefined && at - last.reading.time > p.maxSilenceMs) {
        alerts.push(makeAlert({ kind: 'integrity-silent', rule, window: win(last.reading.time, at), subject: device, values: { gapMs: at - last.reading.time, maxSilenceMs: p.maxSilenceMs, open: true }, inputs: [view(last)], readings: [ref(last)] }));
      }
    }
    // Clock: runs of unsynchronised readings; runs of real-time records whose gateway time is far from their itime.
    const runs = (pred: (e: EvalReading) => boolean): EvalReading[][] => {
      const out: EvalReading[][] = [];
      let cur: EvalReading[] = [];
      for (const e of chain) {
        if (pred(e)) cur.push(e);
        else if (cur.length > 0) {
          out.push(cur);
          cur = [];
        }
      }
      if (cur.length > 0) out.push(cur);
      return out;
    };
    if (p.unsyncedClock !== false) {
      for (const run of runs((e) => !e.reading.clock.synced)) {
        const f = run[0]!;
        const l = run[run.length - 1]!;
        alerts.push(makeAlert({ kind: 'integrity-clock-unsynced', rule, window: win(f.reading.time, l.reading.time), subject: `${device}/${f.reading.seq}`, values: { readings: run.length, source: f.reading.clock.source }, inputs: run.map(view), readings: run.map(ref) }));
      }
    }
    if (p.maxClockSkewMs !== undefined) {
      const types = p.skewTypes ?? ['2011'];
      const skew = (e: EvalReading) => (e.reading.itime !== undefined && e.reading.rtype !== undefined && types.includes(e.reading.rtype) ? e.reading.time - itimeMs(e.reading.itime, off) : undefined);
      for (const run of runs((e) => {
        const s = skew(e);
        return s !== undefined && Math.abs(s) > p.maxClockSkewMs!;
      })) {
        const f = run[0]!;
        const l = run[run.length - 1]!;
        const worst = run.reduce((a, b) => (Math.abs(skew(b)!) > Math.abs(skew(a)!) ? b : a));
        alerts.push(
          makeAlert({ kind: 'integrity-clock-skew', rule, window: win(f.reading.time, l.reading.time), subject: `${device}/${f.reading.seq}`, values: { readings: run.length, worstSkewMs: skew(worst)!, maxClockSkewMs: p.maxClockSkewMs }, inputs: run.map((e) => ({ ...view(e), itime: e.reading.itime!, skewMs: skew(e)! })), readings: run.map(ref) }),
        );
      }
    }
    aggregates.push({ kind: 'integrity-device', ruleId: rule.id, subject: device, window: win(chain[0]?.reading.time ?? at, chain[chain.length - 1]?.reading.time ?? at), values: { readings: all.length, rejected: all.length - ok.length, firstSeq: chain[0]?.reading.seq ?? 0, lastSeq: chain[chain.length - 1]?.reading.seq ?? 0 } });
  }
  return { aggregates, alerts };
}
