/**
 * The chain-of-custody rule of a coal sample (采样 -> 制样 -> 存样 -> 化验; FORMAT.md §15.5, PROTOCOLS.md §3.3), once:
 * the `coal-lab` rule of the alert engine (and so check 9 of the verifier) and the gateway's own tools run this code.
 *
 * Each event (sampling, preparation, storage, retrieval, hand-over, assay) is a reading of its own with measurements
 * of kind `custody` (code = field name). Events may come from several gateways, so there is no common seq: they are
 * taken in order of their recorded `at`, then device, then seq. One device's recording order (its seq) is trusted,
 * so an event recorded after another on the same device with an earlier `at` is CUSTODY_TIME_BACKWARDS.
 */
import { cmp, decimal, div, formatDecimal, fromInt, mul, parseDecimal, sub, type Rational } from './decimal.ts';

export type CustodyStep = 'sampling' | 'preparation' | 'storage' | 'retrieval' | 'handover' | 'assay';
export const CUSTODY_STEPS: readonly CustodyStep[] = ['sampling', 'preparation', 'storage', 'retrieval', 'handover', 'assay'];
/** The measurement kind of a custody field. */
export const CUSTODY_KIND = 'custody';
/** The custody fields, in the order a writer puts them in a reading. */
export const CUSTODY_FIELDS = ['step', 'at', 'by', 'to', 'code', 'fromCode', 'weight', 'batch', 'place', 'backupCode', 'method'] as const;
export const CUSTODY_AT_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

/** One custody event as recorded (the fields of its `custody` measurements). */
export interface CustodyEvent {
  step: CustodyStep;
  /** When, ISO 8601 with offset (e.g. `2024-03-01T08:10:00+08:00`), as recorded. */
  at: string;
  /** Who did it (for a hand-over: who handed the sample over). */
  by: string;
  /** Hand-over, preparation or assay: who received the sample. */
  to?: string;
  /** The code the sample carries after this event (sampling code, preparation code, assay code). */
  code: string;
  /** The code before the event, when the event re-labels (preparation: sampling code; assay: preparation code). */
  fromCode?: string;
  /** Weight as read on the balance, exact text. */
  weight?: string;
  /** Unit of `weight`: `g` or `kg`. Default `g`. */
  weightUnit?: 'g' | 'kg';
  /** Sampling: the in-factory batch (入厂批次) the sample represents. */
  batch?: string;
  /** Storage/retrieval: cabinet and door (存样柜), or another place. */
  place?: string;
  /** Preparation: backup code (备用码) of the retained sample. */
  backupCode?: string;
  /** Sampling/preparation method or type, as recorded (SamplingType, MakeType). */
  method?: string;
}

/** An event as the rule reads it: where it was recorded and its fields as text. */
export interface CustodyInput {
  device: string;
  seq: number;
  fields: Readonly<Record<string, string>>;
  /** Unit of the `weight` field (default `g`). */
  weightUnit?: string;
  /** Set when the reader already found the event malformed (e.g. a field repeated). */
  bad?: string;
}

/** A well-formed event, in the order the rule takes it. */
export interface CustodyChainEvent {
  /** Index in the input. */
  index: number;
  device: string;
  seq: number;
  step: CustodyStep;
  at: string;
  atMs: number;
  by: string;
  to?: string;
  code: string;
  fromCode?: string;
  /** Weight text with its unit, e.g. `120.5 g`. */
  weight?: string;
  grams?: Rational;
  batch?: string;
}

export type CustodyIssueCode =
  | 'CUSTODY_BAD_EVENT'
  | 'CUSTODY_DUPLICATE_CODE'
  | 'CUSTODY_BROKEN_LINK'
  | 'CUSTODY_TIME_BACKWARDS'
  | 'CUSTODY_WEIGHT_DISCREPANCY'
  | 'CUSTODY_HOLDER_MISMATCH'
  | 'CUSTODY_MISSING_STEP';

