/**
 * Chain of custody of a coal sample (采样 -> 制样 -> 存样 -> 化验, PROTOCOLS.md §3.3). Each event (sampling,
 * preparation, storage, retrieval from storage, hand-over, assay) is a reading of its own, so that anchoring the
 * code-mapping events lets an auditor re-link an assay result (which carries only the blind assay code) to its
 * batch: assay code -> preparation code -> sampling code -> batch. The lab never needs to see the mapping.
 *
 * An event becomes measurements with kind `custody` (one per field, in a fixed order, values as recorded) and
 * comes back from them with {@link custodyEventFromMeasurements}. {@link checkCustodyChain} finds missing steps,
 * broken links, weight changes beyond tolerance, time going backwards and holder mismatches, each with a code.
 */
import type { Measurement } from '@stele/core';
import { CoalError } from './errors.ts';
import { DECIMAL_RE } from './result.ts';

export type CustodyStep = 'sampling' | 'preparation' | 'storage' | 'retrieval' | 'handover' | 'assay';
const STEPS: readonly CustodyStep[] = ['sampling', 'preparation', 'storage', 'retrieval', 'handover', 'assay'];

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

export const CUSTODY_KIND = 'custody';
const FIELDS = ['step', 'at', 'by', 'to', 'code', 'fromCode', 'weight', 'batch', 'place', 'backupCode', 'method'] as const;

function bad(message: string, where: Record<string, unknown>): never {
  throw new CoalError('CUSTODY_BAD_EVENT', message, { where });
}

/** Checks an event's own form (not its place in a chain); CUSTODY_BAD_EVENT with `where.field`. */
export function validateCustodyEvent(e: CustodyEvent): void {
  if (e === null || typeof e !== 'object') bad('event is not an object', { field: '' });
  if (!STEPS.includes(e.step)) bad(`unknown step ${String(e.step)}`, { field: 'step' });
  for (const f of ['at', 'by', 'code'] as const) {
    if (typeof e[f] !== 'string' || e[f].trim() === '') bad(`${f} is missing`, { field: f });
  }
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(e.at) || Number.isNaN(Date.parse(e.at))) {
    bad('at is not ISO 8601 with an offset', { field: 'at' });
  }
  if (e.weight !== undefined && !DECIMAL_RE.test(e.weight)) bad('weight is not a decimal number', { field: 'weight' });
  if (e.weightUnit !== undefined && e.weightUnit !== 'g' && e.weightUnit !== 'kg') bad('weightUnit must be g or kg', { field: 'weightUnit' });
  if ((e.step === 'preparation' || e.step === 'assay') && (e.fromCode === undefined || e.fromCode === '')) {
    bad(`${e.step} must name the code it re-labels (fromCode)`, { field: 'fromCode' });
  }
  if (e.step === 'handover' && (e.to === undefined || e.to === '')) bad('a hand-over must name its receiver (to)', { field: 'to' });
  if (e.step === 'sampling' && (e.batch === undefined || e.batch === '')) bad('sampling must name its batch', { field: 'batch' });
}

/** CustodyEvent -> measurements (kind `custody`, code = field name; weight carries its unit). */
export function custodyMeasurements(e: CustodyEvent): Measurement[] {
  validateCustodyEvent(e);
  const out: Measurement[] = [];
  for (const f of FIELDS) {
    const value = e[f];
    if (value === undefined) continue;
    const m: Measurement = { code: f, kind: CUSTODY_KIND, value };
    if (f === 'weight') m.unit = e.weightUnit ?? 'g';
    out.push(m);
  }
  return out;
}

/** Measurements of a custody reading -> the event (what an auditor does with anchored readings). */
export function custodyEventFromMeasurements(meas: readonly Measurement[]): CustodyEvent {
  const got: Record<string, string> = {};
  let unit: string | undefined;
  for (const m of meas) {
    if (m.kind !== CUSTODY_KIND) continue;
    if (!(FIELDS as readonly string[]).includes(m.code)) bad(`unknown custody field ${m.code}`, { field: m.code });
    if (got[m.code] !== undefined) bad(`custody field ${m.code} repeated`, { field: m.code });
    got[m.code] = m.value;
    if (m.code === 'weight') unit = m.unit;
  }
  const e = { ...got } as unknown as CustodyEvent;
  if (unit !== undefined) {
    if (unit !== 'g' && unit !== 'kg') bad('weight unit must be g or kg', { field: 'weight' });
    e.weightUnit = unit;
  }
  validateCustodyEvent(e);
  return e;
}

