/**
 * The ingest store interface: everything ingest keeps about devices, chains, batches and anchors. Two
 * implementations run the same conformance suite (./conformance.ts): LevelDB (./leveldb/, the embedded default, one
 * process) and PostgreSQL (./postgres/, several workers sharing one database).
 *
 * Per-device state lives here, not in a worker's memory: the committed head, the key timeline and revocations (the
 * registry row), statements held ahead of the head (a gap waiting for the gateway's resend), the pending Merkle
 * leaves and the batch counter. A worker may cache, but every decision that must hold across workers is taken by
 * the store in one atomic step:
 *   - `commit` inserts idempotently on (device, seq): a seq already stored with the same bytes is skipped, a
 *     different one is INGEST_STORE_CONFLICT; the new entries must continue the stored head (else CONFLICT, the
 *     worker re-reads the head and judges its statements again);
 *   - `hold` keeps a statement ahead of the head once per (device, seq); `commit` drops the held rows it passes;
 *   - `sealBatch` takes the oldest pending leaves and the next batch id in one transaction, one sealer at a time,
 *     and writes the batch's anchor outbox row ({state: 'prepared'}) in that same step;
 *   - `leaseAnchorJobs` hands each unanchored batch to one worker at a time for a lease (a worker killed mid-anchor
 *     leaves its jobs to whoever leases them after the lease ends); `signAnchorWithNonce` allocates the anchoring
 *     account's nonce and saves the signed transaction in one step, before anything is broadcast.
 */
import { type AnchorRef } from '@stele/core';
import type { EnrolmentRecord } from '@stele/device';
import type { DeviceKeys } from '../registry/index.ts';

export interface DeviceRow {
  record: EnrolmentRecord;
  publicKey: Uint8Array;
  kid: Uint8Array;
}

export interface EntryRow {
  statement: Uint8Array;
  reading?: Uint8Array;
  /** Ingest clock, ms since the epoch (device time is untrusted, FORMAT.md §8). */
  receivedAt: number;
  batchId?: number;
  leafIndex?: number;
}

export interface Head {
  seq: number;
  digest: Uint8Array;
}

export interface PendingLeaf {
  order: number;
  deviceId: string;
  seq: number;
  leafHash: Uint8Array;
}

export interface BatchRow {
  batchId: number;
  size: number;
  root: Uint8Array;
  leafHashes: Uint8Array[];
  /** The leaves as (deviceId, seq), in tree order. */
  leaves: { deviceId: string; seq: number }[];
  protectedBytes: Uint8Array;
  signature: Uint8Array;
  createdAt: number;
  anchor?: AnchorRef;
}

/** What the sealer signs for a batch (the store adds the leaves and keeps it atomically with them). */
export type SealedBatch = Omit<BatchRow, 'leaves' | 'anchor'>;

export interface CommitItem {
  seq: number;
  entry: EntryRow;
  leafHash: Uint8Array;
  /** What the store indexes of entry.reading, when the caller decoded it already (else the store decodes it). */
  index?: IndexFields;
}

/** What both stores index of a reading: the frame digests of its `raw` field and its device `time`. */
export interface IndexFields {
  raw: Uint8Array[];
  /** The reading's `time` (gateway clock, ms); undefined for a statement received hash-only. */
  deviceTime?: number;
}

export interface ForkRow {
  deviceId: string;
  seq: number;
  statement: Uint8Array;
  reading?: Uint8Array;
  receivedAt: number;
}

/** A statement received ahead of its device's head, kept (as received) until the gap before it is filled. */
export interface HeldRow {
  seq: number;
  /** The MQTT payload exactly as received (FORMAT.md §11 envelope): judged again when its turn comes. */
  payload: Uint8Array;
  receivedAt: number;
  /**
   * True when ingest checked its signature against its kid's key before holding it. A kid is the hash of its key
   * (FORMAT.md §2), so the check stays true when the statement's turn comes: it is then decoded and judged again
   * (key validity at its seq, the chain) but its signature is not checked a second time. Absent: not checked (its
   * kid was not registered yet, or a store written before this field), checked when its turn comes.
   */
  signatureChecked?: true;
}

/** Where a frame digest was found: the reading `seq` of `deviceId` lists it in its `raw` field. */
export interface RawRef {
  deviceId: string;
  seq: number;
}

/**
 * Which clock a time window is on. `device`: the reading's `time` (the gateway clock, ms, FORMAT.md §2);
 * `received`: ingest's receive time. Both untrusted for ordering (order is seq); only readings sent in full have
 * a device time: a hash-only device's readings stay on the gateway, so they are found by receive time only.
 */
