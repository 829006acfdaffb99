/**
 * Anchoring: drives every non-final batch's anchor through the persisted state machine (./machine.ts), in id
 * order, saving each step in the store, and keeps what /health and /metrics show (queued batches by state, the
 * chain down since, the last alarm). A chain failure stops the round; the next tick retries (batches queue in the
 * store, nothing is lost). Anchorers without stages (tests' fakes) are driven through anchor() in one step.
 *
 * Several workers sharing one store (issue #11 item 3): each batch's anchor job (the outbox row sealBatch writes in
 * the seal transaction) is leased to one worker at a time (store.leaseAnchorJobs); only the lease holder saves
 * the job's steps (putLeasedAnchorJob). Its transaction is signed with a nonce allocated in the store and saved in
 * the same step (signAnchorWithNonce) before it is broadcast; after a crash the saved bytes are sent again as they
 * are. A worker killed mid-anchor leaves its job leased until the lease ends; then another worker takes it from
 * the state it was saved in. Finality is the block hash at the inclusion height (machine.ts). The contract refuses a
 * second anchor of a batch id, the last guard should all of this fail.
 */
import { type AnchorRef, SteleError } from '@stele/core';
import { IngestError } from '../errors.ts';
import type { LogFn } from '../log.ts';
import type { BatchRow, IngestStore } from '../store/index.ts';
import type { Anchorer } from './evm-anchorer.ts';
import { stepAnchor, type AnchorAlarm, type AnchorJob } from './machine.ts';

export interface AnchorDriverOptions {
  store: IngestStore;
  anchorer: Anchorer;
  /** Blocks deep for an anchor to be final. */
  confirmations: number;
  /** A transaction held this long without being mined is replaced. */
  stuckMs: number;
  log: LogFn;
  /** Called once a batch's anchor is final and stored (the service sends `anchored` confirmations). */
  onFinal: (row: BatchRow) => Promise<void>;
  /** This worker's name in anchor job leases (unique among workers sharing the store). */
  worker: string;
  /** How long a lease lasts without renewal (each round renews it). Default 15000. */
  leaseMs?: number;
}

/** Batches one round leases at most. */
const LEASE_LIMIT = 64;

export interface AnchoringHealth {
  confirmations: number;
  unanchored: number;
  states: Record<string, number>;
  lost: number;
  chainDownSinceMs?: number;
  lastAlarm?: { batchId: number; alarm: string; at: string };
  lastError?: string;
}

export class AnchorDriver {
  /** Ids of the stored batches whose anchor is not final, as last read from the store. */
  unanchored: number[] = [];
  /** The last chain failure, cleared by the next final anchor. */
  lastError: unknown;
  /** Anchors made final, failed attempts, and anchors found lost or reorged (alarms), by this process. */
  anchored = 0;
  failures = 0;
  lost = 0;
  private chainDownSince: number | undefined;
  private lastAlarm: { batchId: number; alarm: AnchorAlarm; at: number } | undefined;
  /** State of each non-final batch's anchor, as last seen (for health). */
  private readonly states = new Map<number, AnchorJob['state']>();

  constructor(private readonly o: AnchorDriverOptions) {}

