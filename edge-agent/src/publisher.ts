/**
 * Ships outbox entries to ingest over MQTT (FORMAT.md, MQTT wire) and moves the acked mark when ingest says so.
 *
 * Delivery is at-least-once and in seq order: every (re)connection starts again from the acked mark, anything
 * not acknowledged by ingest within `resendAfterMs` is sent again from the acked mark, and ingest acknowledges
 * duplicates idempotently. Only ingest's signed confirmation (`stele/v1/<device>/acks`, FORMAT.md §11.1, after it
 * committed) counts, and only when it verifies under the ingest key pinned at provisioning (`ingestKey`), names
 * this device and a head digest this outbox holds; the broker's PUBACK only means the broker has it. mqtt.js's own offline queue and reconnect are not used: each connection is
 * a fresh client with `reconnectPeriod: 0`, and this class reconnects with exponential backoff.
 *
 * Trust boundary: confirmations and rejects come from the network, where any client the broker admits may
 * publish. A confirmation that does not check is ignored, counted by code (`status().ignored`, the
 * `stele_confirmations_ignored_total` metric) and logged (at most once per code per 10 s), never thrown.
 * Without `ingestKey` no confirmation is acted on (PUBLISH_INGEST_KEY_UNPINNED): readings stay unacknowledged.
 */
import { EventEmitter } from 'node:events';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { equalBytes, assertP256PublicKey } from '@stele/core';
import { checkConfirmation, ConfirmationError } from '@stele/core/cose';
import { checkDeviceId } from '@stele/device';
import type { PublishErrorCode } from './errors.ts';
import { toLogFn, type LogFn, type Logger } from './log.ts';
import { compareWithIngest } from './ingest-head.ts';
import type { Outbox, OutboxEntry } from './outbox.ts';
import { decodeReject, deviceTopic, encodeStatementMessage, gatewayClientId, WireError, type RejectMessage } from '@stele/core/wire';

export interface PublisherOptions {
  /** `mqtt://host:port` or `mqtts://…`. */
  mqttUrl: string;
  deviceId: string;
  outbox: Outbox;
  /** `full` sends statement and reading; `hash-only` sends the statement only (the reading stays here). Default `full`. */
  mode?: 'full' | 'hash-only';
  /**
   * Most entries sent but not yet acknowledged by ingest. Default 512: replaying 100k buffered readings to real
   * ingest through mosquitto ran at 1,289/s with 64, 2,247/s with 256, 3,411/s with 512 (docs/BENCHMARKS.md,
   * Gateway). Keep it below the broker's per-client queue (mosquitto max_queued_messages, default 1000), or the
   * broker drops what does not fit and those readings wait for the resend timer.
   */
  windowSize?: number;
  /** Resend from the acked mark when the oldest unacknowledged entry was sent this long ago. Default 10 000. */
  resendAfterMs?: number;
  /** Cap of the resend delay, which doubles while ingest keeps rejecting the oldest entry. Default 300 000. */
  maxResendAfterMs?: number;
  /** First reconnect delay; doubles per failed attempt (with ±20 % jitter). Default 1000. */
  reconnectPeriodMs?: number;
  /** Cap of the reconnect delay. Default 30 000. */
  maxReconnectPeriodMs?: number;
  /** Default 10 000. */
  connectTimeoutMs?: number;
  /** MQTT 3.1.1 (4) or 5. Default 4 (aedes speaks only 3.1.1). */
  protocolVersion?: 4 | 5;
  /** Default `stele-gw-<deviceId>`. */
  clientId?: string;
  /** Extra mqtt.js options (credentials, TLS). Reconnect, session and subscription handling stay ours. */
  mqttOptions?: IClientOptions;
  /**
   * Asked on every connection before anything is sent (ingest-head.ts `checkAgainstIngest`): a refusal stops
   * publishing with its code (the link stays up, acks are still taken). A check that cannot be made resolves ok.
   */
  checkBeforePublishing?: () => Promise<PublishGate>;
  /**
   * The ingest public key pinned at provisioning (SEC1 uncompressed P-256, 65 bytes; config `ingest.publicKey`).
   * Only confirmations signed by it move the acked mark. Without it nothing is acknowledged.
   */
  ingestKey?: Uint8Array;
  log?: Logger;
}

export type PublishGate = { ok: true } | { ok: false; code: PublishErrorCode; message: string };

