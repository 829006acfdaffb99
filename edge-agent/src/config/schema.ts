/**
 * A small validator over the YAML AST: every node keeps its offset, so every problem is reported with the
 * file, line, column and field path, and all problems are collected before anything is thrown. Rules return
 * the plain value, or `INVALID` after recording an issue (a field that failed never hides its siblings' issues).
 */
import { isMap, isScalar, isSeq, type LineCounter, type Node, type Pair } from 'yaml';
import type { ConfigIssue } from './errors.ts';

export const INVALID: unique symbol = Symbol('invalid');
export type Invalid = typeof INVALID;

export interface Ctx {
  file: string;
  lineCounter: LineCounter;
  issues: ConfigIssue[];
}

/** A YAML node (or undefined when the field is absent) and where to point when it is absent. */
export interface At {
  node: unknown;
  path: string;
  /** Offset to report when `node` has no range (a missing field: its parent map). */
  fallbackOffset: number;
}

export type Rule<T> = (at: At, ctx: Ctx) => T | Invalid;

export function offsetOf(at: At): number {
  const range = (at.node as Node | undefined)?.range;
  return range?.[0] ?? at.fallbackOffset;
}

export function report(ctx: Ctx, at: At, message: string, offset = offsetOf(at)): Invalid {
  const { line, col } = ctx.lineCounter.linePos(offset);
  ctx.issues.push({ file: ctx.file, line, column: col, path: at.path, message });
  return INVALID;
}

/** How a value is shown in a message: short, quoted, never a multi-line dump. */
export function show(node: unknown): string {
  if (isMap(node)) return 'a map';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) {
    const v = node.value;
    if (v === null) return 'nothing';
    const s = typeof v === 'string' ? JSON.stringify(v) : String(v);
    return s.length > 60 ? `${s.slice(0, 57)}...` : s;
  }
  return 'nothing';
}

function scalar(at: At): unknown {
  return isScalar(at.node) ? at.node.value : undefined;
}

export function string(options: { pattern?: RegExp; expected?: string; maxLength?: number } = {}): Rule<string> {
  const expected = options.expected ?? 'a non-empty string';
  return (at, ctx) => {
    const v = scalar(at);
    if (typeof v !== 'string' || v.length === 0) return report(ctx, at, `expected ${expected}, got ${show(at.node)}`);
    if (options.maxLength !== undefined && v.length > options.maxLength) return report(ctx, at, `expected ${expected} (at most ${options.maxLength} characters)`);
    if (options.pattern !== undefined && !options.pattern.test(v)) return report(ctx, at, `expected ${expected}, got ${show(at.node)}`);
    return v;
  };
}

export function oneOf<const T extends string>(values: readonly T[]): Rule<T> {
  return (at, ctx) => {
    const v = scalar(at);
    if (typeof v === 'string' && (values as readonly string[]).includes(v)) return v as T;
    const hint = typeof v === 'string' ? suggest(v, values) : undefined;
    return report(ctx, at, `expected one of ${values.join(', ')}, got ${show(at.node)}${hint === undefined ? '' : ` (did you mean ${hint}?)`}`);
  };
}

export function integer(options: { min?: number; max?: number } = {}): Rule<number> {
  const { min = 0, max = Number.MAX_SAFE_INTEGER } = options;
  return (at, ctx) => {
    const v = scalar(at);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
      return report(ctx, at, `expected an integer from ${min} to ${max}, got ${show(at.node)}`);
    }
    return v;
  };
}

export function boolean(): Rule<boolean> {
  return (at, ctx) => {
    const v = scalar(at);
    return typeof v === 'boolean' ? v : report(ctx, at, `expected true or false, got ${show(at.node)}`);
  };
}

