import { equalBytes, assertP256PublicKey, P256_PUBLIC_KEY_LENGTH } from '@stele/core';
import { P256_EC_PARAMS } from './constants.ts';
import { TokenError } from './errors.ts';

/**
 * The SEC1 point from a CKA_EC_POINT value. PKCS#11 v2.40 §2.3.3 says "DER-encoding of ANSI X9.62 ECPoint value
 * Q", i.e. an OCTET STRING `04 41 || 04 X Y`; some older tokens give the bare 65-byte point. Both are taken; the
 * point is checked to be on P-256.
 */
export function pointFromEcPoint(value: Uint8Array): Uint8Array {
  let point: Uint8Array;
  if (value.length === P256_PUBLIC_KEY_LENGTH + 2 && value[0] === 0x04 && value[1] === P256_PUBLIC_KEY_LENGTH) {
    point = value.subarray(2);
  } else if (value.length === P256_PUBLIC_KEY_LENGTH && value[0] === 0x04) {
    point = value;
  } else {
    throw new TokenError('KEY_TOKEN_ERROR', 'CKA_EC_POINT is not an uncompressed P-256 point', { where: { length: value.length } });
  }
  const copy = new Uint8Array(point);
  try {
    assertP256PublicKey(copy);
  } catch (cause) {
    throw new TokenError('KEY_TOKEN_ERROR', 'CKA_EC_POINT is not on P-256', { cause });
  }
  return copy;
}

/** True when CKA_EC_PARAMS names P-256 (the DER OID; tokens do not use explicit parameters for it). */
export function isP256Params(value: Uint8Array): boolean {
  return equalBytes(value, P256_EC_PARAMS);
}
