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
 * Every value written by this version also carries `"sum": bstr(8)` (FORMAT.md §12.1), checked on every read.
 *
 * Refusing to fork (FORMAT.md §12.1). LevelDB as shipped by classic-level neither verifies block checksums on
 * reads nor runs paranoid checks (its binding sets neither `paranoid_checks` nor `verify_checksums`), and with
 * `create_if_missing` a deleted `CURRENT` opens as an empty store. So the outbox checks for itself:
 * - a marker file `STELE-OUTBOX` beside the LevelDB files, written when the outbox is created; afterwards the
 *   store is opened without create-if-missing (a lost `CURRENT` is `OUTBOX_MISSING`, never an empty outbox);
 * - the marker holds the high-water seq, fsynced after every take: on open a head below it means synced writes
 *   were lost (a torn log), and the outbox refuses (`OUTBOX_ROLLED_BACK`) rather than hand out those seqs again;
 * - every value's `sum`, and every entry read back against its statement (digest, seq, device), and on open the
 *   unacknowledged part of the chain is walked (contiguous, linked): `OUTBOX_CORRUPT`, `OUTBOX_GAP`.
 */
import { chmod, mkdir, open as openFile, readdir, readFile, rename, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Level } from 'level';
import {
  encodeCbor,
  decodeCbor,
  concatBytes,
  equalBytes,
  utf8,
  sha256,
  decodeReading,
  encodeReading,
  GENESIS_PREV,
  readingDigest,
  type ClockState,
  type Measurement,
  type Reading,
} from '@stele/core';
import { checkStatementAgainstReading, parseStatement, signBatchedStatements, signStatement } from '@stele/core/cose';
import { parseLifecycleStatement } from '@stele/core/lifecycle';
import type { Signer } from '@stele/core';
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
  /**
   * Whether a new outbox may be created when `dir` holds none (no marker, no files). Default true. False: only an
   * existing outbox opens (`OUTBOX_MISSING` otherwise). An outbox that exists is never recreated either way.
   */
  create?: boolean;
}

const SEQ_DIGITS = 16; // Number.MAX_SAFE_INTEGER has 16 digits
const ENTRY_PREFIX = 'e!';
const HEAD_KEY = 'm!head';
const ACKED_KEY = 'm!acked';
const entryKey = (seq: number) => `${ENTRY_PREFIX}${String(seq).padStart(SEQ_DIGITS, '0')}`;
const FIRST_KEY = entryKey(0);
const LAST_KEY = entryKey(Number.MAX_SAFE_INTEGER);
/**
 * LevelDB's memory, sized for a gateway's RSS budget (100 MB, docs/BENCHMARKS.md "Soak"): a 1 MiB memtable (default
 * 4 MiB; it is held twice while one is flushed, and is allocated by whichever libuv thread writes, in that thread's
 * malloc arena) and a 1 MiB block cache (default 8 MiB; a gateway reads back mostly what it has just written, from
 * the memtable). 16 readings a second fill 1 MiB in about 45 s. Soak, 10 minutes: max RSS 98.2 -> 92.8 MB.
 */