const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/** A size in bytes: an integer, or a string such as `500MB`, `1.5 GiB` (SI and IEC units). */
export function bytes(options: { min?: number } = {}): Rule<number> {
  const { min = 0 } = options;
  const size: Rule<number> = (at, ctx) => {
    const v = scalar(at);
    if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
    if (typeof v === 'string') {
      const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(v);
      const unit = SIZE_UNITS[(m?.[2] ?? '').toLowerCase() || 'b'];
      if (m !== null && unit !== undefined) {
        const n = Math.round(Number(m[1]) * unit);
        if (Number.isSafeInteger(n)) return n;
      }
    }
    return report(ctx, at, `expected a size such as 500MB or 2GiB (or a number of bytes), got ${show(at.node)}`);
  };
  return (at, ctx) => {
    const n = size(at, ctx);
    if (typeof n === 'number' && n < min) return report(ctx, at, `expected at least ${min} bytes, got ${show(at.node)}`);
    return n;
  };
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A duration in ms: an integer (ms), or a string such as `30s`, `5m`, `2h`, `30d`. */
export function duration(options: { minMs?: number } = {}): Rule<number> {
  const minMs = options.minMs ?? 0;
  return (at, ctx) => {
    const v = scalar(at);
    let ms: number | undefined;
    if (typeof v === 'number' && Number.isSafeInteger(v)) ms = v;
    if (typeof v === 'string') {
      const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(v);
      if (m !== null) ms = Math.round(Number(m[1]) * DURATION_UNITS[m[2]!]!);
    }
    if (ms === undefined || ms < minMs) {
      return report(ctx, at, `expected a duration such as 30s, 5m, 2h or 30d${minMs > 0 ? ` (at least ${minMs} ms)` : ''}, got ${show(at.node)}`);
    }
    return ms;
  };
}

export function list<T>(item: Rule<T>, options: { min?: number } = {}): Rule<T[]> {
  return (at, ctx) => {
    if (!isSeq(at.node)) return report(ctx, at, `expected a list, got ${show(at.node)}`);
    const out: T[] = [];
    let bad = false;
    const base = offsetOf(at);
    at.node.items.forEach((node, i) => {
      const v = item({ node, path: `${at.path}[${i}]`, fallbackOffset: base }, ctx);
      if (v === INVALID) bad = true;
      else out.push(v);
    });
    if (options.min !== undefined && at.node.items.length < options.min) {
      report(ctx, at, `expected at least ${options.min} item${options.min === 1 ? '' : 's'}`);
      return INVALID;
    }
    return bad ? INVALID : out;
  };
}

/** Any map (its values are plain JS, unvalidated): driver options checked later by the driver. */
export function anyMap(): Rule<Record<string, unknown>> {
  return (at, ctx) => {
    if (!isMap(at.node)) return report(ctx, at, `expected a map, got ${show(at.node)}`);
    return at.node.toJSON() as Record<string, unknown>;
  };
}

export interface Field<T> {
  rule: Rule<T>;
  required?: boolean;
  default?: T;
}

export type Shape = Record<string, Field<unknown>>;

export interface Fields {
  /** The field's node (undefined when absent) as an At, for reporting cross-field problems. */
  at(name: string): At;
}

/**
 * A map with known fields. Unknown fields are reported (with a suggestion), missing required ones too;
 * `refine` runs only when every field passed, for cross-field checks.
 */
export function object(
  shape: Shape,
  options: { refine?: (value: Record<string, unknown>, fields: Fields, ctx: Ctx) => void } = {},
): Rule<Record<string, unknown>> {
  return (at, ctx) => {
    if (!isMap(at.node)) return report(ctx, at, `expected a map with ${Object.keys(shape).join(', ')}, got ${show(at.node)}`);
    const pairs = new Map<string, Pair>();
    const base = offsetOf(at);
    const join = (k: string) => (at.path === '' ? k : `${at.path}.${k}`);
    for (const pair of at.node.items as Pair[]) {
      const key = isScalar(pair.key) ? pair.key.value : undefined;
      const keyAt: At = { node: pair.key, path: join(String(key)), fallbackOffset: base };
      if (typeof key !== 'string') {
        report(ctx, keyAt, 'expected a field name');
        continue;
      }
      if (!(key in shape)) {
        const hint = suggest(key, Object.keys(shape));
        report(ctx, keyAt, `unknown field${hint === undefined ? '' : ` (did you mean ${hint}?)`}; expected one of ${Object.keys(shape).join(', ')}`);
        continue;
      }
      pairs.set(key, pair);
    }
    const out: Record<string, unknown> = {};
    let bad = false;
    for (const [name, field] of Object.entries(shape)) {
      const pair = pairs.get(name);
      const fieldAt: At = { node: pair?.value ?? undefined, path: join(name), fallbackOffset: (pair?.key as Node | undefined)?.range?.[0] ?? base };
      const present = pair !== undefined && !(isScalar(pair.value) && pair.value.value === null) && pair.value !== null;
      if (!present) {
        if (field.required === true) {
          report(ctx, fieldAt, `required field is missing`);
          bad = true;
        } else if (field.default !== undefined) {
          out[name] = structuredClone(field.default);
        }
        continue;
      }
      const v = field.rule(fieldAt, ctx);
      if (v === INVALID) bad = true;
      else out[name] = v;
    }
    if (bad) return INVALID;
    if (options.refine !== undefined) {
      const before = ctx.issues.length;
      options.refine(
        out,
        {
          at(name) {
            const pair = pairs.get(name);
            return { node: pair?.value ?? undefined, path: join(name), fallbackOffset: base };
          },
        },
        ctx,
      );
      if (ctx.issues.length > before) return INVALID;
    }
    return out;
  };
}

/** The closest candidate within edit distance 2 (typos in field names and enum values). */
export function suggest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}
