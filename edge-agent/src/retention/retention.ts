/**
 * Local retention of acknowledged readings (issue #5 item 4): the outbox keeps every reading ingest confirmed
 * for a while, so the gateway can still hand over the raw data for evidence, and prunes it in the background.
 *
 * Rules (an entry is pruned only when all of them allow it):
 *  - it is acknowledged: seq <= the outbox's acked mark (ingest committed 1..acked), never an unsent reading;
 *  - `keepReadings`: the newest N acknowledged readings stay (seq <= acked - N);
 *  - `keepForMs`: it has been held for at least this long, measured on the agent's *uptime clock*: a monotonic
 *    counter (performance.now deltas) of the time the agent ran, persisted in `stateFile` and carried over
 *    restarts. Wall-clock time is never used: a gateway booting in 1970 (no RTC) or jumping by a year after an
 *    NTP sync cannot expire anything. Time while the agent was not running does not count, so an entry is kept
 *    at least as long as asked, never shorter.
 *
 * How the age is known without a timestamp per entry: every `markIntervalMs` of uptime the retention records a
 * mark (head seq, uptime). An entry with seq <= mark.seq was taken before that mark, so its age is at least
 * `uptime - mark.uptime`; everything up to the newest mark older than `keepForMs` may go. Marks are coarse
 * (at most MAX_MARKS are kept; the interval widens with long retentions), which only makes retention longer.
 *
 * Pruning runs in bounded batches (`batchSize` seqs per LevelDB range delete, yielding between batches), so a
 * large backlog never blocks takes for long.
 *
 * State file: JSON `{ "v": 1, "uptimeMs": n, "marks": [[seq, uptimeMs], ...] }`, written to a temp file, fsynced
 * and renamed, every `saveIntervalMs` and on stop. A crash loses at most that much uptime (retention gets longer).
 */
import { open, readFile, rename } from 'node:fs/promises';
import { toLogFn, type LogFn, type Logger } from '../log.ts';
import type { Outbox } from '../outbox.ts';

export interface RetentionOptions {
  outbox: Outbox;
  /** Where the uptime counter and the marks are kept (JSON). Usually `<dataDir>/retention.json`. */
  stateFile: string;
  /** Keep at least the newest N acknowledged readings. Default 0 (no count rule). */
  keepReadings?: number;
  /** Keep acknowledged readings at least this long (agent uptime, ms). Default 7 days; 0 = no age rule. */
  keepForMs?: number;
  /** Prune every this often (ms). Default 60 000. */
  intervalMs?: number;
  /** Most seqs deleted per LevelDB range delete. Default 1000. */
  batchSize?: number;
  /** Shortest uptime between two marks (ms). Default 60 000 (widened to keepForMs / 256 for long retentions). */
  markIntervalMs?: number;
  /** Persist the uptime counter this often (ms). Default 60 000. */
  saveIntervalMs?: number;
  /** Monotonic clock, ms (tests). Default `performance.now`. */
  monotonicNow?: () => number;
  log?: Logger;
}

export interface RetentionStatus {
  /** Agent uptime counted so far, over all runs (ms). */
  uptimeMs: number;
  /** Lowest seq still stored (undefined when none). */
  oldestSeq: number | undefined;
  /** Acknowledged readings still stored (raw data available for evidence). */
  retained: number;
  /** Readings pruned by this process. */
  pruned: number;
  /** Seq the rules currently allow to prune up to (inclusive). */
  prunableUpTo: number;
  lastRunAt: number | undefined;
  lastError: string | undefined;
  marks: number;
}

/** At most this many marks are held (and written). */
const MAX_MARKS = 256;

const DEFAULTS = {
  keepReadings: 0,
  keepForMs: 7 * 24 * 3600_000,
  intervalMs: 60_000,
  batchSize: 1000,
  markIntervalMs: 60_000,
  saveIntervalMs: 60_000,
} as const;

