/**
 * The structured verdict (VERIFIER.md §4.3-4.4): what the CLI prints, what the web page renders, and what
 * test T9 compares between the two. Plain JSON data only (strings, numbers, arrays), so that
 * `JSON.stringify(verdict)` is the CLI's `--json` output.
 */
import type { OpenCode, VerifyCode } from './codes.ts';

/** A sentence in both languages of the verifier. */
export interface Text {
  zh: string;
  en: string;
}

export type VerdictState = 'verified' | 'failed' | 'partial';

/**
 * - `pass`: checked and consistent;
 * - `fail`: checked and at least one failure;
 * - `unchecked`: could not be checked here (offline, RPC unreachable, nodes disagree, not supported yet);
 * - `not-applicable`: nothing to check (e.g. no alert in the bundle, no reading bodies).
 */
export type CheckStatus = 'pass' | 'fail' | 'unchecked' | 'not-applicable';

/** Check ids, in the order of VERIFIER.md §4.4. */
export type CheckId =
  | 'format'
  | 'enrolment'
  | 'signatures'
  | 'completeness'
  | 'inclusion'
  | 'receipt'
  | 'anchor'
  | 'time'
  | 'alert'
  | 'flags'
  | 'trust';

export interface Failure {
  code: VerifyCode;
  sentence: Text;
  seq?: number;
  batchId?: number;
  /** What the evidence should have had (hex digests without 0x, or a short value). */
  expected?: string;
  /** What it had. */
  actual?: string;
  /** JSONPath into the bundle, for format errors. */
  path?: string;
  /** In an evidence set (FORMAT.md §7.2): the device whose bundle the failure is in. */
  device?: string;
}

export interface Check {
  id: CheckId;
  /** 1-based position in VERIFIER.md §4.4. */
  number: number;
  status: CheckStatus;
  title: Text;
  /** The one plain sentence shown next to the status. */
  sentence: Text;
  failures: Failure[];
  /** Why an `unchecked` check is open, when it is a matter of trust (FORMAT.md §14.4). */
  code?: OpenCode;
}

/** Informational remarks that are not failures (software key, clock not synced, hash-only, flags...). */
export interface Note {
  id:
    | 'software-key'
    | 'revocation-unchecked'
    | 'hash-only'
    | 'clock-unsynced'
    | 'data-flags'
    | 'rpc-unreachable'
    | 'not-anchored'
    | 'duplicate-entry'
    | 'key-rotated'
    | 'key-revoked'
    | 'agent-reinstalled'
    | 'lifecycle-as-exported'
    | 'policy-entry-skipped'
    | 'key-not-attested';
  sentence: Text;
}

/** How a key was attested (FORMAT.md §14.5). */
export interface KeyAttestation {
  kind: 'tpm2-certify';
  /** JSON path of the policy's `attestationRoots` entry the EK certificate chains to. */
  root: string;
  rootName: string;
  /** The root is a test root (accepted because the verifier was told it runs a test). */
  test: boolean;
}

/** One device key of the timeline (FORMAT.md §13.5) and the readings it signed (check 2). */
export interface KeySummary {
  /** base64url key id. */
  kid: string;
  backend: 'software' | 'pkcs11' | 'tpm' | 'secure-element';
  /** True only with attestation proof that chains to a policy root (FORMAT.md §14.5); then `attestation` says which. */
  attested: boolean;
  attestation?: KeyAttestation;
  /** How it came in: enrolment statement, rotation statement, or the bundle's record (no lifecycle data). */
  via: 'enrolment' | 'rotation' | 'record';
  /** First seq it may sign. */
  from: number;
  /** Last seq it may sign (rotated out). */
  until?: number;
  /** Revoked: invalid for seq > revokedAfter. */
  revokedAfter?: number;
  /** In an evidence set (FORMAT.md §7.2): the device this key belongs to. */
  device?: string;
  /** Runs of consecutive seqs in the bundle signed under this key, `[first, last]`. */
  signed: [number, number][];
}

/** Per batch: what the bundle records and which chain endpoints confirmed it. */
export interface AnchorSummary {
  batchId: number;
  size: number;
  /** 0x-prefixed lowercase hex. */
  root: string;
  chainId?: number;
  contract?: string;
  txHash?: string;
  blockNumber?: number;
  /** Seconds since the epoch; confirmed on chain when `confirmedBy` is not empty. */
  blockTime?: number;
  /** RPC URLs whose answers matched (`'(reader)'` when the reader has no URL). */
  confirmedBy: string[];
}

export interface Summary {
  /** Number of entries in the bundle. */
  readings: number;
  /** Number of entries that carry the reading body. */
  bodies: number;
  firstSeq: number;
  lastSeq: number;
  /** Number of batches listed. */
  batches: number;
  /** Device ids: the enrolled one first, then any other named by statements. */
  devices: string[];
  /** Key ids (base64url) that signed statements. */
  keyIds: string[];
  /** The device's key timeline and which seqs each key signed (absent for unreadable bundles). */
  keys?: KeySummary[];
  ingestKeyId: string;
  anchors: AnchorSummary[];
  /** SHA-256 (hex) of the bundle file, when verified from its bytes (`verifyBundleBytes`). */
  bundleSha256?: string;
  /** Which policy the trust came from, and what the bundle itself named (absent for unreadable bundles). */
  trust?: TrustSummary;
  /** The bundle's alert (FORMAT.md §15.7) as stated and as recomputed in check 9; absent without a structured alert. */
  alert?: AlertSummary;
  /**
   * An evidence set (FORMAT.md §7.2): each device's bundle and its own verdict (check 9 is the set's). Then
   * `firstSeq`/`lastSeq` are the first bundle's and the counts are over all bundles.
   */
  members?: MemberSummary[];
}

/** One bundle of an evidence set. */
export interface MemberSummary {
  deviceId: string;
  firstSeq: number;
  lastSeq: number;
  readings: number;
  bodies: number;
  /** The bundle's own verdict (its check 9 is not applicable: the set holds the alert). */
  state: VerdictState;
}

/** Check 9's facts for the page and the report: the alert as the bundle states it, and the recomputed values. */
export interface AlertSummary {
  id: string;
  kind: string;
  subject: string;
  /** `rule.id vVERSION`. */
  rule: string;
  standard: string;
  window: { from: string; to: string; basis: 'itime' | 'time' };
  /** The alert's values as the bundle states them. */
  values: Record<string, unknown>;
  /** The values recomputed from the verified readings (absent when the readings do not produce the alert). */
  recomputed?: Record<string, unknown>;
  /** How many readings the alert names. */
  readings: number;
}

/** Check 11's facts: the policy used (null: none) and, in full, what the bundle names as its roots of trust. */
export interface TrustSummary {
  policy: {
    /** SHA-256 (hex) of the signed policy file. */
    sha256: string;
    version: number;
    issuedAt: string;
    expiresAt: string;
    authority: string;
    /** Hex SHA-256 of the authority's public key, as pinned by the officer. */
    authorityFingerprint: string;
    /** The policy entry of the ingest key, e.g. `$.ingestKeys[0] (active)`. */
    ingestKey?: string;
    /** Policy entries of the anchor targets used. */
    anchorTargets: string[];
  } | null;
  /** What the bundle names: with no policy, all of it was taken on the bundle's word. */
  fromBundle: { ingestKeyFingerprint: string; issuer: string; chainIds: number[]; contracts: string[] };
}

export interface Verdict {
  state: VerdictState;
  headline: Text;
  checks: Check[];
  notes: Note[];
  summary: Summary;
}
