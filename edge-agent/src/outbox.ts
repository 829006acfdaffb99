/**
 * The gateway's store-and-forward buffer and the keeper of its hash chain (FORMAT.md §2.1).
 *
 * A reading is *taken* when its entry and the new chain head are on disk in one LevelDB batch with
 * `sync: true`: before that nothing about it exists (no seq is spent), after that it survives a power cut and
 * the next take links to it. Takes are serialised, so two sources taking at once can never fork the chain.
 *
 * A reading may also be taken *unsigned* ({@link Outbox.takeUnsigned}): durable and chained at once, signed later by
 * the signing stage ({@link Outbox.signPending}), alone or in a device-level batch (FORMAT.md §3.1), so that a slow
 * key (a TPM or secure element signing 10 to 50 times a second) never drops or holds up readings. Unsigned entries
 * are always a suffix of the chain (signing goes in seq order from the lowest); only signed entries are published.
 *
 * Layout (keys utf8, values deterministic CBOR):
 *   `e!<seq, 16 digits>` -> `{"reading": bstr, "statement": bstr, "takenAt": uint ms}`   (fixed width: ordered)
 *                           `{"reading": bstr, "takenAt": uint ms}` while unsigned
 *   `m!head`             -> `{"seq": uint, "digest": bstr(32), "device": tstr}`           (seq 0 = empty chain)
 *   `m!acked`            -> `{"upTo": uint}`  ingest has committed 1..upTo (never goes backwards)
 */
import { Level } from 'level';
import { encodeCbor, decodeCbor } from '@stele/core/cbor.ts';
import { equalBytes } from '@stele/core/bytes.ts';
import { signBatchedStatements, signStatement } from '@stele/core/cose/index.ts';
import { encodeReading, GENESIS_PREV, readingDigest, type ClockState, type Measurement, type Reading } from '@stele/core/reading.ts';
import type { Signer } from '@stele/core/signer.ts';
import { OutboxError } from './errors.ts';

/** What a driver hands the agent: everything of a reading but the chain fields the outbox assigns. */
export interface Acquired {
  sensor: string;
  /** Device time, ms since the epoch (untrusted, FORMAT.md §8). */
  time: number;
  clock: ClockState;
  meas: Measurement[];
  /** SHA-256 of each exact frame the reading came from. */
  raw: Uint8Array[];
  /** Optional: last anchored batch root the gateway had seen. */
  anchor?: Uint8Array;
  /** Optional: the instrument's own time of the record (FORMAT.md §2.3). */
  itime?: string;
  /** Optional: the instrument's record type (FORMAT.md §2.3, HJ 212 CN). */
  rtype?: string;
}

export interface OutboxEntry {
  seq: number;
  /** The reading bytes (deterministic CBOR, FORMAT.md §2). */
  reading: Uint8Array;
  /** The tagged COSE_Sign1 over its digest (FORMAT.md §3). */
  statement: Uint8Array;
  /** Gateway clock when it was taken, ms. */
  takenAt: number;
}

export interface TakeResult {
  seq: number;
  reading: Uint8Array;
  statement: Uint8Array;
}

/** A reading taken but not signed yet ({@link Outbox.takeUnsigned}). */
export interface TakenReading {
  seq: number;
  reading: Uint8Array;
}

/** What one step of the signing stage did ({@link Outbox.signPending}). */
export interface SignedRun {
  /** Seq of the first reading signed. */
  first: number;
  /** Readings signed with one signature (1: a single-reading statement, FORMAT.md §3; more: §3.1). */
  count: number;
  /** Duration of the one signature, ms (the key's latency). */
  signMs: number;
  /** Duration of the step (read, sign, synced write), ms. */
  totalMs: number;
}

/** Most readings one signature covers by default ({@link Outbox.signPending}). */
export const DEFAULT_MAX_SIGN_BATCH = 64;

export interface OutboxOptions {
  /** Clock for `takenAt`. Default: `Date.now`. */
  now?: () => number;
}

const SEQ_DIGITS = 16; // Number.MAX_SAFE_INTEGER has 16 digits
const ENTRY_PREFIX = 'e!';
const HEAD_KEY = 'm!head';
const ACKED_KEY = 'm!acked';
const entryKey = (seq: number) => `${ENTRY_PREFIX}${String(seq).padStart(SEQ_DIGITS, '0')}`;
const FIRST_KEY = entryKey(0);
const LAST_KEY = entryKey(Number.MAX_SAFE_INTEGER);

