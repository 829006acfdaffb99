import { encode, rfc8949EncodeOptions, Tagged } from 'cborg';
import { describe, expect, it, vi } from 'vitest';
import { decode } from 'cborg';
import { DECLINED, decodeFast, decodeFastChecked, encodeFast } from './cbor-fast.ts';

/** A small deterministic PRNG so that a failure can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function randomValue(r: () => number, depth: number): unknown {
  const pick = Math.floor(r() * (depth > 3 ? 5 : 10));
  const ints = [0, 1, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER, -1, -24, -25, -256, -257, -(2 ** 32), -(2 ** 32) - 1, Number.MIN_SAFE_INTEGER];
  switch (pick) {
    case 0:
      return ints[Math.floor(r() * ints.length)]!;
    case 1:
      return ['', 'a', 'seq', 'é', '排口', 'x'.repeat(24), 'y'.repeat(300), '🙂'][Math.floor(r() * 8)];
    case 2:
      return Uint8Array.from({ length: [0, 1, 23, 24, 32, 64, 300][Math.floor(r() * 7)]! }, () => Math.floor(r() * 256));
    case 3:
      return [true, false, null][Math.floor(r() * 3)];
    case 4:
      return Math.floor(r() * 1e6) - 5e5;
    case 5:
      return Array.from({ length: Math.floor(r() * 5) }, () => randomValue(r, depth + 1));
    case 6: {
      const m = new Map<unknown, unknown>();
      for (let i = Math.floor(r() * 6); i > 0; i--) m.set(r() < 0.5 ? Math.floor(r() * 70000) - 35000 : ['a', 'b', 'aa', 'z', '1', 'seq', 'prev'][Math.floor(r() * 7)], randomValue(r, depth + 1));
      return m;
    }
    case 7: {
      const o: Record<string, unknown> = {};
      for (let i = Math.floor(r() * 6); i > 0; i--) o[['v', 'device', 'seq', 'meas', 'clock', 'raw', '10', 'aa', 'b'][Math.floor(r() * 9)]!] = randomValue(r, depth + 1);
      return o;
    }
    case 8:
      return new Tagged([0, 18, 24, 1000, 70000][Math.floor(r() * 5)]!, randomValue(r, depth + 1));
    default:
      return 'm';
  }
}

describe('encodeFast', () => {
  it('gives the bytes of cborg rfc8949 encoding for 20,000 random values of the supported shapes', () => {
    const r = rng(13);
    for (let i = 0; i < 20_000; i++) {
      const v = randomValue(r, 0);
      const fast = encodeFast(v);
      expect(fast, JSON.stringify(v, (_k, x) => (x instanceof Map ? [...x] : x instanceof Uint8Array ? [...x] : x))).toEqual(new Uint8Array(encode(v, rfc8949EncodeOptions)));
    }
  });

  it('reuses its writer safely: results stay their own, after a large value, a declined one and a nested encode', () => {
    const a = encodeFast({ x: 1 })!;
    const big = encodeFast({ b: new Uint8Array(2 << 20).fill(7) })!;
    expect(big.length).toBe((2 << 20) + 8);
    const b = encodeFast({ x: 2 })!;
    expect([...a]).toEqual([...encode({ x: 1 }, rfc8949EncodeOptions)]);
    expect([...b]).toEqual([...encode({ x: 2 }, rfc8949EncodeOptions)]);
    expect(encodeFast({ f: 1.5 })).toBeUndefined();
    expect([...encodeFast([1, 'a'])!]).toEqual([...encode([1, 'a'], rfc8949EncodeOptions)]);
    // a getter that encodes while the outer encode runs (never in Stele's own values, but it must not corrupt)
    const inner = { get v() {
      return encodeFast({ inner: true })!;
    } };
    expect([...encodeFast({ outer: inner })!]).toEqual([...encode({ outer: { v: encode({ inner: true }, rfc8949EncodeOptions) } }, rfc8949EncodeOptions)]);
  });

  it('declines values outside its shapes (encodeCbor then uses cborg)', () => {
    for (const v of [1.5, -0, 2 ** 53, Number.NaN, 10n, undefined, '\uD800', { a: undefined }, new Map([[true, 1]]), new Map([[[1], 1]]), new Int8Array(2), new Date(0)]) {
      expect(encodeFast(v)).toBeUndefined();
    }
    const cycle: unknown[] = [];
    cycle.push(cycle);
    expect(encodeFast(cycle)).toBeUndefined();
  });
});

/** cborg as core's decodeCbor calls it (cbor.ts). */
function cborgDecode(bytes: Uint8Array, tags: number[]): unknown {
  return decode(bytes, {
    strict: true,
    allowIndefinite: false,
    allowUndefined: false,
    rejectDuplicateMapKeys: true,
    useMaps: true,
    tags: Tagged.preserve(...tags),
  } as Parameters<typeof decode>[1]);
}

