/**
 * The rule engine (FORMAT.md §15): a rule set over verified readings -> aggregates and alerts. Pure and
 * isomorphic: the CLI, ingest and the verifier (check 9, {@link ../verify/alert-check.ts}) run the same code.
 */
import { fromHex, toHex } from '../bytes.ts';
import { encodeReading, readingDigest, type Reading } from '../reading.ts';
import { evaluateColdChain } from './cold-chain.ts';
import { evaluateCoalLab } from './coal-lab.ts';
import { evaluateEmission } from './emissions.ts';
import { evaluateIntegrity } from './integrity.ts';
import { AlertError } from './rules.ts';
import { DEFAULT_UTC_OFFSET } from './common.ts';
import type { Alert, EvalOptions, EvalReading, EvalResult, Rule, RuleSet } from './types.ts';

/** Evaluates one rule; `at` defaults to the latest gateway time among the readings. */
export function evaluateRule(rule: Rule, readings: readonly EvalReading[], set: RuleSet, options: EvalOptions = {}): EvalResult {
  const at = options.at ?? readings.reduce((m, r) => Math.max(m, r.reading.time), 0);
  let out: EvalResult;
  switch (rule.type) {
    case 'emission-hourly':
      out = evaluateEmission(rule, readings, set);
      break;
    case 'cold-chain':
      out = evaluateColdChain(rule, readings, set, options, at);
      break;
    case 'coal-lab':
      out = evaluateCoalLab(rule, readings, set);
      break;
    case 'integrity':
      out = evaluateIntegrity(rule, readings, set, at);
      break;
  }
  // The context a verifier needs to recompute the alert from the bundle alone (FORMAT.md §15.7).
  const alerts: Alert[] = out.alerts.map((a) => ({
    ...a,
    evaluatedAt: at,
    utcOffset: set.utcOffset ?? DEFAULT_UTC_OFFSET,
    ...(rule.type === 'emission-hourly' && set.invalidPeriods !== undefined ? { invalidPeriods: set.invalidPeriods } : {}),
  }));
  return { aggregates: out.aggregates, alerts };
}

/** Evaluates every rule of the set, in order. */
export function evaluateRuleSet(set: RuleSet, readings: readonly EvalReading[], options: EvalOptions = {}): EvalResult {
  const at = options.at ?? readings.reduce((m, r) => Math.max(m, r.reading.time), 0);
  const result: EvalResult = { aggregates: [], alerts: [] };
  for (const rule of set.rules) {
    const r = evaluateRule(rule, readings, set, { ...options, at });
    result.aggregates.push(...r.aggregates);
    result.alerts.push(...r.alerts);
  }
  return result;
}

/** A verified reading for the engine (its digest computed from its deterministic encoding). */
export function evalReading(reading: Reading, extra: { rejected?: string; receivedAt?: number } = {}): EvalReading {
  return { reading, digest: toHex(readingDigest(encodeReading(reading))), ...extra };
}

/** Longest line and most lines of a readings file (JSON lines): bounds on memory and work. */
export const MAX_READING_LINE = 256 * 1024;
export const MAX_READING_LINES = 2_000_000;

function badLine(line: number, message: string, cause?: unknown): never {
  throw new AlertError('READINGS_FORMAT_ERROR', `line ${line}: ${message}`, { where: { line }, ...(cause === undefined ? {} : { cause }) });
}

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * Parses one JSON line in the reading shape of FORMAT.md §2 (the JSON view of `test/vectors/reading.json`: digests
 * as lowercase hex) with optional `rejected` (a verification code) and `receivedAt` (ms). The reading must be valid
 * per FORMAT.md §2 (it is encoded and decoded); AlertError READINGS_FORMAT_ERROR with the line number otherwise.
 */
export function parseReadingLine(text: string, line: number): EvalReading {
  if (text.length > MAX_READING_LINE) badLine(line, `longer than ${MAX_READING_LINE} characters`);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (cause) {
    badLine(line, 'is not JSON', cause);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) badLine(line, 'is not a JSON object');
  const o = v as Record<string, unknown>;
  const known = ['v', 'device', 'sensor', 'seq', 'prev', 'time', 'clock', 'meas', 'raw', 'anchor', 'itime', 'rtype', 'rejected', 'receivedAt'];
  for (const k of Object.keys(o)) if (!known.includes(k)) badLine(line, `unknown key ${JSON.stringify(k)}`);
  const hex = (x: unknown, what: string): Uint8Array => {
    if (typeof x !== 'string' || !HEX64.test(x)) badLine(line, `${what} is not 64 lowercase hex digits`);
    return fromHex(x);
  };
  if (!Array.isArray(o.raw)) badLine(line, 'raw is not an array');
  const reading = {
    v: o.v,
    device: o.device,
    sensor: o.sensor,
    seq: o.seq,
    prev: hex(o.prev, 'prev'),
    time: o.time,
    clock: o.clock,
    meas: o.meas,
    raw: (o.raw as unknown[]).map((x, i) => hex(x, `raw[${i}]`)),
    ...(o.anchor === undefined ? {} : { anchor: hex(o.anchor, 'anchor') }),
    ...(o.itime === undefined ? {} : { itime: o.itime }),
    ...(o.rtype === undefined ? {} : { rtype: o.rtype }),
  } as Reading;
  let bytes: Uint8Array;
  try {
    bytes = encodeReading(reading);
  } catch (cause) {
    badLine(line, `is not a valid reading (FORMAT.md §2): ${(cause as Error).message}`, cause);
  }
  if (o.rejected !== undefined && (typeof o.rejected !== 'string' || !/^[A-Z0-9_]{1,64}$/.test(o.rejected))) badLine(line, 'rejected is not a verification code');
  if (o.receivedAt !== undefined && (typeof o.receivedAt !== 'number' || !Number.isSafeInteger(o.receivedAt) || o.receivedAt < 0)) badLine(line, 'receivedAt is not ms since the epoch');
  return {
    reading,
    digest: toHex(readingDigest(bytes)),
    ...(o.rejected === undefined ? {} : { rejected: o.rejected as string }),
    ...(o.receivedAt === undefined ? {} : { receivedAt: o.receivedAt as number }),
  };
}

/** Parses JSON lines (blank lines skipped). */
export function parseReadingLines(text: string): EvalReading[] {
  const out: EvalReading[] = [];
  const lines = text.split('\n');
  if (lines.length > MAX_READING_LINES) badLine(MAX_READING_LINES + 1, `more than ${MAX_READING_LINES} lines`);
  lines.forEach((l, i) => {
    if (l.trim() !== '') out.push(parseReadingLine(l, i + 1));
  });
  return out;
}

/** The JSON view of a reading (inverse of {@link parseReadingLine}). */
export function readingJsonView(r: Reading): Record<string, unknown> {
  return {
    v: r.v,
    device: r.device,
    sensor: r.sensor,
    seq: r.seq,
    prev: toHex(r.prev),
    time: r.time,
    clock: { ...r.clock },
    meas: r.meas.map((m) => ({ ...m })),
    raw: r.raw.map(toHex),
    ...(r.anchor === undefined ? {} : { anchor: toHex(r.anchor) }),
    ...(r.itime === undefined ? {} : { itime: r.itime }),
    ...(r.rtype === undefined ? {} : { rtype: r.rtype }),
  };
}
