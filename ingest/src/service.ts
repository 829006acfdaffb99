/**
 * The ingest service: MQTT subscription, verification, hash-chain check, storage, batching (RFC 9162),
 * receipts (one ES256 signature per batch, FORMAT.md §5), anchoring, evidence export (FORMAT.md §7).
 *
 * Trust boundary: everything arriving on `stele/v1/+/statements` is untrusted. A statement is committed only
 * when its kid is enrolled for the device it names, its signature verifies, its body (when sent) hashes to its
 * payload, and it extends the device's committed head (seq = head + 1, prev = head digest). Anything else is
 * counted, logged and published on `stele/v1/<device>/rejects`; a fork is recorded and never applied.
 */
import { decodeStatementMessage, deviceTopic, encodeReject, parseDeviceTopic } from '@stele/core/wire';
import type { MqttClient } from 'mqtt';
import { hostname } from 'node:os';
import type { AnchorRef } from '@stele/core/anchor';
import {
  equalBytes,
  fromBase64Url,
  toBase64Url,
  toHex,
  parseBundle,
  type EvidenceBundle,
  encodeCbor,
  SteleError,
  sha256,
  keyIdOf,
  GENESIS_PREV,
} from '@stele/core';
import { encodeReceipt, signConfirmation, parseStatement } from '@stele/core/cose';
import { findSpan, isLifecycleStatement, parseLifecycleStatement, signLifecycleStatement, type LifecycleBody } from '@stele/core/lifecycle';
import { hashLeaf, BatchProofs } from '@stele/core/rfc9162';
import type { Signer } from '@stele/core';
import { checkEnrolmentRecord, verifyEnrolmentRequest, type CheckedRecord, type EnrolmentRecord } from '@stele/core/enrolment';
import type { Anchorer } from './anchor/index.ts';
import { AnchorDriver, type AnchoringHealth } from './anchor/driver.ts';
import { IngestError, type RejectCode } from './errors.ts';
import { toLogFn, type LogFn, type Logger } from './log.ts';
import { sealNextBatch } from './batch/seal.ts';
import { currentKey, isLifecycleLogId, KeyRegistry, lifecycleLogId, type DeviceKeys } from './registry/index.ts';
import { connectBroker, type IngestBrokerCredentials } from './receive/broker-client.ts';
import { checkStatement, type Checked, type HeadBatch, type Incoming, type Precheck } from './verify/statement-check.ts';
import { SignatureThread } from './verify/signature-thread.ts';
import { judgeGroup } from './commit/judge-group.ts';
import { openStore, type AlertDeliveryStore, type BatchRow, type DeviceRow, type EntryRow, type ForkRow, type Head, type IngestStore, type TimeAxis, type TimeRef } from './store/index.ts';

/** How often non-final anchors are read again from the chain between batch cuts, in ms. */
const ANCHOR_POLL_MS = 500;
/** Devices whose `anchored` confirmation is signed and published at once. */
const ANCHORED_CONFIRMATIONS_AT_ONCE = 32;
/** Batches whose `anchored` confirmations may be in flight at once; beyond, a batch's are skipped (counted). */
const MAX_ANCHORED_SENDS = 64;

/**
 * The FORMAT.md §7 JSON object (base64url / 0x-hex fields), ready for `JSON.stringify`. core's `EvidenceBundle`
 * (core/src/bundle.ts) is the decoded form of the same thing: `parseBundle(json)` turns one into the other, and
 * `exportEvidence` returns it directly.
 */

export interface EvidenceBundleJson {
  format: 'stele-evidence/1';
  createdAt: string;
  device: { deviceId: string; publicKey: string; kid: string; keyBackend: EnrolmentRecord['keyBackend']; enrolledAt: string; site?: string };
  ingest: { issuer: string; publicKey: string; kid: string };
  window: { firstSeq: number; lastSeq: number };
  entries: { seq: number; batchId: number; reading?: string; statement: string; receipt: string }[];
  /** The device's lifecycle statements (FORMAT.md §13.6), in log order; absent when it has none. */
  lifecycle?: { batchId: number; statement: string; receipt: string; request?: string }[];
  batches: { batchId: number; size: number; root: string; anchor: AnchorRef }[];
  /** Statements ingest caught and did not log (FORMAT.md §7): forks and held statements an alert names. */
  caught?: { statement: string; reading?: string }[];
  /** The alert this bundle is evidence of (FORMAT.md §15.7, §15.8); only in alert bundles (alerts.ts). */
  alert?: unknown;
}

/** An alert's evidence across devices (FORMAT.md §7.2): one bundle per device, the alert once. */
export interface EvidenceSetJson {
  format: 'stele-evidence-set/1';
  createdAt: string;
  alert: unknown;
  bundles: EvidenceBundleJson[];
}

export type { IngestBrokerCredentials } from './receive/broker-client.ts';

export interface IngestOptions {
  /** `mqtt://host:port` or `mqtts://host:port`, without credentials (a URL with user info is refused). */
  mqttUrl: string;
  /** Broker credentials (files). */
  broker?: IngestBrokerCredentials;
  /**
   * Largest MQTT packet ingest reads from the broker. Larger PUBLISH packets are cut to their topic before any
   * parser buffers them and rejected as INGEST_OVERSIZE (on mqtt:// and mqtts://). Default maxMessageBytes + 1024.
   */
  maxPacketBytes?: number;
  /** LevelDB directory (created when absent): the store unless `store` names another. */
  dataDir: string;
  /**
   * Where the store is (ingest/src/store/): a `postgres://` URL for PostgreSQL, which several workers may share, or
   * a directory for the embedded LevelDB store. Default: `dataDir` (LevelDB).
   */
  store?: string;
  /** The ingest receipt key. */
  signer: Signer;
  /** `iss` of every receipt (FORMAT.md §5). */
  issuer: string;
  anchorer: Anchorer;
  /** Cut a batch of the pending leaves this often. Default 5000. */
  batchIntervalMs?: number;
  /** Cut a batch as soon as this many leaves are pending. Default 4096. */
  maxBatchSize?: number;
  /** Larger MQTT payloads are rejected with INGEST_OVERSIZE. Default 65536. */
  maxMessageBytes?: number;
  /**
   * Signature checks handed to WebCrypto at once (the rest wait their turn). Default 64: enough to keep the thread
   * pool busy; unbounded, a burst queues thousands of jobs and each costs the event loop more.
   */
  maxVerifyInFlight?: number;
  /** Statements ahead of a device's head kept (in the store) while waiting for the gap to fill. Default 1024 per device. */
  reorderLimit?: number;
  /**
   * Messages received but not processed yet, per device and over all devices, and their bytes over all devices.
   * Beyond any of them, a message is shed (counted in `stats().shed`, rejected as INGEST_QUEUE_FULL, not
   * acknowledged: the gateway resends it). Defaults 4096 per device (8 gateway windows), 65 536 in all, and
   * 256 MiB in all (`stele ingest run --queue-bytes`): 65 536 messages of 64 KiB would be 4 GiB.
   */
  maxQueuedPerDevice?: number;
  maxQueuedTotal?: number;
  maxQueuedBytes?: number;
  /** Rejections logged and published per device per second; beyond, they are counted only. Default 20. */
  rejectsPerDevicePerSecond?: number;
  /** Acks of one device are coalesced over this window. Default 5. */
  ackDelayMs?: number;
  /**
   * An anchor is final, and only then goes into bundles and counts as anchored, when its block is this many blocks
   * deep (1: mined). Default 1. Non-final anchors are read again from the chain on start and every tick.
   */
  anchorConfirmations?: number;
  /** A transaction the node holds this long without mining it is replaced (with an alarm). Default 60000. */
  anchorStuckMs?: number;
  /** SEC1 public keys of the installers whose countersigned enrolment requests are accepted (enrolRequest). Default none. */
  trustedInstallers?: readonly Uint8Array[];
  /** MQTT client id. Default: random, with a clean session; when given, a persistent session (clean: false). */
  clientId?: string;
  /**
   * Run as one of several workers on the MQTT 5 shared subscription `$share/GROUP/...` (receive/broker-client.ts):
   * needs a store the workers share (PostgreSQL; INGEST_SHARE_NEEDS_SHARED_STORE otherwise) and a broker with
   * shared subscriptions (INGEST_SHARE_UNSUPPORTED otherwise).
   */
  shareGroup?: string;
  /** This worker's name in anchor job leases. Default: host:pid:random. */
  workerName?: string;
  /** A worker that stops renewing its anchor job leases (killed) hands them on after this long. Default 15000. */
  anchorLeaseMs?: number;
  log?: Logger;
}

