/**
 * The ingest service: MQTT subscription, verification, hash-chain check, storage, batching (RFC 9162),
 * receipts (one ES256 signature per batch, FORMAT.md §5), anchoring, evidence export (FORMAT.md §7).
 *
 * Trust boundary: everything arriving on `stele/v1/+/statements` is untrusted. A statement is committed only
 * when its kid is enrolled for the device it names, its signature verifies, its body (when sent) hashes to its
 * payload, and it extends the device's committed head (seq = head + 1, prev = head digest). Anything else is
 * counted, logged and published on `stele/v1/<device>/rejects`; a fork is recorded and never applied.
 */
import mqtt, { type MqttClient } from 'mqtt';
import type { AnchorRef } from '@stele/core/anchor/evm-reader.ts';
import { equalBytes, fromBase64Url, toBase64Url, toHex } from '@stele/core/bytes.ts';
import { parseBundle, type EvidenceBundle } from '@stele/core/bundle.ts';
import { decodeCbor, encodeCbor } from '@stele/core/cbor.ts';
import {
  checkStatementAgainstReading,
  encodeReceipt,
  parseStatement,
  signBatchRoot,
  verifyStatementSignature,
  type ParsedStatement,
} from '@stele/core/cose/index.ts';
import { SteleError } from '@stele/core/errors.ts';
import { assertP256PublicKey, keyIdOf } from '@stele/core/keys.ts';
import { GENESIS_PREV } from '@stele/core/reading.ts';
import { hashLeaf } from '@stele/core/rfc9162/index.ts';
import type { Signer } from '@stele/core/signer.ts';
import { checkDeviceId, type EnrolmentRecord } from '@stele/device';
import type { Anchorer } from './anchor/index.ts';
import { IngestError, type RejectCode } from './errors.ts';
import { toLogFn, type LogFn, type Logger } from './log.ts';
import { BatchProofs } from './merkle-batch.ts';
import { IngestStore, type CommitItem, type ForkRow, type DeviceRow, type Head, type PendingLeaf } from './store.ts';

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
  batches: { batchId: number; size: number; root: string; anchor: AnchorRef }[];
}

export interface IngestOptions {
  mqttUrl: string;
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
  /** Acks of one device are coalesced over this window. Default 5. */
  ackDelayMs?: number;
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
}

interface Incoming {
  payload: Uint8Array;
  receivedAt: number;
}

interface Checked {
  statement: Uint8Array;
  parsed: ParsedStatement;
  reading?: Uint8Array;
  receivedAt: number;
}

type Precheck = { ok: true; value: Checked } | { ok: false; code: RejectCode; seq: number; detail?: string };

interface DeviceQueue {
  items: Incoming[];
  running: Promise<void> | undefined;
}

const TOPIC_FILTER = 'stele/v1/+/statements';
const GROUP_LIMIT = 256;

export class IngestService {
  private readonly log: LogFn;
  private readonly batchIntervalMs: number;
  private readonly maxBatchSize: number;
  private readonly maxMessageBytes: number;
  private readonly reorderLimit: number;
  private readonly ackDelayMs: number;

  private readonly devicesByKid = new Map<string, DeviceRow>();
  private readonly devicesById = new Map<string, DeviceRow>();
  private readonly heads = new Map<string, Head>();
  private readonly queues = new Map<string, DeviceQueue>();
  private readonly reorder = new Map<string, Map<number, Checked>>();
  private readonly ackTimers = new Map<string, NodeJS.Timeout>();
  private pending: PendingLeaf[] = [];
  private unanchored: number[] = [];
  private lastAnchorError: unknown;

  private client: MqttClient | undefined;
  private timer: NodeJS.Timeout | undefined;
  private batchChain: Promise<void> = Promise.resolve();
  private tickQueued = false;
  private stopping = false;

  private readonly counters = {
    readings: 0,
    batches: 0,
    anchored: 0,
    duplicates: 0,
    anchorFailures: 0,
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
    service.log('info', 'ingest started', {
      dataDir: options.dataDir,
      devices: service.devicesById.size,
      readings: service.counters.readings,
      pending: service.pending.length,
      unanchored: service.unanchored.length,
    });
    return service;
  }