interface Head {
  seq: number;
  digest: Uint8Array;
  device: string | undefined;
}

export class Outbox {
  readonly #db: Level<string, Uint8Array>;
  readonly #now: () => number;
  #head: Head;
  #acked: number;
  /** Serialises takes (and close): each waits for the one before, so seq never forks. */
  #takeQueue: Promise<void> = Promise.resolve();
  /** Serialises writes of the acked mark, so a smaller mark never lands after a larger one. */
  #ackQueue: Promise<void> = Promise.resolve();
  /** Serialises the signing stage: one run at a time, in seq order. */
  #signQueue: Promise<unknown> = Promise.resolve();
  /** Lowest unsigned seq (every seq from it to the head is unsigned); undefined when all are signed. */
  #unsignedFrom: number | undefined;
  /** The key each unsigned reading was taken for (this process only; after a restart the caller names one). */
  readonly #unsignedSigner = new Map<number, Signer>();
  #closing = false;
  #closed: Promise<void> | undefined;

  private constructor(db: Level<string, Uint8Array>, head: Head, acked: number, now: () => number, unsignedFrom: number | undefined) {
    this.#db = db;
    this.#head = head;
    this.#acked = acked;
    this.#now = now;
    this.#unsignedFrom = unsignedFrom;
  }

  /** Opens (creating when missing) the outbox in `dir`, restoring the chain head and the acked mark. */
  static async open(dir: string, options: OutboxOptions = {}): Promise<Outbox> {
    if (typeof dir !== 'string' || dir.length === 0) throw new TypeError('dir must be a non-empty string');
    const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' });
    try {
      await db.open();
    } catch (cause) {
      const locked = (cause as { cause?: { code?: string } }).cause?.code === 'LEVEL_LOCKED';
      throw new OutboxError(locked ? 'OUTBOX_LOCKED' : 'OUTBOX_IO', locked ? 'outbox is held by another process' : 'cannot open outbox', {
        cause,
        where: { dir },
      });
    }
    try {
      const head = await readHead(db);
      const ackedBytes = await db.get(ACKED_KEY);
      const acked = ackedBytes === undefined ? 0 : uintField(decodeMeta(ackedBytes, ACKED_KEY), 'upTo', ACKED_KEY);
      if (acked > head.seq) throw corrupt('acked mark is above the chain head', { acked, head: head.seq });
      await checkConsistent(db, head);
      const unsignedFrom = await findUnsigned(db, head);
      if (unsignedFrom !== undefined && unsignedFrom <= acked) throw corrupt('an acknowledged entry is unsigned', { acked, unsignedFrom });
      return new Outbox(db, head, acked, options.now ?? Date.now, unsignedFrom);
    } catch (err) {
      await db.close().catch(() => undefined);
      if (err instanceof OutboxError) throw err;
      throw new OutboxError('OUTBOX_IO', 'cannot read outbox', { cause: err, where: { dir } });
    }
  }