export interface IngestStats {
  /** Statements committed (all devices, since the store was created). */
  readings: number;
  /** Batches cut (since the store was created). */
  batches: number;
  /** Batches anchored (since the store was created). */
  anchored: number;
  /** Rejections by code, since this process started. */
  rejected: Record<string, number>;
  /** Redelivered statements already committed (re-acked), since this process started. */
  duplicates: number;
  /** Leaves committed but not in a batch yet. */
  pending: number;
  /** Statements held in the store ahead of their device's head, waiting for a gap to fill (as last counted). */
  buffered: number;
  /** Failed anchor attempts (each retried on the next tick), since this process started. */
  anchorFailures: number;
  /** Anchors found lost or reorged on chain and anchored again (alarms), since this process started. */
  anchorsLost: number;
  /** Messages shed because a receive queue was full (INGEST_QUEUE_FULL), since this process started. */
  shed: number;
  /** Rejections counted but neither logged nor published (rate limit), since this process started. */
  rejectsSuppressed: number;
  /** Batches whose `anchored` confirmations were skipped because too many were still being sent (this process). */
  anchoredSkipped: number;
  /** Messages queued for processing now. */
  queued: number;
  /** Their payload bytes, and the bound beyond which a message is shed (maxQueuedBytes, `--queue-bytes`). */
  queuedBytes: number;
  queuedBytesLimit: number;
  /** Messages received from the broker (this process). */
  received: number;
  /** Statements whose signature and body checked (this process; before the chain check). */
  verified: number;
  /** Statements this process committed (readings counts the whole store's). */
  committed: number;
  /** Leaves this process sealed into batches. */
  sealed: number;
  /** Seconds the oldest message still queued has waited (0 when nothing is queued). */
  lagSeconds: number;
}


interface DeviceQueue {
  items: Incoming[];
  running: Promise<void> | undefined;
}

/** Most seqs one evidence bundle (exportBundle, GET /bundle) covers: about 14 MB of JSON with every body. */
export const MAX_BUNDLE_WINDOW = 10_000;
const GROUP_LIMIT = 256;
/** Bytes of all receive queues together beyond which a message is shed (IngestOptions.maxQueuedBytes). */
const DEFAULT_MAX_QUEUED_BYTES = 256 * 1024 * 1024;

export class IngestService {
  private readonly log: LogFn;
  private readonly batchIntervalMs: number;
  private readonly maxBatchSize: number;
  private readonly maxMessageBytes: number;
  private readonly signatures: SignatureThread;
  private readonly reorderLimit: number;
  private readonly ackDelayMs: number;
  private readonly maxQueuedPerDevice: number;
  private readonly maxQueuedTotal: number;
  private readonly maxQueuedBytes: number;
  private readonly rejectsPerDevicePerSecond: number;
  private queuedTotal = 0;
  private queuedBytes = 0;
  /** Per device: the second and the rejections logged in it (rate limit). */
  private readonly rejectWindows = new Map<string, { second: number; n: number; suppressed: number }>();

  // Caches of what the store holds (the store is the truth, re-read before each decision on a device: another
  // worker sharing a PostgreSQL store may have moved it). They serve the synchronous accessors and stats.
  private readonly registry = new KeyRegistry();
  private readonly devicesById = new Map<string, DeviceRow>();
  /** Per device: the tail of the work serialised on it (statement groups, enrolment, revocation). */
  private readonly deviceLocks = new Map<string, Promise<void>>();
  private readonly heads = new Map<string, Head>();
  /** Per device: the batch position of its head statement when that is in a device-level batch (seq-tagged). */
  private readonly headBatches = new Map<string, HeadBatch & { seq: number }>();
  private readonly queues = new Map<string, DeviceQueue>();
  private readonly ackTimers = new Map<string, NodeJS.Timeout>();
  /** Pending leaves and held statements in the store, as last counted (stats and the size trigger). */
  private pendingCount = 0;
  private heldCount = 0;
  private readonly anchors: AnchorDriver;
  /** State of each non-final batch's anchor, as last seen (for health). */
  private readonly flushWaitMs = 30_000;

  private client: MqttClient | undefined;
  private oversizePackets = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Reads non-final anchors again between batch cuts (a batch interval of minutes must not hold finality back). */
  private anchorTimer: NodeJS.Timeout | undefined;
  private anchorQueued = false;
  private batchChain: Promise<void> = Promise.resolve();
  private tickQueued = false;
  private stopping = false;
  /** Opened by openOffline: never cuts or anchors. */
  private offline = false;

  private readonly counters = {
    received: 0,
    verified: 0,
    committed: 0,
    sealed: 0,
    readings: 0,
    batches: 0,
    duplicates: 0,
    shed: 0,
    rejectsSuppressed: 0,
    anchoredSkipped: 0,
    rejected: {} as Record<string, number>,
  };
  /** Batches whose `anchored` confirmations are being signed and published (confirmAnchoredBeside). */
  private readonly anchoredSends = new Set<Promise<void>>();

  private constructor(
    private readonly options: IngestOptions,
    private readonly store: IngestStore,
  ) {
    this.log = toLogFn(options.log);
    this.batchIntervalMs = positive(options.batchIntervalMs ?? 5000, 'batchIntervalMs');
    this.maxBatchSize = positive(options.maxBatchSize ?? 4096, 'maxBatchSize');
    this.maxMessageBytes = positive(options.maxMessageBytes ?? 65536, 'maxMessageBytes');
    this.signatures = SignatureThread.create(positive(options.maxVerifyInFlight ?? 64, 'maxVerifyInFlight'), this.log);
    this.reorderLimit = positive(options.reorderLimit ?? 1024, 'reorderLimit');
    this.ackDelayMs = options.ackDelayMs ?? 5;
    this.anchors = new AnchorDriver({
      store,
      anchorer: options.anchorer,
      confirmations: positive(options.anchorConfirmations ?? 1, 'anchorConfirmations'),
      stuckMs: positive(options.anchorStuckMs ?? 60_000, 'anchorStuckMs'),
      log: this.log,
      onFinal: async (row) => this.confirmAnchoredBeside(row),
      worker: options.workerName ?? `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`,
      ...(options.anchorLeaseMs === undefined ? {} : { leaseMs: positive(options.anchorLeaseMs, 'anchorLeaseMs') }),
    });
    this.maxQueuedPerDevice = positive(options.maxQueuedPerDevice ?? 4096, 'maxQueuedPerDevice');
    this.maxQueuedTotal = positive(options.maxQueuedTotal ?? 65_536, 'maxQueuedTotal');
    this.maxQueuedBytes = positive(options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES, 'maxQueuedBytes');
    this.rejectsPerDevicePerSecond = positive(options.rejectsPerDevicePerSecond ?? 20, 'rejectsPerDevicePerSecond');
  }

  static async start(options: IngestOptions): Promise<IngestService> {
    if (typeof options.issuer !== 'string' || options.issuer === '') throw new TypeError('options.issuer must be a non-empty string');
    const store = await openStore(options.store ?? options.dataDir);
    if (options.shareGroup !== undefined && store.kind !== 'postgres') {
      await store.close();
      throw new IngestError(
        'INGEST_SHARE_NEEDS_SHARED_STORE',
        `--share runs several workers on one store: give --store postgres://... (a ${store.kind} store belongs to one process)`,
        { where: { store: store.location, shareGroup: options.shareGroup } },
      );
    }
    const service = new IngestService(options, store);
    try {
      await service.resume();
      await service.connect();
    } catch (e) {
      await service.shutdown();
      throw e;
    }
    service.timer = setInterval(() => service.tick(false), service.batchIntervalMs);
    service.anchorTimer = setInterval(() => service.anchorTick(), ANCHOR_POLL_MS);
    // Every non-final anchor is read again from the chain now, not only at the first interval.
    if (service.anchors.unanchored.length > 0) void service.exclusive(() => service.anchors.drive()).catch(() => {});
    service.log('info', 'ingest started', {
      dataDir: options.dataDir,
      store: `${store.kind} ${store.location}`,
      devices: service.devicesById.size,
      readings: service.counters.readings,
      pending: service.pendingCount,
      unanchored: service.anchors.unanchored.length,
    });
    return service;
  }

