/**
 * Batching: the oldest pending leaves become one RFC 9162 tree whose root ingest signs once (the receipt's
 * protected header and signature, FORMAT.md §5). The store hands out the leaves and the batch id in one step,
 * one sealer at a time (store/types.ts sealBatch), so several workers sharing a store never seal a leaf twice.
 */
import { signBatchRoot, type Signer } from '@stele/core';
import { BatchProofs } from '@stele/core/rfc9162';
import type { BatchRow, IngestStore } from '../store/index.ts';

/** Seals, signs and stores one batch of at most `maxSize` of the oldest pending leaves; undefined when none. */
export function sealNextBatch(store: IngestStore, signer: Signer, issuer: string, maxSize: number): Promise<BatchRow | undefined> {
  return store.sealBatch(maxSize, async (batchId, leaves) => {
    const leafHashes = leaves.map((l) => l.leafHash);
    const root = new BatchProofs(leafHashes).root();
    const issuedAt = Math.floor(Date.now() / 1000);
    const { protectedBytes, signature } = await signBatchRoot(root, { kid: signer.keyId, issuer, issuedAt, batchId }, signer);
    return { batchId, size: leaves.length, root, leafHashes, protectedBytes, signature, createdAt: Date.now() };
  });
}
