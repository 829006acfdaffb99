/**
 * Verification failure codes (docs/FORMAT.md §10, VERIFIER.md §4.4). Every failed check carries one or more
 * failures, each with exactly one of these codes. Codes are stable API: tests, the CLI JSON and the web page
 * compare them; the sentences that go with them (messages.ts) may change.
 */
export type VerifyCode =
  /** The bundle is not a readable format v1 bundle: bad JSON or shape, or a statement, receipt or reading that does not decode. */
  | 'BUNDLE_FORMAT_ERROR'
  /** The bundle is beyond the verifier's limits (file size, entry, lifecycle or batch count; FORMAT.md §7): not read. */
  | 'BUNDLE_LIMIT_ERROR'
  /** A key in the bundle is not the enrolled one: a statement signed under another kid, a statement naming another device, or a key record whose kid is not SHA-256 of its public key. */
  | 'UNKNOWN_KEY_ERROR'
  /** A statement is signed under a device key that ingest had revoked before that seq (FORMAT.md §13.5). */
  | 'KEY_REVOKED_ERROR'
  /** A statement is signed under a device key that a rotation had already retired at that seq (FORMAT.md §13.5). */
  | 'KEY_ROTATED_ERROR'
  /** An unsigned field of the bundle's device record (e.g. `keyBackend`) differs from the ingest-signed enrolment statement. */
  | 'DEVICE_RECORD_MISMATCH_ERROR'
  /** A statement's ES256 signature does not verify with the enrolled device key. */
  | 'SIGNATURE_ERROR'
  /** A reading body's SHA-256 is not the digest the device signed: the body was changed after signing. */
  | 'DIGEST_MISMATCH_ERROR'
  /** A reading's device, seq or prev differs from the values repeated in its signed statement header. */
  | 'HEADER_MISMATCH_ERROR'
  /** A seq in the bundle's window has no entry. */
  | 'SEQUENCE_GAP_ERROR'
  /** A statement's prev is not the digest of the statement (reading) before it. */
  | 'CHAIN_LINK_ERROR'
  /** Two different signed readings carry the same seq. */
  | 'FORK_ERROR'
  /** An entry's inclusion proof does not lead from its statement to the batch root recorded in the bundle. */
  | 'INCLUSION_PROOF_ERROR'
  /** A receipt's signature does not verify with the ingest key over the batch root, or it names another key or issuer. */
  | 'RECEIPT_SIGNATURE_ERROR'
  /** The batch root, size or id recorded in the bundle differs from what ingest signed or from what the chain holds. */
  | 'ANCHOR_MISMATCH_ERROR'
  /** The chain has no such anchor transaction or no Anchored log for the batch. */
  | 'ANCHOR_NOT_FOUND_ERROR'
  /** A reading claims a device time later than its batch's anchor block time (plus tolerance). */
  | 'TIME_BOUND_ERROR'
  /** The alert value recomputed from verified readings differs from the alert carried in the bundle. */
  | 'ALERT_MISMATCH_ERROR'
  /** The bundle's seq window does not start before the alert's time window (nor at seq 1): it does not prove the window complete. */
  | 'ALERT_WINDOW_ERROR'
  /** The bundle's ingest key (with its issuer) is not an ingest key of the officer's trust policy (FORMAT.md §14). */
  | 'UNTRUSTED_INGEST_KEY_ERROR'
  /** A batch is anchored on a chain or contract (or in a block) that the trust policy does not list. */
  | 'UNTRUSTED_ANCHOR_ERROR'
  /** A batch was anchored (block time from the officer's endpoints) outside the ingest key's window, or after it was compromised. */
  | 'INGEST_KEY_WINDOW_ERROR';

/**
 * Codes of a check left `unchecked` for a reason of trust (FORMAT.md §14.4): they lower the verdict to `partial`
 * without being failures, and appear as `check.code`.
 */
export type OpenCode =
  /** No trust policy was given: the ingest key, issuer, chain and contract were taken on the bundle's word. */
  | 'TRUST_POLICY_MISSING'
  /** The trust policy is past its `expiresAt` on the verifier's clock. */
  | 'TRUST_POLICY_EXPIRED'
  /** The ingest key's window could not be judged: no anchor block time confirmed on chain (offline). */
  | 'KEY_WINDOW_UNCHECKED';

/** Every open code. */
export const OPEN_CODES: readonly OpenCode[] = ['TRUST_POLICY_MISSING', 'TRUST_POLICY_EXPIRED', 'KEY_WINDOW_UNCHECKED'];

/** Every code, in check order (for dictionaries and completeness tests). */
export const VERIFY_CODES: readonly VerifyCode[] = [
  'BUNDLE_FORMAT_ERROR',
  'BUNDLE_LIMIT_ERROR',
  'UNKNOWN_KEY_ERROR',
  'KEY_REVOKED_ERROR',
  'KEY_ROTATED_ERROR',
  'DEVICE_RECORD_MISMATCH_ERROR',
  'SIGNATURE_ERROR',
  'DIGEST_MISMATCH_ERROR',
  'HEADER_MISMATCH_ERROR',
  'SEQUENCE_GAP_ERROR',
  'CHAIN_LINK_ERROR',
  'FORK_ERROR',
  'INCLUSION_PROOF_ERROR',
  'RECEIPT_SIGNATURE_ERROR',
  'ANCHOR_MISMATCH_ERROR',
  'ANCHOR_NOT_FOUND_ERROR',
  'TIME_BOUND_ERROR',
  'ALERT_MISMATCH_ERROR',
  'ALERT_WINDOW_ERROR',
  'UNTRUSTED_INGEST_KEY_ERROR',
  'UNTRUSTED_ANCHOR_ERROR',
  'INGEST_KEY_WINDOW_ERROR',
];