  /**
   * Builds the next reading of the chain (seq = head + 1, prev = head digest or GENESIS_PREV), encodes it, signs
   * it and stores entry and new head in one synced batch. Calls are serialised. An acquired item that does not
   * make a valid reading is misuse (TypeError from encodeReading) and spends no seq; a store failure is
   * `OUTBOX_IO` and spends none either.
   */
  take(acquired: Acquired, signer: Signer, deviceId: string): Promise<TakeResult> {
    // checked at call time: takes queued before close() still complete (close waits for them)
    if (this.#closing) return Promise.reject(new OutboxError('OUTBOX_CLOSED', 'outbox is closed'));
    const run = this.#takeQueue.then(
      async (): Promise<{ signed: TakeResult } | { unsigned: TakenReading }> =>
        // Readings wait unsigned before this one: it joins them (signing is in seq order) and is signed with them.
        this.#unsignedFrom === undefined
          ? { signed: await this.#takeNow(acquired, signer, deviceId) }
          : { unsigned: await this.#takeUnsignedNow(acquired, signer, deviceId) },
    );
    this.#takeQueue = run.then(
      () => undefined,
      () => undefined,
    );
    return run.then(async (result) => {
      if ('signed' in result) return result.signed;
      const taken = result.unsigned;
      while (this.signedUpTo() < taken.seq) {
        if ((await this.signPending({ signer })) === undefined && this.signedUpTo() < taken.seq) {
          throw new OutboxError('OUTBOX_UNSIGNED', 'the reading was taken but could not be signed', { where: { seq: taken.seq } });
        }
      }
      const [entry] = await this.pendingFrom(taken.seq, 1);
      if (entry?.seq !== taken.seq) throw new OutboxError('OUTBOX_IO', 'the signed entry cannot be read back', { where: { seq: taken.seq } });
      return { seq: taken.seq, reading: entry.reading, statement: entry.statement };
    });
  }

  /**
   * Takes a reading without signing it: builds the next reading of the chain exactly like {@link take} and stores
   * it with the new head in one synced batch, marked unsigned, so it is durable (and its seq spent) at once; the
   * signing stage ({@link signPending}) signs it later, alone or in a device-level batch, and only then is it
   * published. `signer` is the key it is to be signed with (remembered in memory; after a restart the caller of
   * signPending names the key). Serialised with takes and appends. Errors as for take.
   */
  takeUnsigned(acquired: Acquired, signer: Signer, deviceId: string): Promise<TakenReading> {
    if (this.#closing) return Promise.reject(new OutboxError('OUTBOX_CLOSED', 'outbox is closed'));
    const run = this.#takeQueue.then(() => this.#takeUnsignedNow(acquired, signer, deviceId));
    this.#takeQueue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  async #takeUnsignedNow(a: Acquired, signer: Signer, deviceId: string): Promise<TakenReading> {
    if (signer === undefined || signer === null || typeof signer.sign !== 'function') throw new TypeError('signer is required');
    const { seq, readingBytes, digest } = this.#build(a, deviceId);
    const takenAt = this.#now();
    try {
      await this.#db.batch(
        [
          { type: 'put', key: entryKey(seq), value: encodeCbor({ reading: readingBytes, takenAt }) },
          { type: 'put', key: HEAD_KEY, value: encodeCbor({ seq, digest, device: deviceId }) },
        ],
        { sync: true },
      );
    } catch (cause) {
      throw new OutboxError('OUTBOX_IO', 'cannot store the reading', { cause, where: { seq } });
    }
    // Only now is the reading taken.
    this.#head = { seq, digest, device: deviceId };
    this.#unsignedFrom ??= seq;
    this.#unsignedSigner.set(seq, signer);
    return { seq, reading: readingBytes };
  }

  /** The next reading of the chain, encoded (TypeError when `a` does not make a valid reading). */
  #build(a: Acquired, deviceId: string): { seq: number; readingBytes: Uint8Array; digest: Uint8Array } {
    if (a === null || typeof a !== 'object') throw new TypeError('acquired must be an object');
    if (typeof deviceId !== 'string' || deviceId.length === 0) throw new TypeError('deviceId must be a non-empty string');
    const head = this.#head;
    if (head.device !== undefined && head.device !== deviceId) {
      throw new OutboxError('OUTBOX_DEVICE_MISMATCH', 'this outbox holds the chain of another device', {
        where: { outboxDevice: head.device, deviceId },
      });
    }
    const seq = head.seq + 1;
    const reading: Reading = {
      v: 1,
      device: deviceId,
      sensor: a.sensor,
      seq,
      prev: head.seq === 0 ? GENESIS_PREV : head.digest,
      time: a.time,
      clock: a.clock,
      meas: a.meas,
      raw: a.raw,
    };
    if (a.anchor !== undefined) reading.anchor = a.anchor;
    if (a.itime !== undefined) reading.itime = a.itime;
    if (a.rtype !== undefined) reading.rtype = a.rtype;
    const readingBytes = encodeReading(reading);
    return { seq, readingBytes, digest: readingDigest(readingBytes) };
  }