export interface CustodyIssue {
  code: CustodyIssueCode;
  /** The code of the sample concerned, or `device/seq` for a malformed event. */
  subject: string;
  /** Input index of the event the issue is found at. */
  index: number;
  /** The events it concerns, in rule order (empty for CUSTODY_BAD_EVENT). */
  events: CustodyChainEvent[];
  values: Record<string, string | number | boolean>;
}

/** The re-link of one assay code back to its batch. */
export interface CustodyLink {
  assayCode: string;
  preparationCode?: string;
  samplingCode?: string;
  batch?: string;
  /** Input indices of the chain's events, in rule order. */
  events: number[];
}

export interface CustodyParams {
  /** Steps every assay's chain must have. Default [`sampling`, `preparation`]. */
  requiredSteps?: readonly string[];
  /** Largest |w1 - w0| / w0 between events that keep the code, decimal text. Default `0.01`. */
  weightTolerance?: string;
  /** Decimal places of the values reported. Default 4. */
  decimals?: number;
}

export interface CustodyResult {
  ok: boolean;
  /** Malformed events first (input order), then chain issues in rule order, then missing steps per assay. */
  issues: CustodyIssue[];
  links: CustodyLink[];
  /** The well-formed events in rule order. */
  events: CustodyChainEvent[];
}

const abs = (r: Rational): Rational => (r.n < 0n ? { n: -r.n, d: r.d } : r);

