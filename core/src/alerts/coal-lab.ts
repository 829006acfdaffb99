/**
 * Coal-lab rules (FORMAT.md §15.5; PROTOCOLS.md §3.2–3.3): a broken chain of custody (assay without preparation,
 * a code hand-over that does not match, a weight discrepancy, a holder mismatch, time going backwards), duplicate
 * determinations outside repeatability, and a result changed after approval.
 *
 * Custody events are readings with measurements of kind `custody` (code = field name); the chain rule itself is
 * custody.ts, shared with the gateway's tools. Results are readings with a
 * measurement of kind `id`, code `AssayCode`, and analysis values with kind `ar`, `ad`, `d`, `daf` or `dmmf`.
 */
import { cmp, decimal, div, formatDecimal, fromInt, parseDecimal, sub, add, type Rational } from './decimal.ts';
import { checkCustody, CUSTODY_KIND, type CustodyChainEvent, type CustodyInput } from './custody.ts';
import { DEFAULT_UTC_OFFSET, makeAlert, msIso, selectReadings } from './common.ts';
import type { Aggregate, Alert, CoalLabParams, EvalReading, ReadingRef, Rule, RuleSet } from './types.ts';

type CoalLabRule = Rule & { type: 'coal-lab'; params: CoalLabParams };

const BASES = new Set(['ar', 'ad', 'd', 'daf', 'dmmf']);

const abs = (r: Rational): Rational => (r.n < 0n ? { n: -r.n, d: r.d } : r);

/** A reading's `custody` measurements as the custody rule reads them (undefined: not a custody event). */
function custodyInputOf(er: EvalReading): CustodyInput | undefined {
  const r = er.reading;
  const fields: Record<string, string> = {};
  let unit: string | undefined;
  let bad: string | undefined;
  let any = false;
  for (const m of r.meas) {
    if (m.kind !== CUSTODY_KIND) continue;
    any = true;
    if (fields[m.code] !== undefined) {
      bad ??= `field ${m.code} repeated`;
      continue;
    }
    fields[m.code] = m.value;
    if (m.code === 'weight') unit = m.unit ?? 'g';
  }
  if (!any) return undefined;
  return { device: r.device, seq: r.seq, fields, ...(unit === undefined ? {} : { weightUnit: unit }), ...(bad === undefined ? {} : { bad }) };
}

/** Evaluates one coal-lab rule. */
export function evaluateCoalLab(rule: CoalLabRule, readings: readonly EvalReading[], set: RuleSet): { aggregates: Aggregate[]; alerts: Alert[] } {
  const p = rule.params;
  const off = set.utcOffset ?? DEFAULT_UTC_OFFSET;
  const places = p.decimals ?? 4;
  const required = p.requiredSteps ?? ['sampling', 'preparation'];
  const aggregates: Aggregate[] = [];
  const alerts: Alert[] = [];
  const sel = selectReadings(rule, readings);

  // ---- chain of custody (custody.ts: the one rule)
  const custodyReadings: EvalReading[] = [];
  const inputs: CustodyInput[] = [];
  for (const er of sel) {
    const input = custodyInputOf(er);
    if (input === undefined) continue;
    custodyReadings.push(er);
    inputs.push(input);
  }
  const custody = checkCustody(inputs, { requiredSteps: required, ...(p.weightTolerance === undefined ? {} : { weightTolerance: p.weightTolerance }), decimals: places });
  const events = custody.events;
  const view = (e: CustodyChainEvent) => ({ device: e.device, seq: e.seq, step: e.step, at: e.at, by: e.by, ...(e.to === undefined ? {} : { to: e.to }), code: e.code, ...(e.fromCode === undefined ? {} : { fromCode: e.fromCode }), ...(e.weight === undefined ? {} : { weight: e.weight }) });
  for (const i of custody.issues) {
    if (i.code === 'CUSTODY_BAD_EVENT') {
      const r = custodyReadings[i.index]!.reading;
      const at = msIso(r.time, off);
      alerts.push(makeAlert({ kind: 'coal-custody-break', rule, window: { from: at, to: at, basis: 'time' }, subject: i.subject, values: { issue: i.code, ...i.values }, inputs: [], readings: [{ device: r.device, seq: r.seq }] }));
      continue;
    }
    const times = i.events.map((e) => e.at);
    alerts.push(makeAlert({ kind: 'coal-custody-break', rule, window: { from: times[0]!, to: times[times.length - 1]!, basis: 'itime' }, subject: i.subject, values: { issue: i.code, ...i.values }, inputs: i.events.map(view), readings: i.events.map((e) => ({ device: e.device, seq: e.seq })) }));
  }
  const assayed = new Set(events.filter((e) => e.step === 'assay').map((e) => e.code));

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