const LEVEL_MEMORY = { writeBufferSize: 1 << 20, cacheSize: 1 << 20 };
/** The marker file of an outbox, beside the LevelDB files (LevelDB leaves names it does not know alone). */
export const OUTBOX_MARKER = 'STELE-OUTBOX';

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
  readonly #hw: HighWater;
  #hwFailures = 0;

  private constructor(db: Level<string, Uint8Array>, hw: HighWater, head: Head, acked: number, now: () => number, unsignedFrom: number | undefined) {
    this.#db = db;
    this.#hw = hw;
    this.#head = head;
    this.#acked = acked;
    this.#now = now;
    this.#unsignedFrom = unsignedFrom;
  }

  /**
   * Opens the outbox in `dir`, restoring the chain head and the acked mark. A new outbox is created only when
   * `dir` holds nothing (and `options.create` is not false); an existing one is opened without create-if-missing,
   * its marker's high-water seq checked against the head, and its unacknowledged entries walked (FORMAT.md
   * §12.1). Refusals: `OUTBOX_MISSING`, `OUTBOX_ROLLED_BACK`, `OUTBOX_CORRUPT`, `OUTBOX_GAP`; `OUTBOX_LOCKED` when
   * another process holds it.
   */
  static async open(dir: string, options: OutboxOptions = {}): Promise<Outbox> {
    if (typeof dir !== 'string' || dir.length === 0) throw new TypeError('dir must be a non-empty string');
    const markerPath = join(dir, OUTBOX_MARKER);
    let markerSeq: number | undefined;
    try {
      markerSeq = await readMarker(markerPath);
    } catch (err) {
      if (err instanceof OutboxError) throw err;
      throw new OutboxError('OUTBOX_IO', 'cannot read the outbox marker', { cause: err, where: { dir } });
    }
    const files = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [];
      throw new OutboxError('OUTBOX_IO', 'cannot list the outbox folder', { cause: err, where: { dir } });
    });
    const fresh = markerSeq === undefined && files.length === 0;
    if (fresh && options.create === false) throw new OutboxError('OUTBOX_MISSING', 'there is no outbox here (and creating one was not asked for)', { where: { dir } });
    if (fresh) await mkdir(dir, { recursive: true, mode: 0o700 });
    else await chmod(dir, 0o700).catch(() => undefined); // evidence: the service user's only
    const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view', createIfMissing: fresh, ...LEVEL_MEMORY });
    try {
      await db.open();
    } catch (cause) {
      const code = levelCode(cause);
      if (code === 'LEVEL_LOCKED') throw new OutboxError('OUTBOX_LOCKED', 'outbox is held by another process', { cause, where: { dir } });
      if (code === 'MISSING') {
        throw new OutboxError('OUTBOX_MISSING', `the outbox store in ${dir} is gone (its LevelDB CURRENT file is missing): refused, an existing outbox is never recreated`, { cause, where: { dir } });
      }
      if (code === 'LEVEL_CORRUPTION') throw new OutboxError('OUTBOX_CORRUPT', 'the outbox store is corrupt', { cause, where: { dir } });
      throw new OutboxError('OUTBOX_IO', 'cannot open outbox', { cause, where: { dir } });
    }
    let hw: HighWater | undefined;
    try {
      const head = await readHead(db);
      const ackedBytes = await db.get(ACKED_KEY);
      const acked = ackedBytes === undefined ? 0 : uintField(decodeMeta(ackedBytes, ACKED_KEY), 'upTo', ACKED_KEY);
      if (acked > head.seq) throw corrupt('acked mark is above the chain head', { acked, head: head.seq });
      if (markerSeq !== undefined && markerSeq > head.seq) {
        throw new OutboxError('OUTBOX_ROLLED_BACK', `the outbox head is seq ${head.seq} but seqs up to ${markerSeq} were taken: synced writes were lost (torn log); refused, so that no seq is handed out twice`, {
          where: { dir, head: head.seq, highWater: markerSeq },
        });
      }
      await checkConsistent(db, head);
      await checkChain(db, acked, head);
      const unsignedFrom = await findUnsigned(db, head);
      if (unsignedFrom !== undefined && unsignedFrom <= acked) throw corrupt('an acknowledged entry is unsigned', { acked, unsignedFrom });
      // a new outbox, or one from before markers: the marker is written now (the head is the high water)
      hw = markerSeq === undefined ? await HighWater.create(dir, head.seq) : await HighWater.open(markerPath);
      if (markerSeq !== undefined && markerSeq < head.seq) await hw.set(head.seq); // a cut after the take, before its mark
      return new Outbox(db, hw, head, acked, options.now ?? Date.now, unsignedFrom);
    } catch (err) {
      await hw?.close().catch(() => undefined);
      await db.close().catch(() => undefined);
      if (err instanceof OutboxError) throw err;
      throw storeError('cannot read outbox', err, { dir });
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
          { type: 'put', key: entryKey(seq), value: seal({ reading: readingBytes, takenAt }) },
          { type: 'put', key: HEAD_KEY, value: seal({ seq, digest, device: deviceId }) },
        ],
        { sync: true },
      );
    } catch (cause) {
      throw storeError('cannot store the reading', cause, { seq });
    }
    // The reading is stored: the head moves, unsigned (so not publishable) until the signing stage signs it.
    this.#head = { seq, digest, device: deviceId };
    this.#unsignedFrom ??= seq;
    this.#unsignedSigner.set(seq, signer);
    await this.#markTaken(seq);
    // Only now is the reading taken.
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
      throw storeError('cannot read unsigned entries', cause, { seq: first });
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
        stored.map((e, i) => ({ type: 'put' as const, key: entryKey(e.seq), value: seal({ reading: e.reading, statement: statements[i]!, takenAt: e.takenAt }) })),
        { sync: true },
      );
    } catch (cause) {
      throw storeError('cannot store the statements', cause, { from: first, to: last });
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
          { type: 'put', key: entryKey(seq), value: seal({ reading: readingBytes, statement, takenAt }) },
          { type: 'put', key: HEAD_KEY, value: seal({ seq, digest, device: deviceId }) },
        ],
        { sync: true },
      );
    } catch (cause) {
      throw storeError('cannot store the reading', cause, { seq });
    }
    this.#head = { seq, digest, device: deviceId };
    await this.#markTaken(seq);
    // Only now is the reading taken.
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
      { type: 'put', key: entryKey(seq), value: seal({ reading: body, statement, takenAt }) },
      { type: 'put', key: HEAD_KEY, value: seal({ seq, digest, device: deviceId }) },
    ];
    if (resync !== undefined && resync.seq > this.#acked) ops.push({ type: 'put', key: ACKED_KEY, value: seal({ upTo: resync.seq }) });
    try {
      await this.#db.batch(ops, { sync: true });
    } catch (cause) {
      throw storeError('cannot store the statement', cause, { seq });
    }
    this.#head = { seq, digest, device: deviceId };
    await this.#markTaken(seq);
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
      throw storeError('cannot read outbox entries', cause, { seq });
    }
    // Every entry is checked as it is read back (its sum, and its statement against its reading), and the
    // unacknowledged ones must be the contiguous run asked for: a missing one is a gap, never skipped.
    const entries = rows.map(([key, value]) => decodeEntry(key, value));
    let expect = Math.max(seq, this.#acked + 1);
    for (const e of entries) {
      if (e.seq < expect) continue;
      if (e.seq !== expect) break;
      expect++;
    }
    const complete = entries.length === limit ? entries.at(-1)!.seq < expect : expect > headSeq;
    if (!complete) throw new OutboxError('OUTBOX_GAP', 'an unacknowledged outbox entry is missing', { where: { seq: expect } });
    return entries;
  }

  /**
   * Chain digest of the signed entry `seq` (SHA-256 of its reading or lifecycle body, FORMAT.md §2.1, §13.3), or
   * undefined when it is not stored (never taken, pruned, or not signed yet). What a confirmation's `head` is
   * compared with (FORMAT.md §11.1).
   */
  async digestAt(seq: number): Promise<Uint8Array | undefined> {
    if (!Number.isSafeInteger(seq) || seq < 1) throw new RangeError('seq must be a positive integer');
    this.#assertOpen();
    if (seq > this.signedUpTo()) return undefined;
    if (seq === this.#head.seq) return this.#head.digest.slice();
    let value: Uint8Array | undefined;
    try {
      value = await this.#db.get(entryKey(seq));
    } catch (cause) {
      throw storeError('cannot read an outbox entry', cause, { seq });
    }
    if (value === undefined) return undefined;
    const e = decodeStored(entryKey(seq), value);
    return e.statement === undefined ? undefined : readingDigest(e.reading);
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
        await this.#db.put(ACKED_KEY, seal({ upTo: target }));
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
      await this.#hw.close();
    })();
    return this.#closed;
  }

  /**
   * Records `seq` as taken in the marker (after the synced batch: on open, a head below it is a lost write). A
   * failure does not undo the take (the reading is stored): it is counted ({@link highWaterFailures}) and the
   * next take writes the mark again.
   */
  async #markTaken(seq: number): Promise<void> {
    try {
      await this.#hw.set(seq);
    } catch {
      this.#hwFailures++;
    }
  }

  /** Times the high-water mark could not be written since open (the torn-log guard was behind meanwhile). */
  highWaterFailures(): number {
    return this.#hwFailures;
  }

  #assertOpen(): void {
    if (this.#closing) throw new OutboxError('OUTBOX_CLOSED', 'outbox is closed');
  }
}

