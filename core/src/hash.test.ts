import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { describe, expect, it } from 'vitest';
import { toHex } from './bytes.ts';
import { sha256 } from './hash.ts';

describe('sha256', () => {
  it('gives the FIPS 180-4 examples', () => {
    expect(toHex(sha256(new Uint8Array(0)))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(toHex(sha256(new TextEncoder().encode('abc')))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(toHex(sha256(new TextEncoder().encode('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')))).toBe(
      '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1',
    );
  });

  it('agrees with @noble/hashes for every length from 0 to 600 bytes and a few large inputs, views included', () => {
    let seed = 7;
    const byte = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
    for (let n = 0; n <= 600; n++) {
      const data = Uint8Array.from({ length: n }, byte);
      expect(toHex(sha256(data)), `length ${n}`).toBe(toHex(nobleSha256(data)));
    }
    for (const n of [4095, 65_536, 1_000_003]) {
      const data = Uint8Array.from({ length: n }, byte);
      expect(toHex(sha256(data))).toBe(toHex(nobleSha256(data)));
      const view = data.subarray(3, n - 5);
      expect(toHex(sha256(view))).toBe(toHex(nobleSha256(view)));
    }
  });

  it('returns a new array each call', () => {
    const a = sha256(new Uint8Array([1]));
    const b = sha256(new Uint8Array([1]));
    expect(a).not.toBe(b);
    expect(a).toEqual(b);
  });
});