  /**
   * Opens the store for the operator's commands while ingest is not running (`stele ingest enrol`, `revoke`
   * without a running service): the same enrol/revoke code as the service, with no broker, no batching timer and
   * no anchoring. What they log stays pending and is batched and anchored at the next `start`.
   */
  static async openOffline(options: Pick<IngestOptions, 'dataDir' | 'store' | 'signer' | 'issuer' | 'log' | 'trustedInstallers'>): Promise<IngestService> {
    const offlineAnchorer: Anchorer = {
      chainId: 0,
      contract: '0x0000000000000000000000000000000000000000',
      rpcUrl: 'offline',
      anchor: () => Promise.reject(new IngestError('INGEST_STOPPED', 'ingest is opened offline: anchoring happens in `stele ingest run`')),
    };
    const full: IngestOptions = { ...options, mqttUrl: 'mqtt://offline', anchorer: offlineAnchorer };
    const store = await openStore(options.store ?? options.dataDir);
    const service = new IngestService(full, store);
    service.offline = true;
    try {
      await service.resume();
    } catch (e) {
      await service.shutdown();
      throw e;
    }
    return service;
  }

  /**
   * Enrols a device from a plain enrolment record (the operator's own path, no device signature and no installer:
   * tests, the demo, fleets provisioned by the operator). Ingest logs an enrolment statement (FORMAT.md §13.2)
   * whose `request` is SHA-256 of the record's deterministic CBOR and whose `installer` is empty. Every field is
   * checked by core's checkEnrolmentRecord (INGEST_ENROL_ERROR, its cause the ENROLMENT_ code). Idempotent for the
   * same key; a different key for a device that still has a valid key, or a kid already enrolled anywhere, is
   * INGEST_ENROL_CONFLICT. After a revocation the device may be enrolled again with a new key, valid from its
   * committed head + 1.
   */
  async enrol(record: EnrolmentRecord): Promise<void> {
    let checked: CheckedRecord;
    try {
      checked = checkEnrolmentRecord(record);
    } catch (cause) {
      throw enrolError(cause);
    }
    await this.enrolChecked(checked, sha256(encodeCbor(plainRecord(checked.record))), new Uint8Array(0));
  }

  /**
   * Enrols a device from the countersigned enrolment request `stele gateway provision` wrote: core's
   * verifyEnrolmentRequest checks the device signature (proof of possession), the installer's countersignature
   * against `trustedInstallers`, the attestation and every field. The enrolment statement's `request` is SHA-256
   * of the file bytes, its `installer` the installer's key id. A file that does not check is INGEST_ENROL_ERROR
   * (its cause and `where.code` hold the ENROLMENT_ code).
   */
  async enrolRequest(fileBytes: Uint8Array): Promise<{ record: EnrolmentRecord; installerKid: string }> {
    if (!(fileBytes instanceof Uint8Array)) throw new TypeError('fileBytes must be a Uint8Array');
    let verified;
    try {
      verified = await verifyEnrolmentRequest(fileBytes, { trustedInstallers: this.options.trustedInstallers ?? [] });
    } catch (cause) {
      throw enrolError(cause);
    }
    const checked = checkEnrolmentRecord(verified.record);
    await this.enrolChecked(checked, sha256(fileBytes), fromBase64Url(verified.installerKid), fileBytes);
    return { record: verified.record, installerKid: verified.installerKid };
  }

  private async enrolChecked({ record, publicKey, kid }: CheckedRecord, requestDigest: Uint8Array, installer: Uint8Array, requestFile?: Uint8Array): Promise<void> {
    if (this.stopping) throw new IngestError('INGEST_STOPPED', 'ingest is stopped');
    await this.withDeviceLock(record.deviceId, async () => {
      await this.refreshDevice(record.deviceId);
      const state = this.registry.draft(record.deviceId);
      if (state !== undefined) {
        if (findSpan(state.keys, kid) !== undefined) return; // the same key again: nothing to do
        if (currentKey(state) !== undefined) {
          throw new IngestError('INGEST_ENROL_CONFLICT', 'device already enrolled with another key', { where: { deviceId: record.deviceId } });
        }
      } else if (this.devicesById.has(record.deviceId)) {
        const known = this.devicesById.get(record.deviceId)!;
        if (equalBytes(known.publicKey, publicKey)) return;
        throw new IngestError('INGEST_ENROL_CONFLICT', 'device already enrolled with another key', { where: { deviceId: record.deviceId } });
      }
      const other = this.registry.deviceOfKid(kid);
      if (other !== undefined) {
        throw new IngestError('INGEST_ENROL_CONFLICT', 'key already enrolled for another device', { where: { deviceId: record.deviceId, other } });
      }
      if (!this.devicesById.has(record.deviceId)) {
        // The record a bundle shows as `device` is the first enrolment; later keys travel as lifecycle statements.
        const row: DeviceRow = { record, publicKey, kid };
        await this.store.putDevice(row);
        this.devicesById.set(record.deviceId, row);
      }
      const from = this.head(record.deviceId).seq + 1;
      await this.logEnrolment(state ?? { deviceId: record.deviceId, keys: [], chained: [], log: 0 }, publicKey, record.keyBackend, requestDigest, from, record.site ?? '', installer, requestFile);
      this.log('info', 'device enrolled', { device: record.deviceId, kid: toBase64Url(kid), keyBackend: record.keyBackend, from, installer: installer.length === 0 ? undefined : toBase64Url(installer) });
    });
  }

  /**
   * Revokes a device key (default: the key in use), effective now: ingest logs a revocation statement signed by
   * its own key with `after` = the device's committed head, so statements under that key with a later seq are
   * rejected (KEY_REVOKED_ERROR) and fail verification. Idempotent for a key already revoked.
   * INGEST_UNKNOWN_DEVICE / INGEST_REVOKE_ERROR when there is no such device or key.
   */
  async revoke(deviceId: string, options: { kid?: Uint8Array; reason?: string } = {}): Promise<{ kid: Uint8Array; after: number }> {
    if (this.stopping) throw new IngestError('INGEST_STOPPED', 'ingest is stopped');
    const reason = options.reason ?? 'revoked by the operator';
    if (typeof reason !== 'string') throw new TypeError('reason must be a string');
    return this.withDeviceLock(deviceId, async () => {
      await this.refreshDevice(deviceId);
      const state = this.registry.draft(deviceId);
      if (state === undefined) throw new IngestError('INGEST_UNKNOWN_DEVICE', 'no such enrolled device', { where: { deviceId } });
      const span = options.kid === undefined ? currentKey(state) : findSpan(state.keys, options.kid);
      if (span === undefined) throw new IngestError('INGEST_REVOKE_ERROR', 'no such key to revoke for this device', { where: { deviceId } });
      if (span.revokedAfter !== undefined) return { kid: span.kid, after: span.revokedAfter };
      const after = this.head(deviceId).seq;
      span.revokedAfter = after;
      await this.logIngestStatement(state, { type: 'revocation', device: deviceId, kid: span.kid, after, reason, time: Date.now() });
      this.log('warn', 'device key revoked', { device: deviceId, kid: toBase64Url(span.kid), after, reason });
      return { kid: span.kid, after };
    });
  }

  /**
   * What a reinstalled gateway resumes from (docs/keys.md, "Reinstall"): the device's committed head statement and
   * a receipt for it, signed by the ingest key (FORMAT.md §5). The gateway checks the statement under its own key
   * and the receipt under the ingest key it pinned, so it never continues from an unsigned claim. A head not in a
   * batch yet is INGEST_NOT_ANCHORED (409): ask again after the next batch. Seq 0 (nothing committed) has no statement.
   */
  async headProof(deviceId: string): Promise<{ seq: number; digest: Uint8Array; statement?: Uint8Array; receipt?: Uint8Array }> {
    if (this.stopping) throw new IngestError('INGEST_STOPPED', 'ingest is stopped');
    if (!this.devicesById.has(deviceId)) throw new IngestError('INGEST_UNKNOWN_DEVICE', 'no such enrolled device', { where: { deviceId } });
    await this.idle();
    const head = this.head(deviceId);
    if (head.seq === 0) return { seq: 0, digest: head.digest };
    const row = await this.store.getEntry(deviceId, head.seq);
    if (row === undefined) throw new IngestError('INGEST_NOT_FOUND', 'the head entry is not stored', { where: { deviceId, seq: head.seq } });
    if (row.batchId === undefined || row.leafIndex === undefined) {
      throw new IngestError('INGEST_NOT_ANCHORED', 'the head is not in a batch yet: ask again after the next batch', { where: { deviceId, seq: head.seq } });
    }
    const batch = await this.store.getBatch(row.batchId);
    if (batch === undefined) throw new IngestError('INGEST_STORE_ERROR', 'entry names a missing batch', { where: { deviceId, batchId: row.batchId } });
    const path = new BatchProofs(batch.leafHashes).inclusionProof(row.leafIndex);
    const receipt = encodeReceipt(batch.protectedBytes, batch.signature, { treeSize: batch.size, leafIndex: row.leafIndex, path });
    return { seq: head.seq, digest: head.digest, statement: row.statement, receipt };
  }

