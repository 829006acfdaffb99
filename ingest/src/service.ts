/**
 * The ingest service: MQTT subscription, verification, hash-chain check, storage, batching (RFC 9162),
 * receipts (one ES256 signature per batch, FORMAT.md §5), anchoring, evidence export (FORMAT.md §7).
 *
 * Trust boundary: everything arriving on `stele/v1/+/statements` is untrusted. A statement is committed only
 * when its kid is enrolled for the device it names, its signature verifies, its body (when sent) hashes to its
 * payload, and it extends the device's committed head (seq = head + 1, prev = head digest). Anything else is
 * counted, logged and published on `stele/v1/<device>/rejects`; a fork is recorded and never applied.
 */
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import tls from 'node:tls';
import mqtt, { MqttClient, type IClientOptions } from 'mqtt';
import type { AnchorRef } from '@stele/core/anchor/evm-reader.ts';
import { equalBytes, fromBase64Url, toBase64Url, toHex } from '@stele/core/bytes.ts';
import { parseBundle, type EvidenceBundle } from '@stele/core/bundle.ts';
import { decodeCbor, encodeCbor } from '@stele/core/cbor.ts';
import { extendsChain } from '@stele/core/chain-link.ts';
import {
  checkStatementAgainstReading,
  decodeSign1,
  encodeReceipt,
  signConfirmation,
  parseStatement,
  signBatchRoot,
  verifyStatementSignature,
  type ParsedStatement,
} from '@stele/core/cose/index.ts';
import { SteleError } from '@stele/core/errors.ts';
import { sha256 } from '@stele/core/hash.ts';
import { keyIdOf } from '@stele/core/keys.ts';
import {
  findSpan,
  isChainedType,
  isLifecycleStatement,
  keyStatusAt,
  parseLifecycleStatement,
  signLifecycleStatement,
  verifyLifecycleSignature,
  type LifecycleBody,
  type ParsedLifecycle,
} from '@stele/core/lifecycle/index.ts';
import { decodeReading, GENESIS_PREV } from '@stele/core/reading.ts';
import { BatchProofs, hashLeaf } from '@stele/core/rfc9162/index.ts';
import type { Signer } from '@stele/core/signer.ts';
import { checkEnrolmentRecord, verifyEnrolmentRequest, type CheckedRecord, type EnrolmentRecord } from '@stele/core/enrolment/index.ts';
import type { Anchorer } from './anchor/index.ts';
import { stepAnchor, type AnchorAlarm, type AnchorJob } from './anchor/machine.ts';
import { IngestError, type RejectCode } from './errors.ts';
import { toLogFn, type LogFn, type Logger } from './log.ts';
import { currentKey, decodeDeviceKeys, encodeDeviceKeys, isLifecycleLogId, KeyRegistry, lifecycleLogId, registryKey, type DeviceKeys } from './registry/index.ts';
import { limitedClientStream } from './broker/packet-limit.ts';
import { IngestStore, type CommitItem, type ForkRow, type DeviceRow, type Head, type PendingLeaf } from './store.ts';
import { deviceTopic, everyDeviceFilter, parseDeviceTopic } from '@stele/core/wire';

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
  lifecycle?: { batchId: number; statement: string; receipt: string }[];
  batches: { batchId: number; size: number; root: string; anchor: AnchorRef }[];
}

/**
 * Ingest's own broker credentials (docs/broker.md): files, read at start, never in the URL, never logged.
 * `passwordFile` holds the password (one trailing newline is dropped); `ca`, `cert`, `key` are PEM files for TLS
 * (`mqtts://`), `cert` + `key` a client certificate.
 */
export interface IngestBrokerCredentials {
  username?: string;
  passwordFile?: string;
  ca?: string;
  cert?: string;
  key?: string;
  /** Default true. */
  rejectUnauthorized?: boolean;
}

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
  /** LevelDB directory (created when absent). */
  dataDir: string;
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
  /** Statements ahead of a device's head kept while waiting for the gap to fill. Default 1024 per device. */
  reorderLimit?: number;
  /**
   * Messages received but not processed yet, per device and over all devices. Beyond either, a message is shed
   * (counted in `stats().shed`, rejected as INGEST_QUEUE_FULL, not acknowledged: the gateway resends it).
   * Defaults 4096 per device (8 gateway windows) and 65 536 in all (at most 64 KiB each: ~4 GiB worst case; set
   * lower on small hosts).
   */
  maxQueuedPerDevice?: number;
  maxQueuedTotal?: number;
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
  /** Statements held in reorder buffers waiting for a gap to fill. */
  buffered: number;
  /** Failed anchor attempts (each retried on the next tick), since this process started. */
  anchorFailures: number;
  /** Anchors found lost or reorged on chain and anchored again (alarms), since this process started. */
  anchorsLost: number;
  /** Messages shed because a receive queue was full (INGEST_QUEUE_FULL), since this process started. */
  shed: number;
  /** Rejections counted but neither logged nor published (rate limit), since this process started. */
  rejectsSuppressed: number;
  /** Messages queued for processing now. */
  queued: number;
}

interface Incoming {
  payload: Uint8Array;
  receivedAt: number;
}

