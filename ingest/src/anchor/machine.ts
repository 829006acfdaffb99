/**
 * Anchoring as a persisted state machine (issue #9): per batch, one AnchorJob in the store, advanced one step at a
 * time and saved after each step, so that a power cut at any moment resumes where it was:
 *
 *   prepared --sign+save--> signed --send--> broadcast --mined--> included --N confirmations--> final
 *       ^                                        |                    |
 *       +------------- lost / reorged / stale nonce (alarm) ----------+
 *
 * - prepared: the batch is cut and signed by ingest; no transaction yet.
 * - signed: the raw transaction and its hash are on disk (synced) before anything is sent.
 * - broadcast: the node accepted it (or already knew it).
 * - included: mined with the batch's Anchored log, at a height and block hash.
 * - final: `confirmations` blocks deep (the block and all after it). Only then does the batch get its AnchorRef
 *   (store.setAnchor), which receipts' "anchored" state and every bundle use.
 * Every non-final job is re-read from the chain on start and on each tick. A job whose transaction the chain no
 * longer knows (a reset or reorged dev chain, a dropped transaction) goes back to prepared and is anchored again,
 * with an alarm; the contract refuses a second anchor of the same batch id, so this can never anchor twice.
 */
import type { AnchorInspection, StagedAnchorer } from './evm-anchorer.ts';

/** Why an alarm was raised. */
export type AnchorAlarm = 'lost' | 'reorged' | 'stale-nonce';

export type AnchorState = 'prepared' | 'signed' | 'broadcast' | 'included';

export interface AnchorJob {
  state: AnchorState;
  txHash?: string;
  /** The signed raw transaction (0x hex), kept to send again after a restart. */
  raw?: string;
  /** Its nonce, when allocated in the store (IngestStore.signAnchorWithNonce). */
  nonce?: number;
  blockNumber?: number;
  blockHash?: string;
  blockTime?: number;
  /** How many times this batch's anchor was found lost or reorged. */
  lost?: number;
  /** When the current transaction was first seen pending (ms, ingest clock): a stuck one is replaced. */
  pendingSince?: number;
}

export interface StepOutcome {
  job: AnchorJob;
  /** Set when the job reached finality: the reference to record. */
  final?: Extract<AnchorInspection, { status: 'included' }>['ref'];
  /** Set when the anchor was found lost or moved (reorg): what the alarm says. */
  alarm?: AnchorAlarm;
}

/**
 * Advances one job as far as it goes without waiting for the chain: sign, send, read back. Pure over the
 * anchorer; the caller saves the returned job after every step (it calls again with it).
 */
export async function stepAnchor(
  chain: StagedAnchorer,
  batch: { batchId: number; root: Uint8Array; size: number },
  job: AnchorJob,
  confirmations: number,
  now: number = Date.now(),
  stuckAfterMs = 60_000,
): Promise<StepOutcome> {
  const { batchId, root, size } = batch;
  switch (job.state) {
    case 'prepared': {
      const { txHash, raw } = await chain.prepare(batchId, root, size);
      return { job: { ...job, state: 'signed', txHash, raw } };
    }
    case 'signed': {
      const sent = await chain.broadcast(job.raw!, batchId, root, size);
      if (sent === 'stale') return { job: { state: 'prepared', lost: job.lost ?? 0 }, alarm: 'stale-nonce' };
      return { job: { ...job, state: 'broadcast' } };
    }
    case 'broadcast':
    case 'included': {
      const seen = await chain.inspect(batchId, root, size, job.txHash!);
      if (seen.status === 'included') {
        const moved = job.state === 'included' && job.blockHash !== undefined && job.blockHash !== seen.blockHash;
        const next: AnchorJob = {
          ...job,
          state: 'included',
          txHash: seen.ref.txHash,
          blockNumber: seen.ref.blockNumber,
          blockHash: seen.blockHash,
          blockTime: seen.ref.blockTime,
          ...(moved ? { lost: (job.lost ?? 0) + 1 } : {}),
        };
        const out: StepOutcome = { job: next };
        if (moved) out.alarm = 'reorged';
        if (seen.confirmations >= confirmations) out.final = seen.ref;
        return out;
      }
      if (seen.status === 'pending') {
        // A transaction the node holds but never mines (e.g. behind a nonce gap after the chain lost blocks).
        if (job.pendingSince === undefined) return { job: { ...job, pendingSince: now } };
        if (now - job.pendingSince > stuckAfterMs) return { job: { state: 'prepared', lost: (job.lost ?? 0) + 1 }, alarm: 'lost' };
        return { job };
      }
      // Missing. Before inclusion: the node may just have lost its pool (restart); send the same bytes again.
      if (job.state === 'broadcast') {
        const again = await chain.broadcast(job.raw!, batchId, root, size);
        if (again === 'sent') return { job };
        if (again === 'anchored') return { job }; // the next inspect finds it
        return { job: { state: 'prepared', lost: (job.lost ?? 0) + 1 }, alarm: 'lost' };
      }
      // Was included, now gone: the block was reorged away or the chain reset. Anchor again.
      return { job: { state: 'prepared', lost: (job.lost ?? 0) + 1 }, alarm: 'lost' };
    }
  }
}
