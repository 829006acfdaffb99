/** Where a signing key lives. Only `software` keys are ever exported from their store. */
export type KeyBackend = 'software' | 'pkcs11' | 'tpm' | 'secure-element';

/**
 * One interface for every key store (software key, PKCS#11 token, TPM, secure element).
 * `sign` computes ES256 (RFC 9053 §2.1) over SHA-256(message): the store hashes, the caller passes the
 * message (for COSE, the Sig_structure bytes). The result is the 64-byte `r || s`, big-endian; hardware stores
 * may return high-S signatures, which every Stele verifier accepts (FORMAT.md conventions).
 */
export interface Signer {
  readonly algorithm: 'ES256';
  /** keyIdOf(publicKey), 32 bytes. */
  readonly keyId: Uint8Array;
  /** SEC1 uncompressed point, 65 bytes. */
  readonly publicKey: Uint8Array;
  readonly backend: KeyBackend;
  sign(message: Uint8Array): Promise<Uint8Array>;
}

/** Length of an ES256 signature (`r || s`, RFC 9053 §2.1). */
export const ES256_SIGNATURE_LENGTH = 64;