  /** Enrols a device (idempotent for the same record; a different key for a known id, or a reused kid, is refused). */
  async enrol(record: EnrolmentRecord): Promise<void> {
    if (typeof record !== 'object' || record === null) throw new TypeError('record must be an enrolment record');
    try {
      checkDeviceId(record.deviceId);
    } catch (cause) {
      throw new IngestError('INGEST_ENROL_ERROR', 'device id is not usable', { cause, where: { deviceId: record.deviceId } });
    }
    let publicKey: Uint8Array;
    let kid: Uint8Array;
    try {
      publicKey = fromBase64Url(record.publicKey);
      assertP256PublicKey(publicKey);
      kid = fromBase64Url(record.kid);
    } catch (cause) {
      throw new IngestError('INGEST_ENROL_ERROR', 'enrolment public key or kid is malformed', { cause, where: { deviceId: record.deviceId } });
    }
    if (!equalBytes(kid, keyIdOf(publicKey))) {
      throw new IngestError('INGEST_ENROL_ERROR', 'enrolment kid is not the key id of its public key', { where: { deviceId: record.deviceId } });
    }
    const known = this.devicesById.get(record.deviceId);
    if (known !== undefined) {
      if (equalBytes(known.publicKey, publicKey)) return;
      throw new IngestError('INGEST_ENROL_CONFLICT', 'device already enrolled with another key', { where: { deviceId: record.deviceId } });
    }
    const byKid = this.devicesByKid.get(toBase64Url(kid));
    if (byKid !== undefined) {
      throw new IngestError('INGEST_ENROL_CONFLICT', 'key already enrolled for another device', { where: { deviceId: record.deviceId, other: byKid.record.deviceId } });
    }
    const row: DeviceRow = { record, publicKey, kid };
    await this.store.putDevice(row);
    this.devicesById.set(record.deviceId, row);
    this.devicesByKid.set(toBase64Url(kid), row);
    this.log('info', 'device enrolled', { device: record.deviceId, kid: toBase64Url(kid), keyBackend: record.keyBackend });
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
    if (this.unanchored.length > 0) throw this.lastAnchorError ?? new Error('batches left unanchored');
  }

