/**
 * A strict, bounded JSON parser (RFC 8259) for the trust policy (docs/FORMAT.md §14.2). `JSON.parse` keeps the
 * last of two members with one name, so a policy could say one thing to one verifier and another to the next;
 * this parser rejects duplicate names instead, and bounds the work: nesting depth, string length and the number
 * of values are limited, and numbers must be integers written as plain digits in `0 ..= 2^53 - 1` (FORMAT.md §0).
 *
 * Untrusted input: every problem is a `FormatError('POLICY_FORMAT_ERROR')` naming the byte offset.
 */
import { FormatError } from '../errors.ts';

export interface StrictJsonLimits {
  /** Maximum nesting of arrays and objects. Default 8. */
  maxDepth?: number;
  /** Maximum number of values (every scalar, array and object counts one). Default 100 000. */
  maxValues?: number;
}

export type JsonValue = null | boolean | number | string | JsonValue[] | { [name: string]: JsonValue };

function fail(offset: number, message: string): never {
  throw new FormatError('POLICY_FORMAT_ERROR', `trust policy JSON: ${message} at byte ${offset}`, { where: { offset } });
}

/**
 * Parses UTF-8 JSON text (already decoded to a string) strictly: no duplicate object member names, integers only,
 * no leading whitespace other than JSON's, nothing after the top-level value.
 */
export function parseStrictJson(text: string, limits: StrictJsonLimits = {}): JsonValue {
  const maxDepth = limits.maxDepth ?? 8;
  const maxValues = limits.maxValues ?? 100_000;
  let i = 0;
  let values = 0;
  const ws = (): void => {
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else break;
    }
  };
  const count = (): void => {
    if (++values > maxValues) fail(i, `more than ${maxValues} values`);
  };
  const str = (): string => {
    // at the opening quote
    i++;
    let out = '';
    let start = i;
    for (;;) {
      if (i >= text.length) fail(i, 'unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(start, i);
        i++;
        return out;
      }
      if (c < 0x20) fail(i, 'control character in a string');
      if (c === 0x5c) {
        out += text.slice(start, i);
        const e = text[i + 1];
        const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
        if (e !== undefined && e in simple) {
          out += simple[e];
          i += 2;
        } else if (e === 'u') {
          const hex = text.slice(i + 2, i + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail(i, 'bad \\u escape');
          out += String.fromCharCode(Number.parseInt(hex, 16));
          i += 6;
        } else fail(i, 'bad escape');
        start = i;
        continue;
      }
      i++;
    }
  };
  const value = (depth: number): JsonValue => {
    ws();
    count();
    const c = text[i];
    if (c === '{') {
      if (depth >= maxDepth) fail(i, `nesting deeper than ${maxDepth}`);
      i++;
      const obj: { [name: string]: JsonValue } = Object.create(null) as { [name: string]: JsonValue };
      const names = new Set<string>();
      ws();
      if (text[i] === '}') {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail(i, 'expected a member name');
        const at = i;
        const name = str();
        if (names.has(name)) fail(at, `duplicate member name "${name.slice(0, 40)}"`);
        names.add(name);
        ws();
        if (text[i] !== ':') fail(i, 'expected ":"');
        i++;
        obj[name] = value(depth + 1);
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return obj;
        }
        fail(i, 'expected "," or "}"');
      }
    }
    if (c === '[') {
      if (depth >= maxDepth) fail(i, `nesting deeper than ${maxDepth}`);
      i++;
      const arr: JsonValue[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value(depth + 1));
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return arr;
        }
        fail(i, 'expected "," or "]"');
      }
    }
    if (c === '"') return str();
    if (text.startsWith('true', i)) {
      i += 4;
      return true;
    }
    if (text.startsWith('false', i)) {
      i += 5;
      return false;
    }
    if (text.startsWith('null', i)) {
      i += 4;
      return null;
    }
    const m = /^(0|[1-9][0-9]{0,15})(?![0-9.eE+-])/.exec(text.slice(i, i + 17));
    if (m === null) fail(i, 'expected a value (numbers: integers in plain digits only)');
    const n = Number(m[1]);
    if (!Number.isSafeInteger(n)) fail(i, 'integer above 2^53 - 1');
    i += m[1]!.length;
    return n;
  };
  const out = value(0);
  ws();
  if (i !== text.length) fail(i, 'trailing characters after the value');
  return out;
}
