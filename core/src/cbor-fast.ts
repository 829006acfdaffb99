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

/** encodeFast's writer, reused (see there). */
let scratch = new Writer(4096);
let scratchBusy = false;
const SCRATCH_KEEP = 1 << 20;

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
  // One scratch writer, reused (an encode is synchronous; a nested one, should a getter encode, gets its own):
  // only the result is allocated. A buffer grown past SCRATCH_KEEP is not kept.
  const w = scratchBusy ? new Writer() : scratch;
  const shared = w === scratch;
  if (shared) {
    scratchBusy = true;
    w.len = 0;
    w.depth = 0;
  }
  try {
    write(w, value, false);
    return w.buf.slice(0, w.len);
  } catch (err) {
    if (err === UNSUPPORTED) return undefined;
    throw err;
  } finally {
    if (shared) {
      scratchBusy = false;
      if (w.buf.length > SCRATCH_KEEP) scratch = new Writer(4096);
    }
  }
}

// ---- decoding ---------------------------------------------------------------------------------------------------

const utf8Fatal = new TextDecoder('utf-8', { fatal: true });

/** What `decodeFast` returns when it leaves the bytes to cborg. */
export const DECLINED: unique symbol = Symbol('declined');

class Reader {
  pos = 0;
  depth = 0;
  /**
   * Stays true while what was read is exactly what `encodeFast` writes for the value read: map keys in bytewise
   * order of their encodings (the only freedom left once heads are shortest, lengths definite and floats out) and
   * no text starting with a byte order mark (which the decoder drops).
   */
  deterministic = true;
  /** `bytes` is a Uint8Array itself, not a subclass such as Node's Buffer (whose slice() is a view). */
  readonly plain: boolean;
  constructor(
    readonly bytes: Uint8Array,
    readonly tags: readonly number[],
    /** Byte strings come back as views into `bytes` (decodeFastChecked). */
    readonly views: boolean,
  ) {
    this.plain = Object.getPrototypeOf(bytes) === Uint8Array.prototype;
  }
}

/** Argument of a head with additional info `info`; only the shortest form is taken (else cborg decides). */
function argument(r: Reader, info: number): number {
  const b = r.bytes;
  if (info < 24) return info;
  let n: number;
  if (info === 24) {
    if (r.pos + 1 > b.length) throw UNSUPPORTED;
    n = b[r.pos]!;
    r.pos += 1;
    if (n < 24) throw UNSUPPORTED;
  } else if (info === 25) {
    if (r.pos + 2 > b.length) throw UNSUPPORTED;
    n = (b[r.pos]! << 8) | b[r.pos + 1]!;
    r.pos += 2;
    if (n < 0x100) throw UNSUPPORTED;
  } else if (info === 26) {
    if (r.pos + 4 > b.length) throw UNSUPPORTED;
    n = ((b[r.pos]! << 24) >>> 0) + ((b[r.pos + 1]! << 16) | (b[r.pos + 2]! << 8) | b[r.pos + 3]!);
    r.pos += 4;
    if (n < 0x10000) throw UNSUPPORTED;
  } else if (info === 27) {
    if (r.pos + 8 > b.length) throw UNSUPPORTED;
    const hi = ((b[r.pos]! << 24) >>> 0) + ((b[r.pos + 1]! << 16) | (b[r.pos + 2]! << 8) | b[r.pos + 3]!);
    const lo = ((b[r.pos + 4]! << 24) >>> 0) + ((b[r.pos + 5]! << 16) | (b[r.pos + 6]! << 8) | b[r.pos + 7]!);
    r.pos += 8;
    if (hi === 0 || hi > 0x1fffff) throw UNSUPPORTED; // not shortest, or beyond a safe integer
    n = hi * 0x100000000 + lo;
  } else throw UNSUPPORTED; // indefinite lengths and reserved values
  return n;
}

/**
 * A copy of b[start, start + n), a plain Uint8Array even when `b` is a Node Buffer (whose slice() is a view, and a
 * Buffer). Every byte string of a statement is read this way (kid, signature, digests, the payload); slice() of a
 * plain array is one allocation, where a view then a copy was two.
 */
function copyOut(b: Uint8Array, plain: boolean, start: number, n: number): Uint8Array {
  return plain ? b.slice(start, start + n) : new Uint8Array(b.subarray(start, start + n));
}

/** b[start, start + n) as a plain Uint8Array sharing b's memory. */
function viewOf(b: Uint8Array, plain: boolean, start: number, n: number): Uint8Array {
  return plain ? b.subarray(start, start + n) : new Uint8Array(b.buffer, b.byteOffset + start, n);
}

/**
 * Short ASCII text read before, by a hash of its bytes: Stele's maps repeat a few dozen keys and short values
 * (device names, codes, units) in every statement and reading, and a TextDecoder call per text, with the view it
 * takes, was most of decoding them. A hit is compared byte for byte; ASCII bytes are their own UTF-8 decoding.
 */
const textCache = new Map<number, string>();
const TEXT_CACHE_MAX = 2048;
const TEXT_CACHE_LONGEST = 32;

