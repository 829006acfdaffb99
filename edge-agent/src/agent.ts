/**
 * The gateway agent: sources (drivers) -> outbox.take (chain, sign, store) -> publisher.notify.
 * Every acquired item is taken in arrival order; a take that fails is counted per sensor and surfaced in
 * `status()` (never silently dropped), and the source goes on.
 */
import type { Signer } from '@stele/core/signer.ts';
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
  log?: Logger;
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
  /** Mean duration of a take (build, sign, synced write), ms, over the last takes (EWMA, alpha 0.1). */
  takeMsAvg: number;
  publisher: PublisherStatus | undefined;
}

const RATE_WINDOW_MS = 10_000;
const RATE_SAMPLES = 4096;

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

  constructor(options: GatewayAgentOptions) {
    checkDeviceId(options.deviceId);
    if (options.signer === undefined || typeof options.signer.sign !== 'function') throw new TypeError('signer is required');
    if (options.outbox === undefined) throw new TypeError('outbox is required');
    this.#deviceId = options.deviceId;
    this.#signer = options.signer;
    this.#outbox = options.outbox;
    this.#publisher = options.publisher;
    this.#log = toLogFn(options.log);
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
      const { seq } = await this.#outbox.take(acquired, this.#signer, this.#deviceId);
      const now = Date.now();
      const ms = performance.now() - started;
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
      this.#publisher?.notify();
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
      publisher: this.#publisher?.status(),
    };
  }

  /**
   * Stops taking (a source blocked in its own `next()` is asked to return and is not waited for beyond 1 s;
   * nothing it yields afterwards is taken), waits for a take in progress, then stops the publisher.
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
      await this.#publisher?.stop();
    })();
    return this.#stopping;
  }
}
