/**
 * Before publishing, the gateway compares its chain with the one ingest holds for it, and refuses to publish a
 * chain that diverges (it would only be rejected as forks, and it means readings of this device exist twice).
 *
 * Today ingest's head comes from its HTTP API (`GET /devices/<id>/head`, config `ingest.url`). Signed heads
 * (ingest's confirmations, branch trust-wire) slot in as another {@link IngestHead} source: the comparison itself
 * is {@link compareWithIngest}, one function.
 */
import { equalBytes, fromHex } from '@stele/core';
import type { Outbox } from './outbox.ts';
import type { PublishGate } from './publisher.ts';

export interface IngestHead {
  /** Highest seq ingest committed for the device (0: none). */
  seq: number;
  /** Digest of that entry (what seq + 1 links to); undefined when the source does not say. */
  digest: Uint8Array | undefined;
  /** Where it came from, for messages: `http`, `signed`. */
  source: string;
}

export const REINSTALL_FIX =
  'this outbox is not the chain ingest holds for this device (replaced SD card, restored backup, or a lost outbox): keep this data folder for the evidence and follow the reinstall procedure (`stele gateway reinstall`, docs/keys.md), which resumes from the head ingest confirmed';

/**
 * The one comparison of this outbox's chain with ingest's head. Diverging: ingest holds seqs this outbox never
 * took (the outbox is behind: replaced or rolled back), or the entry at ingest's head seq has another digest here.
 * An entry already pruned here cannot be compared (acknowledged earlier, so ingest had it): not a divergence.
 */
export async function compareWithIngest(outbox: Outbox, ingest: IngestHead): Promise<PublishGate> {
  const local = outbox.head();
  if (ingest.seq === 0) return { ok: true };
  if (ingest.seq > local.seq) {
    return {
      ok: false,
      code: 'PUBLISH_CHAIN_DIVERGED',
      message: `ingest holds this device's chain up to seq ${ingest.seq} (${ingest.source}) but this outbox's head is seq ${local.seq}; ${REINSTALL_FIX}`,
    };
  }
  if (ingest.digest === undefined) return { ok: true };
  const mine = await outbox.digestAt(ingest.seq);
  if (mine !== undefined && !equalBytes(mine, ingest.digest)) {
    return {
      ok: false,
      code: 'PUBLISH_CHAIN_DIVERGED',
      message: `seq ${ingest.seq} at ingest (${ingest.source}) is not seq ${ingest.seq} of this outbox (the digests differ); ${REINSTALL_FIX}`,
    };
  }
  return { ok: true };
}

/** Ingest's head for `deviceId` from its HTTP API. Bounded: 64 kB of answer, `timeoutMs`. */
export async function fetchIngestHead(baseUrl: string, deviceId: string, timeoutMs = 5000): Promise<IngestHead> {
  const res = await fetch(`${baseUrl}/devices/${encodeURIComponent(deviceId)}/head`, { signal: AbortSignal.timeout(timeoutMs) });
  if (!res.ok) throw new Error(`ingest answered HTTP ${res.status} for the device head`);
  const text = await res.text();
  if (text.length > 65_536) throw new Error('ingest head answer too large');
  const body = JSON.parse(text) as { seq?: unknown; digest?: unknown };
  if (typeof body.seq !== 'number' || !Number.isSafeInteger(body.seq) || body.seq < 0) throw new Error('ingest head answer lacks seq');
  const digest = typeof body.digest === 'string' && /^[0-9a-f]{64}$/.test(body.digest) ? fromHex(body.digest) : undefined;
  return { seq: body.seq, digest, source: 'http' };
}

/** The publisher's gate: fetch ingest's head, compare. Ingest unreachable: publish (acks and rejects still guard). */
export function headCheck(outbox: Outbox, baseUrl: string, deviceId: string, onUnreachable?: (err: Error) => void): () => Promise<PublishGate> {
  return async () => {
    let head: IngestHead;
    try {
      head = await fetchIngestHead(baseUrl, deviceId);
    } catch (err) {
      onUnreachable?.(err as Error);
      return { ok: true };
    }
    return compareWithIngest(outbox, head);
  };
}