  /** FORMAT.md §7 evidence for seq firstSeq..lastSeq of a device; every entry must be in an anchored batch. */
  async exportBundle(deviceId: string, firstSeq: number, lastSeq: number): Promise<EvidenceBundleJson> {
    if (!Number.isSafeInteger(firstSeq) || firstSeq < 1) throw new RangeError('firstSeq must be an integer >= 1');
    if (!Number.isSafeInteger(lastSeq) || lastSeq < firstSeq) throw new RangeError('lastSeq must be an integer >= firstSeq');
    const device = this.devicesById.get(deviceId);
    if (device === undefined) throw new IngestError('INGEST_UNKNOWN_DEVICE', 'no such enrolled device', { where: { deviceId } });
    const rows = await this.store.getEntries(deviceId, firstSeq, lastSeq);
    const batches = new Map<number, { row: NonNullable<Awaited<ReturnType<IngestStore['getBatch']>>>; proofs: BatchProofs; anchor: AnchorRef }>();
    const entries: EvidenceBundleJson['entries'] = [];
    for (const [i, row] of rows.entries()) {
      const seq = firstSeq + i;
      if (row === undefined) throw new IngestError('INGEST_NOT_FOUND', 'entry not committed', { where: { deviceId, seq } });
      if (row.batchId === undefined || row.leafIndex === undefined) {
        throw new IngestError('INGEST_NOT_ANCHORED', 'entry not in a batch yet', { where: { deviceId, seq } });
      }
      let batch = batches.get(row.batchId);
      if (batch === undefined) {
        const b = await this.store.getBatch(row.batchId);
        if (b === undefined) throw new IngestError('INGEST_STORE_ERROR', 'entry names a missing batch', { where: { deviceId, seq, batchId: row.batchId } });
        if (b.anchor === undefined) throw new IngestError('INGEST_NOT_ANCHORED', 'batch not anchored yet', { where: { deviceId, seq, batchId: row.batchId } });
        batch = { row: b, proofs: new BatchProofs(b.leafHashes), anchor: b.anchor };
        batches.set(row.batchId, batch);
      }
      const path = batch.proofs.inclusionProof(row.leafIndex);
      const receipt = encodeReceipt(batch.row.protectedBytes, batch.row.signature, { treeSize: batch.row.size, leafIndex: row.leafIndex, path });
      const entry: EvidenceBundleJson['entries'][number] = { seq, batchId: row.batchId, statement: toBase64Url(row.statement), receipt: toBase64Url(receipt) };
      if (row.reading !== undefined) entry.reading = toBase64Url(row.reading);
      entries.push(entry);
    }
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
      batches: [...batches.values()]
        .sort((a, b) => a.row.batchId - b.row.batchId)
        .map((b) => ({ batchId: b.row.batchId, size: b.row.size, root: `0x${toHex(b.row.root)}`, anchor: b.anchor })),
    };
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
    for (const row of await this.store.listDevices()) {
      this.devicesById.set(row.record.deviceId, row);
      this.devicesByKid.set(toBase64Url(row.kid), row);
    }
    for (const [device, head] of await this.store.listHeads()) {
      this.heads.set(device, head);
      this.counters.readings += head.seq;
    }
    this.pending = await this.store.listPending();
    this.unanchored = await this.store.listUnanchoredIds();
    this.counters.batches = this.store.batchCount();
    this.counters.anchored = this.counters.batches - this.unanchored.length;
  }

  private async connect(): Promise<void> {
    const clientId = this.options.clientId ?? `stele-ingest-${toHex(crypto.getRandomValues(new Uint8Array(6)))}`;
    const client = await mqtt.connectAsync(this.options.mqttUrl, {
      clientId,
      clean: this.options.clientId === undefined,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
    });
    this.client = client;
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

  private onMessage(topic: string, payload: Uint8Array): void {
    if (this.stopping) return; // not acked: the gateway resends after our restart
    const parts = topic.split('/');
    const device = parts[2];
    if (parts.length !== 4 || device === undefined || device === '') return;
    const receivedAt = Date.now(); // ingest clock (FORMAT.md §8)
    let q = this.queues.get(device);
    if (q === undefined) {
      q = { items: [], running: undefined };
      this.queues.set(device, q);
    }
    // A copy: held statements may outlive the socket buffer the payload was sliced from.
    q.items.push({ payload: new Uint8Array(payload), receivedAt });
    if (q.running === undefined) q.running = this.drain(device, q);
  }

  /** Processing is serialised per device: one drain loop per device owns its head. */
  private async drain(device: string, q: DeviceQueue): Promise<void> {
    try {
      while (q.items.length > 0) {
        const group = q.items.splice(0, GROUP_LIMIT);
        try {
          await this.processGroup(device, group);
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
    // Stateless checks (decode, key, signature, body) in parallel; the chain check below is sequential.
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

    const tryCommit = (c: Checked): boolean => {
      if (!equalBytes(c.parsed.prev, head.digest)) {
        this.reject(device, 'CHAIN_LINK_ERROR', c.parsed.seq, 'prev is not the digest of the committed reading seq - 1');
        return false;
      }
      const entry: CommitItem['entry'] = { statement: c.statement, receivedAt: c.receivedAt };
      if (c.reading !== undefined) entry.reading = c.reading;
      commits.push({ seq: c.parsed.seq, entry, leafHash: hashLeaf(c.statement) });
      committedHere.set(c.parsed.seq, c.statement);
      // The reading digest is the statement payload (FORMAT.md §3), so hash-only mode keeps the chain too.
      head = { seq: c.parsed.seq, digest: c.parsed.payload };
      return true;
    };

    for (const r of checks) {
      if (!r.ok) {
        this.reject(device, r.code, r.seq, r.detail);
        continue;
      }
      const c = r.value;
      const seq = c.parsed.seq;
      if (seq <= head.seq) {
        const existing = committedHere.get(seq) ?? (await this.store.getEntry(device, seq))?.statement;
        if (existing !== undefined && equalBytes(existing, c.statement)) {
          this.counters.duplicates++;
          reAck = true;
        } else {
          await this.recordFork(device, c);
        }
      } else if (seq === head.seq + 1) {
        if (tryCommit(c)) {
          for (let next = buffer.get(head.seq + 1); next !== undefined; next = buffer.get(head.seq + 1)) {
            buffer.delete(next.parsed.seq);
            if (!tryCommit(next)) break;
          }
        }
      } else {
        const held = buffer.get(seq);
        if (held !== undefined) {
          if (equalBytes(held.statement, c.statement)) this.counters.duplicates++;
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
        leaves = await this.store.commit(device, commits, head);
      } catch (e) {
        // Nothing committed; the in-memory head is unchanged and nothing is acked, so the gateway resends.
        this.reorder.delete(device);
        throw e;
      }
      this.heads.set(device, head);
      this.pending.push(...leaves);
      this.counters.readings += commits.length;
      this.log('debug', 'committed', { device, from: commits[0]!.seq, to: head.seq });
      this.scheduleAck(device);
      if (this.pending.length >= this.maxBatchSize) this.tick(true);
    } else if (reAck) {
      this.scheduleAck(device);
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
    let parsed: ParsedStatement;
    try {
      parsed = parseStatement(statement);
    } catch (e) {
      if (e instanceof SteleError) return { ok: false, code: 'STATEMENT_FORMAT_ERROR', seq: 0, detail: errorText(e) };
      throw e;
    }
    const seq = parsed.seq;
    const device = this.devicesByKid.get(toBase64Url(parsed.kid));
    if (device === undefined) return { ok: false, code: 'UNKNOWN_KEY_ERROR', seq, detail: 'kid not enrolled' };
    if (device.record.deviceId !== parsed.device || device.record.deviceId !== topicDevice) {
      return { ok: false, code: 'UNKNOWN_KEY_ERROR', seq, detail: `kid is enrolled for ${device.record.deviceId}, statement names ${parsed.device} on topic of ${topicDevice}` };
    }
    if (!(await verifyStatementSignature(parsed, device.publicKey))) return { ok: false, code: 'SIGNATURE_ERROR', seq };
    if (reading !== undefined) {
      let result: ReturnType<typeof checkStatementAgainstReading>;
      try {
        result = checkStatementAgainstReading(parsed, reading);
      } catch (e) {
        if (e instanceof SteleError) return { ok: false, code: 'READING_FORMAT_ERROR', seq, detail: errorText(e) };
        throw e;
      }
      if (result === 'DIGEST_MISMATCH') return { ok: false, code: 'DIGEST_MISMATCH_ERROR', seq };
      if (result === 'HEADER_MISMATCH') return { ok: false, code: 'HEADER_MISMATCH_ERROR', seq };
    }
    const value: Checked = { statement, parsed, receivedAt: m.receivedAt };
    if (reading !== undefined) value.reading = reading;
    return { ok: true, value };
  }

  private async recordFork(device: string, c: Checked): Promise<void> {
    const fork: Parameters<IngestStore['putFork']>[0] = { deviceId: device, seq: c.parsed.seq, statement: c.statement, receivedAt: c.receivedAt };
    if (c.reading !== undefined) fork.reading = c.reading;
    await this.store.putFork(fork);
    this.reject(device, 'FORK_ERROR', c.parsed.seq, 'a different statement holds this seq; recorded, not applied');
  }

  private reject(device: string, code: RejectCode, seq: number, detail?: string): void {
    this.counters.rejected[code] = (this.counters.rejected[code] ?? 0) + 1;
    const fields: Record<string, unknown> = { device, seq, code };
    if (detail !== undefined) fields['detail'] = detail;
    this.log('warn', 'statement rejected', fields);
    void this.publish(`stele/v1/${device}/rejects`, { seq, code });
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

  private async sendAck(device: string): Promise<void> {
    const head = this.heads.get(device);
    if (head === undefined || head.seq === 0) return;
    await this.publish(`stele/v1/${device}/acks`, { upTo: head.seq });
  }

  private async publish(topic: string, value: Record<string, unknown>): Promise<void> {
    const client = this.client;
    if (client === undefined) return;
    const bytes = encodeCbor(value);
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
    if (this.tickQueued || this.stopping) return;
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

  /** Anchors stored batches in id order; stops at the first failure (retried on the next tick). */
  private async anchorPending(): Promise<void> {
    while (this.unanchored.length > 0) {
      const batchId = this.unanchored[0]!;
      const row = await this.store.getBatch(batchId);
      if (row === undefined) throw new IngestError('INGEST_STORE_ERROR', 'unanchored batch missing', { where: { batchId } });
      let ref: AnchorRef;
      try {
        // Idempotent: a batch anchored before a crash (tx mined, ref not stored) returns its existing ref.
        ref = await this.options.anchorer.anchor(batchId, row.root, row.size);
      } catch (e) {
        this.lastAnchorError = e;
        this.counters.anchorFailures++;
        this.log('warn', 'anchoring failed, will retry', { batchId, err: errorText(e), code: e instanceof SteleError ? e.code : undefined });
        return;
      }
      if (ref.rpc === undefined) ref = { ...ref, rpc: this.options.anchorer.rpcUrl };
      await this.store.setAnchor(batchId, ref);
      this.unanchored.shift();
      this.counters.anchored++;
      this.lastAnchorError = undefined;
      this.log('info', 'batch anchored', { batchId, chainId: ref.chainId, txHash: ref.txHash, blockNumber: ref.blockNumber });
    }
  }
}

function bundleDevice(r: EnrolmentRecord): EvidenceBundleJson['device'] {
  const d: EvidenceBundleJson['device'] = { deviceId: r.deviceId, publicKey: r.publicKey, kid: r.kid, keyBackend: r.keyBackend, enrolledAt: r.enrolledAt };
  if (r.site !== undefined) d.site = r.site;
  return d;
}

function positive(n: number, name: string): number {
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`${name} must be a positive integer`);
  return n;
}

function errorText(e: unknown): string {
  if (e instanceof SteleError) return `${e.code}: ${e.message}`;
  return e instanceof Error ? e.message : String(e);
}