export interface PublisherStatus {
  connected: boolean;
  /** Acked mark of the outbox. */
  acked: number;
  /** Next seq to send on the current connection. */
  nextSeq: number;
  /** Sent but not yet acknowledged by ingest (on this connection). */
  inFlight: number;
  sent: number;
  /** Times the publisher went back to the acked mark because ingest did not acknowledge in time. */
  resends: number;
  connects: number;
  /** Rejections from ingest, by code. */
  rejected: Record<string, number>;
  lastReject: { seq: number; code: string; at: number } | undefined;
  /** Bad messages from the network and outbox problems, by code. */
  problems: Partial<Record<PublishErrorCode, number>>;
  /** Set when publishing stopped: the outbox cannot supply the next entry, or the chain diverges from ingest's. */
  stalled: PublishErrorCode | undefined;
  /** Why, in a sentence (with the fix), when stalled. */
  stalledDetail?: string;
  /** Ingest keeps rejecting the oldest unacknowledged seq: how often in a row, and the last code. */
  rejectStreak?: { seq: number; code: string; streak: number };
  /** Confirmations ignored (not acted on), by code: CONFIRMATION_* (core), PUBLISH_CONFIRMATION_HEAD, PUBLISH_INGEST_KEY_UNPINNED. */
  ignored: Record<string, number>;
  /** Highest seq a verified `anchored` confirmation covers (0 before the first). */
  anchoredUpTo: number;
}

const DEFAULTS = {
  mode: 'full',
  windowSize: 512,
  resendAfterMs: 10_000,
  maxResendAfterMs: 300_000,
  reconnectPeriodMs: 1000,
  maxReconnectPeriodMs: 30_000,
  connectTimeoutMs: 10_000,
  protocolVersion: 4,
} as const;

/** Entries read from the outbox per step. */
const READ_CHUNK = 64;

/**
 * Events: `connect`, `offline`, `acked` (upTo: number), `rejected` ({ seq, code }). Never emits `error`.
 */
export class Publisher extends EventEmitter {
  readonly #o: Required<Omit<PublisherOptions, 'log' | 'mqttOptions' | 'clientId' | 'ingestKey' | 'checkBeforePublishing'>> & { clientId: string; mqttOptions: IClientOptions; ingestKey: Uint8Array | undefined };
  readonly #gate: (() => Promise<PublishGate>) | undefined;
  #stalledDetail: string | undefined;
  readonly #log: LogFn;
  readonly #topics: { statements: string; acks: string; rejects: string };

  #client: MqttClient | undefined;
  /** Bumped per connection attempt and on stop; late events of an older client are ignored. */
  #generation = 0;
  /** Subscribed and allowed to publish. */
  #ready = false;
  #started = false;
  #stopped = false;
  #nextSeq = 1;
  /** seq -> when it was last sent, for entries above the acked mark on this connection. */
  readonly #sentAt = new Map<number, number>();
  #pumping: Promise<void> | undefined;
  #pumpAgain = false;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #resendTimer: NodeJS.Timeout | undefined;
  #reconnectDelayMs: number;
  /** Consecutive rejects of the oldest unacknowledged seq (slows its resends down). */
  #reject: { seq: number; streak: number } | undefined;
  #stats = { sent: 0, resends: 0, connects: 0 };
  readonly #rejected: Record<string, number> = {};
  #lastReject: PublisherStatus['lastReject'];
  readonly #problems: Partial<Record<PublishErrorCode, number>> = {};
  #stalled: PublishErrorCode | undefined;
  readonly #ignored: Record<string, number> = {};
  /** code -> when it was last logged (ignored confirmations are logged at most once per code per 10 s). */
  readonly #ignoredLoggedAt = new Map<string, number>();
  #anchoredUpTo = 0;