interface Checked {
  statement: Uint8Array;
  /** The reading statement, or undefined for a lifecycle statement (rotation, reinstall). */
  parsed?: ParsedStatement;
  lifecycle?: ParsedLifecycle;
  kid: Uint8Array;
  /** The statement's `sub`. */
  device: string;
  seq: number;
  /**
   * What the statement links to: its signed prev, or the reading body's prev for a reading of a device-level batch
   * past its first (FORMAT.md §3.1); undefined for such a reading sent hash-only, linked by `batch` instead.
   */
  prev: Uint8Array | undefined;
  /** Its place in a device-level batch (FORMAT.md §3.1): the signed root and its leaf index. */
  batch?: HeadBatch;
  /** Chain digest: the reading digest (payload), or SHA-256 of a lifecycle body (FORMAT.md §13.3). */
  digest: Uint8Array;
  reading?: Uint8Array;
  receivedAt: number;
  /**
   * False while the kid is not registered: a key announced by a rotation not committed yet. Its signature and
   * validity are then judged in order, when the statement's turn comes (processGroup).
   */
  verified: boolean;
}

/** Where a committed statement sits in its device-level batch (FORMAT.md §3.1). */
interface HeadBatch {
  root: Uint8Array;
  index: number;
}

type Precheck = { ok: true; value: Checked } | { ok: false; code: RejectCode; seq: number; detail?: string };

interface DeviceQueue {
  items: Incoming[];
  running: Promise<void> | undefined;
}

const TOPIC_FILTER = everyDeviceFilter('statements');
/** Most seqs one evidence bundle (exportBundle, GET /bundle) covers: about 14 MB of JSON with every body. */
export const MAX_BUNDLE_WINDOW = 10_000;
const GROUP_LIMIT = 256;

export class IngestService {
  private readonly log: LogFn;
  private readonly batchIntervalMs: number;
  private readonly maxBatchSize: number;
  private readonly maxMessageBytes: number;
  private readonly reorderLimit: number;
  private readonly ackDelayMs: number;
  private readonly maxQueuedPerDevice: number;
  private readonly maxQueuedTotal: number;
  private readonly rejectsPerDevicePerSecond: number;
  private queuedTotal = 0;
  /** Per device: the second and the rejections logged in it (rate limit). */
  private readonly rejectWindows = new Map<string, { second: number; n: number; suppressed: number }>();

  private readonly registry = new KeyRegistry();
  private readonly devicesById = new Map<string, DeviceRow>();
  /** Per device: the tail of the work serialised on it (statement groups, enrolment, revocation). */
  private readonly deviceLocks = new Map<string, Promise<void>>();
  private readonly heads = new Map<string, Head>();
  /** Per device: the batch position of its head statement when that is in a device-level batch (seq-tagged). */
  private readonly headBatches = new Map<string, HeadBatch & { seq: number }>();
  private readonly queues = new Map<string, DeviceQueue>();
  private readonly reorder = new Map<string, Map<number, Checked>>();
  private readonly ackTimers = new Map<string, NodeJS.Timeout>();
  private pending: PendingLeaf[] = [];
  private unanchored: number[] = [];
  private lastAnchorError: unknown;
  private chainDownSince: number | undefined;
  private lastAnchorAlarm: { batchId: number; alarm: AnchorAlarm; at: number } | undefined;
  /** State of each non-final batch's anchor, as last seen (for health). */
  private readonly anchorStates = new Map<number, AnchorJob['state']>();
  private readonly anchorConfirmations: number;
  private readonly anchorStuckMs: number;
  private readonly flushWaitMs = 30_000;

  private client: MqttClient | undefined;
  private oversizePackets = 0;
  private timer: NodeJS.Timeout | undefined;
  private batchChain: Promise<void> = Promise.resolve();
  private tickQueued = false;
  private stopping = false;
  /** Opened by openOffline: never cuts or anchors. */
  private offline = false;

  private readonly counters = {
    readings: 0,
    batches: 0,
    anchored: 0,
    duplicates: 0,
    anchorFailures: 0,
    anchorsLost: 0,
    shed: 0,
    rejectsSuppressed: 0,
    rejected: {} as Record<string, number>,
  };

  private constructor(
    private readonly options: IngestOptions,
    private readonly store: IngestStore,
  ) {
    this.log = toLogFn(options.log);
    this.batchIntervalMs = positive(options.batchIntervalMs ?? 5000, 'batchIntervalMs');
    this.maxBatchSize = positive(options.maxBatchSize ?? 4096, 'maxBatchSize');
    this.maxMessageBytes = positive(options.maxMessageBytes ?? 65536, 'maxMessageBytes');
    this.reorderLimit = positive(options.reorderLimit ?? 1024, 'reorderLimit');
    this.ackDelayMs = options.ackDelayMs ?? 5;
    this.anchorConfirmations = positive(options.anchorConfirmations ?? 1, 'anchorConfirmations');
    this.anchorStuckMs = positive(options.anchorStuckMs ?? 60_000, 'anchorStuckMs');
    this.maxQueuedPerDevice = positive(options.maxQueuedPerDevice ?? 4096, 'maxQueuedPerDevice');
    this.maxQueuedTotal = positive(options.maxQueuedTotal ?? 65_536, 'maxQueuedTotal');
    this.rejectsPerDevicePerSecond = positive(options.rejectsPerDevicePerSecond ?? 20, 'rejectsPerDevicePerSecond');
  }