export type CustodyIssueCode =
  /** An assay whose chain lacks preparation or sampling (or storage, when required). */
  | 'CUSTODY_MISSING_STEP'
  /** A `fromCode` that no earlier event produced. */
  | 'CUSTODY_BROKEN_LINK'
  /** Two re-labelling events produce the same code. */
  | 'CUSTODY_DUPLICATE_CODE'
  /** The sample lost more weight than the tolerance between two events that should not change it. */
  | 'CUSTODY_WEIGHT_LOSS'
  /** The sample gained weight beyond the tolerance (mix-up or substitution). */
  | 'CUSTODY_WEIGHT_GAIN'
  /** An event is earlier than the event before it in the chain. */
  | 'CUSTODY_TIME_BACKWARDS'
  /** A hand-over or retrieval by someone who was not holding the sample. */
  | 'CUSTODY_HOLDER_MISMATCH'
  /** The event is malformed (see validateCustodyEvent). */
  | 'CUSTODY_BAD_EVENT';

export interface CustodyIssue {
  code: CustodyIssueCode;
  /** Index of the event in the input. */
  index: number;
  /** The assay code of the chain, when known. */
  assayCode?: string;
  detail?: Record<string, unknown>;
}

export interface CustodyCheckOptions {
  /**
   * Largest weight change allowed between two events that should not change the sample (same code: storage,
   * retrieval, hand-over), as a fraction of the earlier weight. Default 0.01 (1 %): a site setting, not a value
   * from a standard; coal loses moisture in storage, so tighten it only with sealed containers.
   */
  weightTolerance?: number;
  /** Steps every assay chain must contain. Default ['sampling', 'preparation']. */
  requiredSteps?: readonly CustodyStep[];
}

export interface CustodyLink {
  assayCode: string;
  preparationCode?: string;
  samplingCode?: string;
  batch?: string;
  /** Indices of the chain's events, oldest first. */
  events: number[];
}

export interface CustodyReport {
  ok: boolean;
  issues: CustodyIssue[];
  /** One per assay event: the re-link from assay code back to batch. */
  links: CustodyLink[];
}

function grams(e: CustodyEvent): number | undefined {
  if (e.weight === undefined) return undefined;
  return Number(e.weight) * ((e.weightUnit ?? 'g') === 'kg' ? 1000 : 1);
}

/**
 * Checks custody events given in recording order (reading seq order: that order is trusted, the `at` times are
 * not). For every assay it follows fromCode links back to a sampling event and reports issues along the way.
 */
