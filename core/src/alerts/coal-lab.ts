/**
 * Coal-lab rules (FORMAT.md §15.5; PROTOCOLS.md §3.2–3.3): a broken chain of custody (assay without preparation,
 * a code hand-over that does not match, a weight discrepancy, a holder mismatch, time going backwards), duplicate
 * determinations outside repeatability, and a result changed after approval.
 *
 * Custody events are readings with measurements of kind `custody` (hardware/src/coal/custody.ts writes them: code =
 * field name). They may come from several gateways (sampling, preparation, lab), so there is no common seq: events
 * are taken in the order of their recorded `at` time, then device, then seq. Results are readings with a
 * measurement of kind `id`, code `AssayCode`, and analysis values with kind `ar`, `ad`, `d`, `daf` or `dmmf`.
 */
import { cmp, decimal, div, formatDecimal, fromInt, mul, parseDecimal, sub, add, type Rational } from './decimal.ts';
import { DEFAULT_UTC_OFFSET, makeAlert, msIso, selectReadings } from './common.ts';
import type { Aggregate, Alert, CoalLabParams, EvalReading, ReadingRef, Rule, RuleSet } from './types.ts';

type CoalLabRule = Rule & { type: 'coal-lab'; params: CoalLabParams };

const STEPS = ['sampling', 'preparation', 'storage', 'retrieval', 'handover', 'assay'];
const BASES = new Set(['ar', 'ad', 'd', 'daf', 'dmmf']);
const ISO_AT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

interface Event {
  ref: ReadingRef;
  step: string;
  at: string;
  atMs: number;
  by: string;
  to?: string;
  code: string;
  fromCode?: string;
  weight?: string;
  grams?: Rational;
  batch?: string;
}

const abs = (r: Rational): Rational => (r.n < 0n ? { n: -r.n, d: r.d } : r);

function eventOf(er: EvalReading): Event | { ref: ReadingRef; bad: string } | undefined {
  const r = er.reading;
  const f: Record<string, string> = {};
  let unit: string | undefined;
  let any = false;
  for (const m of r.meas) {
    if (m.kind !== 'custody') continue;
    any = true;
    if (f[m.code] !== undefined) return { ref: { device: r.device, seq: r.seq }, bad: `field ${m.code} repeated` };
    f[m.code] = m.value;
    if (m.code === 'weight') unit = m.unit ?? 'g';
  }
  if (!any) return undefined;
  const ref = { device: r.device, seq: r.seq };
  if (!STEPS.includes(f.step ?? '')) return { ref, bad: 'unknown step' };
  if (!f.at || !ISO_AT.test(f.at) || Number.isNaN(Date.parse(f.at))) return { ref, bad: 'at is not ISO 8601 with an offset' };
  if (!f.by || !f.code) return { ref, bad: 'by or code missing' };
  let grams: Rational | undefined;
  if (f.weight !== undefined) {
    const w = parseDecimal(f.weight);
    if (w === undefined || (unit !== 'g' && unit !== 'kg')) return { ref, bad: 'weight is not decimal g or kg' };
    grams = unit === 'kg' ? mul(w, fromInt(1000)) : w;
  }
  return {
    ref,
    step: f.step!,
    at: f.at,
    atMs: Date.parse(f.at),
    by: f.by,
    code: f.code,
    ...(f.to === undefined ? {} : { to: f.to }),
    ...(f.fromCode === undefined ? {} : { fromCode: f.fromCode }),
    ...(f.weight === undefined ? {} : { weight: `${f.weight} ${unit}` }),
    ...(grams === undefined ? {} : { grams }),
    ...(f.batch === undefined ? {} : { batch: f.batch }),
  };
}