  static async start(options: IngestOptions): Promise<IngestService> {
    if (typeof options.issuer !== 'string' || options.issuer === '') throw new TypeError('options.issuer must be a non-empty string');
    const store = await IngestStore.open(options.dataDir);
    const service = new IngestService(options, store);
    try {
      await service.resume();
      await service.connect();
    } catch (e) {
      await service.shutdown();
      throw e;
    }
    service.timer = setInterval(() => service.tick(false), service.batchIntervalMs);
    // Every non-final anchor is read again from the chain now, not only at the first interval.
    if (service.unanchored.length > 0) void service.exclusive(() => service.anchorPending()).catch(() => {});
    service.log('info', 'ingest started', {
      dataDir: options.dataDir,
      devices: service.devicesById.size,
      readings: service.counters.readings,
      pending: service.pending.length,
      unanchored: service.unanchored.length,
    });
    return service;
  }

  /**
   * Opens the store for the operator's commands while ingest is not running (`stele ingest enrol`, `revoke`
   * without a running service): the same enrol/revoke code as the service, with no broker, no batching timer and
   * no anchoring. What they log stays pending and is batched and anchored at the next `start`.
   */
  static async openOffline(options: Pick<IngestOptions, 'dataDir' | 'signer' | 'issuer' | 'log' | 'trustedInstallers'>): Promise<IngestService> {
    const offlineAnchorer: Anchorer = {
      chainId: 0,
      contract: '0x0000000000000000000000000000000000000000',
      rpcUrl: 'offline',
      anchor: () => Promise.reject(new IngestError('INGEST_STOPPED', 'ingest is opened offline: anchoring happens in `stele ingest run`')),
    };
    const full: IngestOptions = { ...options, mqttUrl: 'mqtt://offline', anchorer: offlineAnchorer };
    const store = await IngestStore.open(options.dataDir);
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
    await this.enrolChecked(checked, sha256(fileBytes), fromBase64Url(verified.installerKid));
    return { record: verified.record, installerKid: verified.installerKid };
  }