interface State {
  uptimeMs: number;
  marks: [seq: number, uptimeMs: number][];
}

export class Retention {
  readonly #outbox: Outbox;
  readonly #stateFile: string;
  readonly #o: Required<Omit<RetentionOptions, 'outbox' | 'stateFile' | 'log' | 'monotonicNow'>>;
  readonly #now: () => number;
  readonly #log: LogFn;
  /** Uptime carried over from earlier runs, plus this run's monotonic start. */
  #baseUptimeMs = 0;
  #startedAt = 0;
  #marks: [number, number][] = [];
  #oldest: number | undefined;
  #pruned = 0;
  #lastRunAt: number | undefined;
  #lastError: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #lastSaveUptime = 0;
  #stopped = false;
  #started = false;

  constructor(options: RetentionOptions) {
    if (options?.outbox === undefined) throw new TypeError('outbox is required');
    if (typeof options.stateFile !== 'string' || options.stateFile === '') throw new TypeError('stateFile must be a path');
    const o = { ...DEFAULTS };
    for (const k of Object.keys(DEFAULTS) as (keyof typeof DEFAULTS)[]) {
      const v = options[k];
      if (v === undefined) continue;
      const min = k === 'keepReadings' || k === 'keepForMs' ? 0 : 1;
      if (!Number.isSafeInteger(v) || v < min) throw new RangeError(`${k} must be an integer >= ${min}`);
      (o as Record<string, number>)[k] = v;
    }
    this.#o = o;
    this.#outbox = options.outbox;
    this.#stateFile = options.stateFile;
    this.#now = options.monotonicNow ?? (() => performance.now());
    this.#log = toLogFn(options.log);
  }

  /** Loads the persisted uptime and marks, then prunes every `intervalMs` in the background. */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    const state = await loadState(this.#stateFile);
    this.#baseUptimeMs = state.uptimeMs;
    this.#marks = state.marks.filter(([seq]) => seq <= this.#outbox.head().seq);
    this.#startedAt = this.#now();
    this.#lastSaveUptime = this.uptimeMs();
    this.#mark();
    this.#timer = setInterval(() => void this.runOnce(), Math.min(this.#o.intervalMs, this.#o.saveIntervalMs));
    this.#timer.unref();
  }

  /** Agent uptime over all runs, ms (monotonic). */
  uptimeMs(): number {
    return this.#baseUptimeMs + Math.max(0, this.#now() - this.#startedAt);
  }

  /** Highest seq the rules allow to prune now (0 when nothing). */
  prunableUpTo(): number {
    const acked = this.#outbox.ackedUpTo();
    let upTo = acked - this.#o.keepReadings;
    if (this.#o.keepForMs > 0) {
      const cutoff = this.uptimeMs() - this.#o.keepForMs;
      let byAge = 0;
      for (const [seq, at] of this.#marks) {
        if (at <= cutoff) byAge = seq;
        else break;
      }
      upTo = Math.min(upTo, byAge);
    }
    return Math.max(0, upTo);
  }