  /** The ingest public key and its kid: what gateways pin (FORMAT.md §11.1) and bundles carry. */
  ingestKey(): { publicKey: Uint8Array; kid: Uint8Array } {
    return { publicKey: this.options.signer.publicKey.slice(), kid: this.options.signer.keyId.slice() };
  }

  /** The device's key timeline as ingest holds it (FORMAT.md §13.5), or undefined for an unknown device. */
  keys(deviceId: string): Readonly<DeviceKeys> | undefined {
    return this.registry.get(deviceId);
  }

  private async logEnrolment(
    state: DeviceKeys,
    publicKey: Uint8Array,
    backend: EnrolmentRecord['keyBackend'],
    request: Uint8Array,
    from: number,
    site: string,
    installer: Uint8Array,
    requestFile?: Uint8Array,
  ): Promise<void> {
    const kid = keyIdOf(publicKey);
    state.keys.push({ kid, publicKey, backend, from, via: 'enrolment' });
    // The request file goes into the store with its statement (one write), for bundles to carry (FORMAT.md §13.6).
    const enrolmentRequest = requestFile === undefined ? undefined : { digest: request, file: requestFile };
    await this.logIngestStatement(state, { type: 'enrolment', device: state.deviceId, kid, key: publicKey, backend, request, from, time: Date.now(), site, installer }, enrolmentRequest);
  }

  /**
   * Signs a lifecycle statement with the ingest key and commits it as the next entry of the device's lifecycle
   * log, together with the registry row `state` (which must already hold its effect): one atomic write. The
   * statement becomes a pending Merkle leaf like any reading.
   */
  private async logIngestStatement(state: DeviceKeys, body: LifecycleBody, enrolmentRequest?: { digest: Uint8Array; file: Uint8Array }): Promise<void> {
    const statement = await signLifecycleStatement(body, this.options.signer);
    const n = state.log + 1;
    const next: DeviceKeys = { ...state, log: n };
    const leaves = await this.store.commit(
      lifecycleLogId(state.deviceId),
      [{ seq: n, entry: { statement, receivedAt: Date.now() }, leafHash: hashLeaf(statement) }],
      { seq: n, digest: sha256(statement) },
      enrolmentRequest === undefined ? { keys: next } : { keys: next, enrolmentRequest },
    );
    this.registry.adopt(next);
    this.pendingCount += leaves.length;
    if (this.pendingCount >= this.maxBatchSize) this.tick(true);
  }

  /** Runs `work` after every earlier piece of work on `deviceId` (statement groups, enrolment, revocation). */
  private withDeviceLock<T>(deviceId: string, work: () => Promise<T>): Promise<T> {
    const before = this.deviceLocks.get(deviceId) ?? Promise.resolve();
    const run = before.then(work);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.deviceLocks.set(deviceId, tail);
    void tail.then(() => {
      if (this.deviceLocks.get(deviceId) === tail) this.deviceLocks.delete(deviceId);
    });
    return run;
  }

  stats(): IngestStats {
    return {
      readings: this.counters.readings,
      batches: this.counters.batches,
      anchored: this.anchors.anchored,
      rejected: { ...this.counters.rejected },
      duplicates: this.counters.duplicates,
      pending: this.pendingCount,
      buffered: this.heldCount,
      anchorFailures: this.anchors.failures,
      anchorsLost: this.anchors.lost,
      shed: this.counters.shed,
      rejectsSuppressed: this.counters.rejectsSuppressed,
      anchoredSkipped: this.counters.anchoredSkipped,
      queued: this.queuedTotal,
      queuedBytes: this.queuedBytes,
      queuedBytesLimit: this.maxQueuedBytes,
      received: this.counters.received,
      verified: this.counters.verified,
      committed: this.counters.committed,
      sealed: this.counters.sealed,
      lagSeconds: this.lagSeconds(),
    };
  }

  /** Age of the oldest message queued and not processed yet, in seconds. */
  private lagSeconds(): number {
    let oldest = Infinity;
    for (const q of this.queues.values()) {
      const first = q.items[0];
      if (first !== undefined && first.receivedAt < oldest) oldest = first.receivedAt;
    }
    return oldest === Infinity ? 0 : Math.max(0, (Date.now() - oldest) / 1000);
  }

  /** The committed head of a device as this worker last read it (seq 0 and 32 zero bytes before its first reading). */
  head(deviceId: string): Head {
    return this.heads.get(deviceId) ?? { seq: 0, digest: GENESIS_PREV };
  }

  /**
   * Waits for the statements received so far to be processed, then cuts every pending leaf into batches, signs
   * them and anchors every unanchored batch. Rejects with the anchorer's error when a batch could not be anchored
   * (it stays stored and is retried on the next tick).
   */
  async flush(): Promise<void> {
    if (this.stopping) throw new IngestError('INGEST_STOPPED', 'ingest is stopped');
    await this.idle();
    await this.exclusive(async () => {
      await this.cutPending();
      await this.anchors.drive();
    });
    // Wait (bounded) for inclusion and finality when the chain mines on its own schedule.
    const until = Date.now() + this.flushWaitMs;
    while (this.anchors.unanchored.length > 0 && this.anchors.lastError === undefined && Date.now() < until && !this.stopping) {
      await new Promise((r) => setTimeout(r, 100));
      await this.exclusive(() => this.anchors.drive());
    }
    if (this.anchors.unanchored.length > 0) throw this.anchors.lastError ?? new IngestError('INGEST_NOT_ANCHORED', 'batches not final on chain yet', { where: { unanchored: this.anchors.unanchored.length } });
    await Promise.all([...this.anchoredSends]); // and their `anchored` confirmations sent
  }

