import { p256 } from '@noble/curves/nist.js';
import { FormatError } from './errors.ts';
import { sha256 } from './hash.ts';

/** SEC1 uncompressed P-256 point: `0x04 || X(32) || Y(32)` (SEC 1 v2 §2.3.3; FORMAT.md §1). */
export const P256_PUBLIC_KEY_LENGTH = 65;
/** Key ids are SHA-256 digests (FORMAT.md §1). */
export const KEY_ID_LENGTH = 32;

/**
 * Checks that `publicKey` is a P-256 point in SEC1 uncompressed form, on the curve and not the identity.
 * Untrusted keys (from a bundle, an enrolment record) fail with FormatError `KEY_FORMAT_ERROR`;
 * a non-Uint8Array argument is misuse (TypeError).
 */
export function assertP256PublicKey(publicKey: Uint8Array): void {
  if (!(publicKey instanceof Uint8Array)) throw new TypeError('publicKey must be a Uint8Array');
  if (publicKey.length !== P256_PUBLIC_KEY_LENGTH || publicKey[0] !== 0x04) {
    throw new FormatError('KEY_FORMAT_ERROR', 'public key is not a 65-byte SEC1 uncompressed point', {
      where: { length: publicKey.length, prefix: publicKey[0] },
    });
  }
  try {
    // fromBytes checks coordinates < p and the curve equation; the identity has no uncompressed encoding.
    const point = p256.Point.fromBytes(publicKey);
    if (point.is0()) throw new Error('identity');
  } catch (cause) {
    throw new FormatError('KEY_FORMAT_ERROR', 'public key is not a point on P-256', { cause });
  }
}

/** The key id of FORMAT.md §1: SHA-256 of the 65-byte SEC1 uncompressed point. Validates the key first. */
export function keyIdOf(publicKey: Uint8Array): Uint8Array {
  assertP256PublicKey(publicKey);
  return sha256(publicKey);
}
