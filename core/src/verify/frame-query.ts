/**
 * "Which reading came from this frame?": an officer holding a record from the authority's platform (the raw HJ 212
 * frame, byte for byte) finds its reading in a bundle by the SHA-256 of those bytes (every reading lists the digests
 * of the frames it came from, FORMAT.md §2). A match only counts as evidence when that reading passed its own checks.
 */
import type { EvidenceBundle } from '../bundle.ts';
import { equalBytes, toHex } from '../bytes.ts';
import { decodeReading } from '../reading.ts';
import type { Verdict } from './verdict.ts';

export interface FrameMatch {
  seq: number;
  /** True when no failure of the verdict names this seq and the verdict as a whole did not fail. */
  verified: boolean;
}

export interface FrameQueryResult {
  /** SHA-256 of the frame, lowercase hex. */
  sha256: string;
  matches: FrameMatch[];
}

/** Finds the bundle's readings whose `raw` lists `frameDigest`; readings without a body cannot match (hash-only). */
export function findFrameInBundle(bundle: EvidenceBundle, frameDigest: Uint8Array, verdict: Verdict): FrameQueryResult {
  const failedSeqs = new Set(verdict.checks.flatMap((c) => c.failures.flatMap((f) => (f.seq === undefined ? [] : [f.seq]))));
  const matches: FrameMatch[] = [];
  for (const entry of bundle.entries) {
    if (entry.reading === undefined) continue;
    let raw: Uint8Array[];
    try {
      raw = decodeReading(entry.reading).raw;
    } catch {
      continue; // a body that does not decode is reported by the verdict itself
    }
    if (raw.some((d) => equalBytes(d, frameDigest))) {
      matches.push({ seq: entry.seq, verified: verdict.state !== 'failed' && !failedSeqs.has(entry.seq) });
    }
  }
  return { sha256: toHex(frameDigest), matches };
}
