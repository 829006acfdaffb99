/**
 * Chain of custody of a coal sample (采样 -> 制样 -> 存样 -> 化验, PROTOCOLS.md §3.3). Each event (sampling,
 * preparation, storage, retrieval from storage, hand-over, assay) is a reading of its own, so that anchoring the
 * code-mapping events lets an auditor re-link an assay result (which carries only the blind assay code) to its
 * batch: assay code -> preparation code -> sampling code -> batch. The lab never needs to see the mapping.
 *
 * An event becomes measurements with kind `custody` (one per field, in a fixed order, values as recorded) and
 * comes back from them with {@link custodyEventFromMeasurements}. The chain rule (missing steps, broken links, weight
 * discrepancies, time going backwards, holder mismatches) is core's: `checkCustodyEvents` in `@stele/core/alerts`,
 * the same code the alert engine and the verifier run.
 */
import type { Measurement } from '@stele/core';
import { CUSTODY_AT_RE, CUSTODY_FIELDS, CUSTODY_KIND, CUSTODY_STEPS, type CustodyEvent, type CustodyStep } from '@stele/core/alerts';
import { CoalError } from './errors.ts';
import { DECIMAL_RE } from './result.ts';

export { CUSTODY_KIND };
export type { CustodyEvent, CustodyStep };
const FIELDS = CUSTODY_FIELDS;

function bad(message: string, where: Record<string, unknown>): never {
  throw new CoalError('CUSTODY_BAD_EVENT', message, { where });
}

/** Checks an event's own form (not its place in a chain); CUSTODY_BAD_EVENT with `where.field`. */
export function validateCustodyEvent(e: CustodyEvent): void {
  if (e === null || typeof e !== 'object') bad('event is not an object', { field: '' });
  if (!CUSTODY_STEPS.includes(e.step)) bad(`unknown step ${String(e.step)}`, { field: 'step' });
  for (const f of ['at', 'by', 'code'] as const) {
    if (typeof e[f] !== 'string' || e[f].trim() === '') bad(`${f} is missing`, { field: f });
  }
  if (!CUSTODY_AT_RE.test(e.at) || Number.isNaN(Date.parse(e.at))) {
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
