import { SteleError } from '@stele/core';

/**
 * - `OUTBOX_CLOSED`: the outbox was closed (or is closing); nothing was taken.
 * - `OUTBOX_LOCKED`: another process holds the outbox (LevelDB allows one); go through that agent.
 * - `OUTBOX_IO`: the store failed to read or write; the cause is attached. A failed take leaves the chain as it was.
 * - `OUTBOX_CORRUPT`: a record does not decode or does not match its sum, an entry does not match its statement, or
 *   the stored head does not match the stored entries (FORMAT.md §12.1). Keep the folder; do not delete it.
 * - `OUTBOX_MISSING`: the outbox's store is gone (its LevelDB `CURRENT` deleted): an existing outbox is never
 *   recreated; a gateway that lost its outbox is reinstalled (`stele gateway reinstall`, docs/keys.md).
 * - `OUTBOX_ROLLED_BACK`: the head is below the high-water seq of the marker: synced writes were lost (a torn
 *   log); refused so that no seq is ever handed out twice.
 * - `OUTBOX_GAP`: an entry that is not acknowledged yet is missing from the store.
 * - `OUTBOX_DEVICE_MISMATCH`: a take for another device id than the one this outbox's chain belongs to.
 * - `OUTBOX_UNSIGNED`: readings taken unsigned before a restart wait for a key (`signPending` with a signer) and
 *   a lifecycle statement cannot be appended after them until they are signed.
 */
export type OutboxErrorCode = 'OUTBOX_CLOSED' | 'OUTBOX_LOCKED' | 'OUTBOX_IO' | 'OUTBOX_CORRUPT' | 'OUTBOX_DEVICE_MISMATCH' | 'OUTBOX_UNSIGNED'
  | 'OUTBOX_MISSING'
  | 'OUTBOX_ROLLED_BACK'
  | 'OUTBOX_GAP';
export class OutboxError extends SteleError<OutboxErrorCode> {}

/**
 * Codes the publisher counts and logs (it never throws them at a caller: the link is untrusted and may be down).
 * - `PUBLISH_BAD_MESSAGE`: an ack or reject that is not the CBOR of FORMAT.md (MQTT wire).
 * - `PUBLISH_ACK_BEYOND_HEAD`: ingest acknowledged a seq this gateway never took (clamped to the head).
 * - `PUBLISH_OUTBOX_GAP`: an entry above the acked mark is missing from the outbox; publishing stops.
 * - `PUBLISH_OUTBOX_CORRUPT`: an entry read back fails its checks (OUTBOX_CORRUPT); publishing stops.
 * - `PUBLISH_CHAIN_DIVERGED`: the head check before publishing (ingest-head.ts) found that this outbox's chain is
 *   not the one ingest holds; publishing stops (it would fork the chain). The fix: `stele gateway reinstall`.
 */
export type PublishErrorCode = 'PUBLISH_BAD_MESSAGE' | 'PUBLISH_ACK_BEYOND_HEAD' | 'PUBLISH_OUTBOX_GAP' | 'PUBLISH_OUTBOX_CORRUPT' | 'PUBLISH_CHAIN_DIVERGED';
export class PublishError extends SteleError<PublishErrorCode> {}