  /** One round over every non-final batch, in id order. */
  async drive(): Promise<void> {
    const staged = this.o.anchorer.staged;
    this.unanchored = await this.o.store.listUnanchoredIds();
    const mine = staged === undefined ? [...this.unanchored] : await this.o.store.leaseAnchorJobs(this.o.worker, this.o.leaseMs ?? 15_000, LEASE_LIMIT);
    for (const batchId of mine) {
      const row = await this.o.store.getBatch(batchId);
      if (row === undefined) throw new IngestError('INGEST_STORE_ERROR', 'unanchored batch missing', { where: { batchId } });
      let ref: AnchorRef | undefined;
      try {
        if (staged === undefined) {
          // Idempotent: a batch anchored before a crash (tx mined, ref not stored) returns its existing ref.
          ref = await this.o.anchorer.anchor(batchId, row.root, row.size);
        } else {
          let job: AnchorJob = (await this.o.store.getAnchorJob<AnchorJob>(batchId)) ?? { state: 'prepared' };
          for (let steps = 0; steps < 6 && ref === undefined; steps++) {
            if (job.state === 'prepared') {
              // The nonce from the store, the signed bytes saved with it, before anything leaves this process.
              const chainNonce = await staged.pendingNonce();
              const prior = job;
              const signed = await this.o.store.signAnchorWithNonce(batchId, this.o.worker, staged.account, chainNonce, async (nonce) => {
                const { txHash, raw } = await staged.prepare(batchId, row.root, row.size, nonce);
                return { ...prior, state: 'signed', txHash, raw, nonce } satisfies AnchorJob;
              });
              if (!signed) break; // the lease ended: another worker has the job now
              job = (await this.o.store.getAnchorJob<AnchorJob>(batchId)) ?? job;
              continue;
            }
            const out = await stepAnchor(staged, row, job, this.o.confirmations, Date.now(), this.o.stuckMs);
            if (out.alarm !== undefined) this.raiseAlarm(batchId, out.alarm, job);
            if (out.final !== undefined) ref = out.final;
            const changed = JSON.stringify(out.job) !== JSON.stringify(job);
            job = out.job;
            if (!changed) break;
            if (ref === undefined && !(await this.o.store.putLeasedAnchorJob(batchId, this.o.worker, job))) break; // lease lost
          }
          this.states.set(batchId, job.state);
        }
      } catch (e) {
        this.lastError = e;
        this.failures++;
        this.chainDownSince ??= Date.now();
        this.o.log('warn', 'anchoring failed, will retry', { batchId, err: errorText(e), code: e instanceof SteleError ? e.code : undefined, queued: this.unanchored.length });
        return;
      }
      this.chainDownSince = undefined;
      if (ref === undefined) continue; // not final yet: the next tick reads it again
      if (ref.rpc === undefined) ref = { ...ref, rpc: this.o.anchorer.rpcUrl };
      await this.o.store.setAnchor(batchId, ref);
      this.unanchored.splice(this.unanchored.indexOf(batchId), 1);
      this.states.delete(batchId);
      this.anchored++;
      this.lastError = undefined;
      this.o.log('info', 'batch anchored', { batchId, chainId: ref.chainId, txHash: ref.txHash, blockNumber: ref.blockNumber, final: true });
      await this.o.onFinal(row);
    }
  }

  private raiseAlarm(batchId: number, alarm: AnchorAlarm, job: AnchorJob): void {
    this.lost++;
    this.lastAlarm = { batchId, alarm, at: Date.now() };
    this.o.log('error', 'ALARM anchor lost or reorged; anchoring the batch again', { batchId, alarm, txHash: job.txHash, blockNumber: job.blockNumber, blockHash: job.blockHash });
  }

  /** Where anchoring stands, for /health and /metrics. */
  health(): AnchoringHealth {
    const states: Record<string, number> = {};
    for (const id of this.unanchored) {
      const st = this.states.get(id) ?? 'prepared';
      states[st] = (states[st] ?? 0) + 1;
    }
    return {
      confirmations: this.o.confirmations,
      unanchored: this.unanchored.length,
      states,
      lost: this.lost,
      ...(this.chainDownSince === undefined ? {} : { chainDownSinceMs: Date.now() - this.chainDownSince }),
      ...(this.lastAlarm === undefined ? {} : { lastAlarm: { ...this.lastAlarm, at: new Date(this.lastAlarm.at).toISOString() } }),
      ...(this.lastError === undefined ? {} : { lastError: errorText(this.lastError) }),
    };
  }
}

function errorText(e: unknown): string {
  if (e instanceof SteleError) return `${e.code}: ${e.message}`;
  return e instanceof Error ? e.message : String(e);
}