  /**
   * One step of the signing stage: signs the lowest unsigned readings, at most `maxCount` (default
   * {@link DEFAULT_MAX_SIGN_BATCH}) of them, with ONE signature (one reading: a single-reading statement, FORMAT.md
   * §3; more: a device-level batch, §3.1), and stores their statements in one synced batch (a statement is durable
   * before it can be published, so a restart never signs a published reading twice). Each reading is signed with
   * the key it was taken for; readings taken before a restart with `options.signer` (OutboxError OUTBOX_UNSIGNED
   * when there is none). A run never mixes keys. Steps are serialised. Resolves undefined when nothing is unsigned; a signer
   * failure rejects and leaves the readings unsigned (durable) for the next step.
   */
  signPending(options: { signer?: Signer; maxCount?: number } = {}): Promise<SignedRun | undefined> {
    const maxCount = options.maxCount ?? DEFAULT_MAX_SIGN_BATCH;
    if (!Number.isSafeInteger(maxCount) || maxCount < 1) throw new RangeError('maxCount must be a positive integer');
    if (this.#closing) return Promise.reject(new OutboxError('OUTBOX_CLOSED', 'outbox is closed'));
    const run = this.#signQueue.then(() => this.#signNow(options.signer, maxCount));
    this.#signQueue = run.catch(() => undefined);
    return run;
  }

  async #signNow(fallback: Signer | undefined, maxCount: number): Promise<SignedRun | undefined> {
    const started = performance.now();
    const first = this.#unsignedFrom;
    if (first === undefined) return undefined;
    const signer = this.#unsignedSigner.get(first) ?? fallback;
    if (signer === undefined) throw new OutboxError('OUTBOX_UNSIGNED', 'readings taken before a restart need a signer', { where: { seq: first } });
    let last = Math.min(this.#head.seq, first + maxCount - 1);
    for (let seq = first + 1; seq <= last; seq++) {
      if ((this.#unsignedSigner.get(seq) ?? fallback) !== signer) {
        last = seq - 1;
        break;
      }
    }
    let rows: [string, Uint8Array][];
    try {
      rows = await this.#db.iterator({ gte: entryKey(first), lte: entryKey(last) }).all();
    } catch (cause) {
      throw new OutboxError('OUTBOX_IO', 'cannot read unsigned entries', { cause, where: { seq: first } });
    }
    const stored = rows.map(([key, value]) => decodeStored(key, value));
    if (stored.length !== last - first + 1 || stored.some((e, i) => e.seq !== first + i || e.statement !== undefined)) {
      throw corrupt('unsigned entries are missing or already signed', { from: first, to: last });
    }
    const signStarted = performance.now();
    const statements = await signBatchedStatements(
      stored.map((e) => e.reading),
      signer,
    );
    const signMs = performance.now() - signStarted;
    try {
      await this.#db.batch(
        stored.map((e, i) => ({ type: 'put' as const, key: entryKey(e.seq), value: encodeCbor({ reading: e.reading, statement: statements[i]!, takenAt: e.takenAt }) })),
        { sync: true },
      );
    } catch (cause) {
      throw new OutboxError('OUTBOX_IO', 'cannot store the statements', { cause, where: { from: first, to: last } });
    }
    for (let seq = first; seq <= last; seq++) this.#unsignedSigner.delete(seq);
    // Takes during the signature only appended above `last`: they are still unsigned.
    this.#unsignedFrom = last < this.#head.seq ? last + 1 : undefined;
    return { first, count: last - first + 1, signMs, totalMs: performance.now() - started };
  }

  /** Highest seq such that every entry 1..seq is signed: what may be published. */
  signedUpTo(): number {
    return this.#unsignedFrom === undefined ? this.#head.seq : this.#unsignedFrom - 1;
  }

  /** Readings taken but not signed yet (the signing backlog). */
  unsignedCount(): number {
    return this.#head.seq - this.signedUpTo();
  }

  async #takeNow(a: Acquired, signer: Signer, deviceId: string): Promise<TakeResult> {
    const { seq, readingBytes, digest } = this.#build(a, deviceId);
    const statement = await signStatement(readingBytes, signer);
    const takenAt = this.#now();
    try {
      await this.#db.batch(
        [
          { type: 'put', key: entryKey(seq), value: encodeCbor({ reading: readingBytes, statement, takenAt }) },
          { type: 'put', key: HEAD_KEY, value: encodeCbor({ seq, digest, device: deviceId }) },
        ],
        { sync: true },
      );
    } catch (cause) {
      throw new OutboxError('OUTBOX_IO', 'cannot store the reading', { cause, where: { seq } });
    }
    // Only now is the reading taken.
    this.#head = { seq, digest, device: deviceId };
    return { seq, reading: readingBytes, statement };
  }

  /**
   * Appends a statement that is not a reading (a lifecycle statement, FORMAT.md §13: key rotation, agent
   * reinstall) at the next seq, atomically with the chain exactly like {@link take}, serialised with takes.
   * `build` gets the seq and prev to sign into it and returns the signed statement and its body (whose SHA-256
   * becomes the chain digest the next reading links to); the body is stored where a reading would be.
   *
   * `resync`: only on an outbox that has never taken anything (head seq 0), continue the chain after a head ingest
   * confirmed (`{seq, digest}`) instead of from genesis, and record 1..seq as acknowledged (ingest holds them).
   * That is how a reinstalled agent that lost its outbox goes on without ever repeating a seq (edge-agent
   * rotation.ts `reinstallAgent`). `resync` on an outbox that has taken anything is misuse (RangeError).
   */
  append(
    build: (link: { seq: number; prev: Uint8Array }) => Promise<{ statement: Uint8Array; body: Uint8Array }>,
    deviceId: string,
    resync?: { seq: number; digest: Uint8Array },
  ): Promise<TakeResult> {
    if (this.#closing) return Promise.reject(new OutboxError('OUTBOX_CLOSED', 'outbox is closed'));
    const run = this.#takeQueue.then(() => this.#appendNow(build, deviceId, resync));
    this.#takeQueue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  async #appendNow(
    build: (link: { seq: number; prev: Uint8Array }) => Promise<{ statement: Uint8Array; body: Uint8Array }>,
    deviceId: string,
    resync: { seq: number; digest: Uint8Array } | undefined,
  ): Promise<TakeResult> {
    if (typeof build !== 'function') throw new TypeError('build must be a function');
    if (typeof deviceId !== 'string' || deviceId.length === 0) throw new TypeError('deviceId must be a non-empty string');
    // Readings before a lifecycle statement are signed first, each with the key it was taken for: a rotation must
    // not leave readings below it to be signed later by the new key (valid only from the rotation's seq + 1).
    while (this.#unsignedFrom !== undefined) {
      if (!this.#unsignedSigner.has(this.#unsignedFrom)) {
        throw new OutboxError('OUTBOX_UNSIGNED', 'readings taken before a restart are unsigned: sign them first', { where: { seq: this.#unsignedFrom } });
      }
      await this.signPending();
    }
    const head = this.#head;
    if (head.device !== undefined && head.device !== deviceId) {
      throw new OutboxError('OUTBOX_DEVICE_MISMATCH', 'this outbox holds the chain of another device', {
        where: { outboxDevice: head.device, deviceId },
      });
    }
    let base = { seq: head.seq, prev: head.seq === 0 ? GENESIS_PREV : head.digest };
    if (resync !== undefined) {
      if (head.seq !== 0) throw new RangeError('resync is only for an outbox that has taken nothing');
      if (!Number.isSafeInteger(resync.seq) || resync.seq < 0) throw new RangeError('resync.seq must be a non-negative integer');
      if (!(resync.digest instanceof Uint8Array) || resync.digest.length !== 32) throw new RangeError('resync.digest must be 32 bytes');
      base = { seq: resync.seq, prev: resync.seq === 0 ? GENESIS_PREV : resync.digest };
    }
    const seq = base.seq + 1;
    const { statement, body } = await build({ seq, prev: base.prev });
    if (!(statement instanceof Uint8Array) || !(body instanceof Uint8Array)) throw new TypeError('build must return statement and body bytes');
    const digest = readingDigest(body);
    const takenAt = this.#now();
    const ops: { type: 'put'; key: string; value: Uint8Array }[] = [
      { type: 'put', key: entryKey(seq), value: encodeCbor({ reading: body, statement, takenAt }) },
      { type: 'put', key: HEAD_KEY, value: encodeCbor({ seq, digest, device: deviceId }) },
    ];
    if (resync !== undefined && resync.seq > this.#acked) ops.push({ type: 'put', key: ACKED_KEY, value: encodeCbor({ upTo: resync.seq }) });
    try {
      await this.#db.batch(ops, { sync: true });
    } catch (cause) {
      throw new OutboxError('OUTBOX_IO', 'cannot store the statement', { cause, where: { seq } });
    }
    this.#head = { seq, digest, device: deviceId };
    if (resync !== undefined && resync.seq > this.#acked) this.#acked = resync.seq;
    return { seq, reading: body, statement };
  }

  /** The chain head: seq 0 and GENESIS_PREV-like zero digest before the first take. */
  head(): { seq: number; digest: Uint8Array } {
    return { seq: this.#head.seq, digest: this.#head.digest.slice() };
  }

  /** Device id of the chain in this outbox (undefined before the first take). */
  device(): string | undefined {
    return this.#head.device;
  }

  /** Up to `limit` stored signed entries with seq >= `seq`, in seq order (unsigned ones, above {@link signedUpTo}, are not listed). */
  async pendingFrom(seq: number, limit: number): Promise<OutboxEntry[]> {
    if (!Number.isSafeInteger(seq) || seq < 0) throw new RangeError('seq must be a non-negative integer');
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError('limit must be a positive integer');
    this.#assertOpen();
    const headSeq = this.signedUpTo();
    if (seq > headSeq) return [];
    let rows: [string, Uint8Array][];
    try {
      rows = await this.#db.iterator({ gte: entryKey(seq), lte: entryKey(headSeq), limit }).all();
    } catch (cause) {
      throw new OutboxError('OUTBOX_IO', 'cannot read outbox entries', { cause, where: { seq } });
    }
    return rows.map(([key, value]) => decodeEntry(key, value));
  }

  /**
   * Records that ingest has committed every seq 1..upTo. Never goes backwards; a mark above the head is clamped
   * to the head (ingest cannot have what was never taken). Entries are kept until {@link prune}.
   * The mark is written without fsync: losing the last marks in a power cut only causes resends, which
   * ingest acknowledges idempotently.
   */
  markAcked(upTo: number): Promise<void> {
    if (!Number.isSafeInteger(upTo) || upTo < 0) throw new RangeError('upTo must be a non-negative integer');
    if (this.#closing) return Promise.reject(new OutboxError('OUTBOX_CLOSED', 'outbox is closed'));
    const target = Math.min(upTo, this.#head.seq);
    if (target <= this.#acked) return this.#ackQueue;
    this.#acked = target;
    const run = this.#ackQueue.then(async () => {
      if (target < this.#acked) return; // a larger mark is queued behind us and will be written
      try {
        await this.#db.put(ACKED_KEY, encodeCbor({ upTo: target }));
      } catch (cause) {
        throw new OutboxError('OUTBOX_IO', 'cannot store the acked mark', { cause, where: { upTo: target } });
      }
    });
    this.#ackQueue = run.catch(() => undefined);
    return run;
  }

  /** Highest seq such that ingest has committed 1..seq (0 when none). */
  ackedUpTo(): number {
    return this.#acked;
  }

  /** Taken but not yet acknowledged. */
  pendingCount(): number {
    return this.#head.seq - this.#acked;
  }

  /**
   * Deletes stored entries with seq <= min(upTo, acked mark). Never removes an unacknowledged entry, never
   * touches the head (the chain continues). Retention policy (keep until receipt, keep N days) is for later.
   */
  async prune(upTo: number): Promise<void> {
    if (!Number.isSafeInteger(upTo) || upTo < 0) throw new RangeError('upTo must be a non-negative integer');
    this.#assertOpen();
    const last = Math.min(upTo, this.#acked);
    if (last < 1) return;
    try {
      await this.#db.clear({ gte: FIRST_KEY, lte: entryKey(last) });
    } catch (cause) {
      throw new OutboxError('OUTBOX_IO', 'cannot prune outbox', { cause, where: { upTo: last } });
    }
  }

  /** Waits for takes and ack writes in progress, then closes the store. Idempotent. */
  close(): Promise<void> {
    if (this.#closed) return this.#closed;
    this.#closing = true;
    this.#closed = (async () => {
      await this.#takeQueue;
      await this.#signQueue;
      await this.#ackQueue;
      await this.#db.close();
    })();
    return this.#closed;
  }

  #assertOpen(): void {
    if (this.#closing) throw new OutboxError('OUTBOX_CLOSED', 'outbox is closed');
  }
}

function corrupt(message: string, where: Record<string, unknown>, cause?: unknown): OutboxError {
  return new OutboxError('OUTBOX_CORRUPT', message, cause === undefined ? { where } : { cause, where });
}

function decodeMeta(bytes: Uint8Array, key: string): Map<unknown, unknown> {
  let value: unknown;
  try {
    value = decodeCbor(bytes, { what: key });
  } catch (cause) {
    throw corrupt('outbox record does not decode', { key }, cause);
  }
  if (!(value instanceof Map)) throw corrupt('outbox record is not a map', { key });
  return value;
}

function uintField(map: Map<unknown, unknown>, field: string, key: string): number {
  const v = map.get(field);
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw corrupt(`outbox record lacks ${field}`, { key, field });
  return v;
}

function bytesField(map: Map<unknown, unknown>, field: string, key: string): Uint8Array {
  const v = map.get(field);
  if (!(v instanceof Uint8Array)) throw corrupt(`outbox record lacks ${field}`, { key, field });
  return v;
}

async function readHead(db: Level<string, Uint8Array>): Promise<Head> {
  const bytes = await db.get(HEAD_KEY);
  if (bytes === undefined) return { seq: 0, digest: new Uint8Array(32), device: undefined };
  const map = decodeMeta(bytes, HEAD_KEY);
  const device = map.get('device');
  if (typeof device !== 'string') throw corrupt('outbox head lacks device', { key: HEAD_KEY });
  const digest = bytesField(map, 'digest', HEAD_KEY);
  if (digest.length !== 32) throw corrupt('outbox head digest is not 32 bytes', { key: HEAD_KEY });
  return { seq: uintField(map, 'seq', HEAD_KEY), digest, device };
}

/** Head and entries were written in one batch: the newest entry must be the head's (unless pruned). */
async function checkConsistent(db: Level<string, Uint8Array>, head: Head): Promise<void> {
  const [last] = await db.iterator({ gte: FIRST_KEY, lte: LAST_KEY, reverse: true, limit: 1 }).all();
  if (last === undefined) return; // empty, or everything pruned
  const entry = decodeStored(last[0], last[1]);
  if (entry.seq > head.seq) throw corrupt('outbox has entries beyond its head', { head: head.seq, entry: entry.seq });
  if (entry.seq === head.seq && !equalBytes(readingDigest(entry.reading), head.digest)) {
    throw corrupt('outbox head digest does not match its last entry', { seq: head.seq });
  }
}

/** A stored entry, signed or not (`statement` absent while unsigned). */
function decodeStored(key: string, value: Uint8Array): Omit<OutboxEntry, 'statement'> & { statement: Uint8Array | undefined } {
  const seq = Number(key.slice(ENTRY_PREFIX.length));
  if (!Number.isSafeInteger(seq) || seq < 1) throw corrupt('bad outbox key', { key });
  const map = decodeMeta(value, key);
  return {
    seq,
    reading: bytesField(map, 'reading', key),
    statement: map.has('statement') ? bytesField(map, 'statement', key) : undefined,
    takenAt: uintField(map, 'takenAt', key),
  };
}

function decodeEntry(key: string, value: Uint8Array): OutboxEntry {
  const e = decodeStored(key, value);
  if (e.statement === undefined) throw corrupt('outbox entry is unsigned', { key });
  return { seq: e.seq, reading: e.reading, statement: e.statement, takenAt: e.takenAt };
}

/** The lowest seq of the unsigned suffix of the chain (undefined when the newest entry is signed). */
async function findUnsigned(db: Level<string, Uint8Array>, head: Head): Promise<number | undefined> {
  let lowest: number | undefined;
  const it = db.iterator({ gte: FIRST_KEY, lte: entryKey(head.seq), reverse: true });
  try {
    for await (const [key, value] of it) {
      const e = decodeStored(key, value);
      if (e.statement !== undefined) break;
      if (lowest !== undefined && e.seq !== lowest - 1) throw corrupt('outbox entries are missing below an unsigned entry', { seq: e.seq });
      lowest = e.seq;
    }
  } finally {
    await it.close();
  }
  return lowest;
}
