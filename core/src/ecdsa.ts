import { p256 } from '@noble/curves/nist.js';
import { toHex } from './bytes.ts';
import { FormatError } from './errors.ts';
import { assertP256PublicKey } from './keys.ts';
import { ES256_SIGNATURE_LENGTH } from './signer.ts';

/** Order n of the P-256 group (FIPS 186-5 / SEC 2 §2.4.2), as 32 big-endian bytes. */
const P256_N_BYTES: Uint8Array = (() => {
  const out = new Uint8Array(32);
  let n = p256.Point.Fn.ORDER;
  for (let i = 31; i >= 0; i--) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return out;
})();

/** 1 <= x < n for the 32 big-endian bytes at `offset` (a bytewise comparison: no BigInt per signature). */
function inScalarRange(sig: Uint8Array, offset: number): boolean {
  let zero = true;
  for (let i = 0; i < 32; i++) {
    const b = sig[offset + i]!;
    if (b !== 0) zero = false;
    const nb = P256_N_BYTES[i]!;
    if (b < nb) {
      // Smaller than n from here on; it is in range unless every byte is zero.
      if (zero) for (let j = i + 1; j < 32; j++) if (sig[offset + j] !== 0) return true;
      return !zero;
    }
    if (b > nb) return false;
  }
  return false; // equal to n
}

function checkArgs(publicKey: unknown, message: unknown, signature: unknown): void {
  if (!(publicKey instanceof Uint8Array)) throw new TypeError('publicKey must be a Uint8Array');
  if (!(message instanceof Uint8Array)) throw new TypeError('message must be a Uint8Array');
  if (!(signature instanceof Uint8Array)) throw new TypeError('signature must be a Uint8Array');
}

/**
 * True when `signature` is 64 bytes with 1 <= r < n and 1 <= s < n (SEC 1 v2 §4.1.4 step 1). Checked before
 * any backend sees the signature, so that a backend bug with r = 0 or s = 0 (CVE-2022-21449) cannot matter.
 * High S is allowed: FORMAT.md requires verifiers to accept it.
 */
function isWellFormedSignature(signature: Uint8Array): boolean {
  if (signature.length !== ES256_SIGNATURE_LENGTH) return false;
  return inScalarRange(signature, 0) && inScalarRange(signature, 32);
}

/**
 * ES256 verification with @noble/curves only (no WebCrypto). Same contract as {@link verifyEs256}; exported so
 * tests can run both backends over the same vectors. noble v2 `verify` hashes the message with SHA-256
 * (`prehash: true` is its default, set explicitly here) and would reject high-S unless `lowS: false`.
 */
export function verifyEs256Noble(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  checkArgs(publicKey, message, signature);
  assertP256PublicKey(publicKey);
  if (!isWellFormedSignature(signature)) return false;
  try {
    return p256.verify(signature, message, publicKey, { prehash: true, lowS: false, format: 'compact' });
  } catch {
    return false;
  }
}

/**
 * Imported WebCrypto keys by hex of the SEC1 point; bounded, least recently used evicted first. `key` is set once
 * the import is done, so that later checks call `verify` at once (see verifyEs256WebCrypto).
 */
const KEY_CACHE_MAX = 64;
const keyCache = new Map<string, { pending: Promise<CryptoKey>; key?: CryptoKey }>();

function importWebCryptoKey(subtle: SubtleCrypto, publicKey: Uint8Array): { pending: Promise<CryptoKey>; key?: CryptoKey } {
  const hex = toHex(publicKey);
  const hit = keyCache.get(hex);
  if (hit !== undefined) {
    keyCache.delete(hex);
    keyCache.set(hex, hit);
    return hit;
  }
  // Validate with noble first: a bad key is a KEY_FORMAT_ERROR whatever the WebCrypto implementation says.
  assertP256PublicKey(publicKey);
  const pending = subtle.importKey('raw', new Uint8Array(publicKey), { name: 'ECDSA', namedCurve: 'P-256' }, false, [
    'verify',
  ]);
  const entry: { pending: Promise<CryptoKey>; key?: CryptoKey } = { pending };
  keyCache.set(hex, entry);
  pending.then(
    (key) => {
      entry.key = key;
    },
    () => keyCache.delete(hex),
  );
  while (keyCache.size > KEY_CACHE_MAX) {
    const oldest = keyCache.keys().next().value;
    if (oldest === undefined) break;
    keyCache.delete(oldest);
  }
  return entry;
}

/**
 * Imports `publicKey` into WebCrypto ahead of a run of checks with it (when WebCrypto is there), so that each
 * check hands its work to WebCrypto as soon as it is called instead of after a turn of the event loop: the
 * caller can then do other work while WebCrypto verifies. Never throws; a bad key is reported by the checks.
 */
export async function prepareEs256Key(publicKey: Uint8Array): Promise<void> {
  const subtle = globalThis.crypto?.subtle;
  if (subtle === undefined || !(publicKey instanceof Uint8Array)) return;
  try {
    await importWebCryptoKey(subtle, publicKey).pending;
  } catch {
    // reported when the key is used
  }
}

/**
 * ES256 verification through WebCrypto (`crypto.subtle`); throws TypeError when WebCrypto is absent.
 * Same contract as {@link verifyEs256}. Exported for tests.
 */
export async function verifyEs256WebCrypto(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean> {
  checkArgs(publicKey, message, signature);
  const subtle = globalThis.crypto?.subtle;
  if (subtle === undefined) throw new TypeError('WebCrypto (crypto.subtle) is not available');
  let key: CryptoKey;
  try {
    const entry = importWebCryptoKey(subtle, publicKey);
    // An imported key is used at once (no await before `verify`, so WebCrypto starts while the caller goes on).
    key = entry.key ?? (await entry.pending);
  } catch (cause) {
    if (cause instanceof FormatError) throw cause;
    throw new FormatError('KEY_FORMAT_ERROR', 'WebCrypto refused the public key', { cause });
  }
  if (!isWellFormedSignature(signature)) return false;
  try {
    // WebCrypto ECDSA takes the IEEE P1363 form (r || s) that COSE uses, hashes with SHA-256, has no low-S rule.
    return await subtle.verify(
      { name: 'ECDSA', hash: 'SHA-256' },
      key,
      signature as Uint8Array<ArrayBuffer>,
      message as Uint8Array<ArrayBuffer>,
    );
  } catch {
    return false;
  }
}

/**
 * ES256 (RFC 9053 §2.1): ECDSA P-256 over SHA-256(message), signature `r || s` (64 bytes, big-endian).
 * Uses WebCrypto when `globalThis.crypto.subtle` exists, else @noble/curves. Returns false for any bad
 * signature (wrong length, r or s out of [1, n-1], wrong value); accepts high-S signatures (FORMAT.md).
 * Throws FormatError `KEY_FORMAT_ERROR` when the public key is not a valid SEC1 uncompressed P-256 point,
 * TypeError when an argument is not a Uint8Array.
 */
export async function verifyEs256(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean> {
  if (globalThis.crypto?.subtle !== undefined) return verifyEs256WebCrypto(publicKey, message, signature);
  return verifyEs256Noble(publicKey, message, signature);
}