  /**
   * FORMAT.md §7 evidence for seq firstSeq..lastSeq of a device; every entry must be in an anchored batch. At most
   * {@link MAX_BUNDLE_WINDOW} seqs (INGEST_WINDOW_TOO_LARGE beyond, before anything is read); the store is read
   * with one bounded iterator, so memory follows the entries stored, not the numbers asked for.
   */
  async exportBundle(deviceId: string, firstSeq: number, lastSeq: number): Promise<EvidenceBundleJson> {
    if (!Number.isSafeInteger(firstSeq) || firstSeq < 1) throw new RangeError('firstSeq must be an integer >= 1');
    if (!Number.isSafeInteger(lastSeq) || lastSeq < firstSeq) throw new RangeError('lastSeq must be an integer >= firstSeq');
    if (lastSeq - firstSeq + 1 > MAX_BUNDLE_WINDOW) {
      throw new IngestError('INGEST_WINDOW_TOO_LARGE', `a bundle holds at most ${MAX_BUNDLE_WINDOW} seqs`, { where: { deviceId, firstSeq, lastSeq, max: MAX_BUNDLE_WINDOW } });
    }
    const device = this.devicesById.get(deviceId);
    if (device === undefined) throw new IngestError('INGEST_UNKNOWN_DEVICE', 'no such enrolled device', { where: { deviceId } });
    const rows = await this.store.getEntries(deviceId, firstSeq, lastSeq);
    const batches = new Map<number, { row: NonNullable<Awaited<ReturnType<IngestStore['getBatch']>>>; proofs: BatchProofs; anchor: AnchorRef }>();
    /** The receipt of a committed entry; every entry of a bundle must be in an anchored batch. */
    const receiptOf = async (row: Awaited<ReturnType<IngestStore['getEntry']>>, where: Record<string, unknown>): Promise<{ batchId: number; leafIndex: number; receipt: Uint8Array }> => {
      if (row === undefined) throw new IngestError('INGEST_NOT_FOUND', 'entry not committed', { where });
      if (row.batchId === undefined || row.leafIndex === undefined) throw new IngestError('INGEST_NOT_ANCHORED', 'entry not in a batch yet', { where });
      let batch = batches.get(row.batchId);
      if (batch === undefined) {
        const b = await this.store.getBatch(row.batchId);
        if (b === undefined) throw new IngestError('INGEST_STORE_ERROR', 'entry names a missing batch', { where: { ...where, batchId: row.batchId } });
        if (b.anchor === undefined) throw new IngestError('INGEST_NOT_ANCHORED', 'batch not anchored yet', { where: { ...where, batchId: row.batchId } });
        batch = { row: b, proofs: new BatchProofs(b.leafHashes), anchor: b.anchor };
        batches.set(row.batchId, batch);
      }
      const path = batch.proofs.inclusionProof(row.leafIndex);
      const receipt = encodeReceipt(batch.row.protectedBytes, batch.row.signature, { treeSize: batch.row.size, leafIndex: row.leafIndex, path });
      return { batchId: row.batchId, leafIndex: row.leafIndex, receipt };
    };
    // Lifecycle statements (FORMAT.md §13.6): every one of the device up to now, wherever the window is, so that
    // the verifier knows which key was valid for which seq. Chained ones hold their seq in the window instead of
    // an entry.
    const keys = this.registry.get(deviceId);
    const chained = new Set(keys?.chained ?? []);
    const lifecycle: { batchId: number; leafIndex: number; statement: Uint8Array; receipt: Uint8Array; request?: Uint8Array }[] = [];
    for (let n = 1; n <= (keys?.log ?? 0); n++) {
      const row = await this.store.getEntry(lifecycleLogId(deviceId), n);
      const item: (typeof lifecycle)[number] = { ...(await receiptOf(row, { deviceId, lifecycle: n })), statement: row!.statement };
      // An enrolment from a request file carries that file, so a verifier can check its attestation (§14.5).
      const body = parseLifecycleStatement(row!.statement).body;
      if (body.type === 'enrolment') {
        const request = await this.store.getEnrolmentRequest(body.request);
        if (request !== undefined) item.request = request;
      }
      lifecycle.push(item);
    }
    for (const seq of chained) {
      const row = await this.store.getEntry(deviceId, seq);
      lifecycle.push({ ...(await receiptOf(row, { deviceId, seq })), statement: row!.statement });
    }
    lifecycle.sort((a, b) => a.batchId - b.batchId || a.leafIndex - b.leafIndex);
    const entries: EvidenceBundleJson['entries'] = [];
    let expected = firstSeq;
    for (const [seq, row] of rows) {
      if (seq !== expected) throw new IngestError('INGEST_NOT_FOUND', 'entry not committed', { where: { deviceId, seq: expected } });
      expected = seq + 1;
      if (chained.has(seq)) continue;
      const { batchId, receipt } = await receiptOf(row, { deviceId, seq });
      const entry: EvidenceBundleJson['entries'][number] = { seq, batchId, statement: toBase64Url(row!.statement), receipt: toBase64Url(receipt) };
      if (row!.reading !== undefined) entry.reading = toBase64Url(row!.reading);
      entries.push(entry);
    }
    if (expected !== lastSeq + 1) throw new IngestError('INGEST_NOT_FOUND', 'entry not committed', { where: { deviceId, seq: expected } });
    return {
      format: 'stele-evidence/1',
      createdAt: new Date().toISOString(),
      device: bundleDevice(device.record),
      ingest: {
        issuer: this.options.issuer,
        publicKey: toBase64Url(this.options.signer.publicKey),
        kid: toBase64Url(this.options.signer.keyId),
      },
      window: { firstSeq, lastSeq },
      entries,
      ...(lifecycle.length === 0
        ? {}
        : { lifecycle: lifecycle.map((l) => ({ batchId: l.batchId, statement: toBase64Url(l.statement), receipt: toBase64Url(l.receipt), ...(l.request === undefined ? {} : { request: toBase64Url(l.request) }) })) }),
      batches: [...batches.values()]
        .sort((a, b) => a.row.batchId - b.row.batchId)
        .map((b) => ({ batchId: b.row.batchId, size: b.row.size, root: `0x${toHex(b.row.root)}`, anchor: b.anchor })),
    };
  }

  /**
   * Readings whose `raw` field names `frameDigest` (SHA-256 of the exact instrument frame, e.g. an HJ 212 frame
   * the authority's platform also holds). Only readings received in full mode are indexed.
   */
  async findByFrameDigest(frameDigest: Uint8Array): Promise<{ deviceId: string; seq: number }[]> {
    return this.store.findByRawDigest(frameDigest);
  }

  /** FORMAT.md §7 evidence for each reading that names `frameDigest` (one single-entry bundle per reading). */
  async exportBundlesByFrameDigest(frameDigest: Uint8Array): Promise<EvidenceBundleJson[]> {
    const refs = await this.store.findByRawDigest(frameDigest);
    const out: EvidenceBundleJson[] = [];
    for (const r of refs) out.push(await this.exportBundle(r.deviceId, r.seq, r.seq));
    return out;
  }

  /** Ids of the enrolled devices. */
  deviceIds(): string[] {
    return [...this.devicesById.keys()];
  }

  /**
   * Committed entries of a device in firstSeq..lastSeq (at most {@link MAX_BUNDLE_WINDOW} per call): the reading
   * bytes (absent for hash-only entries and chained lifecycle statements), when ingest received it, and whether its
   * batch is anchored (final) so that it can go into a bundle. For the alert rules (alerts.ts).
   */
  async storedReadings(deviceId: string, firstSeq: number, lastSeq: number): Promise<{ seq: number; reading?: Uint8Array; receivedAt: number; inBatch: boolean }[]> {
    if (lastSeq - firstSeq + 1 > MAX_BUNDLE_WINDOW) throw new RangeError(`at most ${MAX_BUNDLE_WINDOW} seqs per call`);
    const rows = await this.store.getEntries(deviceId, firstSeq, lastSeq);
    return rows.map(([seq, row]) => ({ seq, ...(row.reading === undefined ? {} : { reading: row.reading }), receivedAt: row.receivedAt, inBatch: row.batchId !== undefined }));
  }

