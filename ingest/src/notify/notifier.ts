/**
 * Alert notification (issue #12 item 7; FORMAT.md §15.9): every alert the rules give is sent once on each
 * configured channel, with retries, and its delivery is recorded in the store.
 *
 * The store is the queue. A scan (every `scanMs`) writes a `pending` delivery record, with the notice body fixed
 * there, for each (alert, channel) that has none; one worker per channel then loads at most `maxQueue` pending
 * records at a time (oldest first) and sends them one by one, retrying each with exponential backoff (`retry.firstMs`
 * doubling to `retry.maxMs`, ±20 % jitter) until the receiver takes it; each attempt updates the record (attempts,
 * last error), and a success marks it `delivered` before the next one is sent. So a restart resends exactly what was
 * pending and never what was delivered. Delivery is at least once: a receiver that took a notice but whose answer
 * was lost gets it again (it can drop repeats by `alert.id`).
 *
 * Bounds: at most `maxQueue` records in memory per channel; at most `maxPending` pending records per channel in the
 * store: beyond, new alerts are not queued yet (counted in `stats().deferred`) and are queued by a later scan once
 * deliveries drain, since the scan looks at every current alert without a record.
 */
import { type Alert } from '@stele/core/alerts';
import type { LogFn } from '../log.ts';
import type { AlertDeliveryRow, AlertDeliveryStore } from '../store/index.ts';
import type { AlertChannel } from './channels.ts';
import { noticeBody } from './notice.ts';

export interface NotifierOptions {
  /** The current alerts (AlertBook.alerts). */
  alerts: () => Promise<Alert[]>;
  store: AlertDeliveryStore;
  channels: readonly AlertChannel[];
  /** `issuer` of every notice (the ingest's receipt issuer). */
  issuer: string;
  /** Look for new alerts this often. Default 2000. */
  scanMs?: number;
  /** Retry delays. Default first 1000 ms, doubling up to 60 000 ms. */
  retry?: { firstMs?: number; maxMs?: number };
  /** Pending records loaded in memory per channel at a time. Default 256. */
  maxQueue?: number;
  /** Pending records per channel in the store beyond which new alerts wait. Default 10 000. */
  maxPending?: number;
  log?: LogFn;
  now?: () => number;
}

export interface ChannelStats {
  delivered: number;
  failedAttempts: number;
  deferred: number;
}

export class Notifier {
  private readonly stopCtl = new AbortController();
  private readonly wakes = new Map<string, () => void>();
  /** Channels with records queued since their worker last listed the pending ones (no wake-up is missed). */
  private readonly dirty = new Set<string>();
  private readonly counters = new Map<string, ChannelStats>();
  /** (alert id, channel) pairs known to have a record: not looked up again. */
  private readonly recorded = new Set<string>();
  private readonly workers: Promise<void>[] = [];
  private scanTimer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private readonly log: LogFn;
  private readonly now: () => number;

  constructor(private readonly o: NotifierOptions) {
    if (o.channels.length === 0) throw new RangeError('at least one channel');
    const names = new Set(o.channels.map((c) => c.name));
    if (names.size !== o.channels.length) throw new RangeError('channel names must differ');
    this.log = o.log ?? (() => undefined);
    this.now = o.now ?? Date.now;
    for (const c of o.channels) this.counters.set(c.name, { delivered: 0, failedAttempts: 0, deferred: 0 });
  }

  /** Starts the workers (they begin with what a previous run left pending) and the scan. */
  start(): void {
    for (const c of this.o.channels) this.workers.push(this.work(c));
    const tick = () => {
      this.scanning ??= this.scan()
        .catch((err: unknown) => this.log('warn', 'alert scan failed', { err: (err as Error).message, code: (err as { code?: string }).code }))
        .finally(() => (this.scanning = undefined));
    };
    tick();
    this.scanTimer = setInterval(tick, this.o.scanMs ?? 2000);
  }

  /** Runs one scan now (tests; the timer runs them otherwise). */
  async scanNow(): Promise<void> {
    await this.scanning;
    await this.scan();
  }