/** Evaluates one coal-lab rule. */
export function evaluateCoalLab(rule: CoalLabRule, readings: readonly EvalReading[], set: RuleSet): { aggregates: Aggregate[]; alerts: Alert[] } {
  const p = rule.params;
  const off = set.utcOffset ?? DEFAULT_UTC_OFFSET;
  const places = p.decimals ?? 4;
  const tol = decimal(p.weightTolerance ?? '0.01');
  const required = p.requiredSteps ?? ['sampling', 'preparation'];
  const aggregates: Aggregate[] = [];
  const alerts: Alert[] = [];
  const sel = selectReadings(rule, readings);

  // ---- chain of custody
  const events: Event[] = [];
  for (const er of sel) {
    const e = eventOf(er);
    if (e === undefined) continue;
    if ('bad' in e) {
      const at = msIso(er.reading.time, off);
      alerts.push(makeAlert({ kind: 'coal-custody-break', rule, window: { from: at, to: at, basis: 'time' }, subject: `${e.ref.device}/${e.ref.seq}`, values: { issue: 'CUSTODY_BAD_EVENT', detail: e.bad }, inputs: [], readings: [e.ref] }));
    } else events.push(e);
  }
  events.sort((a, b) => a.atMs - b.atMs || (a.ref.device < b.ref.device ? -1 : a.ref.device > b.ref.device ? 1 : a.ref.seq - b.ref.seq));
  const view = (e: Event) => ({ device: e.ref.device, seq: e.ref.seq, step: e.step, at: e.at, by: e.by, ...(e.to === undefined ? {} : { to: e.to }), code: e.code, ...(e.fromCode === undefined ? {} : { fromCode: e.fromCode }), ...(e.weight === undefined ? {} : { weight: e.weight }) });
  const issue = (code: string, subject: string, evs: Event[], values: Record<string, string | number | boolean>) => {
    const times = evs.map((e) => e.at);
    alerts.push(makeAlert({ kind: 'coal-custody-break', rule, window: { from: times[0]!, to: times[times.length - 1]!, basis: 'itime' }, subject, values: { issue: code, ...values }, inputs: evs.map(view), readings: evs.map((e) => e.ref) }));
  };
  const creator = new Map<string, Event>();
  const last = new Map<string, Event>();
  const holder = new Map<string, string>();
  for (const e of events) {
    const relabels = e.step === 'preparation' || e.step === 'assay';
    if (e.step === 'sampling' || relabels) {
      const c = creator.get(e.code);
      if (c !== undefined) issue('CUSTODY_DUPLICATE_CODE', e.code, [c, e], { code: e.code });
      else creator.set(e.code, e);
    }
    const before = relabels ? e.fromCode : e.code;
    const prev = e.step === 'sampling' || before === undefined ? undefined : last.get(before);
    if (e.step !== 'sampling' && prev === undefined) issue('CUSTODY_BROKEN_LINK', e.code, [e], { missingCode: before ?? '' });
    if (prev !== undefined) {
      if (e.atMs < prev.atMs) issue('CUSTODY_TIME_BACKWARDS', e.code, [prev, e], {});
      if (!relabels && prev.grams !== undefined && e.grams !== undefined && prev.grams.n > 0n) {
        const change = div(sub(e.grams, prev.grams), prev.grams);
        if (cmp(abs(change), tol) > 0) {
          issue('CUSTODY_WEIGHT_DISCREPANCY', e.code, [prev, e], { fromGrams: formatDecimal(prev.grams, places), toGrams: formatDecimal(e.grams, places), change: formatDecimal(change, places), tolerance: p.weightTolerance ?? '0.01' });
        }
      }
      if (e.step === 'handover' || relabels) {
        const h = holder.get(before!);
        if (h !== undefined && h !== e.by) issue('CUSTODY_HOLDER_MISMATCH', e.code, [prev, e], { holder: h, by: e.by });
      }
    }
    last.set(e.code, e);
    if (e.step === 'storage') holder.delete(e.code);
    else holder.set(e.code, e.to ?? e.by);
  }
  // Every assay walks back to its sampling: assay code <- preparation code <- sampling code.
  const assayed = new Set<string>();
  for (const e of events) {
    if (e.step !== 'assay') continue;
    assayed.add(e.code);
    const chain: Event[] = [];
    const codes = new Set<string>();
    let cur: Event | undefined = e;
    for (let guard = 0; cur !== undefined && guard <= events.length; guard++) {
      codes.add(cur.code);
      if (cur.step === 'sampling') break;
      cur = cur.fromCode === undefined ? undefined : creator.get(cur.fromCode);
    }
    for (const x of events) if (codes.has(x.code) && x.atMs <= e.atMs) chain.push(x);
    const steps = new Set(chain.map((x) => x.step));
    const missing = required.filter((s) => !steps.has(s));
    if (missing.length > 0) issue('CUSTODY_MISSING_STEP', e.code, chain, { missing: missing.join(','), steps: [...steps].join(',') });
  }

  // ---- results: duplicates and changes after approval
  interface Result { ref: ReadingRef; time: number; assay: string; det?: string; values: Map<string, string> }
  const results: Result[] = [];
  for (const er of sel) {
    const r = er.reading;
    const id = r.meas.find((m) => m.kind === 'id' && m.code === 'AssayCode');
    if (id === undefined) continue;
    const det = p.determinationCode === undefined ? undefined : r.meas.find((m) => m.code === p.determinationCode && (m.kind === 'id' || m.kind === 'run'))?.value;
    const values = new Map<string, string>();
    for (const m of r.meas) if (BASES.has(m.kind)) values.set(m.code, m.value);
    results.push({ ref: { device: r.device, seq: r.seq }, time: r.time, assay: id.value, ...(det === undefined ? {} : { det: `${r.sensor}/${det}` }), values });
  }
  for (const res of results) {
    if (events.length > 0 && !assayed.has(res.assay)) {
      const at = msIso(res.time, off);
      alerts.push(makeAlert({ kind: 'coal-custody-break', rule, window: { from: at, to: at, basis: 'time' }, subject: res.assay, values: { issue: 'CUSTODY_NO_ASSAY_EVENT' }, inputs: [{ device: res.ref.device, seq: res.ref.seq, assayCode: res.assay }], readings: [res.ref] }));
    }
  }
  // A determination seen again with other values: changed after approval (only final results become readings).
  const latest = new Map<string, Result>();
  for (const res of results) {
    if (res.det === undefined) continue;
    const before = latest.get(res.det);
    if (before !== undefined) {
      const changed = [...new Set([...before.values.keys(), ...res.values.keys()])].filter((k) => before.values.get(k) !== res.values.get(k));
      if (changed.length > 0) {
        const from = msIso(before.time, off);
        alerts.push(
          makeAlert({
            kind: 'coal-result-changed',
            rule,
            window: { from, to: msIso(res.time, off), basis: 'time' },
            subject: `${res.assay}/${res.det}`,
            values: { changed: changed.join(','), ...Object.fromEntries(changed.flatMap((k) => [[`${k} before`, before.values.get(k) ?? ''], [`${k} after`, res.values.get(k) ?? '']])) },
            inputs: [before, res].map((x) => ({ device: x.ref.device, seq: x.ref.seq, ...Object.fromEntries(changed.map((k) => [k, x.values.get(k) ?? ''])) })),
            readings: [before.ref, res.ref],
          }),
        );
      }
    }
    latest.set(res.det, res);
  }
  // Duplicate determinations: the first two determinations of an assay code (latest version of each).
  const byAssay = new Map<string, Result[]>();
  for (const res of results) {
    const list = byAssay.get(res.assay) ?? [];
    const i = res.det === undefined ? -1 : list.findIndex((x) => x.det === res.det);
    if (i >= 0) list[i] = res;
    else list.push(res);
    byAssay.set(res.assay, list);
  }
  for (const [assay, list] of byAssay) {
    if (list.length < 2) continue;
    const [a, b] = list as [Result, Result];
    for (const [symbol, tiers] of Object.entries(p.repeatability ?? {})) {
      const ta = a.values.get(symbol);
      const tb = b.values.get(symbol);
      const va = ta === undefined ? undefined : parseDecimal(ta);
      const vb = tb === undefined ? undefined : parseDecimal(tb);
      if (va === undefined || vb === undefined) continue;
      const diff = abs(sub(va, vb));
      const mean = div(add(va, vb), fromInt(2));
      const tier = tiers.find((t) => t.upTo === undefined || cmp(mean, decimal(t.upTo)) <= 0) ?? tiers[tiers.length - 1]!;
      const outside = cmp(diff, decimal(tier.limit)) > 0;
      const window = { from: msIso(a.time, off), to: msIso(b.time, off), basis: 'time' as const };
      const values = { parameter: symbol, first: ta!, second: tb!, difference: formatDecimal(diff, places), mean: formatDecimal(mean, places), limit: tier.limit, outside };
      aggregates.push({ kind: 'coal-duplicate', ruleId: rule.id, subject: `${assay}/${symbol}`, window, values });
      if (outside) {
        alerts.push(
          makeAlert({ kind: 'coal-repeatability', rule, window, subject: `${assay}/${symbol}`, values, inputs: [a, b].map((x) => ({ device: x.ref.device, seq: x.ref.seq, [symbol]: x.values.get(symbol)! })), readings: [a.ref, b.ref] }),
        );
      }
    }
  }
  return { aggregates, alerts };
}
