/**
 * What both stores index of a reading: the frame digests of its `raw` field and its device `time`. Computed from
 * the reading bytes at commit (they were checked before; bytes that do not decode here are simply not indexed).
 */
import { decodeReading } from '@stele/core';
import { IngestError } from '../errors.ts';
import type { CommitItem, Head, IndexFields } from './types.ts';

export type { IndexFields };

export function indexFieldsOf(reading: Uint8Array | undefined, known?: IndexFields): IndexFields {
  if (known !== undefined) return known;
  if (reading === undefined) return { raw: [] };
  try {
    const r = decodeReading(reading);
    return { raw: r.raw.filter((d) => d.length === 32), deviceTime: r.time };
  } catch {
    return { raw: [] };
  }
}

/** Misuse checks shared by both stores' holdAll: positive integer seqs, each once. */
export function checkHeldRows(rows: readonly { seq: number; payload: Uint8Array; receivedAt: number }[]): void {
  const seen = new Set<number>();
  for (const r of rows) {
    if (!Number.isSafeInteger(r.seq) || r.seq < 1) throw new RangeError('a held seq must be a positive integer');
    if (seen.has(r.seq)) throw new RangeError(`seq ${r.seq} is given twice`);
    if (!(r.payload instanceof Uint8Array)) throw new TypeError('payload must be a Uint8Array');
    if (!Number.isSafeInteger(r.receivedAt) || r.receivedAt < 0) throw new RangeError('receivedAt must be an integer >= 0');
    seen.add(r.seq);
  }
}

/** Misuse checks shared by both stores' time queries. */
export function checkTimeQuery(q: { by: string; fromMs: number; toMs: number; limit: number }): void {
  if (q.by !== 'device' && q.by !== 'received') throw new RangeError("by must be 'device' or 'received'");
  if (!Number.isSafeInteger(q.fromMs) || q.fromMs < 0) throw new RangeError('fromMs must be an integer >= 0');
  if (!Number.isSafeInteger(q.toMs) || q.toMs < q.fromMs) throw new RangeError('toMs must be an integer >= fromMs');
  if (!Number.isSafeInteger(q.limit) || q.limit < 1) throw new RangeError('limit must be a positive integer');
}

/** Runs work serialised per key (one process): the LevelDB store's stand-in for a row lock. */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const before = this.tails.get(key) ?? Promise.resolve();
    const run = before.then(work);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return run;
  }
}

/** Misuse checks of commit's arguments (both stores): contiguous items ending at the head. */
export function checkCommitItems(items: readonly CommitItem[], head: Head): void {
  if (items.length === 0) throw new RangeError('commit needs at least one item');
  for (let i = 1; i < items.length; i++) if (items[i]!.seq !== items[i - 1]!.seq + 1) throw new RangeError('commit items must be contiguous');
  if (items[items.length - 1]!.seq !== head.seq) throw new RangeError('the head must be the last item');
}

export function conflict(deviceId: string, seq: number, why: string): IngestError {
  return new IngestError('INGEST_STORE_CONFLICT', `commit conflicts with the store: ${why}`, { where: { deviceId, seq } });
}


/** Anchor job states whose transaction may still be mined: their nonces are taken (signAnchorWithNonce). */
export const IN_FLIGHT_ANCHOR_STATES: readonly string[] = ['signed', 'broadcast'];

/** The outbox row sealBatch writes with each batch: its anchor job before anything is signed (anchor/machine.ts). */
export const OUTBOX_ANCHOR_JOB = { state: 'prepared' } as const;

/** Misuse checks of the anchor lease arguments (both stores). */
export function checkLease(worker: string, leaseMs: number, limit: number): void {
  if (typeof worker !== 'string' || worker === '' || worker.length > 200) throw new TypeError('worker must be a non-empty string of at most 200 characters');
  if (!Number.isSafeInteger(leaseMs) || leaseMs < 1) throw new RangeError('leaseMs must be a positive integer');
  if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError('limit must be a positive integer');
}

/**
 * The nonce signAnchorWithNonce allocates: the lowest one at or above the chain's pending count that no transaction
 * still in flight holds. Lowest, not "after the highest in flight": after a chain lost blocks (a power cut of a dev
 * chain, a reorg) the transactions still in flight can sit above a gap the chain will never fill by itself, and a
 * new anchor allocated above them would wait behind the same gap; each one found stuck and re-signed there would
 * land above the others again, so no anchor would ever be mined (seen in test/e2e/power-cut.test.ts). Filling the
 * lowest free nonce first lets the chain mine again, and the transactions above become minable in turn.
 */
export function nextAnchorNonce(chainNonce: number, inFlight: Iterable<number>): number {
  if (!Number.isSafeInteger(chainNonce) || chainNonce < 0) throw new RangeError('chainNonce must be a non-negative integer');
  const taken = new Set(inFlight);
  let n = chainNonce;
  while (taken.has(n)) n++;
  return n;
}
