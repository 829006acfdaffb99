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
import { itimeMs } from '../alerts/common.ts';
import type { Reading } from '../reading.ts';
import { FAIL, ofDevice, PASS } from './messages.ts';
import type { AlertSummary, Text } from './verdict.ts';

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

// ---- check 9 over a bundle: recomputation plus coverage of the alert's window (FORMAT.md §15.7, §15.8) ----------

/** A reading body of the bundle that passed checks 3 and 4 (digest, header, signature, chain). */
export interface VerifiedBody {
  seq: number;
  reading: Reading;
}

/** What check 9 reports: a status, its sentence, its failures (with zh/en sentences) and the alert summary. */
export interface BundleAlertJudgement {
  status: 'pass' | 'fail' | 'unchecked' | 'not-applicable';
  sentence: Text;
  failures: { code: 'ALERT_MISMATCH_ERROR' | 'ALERT_WINDOW_ERROR'; sentence: Text; path?: string; seq?: number; expected?: string; actual?: string }[];
  /** The alert as the bundle states it and as recomputed (absent when the bundle has none). */
  summary?: AlertSummary;
}

/**
 * The time of a reading on the alert window's basis (FORMAT.md §15.8): its instrument time `itime` (in the alert's
 * UTC offset) when the basis is `itime` and the reading has one, else its gateway time.
 */
export function basisTimeMs(reading: Reading, basis: 'itime' | 'time', utcOffset: string): number {
  return basis === 'itime' && reading.itime !== undefined ? itimeMs(reading.itime, utcOffset) : reading.time;
}

/** A canonical JSON value as the officer reads it: a string without its quotes. */
function bare(json: string | undefined): string {
  if (json === undefined) return 'null';
  try {
    const v: unknown = JSON.parse(json);
    return typeof v === 'string' ? v : json;
  } catch {
    return json;
  }
}