function readText(b: Uint8Array, start: number, n: number): string {
  if (n <= TEXT_CACHE_LONGEST) {
    let h = 0x811c9dc5 ^ n;
    let ascii = true;
    for (let i = start; i < start + n; i++) {
      const c = b[i]!;
      if (c >= 0x80) {
        ascii = false;
        break;
      }
      h = Math.imul(h ^ c, 0x01000193);
    }
    if (ascii) {
      const hit = textCache.get(h);
      if (hit !== undefined && hit.length === n) {
        let same = true;
        for (let i = 0; i < n; i++) {
          if (hit.charCodeAt(i) !== b[start + i]) {
            same = false;
            break;
          }
        }
        if (same) return hit;
      }
      const text = String.fromCharCode.apply(null, b.subarray(start, start + n) as unknown as number[]);
      if (textCache.size < TEXT_CACHE_MAX) textCache.set(h, text);
      return text;
    }
  }
  try {
    return utf8Fatal.decode(b.subarray(start, start + n));
  } catch {
    throw UNSUPPORTED;
  }
}

/** compareBytes of b[aStart, aEnd) and b[bStart, bEnd), without copies. */
function compareRanges(b: Uint8Array, aStart: number, aEnd: number, bStart: number, bEnd: number): number {
  const n = Math.min(aEnd - aStart, bEnd - bStart);
  for (let i = 0; i < n; i++) if (b[aStart + i] !== b[bStart + i]) return b[aStart + i]! < b[bStart + i]! ? -1 : 1;
  return aEnd - aStart - (bEnd - bStart);
}

function read(r: Reader): unknown {
  const b = r.bytes;
  if (r.pos >= b.length) throw UNSUPPORTED;
  const initial = b[r.pos++]!;
  const major = initial >> 5;
  const info = initial & 31;
  switch (major) {
    case 0:
      return argument(r, info);
    case 1: {
      const n = argument(r, info);
      if (n >= Number.MAX_SAFE_INTEGER) throw UNSUPPORTED; // -1 - n would not be a safe integer
      return -1 - n;
    }
    case 2:
    case 3: {
      const n = argument(r, info);
      if (r.pos + n > b.length) throw UNSUPPORTED;
      const start = r.pos;
      r.pos += n;
      if (major === 2) return r.views ? viewOf(b, r.plain, start, n) : copyOut(b, r.plain, start, n);
      if (n >= 3 && b[start] === 0xef && b[start + 1] === 0xbb && b[start + 2] === 0xbf) r.deterministic = false;
      return readText(b, start, n);
    }
    case 4: {
      const n = argument(r, info);
      if (n > b.length - r.pos || ++r.depth > MAX_DEPTH) throw UNSUPPORTED;
      const out: unknown[] = new Array(n);
      for (let i = 0; i < n; i++) out[i] = read(r);
      r.depth--;
      return out;
    }
    case 5: {
      const n = argument(r, info);
      if (n > b.length - r.pos || ++r.depth > MAX_DEPTH) throw UNSUPPORTED;
      const out = new Map<unknown, unknown>();
      let prevStart = -1;
      let prevEnd = -1;
      for (let i = 0; i < n; i++) {
        const keyStart = r.pos;
        const key = read(r);
        if (r.deterministic && prevStart >= 0 && compareRanges(b, prevStart, prevEnd, keyStart, r.pos) >= 0) r.deterministic = false;
        prevStart = keyStart;
        prevEnd = r.pos;
        if ((typeof key !== 'number' && typeof key !== 'string') || out.has(key)) throw UNSUPPORTED;
        out.set(key, read(r));
      }
      r.depth--;
      return out;
    }
    case 6: {
      const tag = argument(r, info);
      if (!r.tags.includes(tag) || ++r.depth > MAX_DEPTH) throw UNSUPPORTED;
      const value = read(r);
      r.depth--;
      return new Tagged(tag, value);
    }
    default:
      if (initial === 0xf4) return false;
      if (initial === 0xf5) return true;
      if (initial === 0xf6) return null;
      throw UNSUPPORTED; // floats, undefined and other simple values
  }
}

/**
 * Decodes bytes made only of the shapes above in their shortest form (maps with integer or text keys, none
 * twice; tags only from `tags`; nothing after the item) to what cborg's strict decoder with `useMaps` gives for
 * them; anything else returns DECLINED, and `decodeCbor` asks cborg (which decodes it or says what is wrong).
 */
export function decodeFast(bytes: Uint8Array, tags: readonly number[]): unknown {
  return decodeFastChecked(bytes, tags).value;
}

/**
 * decodeFast, and whether the bytes are exactly the deterministic encoding of what they decode to
 * (`encodeFast(value)` would give them back byte for byte), found while reading: callers that must reject any
 * other encoding skip encoding the value again when it is true. False when declined.
 * `views`: byte strings are views into `bytes` instead of copies, for a caller that owns `bytes` and never
 * changes them (ingest's copy of a message as received: a copy per byte string was an allocation outside the heap).
 */
export function decodeFastChecked(bytes: Uint8Array, tags: readonly number[], views = false): { value: unknown; deterministic: boolean } {
  const r = new Reader(bytes, tags, views);
  try {
    const value = read(r);
    if (r.pos !== bytes.length) return { value: DECLINED, deterministic: false };
    return { value, deterministic: r.deterministic };
  } catch (err) {
    if (err === UNSUPPORTED) return { value: DECLINED, deterministic: false };
    throw err;
  }
}