export type TimeAxis = 'device' | 'received';

export interface TimeRef {
  seq: number;
  receivedAt: number;
  /** The reading's `time`; absent for a statement received hash-only. */
  deviceTime?: number;
}

export interface TimeQuery {
  by: TimeAxis;
  /** Inclusive, ms since the epoch. */
  fromMs: number;
  /** Exclusive, ms since the epoch. */
  toMs: number;
  limit: number;
}

/**
 * Where the notification of one alert on one channel stands (issue #12 item 7, ingest/src/notify/): written
 * `pending` (with the body to send) before the first attempt, updated after each attempt, `delivered` once the
 * receiver took it. The store is the queue: a restart resends what is pending and never what was delivered.
 */
export interface AlertDeliveryRow {
  alertId: string;
  /** `webhook` or `mqtt` (the channel's name). */
  channel: string;
  state: 'pending' | 'delivered';
  /** The notice to send (FORMAT.md §15.9), fixed when queued: every attempt sends these bytes. */
  body: Uint8Array;
  queuedAt: number;
  attempts: number;
  lastAttemptAt?: number;
  lastError?: string;
  deliveredAt?: number;
}

/** The part of the store the notifier uses. */
export type AlertDeliveryStore = Pick<IngestStore, 'putAlertDelivery' | 'getAlertDelivery' | 'listAlertDeliveries' | 'listPendingAlertDeliveries' | 'countPendingAlertDeliveries'>;

export interface CommitOptions {
  /** The device's registry row (key timeline, revocations), written in the same atomic step as the chain. */
  keys?: DeviceKeys;
  /**
   * An enrolment request file kept with its enrolment statement (one atomic step), keyed by its SHA-256 (the
   * statement's `request`), for bundles to carry beside the statement (FORMAT.md §13.6).
   */
  enrolmentRequest?: { digest: Uint8Array; file: Uint8Array };
}

export interface IngestStore {
  /** `leveldb` or `postgres`. */
  readonly kind: 'leveldb' | 'postgres';
  /** Where the store is, for logs: a directory, or a PostgreSQL URL without its password. */
  readonly location: string;
  close(): Promise<void>;

  // ---- devices and their key registry
  putDevice(row: DeviceRow): Promise<void>;
  getDevice(deviceId: string): Promise<DeviceRow | undefined>;
  listDevices(): Promise<DeviceRow[]>;
  /** The registry row of a device (its key timeline and revocations). */
  getDeviceKeys(deviceId: string): Promise<DeviceKeys | undefined>;
  listDeviceKeys(): Promise<DeviceKeys[]>;
  /** The enrolment request file whose SHA-256 is `digest`, as a commit kept it (CommitOptions.enrolmentRequest). */
  getEnrolmentRequest(digest: Uint8Array): Promise<Uint8Array | undefined>;

  // ---- chains
  /** The committed head of a store device id (a device, or its lifecycle log); undefined before its first entry. */
  getHead(deviceId: string): Promise<Head | undefined>;
  listHeads(): Promise<Map<string, Head>>;
  getEntry(deviceId: string, seq: number): Promise<EntryRow | undefined>;
  /** Entries firstSeq..lastSeq that are stored, as [seq, row] in seq order. */
  getEntries(deviceId: string, firstSeq: number, lastSeq: number): Promise<[number, EntryRow][]>;
  /**
   * Commits contiguous, checked statements of one device with the new head, their pending leaves, the raw-frame
   * and time index rows and (optionally) the registry row: one atomic step. Items whose seq is already stored with
   * the same statement bytes are skipped (idempotent); a different statement there, or a first new item that does
   * not follow the stored head, is INGEST_STORE_CONFLICT and nothing is written. Held rows up to the new head are
   * dropped. Returns the pending leaves written, in commit order.
   */
  commit(deviceId: string, items: readonly CommitItem[], head: Head, options?: CommitOptions): Promise<PendingLeaf[]>;
  putFork(fork: ForkRow): Promise<void>;
  listForks(deviceId: string): Promise<ForkRow[]>;
  /** Readings whose `raw` field names `digest`, in (device, seq) order; readings received in full only. */
  findByRawDigest(digest: Uint8Array, limit?: number): Promise<RawRef[]>;
  /** Statements of one device in a time window, in (time, seq) order (see {@link TimeAxis}). */
  findByTime(deviceId: string, query: TimeQuery): Promise<TimeRef[]>;