function corrupt(message: string, where: Record<string, unknown>, cause?: unknown): OutboxError {
  return new OutboxError('OUTBOX_CORRUPT', message, cause === undefined ? { where } : { cause, where });
}

/** A record's value: deterministic CBOR of `fields` plus `sum`, the first 8 bytes of SHA-256 of the CBOR without it (§12.1). */
function seal(fields: Record<string, unknown>): Uint8Array {
  return encodeCbor({ ...fields, sum: sha256(encodeCbor(fields)).subarray(0, SUM_BYTES) });
}
const SUM_BYTES = 8;

function decodeMeta(bytes: Uint8Array, key: string): Map<unknown, unknown> {
  let value: unknown;
  try {
    value = decodeCbor(bytes, { what: key });
  } catch (cause) {
    throw corrupt('outbox record does not decode', { key }, cause);
  }
  if (!(value instanceof Map)) throw corrupt('outbox record is not a map', { key });
  // Records written before sums existed have none (FORMAT.md §12.1); every record this version writes has one.
  if (value.has('sum')) {
    const sum = value.get('sum');
    const rest: Record<string, unknown> = {};
    for (const [k, v] of value) {
      if (typeof k !== 'string') throw corrupt('outbox record has a non-text key', { key });
      if (k !== 'sum') rest[k] = v;
    }
    if (!(sum instanceof Uint8Array) || !equalBytes(sum, sha256(encodeCbor(rest)).subarray(0, SUM_BYTES))) {
      throw corrupt('outbox record does not match its sum (altered on disk)', { key });
    }
  }
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

/** A stored entry, signed or not (`statement` absent while unsigned), checked against itself (§12.1). */
function decodeStored(key: string, value: Uint8Array): Omit<OutboxEntry, 'statement'> & { statement: Uint8Array | undefined; prev: Uint8Array } {
  const seq = Number(key.slice(ENTRY_PREFIX.length));
  if (!key.startsWith(ENTRY_PREFIX) || key.length !== ENTRY_PREFIX.length + SEQ_DIGITS || !Number.isSafeInteger(seq) || seq < 1) throw corrupt('bad outbox key', { key });
  const map = decodeMeta(value, key);
  const reading = bytesField(map, 'reading', key);
  const statement = map.has('statement') ? bytesField(map, 'statement', key) : undefined;
  const takenAt = uintField(map, 'takenAt', key);
  return { seq, reading, statement, takenAt, prev: checkEntry(seq, reading, statement, key) };
}

/**
 * The stored reading must be the one its stored statement signs (digest, device, seq: what ingest will check), and
 * sit at its key's seq. A lifecycle entry (§12, rotation or reinstall) holds the body its statement carries.
 * Returns the prev the entry links to.
 */
function checkEntry(seq: number, reading: Uint8Array, statement: Uint8Array | undefined, key: string): Uint8Array {
  if (statement === undefined) {
    let r: Reading;
    try {
      r = decodeReading(reading);
    } catch (cause) {
      throw corrupt('an unsigned outbox entry is not a reading', { key, seq }, cause);
    }
    if (r.seq !== seq) throw corrupt('an outbox entry holds another seq than its key', { key, seq, readingSeq: r.seq });
    return r.prev;
  }
  let parsed: ReturnType<typeof parseStatement> | undefined;
  try {
    parsed = parseStatement(statement);
  } catch {
    parsed = undefined;
  }
  if (parsed !== undefined) {
    let check: ReturnType<typeof checkStatementAgainstReading>;
    try {
      check = checkStatementAgainstReading(parsed, reading);
    } catch (cause) {
      throw corrupt('an outbox entry holds no valid reading', { key, seq }, cause);
    }
    if (check !== 'ok') throw corrupt(`an outbox entry's reading does not match its statement (${check})`, { key, seq });
    if (parsed.seq !== seq) throw corrupt('an outbox entry holds another seq than its key', { key, seq, statementSeq: parsed.seq });
    return decodeReading(reading).prev;
  }
  let lifecycle: ReturnType<typeof parseLifecycleStatement>;
  try {
    lifecycle = parseLifecycleStatement(statement);
  } catch (cause) {
    throw corrupt('an outbox entry holds no valid statement', { key, seq }, cause);
  }
  if (!equalBytes(lifecycle.bodyBytes, reading) || lifecycle.seq !== seq || lifecycle.prev === undefined) {
    throw corrupt("an outbox entry's body does not match its lifecycle statement", { key, seq });
  }
  return lifecycle.prev;
}

/**
 * Walks the entries not yet acknowledged (acked + 1 .. head): each present, each checked, each linked to the one
 * before. They are what will be published; acknowledged ones (kept for retention) are checked when read.
 */
async function checkChain(db: Level<string, Uint8Array>, acked: number, head: Head): Promise<void> {
  if (head.seq <= acked) return;
  let expect = acked + 1;
  let prevDigest: Uint8Array | undefined;
  const it = db.iterator({ gte: entryKey(acked + 1), lte: entryKey(head.seq) });
  try {
    for await (const [key, value] of it) {
      const e = decodeStored(key, value);
      if (e.seq !== expect) throw new OutboxError('OUTBOX_GAP', 'an unacknowledged outbox entry is missing', { where: { seq: expect } });
      if (prevDigest !== undefined && !equalBytes(e.prev, prevDigest)) throw corrupt('an outbox entry does not link to the one before', { seq: e.seq });
      prevDigest = readingDigest(e.reading);
      expect++;
    }
  } catch (err) {
    if (err instanceof OutboxError) throw err;
    throw storeError('cannot read the outbox entries', err, { from: acked + 1 });
  } finally {
    await it.close().catch(() => undefined);
  }
  if (expect !== head.seq + 1) throw new OutboxError('OUTBOX_GAP', 'an unacknowledged outbox entry is missing', { where: { seq: expect } });
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

/**
 * The LevelDB failure behind an error, as far as it matters here: `LEVEL_LOCKED`, `LEVEL_CORRUPTION`, or
 * `MISSING` (opened without create-if-missing and no CURRENT).
 */
function levelCode(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; message?: unknown; cause?: unknown } | undefined, i = 0; e !== undefined && e !== null && i < 5; e = e.cause as typeof e, i++) {
    if (e.code === 'LEVEL_LOCKED' || e.code === 'LEVEL_CORRUPTION') return e.code;
    const m = String(e.message ?? '');
    if (/does not exist \(create_if_missing is false\)/.test(m)) return 'MISSING';
    if (/^Corruption:|corrupt/i.test(m)) return 'LEVEL_CORRUPTION';
  }
  return undefined;
}