  /**
   * A device's statements in the time window [fromMs, toMs) on one clock (store/types.ts TimeAxis), in (time,
   * seq) order, at most `limit` (default and cap {@link MAX_BUNDLE_WINDOW}). `device`: the reading's own `time`,
   * known only for readings received in full (a hash-only device's readings stay on its gateway, so it is found
   * by receive time only); `received`: ingest's clock. Neither orders anything (order is seq, FORMAT.md §8).
   */
  async readingsByTime(deviceId: string, by: TimeAxis, fromMs: number, toMs: number, limit = MAX_BUNDLE_WINDOW): Promise<TimeRef[]> {
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_BUNDLE_WINDOW) throw new RangeError(`limit must be an integer in 1..${MAX_BUNDLE_WINDOW}`);
    if (!this.devicesById.has(deviceId) && (await this.store.getDevice(deviceId)) === undefined) {
      throw new IngestError('INGEST_UNKNOWN_DEVICE', 'no such enrolled device', { where: { deviceId } });
    }
    return this.store.findByTime(deviceId, { by, fromMs, toMs, limit });
  }

  /**
   * FORMAT.md §7 evidence for a time window of one device (a clock hour, a day): the contiguous seq range from the
   * lowest to the highest seq whose time is in [fromMs, toMs). Completeness is by seq, so the bundle also holds any
   * reading in between whose (untrusted) time lies outside the window, and a gap is reported as for a seq window.
   * INGEST_NOT_FOUND when no statement falls in the window; INGEST_WINDOW_TOO_LARGE beyond MAX_BUNDLE_WINDOW seqs.
   */
  async exportBundleByTime(deviceId: string, by: TimeAxis, fromMs: number, toMs: number): Promise<EvidenceBundleJson> {
    const refs = await this.store.findByTime(deviceId, { by, fromMs, toMs, limit: MAX_BUNDLE_WINDOW + 1 });
    if (refs.length === 0) throw new IngestError('INGEST_NOT_FOUND', 'no statement of the device in this time window', { where: { deviceId, by, fromMs, toMs } });
    const seqs = refs.map((r) => r.seq);
    const first = Math.min(...seqs);
    const last = Math.max(...seqs);
    if (refs.length > MAX_BUNDLE_WINDOW || last - first + 1 > MAX_BUNDLE_WINDOW) {
      throw new IngestError('INGEST_WINDOW_TOO_LARGE', `a bundle holds at most ${MAX_BUNDLE_WINDOW} seqs; ask for a shorter window`, { where: { deviceId, by, fromMs, toMs, first, last } });
    }
    return this.exportBundle(deviceId, first, last);
  }

  /** Where alert notifications stand (ingest/src/notify/): the delivery records kept in the store. */
  alertDeliveryStore(): AlertDeliveryStore {
    return this.store;
  }

  /**
   * Statements held ahead of the device's head (a gap before them), decoded from the message as received, at most
   * `limit` from `fromSeq`. Each was checked on arrival (key valid at its seq, signature) before it was held.
   */
  async heldStatements(deviceId: string, fromSeq: number, limit: number): Promise<{ seq: number; statement: Uint8Array; reading?: Uint8Array; receivedAt: number }[]> {
    const out: { seq: number; statement: Uint8Array; reading?: Uint8Array; receivedAt: number }[] = [];
    for (const h of await this.store.listHeld(deviceId, fromSeq, limit)) {
      try {
        const m = decodeStatementMessage(h.payload, h.payload.byteLength);
        out.push({ seq: h.seq, statement: m.statement, ...(m.reading === undefined ? {} : { reading: m.reading }), receivedAt: h.receivedAt });
      } catch {
        continue; // held as received and judged again when its turn comes: an undecodable one is dropped then
      }
    }
    return out;
  }

  /** Statements recorded as forks of a device (a second, different statement for a committed seq). */
  async forks(deviceId: string): Promise<ForkRow[]> {
    return this.store.listForks(deviceId);
  }

  /** The same evidence as `exportBundle`, decoded (core's `EvidenceBundle`, what `verifyBundle` takes). */
  async exportEvidence(deviceId: string, firstSeq: number, lastSeq: number): Promise<EvidenceBundle> {
    return parseBundle(await this.exportBundle(deviceId, firstSeq, lastSeq));
  }

  /**
   * Stops taking messages, finishes what is in hand (queued statements, a batch being cut or anchored, pending
   * acks), disconnects and closes the store. Pending leaves stay in the store for the next start.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    if (this.anchorTimer !== undefined) clearInterval(this.anchorTimer);
    await this.idle();
    await this.batchChain;
    await Promise.all([...this.anchoredSends]);
    for (const [device, t] of this.ackTimers) {
      clearTimeout(t);
      this.ackTimers.delete(device);
      await this.sendAck(device);
    }
    await this.shutdown();
    this.log('info', 'ingest stopped', {});
  }

  // ---------------------------------------------------------------- start-up

  private async resume(): Promise<void> {
    for (const keys of await this.store.listDeviceKeys()) this.registry.adopt(keys);
    for (const row of await this.store.listDevices()) this.devicesById.set(row.record.deviceId, row);
    for (const [device, head] of await this.store.listHeads()) {
      if (isLifecycleLogId(device)) continue; // a device's lifecycle log, not its chain (registry/registry.ts)
      this.heads.set(device, head);
      this.counters.readings += head.seq;
    }
    this.pendingCount = await this.store.countPending();
    this.heldCount = await this.store.countAllHeld();
    this.anchors.unanchored = await this.store.listUnanchoredIds();
    this.counters.batches = await this.store.batchCount();
    this.anchors.anchored = this.counters.batches - this.anchors.unanchored.length;
    // Devices enrolled before lifecycle statements existed, or straight into the store while ingest was down
    // (`stele ingest enrol` without --url): log their enrolment now. Their key was the only one since seq 1.
    for (const row of this.devicesById.values()) {
      if (this.registry.get(row.record.deviceId) !== undefined) continue;
      await this.logEnrolment(
        { deviceId: row.record.deviceId, keys: [], chained: [], log: 0 },
        row.publicKey,
        row.record.keyBackend,
        sha256(encodeCbor(plainRecord(row.record))),
        1,
        row.record.site ?? '',
        new Uint8Array(0),
      );
      this.log('info', 'enrolment logged for a device enrolled without a statement', { device: row.record.deviceId });
    }
  }

  private async connect(): Promise<void> {
    this.client = await connectBroker({
      mqttUrl: this.options.mqttUrl,
      broker: this.options.broker ?? {},
      ...(this.options.clientId === undefined ? {} : { clientId: this.options.clientId }),
      ...(this.options.shareGroup === undefined ? {} : { shareGroup: this.options.shareGroup }),
      maxPacketBytes: positive(this.options.maxPacketBytes ?? this.maxMessageBytes + 1024, 'maxPacketBytes'),
      onOversize: (sizeBytes) => this.noteOversizePacket(sizeBytes),
      onMessage: (topic, payload) => this.onMessage(topic, payload),
      log: this.log,
    });
  }

  private async shutdown(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client !== undefined) await client.endAsync().catch(() => {});
    await this.signatures.close();
    await this.store.close();
  }

  // ---------------------------------------------------------------- receiving

  /** A PUBLISH over maxPacketBytes: its body was dropped unread; mqtt.js sees it with an empty payload. */
  private noteOversizePacket(sizeBytes: number): void {
    this.oversizePackets++;
    this.log('warn', 'oversize MQTT packet dropped before reading its body', { sizeBytes, code: 'INGEST_OVERSIZE' });
  }

  private onMessage(topic: string, payload: Uint8Array): void {
    if (this.stopping) return; // not acked: the gateway resends after our restart
    const device = parseDeviceTopic(topic)?.device; // four levels, a device level (FORMAT.md §11); else ignored
    if (device === undefined) return;
    this.counters.received++;
    if (payload.byteLength === 0) {
      // an oversize packet cut to its topic (packet-limit.ts), or an empty message: never a statement
      this.reject(device, 'INGEST_OVERSIZE', 0, 'empty or oversize message');
      return;
    }
    const receivedAt = Date.now(); // ingest clock (FORMAT.md §8)
    // refused before it is copied or queued
    if (payload.byteLength > this.maxMessageBytes) {
      this.reject(device, 'INGEST_OVERSIZE', 0, `${payload.byteLength} bytes`);
      return;
    }
    let q = this.queues.get(device);
    if (q === undefined) {
      q = { items: [], running: undefined };
      this.queues.set(device, q);
    }
    if (q.items.length >= this.maxQueuedPerDevice || this.queuedTotal >= this.maxQueuedTotal || this.queuedBytes + payload.byteLength > this.maxQueuedBytes) {
      // shed, not acked: the gateway resends from its acked mark
      this.counters.shed++;
      this.reject(device, 'INGEST_QUEUE_FULL', 0, `receive queue full (${q.items.length} for this device, ${this.queuedTotal} in all, ${this.queuedBytes} bytes)`);
      if (q.items.length === 0 && q.running === undefined) this.queues.delete(device);
      return;
    }
    // A copy: held statements may outlive the socket buffer the payload was sliced from. Buffer.from copies a small
    // message into Node's shared pool (one allocation per 8 KiB, not per message); a plain Uint8Array view of it is
    // kept (what is decoded from it are views into it, and a Buffer's slice() would not copy).
    const own = Buffer.from(payload);
    q.items.push({ payload: new Uint8Array(own.buffer, own.byteOffset, own.byteLength), receivedAt });
    this.queuedTotal++;
    this.queuedBytes += payload.byteLength;
    if (q.running === undefined) q.running = this.drain(device, q);
  }

  /** Processing is serialised per device: one drain loop per device owns its head. */
  private async drain(device: string, q: DeviceQueue): Promise<void> {
    try {
      while (q.items.length > 0) {
        const group = q.items.splice(0, GROUP_LIMIT);
        this.queuedTotal -= group.length;
        for (const m of group) this.queuedBytes -= m.payload.byteLength;
        try {
          await this.withDeviceLock(device, async () => {
            // Another worker sharing the store committed this device first: judge the group again against the
            // head it left (what it committed becomes duplicates, re-acked). Bounded: a store that keeps moving
            // under us leaves the rest to the gateway's resend.
            for (let attempt = 1; ; attempt++) {
              try {
                return await this.processGroup(device, group);
              } catch (e) {
                if (attempt >= 3 || !(e instanceof IngestError && e.code === 'INGEST_STORE_CONFLICT')) throw e;
                this.log('info', 'commit conflict, judging the group again', { device, attempt });
              }
            }
          });
        } catch (e) {
          // A store failure: nothing of this group was committed or acked; the gateway resends it.
          this.log('error', 'processing failed', { device, err: errorText(e), count: group.length });
        }
      }
    } finally {
      q.running = undefined;
      if (q.items.length === 0) this.queues.delete(device);
      else q.running = this.drain(device, q);
    }
  }

  private async idle(): Promise<void> {
    for (;;) {
      const running = [...this.queues.values()].map((q) => q.running).filter((p) => p !== undefined);
      if (running.length === 0) return;
      await Promise.all(running);
    }
  }

  /**
   * Re-reads what the store holds for a device (head, key registry row, enrolment record) into the caches: the
   * store is the truth, and another worker sharing it may have moved the device since.
   */
  private async refreshDevice(device: string): Promise<void> {
    const [head, keys, row] = await Promise.all([
      this.store.getHead(device),
      this.store.getDeviceKeys(device),
      this.devicesById.has(device) ? undefined : this.store.getDevice(device),
    ]);
    if (head !== undefined) this.heads.set(device, head);
    if (keys !== undefined) this.registry.adopt(keys);
    if (row !== undefined) this.devicesById.set(device, row);
  }

  private async processGroup(device: string, group: Incoming[], lookForHeld = false): Promise<void> {
    await this.refreshDevice(device);
    // Stateless checks (decode, key, signature, body) in parallel (verify/); the key-validity and chain checks are
    // sequential (commit/judge-group.ts), against a draft of the device's key registry that rotations in this
    // group update as they commit.
    const checks = await Promise.all(group.map((m) => this.safePrecheck(device, m)));
    for (const c of checks) if (c.ok) this.counters.verified++;
    const v = await judgeGroup(
      {
        store: this.store,
        registry: this.registry,
        reorderLimit: this.reorderLimit,
        heldKnown: lookForHeld || this.heldCount > 0,
        check: (d, m) => this.safePrecheck(d, m),
        reject: (d, code, seq, detail) => this.reject(d, code, seq, detail),
        recordFork: (d, c) => this.recordFork(d, c),
        headBatchOf: (d, head, candidates) => this.headBatchOf(d, head, candidates),
      },
      device,
      this.head(device),
      this.registry.draft(device),
      checks,
    );
    this.counters.duplicates += v.duplicates;
    const { commits, head, headBatch, draft, draftChanged, reAck, heldChanged } = v;

    if (commits.length > 0) {
      // A rotation or reinstall changes the registry: its row is written in the same atomic step as the chain.
      // Nothing committed on failure; nothing is acked, so the gateway resends.
      const leaves = await this.store.commit(device, commits, head, draftChanged && draft !== undefined ? { keys: draft } : {});
      this.heads.set(device, head);
      if (headBatch !== undefined) this.headBatches.set(device, headBatch);
      else this.headBatches.delete(device);
      if (draftChanged && draft !== undefined) this.registry.adopt(draft);
      this.pendingCount += leaves.length;
      this.counters.readings += leaves.length;
      this.counters.committed += leaves.length;
      this.log('debug', 'committed', { device, from: commits[0]!.seq, to: head.seq });
      this.scheduleAck(device);
      if (this.pendingCount >= this.maxBatchSize) this.tick(true);
    } else if (reAck) {
      this.scheduleAck(device);
    }
    if (heldChanged || this.heldCount > 0) this.heldCount = await this.store.countAllHeld();
    // Workers sharing a store: another one may have held the next seq after this group looked for held statements
    // and before this commit was durable; it then saw the old head and left the statement to us. Look again now
    // that the commit is durable (either that worker sees our head, or we see its hold), else the statement would
    // wait for the gateway's resend.
    // The same race the other way round: this group held a statement after the gap before it, and another worker
    // filled the gap after this group read the head and before the hold was durable (it then looked for held
    // statements too early). Read the store's head again now that the hold is durable.
    if (commits.length > 0 || heldChanged) {
      const stored = commits.length > 0 ? head.seq : ((await this.store.getHead(device))?.seq ?? 0);
      const [next] = await this.store.listHeldRun(device, stored + 1, 1);
      if (next !== undefined) await this.processGroup(device, [], true);
    }
  }

  /** precheck, where code failing on untrusted input is still a rejection, never a crash. */
  private safePrecheck(device: string, m: Incoming): Promise<Precheck> {
    return this.precheck(device, m).catch((e: unknown): Precheck => {
      this.log('error', 'unexpected error while checking a statement', { device, err: errorText(e) });
      return { ok: false, code: 'INGEST_MALFORMED', seq: 0, detail: errorText(e) };
    });
  }

  /**
   * The device-level batch position of the committed head statement, when a statement of this group may need it
   * (hash-only, inside a batch): from memory, or after a restart from the stored head statement.
   */
  private async headBatchOf(device: string, head: Head, candidates: Iterable<Checked>): Promise<(HeadBatch & { seq: number }) | undefined> {
    const known = this.headBatches.get(device);
    if (known !== undefined && known.seq === head.seq) return known;
    if (head.seq === 0 || ![...candidates].some((c) => c.prev === undefined)) return undefined;
    const row = await this.store.getEntry(device, head.seq);
    if (row === undefined || isLifecycleStatement(row.statement)) return undefined;
    try {
      const st = parseStatement(row.statement);
      return st.batch === undefined ? undefined : { seq: head.seq, root: st.batch.root, index: st.batch.index };
    } catch {
      return undefined; // committed statements parsed when they came; a store that changed is not ours to judge here
    }
  }

  private precheck(topicDevice: string, m: Incoming): Promise<Precheck> {
    return checkStatement({ maxMessageBytes: this.maxMessageBytes, registry: this.registry, verifySignature: (k, m2, sig) => this.signatures.verify(k, m2, sig) }, topicDevice, m);
  }

  private async recordFork(device: string, c: Checked): Promise<void> {
    const fork: Parameters<IngestStore['putFork']>[0] = { deviceId: device, seq: c.seq, statement: c.statement, receivedAt: c.receivedAt };
    if (c.reading !== undefined) fork.reading = c.reading;
    await this.store.putFork(fork);
    this.reject(device, 'FORK_ERROR', c.seq, 'a different statement holds this seq; recorded, not applied');
  }

  private reject(device: string, code: RejectCode, seq: number, detail?: string): void {
    this.counters.rejected[code] = (this.counters.rejected[code] ?? 0) + 1;
    // Rate limit per device: a flood of bad messages must not become a flood of log lines and broker traffic.
    const second = Math.floor(Date.now() / 1000);
    let w = this.rejectWindows.get(device);
    if (w === undefined || w.second !== second) {
      if (w !== undefined && w.suppressed > 0) this.log('warn', 'statement rejections suppressed (rate limit)', { device, suppressed: w.suppressed });
      if (this.rejectWindows.size > 10_000) this.rejectWindows.clear(); // bounded: device ids come from the network
      w = { second, n: 0, suppressed: 0 };
      this.rejectWindows.set(device, w);
    }
    if (++w.n > this.rejectsPerDevicePerSecond) {
      w.suppressed++;
      this.counters.rejectsSuppressed++;
      return;
    }
    const fields: Record<string, unknown> = { device, seq, code };
    if (detail !== undefined) fields['detail'] = detail;
    this.log('warn', 'statement rejected', fields);
    void this.publishBytes(deviceTopic(device, 'rejects'), encodeReject({ seq, code }));
  }

  private scheduleAck(device: string): void {
    if (this.ackTimers.has(device)) return;
    this.ackTimers.set(
      device,
      setTimeout(() => {
        this.ackTimers.delete(device);
        void this.sendAck(device);
      }, this.ackDelayMs),
    );
  }

  /** The signed `stored` confirmation of the device's committed head (FORMAT.md §11.1). */
  private async sendAck(device: string): Promise<void> {
    // The head the store holds (another worker sharing it may have moved it further); the cache if it cannot answer.
    const head = (await this.store.getHead(device).catch(() => undefined)) ?? this.heads.get(device);
    if (head === undefined || head.seq === 0) return;
    if (head.seq > (this.heads.get(device)?.seq ?? 0)) this.heads.set(device, head);
    await this.sendConfirmation('stored', device, head);
  }

  private async sendConfirmation(type: 'stored' | 'anchored', device: string, head: Head): Promise<void> {
    let bytes: Uint8Array;
    try {
      bytes = await signConfirmation({ type, device, upTo: head.seq, head: head.digest, issuedAt: Math.floor(Date.now() / 1000) }, this.options.signer);
    } catch (e) {
      // the key may be on a token that went away: the gateway resends and we confirm later
      this.log('error', 'cannot sign a confirmation', { device, type, err: errorText(e) });
      return;
    }
    await this.publishBytes(deviceTopic(device, 'acks'), bytes);
  }

  /**
   * After batch `row` is anchored: an `anchored` confirmation for each device with a reading in it, up to its
   * highest seq there (batches are cut in commit order and anchored in id order, so every lower seq of that
   * device is in this or an earlier anchored batch).
   */
  private async confirmAnchored(row: { leaves: { deviceId: string; seq: number }[] }): Promise<void> {
    const highest = new Map<string, number>();
    for (const l of row.leaves) if (!isLifecycleLogId(l.deviceId)) highest.set(l.deviceId, Math.max(highest.get(l.deviceId) ?? 0, l.seq));
    // A few devices at a time: one QoS 1 round trip each, not one after the other (500 devices in a batch under a
    // loaded broker took minutes that way).
    const devices = [...highest];
    for (let i = 0; i < devices.length; i += ANCHORED_CONFIRMATIONS_AT_ONCE) {
      await Promise.all(
        devices.slice(i, i + ANCHORED_CONFIRMATIONS_AT_ONCE).map(async ([device, seq]) => {
          const entry = await this.store.getEntry(device, seq);
          if (entry !== undefined) await this.sendConfirmation('anchored', device, { seq, digest: chainDigestOf(entry.statement) });
        }),
      );
    }
  }

  /**
   * The `anchored` confirmations of a batch made final, sent beside the batch work instead of inside it: they wait
   * for the broker (a PUBACK per device), and batch cuts and anchoring must not wait with them (under a deep
   * backlog on a loaded broker no batch was cut for minutes, docs/BENCHMARKS.md, fleet). They are idempotent and
   * only ever raise a gateway's anchored mark (a late or lost one is covered by the next batch's); beyond
   * {@link MAX_ANCHORED_SENDS} batches in flight one is skipped, counted and logged, so memory stays bounded when the
   * broker is gone.
   */
  private confirmAnchoredBeside(row: { batchId: number; leaves: { deviceId: string; seq: number }[] }): void {
    if (this.anchoredSends.size >= MAX_ANCHORED_SENDS) {
      this.counters.anchoredSkipped++;
      this.log('warn', 'anchored confirmations skipped: too many batches still being confirmed (the next batch covers them)', { batchId: row.batchId, inFlight: this.anchoredSends.size });
      return;
    }
    const send = this.confirmAnchored(row)
      .catch((e: unknown) => this.log('error', 'anchored confirmations failed', { batchId: row.batchId, err: errorText(e) }))
      .finally(() => this.anchoredSends.delete(send));
    this.anchoredSends.add(send);
  }

  private async publishBytes(topic: string, bytes: Uint8Array): Promise<void> {
    const client = this.client;
    if (client === undefined) return;
    try {
      await client.publishAsync(topic, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), { qos: 1 });
    } catch (e) {
      this.log('warn', 'publish failed', { topic, err: errorText(e) });
    }
  }

  // ---------------------------------------------------------------- batching and anchoring

  /** Serialises batch work; a timer tick is skipped while another one waits. */
  private exclusive(work: () => Promise<void>): Promise<void> {
    const run = this.batchChain.then(work);
    this.batchChain = run.catch((e: unknown) => this.log('error', 'batch work failed', { err: errorText(e) }));
    return run;
  }

  /** Between batch cuts: one more pass over the non-final anchors, when there are any and none is queued. */
  private anchorTick(): void {
    if (this.anchorQueued || this.tickQueued || this.stopping || this.offline || this.anchors.unanchored.length === 0) return;
    this.anchorQueued = true;
    void this.exclusive(async () => {
      this.anchorQueued = false;
      await this.anchors.drive();
    }).catch(() => {});
  }

  private tick(sizeTriggered: boolean): void {
    if (this.tickQueued || this.stopping || this.offline) return;
    this.tickQueued = true;
    void this.exclusive(async () => {
      this.tickQueued = false;
      if (sizeTriggered) {
        while (this.pendingCount >= this.maxBatchSize) if ((await this.cutBatch(this.maxBatchSize)) === undefined) break;
      } else {
        await this.cutPending();
      }
      await this.anchors.drive();
    }).catch(() => {});
  }

  /**
   * Cuts the leaves pending now (not those committed while cutting: chasing them would cut many tiny batches
   * under load) into batches of at most maxBatchSize.
   */
  private async cutPending(): Promise<void> {
    let left = await this.store.countPending();
    // Nothing left in the store (another worker sharing it sealed what this one committed): say so on /health.
    if (left === 0) this.pendingCount = 0;
    while (left > 0) {
      const row = await this.cutBatch(Math.min(left, this.maxBatchSize));
      if (row === undefined) break; // another worker sealed them
      left -= row.size;
    }
    // Workers sharing the store seal each other's leaves, so this worker's running count drifts from the store's
    // (a batch it seals holds leaves the other committed, and the other's seals never reach this count): after a
    // cut, /health says what the store holds.
    if (this.options.shareGroup !== undefined) this.pendingCount = await this.store.countPending();
  }

  /**
   * Seals, signs and stores one batch of at most `count` of the oldest pending leaves, in commit order. The store
   * takes the leaves and the batch id in one step, one sealer at a time (several workers may share it).
   */
  private async cutBatch(count: number): Promise<BatchRow | undefined> {
    const row = await sealNextBatch(this.store, this.options.signer, this.options.issuer, count);
    // Kept by increments (commits add after their write, seals subtract): setting it from a count taken while a
    // commit is between its write and its increment would count that commit twice. Re-counted when nothing was
    // left to seal (another worker sharing the store sealed them).
    if (row === undefined) {
      this.pendingCount = await this.store.countPending();
      return undefined;
    }
    this.pendingCount = Math.max(0, this.pendingCount - row.size);
    this.counters.sealed += row.size;
    this.anchors.unanchored.push(row.batchId);
    this.counters.batches = Math.max(this.counters.batches, row.batchId);
    this.log('info', 'batch cut', { batchId: row.batchId, size: row.size, root: `0x${toHex(row.root)}` });
    return row;
  }

  /** Where anchoring stands, for /health and /metrics. */
  anchoring(): AnchoringHealth {
    return this.anchors.health();
  }

  // ---------------------------------------------------------------- read-only look-ups for the HTTP API

  /** The enrolment row of a device, from the cache or the store; undefined when not enrolled. */
  async device(deviceId: string): Promise<DeviceRow | undefined> {
    return this.devicesById.get(deviceId) ?? (await this.store.getDevice(deviceId));
  }

  /** One committed entry of a device (its statement, reading when sent in full, receive time, batch position). */
  async entry(deviceId: string, seq: number): Promise<EntryRow | undefined> {
    return this.store.getEntry(deviceId, seq);
  }

  /** One sealed batch, or undefined. */
  async batch(batchId: number): Promise<BatchRow | undefined> {
    return this.store.getBatch(batchId);
  }

  /** Number of batches sealed in the store (ids 1..n; other workers sharing it included). */
  async batchTotal(): Promise<number> {
    return this.store.batchCount();
  }
}

