/**
 * A direct deterministic CBOR encoder (RFC 8949 §4.2.1) for the value shapes Stele's formats use: safe integers,
 * text without lone surrogates, byte strings, arrays, `Map`s and plain objects with integer or text keys, tags
 * (`Tagged`), booleans and null. It writes bytes straight into one buffer, with none of cborg's token objects:
 * the verifier re-encodes every statement, receipt and reading it reads (to reject non-deterministic encodings),
 * and cborg's general encoder was a quarter of its time (docs/BENCHMARKS.md, the verifier page).
 *
 * Same bytes as cborg's `encode(value, rfc8949EncodeOptions)` (test: cbor-fast.test.ts); any other value (a float,
 * -0, a bigint, undefined, another object type) makes it return undefined and `encodeCbor` falls back to cborg.
 */
import { Tagged } from 'cborg';

const utf8 = new TextEncoder();
/** A lone surrogate (TextEncoder and cborg may write different bytes for it). */
const SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

class Unsupported {}
const UNSUPPORTED = new Unsupported();

/** Nesting beyond this (or a cycle) is left to cborg, which reports it. */
const MAX_DEPTH = 64;

class Writer {
  buf: Uint8Array;
  len = 0;
  depth = 0;
  constructor(size = 256) {
    this.buf = new Uint8Array(size);
  }
  ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }
  head(major: number, n: number): void {
    this.ensure(9);
    const b = this.buf;
    const m = major << 5;
    if (n < 24) b[this.len++] = m | n;
    else if (n < 0x100) {
      b[this.len++] = m | 24;
      b[this.len++] = n;
    } else if (n < 0x10000) {
      b[this.len++] = m | 25;
      b[this.len++] = n >>> 8;
      b[this.len++] = n & 0xff;
    } else if (n < 0x100000000) {
      b[this.len++] = m | 26;
      b[this.len++] = n >>> 24;
      b[this.len++] = (n >>> 16) & 0xff;
      b[this.len++] = (n >>> 8) & 0xff;
      b[this.len++] = n & 0xff;
    } else {
      const hi = Math.floor(n / 0x100000000);
      const lo = n >>> 0;
      b[this.len++] = m | 27;
      b[this.len++] = hi >>> 24;
      b[this.len++] = (hi >>> 16) & 0xff;
      b[this.len++] = (hi >>> 8) & 0xff;
      b[this.len++] = hi & 0xff;
      b[this.len++] = lo >>> 24;
      b[this.len++] = (lo >>> 16) & 0xff;
      b[this.len++] = (lo >>> 8) & 0xff;
      b[this.len++] = lo & 0xff;
    }
  }
  bytes(data: Uint8Array): void {
    this.ensure(data.length);
    this.buf.set(data, this.len);
    this.len += data.length;
  }
}

/** Encoded map keys, by key: Stele's maps use a few dozen labels and names over and over. */
const keyCache = new Map<unknown, Uint8Array>();
const KEY_CACHE_MAX = 4096;

function encodeKey(key: unknown): Uint8Array {
  const hit = keyCache.get(key);
  if (hit !== undefined) return hit;
  const w = new Writer(16);
  write(w, key, true);
  const bytes = w.buf.slice(0, w.len);
  if (keyCache.size < KEY_CACHE_MAX && (typeof key === 'number' || (typeof key === 'string' && key.length <= 64))) keyCache.set(key, bytes);
  return bytes;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  return a.length - b.length;
}

function writeEntries(w: Writer, entries: [unknown, unknown][]): void {
  w.head(5, entries.length);
  if (entries.length === 0) return;
  if (entries.length === 1) {
    write(w, entries[0]![0], true);
    write(w, entries[0]![1], false);
    return;
  }
  const keyed = entries.map(([k, v]) => ({ k: encodeKey(k), v }));
  keyed.sort((a, b) => compareBytes(a.k, b.k));
  for (const { k, v } of keyed) {
    w.bytes(k);
    write(w, v, false);
  }
}

function write(w: Writer, v: unknown, isKey: boolean): void {
  switch (typeof v) {
    case 'number':
      if (!Number.isSafeInteger(v) || Object.is(v, -0)) throw UNSUPPORTED;
      if (v >= 0) w.head(0, v);
      else w.head(1, -1 - v);
      return;
    case 'string': {
      if (v.length < 128) {
        // Short ASCII text (names, codes, values as sent) is written as is, without a TextEncoder call.
        let ascii = true;
        for (let i = 0; i < v.length; i++) {
          if (v.charCodeAt(i) >= 0x80) {
            ascii = false;
            break;
          }
        }
        if (ascii) {
          w.head(3, v.length);
          w.ensure(v.length);
          for (let i = 0; i < v.length; i++) w.buf[w.len++] = v.charCodeAt(i);
          return;
        }
      }
      if (SURROGATE.test(v)) throw UNSUPPORTED;
      const b = utf8.encode(v);
      w.head(3, b.length);
      w.bytes(b);
      return;
    }
    case 'boolean':
      if (isKey) throw UNSUPPORTED;
      w.ensure(1);
      w.buf[w.len++] = v ? 0xf5 : 0xf4;
      return;
    case 'object':
      break;
    default:
      throw UNSUPPORTED;
  }
  if (isKey) throw UNSUPPORTED; // Stele's maps are keyed by integers or text only
  if (v === null) {
    w.ensure(1);
    w.buf[w.len++] = 0xf6;
    return;
  }
  if (++w.depth > MAX_DEPTH) throw UNSUPPORTED;
  writeObject(w, v);
  w.depth--;
}

function writeObject(w: Writer, v: object): void {
  if (v === null) {
    w.ensure(1);
    w.buf[w.len++] = 0xf6;
    return;
  }
  const proto = Object.getPrototypeOf(v) as unknown;
  if (proto === Uint8Array.prototype) {
    const b = v as Uint8Array;
    w.head(2, b.length);
    w.bytes(b);
  } else if (Array.isArray(v)) {
    w.head(4, v.length);
    for (const item of v) write(w, item, false);
  } else if (proto === Map.prototype) {
    writeEntries(w, [...(v as Map<unknown, unknown>).entries()]);
  } else if (proto === Object.prototype) {
    const entries = Object.entries(v as Record<string, unknown>);
    for (const [, x] of entries) if (x === undefined) throw UNSUPPORTED;
    writeEntries(w, entries);
  } else if (v instanceof Tagged && proto === Tagged.prototype) {
    if (!Number.isSafeInteger(v.tag) || v.tag < 0) throw UNSUPPORTED;
    w.head(6, v.tag);
    write(w, v.value, false);
  } else throw UNSUPPORTED;
}

/** The deterministic encoding of `value`, or undefined when it holds a value outside the shapes above. */
export function encodeFast(value: unknown): Uint8Array | undefined {
  const w = new Writer();
  try {
    write(w, value, false);
  } catch (err) {
    if (err === UNSUPPORTED) return undefined;
    throw err;
  }
  return w.buf.slice(0, w.len);
}