/** A store failure: OUTBOX_CORRUPT when LevelDB says its data is corrupt, else OUTBOX_IO. */
function storeError(message: string, cause: unknown, where: Record<string, unknown>): OutboxError {
  if (cause instanceof OutboxError) return cause;
  return new OutboxError(levelCode(cause) === 'LEVEL_CORRUPTION' ? 'OUTBOX_CORRUPT' : 'OUTBOX_IO', message, { cause, where });
}

/*
 * The marker file (FORMAT.md §12.1): 8 bytes of magic, then two 16-byte slots, each the high-water seq as a
 * big-endian uint64 and the first 8 bytes of SHA-256(magic || those 8 bytes). Seq n is written to slot n % 2 and
 * fdatasynced, so a torn write spoils one slot and the other still holds n - 1.
 */
const MARKER_MAGIC = utf8('STELEOB1');
const MARKER_BYTES = 8 + 2 * 16;

function markerSlot(seq: number): Uint8Array {
  const n = new Uint8Array(8);
  new DataView(n.buffer).setBigUint64(0, BigInt(seq));
  return concatBytes(n, sha256(concatBytes(MARKER_MAGIC, n)).subarray(0, 8));
}

/** The high-water seq of the marker at `path`, or undefined when there is none. */
async function readMarker(path: string): Promise<number | undefined> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  if (bytes.length !== MARKER_BYTES || !equalBytes(bytes.subarray(0, 8), MARKER_MAGIC)) throw corrupt('the outbox marker is not one', { path });
  let best: number | undefined;
  for (const off of [8, 24]) {
    const slot = bytes.subarray(off, off + 16);
    const seq = Number(new DataView(slot.buffer, slot.byteOffset, 8).getBigUint64(0));
    if (Number.isSafeInteger(seq) && equalBytes(slot, markerSlot(seq)) && (best === undefined || seq > best)) best = seq;
  }
  if (best === undefined) throw corrupt('the outbox marker holds no valid high-water seq', { path });
  return best;
}

class HighWater {
  readonly #fh: FileHandle;
  private constructor(fh: FileHandle) {
    this.#fh = fh;
  }

  static async open(path: string): Promise<HighWater> {
    return new HighWater(await openFile(path, 'r+'));
  }

  /** Writes a new marker at `seq` (temp file, fsync, rename, fsync of the folder). */
  static async create(dir: string, seq: number): Promise<HighWater> {
    const path = join(dir, OUTBOX_MARKER);
    const tmp = `${path}.tmp`;
    const fh = await openFile(tmp, 'w', 0o600);
    try {
      await fh.write(concatBytes(MARKER_MAGIC, markerSlot(seq), markerSlot(seq)));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    const d = await openFile(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
    return HighWater.open(path);
  }

  async set(seq: number): Promise<void> {
    const slot = markerSlot(seq);
    await this.#fh.write(slot, 0, slot.length, 8 + (seq % 2) * 16);
    await this.#fh.datasync();
  }

  close(): Promise<void> {
    return this.#fh.close();
  }
}