  constructor(options: PublisherOptions) {
    super();
    const { log, mqttOptions, clientId, ingestKey, checkBeforePublishing, ...rest } = options;
    this.#gate = checkBeforePublishing;
    const o = { ...DEFAULTS, ...stripUndefined(rest) };
    if (typeof o.mqttUrl !== 'string' || o.mqttUrl.length === 0) throw new TypeError('mqttUrl must be a non-empty string');
    checkDeviceId(o.deviceId); // it becomes a topic level
    if (o.outbox === undefined || o.outbox === null) throw new TypeError('outbox is required');
    if (o.mode !== 'full' && o.mode !== 'hash-only') throw new RangeError("mode must be 'full' or 'hash-only'");
    if (o.protocolVersion !== 4 && o.protocolVersion !== 5) throw new RangeError('protocolVersion must be 4 or 5');
    for (const k of ['windowSize', 'resendAfterMs', 'maxResendAfterMs', 'reconnectPeriodMs', 'maxReconnectPeriodMs', 'connectTimeoutMs'] as const) {
      if (!Number.isSafeInteger(o[k]) || o[k] < 1) throw new RangeError(`${k} must be a positive integer`);
    }
    if (ingestKey !== undefined) {
      try {
        assertP256PublicKey(ingestKey);
      } catch (cause) {
        throw new RangeError('ingestKey must be a P-256 public key (SEC1 uncompressed, 65 bytes)', { cause });
      }
    }
    this.#o = { ...o, clientId: clientId ?? gatewayClientId(o.deviceId), mqttOptions: mqttOptions ?? {}, ingestKey: ingestKey?.slice() };
    this.#log = toLogFn(log);
    this.#topics = { statements: deviceTopic(o.deviceId, 'statements'), acks: deviceTopic(o.deviceId, 'acks'), rejects: deviceTopic(o.deviceId, 'rejects') };
    this.#reconnectDelayMs = o.reconnectPeriodMs;
  }

