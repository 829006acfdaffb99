/**
 * The structured verdict (VERIFIER.md §4.3-4.4): what the CLI prints, what the web page renders, and what
 * test T9 compares between the two. Plain JSON data only (strings, numbers, arrays), so that
 * `JSON.stringify(verdict)` is the CLI's `--json` output.
 */
import type { VerifyCode } from './codes.ts';

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
  | 'flags';

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
    | 'lifecycle-as-exported';
  sentence: Text;
}

/** One device key of the timeline (FORMAT.md §13.5) and the readings it signed (check 2). */
export interface KeySummary {
  /** base64url key id. */
  kid: string;
  backend: 'software' | 'pkcs11' | 'tpm' | 'secure-element';
  /** How it came in: enrolment statement, rotation statement, or the bundle's record (no lifecycle data). */
  via: 'enrolment' | 'rotation' | 'record';
  /** First seq it may sign. */
  from: number;
  /** Last seq it may sign (rotated out). */
  until?: number;
  /** Revoked: invalid for seq > revokedAfter. */
  revokedAfter?: number;
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
}

export interface Verdict {
  state: VerdictState;
  headline: Text;
  checks: Check[];
  notes: Note[];
  summary: Summary;
}