  private async enrolChecked({ record, publicKey, kid }: CheckedRecord, requestDigest: Uint8Array, installer: Uint8Array): Promise<void> {
    if (this.stopping) throw new IngestError('INGEST_STOPPED', 'ingest is stopped');
    await this.withDeviceLock(record.deviceId, async () => {
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
      await this.logEnrolment(state ?? { deviceId: record.deviceId, keys: [], chained: [], log: 0 }, publicKey, record.keyBackend, requestDigest, from, record.site ?? '', installer);
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
  ): Promise<void> {
    const kid = keyIdOf(publicKey);
    state.keys.push({ kid, publicKey, backend, from, via: 'enrolment' });
    await this.logIngestStatement(state, { type: 'enrolment', device: state.deviceId, kid, key: publicKey, backend, request, from, time: Date.now(), site, installer });
  }

  /**
   * Signs a lifecycle statement with the ingest key and commits it as the next entry of the device's lifecycle
   * log, together with the registry row `state` (which must already hold its effect): one atomic write. The
   * statement becomes a pending Merkle leaf like any reading.
   */
  private async logIngestStatement(state: DeviceKeys, body: LifecycleBody): Promise<void> {
    const statement = await signLifecycleStatement(body, this.options.signer);
    const n = state.log + 1;
    const next: DeviceKeys = { ...state, log: n };
    const leaves = await this.store.commit(
      lifecycleLogId(state.deviceId),
      [{ seq: n, entry: { statement, receivedAt: Date.now() }, leafHash: hashLeaf(statement) }],
      { seq: n, digest: sha256(statement) },
      [{ key: registryKey(state.deviceId), value: encodeDeviceKeys(next) }],
    );
    this.registry.adopt(next);
    this.pending.push(...leaves);
    if (this.pending.length >= this.maxBatchSize) this.tick(true);
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
    let buffered = 0;
    for (const b of this.reorder.values()) buffered += b.size;
    return {
      readings: this.counters.readings,
      batches: this.counters.batches,
      anchored: this.counters.anchored,
      rejected: { ...this.counters.rejected },
      duplicates: this.counters.duplicates,
      pending: this.pending.length,
      buffered,
      anchorFailures: this.counters.anchorFailures,
      anchorsLost: this.counters.anchorsLost,
      shed: this.counters.shed,
      rejectsSuppressed: this.counters.rejectsSuppressed,
      queued: this.queuedTotal,
    };
  }

  /** The committed head of a device (seq 0 and 32 zero bytes before its first reading). */
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
      await this.anchorPending();
    });
    // Wait (bounded) for inclusion and finality when the chain mines on its own schedule.
    const until = Date.now() + this.flushWaitMs;
    while (this.unanchored.length > 0 && this.lastAnchorError === undefined && Date.now() < until && !this.stopping) {
      await new Promise((r) => setTimeout(r, 100));
      await this.exclusive(() => this.anchorPending());
    }
    if (this.unanchored.length > 0) throw this.lastAnchorError ?? new IngestError('INGEST_NOT_ANCHORED', 'batches not final on chain yet', { where: { unanchored: this.unanchored.length } });
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
    const lifecycle: { batchId: number; leafIndex: number; statement: Uint8Array; receipt: Uint8Array }[] = [];
    for (let n = 1; n <= (keys?.log ?? 0); n++) {
      const row = await this.store.getEntry(lifecycleLogId(deviceId), n);
      lifecycle.push({ ...(await receiptOf(row, { deviceId, lifecycle: n })), statement: row!.statement });
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
        : { lifecycle: lifecycle.map((l) => ({ batchId: l.batchId, statement: toBase64Url(l.statement), receipt: toBase64Url(l.receipt) })) }),
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
    await this.idle();
    await this.batchChain;
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
    for (const [, value] of await this.store.listByPrefix('reg!')) this.registry.adopt(decodeDeviceKeys(value));
    for (const row of await this.store.listDevices()) this.devicesById.set(row.record.deviceId, row);
    for (const [device, head] of await this.store.listHeads()) {
      if (isLifecycleLogId(device)) continue; // a device's lifecycle log, not its chain (registry/registry.ts)
      this.heads.set(device, head);
      this.counters.readings += head.seq;
    }
    this.pending = await this.store.listPending();
    this.unanchored = await this.store.listUnanchoredIds();
    this.counters.batches = this.store.batchCount();
    this.counters.anchored = this.counters.batches - this.unanchored.length;
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
    const clientId = this.options.clientId ?? `stele-ingest-${toHex(crypto.getRandomValues(new Uint8Array(6)))}`;
    const url = parseBrokerUrl(this.options.mqttUrl);
    const creds = await readBrokerCredentials(this.options.broker ?? {});
    const maxPacketBytes = positive(this.options.maxPacketBytes ?? this.maxMessageBytes + 1024, 'maxPacketBytes');
    const opts: IClientOptions = {
      ...creds.auth,
      clientId,
      clean: this.options.clientId === undefined,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
      protocolVersion: 4,
    };
    let client: MqttClient;
    if (url.protocol === 'mqtt:' || url.protocol === 'mqtts:') {
      // Our own stream: the packet limit applies before mqtt.js's parser buffers a packet body (packet-limit.ts).
      const host = url.hostname.replace(/^\[|\]$/g, '');
      const port = Number(url.port || (url.protocol === 'mqtts:' ? 8883 : 1883));
      const onOversize = (sizeBytes: number) => this.noteOversizePacket(sizeBytes);
      client = new MqttClient(() => {
        const socket = url.protocol === 'mqtts:' ? tls.connect({ host, port, ...(net.isIP(host) === 0 ? { servername: host } : {}), ...creds.tls }) : net.connect({ host, port });
        return limitedClientStream(socket, maxPacketBytes, onOversize);
      }, opts);
      await new Promise<void>((resolve, reject) => {
        const onError = (e: Error) => {
          client.end(true);
          reject(e);
        };
        client.once('connect', () => {
          client.off('error', onError);
          resolve();
        });
        client.once('error', onError);
      });
    } else {
      client = await mqtt.connectAsync(this.options.mqttUrl, { ...opts, ...(creds.tls as IClientOptions) });
    }
    this.client = client;
    // Small QoS 1 packets both ways: without TCP_NODELAY, delayed ACKs stall each gateway's window refill
    // (~40 ms); see the measurement in edge-agent/src/publisher.ts.
    const noDelay = () => (client.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true);
    noDelay();
    client.on('connect', noDelay);
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
    client.on('error', (e) => this.log('warn', 'mqtt error', { err: e.message }));
    client.on('offline', () => this.log('warn', 'mqtt offline', {}));
    await client.subscribeAsync(TOPIC_FILTER, { qos: 1 });
  }

  private async shutdown(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client !== undefined) await client.endAsync().catch(() => {});
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
    if (q.items.length >= this.maxQueuedPerDevice || this.queuedTotal >= this.maxQueuedTotal) {
      // shed, not acked: the gateway resends from its acked mark
      this.counters.shed++;
      this.reject(device, 'INGEST_QUEUE_FULL', 0, `receive queue full (${q.items.length} for this device, ${this.queuedTotal} in all)`);
      if (q.items.length === 0 && q.running === undefined) this.queues.delete(device);
      return;
    }
    // A copy: held statements may outlive the socket buffer the payload was sliced from.
    q.items.push({ payload: new Uint8Array(payload), receivedAt });
    this.queuedTotal++;
    if (q.running === undefined) q.running = this.drain(device, q);
  }

  /** Processing is serialised per device: one drain loop per device owns its head. */
  private async drain(device: string, q: DeviceQueue): Promise<void> {
    try {
      while (q.items.length > 0) {
        const group = q.items.splice(0, GROUP_LIMIT);
        this.queuedTotal -= group.length;
        try {
          await this.withDeviceLock(device, () => this.processGroup(device, group));
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

  private async processGroup(device: string, group: Incoming[]): Promise<void> {
    // Stateless checks (decode, key, signature, body) in parallel; the key-validity and chain checks below are
    // sequential, against a draft of the device's key registry that rotations in this group update as they commit.
    const checks = await Promise.all(
      group.map((m) =>
        this.precheck(device, m).catch((e: unknown): Precheck => {
          // Not a check failing but code failing on untrusted input: still a rejection, never a crash.
          this.log('error', 'unexpected error while checking a statement', { device, err: errorText(e) });
          return { ok: false, code: 'INGEST_MALFORMED', seq: 0, detail: errorText(e) };
        }),
      ),
    );
    const buffer = this.reorder.get(device) ?? new Map<number, Checked>();
    let head = this.head(device);
    const commits: CommitItem[] = [];
    const committedHere = new Map<number, Uint8Array>();
    let reAck = false;
    const draft = this.registry.draft(device);
    let draftChanged = false;
    let headBatch = await this.headBatchOf(device, head, [...checks.flatMap((r) => (r.ok ? [r.value] : [])), ...buffer.values()]);

    /** Whether the statement's key may sign its seq now (FORMAT.md §13.5); rejects it when not. */
    const keyCheck = async (c: Checked): Promise<boolean> => {
      const span = draft === undefined || c.device !== device ? undefined : findSpan(draft.keys, c.kid);
      if (!c.verified) {
        // A kid that was not registered at precheck: only a rotation earlier in this group can have announced it.
        if (span === undefined) {
          this.reject(device, 'UNKNOWN_KEY_ERROR', c.seq, 'kid not enrolled');
          return false;
        }
        const ok = c.parsed !== undefined ? await verifyStatementSignature(c.parsed, span.publicKey) : await verifyLifecycleSignature(c.lifecycle!, span.publicKey);
        if (!ok) {
          this.reject(device, 'SIGNATURE_ERROR', c.seq);
          return false;
        }
        c.verified = true;
      }
      const status = keyStatusAt(span, c.seq);
      if (status === 'valid') return true;
      const detail =
        status === 'KEY_REVOKED_ERROR' ? `key revoked after seq ${span!.revokedAfter}` : status === 'KEY_ROTATED_ERROR' ? `key rotated out at seq ${span!.until}` : `key valid from seq ${span?.from}`;
      this.reject(device, status, c.seq, detail);
      return false;
    };

    const tryCommit = (c: Checked): boolean => {
      // Hash-only inside a device-level batch (FORMAT.md §3.1): the head must be the leaf before it in the same
      // signed tree, whose digest is then the one this reading's body links to.
      const linked = extendsChain(c, { digest: head.digest, batch: headBatch?.seq === head.seq ? headBatch : undefined });
      if (!linked) {
        this.reject(device, 'CHAIN_LINK_ERROR', c.seq, c.prev !== undefined ? 'prev is not the digest of the committed reading seq - 1' : 'the committed seq - 1 is not the leaf before it in its device batch');
        return false;
      }
      const body = c.lifecycle?.body;
      if (body !== undefined && draft !== undefined) {
        if (body.type === 'rotation') {
          // The announced key must be new everywhere: a kid belongs to one device, one span, forever.
          if (this.registry.deviceOfKid(body.kid) !== undefined || findSpan(draft.keys, body.kid) !== undefined) {
            this.reject(device, 'LIFECYCLE_ERROR', c.seq, 'the rotation announces a key that is already enrolled');
            return false;
          }
          const old = findSpan(draft.keys, c.kid)!;
          old.until = c.seq;
          draft.keys.push({ kid: body.kid, publicKey: body.key, backend: body.backend, from: c.seq + 1, via: 'rotation' });
        }
        draft.chained.push(c.seq);
        draftChanged = true;
      }
      const entry: CommitItem['entry'] = { statement: c.statement, receivedAt: c.receivedAt };
      if (c.reading !== undefined) entry.reading = c.reading;
      commits.push({ seq: c.seq, entry, leafHash: hashLeaf(c.statement) });
      committedHere.set(c.seq, c.statement);
      // The chain digest is the statement payload for a reading (FORMAT.md §3), so hash-only mode keeps the chain too.
      head = { seq: c.seq, digest: c.digest };
      headBatch = c.batch === undefined ? undefined : { seq: c.seq, ...c.batch };
      return true;
    };

    for (const r of checks) {
      if (!r.ok) {
        this.reject(device, r.code, r.seq, r.detail);
        continue;
      }
      const c = r.value;
      const seq = c.seq;
      if (!(await keyCheck(c))) continue;
      if (seq <= head.seq) {
        const existing = committedHere.get(seq) ?? (await this.store.getEntry(device, seq))?.statement;
        if (existing !== undefined && sameStatement(existing, c.statement)) {
          this.counters.duplicates++;
          reAck = true;
        } else {
          await this.recordFork(device, c);
        }
      } else if (seq === head.seq + 1) {
        if (tryCommit(c)) {
          for (let next = buffer.get(head.seq + 1); next !== undefined; next = buffer.get(head.seq + 1)) {
            buffer.delete(next.seq);
            // Judged again: a revocation or rotation may have come since it was held.
            if (!(await keyCheck(next)) || !tryCommit(next)) break;
          }
        }
      } else {
        const held = buffer.get(seq);
        if (held !== undefined) {
          if (sameStatement(held.statement, c.statement)) this.counters.duplicates++;
          else await this.recordFork(device, c);
        } else if (buffer.size >= this.reorderLimit) {
          this.reject(device, 'INGEST_REORDER_FULL', seq, `seq is ahead of head ${head.seq} and the reorder buffer is full`);
        } else {
          buffer.set(seq, c);
        }
      }
    }
    if (buffer.size > 0) this.reorder.set(device, buffer);
    else this.reorder.delete(device);

    if (commits.length > 0) {
      let leaves: PendingLeaf[];
      try {
        // A rotation or reinstall changes the registry: its row is written in the same batch as the chain.
        const extra = draftChanged && draft !== undefined ? [{ key: registryKey(device), value: encodeDeviceKeys(draft) }] : [];
        leaves = await this.store.commit(device, commits, head, extra);
      } catch (e) {
        // Nothing committed; the in-memory head is unchanged and nothing is acked, so the gateway resends.
        this.reorder.delete(device);
        throw e;
      }
      this.heads.set(device, head);
      if (headBatch !== undefined) this.headBatches.set(device, headBatch);
      else this.headBatches.delete(device);
      if (draftChanged && draft !== undefined) this.registry.adopt(draft);
      this.pending.push(...leaves);
      this.counters.readings += commits.length;
      this.log('debug', 'committed', { device, from: commits[0]!.seq, to: head.seq });
      this.scheduleAck(device);
      if (this.pending.length >= this.maxBatchSize) this.tick(true);
    } else if (reAck) {
      this.scheduleAck(device);
    }
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

  private async precheck(topicDevice: string, m: Incoming): Promise<Precheck> {
    if (m.payload.byteLength > this.maxMessageBytes) return { ok: false, code: 'INGEST_OVERSIZE', seq: 0, detail: `${m.payload.byteLength} bytes` };
    let envelope: unknown;
    try {
      envelope = decodeCbor(m.payload, { what: 'statement message' });
    } catch (e) {
      return { ok: false, code: 'INGEST_MALFORMED', seq: 0, detail: errorText(e) };
    }
    if (!(envelope instanceof Map)) return { ok: false, code: 'INGEST_MALFORMED', seq: 0, detail: 'message is not a CBOR map' };
    const statement = envelope.get('statement');
    const reading = envelope.get('reading');
    const extra = [...envelope.keys()].filter((k) => k !== 'statement' && k !== 'reading');
    if (!(statement instanceof Uint8Array) || (reading !== undefined && !(reading instanceof Uint8Array)) || extra.length > 0) {
      return { ok: false, code: 'INGEST_MALFORMED', seq: 0, detail: 'message is not {statement: bstr, reading?: bstr}' };
    }
    // A lifecycle statement (FORMAT.md §13) or a reading statement (§3): the content type tells them apart.
    let parsed: ParsedStatement | undefined;
    let lifecycle: ParsedLifecycle | undefined;
    try {
      if (isLifecycleStatement(statement)) lifecycle = parseLifecycleStatement(statement);
      else parsed = parseStatement(statement);
    } catch (e) {
      if (e instanceof SteleError) return { ok: false, code: 'STATEMENT_FORMAT_ERROR', seq: 0, detail: errorText(e) };
      throw e;
    }
    if (lifecycle !== undefined && !isChainedType(lifecycle.body.type)) {
      // Enrolment and revocation are ingest's own statements; a device never sends them.
      return { ok: false, code: 'LIFECYCLE_ERROR', seq: 0, detail: `a device may not send a ${lifecycle.body.type} statement` };
    }
    const seq = parsed?.seq ?? lifecycle!.seq!;
    const c: Checked = {
      statement,
      kid: parsed?.kid ?? lifecycle!.kid,
      device: parsed?.device ?? lifecycle!.device,
      seq,
      prev: parsed !== undefined ? parsed.prev : lifecycle!.prev!,
      digest: parsed?.payload ?? lifecycle!.digest,
      receivedAt: m.receivedAt,
      verified: false,
    };
    if (parsed !== undefined) c.parsed = parsed;
    if (parsed?.batch !== undefined) c.batch = { root: parsed.batch.root, index: parsed.batch.index };
    if (lifecycle !== undefined) c.lifecycle = lifecycle;
    const owner = this.registry.deviceOfKid(c.kid);
    if (owner !== undefined && (owner !== c.device || owner !== topicDevice)) {
      return { ok: false, code: 'UNKNOWN_KEY_ERROR', seq, detail: `kid is enrolled for ${owner}, statement names ${c.device} on topic of ${topicDevice}` };
    }
    if (owner === undefined && c.device !== topicDevice) {
      return { ok: false, code: 'UNKNOWN_KEY_ERROR', seq, detail: `statement names ${c.device} on topic of ${topicDevice}` };
    }
    const span = owner === undefined ? undefined : this.registry.span(c.kid);
    if (span !== undefined) {
      const ok = parsed !== undefined ? await verifyStatementSignature(parsed, span.publicKey) : await verifyLifecycleSignature(lifecycle!, span.publicKey);
      if (!ok) return { ok: false, code: 'SIGNATURE_ERROR', seq };
      c.verified = true;
    }
    if (reading !== undefined && parsed !== undefined) {
      let result: ReturnType<typeof checkStatementAgainstReading>;
      try {
        result = checkStatementAgainstReading(parsed, reading);
      } catch (e) {
        if (e instanceof SteleError) return { ok: false, code: 'READING_FORMAT_ERROR', seq, detail: errorText(e) };
        throw e;
      }
      if (result === 'DIGEST_MISMATCH') return { ok: false, code: 'DIGEST_MISMATCH_ERROR', seq };
      if (result === 'HEADER_MISMATCH') return { ok: false, code: 'HEADER_MISMATCH_ERROR', seq };
      c.reading = reading;
      // Inside a device-level batch the statement signs no prev of its own: the body's prev is the link (§3.1).
      c.prev ??= decodeReading(reading).prev;
    } else if (reading !== undefined && !equalBytes(reading, lifecycle!.bodyBytes)) {
      // The outbox sends a lifecycle body beside its statement in full mode; it must be the attached one.
      return { ok: false, code: 'DIGEST_MISMATCH_ERROR', seq };
    }
    return { ok: true, value: c };
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
    void this.publish(deviceTopic(device, 'rejects'), { seq, code });
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
    const head = this.heads.get(device);
    if (head === undefined || head.seq === 0) return;
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
    for (const [device, seq] of highest) {
      const entry = await this.store.getEntry(device, seq);
      if (entry === undefined) continue;
      await this.sendConfirmation('anchored', device, { seq, digest: chainDigestOf(entry.statement) });
    }
  }

  private async publish(topic: string, value: Record<string, unknown>): Promise<void> {
    await this.publishBytes(topic, encodeCbor(value));
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

  private tick(sizeTriggered: boolean): void {
    if (this.tickQueued || this.stopping || this.offline) return;
    this.tickQueued = true;
    void this.exclusive(async () => {
      this.tickQueued = false;
      if (sizeTriggered) {
        while (this.pending.length >= this.maxBatchSize) await this.cutBatch(this.maxBatchSize);
      } else {
        await this.cutPending();
      }
      await this.anchorPending();
    }).catch(() => {});
  }

  /**
   * Cuts the leaves pending now (not those committed while cutting: chasing them would cut many tiny batches
   * under load) into batches of at most maxBatchSize.
   */
  private async cutPending(): Promise<void> {
    let left = this.pending.length;
    while (left > 0) {
      const n = Math.min(left, this.maxBatchSize);
      await this.cutBatch(n);
      left -= n;
    }
  }

  /** Cuts, signs and stores one batch of the first `count` pending leaves, in commit order. */
  private async cutBatch(count: number): Promise<void> {
    const leaves = this.pending.slice(0, count);
    if (leaves.length === 0) return;
    const batchId = this.store.peekNextBatchId();
    const leafHashes = leaves.map((l) => l.leafHash);
    const root = new BatchProofs(leafHashes).root();
    const issuedAt = Math.floor(Date.now() / 1000);
    const { protectedBytes, signature } = await signBatchRoot(root, { kid: this.options.signer.keyId, issuer: this.options.issuer, issuedAt, batchId }, this.options.signer);
    await this.store.writeBatch({ batchId, size: leaves.length, root, leafHashes, protectedBytes, signature, createdAt: Date.now() }, leaves);
    // Only cutBatch removes from the front and it runs exclusively; commits only append.
    this.pending.splice(0, leaves.length);
    this.unanchored.push(batchId);
    this.counters.batches++;
    this.log('info', 'batch cut', { batchId, size: leaves.length, root: `0x${toHex(root)}` });
  }

  /**
   * Drives every non-final batch's anchor (anchor/machine.ts), in id order, saving each step; stops at the first
   * chain failure (retried on the next tick: batches queue, nothing is lost). Anchorers without stages (tests'
   * fakes) are driven through anchor() in one step.
   */
  private async anchorPending(): Promise<void> {
    const staged = this.options.anchorer.staged;
    for (const batchId of [...this.unanchored]) {
      const row = await this.store.getBatch(batchId);
      if (row === undefined) throw new IngestError('INGEST_STORE_ERROR', 'unanchored batch missing', { where: { batchId } });
      let ref: AnchorRef | undefined;
      try {
        if (staged === undefined) {
          // Idempotent: a batch anchored before a crash (tx mined, ref not stored) returns its existing ref.
          ref = await this.options.anchorer.anchor(batchId, row.root, row.size);
        } else {
          let job: AnchorJob = (await this.store.getAnchorJob<AnchorJob>(batchId)) ?? { state: 'prepared' };
          for (let steps = 0; steps < 6 && ref === undefined; steps++) {
            const out = await stepAnchor(staged, row, job, this.anchorConfirmations, Date.now(), this.anchorStuckMs);
            if (out.alarm !== undefined) this.raiseAnchorAlarm(batchId, out.alarm, job);
            if (out.final !== undefined) ref = out.final;
            const changed = JSON.stringify(out.job) !== JSON.stringify(job);
            job = out.job;
            if (!changed) break;
            if (ref === undefined) await this.store.putAnchorJob(batchId, job);
          }
          this.anchorStates.set(batchId, job.state);
        }
      } catch (e) {
        this.lastAnchorError = e;
        this.counters.anchorFailures++;
        this.chainDownSince ??= Date.now();
        this.log('warn', 'anchoring failed, will retry', { batchId, err: errorText(e), code: e instanceof SteleError ? e.code : undefined, queued: this.unanchored.length });
        return;
      }
      this.chainDownSince = undefined;
      if (ref === undefined) continue; // not final yet: the next tick reads it again
      if (ref.rpc === undefined) ref = { ...ref, rpc: this.options.anchorer.rpcUrl };
      await this.store.setAnchor(batchId, ref);
      this.unanchored.splice(this.unanchored.indexOf(batchId), 1);
      this.anchorStates.delete(batchId);
      this.counters.anchored++;
      this.lastAnchorError = undefined;
      this.log('info', 'batch anchored', { batchId, chainId: ref.chainId, txHash: ref.txHash, blockNumber: ref.blockNumber, final: true });
      await this.confirmAnchored(row);
    }
  }

  private raiseAnchorAlarm(batchId: number, alarm: AnchorAlarm, job: AnchorJob): void {
    this.counters.anchorsLost++;
    this.lastAnchorAlarm = { batchId, alarm, at: Date.now() };
    this.log('error', 'ALARM anchor lost or reorged; anchoring the batch again', { batchId, alarm, txHash: job.txHash, blockNumber: job.blockNumber, blockHash: job.blockHash });
  }

  /** Where anchoring stands, for /health and /metrics. */
  anchoring(): { confirmations: number; unanchored: number; states: Record<string, number>; lost: number; chainDownSinceMs?: number; lastAlarm?: { batchId: number; alarm: string; at: string }; lastError?: string } {
    const states: Record<string, number> = {};
    for (const id of this.unanchored) {
      const st = this.anchorStates.get(id) ?? 'prepared';
      states[st] = (states[st] ?? 0) + 1;
    }
    return {
      confirmations: this.anchorConfirmations,
      unanchored: this.unanchored.length,
      states,
      lost: this.counters.anchorsLost,
      ...(this.chainDownSince === undefined ? {} : { chainDownSinceMs: Date.now() - this.chainDownSince }),
      ...(this.lastAnchorAlarm === undefined ? {} : { lastAlarm: { ...this.lastAnchorAlarm, at: new Date(this.lastAnchorAlarm.at).toISOString() } }),
      ...(this.lastAnchorError === undefined ? {} : { lastError: errorText(this.lastAnchorError) }),
    };
  }
}

/**
 * Statement identity at ingest (issue #8): the protected header and the payload, what the signature covers. ECDSA
 * signatures are malleable (s -> n - s verifies too, and FORMAT.md §0 requires accepting high S), so anyone who saw
 * a statement can make a second, valid one with other bytes: that is the same statement again (a duplicate),
 * never a fork of the device's chain.
 */
function sameStatement(a: Uint8Array, b: Uint8Array): boolean {
  if (equalBytes(a, b)) return true;
  try {
    const x = decodeSign1(a);
    const y = decodeSign1(b);
    return equalBytes(x.protectedBytes, y.protectedBytes) && x.payload !== null && y.payload !== null && equalBytes(x.payload, y.payload);
  } catch {
    return false;
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

/** The broker URL, refusing credentials in it (they would end up in logs and process lists). */
function parseBrokerUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch (cause) {
    throw new RangeError('mqttUrl is not a URL', { cause });
  }
  if (url.username !== '' || url.password !== '') throw new RangeError('mqttUrl must not carry credentials: use the broker password file option');
  if (!['mqtt:', 'mqtts:', 'ws:', 'wss:'].includes(url.protocol)) throw new RangeError('mqttUrl must be mqtt://, mqtts://, ws:// or wss://');
  return url;
}

async function readBrokerCredentials(b: IngestBrokerCredentials): Promise<{ auth: IClientOptions; tls: tls.ConnectionOptions }> {
  const read = async (path: string, what: string) => {
    try {
      return await readFile(path);
    } catch (cause) {
      throw new IngestError('INGEST_BROKER_SECRET', `cannot read the broker ${what} ${path}`, { cause, where: { what, path } });
    }
  };
  const auth: IClientOptions = {};
  if (b.username !== undefined) auth.username = b.username;
  if (b.passwordFile !== undefined) auth.password = (await read(b.passwordFile, 'password file')).toString('utf8').replace(/\r?\n$/, '');
  const t: tls.ConnectionOptions = { rejectUnauthorized: b.rejectUnauthorized ?? true };
  if (b.ca !== undefined) t.ca = await read(b.ca, 'CA file');
  if (b.cert !== undefined) t.cert = await read(b.cert, 'client certificate');
  if (b.key !== undefined) t.key = await read(b.key, 'client key');
  return { auth, tls: t };
}

function positive(n: number, name: string): number {
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`${name} must be a positive integer`);
  return n;
}

function errorText(e: unknown): string {
  if (e instanceof SteleError) return `${e.code}: ${e.message}`;
  return e instanceof Error ? e.message : String(e);
}