export function checkCustodyChain(events: readonly CustodyEvent[], options: CustodyCheckOptions = {}): CustodyReport {
  const tol = options.weightTolerance ?? 0.01;
  if (!(tol >= 0)) throw new RangeError('options.weightTolerance must be >= 0');
  const required = options.requiredSteps ?? ['sampling', 'preparation'];
  const issues: CustodyIssue[] = [];
  const valid: boolean[] = events.map((e, index) => {
    try {
      validateCustodyEvent(e);
      return true;
    } catch (error) {
      issues.push({ code: 'CUSTODY_BAD_EVENT', index, detail: { field: error instanceof CoalError ? error.where?.field : undefined } });
      return false;
    }
  });

  // Events that create a code (sampling creates the sampling code, preparation and assay re-label).
  const creator = new Map<string, number>();
  events.forEach((e, i) => {
    if (!valid[i] || (e.step !== 'sampling' && e.step !== 'preparation' && e.step !== 'assay')) return;
    const prev = creator.get(e.code);
    if (prev !== undefined) issues.push({ code: 'CUSTODY_DUPLICATE_CODE', index: i, detail: { code: e.code, first: prev } });
    else creator.set(e.code, i);
  });

  // Per code, in recording order: check time, weight and holder between consecutive events of the same code.
  const lastOfCode = new Map<string, number>();
  const holder = new Map<string, string>();
  events.forEach((e, i) => {
    if (!valid[i]) return;
    const before = e.fromCode !== undefined && e.step !== 'storage' && e.step !== 'retrieval' && e.step !== 'handover' ? e.fromCode : e.code;
    const prevIndex = e.step === 'sampling' ? undefined : lastOfCode.get(before);
    if (e.step !== 'sampling' && prevIndex === undefined) {
      issues.push({ code: 'CUSTODY_BROKEN_LINK', index: i, detail: { code: before } });
    }
    if (prevIndex !== undefined) {
      const p = events[prevIndex]!;
      if (Date.parse(e.at) < Date.parse(p.at)) issues.push({ code: 'CUSTODY_TIME_BACKWARDS', index: i, detail: { previous: prevIndex, at: e.at, previousAt: p.at } });
      const relabels = e.step === 'preparation' || e.step === 'assay';
      const w0 = grams(p);
      const w1 = grams(e);
      if (!relabels && w0 !== undefined && w1 !== undefined && w0 > 0) {
        const change = (w1 - w0) / w0;
        if (change < -tol) issues.push({ code: 'CUSTODY_WEIGHT_LOSS', index: i, detail: { previous: prevIndex, fromGrams: w0, toGrams: w1, fraction: change } });
        if (change > tol) issues.push({ code: 'CUSTODY_WEIGHT_GAIN', index: i, detail: { previous: prevIndex, fromGrams: w0, toGrams: w1, fraction: change } });
      }
      // Whoever hands over, prepares or assays must be holding the sample. Storage puts it in a place
      // (holder: none), from which any authorised person may retrieve it.
      if (e.step === 'handover' || e.step === 'preparation' || e.step === 'assay') {
        const h = holder.get(before);
        if (h !== undefined && h !== e.by) issues.push({ code: 'CUSTODY_HOLDER_MISMATCH', index: i, detail: { holder: h, by: e.by } });
      }
    }
    lastOfCode.set(e.code, i);
    if (e.step === 'storage') holder.delete(e.code);
    else holder.set(e.code, e.to ?? e.by);
  });

  // Re-link each assay back to its batch.
  const links: CustodyLink[] = [];
  events.forEach((e, i) => {
    if (!valid[i] || e.step !== 'assay') return;
    const link: CustodyLink = { assayCode: e.code, events: [] };
    // Walk the re-labelling events backwards: assay code <- preparation code <- sampling code.
    const codes = new Set<string>();
    let cur: number | undefined = i;
    for (let guard = 0; cur !== undefined && guard <= events.length; guard++) {
      const ev: CustodyEvent = events[cur]!;
      codes.add(ev.code);
      if (ev.step === 'preparation') link.preparationCode ??= ev.code;
      if (ev.step === 'sampling') {
        link.samplingCode = ev.code;
        if (ev.batch !== undefined) link.batch = ev.batch;
        break;
      }
      cur = ev.fromCode === undefined ? undefined : creator.get(ev.fromCode);
    }
    const chain = events.map((x, j) => j).filter((j) => valid[j] && j <= i && codes.has(events[j]!.code));
    const steps = new Set(chain.map((j) => events[j]!.step));
    link.events = chain;
    links.push(link);
    for (const s of required) {
      if (!steps.has(s)) issues.push({ code: 'CUSTODY_MISSING_STEP', index: i, assayCode: e.code, detail: { step: s } });
    }
  });
  // Attach the assay code to issues inside a chain, for the report.
  for (const issue of issues) {
    if (issue.assayCode !== undefined) continue;
    const l = links.find((x) => x.events.includes(issue.index));
    if (l !== undefined) issue.assayCode = l.assayCode;
  }
  issues.sort((a, b) => a.index - b.index);
  return { ok: issues.length === 0, issues, links };
}