  /**
   * Starts connecting and returns at once: a broker that is down is normal on a gateway (readings wait in the
   * outbox), so this never waits for, or fails on, the connection. Listen for `connect` to know when it is up.
   */
  async start(): Promise<void> {
    if (this.#stopped) throw new Error('publisher was stopped');
    if (this.#started) return;
    this.#started = true;
    this.#nextSeq = this.#o.outbox.ackedUpTo() + 1;
    const tickMs = Math.max(10, Math.min(1000, Math.floor(this.#o.resendAfterMs / 4)));
    this.#resendTimer = setInterval(() => this.#checkResend(), tickMs);
    this.#resendTimer.unref();
    if (this.#o.ingestKey === undefined) {
      this.#log('warn', 'no ingest key pinned (config ingest.publicKey): no confirmation will be acted on, readings stay unacknowledged', { code: 'PUBLISH_INGEST_KEY_UNPINNED' });
    }
    this.#connect();
  }

  /** New entries were taken: send what the window allows. Cheap; call after every take. */
  notify(): void {
    if (this.#ready) this.#pump();
  }

  get connected(): boolean {
    return this.#ready;
  }

  status(): PublisherStatus {
    return {
      connected: this.#ready,
      acked: this.#o.outbox.ackedUpTo(),
      nextSeq: this.#nextSeq,
      inFlight: this.#sentAt.size,
      ...this.#stats,
      rejected: { ...this.#rejected },
      lastReject: this.#lastReject,
      problems: { ...this.#problems },
      stalled: this.#stalled,
      ...(this.#stalledDetail === undefined ? {} : { stalledDetail: this.#stalledDetail }),
      ...(this.#reject === undefined || this.#lastReject === undefined ? {} : { rejectStreak: { seq: this.#reject.seq, code: this.#lastReject.code, streak: this.#reject.streak } }),
      ignored: { ...this.#ignored },
      anchoredUpTo: this.#anchoredUpTo,
    };
  }

  /** Disconnects cleanly (bounded), stops timers and waits for an outbox read in progress. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#ready = false;
    this.#generation++;
    clearInterval(this.#resendTimer);
    clearTimeout(this.#reconnectTimer);
    const client = this.#client;
    this.#client = undefined;
    if (client !== undefined) {
      if (client.connected) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          client.endAsync(false).catch(() => undefined),
          new Promise<void>((r) => {
            timer = setTimeout(r, 2000);
          }),
        ]);
        clearTimeout(timer);
      }
      client.end(true);
    }
    this.#sentAt.clear();
    await this.#pumping;
  }

  #connect(): void {
    if (this.#stopped) return;
    const generation = ++this.#generation;
    const client = mqtt.connect(this.#o.mqttUrl, {
      ...this.#o.mqttOptions,
      protocolVersion: this.#o.protocolVersion,
      clientId: this.#o.clientId,
      clean: true,
      reconnectPeriod: 0,
      resubscribe: false,
      connectTimeout: this.#o.connectTimeoutMs,
      // mqtt-packet's number cache is 65,536 two-byte Buffers (~6 MB of JS heap, a tenth of the gateway's RSS
      // budget) to save one 2-byte allocation per packet; docs/BENCHMARKS.md "Soak"
      writeCache: false,
    });
    this.#client = client;
    const current = () => generation === this.#generation && !this.#stopped;
    client.on('connect', () => {
      // Small QoS 1 packets both ways: with Nagle, delayed ACKs stall each window refill (~40 ms). Measured on
      // 127.0.0.1, x86_64, aedes + fake ingest in one process, window 64, backlog of 2000: 718 msg/s with Nagle
      // everywhere, 1370 with NODELAY here only, 5795 with NODELAY on broker and ingest too.
      (client.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true);
      if (current()) void this.#onConnect(client, current);
    });
    client.on('message', (topic, payload) => {
      if (!current()) return;
      this.#onMessage(topic, payload).catch((err: unknown) => {
        this.#log('error', 'failed to handle a message from ingest', { topic, err: (err as Error).message });
      });
    });
    client.on('error', (err) => {
      if (current()) this.#log('debug', 'mqtt error', { err: err.message, code: (err as { code?: unknown }).code });
    });
    client.on('close', () => {
      if (current()) this.#onClose(client);
    });
  }

  async #onConnect(client: MqttClient, current: () => boolean): Promise<void> {
    try {
      await client.subscribeAsync([this.#topics.acks, this.#topics.rejects], { qos: 1 });
    } catch (err) {
      if (!current()) return;
      this.#log('warn', 'cannot subscribe to acks and rejects; reconnecting', { err: (err as Error).message });
      client.end(true); // -> close -> reconnect
      return;
    }
    if (!current()) return;
    if (this.#gate !== undefined && this.#stalled === undefined) {
      const verdict = await this.#gate().catch((err: unknown): PublishGate => {
        this.#log('warn', 'the head check before publishing failed; publishing anyway', { err: (err as Error).message });
        return { ok: true };
      });
      if (!current()) return;
      if (!verdict.ok) this.#stall(verdict.code, verdict.message);
    }
    this.#stats.connects++;
    this.#reconnectDelayMs = this.#o.reconnectPeriodMs;
    this.#ready = true;
    // Start again from the acked mark: whatever the broker had of the last connection may be gone.
    this.#rewind();
    this.#log('info', 'connected to the broker', { url: this.#o.mqttUrl, from: this.#nextSeq });
    this.emit('connect');
    this.#pump();
  }

  #onClose(client: MqttClient): void {
    const wasReady = this.#ready;
    this.#ready = false;
    this.#sentAt.clear();
    this.#generation++; // ignore anything more from this client
    client.end(true);
    if (wasReady) {
      this.#log('warn', 'lost the broker; will reconnect', { url: this.#o.mqttUrl });
      this.emit('offline');
    }
    const delay = Math.round(this.#reconnectDelayMs * (0.8 + 0.4 * Math.random()));
    this.#reconnectDelayMs = Math.min(this.#reconnectDelayMs * 2, this.#o.maxReconnectPeriodMs);
    this.#log('debug', 'reconnecting', { inMs: delay });
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = setTimeout(() => this.#connect(), delay);
  }

  #rewind(): void {
    this.#nextSeq = this.#o.outbox.ackedUpTo() + 1;
    this.#sentAt.clear();
  }

  #pump(): void {
    if (this.#pumping) {
      this.#pumpAgain = true;
      return;
    }
    this.#pumping = this.#pumpLoop()
      .catch((err: unknown) => {
        if (!this.#stopped) this.#log('error', 'publishing failed', { err: (err as Error).message, code: (err as { code?: unknown }).code });
      })
      .finally(() => {
        this.#pumping = undefined;
        // notify()/acks that arrived after the loop's last check but before this callback (same tick) are not lost
        if (this.#pumpAgain) this.#pump();
      });
  }

  async #pumpLoop(): Promise<void> {
    const outbox = this.#o.outbox;
    do {
      this.#pumpAgain = false;
      for (;;) {
        const client = this.#client;
        if (client === undefined || !this.#ready || this.#stopped || this.#stalled !== undefined) return;
        const acked = outbox.ackedUpTo();
        if (this.#nextSeq <= acked) this.#nextSeq = acked + 1;
        const room = this.#o.windowSize - (this.#nextSeq - 1 - acked);
        // Only signed entries go out (readings taken unsigned wait for the signing stage, outbox.ts).
        const waiting = outbox.signedUpTo() - this.#nextSeq + 1;
        // Refill in chunks (a quarter of the window) rather than one read per ack, unless fewer are waiting.
        if (waiting <= 0 || room < Math.min(waiting, Math.ceil(this.#o.windowSize / 4))) break;
        const from = this.#nextSeq;
        let entries: OutboxEntry[];
        try {
          entries = await outbox.pendingFrom(from, Math.min(room, READ_CHUNK));
        } catch (err) {
          const code = (err as { code?: unknown }).code;
          if (code !== 'OUTBOX_CORRUPT' && code !== 'OUTBOX_GAP') throw err;
          this.#stall(code === 'OUTBOX_GAP' ? 'PUBLISH_OUTBOX_GAP' : 'PUBLISH_OUTBOX_CORRUPT', `${code}: ${(err as Error).message} at seq ${from}; keep the outbox folder for the evidence and see \`stele gateway doctor\``);
          return;
        }
        if (entries[0]?.seq !== from) {
          if (this.#nextSeq !== from) continue; // rewound meanwhile
          this.#stall('PUBLISH_OUTBOX_GAP', `outbox entry ${from} is missing`);
          return;
        }
        for (const entry of entries) {
          // stop at a reconnect, a rewind (resend) or a gap; the outer loop reads again from #nextSeq
          if (client !== this.#client || !this.#ready || entry.seq !== this.#nextSeq) break;
          this.#publish(client, entry);
          this.#nextSeq = entry.seq + 1;
        }
      }
    } while (this.#pumpAgain);
  }

  #publish(client: MqttClient, entry: OutboxEntry): void {
    const payload = encodeStatementMessage(this.#o.mode === 'full' ? { statement: entry.statement, reading: entry.reading } : { statement: entry.statement });
    this.#sentAt.set(entry.seq, Date.now());
    this.#stats.sent++;
    client.publish(this.#topics.statements, Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), { qos: 1 }, (err) => {
      // A lost PUBACK is handled by the resend timer and the reconnect rewind, not here.
      if (err && !this.#stopped) this.#log('debug', 'publish not confirmed by the broker', { seq: entry.seq, err: err.message });
    });
  }

  #checkResend(): void {
    if (!this.#ready || this.#stalled !== undefined) return;
    const oldest = this.#o.outbox.ackedUpTo() + 1;
    const sentAt = this.#sentAt.get(oldest);
    if (sentAt === undefined) return;
    const rejected = this.#reject !== undefined && this.#reject.seq === oldest;
    const delayMs = rejected
      ? Math.min(this.#o.resendAfterMs * 2 ** Math.min(this.#reject!.streak, 30), this.#o.maxResendAfterMs)
      : this.#o.resendAfterMs;
    if (Date.now() - sentAt < delayMs) return;
    this.#stats.resends++;
    this.#log(rejected ? 'warn' : 'info', 'no ack from ingest in time; resending from the acked mark', {
      seq: oldest,
      afterMs: delayMs,
      ...(rejected ? { rejectedAs: this.#lastReject?.code, rejects: this.#reject!.streak } : {}),
    });
    this.#rewind();
    this.#pump();
  }

  async #onMessage(topic: string, payload: Buffer): Promise<void> {
    if (topic === this.#topics.acks) await this.#onAck(payload);
    else if (topic === this.#topics.rejects) this.#onReject(payload);
  }

  /**
   * A confirmation (FORMAT.md §11.1) is acted on only when it verifies under the pinned ingest key, names this
   * device, and its `head` is the chain digest this outbox holds at `upTo` (so a confirmation of another chain,
   * a replaced outbox or a head not taken yet moves nothing). A stale one (upTo <= the mark) is a no-op.
   */
  async #onAck(payload: Buffer): Promise<void> {
    const key = this.#o.ingestKey;
    if (key === undefined) {
      this.#ignore('PUBLISH_INGEST_KEY_UNPINNED', payload);
      return;
    }
    let c;
    try {
      // bounded (CONFIRMATION_MAX_BYTES) before it is decoded
      c = await checkConfirmation(bytesOf(payload), { publicKey: key, device: this.#o.deviceId });
    } catch (err) {
      if (!(err instanceof ConfirmationError)) throw err;
      this.#ignore(err.code, payload);
      return;
    }
    const outbox = this.#o.outbox;
    // A signed head is ingest's word on this device's chain: one that this outbox does not hold stops publishing
    // (it would fork the chain). The same comparison as the HTTP head check before publishing (ingest-head.ts).
    if (this.#stalled === undefined) {
      const verdict = await compareWithIngest(outbox, { seq: c.upTo, digest: c.head, source: `a signed ${c.type} confirmation` });
      if (!verdict.ok) this.#stall(verdict.code, verdict.message);
    }
    const current = c.type === 'stored' ? outbox.ackedUpTo() : this.#anchoredUpTo;
    if (c.upTo <= current) return; // stale or repeated: nothing to do
    const head = outbox.head().seq;
    if (c.upTo > head) {
      this.#count('PUBLISH_ACK_BEYOND_HEAD');
      this.#ignore('PUBLISH_CONFIRMATION_HEAD', payload, { upTo: c.upTo, head });
      return;
    }
    const digest = await outbox.digestAt(c.upTo);
    if (digest === undefined && c.upTo <= outbox.ackedUpTo()) return; // pruned after it was confirmed stored
    if (digest === undefined || !equalBytes(digest, c.head)) {
      this.#ignore('PUBLISH_CONFIRMATION_HEAD', payload, { upTo: c.upTo });
      return;
    }
    if (c.type === 'anchored') {
      this.#anchoredUpTo = c.upTo;
      this.emit('anchored', c.upTo);
      // anchored implies stored: fall through with the same upTo
    }
    const before = outbox.ackedUpTo();
    // markAcked moves the in-memory mark at once; its write is not waited for before sending more (a lost
    // write only means a resend, which ingest acknowledges idempotently).
    outbox.markAcked(c.upTo).catch((err: unknown) => {
      if (!this.#stopped) this.#log('error', 'cannot record the ack', { upTo: c.upTo, err: (err as Error).message, code: (err as { code?: unknown }).code });
    });
    const acked = outbox.ackedUpTo();
    for (const seq of this.#sentAt.keys()) if (seq <= acked) this.#sentAt.delete(seq);
    if (acked > before) {
      if (this.#reject !== undefined && this.#reject.seq <= acked) this.#reject = undefined;
      this.emit('acked', acked);
    }
    this.#pump();
  }

  /** Counts an ignored confirmation by code; logs it at most once per code per 10 s (a flood must not flood the log). */
  #ignore(code: string, payload: Buffer, where: Record<string, unknown> = {}): void {
    const n = (this.#ignored[code] = (this.#ignored[code] ?? 0) + 1);
    const now = Date.now();
    const last = this.#ignoredLoggedAt.get(code);
    if (last !== undefined && now - last < 10_000) return;
    this.#ignoredLoggedAt.set(code, now);
    this.#log('warn', 'confirmation ignored', { code, count: n, sizeBytes: payload.length, ...where });
  }

  #onReject(payload: Buffer): void {
    let r: RejectMessage;
    try {
      r = decodeReject(bytesOf(payload));
    } catch (err) {
      if (!(err instanceof WireError)) throw err;
      this.#bad('reject', payload, err);
      return;
    }
    const { seq, code } = r;
    this.#rejected[code] = (this.#rejected[code] ?? 0) + 1;
    this.#lastReject = { seq, code, at: Date.now() };
    if (seq > this.#o.outbox.ackedUpTo()) {
      this.#reject = this.#reject?.seq === seq ? { seq, streak: this.#reject.streak + 1 } : { seq, streak: 1 };
    }
    this.#log('error', 'ingest rejected a statement', { seq, code, count: this.#rejected[code] });
    this.emit('rejected', { seq, code });
  }

  #bad(what: string, payload: Buffer, err: WireError): void {
    this.#count('PUBLISH_BAD_MESSAGE');
    this.#log('warn', `bad ${what} message ignored`, { code: 'PUBLISH_BAD_MESSAGE', sizeBytes: payload.length, err: err.message, where: err.where });
  }

  /** Stops publishing for good (this process): the outbox cannot supply what comes next, or must not. */
  #stall(code: PublishErrorCode, detail: string): void {
    this.#stalled = code;
    this.#stalledDetail = detail;
    this.#count(code);
    this.#log('error', `publishing stopped: ${detail}`, { code });
  }

  #count(code: PublishErrorCode): void {
    this.#problems[code] = (this.#problems[code] ?? 0) + 1;
  }
}

/** A broker payload as a plain Uint8Array view (no copy) for core's decoders. */
function bytesOf(payload: Buffer): Uint8Array {
  return new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength);
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