function parse(input: CustodyInput, index: number): CustodyChainEvent | string {
  if (input.bad !== undefined) return input.bad;
  const f = input.fields;
  if (!(CUSTODY_STEPS as readonly string[]).includes(f.step ?? '')) return 'unknown step';
  if (!f.at || !CUSTODY_AT_RE.test(f.at) || Number.isNaN(Date.parse(f.at))) return 'at is not ISO 8601 with an offset';
  if (!f.by || !f.code) return 'by or code missing';
  let grams: Rational | undefined;
  const unit = input.weightUnit ?? 'g';
  if (f.weight !== undefined) {
    const w = parseDecimal(f.weight);
    if (w === undefined || (unit !== 'g' && unit !== 'kg')) return 'weight is not decimal g or kg';
    grams = unit === 'kg' ? mul(w, fromInt(1000)) : w;
  }
  return {
    index,
    device: input.device,
    seq: input.seq,
    step: f.step as CustodyStep,
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

/** The rule of FORMAT.md §15.5 over custody events. */
export function checkCustody(inputs: readonly CustodyInput[], params: CustodyParams = {}): CustodyResult {
  const places = params.decimals ?? 4;
  const tolText = params.weightTolerance ?? '0.01';
  const tol = decimal(tolText);
  const required = params.requiredSteps ?? ['sampling', 'preparation'];
  const issues: CustodyIssue[] = [];
  const events: CustodyChainEvent[] = [];
  inputs.forEach((input, i) => {
    const e = parse(input, i);
    if (typeof e === 'string') issues.push({ code: 'CUSTODY_BAD_EVENT', subject: `${input.device}/${input.seq}`, index: i, events: [], values: { detail: e } });
    else events.push(e);
  });
  // The event recorded before each one on the same device (recording order is trusted, `at` is not).
  const deviceOrder = [...events].sort((a, b) => (a.device < b.device ? -1 : a.device > b.device ? 1 : a.seq - b.seq || a.index - b.index));
  const recordedBefore = new Map<CustodyChainEvent, CustodyChainEvent>();
  deviceOrder.forEach((e, i) => {
    const p = deviceOrder[i - 1];
    if (p !== undefined && p.device === e.device) recordedBefore.set(e, p);
  });
  events.sort((a, b) => a.atMs - b.atMs || (a.device < b.device ? -1 : a.device > b.device ? 1 : a.seq - b.seq || a.index - b.index));

  const issue = (code: CustodyIssueCode, e: CustodyChainEvent, evs: CustodyChainEvent[], values: CustodyIssue['values']) =>
    issues.push({ code, subject: e.code, index: e.index, events: evs, values });
  const creator = new Map<string, CustodyChainEvent>();
  const last = new Map<string, CustodyChainEvent>();
  const holder = new Map<string, string>();
  for (const e of events) {
    const relabels = e.step === 'preparation' || e.step === 'assay';
    if (e.step === 'sampling' || relabels) {
      const c = creator.get(e.code);
      if (c !== undefined) issue('CUSTODY_DUPLICATE_CODE', e, [c, e], { code: e.code });
      else creator.set(e.code, e);
    }
    const before = relabels ? e.fromCode : e.code;
    const prev = e.step === 'sampling' || before === undefined ? undefined : last.get(before);
    if (e.step !== 'sampling' && prev === undefined) issue('CUSTODY_BROKEN_LINK', e, [e], { missingCode: before ?? '' });
    const rb = recordedBefore.get(e);
    if (rb !== undefined && e.atMs < rb.atMs) issue('CUSTODY_TIME_BACKWARDS', e, [rb, e], {});
    if (prev !== undefined) {
      if (!relabels && prev.grams !== undefined && e.grams !== undefined && prev.grams.n > 0n) {
        const change = div(sub(e.grams, prev.grams), prev.grams);
        if (cmp(abs(change), tol) > 0) {
          issue('CUSTODY_WEIGHT_DISCREPANCY', e, [prev, e], { fromGrams: formatDecimal(prev.grams, places), toGrams: formatDecimal(e.grams, places), change: formatDecimal(change, places), tolerance: tolText });
        }
      }
      if (e.step === 'handover' || relabels) {
        const h = holder.get(before!);
        if (h !== undefined && h !== e.by) issue('CUSTODY_HOLDER_MISMATCH', e, [prev, e], { holder: h, by: e.by });
      }
    }
    last.set(e.code, e);
    if (e.step === 'storage') holder.delete(e.code);
    else holder.set(e.code, e.to ?? e.by);
  }
  // Every assay walks back to its sampling: assay code <- preparation code <- sampling code.
  const links: CustodyLink[] = [];
  for (const e of events) {
    if (e.step !== 'assay') continue;
    const link: CustodyLink = { assayCode: e.code, events: [] };
    const codes = new Set<string>();
    let cur: CustodyChainEvent | undefined = e;
    for (let guard = 0; cur !== undefined && guard <= events.length; guard++) {
      codes.add(cur.code);
      if (cur.step === 'preparation') link.preparationCode ??= cur.code;
      if (cur.step === 'sampling') {
        link.samplingCode = cur.code;
        if (cur.batch !== undefined) link.batch = cur.batch;
        break;
      }
      cur = cur.fromCode === undefined ? undefined : creator.get(cur.fromCode);
    }
    const chain = events.filter((x) => codes.has(x.code) && x.atMs <= e.atMs);
    link.events = chain.map((x) => x.index);
    links.push(link);
    const steps = new Set(chain.map((x) => x.step));
    const missing = required.filter((s) => !steps.has(s as CustodyStep));
    if (missing.length > 0) issue('CUSTODY_MISSING_STEP', e, chain, { missing: missing.join(','), steps: [...steps].join(',') });
  }
  return { ok: issues.length === 0, issues, links, events };
}

/** The rule over events given as objects in recording order (one device: seq = index). */
export function checkCustodyEvents(list: readonly CustodyEvent[], params: CustodyParams = {}): CustodyResult {
  return checkCustody(
    list.map((e, i) => {
      const fields: Record<string, string> = {};
      for (const f of CUSTODY_FIELDS) if (typeof e[f] === 'string') fields[f] = e[f];
      return { device: '', seq: i, fields, ...(e.weightUnit === undefined ? {} : { weightUnit: e.weightUnit }) };
    }),
    params,
  );
}
