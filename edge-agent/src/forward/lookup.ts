/**
 * Gateway-side lookup of a reading by the frame it came from: an officer (or installer) holding a frame from the
 * authority's platform finds the reading, its statement and its place in the chain by the SHA-256 of the bytes.
 *
 * The outbox is keyed by seq only, so this scans the retained entries (in seq order, stopping at `limit`
 * matches); it is an operator tool, not a hot path. Ingest has an index for the same question
 * (`IngestService.findByFrameDigest`, `GET /frames/<sha256>`), which also returns the proof.
 */
import { equalBytes, sha256, decodeReading, type Reading } from '@stele/core';
import type { Outbox, OutboxEntry } from '../outbox.ts';

export interface FrameMatch {
  entry: OutboxEntry;
  reading: Reading;
}

const PAGE = 1000;

/**
 * Outbox entries whose reading names the frame (`raw` field): `frame` is the frame bytes, or `digest` its
 * SHA-256 (32 bytes). Scans at most the retained entries; returns matches in seq order.
 */
export async function findReadingsByFrame(outbox: Outbox, query: { frame: Uint8Array } | { digest: Uint8Array }, limit = 10): Promise<FrameMatch[]> {
  const digest = 'frame' in query ? sha256(query.frame) : query.digest;
  if (!(digest instanceof Uint8Array) || digest.length !== 32) throw new TypeError('digest must be 32 bytes');
  const out: FrameMatch[] = [];
  let from = 0;
  for (;;) {
    const page = await outbox.pendingFrom(from, PAGE);
    for (const entry of page) {
      const reading = decodeReading(entry.reading);
      if (reading.raw.some((d) => equalBytes(d, digest))) {
        out.push({ entry, reading });
        if (out.length >= limit) return out;
      }
    }
    if (page.length < PAGE) return out;
    from = page.at(-1)!.seq + 1;
  }
}
