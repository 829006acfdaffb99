/**
 * The gateway agent: sources (drivers) -> outbox.takeUnsigned (chain, store: durable at once) -> signing stage
 * (outbox.signPending) -> publisher.notify.
 * Every acquired item is taken in arrival order; a take that fails is counted per sensor and surfaced in
 * `status()` (never silently dropped), and the source goes on.
 *
 * Slow keys (issue #3, FORMAT.md §3.1): a TPM or secure element may sign only 10 to 50 times a second. Taking never
 * waits for the key: a reading is durable (and chained) before it is signed, and a single signing loop signs what
 * is waiting in seq order. The agent measures what the key sustains (moving average of the signature latency) and
 * how fast readings arrive; while the key keeps up it signs each reading alone (single-reading statements, §3),
 * and when readings arrive faster it signs everything waiting, up to `maxSignBatch`, with one signature (a
 * device-level batch, §3.1). So the backlog stays near arrival rate × signature latency instead of growing, and
 * a signer that fails (a token unplugged) leaves readings durable and unsigned until it is back.
 */
import type { Signer } from '@stele/core';
import { checkDeviceId } from '@stele/device';
import { OutboxError } from './errors.ts';
import { toLogFn, type LogFn, type Logger } from './log.ts';
import type { Acquired, Outbox } from './outbox.ts';
import type { Publisher, PublisherStatus } from './publisher.ts';

export interface GatewayAgentOptions {
  deviceId: string;
  signer: Signer;
  outbox: Outbox;
  /** Optional: without one, readings are only taken into the outbox. */
  publisher?: Publisher;
  /** Most readings one signature covers (FORMAT.md §3.1); 1 signs every reading alone. Default 64. */
  maxSignBatch?: number;
  log?: Logger;
}

/** The signing stage (slow keys, FORMAT.md §3.1). */
export interface SigningStatus {
  /** Readings taken but not signed yet. */
  unsigned: number;
  /** Largest `unsigned` seen since this agent started (sampled at every take and signature). */
  maxUnsigned: number;
  /** Signatures made (each one statement or one device-level batch). */
  signatures: number;
  /** Readings signed. */
  signed: number;
  /** Signatures per batch size: `{"1": n1, "7": n7, ...}`. */
  batchSizes: Record<string, number>;
  /** Mean latency of one signature, ms (EWMA, alpha 0.2). */
  signMsAvg: number;
  /** What the key sustains, signatures per second (1000 / signMsAvg; 0 before the first signature). */
  keyRatePerSec: number;
  /** Readings arriving per second (EWMA of the interval between takes). */
  arrivalRatePerSec: number;
  /** True while the agent signs in device-level batches (readings arrive faster than the key sustains). */
  batching: boolean;
  /** The last signing failure (the readings stay unsigned and are retried). */
  lastError?: { code: string; message: string; at: number };
}

export interface SensorStatus {
  taken: number;
  failed: number;
  /** Device time of the last reading taken (untrusted, FORMAT.md §8). */
  lastTime?: number;
  /** Gateway clock when the last reading was taken. */
  lastTakenAt?: number;
}

export interface SourceStatus {
  state: 'running' | 'ended' | 'failed' | 'stopped';
  taken: number;
  error?: string;
}

export interface AgentStatus {
  deviceId: string;
  /** Chain head seq. */
  seq: number;
  /** Acked mark: ingest has committed 1..acked. */
  acked: number;
  /** Taken but not yet acknowledged. */
  pending: number;
  /** Readings taken since this agent started. */
  taken: number;
  /** Acquired items that could not be taken since this agent started. */
  failed: number;
  lastError: { sensor: string; code: string; message: string; at: number } | undefined;
  sensors: Record<string, SensorStatus>;
  sources: Record<string, SourceStatus>;
  /** Readings taken per second over the last 10 s (or since the first take, when shorter). */
  signingRatePerSec: number;
  /** Mean duration of a take (build and synced write; signing is a separate stage), ms (EWMA, alpha 0.1). */
  takeMsAvg: number;
  signing: SigningStatus;
  publisher: PublisherStatus | undefined;
}

const RATE_WINDOW_MS = 10_000;
const RATE_SAMPLES = 4096;
const DEFAULT_MAX_SIGN_BATCH = 64;
/** The key keeps up when a signature takes at most this share of the interval between readings. */
const KEEP_UP_SHARE = 0.8;
/** A backlog this large is signed as a batch whatever the averages say (a burst, or averages still settling). */
const BATCH_BACKLOG = 4;
/** Retry delays after a signing failure (the signer may be a token that was unplugged). */
const SIGN_RETRY_MS = 500;
const SIGN_RETRY_MAX_MS = 30_000;