describe('decodeFast', () => {
  it('decodes what cborg decodes, to equal values, for 20,000 random values and 20,000 mutations of them', () => {
    const r = rng(21);
    const tags = [18, 24, 1000];
    let declined = 0;
    for (let i = 0; i < 20_000; i++) {
      const v = randomValue(r, 0);
      const bytes = new Uint8Array(encode(v, rfc8949EncodeOptions));
      const fast = decodeFast(bytes, tags);
      if (fast === DECLINED) declined++;
      else expect(fast).toEqual(cborgDecode(bytes, tags));
      // A mutation: one byte changed, or cut short, or a byte added.
      const m = bytes.slice();
      const at = Math.floor(r() * m.length);
      const kind = r();
      const mutated = kind < 0.6 ? (m.fill(Math.floor(r() * 256), at, at + 1), m) : kind < 0.8 ? m.subarray(0, at) : Uint8Array.from([...m, Math.floor(r() * 256)]);
      const fastM = decodeFast(mutated, tags);
      if (fastM === DECLINED) continue;
      expect(fastM).toEqual(cborgDecode(mutated, tags)); // cborg must not throw where decodeFast accepted
    }
    // Values with a tag outside the list (70000, 0) are the only ones left to cborg.
    expect(declined).toBeLessThan(20_000 * 0.5);
  });

  it('declines non-shortest integers, indefinite lengths, floats, undefined, duplicate keys, trailing bytes, other tags', () => {
    for (const hex of ['1817', '190017', '1a00000017', '1b0000000000000017', '9fff', '5f41ff', 'f93c00', 'fb3ff0000000000000', 'f7', 'a2616101616102', '0000', 'c100', '1b0020000000000000', '3b001fffffffffffff', '62c328']) {
      const bytes = Uint8Array.from(hex.match(/../g)!.map((x) => parseInt(x, 16)));
      expect(decodeFast(bytes, [18]), hex).toBe(DECLINED);
    }
  });

  it('says deterministic exactly when encodeFast gives the bytes back, for 20,000 random values and 20,000 mutations', () => {
    const r = rng(34);
    const tags = [18, 24, 1000];
    let deterministic = 0;
    const judge = (bytes: Uint8Array): void => {
      const got = decodeFastChecked(bytes, tags);
      if (got.value === DECLINED) return expect(got.deterministic).toBe(false);
      const again = encodeFast(got.value) ?? new Uint8Array(encode(got.value, rfc8949EncodeOptions));
      const same = again.length === bytes.length && again.every((x, i) => x === bytes[i]);
      // Claimed deterministic: must be; not claimed: the callers encode again and compare (either outcome fine).
      if (got.deterministic) {
        expect(same).toBe(true);
        deterministic++;
      }
    };
    for (let i = 0; i < 20_000; i++) {
      const v = randomValue(r, 0);
      const bytes = new Uint8Array(encode(v, rfc8949EncodeOptions));
      judge(bytes);
      const m = bytes.slice();
      const at = Math.floor(r() * m.length);
      m[at] = Math.floor(r() * 256);
      judge(m);
    }
    expect(deterministic).toBeGreaterThan(10_000);
  });

  it('does not call deterministic a map with its keys out of order, nor text starting with a byte order mark', () => {
    for (const hex of ['a2616201616101', 'a202010101', 'a220010101', '63efbbbf']) {
      const bytes = Uint8Array.from(hex.match(/../g)!.map((x) => parseInt(x, 16)));
      const got = decodeFastChecked(bytes, []);
      expect(got.value, hex).not.toBe(DECLINED);
      expect(got.deterministic, hex).toBe(false);
    }
    expect(decodeFastChecked(Uint8Array.from([0xa2, 0x01, 0x01, 0x20, 0x01]), []).deterministic).toBe(true);
  });

  /** A map of two byte strings (one short, one past 64 bytes), and its encoding as three kinds of input. */
  const byteStringInputs = () => {
    const value = new Map<unknown, unknown>([['a', Uint8Array.from({ length: 32 }, (_, i) => i)], ['b', Uint8Array.from({ length: 300 }, (_, i) => i & 0xff)]]);
    const bytes = new Uint8Array(encode(value, rfc8949EncodeOptions));
    const padded = new Uint8Array(bytes.length + 10);
    padded.set(bytes, 5);
    return { value, inputs: [bytes.slice(), padded.subarray(5, 5 + bytes.length), Buffer.from(bytes)] };
  };

  it('reads byte strings as plain copies of their own, from a Uint8Array, a view into a larger one, or a Node Buffer', () => {
    const { value, inputs } = byteStringInputs();
    for (const input of inputs) {
      const got = decodeFast(input, []) as Map<string, Uint8Array>;
      expect(got).toEqual(value);
      for (const v of got.values()) expect(Object.getPrototypeOf(v)).toBe(Uint8Array.prototype);
      input.fill(0);
      expect(got).toEqual(value); // not views on the input
    }
  });

  it('with views, reads byte strings as plain views into the input (a Uint8Array, a view into a larger one, or a Node Buffer)', () => {
    const { value, inputs } = byteStringInputs();
    for (const input of inputs) {
      const { value: got, deterministic } = decodeFastChecked(input, [], true) as { value: Map<string, Uint8Array>; deterministic: boolean };
      expect(deterministic).toBe(true);
      expect(got).toEqual(value);
      for (const v of got.values()) {
        expect(Object.getPrototypeOf(v)).toBe(Uint8Array.prototype);
        expect(v.buffer).toBe(input.buffer);
      }
      input.fill(0);
      expect(got.get('a')!.every((x) => x === 0)).toBe(true); // views: the input's own memory
    }
  });

  it('reads short ASCII text through its cache as exactly the bytes sent, also when two texts share a hash', async () => {
    vi.resetModules();
    const fresh = (await import('./cbor-fast.ts')) as typeof import('./cbor-fast.ts');
    // Two ASCII texts with the same 32-bit FNV-1a hash (the cache's key, seeded with the length): the second one
    // read must not come back as the first.
    const fnv = (t: string) => {
      let h = 0x811c9dc5 ^ t.length;
      for (let i = 0; i < t.length; i++) h = Math.imul(h ^ t.charCodeAt(i), 0x01000193);
      return h;
    };
    const seen = new Map<number, string>();
    let pair: [string, string] | undefined;
    for (let i = 0; pair === undefined; i++) {
      const t = `k${i.toString(36)}`;
      const other = seen.get(fnv(t));
      if (other !== undefined) pair = [other, t];
      else seen.set(fnv(t), t);
    }
    const text = (t: string) => fresh.decodeFast(new Uint8Array(encode(t, rfc8949EncodeOptions)), []);
    expect(text(pair[0])).toBe(pair[0]);
    expect(text(pair[1])).toBe(pair[1]);
    expect(text(pair[0])).toBe(pair[0]);
    // Beyond the cache's size, repeated, and around it: every text is itself (cborg agrees), ASCII or not.
    const r = rng(7);
    const texts = Array.from({ length: 6000 }, (_, i) => (i % 5 === 4 ? `排口${i}` : String.fromCharCode(...Array.from({ length: Math.floor(r() * 40) }, () => 32 + Math.floor(r() * 95)))));
    for (let round = 0; round < 2; round++) for (const t of texts) expect(text(t)).toBe(t);
  });
});