const shortValues = (values: Record<string, unknown> | undefined): string =>
  values === undefined
    ? ''
    : Object.entries(values)
        .slice(0, 8)
        .map(([k, v]) => `${k} ${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(', ');

/**
 * Check 9 over a parsed bundle (FORMAT.md §9 check 9, §15.7, §15.8): `window` is the bundle's seq window,
 * `bodies` the reading bodies that passed checks 3 and 4. Recomputes the alert; then, for a recomputed alert, judges
 * whether the bundle proves its time window complete: the window must start at seq 1 or at a reading before the
 * alert window (else ALERT_WINDOW_ERROR), and end at a reading at or after its end (else `unchecked`: readings
 * after the last one in the bundle are not shown absent).
 */
export function judgeBundleAlert(alert: unknown, window: { firstSeq: number; lastSeq: number }, bodies: readonly VerifiedBody[]): BundleAlertJudgement {
  return judgeAlertOver(alert, [{ path: '$', window, bodies }]);
}

/** One device's bundle in an evidence set (FORMAT.md §7.2), as check 9 sees it. */
export interface AlertSetMember {
  device: string;
  window: { firstSeq: number; lastSeq: number };
  /** The member's reading bodies that passed its checks 3 and 4. */
  bodies: readonly VerifiedBody[];
}

/**
 * Check 9 over an evidence set (FORMAT.md §7.2): the alert recomputed from the verified bodies of all its bundles,
 * and the window of every bundle judged by §15.8 as in a single bundle (its path `$.bundles[i]`).
 */
export function judgeSetAlert(alert: unknown, members: readonly AlertSetMember[]): BundleAlertJudgement {
  return judgeAlertOver(
    alert,
    members.map((m, i) => ({ path: `$.bundles[${i}]`, device: m.device, window: m.window, bodies: m.bodies })),
  );
}

interface Covered {
  path: string;
  device?: string;
  window: { firstSeq: number; lastSeq: number };
  bodies: readonly VerifiedBody[];
}

function judgeAlertOver(alert: unknown, members: readonly Covered[]): BundleAlertJudgement {
  if (alert === undefined) return { status: 'not-applicable', sentence: PASS.alertNone(), failures: [] };
  if (!isStructuredAlert(alert)) return { status: 'unchecked', sentence: PASS.alertUnstructured(), failures: [] };
  const r = checkAlert(alert, members.flatMap((m) => m.bodies.map((b) => b.reading)));
  const rule = (alert.rule ?? {}) as { standard?: unknown; version?: unknown; id?: unknown };
  const w = (alert.window ?? {}) as { from?: unknown; to?: unknown; basis?: unknown };
  const summary: AlertSummary = {
    id: String(alert.id),
    kind: String(alert.kind),
    subject: String(alert.subject),
    rule: `${String(rule.id)} v${String(rule.version)}`,
    standard: String(rule.standard),
    window: { from: String(w.from), to: String(w.to), basis: w.basis === 'time' ? 'time' : 'itime' },
    values: (alert.values !== null && typeof alert.values === 'object' ? alert.values : {}) as Record<string, unknown>,
    ...(r.recomputed === undefined ? {} : { recomputed: r.recomputed.values }),
    readings: Array.isArray(alert.readings) ? alert.readings.length : 0,
  };
  if (r.status === 'unchecked') return { status: 'unchecked', sentence: PASS.alertNoBody(r.notes.join('; ')), failures: [], summary };
  if (r.status === 'fail') {
    const failures: BundleAlertJudgement['failures'] = r.failures.map((f) => {
        const value = f.path.startsWith('$.alert.values.') ? f.path.slice('$.alert.values.'.length) : undefined;
        const sentence =
          value !== undefined
            ? FAIL.alertValue(value, bare(f.expected), bare(f.actual))
            : f.path === '$.alert.id'
              ? FAIL.alertNotProduced()
              : FAIL.alertField(f.path, f.sentence);
        return { code: f.code, sentence, path: f.path, ...(f.expected === undefined ? {} : { expected: f.expected }), ...(f.actual === undefined ? {} : { actual: f.actual }) };
    });
    return { status: 'fail', sentence: failures[0]!.sentence, failures, summary };
  }
  // Recomputed: now the coverage of the alert window by each bundle's seq window (FORMAT.md §15.8). A failure of any
  // bundle fails the check; else any bundle that does not show its end keeps it open.
  const a = r.recomputed!;
  const off = a.utcOffset ?? '+08:00';
  const from = Date.parse(a.window.from);
  const to = Date.parse(a.window.to);
  const named = (m: Covered, t: Text): Text => (m.device === undefined ? t : ofDevice(m.device, t));
  let open: Text | undefined;
  for (const m of members) {
    const { window } = m;
    // The logged reading of a seq first (a caught fork of it comes after); the end is the last verified body at or
    // after lastSeq: a caught statement ahead of the window (after a proven gap) closes it (FORMAT.md §15.8).
    const bySeq = new Map<number, Reading>();
    let endSeq = window.lastSeq;
    for (const b of m.bodies) {
      if (!bySeq.has(b.seq)) bySeq.set(b.seq, b.reading);
      if (b.seq > endSeq) endSeq = b.seq;
    }
    const first = bySeq.get(window.firstSeq);
    const last = bySeq.get(endSeq);
    if (window.firstSeq > 1) {
      if (first === undefined) {
        open ??= named(m, PASS.alertWindowBoundaryUnverified(window.firstSeq));
        continue;
      }
      const t = basisTimeMs(first, a.window.basis, off);
      if (!(t < from)) {
        const sentence = named(m, FAIL.alertWindowStart(window.firstSeq, t, a.window.from));
        return {
          status: 'fail',
          sentence,
          failures: [{ code: 'ALERT_WINDOW_ERROR', sentence, seq: window.firstSeq, path: `${m.path}.window.firstSeq`, expected: `a reading before ${a.window.from}`, actual: new Date(t).toISOString() }],
          summary,
        };
      }
    }
    if (last === undefined) open ??= named(m, PASS.alertWindowBoundaryUnverified(endSeq));
    else if (!(basisTimeMs(last, a.window.basis, off) >= to)) open ??= named(m, PASS.alertWindowOpenEnd(endSeq, a.window.to));
  }
  if (open !== undefined) return { status: 'unchecked', sentence: open, failures: [], summary };
  const only = members.length === 1 && members[0]!.device === undefined ? members[0]! : undefined;
  const sentence =
    only !== undefined
      ? PASS.alertRecomputed(a.kind, a.subject, shortValues(a.values), a.rule.standard, only.window.firstSeq, only.window.lastSeq)
      : PASS.alertRecomputedSet(a.kind, a.subject, shortValues(a.values), a.rule.standard, members.map((m) => `${m.device ?? ''} seq ${m.window.firstSeq}–${m.window.lastSeq}`).join(', '));
  return { status: 'pass', sentence, failures: [], summary };
}