/** Chain digest of a committed statement: a reading's payload, or SHA-256 of a lifecycle body (FORMAT.md §3, §13.3). */
function chainDigestOf(statement: Uint8Array): Uint8Array {
  return isLifecycleStatement(statement) ? parseLifecycleStatement(statement).digest : parseStatement(statement).payload;
}

function bundleDevice(r: EnrolmentRecord): EvidenceBundleJson['device'] {
  const d: EvidenceBundleJson['device'] = { deviceId: r.deviceId, publicKey: r.publicKey, kid: r.kid, keyBackend: r.keyBackend, enrolledAt: r.enrolledAt };
  if (r.site !== undefined) d.site = r.site;
  return d;
}

/** A record as plain data without undefined fields (its CBOR is the `request` digest of a plain enrolment). */
function plainRecord(r: EnrolmentRecord): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r)) if (v !== undefined) o[k] = v;
  return o;
}

/** INGEST_ENROL_ERROR around a failed enrolment check; `where.code` names the ENROLMENT_ code. */
function enrolError(cause: unknown): unknown {
  if (cause instanceof SteleError) return new IngestError('INGEST_ENROL_ERROR', `${cause.code}: ${cause.message}`, { cause, where: { code: cause.code, ...cause.where } });
  return cause;
}

function positive(n: number, name: string): number {
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`${name} must be a positive integer`);
  return n;
}

function errorText(e: unknown): string {
  if (e instanceof SteleError) return `${e.code}: ${e.message}`;
  return e instanceof Error ? e.message : String(e);
}