interface Source {
  status: SourceStatus;
  iterator: AsyncIterator<Acquired>;
  run: Promise<void>;
}

export class GatewayAgent {
  readonly #deviceId: string;
  readonly #signer: Signer;
  readonly #outbox: Outbox;
  readonly #publisher: Publisher | undefined;
  readonly #log: LogFn;
  readonly #sources = new Map<string, Source>();
  readonly #sensors = new Map<string, SensorStatus>();
  readonly #takeTimes: number[] = [];
  #firstTakeAt: number | undefined;
  #taken = 0;
  #failed = 0;
  #takeMsAvg = 0;
  #lastError: AgentStatus['lastError'];
  readonly #inFlight = new Set<Promise<void>>();
  #stopped = false;
  #stopping: Promise<void> | undefined;
  readonly #maxSignBatch: number;
  #signing: Promise<void> | undefined;
  #signAgain = false;
  #signRetryMs = SIGN_RETRY_MS;
  #signRetryTimer: NodeJS.Timeout | undefined;
  /** While draining (stop): the signing loop ends at this time (Date.now ms) even with readings left. */
  #signDeadline: number | undefined;
  readonly #sign = {
    maxUnsigned: 0,
    signatures: 0,
    signed: 0,
    batchSizes: {} as Record<string, number>,
    signMsAvg: 0,
    arrivalMsAvg: 0,
    lastTakeAt: undefined as number | undefined,
    batching: false,
    lastError: undefined as SigningStatus['lastError'],
  };

  constructor(options: GatewayAgentOptions) {
    checkDeviceId(options.deviceId);
    if (options.signer === undefined || typeof options.signer.sign !== 'function') throw new TypeError('signer is required');
    if (options.outbox === undefined) throw new TypeError('outbox is required');
    this.#deviceId = options.deviceId;
    this.#signer = options.signer;
    this.#outbox = options.outbox;
    this.#publisher = options.publisher;
    this.#log = toLogFn(options.log);
    this.#maxSignBatch = options.maxSignBatch ?? DEFAULT_MAX_SIGN_BATCH;
    if (!Number.isSafeInteger(this.#maxSignBatch) || this.#maxSignBatch < 1) throw new RangeError('maxSignBatch must be a positive integer');
    // Readings taken unsigned before a restart are signed first, with this agent's key.
    if (this.#outbox.unsignedCount() > 0) queueMicrotask(() => this.#kickSigning());
  }

  /** Takes every item `source` yields until it ends, fails, or the agent stops. Names are unique. */
  addSource(name: string, source: AsyncIterable<Acquired>): void {
    if (typeof name !== 'string' || name.length === 0) throw new TypeError('name must be a non-empty string');
    if (this.#sources.has(name)) throw new RangeError(`source ${name} already added`);
    if (this.#stopped) throw new Error('agent is stopped');
    const iterator = source[Symbol.asyncIterator]();
    const status: SourceStatus = { state: 'running', taken: 0 };
    const entry: Source = { status, iterator, run: Promise.resolve() };
    this.#sources.set(name, entry);
    entry.run = this.#runSource(name, entry);
  }

  async #runSource(name: string, source: Source): Promise<void> {
    try {
      while (!this.#stopped) {
        const next = await source.iterator.next();
        if (next.done || this.#stopped) break;
        const take = this.#takeOne(source, next.value);
        this.#inFlight.add(take);
        try {
          await take;
        } finally {
          this.#inFlight.delete(take);
        }
      }
      source.status.state = this.#stopped ? 'stopped' : 'ended';
      this.#log('info', 'source ended', { source: name, state: source.status.state });
    } catch (err) {
      if (this.#stopped) {
        source.status.state = 'stopped';
        return;
      }
      source.status.state = 'failed';
      source.status.error = (err as Error).message;
      this.#log('error', 'source failed', { source: name, err: (err as Error).message, code: (err as { code?: unknown }).code });
    }
  }

  async #takeOne(source: Source, acquired: Acquired): Promise<void> {
    const sensor = typeof acquired?.sensor === 'string' ? acquired.sensor : '?';
    const s = this.#sensor(sensor);
    const started = performance.now();
    try {
      const { seq } = await this.#outbox.takeUnsigned(acquired, this.#signer, this.#deviceId);
      const now = Date.now();
      const ms = performance.now() - started;
      const t = performance.now();
      if (this.#sign.lastTakeAt !== undefined) {
        const gap = t - this.#sign.lastTakeAt;
        this.#sign.arrivalMsAvg = this.#sign.arrivalMsAvg === 0 ? gap : this.#sign.arrivalMsAvg * 0.8 + gap * 0.2;
      }
      this.#sign.lastTakeAt = t;
      this.#sign.maxUnsigned = Math.max(this.#sign.maxUnsigned, this.#outbox.unsignedCount());
      this.#takeMsAvg = this.#taken === 0 ? ms : this.#takeMsAvg * 0.9 + ms * 0.1;
      this.#taken++;
      source.status.taken++;
      s.taken++;
      s.lastTime = acquired.time;
      s.lastTakenAt = now;
      this.#firstTakeAt ??= now;
      this.#takeTimes.push(now);
      if (this.#takeTimes.length > RATE_SAMPLES) this.#takeTimes.splice(0, this.#takeTimes.length - RATE_SAMPLES);
      this.#log('debug', 'reading taken', { sensor, seq });
      this.#kickSigning();
    } catch (err) {
      // the outbox is gone: nothing more can be taken from this source
      if (err instanceof OutboxError && err.code === 'OUTBOX_CLOSED') throw err;
      this.#failed++;
      s.failed++;
      const code = (err as { code?: unknown }).code;
      this.#lastError = {
        sensor,
        code: typeof code === 'string' ? code : (err as Error).name,
        message: (err as Error).message,
        at: Date.now(),
      };
      this.#log('error', 'reading not taken', { sensor, code: this.#lastError.code, err: this.#lastError.message });
    }
  }

  /** Starts the signing loop unless it runs (then it looks again when it is done). */
  #kickSigning(): void {
    if (this.#signing !== undefined) {
      this.#signAgain = true;
      return;
    }
    if (this.#signRetryTimer !== undefined) return; // a failure's retry is scheduled
    this.#signing = this.#signLoop().finally(() => {
      this.#signing = undefined;
      if (this.#signAgain && this.#signRetryTimer === undefined && !this.#stopped) this.#kickSigning();
    });
  }

  async #signLoop(): Promise<void> {
    do {
      this.#signAgain = false;
      while (this.#outbox.unsignedCount() > 0) {
        if (this.#signDeadline !== undefined && Date.now() >= this.#signDeadline) return;
        const count = this.#batchSize(this.#outbox.unsignedCount());
        let run;
        try {
          run = await this.#outbox.signPending({ signer: this.#signer, maxCount: count });
        } catch (err) {
          const code = (err as { code?: unknown }).code;
          if (code === 'OUTBOX_CLOSED') return;
          this.#sign.lastError = { code: typeof code === 'string' ? code : (err as Error).name, message: (err as Error).message, at: Date.now() };
          this.#log('error', 'signing failed; readings stay unsigned and are retried', { code: this.#sign.lastError.code, err: this.#sign.lastError.message, unsigned: this.#outbox.unsignedCount(), retryInMs: this.#signRetryMs });
          if (this.#stopped) return;
          this.#signRetryTimer = setTimeout(() => {
            this.#signRetryTimer = undefined;
            this.#kickSigning();
          }, this.#signRetryMs);
          this.#signRetryMs = Math.min(this.#signRetryMs * 2, SIGN_RETRY_MAX_MS);
          return;
        }
        if (run === undefined) break;
        this.#signRetryMs = SIGN_RETRY_MS;
        const perSignature = run.signMs;
        this.#sign.signMsAvg = this.#sign.signatures === 0 ? perSignature : this.#sign.signMsAvg * 0.8 + perSignature * 0.2;
        this.#sign.signatures++;
        this.#sign.signed += run.count;
        this.#sign.batchSizes[String(run.count)] = (this.#sign.batchSizes[String(run.count)] ?? 0) + 1;
        this.#sign.maxUnsigned = Math.max(this.#sign.maxUnsigned, this.#outbox.unsignedCount() + run.count);
        if (run.count > 1) this.#log('debug', 'signed a device batch', { first: run.first, count: run.count, signMs: Math.round(run.signMs) });
        this.#publisher?.notify();
      }
    } while (this.#signAgain);
  }

  /**
   * How many waiting readings the next signature covers: 1 while the key keeps up with the arrivals (so the
   * statements stay single-reading, FORMAT.md §3), else everything waiting up to maxSignBatch (§3.1).
   */
  #batchSize(backlog: number): number {
    if (this.#maxSignBatch === 1 || backlog <= 1) return 1;
    const { signMsAvg, arrivalMsAvg } = this.#sign;
    const keepsUp = signMsAvg > 0 && arrivalMsAvg > 0 && signMsAvg <= arrivalMsAvg * KEEP_UP_SHARE;
    this.#sign.batching = !keepsUp || backlog >= BATCH_BACKLOG;
    return this.#sign.batching ? Math.min(backlog, this.#maxSignBatch) : 1;
  }

  #sensor(name: string): SensorStatus {
    let s = this.#sensors.get(name);
    if (s === undefined) {
      s = { taken: 0, failed: 0 };
      this.#sensors.set(name, s);
    }
    return s;
  }

  status(): AgentStatus {
    const head = this.#outbox.head().seq;
    const acked = this.#outbox.ackedUpTo();
    const now = Date.now();
    let recent = 0;
    for (let i = this.#takeTimes.length - 1; i >= 0 && now - this.#takeTimes[i]! <= RATE_WINDOW_MS; i--) recent++;
    const spanMs = this.#firstTakeAt === undefined ? 0 : Math.min(RATE_WINDOW_MS, Math.max(1000, now - this.#firstTakeAt));
    return {
      deviceId: this.#deviceId,
      seq: head,
      acked,
      pending: head - acked,
      taken: this.#taken,
      failed: this.#failed,
      lastError: this.#lastError,
      sensors: Object.fromEntries([...this.#sensors].map(([k, v]) => [k, { ...v }])),
      sources: Object.fromEntries([...this.#sources].map(([k, v]) => [k, { ...v.status }])),
      signingRatePerSec: spanMs === 0 ? 0 : (recent * 1000) / spanMs,
      takeMsAvg: this.#takeMsAvg,
      signing: this.#signingStatus(),
      publisher: this.#publisher?.status(),
    };
  }

  #signingStatus(): SigningStatus {
    const s = this.#sign;
    const out: SigningStatus = {
      unsigned: this.#outbox.unsignedCount(),
      maxUnsigned: s.maxUnsigned,
      signatures: s.signatures,
      signed: s.signed,
      batchSizes: { ...s.batchSizes },
      signMsAvg: s.signMsAvg,
      keyRatePerSec: s.signMsAvg > 0 ? 1000 / s.signMsAvg : 0,
      arrivalRatePerSec: s.arrivalMsAvg > 0 ? 1000 / s.arrivalMsAvg : 0,
      batching: s.batching,
    };
    if (s.lastError !== undefined) out.lastError = { ...s.lastError };
    return out;
  }

  /**
   * Signs what is waiting now (bounded by `limitMs`, default 5000; readings left unsigned are durable and signed at
   * the next start). The agent's stop() calls it.
   */
  async drainSigning(limitMs = 5000): Promise<void> {
    const until = Date.now() + limitMs;
    this.#signDeadline = until;
    try {
      while (this.#outbox.unsignedCount() > 0 && Date.now() < until && this.#signRetryTimer === undefined) {
        this.#kickSigning();
        await this.#signing;
      }
    } finally {
      this.#signDeadline = undefined;
    }
  }

  /**
   * Stops taking (a source blocked in its own `next()` is asked to return and is not waited for beyond 1 s;
   * nothing it yields afterwards is taken), waits for a take in progress, signs what was taken (up to 5 s; the
   * rest stays unsigned in the outbox for the next start), then stops the publisher.
   * The outbox stays open: its owner closes it. Idempotent.
   */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#stopped = true;
      const runs = [...this.#sources.values()].map((s) => {
        void Promise.resolve()
          .then(() => s.iterator.return?.())
          .catch(() => undefined);
        return s.run;
      });
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(runs), new Promise<void>((r) => (timer = setTimeout(r, 1000)))]);
      clearTimeout(timer);
      await Promise.allSettled([...this.#inFlight]);
      for (const s of this.#sources.values()) if (s.status.state === 'running') s.status.state = 'stopped';
      await this.drainSigning().catch(() => undefined);
      clearTimeout(this.#signRetryTimer);
      this.#signRetryTimer = undefined;
      await this.#signing;
      await this.#publisher?.stop();
    })();
    return this.#stopping;
  }
}
