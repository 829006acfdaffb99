/**
 * Messages between the page and its verification worker, and the page-side facts it draws. Plain JSON data
 * (structured-clone safe). Everything that came from the bundle is untrusted text: the page only ever puts it into
 * the DOM as text nodes or attribute values, never as markup.
 */
import type { SignatureJob, Verdict } from '@stele/core/verify';

export interface VerifyRequest {
  type: 'verify';
  bytes: ArrayBuffer;
  /** Chain endpoints typed by the officer (or from the policy); empty: offline, the anchor stays unchecked. */
  rpcUrls: string[];
  /** The trust policy file's bytes, when one is loaded (see policy.ts). */
  policy?: ArrayBuffer;
  /** The authority fingerprint the officer pinned (64 hex), with `policy`. */
  authority?: string;
  /** Ask no chain endpoint at all, not even those the policy suggests. */
  offline?: boolean;
  timeoutMs?: number;
  /** A port to a helper worker (HelperRequest) that checks part of the signatures on the second CPU. */
  helper?: MessagePort;
}

/**
 * Makes a worker a signature helper of the verifying worker: it answers each SignatureBatch arriving on `port`
 * with a SignatureAnswer (core's verifyEs256 over each job), so that two threads check signatures at once.
 */
export interface HelperRequest {
  type: 'helper';
  port: MessagePort;
}

/** A batch of ES256 checks sent to the helper: key, Sig_structure and signature of each statement. */
export interface SignatureBatch {
  id: number;
  jobs: SignatureJob[];
}

export interface SignatureAnswer {
  id: number;
  ok: boolean[];
}

export type WorkerMessage =
  | { type: 'progress'; phase: 'read' | 'signatures' | 'anchor' | 'chart'; done: number; total: number }
  | { type: 'result'; verdict: Verdict; info: BundleInfo | undefined; timings: Timings }
  | { type: 'error'; message: string };

export interface Timings {
  parseAndVerifyMs: number;
  chartMs: number;
  totalMs: number;
  signatureChecks: number;
  /** Milliseconds per step of core's verification (VerifyOptions.timings). */
  steps?: Record<string, number>;
}

/** One bucket of the chart and the table: the readings of one measurement code in [startMs, endMs). */
export interface Bucket {
  startMs: number;
  endMs: number;
  count: number;
  mean: number;
  min: number;
  max: number;
  /** Non-N data flags in the bucket, e.g. {M: 2}. */
  flags: Record<string, number>;
  /** Readings of the bucket named by a failed check. */
  failed: number;
}

export interface Marker {
  seq: number;
  timeMs: number;
  value: number;
  /** Data flag ('C', 'M', 'D', ...) or 'FAIL' for a reading named by a failure. */
  kind: string;
}

export interface Series {
  code: string;
  unit: string;
  kind: string;
  bucketMs: number;
  buckets: Bucket[];
  markers: Marker[];
  /** Markers left out (over the cap). */
  markersOmitted: number;
}

export interface Gap {
  firstSeq: number;
  lastSeq: number;
  /** Times of the readings either side (device time), when known. */
  fromMs?: number;
  toMs?: number;
}

export interface BundleInfo {
  createdAt: string;
  device: { deviceId: string; site?: string; kidHex: string; keyBackend: string; enrolledAt: string };
  ingest: { issuer: string; kidHex: string };
  window: { firstSeq: number; lastSeq: number };
  series: Series[];
  gaps: Gap[];
  /** A numeric limit carried by the bundle's alert, when its shape has one (FORMAT.md defines none yet). */
  limit?: number;
  timeRange?: { fromMs: number; toMs: number };
}