  // ---- statements ahead of the head
  /** Keeps a statement ahead of the head; false (and nothing written) when one is already held at that seq. */
  hold(deviceId: string, row: HeldRow): Promise<boolean>;
  /**
   * Keeps several statements ahead of the head in one atomic, durable write (distinct seqs); those whose seq is
   * already held are left as they are. Returns the seqs it held.
   */
  holdAll(deviceId: string, rows: readonly HeldRow[]): Promise<number[]>;
  /** Held statements with seq >= fromSeq, ascending, at most `limit`. */
  listHeld(deviceId: string, fromSeq: number, limit: number): Promise<HeldRow[]>;
  /**
   * The held statements that continue from `fromSeq` without a gap (fromSeq, fromSeq + 1, ...), at most `limit`:
   * what the chain check can advance over. Rows past the first gap are not read: with two workers on a shared
   * subscription each one holds every other seq of a device, and reading them all at every commit cost more than
   * the statements themselves.
   */
  listHeldRun(deviceId: string, fromSeq: number, limit: number): Promise<HeldRow[]>;
  countHeld(deviceId: string): Promise<number>;
  /** Held statements over all devices. */
  countAllHeld(): Promise<number>;
  /** Drops one held statement (it was judged and rejected). */
  dropHeld(deviceId: string, seq: number): Promise<void>;

  // ---- pending leaves, batches, anchors
  countPending(): Promise<number>;
  listPending(limit?: number): Promise<PendingLeaf[]>;
  /**
   * One sealer at a time: takes the oldest pending leaves (at most maxSize) and the next batch id, calls `build`
   * to sign the batch, then stores it, marks it unanchored, writes (batchId, leafIndex) into each entry and
   * removes the leaves from the pending set, all atomically. Undefined when nothing is pending.
   */
  sealBatch(maxSize: number, build: (batchId: number, leaves: readonly PendingLeaf[]) => Promise<SealedBatch>): Promise<BatchRow | undefined>;
  getBatch(batchId: number): Promise<BatchRow | undefined>;
  /** Number of batches stored (ids are 1..n). */
  batchCount(): Promise<number>;
  listUnanchoredIds(): Promise<number[]>;
  /** Saves where a batch's anchor stands (durable before the signed transaction is broadcast). */
  putAnchorJob(batchId: number, job: object): Promise<void>;
  getAnchorJob<T>(batchId: number): Promise<T | undefined>;
  /** Records a batch's final anchor, clears its unanchored mark and its anchor job. */
  setAnchor(batchId: number, anchor: AnchorRef): Promise<void>;

  // ---- alert notifications (ingest/src/notify/)
  /** Writes (inserts or replaces) the delivery record of (alertId, channel), durably. */
  putAlertDelivery(row: AlertDeliveryRow): Promise<void>;
  getAlertDelivery(alertId: string, channel: string): Promise<AlertDeliveryRow | undefined>;
  /** The delivery records of one alert, by channel name. */
  listAlertDeliveries(alertId: string): Promise<AlertDeliveryRow[]>;
  /** Pending records of one channel, oldest queued first, at most `limit`. */
  listPendingAlertDeliveries(channel: string, limit: number): Promise<AlertDeliveryRow[]>;
  countPendingAlertDeliveries(channel: string): Promise<number>;

  // ---- anchoring across workers (issue #11 item 3)
  /**
   * Leases up to `limit` unanchored batches' anchor jobs to `worker` for `leaseMs`, in batch id order: those it
   * already holds (renewed), free ones and ones whose lease ended. A job another worker holds is skipped, never
   * waited for. Returns the leased batch ids.
   */
  leaseAnchorJobs(worker: string, leaseMs: number, limit: number): Promise<number[]>;
  /** Saves an anchor job only while `worker` holds its lease; false (nothing written) when it does not. */
  putLeasedAnchorJob(batchId: number, worker: string, job: object): Promise<boolean>;
  /**
   * Allocates the next nonce of `account` and saves the signed transaction, one atomic step under the account's
   * nonce row lock: nonce = max(`chainNonce` (the chain's pending count), 1 + the highest nonce of a job still in
   * flight (a `nonce` field, state signed or broadcast)); `sign(nonce)` returns the job to save. False (nothing
   * written, no nonce taken) when `worker` does not hold the job's lease.
   */
  signAnchorWithNonce(batchId: number, worker: string, account: string, chainNonce: number, sign: (nonce: number) => Promise<AnchorNonceJob>): Promise<boolean>;
  /** The last nonce allocated for `account` (the nonce table's record), undefined before the first. */
  getLastAnchorNonce(account: string): Promise<number | undefined>;
}

/** What signAnchorWithNonce saves: an anchor job (anchor/machine.ts) carrying its transaction's nonce. */
export interface AnchorNonceJob {
  state: string;
  nonce: number;
  [k: string]: unknown;
}