  stats(): Record<string, ChannelStats> {
    return Object.fromEntries([...this.counters].map(([k, v]) => [k, { ...v }]));
  }

  async stop(): Promise<void> {
    if (this.scanTimer !== undefined) clearInterval(this.scanTimer);
    this.stopCtl.abort();
    for (const wake of this.wakes.values()) wake();
    await this.scanning;
    await Promise.all(this.workers);
    for (const c of this.o.channels) await c.close();
  }

  private async scan(): Promise<void> {
    const alerts = await this.o.alerts();
    for (const c of this.o.channels) {
      let pending: number | undefined;
      let added = 0;
      for (const a of alerts) {
        if (this.stopCtl.signal.aborted) return;
        const key = `${a.id}/${c.name}`;
        if (this.recorded.has(key)) continue;
        if ((await this.o.store.getAlertDelivery(a.id, c.name)) !== undefined) {
          this.recorded.add(key);
          continue;
        }
        pending ??= await this.o.store.countPendingAlertDeliveries(c.name);
        if (pending + added >= (this.o.maxPending ?? 10_000)) {
          this.counters.get(c.name)!.deferred++;
          continue;
        }
        await this.o.store.putAlertDelivery({ alertId: a.id, channel: c.name, state: 'pending', body: noticeBody(a, this.o.issuer), queuedAt: this.now(), attempts: 0 });
        this.recorded.add(key);
        added++;
        this.log('info', 'alert queued for notification', { alert: a.id, kind: a.kind, channel: c.name });
      }
      if (added > 0) {
        this.dirty.add(c.name);
        this.wakes.get(c.name)?.();
      }
    }
  }

  private async work(c: AlertChannel): Promise<void> {
    const signal = this.stopCtl.signal;
    while (!signal.aborted) {
      let rows: AlertDeliveryRow[];
      this.dirty.delete(c.name);
      try {
        rows = await this.o.store.listPendingAlertDeliveries(c.name, this.o.maxQueue ?? 256);
      } catch (err) {
        this.log('warn', 'cannot read pending notifications', { channel: c.name, err: (err as Error).message });
        await this.pause(1000);
        continue;
      }
      if (rows.length === 0) {
        if (!this.dirty.has(c.name) && !signal.aborted) await new Promise<void>((resolve) => this.wakes.set(c.name, resolve));
        continue;
      }
      for (const row of rows) {
        if (signal.aborted) return;
        await this.deliverOne(c, row);
      }
    }
  }

  /** Attempts until delivered (or stopped), recording each attempt. */
  private async deliverOne(c: AlertChannel, row: AlertDeliveryRow): Promise<void> {
    const signal = this.stopCtl.signal;
    const first = this.o.retry?.firstMs ?? 1000;
    const max = this.o.retry?.maxMs ?? 60_000;
    let delay = first;
    let r = row;
    while (!signal.aborted) {
      const at = this.now();
      try {
        await c.deliver(r, signal);
        r = { ...r, state: 'delivered', attempts: r.attempts + 1, lastAttemptAt: at, deliveredAt: this.now() };
        await this.o.store.putAlertDelivery(r);
        this.counters.get(c.name)!.delivered++;
        this.log('info', 'alert notified', { alert: r.alertId, channel: c.name, attempts: r.attempts });
        return;
      } catch (err) {
        if (signal.aborted) return;
        const message = (err as Error).message.slice(0, 300);
        r = { ...r, attempts: r.attempts + 1, lastAttemptAt: at, lastError: message };
        this.counters.get(c.name)!.failedAttempts++;
        await this.o.store.putAlertDelivery(r).catch(() => undefined);
        const wait = Math.round(delay * (0.8 + Math.random() * 0.4));
        this.log('warn', 'alert notification failed; retrying', { alert: r.alertId, channel: c.name, attempts: r.attempts, err: message, retryInMs: wait });
        await this.pause(wait);
        delay = Math.min(delay * 2, max);
      }
    }
  }

  private pause(ms: number): Promise<void> {
    const signal = this.stopCtl.signal;
    return new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done, { once: true });
    });
  }
}