  /**
   * One round: record a mark if due, prune what the rules allow in batches, save the state if due.
   * Concurrent calls share the round in progress. Never throws (errors are logged and kept in status()).
   */
  runOnce(): Promise<void> {
    this.#running ??= this.#round().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #round(): Promise<void> {
    if (this.#stopped) return;
    try {
      this.#mark();
      const target = this.prunableUpTo();
      if (this.#oldest === undefined || this.#oldest <= target) {
        const [first] = await this.#outbox.pendingFrom(0, 1);
        this.#oldest = first?.seq;
      }
      while (!this.#stopped && this.#oldest !== undefined && this.#oldest <= target) {
        const last = Math.min(target, this.#oldest + this.#o.batchSize - 1);
        await this.#outbox.prune(last);
        this.#pruned += last - this.#oldest + 1;
        this.#oldest = last + 1;
        await new Promise((r) => setImmediate(r)); // let takes and publishes in between
      }
      if (this.#oldest !== undefined && this.#oldest > this.#outbox.head().seq) this.#oldest = undefined;
      // marks at or below what is gone are no longer needed (keep the newest such one: it dates what follows)
      while (this.#marks.length > 1 && this.#marks[1]![0] <= target) this.#marks.shift();
      this.#lastRunAt = Date.now();
      this.#lastError = undefined;
      if (this.uptimeMs() - this.#lastSaveUptime >= this.#o.saveIntervalMs) await this.#save();
    } catch (err) {
      if (this.#stopped) return;
      this.#lastError = (err as Error).message;
      this.#log('error', 'retention round failed', { err: this.#lastError, code: (err as { code?: unknown }).code });
    }
  }

  #mark(): void {
    const seq = this.#outbox.head().seq;
    const now = this.uptimeMs();
    const last = this.#marks.at(-1);
    const every = Math.max(this.#o.markIntervalMs, Math.floor(this.#o.keepForMs / MAX_MARKS));
    if (last !== undefined && (last[0] === seq || now - last[1] < every)) return;
    this.#marks.push([seq, now]);
    if (this.#marks.length > MAX_MARKS) {
      // drop every second mark of the older half: coarser ages, never shorter retention
      const half = this.#marks.length >> 1;
      this.#marks = [...this.#marks.slice(0, half).filter((_, i) => i % 2 === 1), ...this.#marks.slice(half)];
    }
  }

  async #save(): Promise<void> {
    const uptimeMs = Math.floor(this.uptimeMs());
    await saveState(this.#stateFile, { uptimeMs, marks: this.#marks.map(([s, u]) => [s, Math.floor(u)]) });
    this.#lastSaveUptime = uptimeMs;
  }

  status(): RetentionStatus {
    const acked = this.#outbox.ackedUpTo();
    return {
      uptimeMs: Math.floor(this.uptimeMs()),
      oldestSeq: this.#oldest,
      retained: this.#oldest === undefined ? 0 : Math.max(0, acked - this.#oldest + 1),
      pruned: this.#pruned,
      prunableUpTo: this.prunableUpTo(),
      lastRunAt: this.#lastRunAt,
      lastError: this.#lastError,
      marks: this.#marks.length,
    };
  }

  /** Stops the timer, waits for a round in progress and saves the uptime counter. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    clearInterval(this.#timer);
    await this.#running;
    this.#stopped = true;
    if (this.#started) await this.#save().catch((err: unknown) => this.#log('warn', 'cannot save retention state', { err: (err as Error).message }));
  }
}

async function loadState(file: string): Promise<State> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return { uptimeMs: 0, marks: [] };
    throw err;
  }
  try {
    const o = JSON.parse(text) as { v?: unknown; uptimeMs?: unknown; marks?: unknown };
    const uptimeMs = typeof o.uptimeMs === 'number' && Number.isFinite(o.uptimeMs) && o.uptimeMs >= 0 ? o.uptimeMs : 0;
    const marks: [number, number][] = [];
    if (Array.isArray(o.marks)) {
      for (const m of o.marks) {
        if (Array.isArray(m) && Number.isSafeInteger(m[0]) && typeof m[1] === 'number' && m[1] >= 0 && m[1] <= uptimeMs) {
          const prev = marks.at(-1);
          if (prev === undefined || (m[0] > prev[0] && m[1] >= prev[1])) marks.push([m[0], m[1]]);
        }
      }
    }
    return { uptimeMs, marks };
  } catch {
    // An unreadable state file restarts the uptime clock at 0: retention gets longer, never shorter.
    return { uptimeMs: 0, marks: [] };
  }
}

async function saveState(file: string, state: State): Promise<void> {
  const tmp = `${file}.tmp`;
  const handle = await open(tmp, 'w', 0o644);
  try {
    await handle.writeFile(`${JSON.stringify({ v: 1, ...state })}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, file);
}
