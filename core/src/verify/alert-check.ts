/**
 * Check 9 of the verifier (FORMAT.md §9, §15.7): recompute a bundle's alert from the readings that verified.
 *
 * The alert carries its whole rule (type, standard, version, parameters) and the rule set's context (UTC offset,
 * plant-marked invalid periods, evaluation time), so the verifier needs nothing from outside the bundle. It runs
 * the same engine over the verified reading bodies and compares: the alert must be produced again (same id, so the
 * same rule, version, kind, subject and window start), with the same values, window and readings, byte for byte
 * as JSON. Any difference is ALERT_MISMATCH_ERROR naming the path, the recomputed and the bundle's value.
 *
 * Wiring (for verify.ts check 9): pass `bundle.alert` and the decoded reading bodies that passed checks 3 and 4
 * (digest, header and chain); use the result's status, failures and notes as the check's.
 */
import { parseRule } from '../alerts/rules.ts';
import { evalReading, evaluateRule } from '../alerts/engine.ts';
import type { Alert, InvalidPeriod, RuleSet } from '../alerts/types.ts';
import type { Reading } from '../reading.ts';

export interface AlertCheckFailure {
  code: 'ALERT_MISMATCH_ERROR';
  sentence: string;
  path: string;
  expected?: string;
  actual?: string;
}

export interface AlertCheckResult {
  status: 'pass' | 'fail' | 'unchecked' | 'not-applicable';
  failures: AlertCheckFailure[];
  notes: string[];
  /** The alert as recomputed, when the readings produce it. */
  recomputed?: Alert;
}

const UTC_OFFSET = /^[+-](0\d|1[0-4]):[0-5]\d$/;

/** JSON text with object keys sorted (so key order in the bundle does not matter). */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v as object)
      .sort()
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** Whether an alert value has the shape of FORMAT.md §15.7 (older bundles may hold any JSON under `alert`). */
export function isStructuredAlert(alert: unknown): alert is Record<string, unknown> {
  return alert !== null && typeof alert === 'object' && !Array.isArray(alert) && typeof (alert as Record<string, unknown>).id === 'string' && 'rule' in (alert as object) && typeof (alert as Record<string, unknown>).kind === 'string';
}

/**
 * Recomputes `alert` from `readings` (the verified bodies of the bundle). `not-applicable` without an alert;
 * `unchecked` for an alert without the structured shape (v1 bundles) or when a reading the alert names has no
 * body in the bundle (hash-only evidence); otherwise `pass` or `fail` with ALERT_MISMATCH_ERROR.
 */
export function checkAlert(alert: unknown, readings: readonly Reading[]): AlertCheckResult {
  if (alert === undefined) return { status: 'not-applicable', failures: [], notes: [] };
  if (!isStructuredAlert(alert)) return { status: 'unchecked', failures: [], notes: ['the alert has no rule to recompute (not a FORMAT.md §15.7 alert)'] };
  const fail = (path: string, sentence: string, expected?: string, actual?: string): AlertCheckResult => ({
    status: 'fail',
    failures: [{ code: 'ALERT_MISMATCH_ERROR', sentence, path, ...(expected === undefined ? {} : { expected }), ...(actual === undefined ? {} : { actual }) }],
    notes: [],
  });
  let rule;
  try {
    rule = parseRule(alert.rule, '$.alert.rule');
  } catch (err) {
    return fail('$.alert.rule', `the alert's rule cannot be read: ${(err as Error).message}`);
  }
  const utcOffset = alert.utcOffset;
  if (utcOffset !== undefined && (typeof utcOffset !== 'string' || !UTC_OFFSET.test(utcOffset))) return fail('$.alert.utcOffset', 'the alert utcOffset is not ±HH:MM');
  const at = alert.evaluatedAt;
  if (at !== undefined && (typeof at !== 'number' || !Number.isSafeInteger(at) || at < 0)) return fail('$.alert.evaluatedAt', 'the alert evaluatedAt is not ms since the epoch');
  const periods = alert.invalidPeriods;
  if (periods !== undefined && (!Array.isArray(periods) || periods.length > 256)) return fail('$.alert.invalidPeriods', 'the alert invalidPeriods is not a list');
  const set: RuleSet = {
    format: 'stele-rules/1',
    rules: [rule],
    ...(utcOffset === undefined ? {} : { utcOffset: utcOffset as string }),
    ...(periods === undefined ? {} : { invalidPeriods: periods as InvalidPeriod[] }),
  };
  // Readings the alert names must be in the bundle with their bodies; otherwise this verifier cannot recompute.
  const have = new Set(readings.map((r) => `${r.device}\u0000${r.seq}`));
  const named = Array.isArray(alert.readings) ? (alert.readings as { device?: unknown; seq?: unknown }[]) : [];
  const missing = named.filter((r) => !have.has(`${String(r?.device)}\u0000${String(r?.seq)}`));
  if (missing.length > 0) return { status: 'unchecked', failures: [], notes: [`${missing.length} reading(s) the alert names have no verified body in the bundle`] };

  let recomputed: Alert | undefined;
  try {
    const result = evaluateRule(rule, readings.map((r) => evalReading(r)), set, at === undefined ? {} : { at: at as number });
    recomputed = result.alerts.find((a) => a.id === alert.id);
  } catch (err) {
    return fail('$.alert', `the rule could not be evaluated over the readings: ${(err as Error).message}`);
  }
  if (recomputed === undefined) {
    return fail('$.alert.id', 'the verified readings do not produce this alert (no alert with this rule, version, kind, subject and window)', undefined, String(alert.id));
  }
  const failures: AlertCheckFailure[] = [];
  for (const key of ['kind', 'subject', 'window', 'values', 'readings', 'inputs', 'excluded'] as const) {
    const want = canonical(recomputed[key] ?? null);
    const got = canonical(alert[key] ?? null);
    if (want === got) continue;
    if (key === 'values' && recomputed.values !== null && typeof alert.values === 'object' && alert.values !== null) {
      const a = alert.values as Record<string, unknown>;
      for (const k of new Set([...Object.keys(recomputed.values), ...Object.keys(a)])) {
        const w = canonical(recomputed.values[k] ?? null);
        const g = canonical(a[k] ?? null);
        if (w !== g) failures.push({ code: 'ALERT_MISMATCH_ERROR', sentence: `recomputed ${k} is ${w}, the alert says ${g}`, path: `$.alert.values.${k}`, expected: w, actual: g });
      }
      continue;
    }
    failures.push({ code: 'ALERT_MISMATCH_ERROR', sentence: `recomputed ${key} differs from the alert's`, path: `$.alert.${key}`, expected: want.slice(0, 2000), actual: got.slice(0, 2000) });
  }
  return { status: failures.length === 0 ? 'pass' : 'fail', failures, notes: [], recomputed };
}
