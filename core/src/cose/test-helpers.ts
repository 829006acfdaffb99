import { p256 } from '@noble/curves/nist.js';
import { keyIdOf } from '../keys.ts';
import { GENESIS_PREV, type Reading } from '../reading.ts';
import type { Signer } from '../signer.ts';

/** Test fixtures for core (not exported from the package index). */

/**
 * A throwaway in-memory ES256 signer for tests only (the device package owns real key stores).
 * noble v2 `sign` with `prehash: true` hashes the message with SHA-256 and returns the 64-byte compact `r || s`;
 * it normalises to low S by default, so tests that need high S flip it with {@link toHighS}.
 */
export function createTestSigner(secretKey: Uint8Array = p256.utils.randomSecretKey()): Signer & { secretKey: Uint8Array } {
  const publicKey = p256.getPublicKey(secretKey, false);
  return {
    algorithm: 'ES256',
    backend: 'software',
    publicKey,
    keyId: keyIdOf(publicKey),
    secretKey,
    sign: async (message: Uint8Array) => p256.sign(message, secretKey, { prehash: true, format: 'compact' }),
  };
}

/** Returns the same signature with s replaced by n - s (still valid: ECDSA signatures are malleable). */
export function toHighS(signature: Uint8Array): Uint8Array {
  const n = p256.Point.Fn.ORDER;
  let s = 0n;
  for (const b of signature.subarray(32)) s = (s << 8n) | BigInt(b);
  let t = n - s;
  const out = signature.slice();
  for (let i = 63; i >= 32; i--) {
    out[i] = Number(t & 0xffn);
    t >>= 8n;
  }
  return out;
}

/** 32 bytes of `b`: a stand-in digest. */
export const digestOf = (b: number): Uint8Array => new Uint8Array(32).fill(b);

/** A valid reading (FORMAT.md §2) with every kind of field; `overrides` replace top-level fields. */
export function sampleReading(overrides: Partial<Reading> = {}): Reading {
  return {
    v: 1,
    device: 'gw-0001',
    sensor: '88888880000001',
    seq: 1,
    prev: GENESIS_PREV,
    time: 1_763_900_000_000,
    clock: { synced: true, source: 'ntp' },
    meas: [
      { code: 'a21026', kind: 'Rtd', value: '12.30', unit: 'mg/m3', flag: 'N' },
      { code: 'a21002', kind: 'Avg', value: '0.0' },
    ],
    raw: [digestOf(0xaa)],
    ...overrides,
  };
}
