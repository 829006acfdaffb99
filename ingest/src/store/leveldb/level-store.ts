/**
 * The LevelDB ingest store (the embedded default, one process): one LevelDB (level 10, `view` values = Uint8Array), CBOR values, string keys with a prefix
 * per record kind. Every write that must be atomic (a commit of statements with its head and pending leaves; a
 * batch with the (batchId, leafIndex) of each of its entries) is one `db.batch` with `sync: true`.
 *
 * Keys (numbers zero-padded to 16 digits so that keys sort like numbers and exact keys never collide, whatever
 * the device id holds; device ids have no control characters, checkDeviceId in @stele/device):
 *   dev!<deviceId>                 enrolment record + decoded public key
 *   kid!<kid b64url>               deviceId
 *   head!<deviceId>                committed head {seq, digest}
 *   ent!<deviceId>!<seq>           {statement, reading?, receivedAt}, written once at commit (stores written
 *                                  before 2026-12-04 also hold batchId and leafIndex here once sealed)
 *   bpos!<deviceId>!<seq>          12 bytes: the batch id (8, big-endian) and leaf index (4) of a sealed entry,
 *                                  written with its batch: sealing never reads or rewrites the entries
 *   fork!<deviceId>!<seq>!<hash>   a second, different statement for a committed seq (kept, never applied)
 *   pend!<order>                   the pending leaves of one commit {deviceId, seq (the first), leafHashes (32 bytes
 *                                  each)}, in commit order: the leaf of seq + i has order + i; sealing part of them
 *                                  writes the rest under the order of its first (stores written before 2026-12-04 hold
 *                                  one leaf a row, {deviceId, seq, leafHash}, read as ever)
 *   bat!<batchId>                  {batchId, size, root, leafHashes, protectedBytes, signature, createdAt, anchor?}
 *   unanch!<batchId>               marker: batch stored but not anchored (final) yet
 *   anc!<batchId>                  JSON AnchorJob: where its anchor stands (anchor/machine.ts); written {state:
 *                                  'prepared'} with the batch (the outbox row); deleted when final
 *   nonce!<account>                the last nonce allocated to the anchoring account (signAnchorWithNonce)
 *   raw!<sha256 hex>!<deviceId>!<seq>  empty: the reading seq of deviceId names this frame digest in `raw`
 *                                  (written in the same batch as its entry; only for readings sent in full)
 *   meta!rawIndex                  marker: every stored entry is in the raw index (set once it was built)
 *   reg!<deviceId>                 the device's key registry row (ingest/src/registry/), written with commits
 *   ent!\u0001<deviceId>!<n>       the n-th lifecycle statement ingest signed for the device (enrolment,
 *                                  revocation): a log of its own, committed like a device's chain
 *   held!<deviceId>!<seq>          {payload, receivedAt, signatureChecked?}: a statement ahead of the head, waiting for the gap
 *   tdev!<deviceId>!<time>!<seq>   {receivedAt, deviceTime}: time index by the reading's `time` (readings in full)
 *   trcv!<deviceId>!<recv>!<seq>   {receivedAt, deviceTime?}: time index by ingest receive time (every entry)
 *   meta!timeIndex                 marker: every stored entry is in the time indexes
 *   req!<sha256 hex>               an enrolment request file, written with its enrolment statement
 *   adel!<alertId>!<channel>       an alert's delivery record on one channel (ingest/src/notify/)
 *   apend!<channel>!<queuedAt>!<alertId>  empty: that record is pending (written in the same batch)
 *
 * One process owns the directory (LevelDB's lock); within it, commits of one device and sealing are serialised
 * here, so the interface's atomic steps (../types.ts) hold. Because no other process can write it, this store
 * keeps exact mirrors of the small hot rows in memory (heads, registry rows, which seqs are held), read on every
 * statement group and every confirmation, and group-commits: the synced writes (commits, holds) that arrive while
 * one is being written go together into the next `db.batch` (one fsync for all of them; each caller's ops stay
 * in one atomic batch, and it resolves only once that batch is durable).
 */
import { Level } from 'level';
import { type AnchorRef, equalBytes, toBase64Url, toHex, decodeCbor, encodeCbor, sha256 } from '@stele/core';
import type { EnrolmentRecord } from '@stele/device';
import { IngestError } from '../../errors.ts';
import { decodeDeviceKeys, encodeDeviceKeys, registryKey, type DeviceKeys } from '../../registry/index.ts';
import type {
  AlertDeliveryRow,
  BatchRow,
  CommitItem,
  CommitOptions,
  DeviceRow,
  EntryRow,
  ForkRow,
  Head,
  HeldRow,
  IndexFields,
  AnchorNonceJob,
  IngestStore,
  PendingLeaf,
  RawRef,
  SealedBatch,
  TimeQuery,
  TimeRef,
} from '../types.ts';
import {
  checkCommitItems,
  checkHeldRows,
  checkLease,
  checkTimeQuery,
  conflict,
  IN_FLIGHT_ANCHOR_STATES,
  indexFieldsOf,
  KeyedMutex,
  nextAnchorNonce,
  OUTBOX_ANCHOR_JOB,
} from '../derive.ts';

type Op = { type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string };

const pad = (n: number): string => String(n).padStart(16, '0');
/**
 * LevelDB's memtable (its default is 4 MiB): every reading wrote five rows and its sealing two more (four and one
 * since a commit's pending leaves share a row), and with 4 MiB the memtable was flushed and level 0 compacted
 * several times a second at full load. 16 MiB (at most twice that in memory while one is flushed): CPU of commit and
 * seal, compaction included, 37-44 -> 27-33 us per statement (bench/src/store-commit.ts's load, 200,000 statements);
 * 32 and 64 MiB did no better.
 */
const WRITE_BUFFER_BYTES = 16 * 1024 * 1024;
const SYNC = { sync: true } as const;
const RAW_INDEX_MARKER = 'meta!rawIndex';
const TIME_INDEX_MARKER = 'meta!timeIndex';
const rawKey = (digest: Uint8Array, deviceId: string, seq: number): string => `raw!${toHex(digest)}!${deviceId}!${pad(seq)}`;
const EMPTY = new Uint8Array(0);
/** Store key of an enrolment request file: `req!` + hex SHA-256 of its bytes. */
export const enrolmentRequestKey = (digest: Uint8Array): string => `req!${toHex(digest)}`;

export class LevelStore implements IngestStore {
  readonly kind = 'leveldb' as const;
  private nextOrder = 0;
  private nextBatch = 1;
  private readonly locks = new KeyedMutex();
  /** Anchor job leases: one process owns a LevelDB store, so they live in its memory. */
  private readonly leases = new Map<number, { worker: string; untilMs: number }>();
  /** Mirrors of what this process (the only writer) wrote: heads, encoded registry rows, held seqs per device. */
  private readonly heads = new Map<string, Head>();
  private readonly registryRows = new Map<string, Uint8Array | undefined>();
  private readonly held = new Map<string, Set<number>>();
  /**
   * The `pend` rows, in order: sealing takes its leaves here instead of iterating and decoding rows this process
   * wrote itself (read once at open; a row enters after its commit is durable and leaves after its batch is).
   */
  private pending: PendingRowLeaf[] = [];
  /** The group commit being gathered: its ops already in a native batch, and who waits for it to be durable. */
  private group: { batch: ReturnType<Level<string, Uint8Array>['batch']>; waiters: { resolve: () => void; reject: (e: unknown) => void }[]; failed?: unknown } | undefined;
  private groupWriting = false;

  private constructor(
    private readonly db: Level<string, Uint8Array>,
    readonly location: string,
  ) {}

  static async open(dir: string): Promise<LevelStore> {
    const db = new Level<string, Uint8Array>(dir, { valueEncoding: 'view', writeBufferSize: WRITE_BUFFER_BYTES });
    await db.open();
    const store = new LevelStore(db, dir);
    for await (const [key, value] of db.iterator({ gt: 'pend!', lt: 'pend"' })) store.pending.push(...decPendingRow(Number(key.slice(5)), value));
    if (store.pending.length > 0) store.nextOrder = store.pending[store.pending.length - 1]!.order + 1;
    const lastBatch = await db.keys({ gt: 'bat!', lt: 'bat"', reverse: true, limit: 1 }).all();
    if (lastBatch[0] !== undefined) store.nextBatch = Number(lastBatch[0].slice(4)) + 1;
    for await (const key of db.keys({ gt: 'held!', lt: 'held"' })) {
      const m = /^held!(.*)!(\d{16})$/.exec(key);
      if (m !== null) store.heldSet(m[1]!).add(Number(m[2]));
    }
    if ((await db.get(RAW_INDEX_MARKER)) === undefined || (await db.get(TIME_INDEX_MARKER)) === undefined) await store.buildIndexes();
    return store;
  }

  /**
   * Indexes the frame digests and times of every stored entry (stores written before the indexes existed), in
   * chunks, then sets the markers. Idempotent: keys are exact, so a crash half-way only means it runs again.
   */
  private async buildIndexes(): Promise<void> {
    let ops: Op[] = [];
    for await (const [key, value] of this.db.iterator({ gt: 'ent!', lt: 'ent"' })) {
      const m = /^ent!(.*)!(\d{16})$/.exec(key);
      if (m === null) continue;
      ops.push(...indexOps(m[1]!, Number(m[2]), decEntry(value)));
      if (ops.length >= 1000) {
        await writeBatch(this.db, ops);
        ops = [];
      }
    }
    ops.push({ type: 'put', key: RAW_INDEX_MARKER, value: EMPTY }, { type: 'put', key: TIME_INDEX_MARKER, value: EMPTY });
    await writeBatch(this.db, ops, SYNC);
  }

  private heldSet(deviceId: string): Set<number> {
    let set = this.held.get(deviceId);
    if (set === undefined) {
      set = new Set();
      this.held.set(deviceId, set);
    }
    return set;
  }

  /**
   * Writes `ops` in a synced batch, together with the ops of every other caller that arrives while a batch is being
   * written (group commit: one fsync for many statements). Resolves once the batch holding them is durable.
   * The ops go into the native batch at once, not into an array held until the write: a group gathers thousands of
   * rows while the previous one syncs, and rows held that long outlived the young generation (measured in the
   * ingest-throughput benchmark: the store's rows were 43 % of what the main thread promoted to the old one).
   * Should an op be refused (never for the rows this store makes), the whole group fails, nothing of it written.
   */
  private writeSynced(ops: Op[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const g = (this.group ??= { batch: this.db.batch(), waiters: [] });
      if (g.failed === undefined) {
        try {
          addOps(g.batch, ops);
        } catch (e) {
          g.failed = e;
        }
      }
      g.waiters.push({ resolve, reject });
      if (!this.groupWriting) void this.writeGroups();
    });
  }

  private async writeGroups(): Promise<void> {
    this.groupWriting = true;
    try {
      for (let g = this.group; g !== undefined; g = this.group) {
        this.group = undefined;
        try {
          if (g.failed !== undefined) {
            await g.batch.close();
            throw g.failed;
          }
          await g.batch.write(SYNC);
          for (const w of g.waiters) w.resolve();
        } catch (e) {
          for (const w of g.waiters) w.reject(e);
        }
      }
    } finally {
      this.groupWriting = false;
    }
  }

  async findByRawDigest(digest: Uint8Array, limit = 100): Promise<RawRef[]> {
    if (!(digest instanceof Uint8Array) || digest.length !== 32) throw new TypeError('digest must be 32 bytes');
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError('limit must be a positive integer');
    const prefix = `raw!${toHex(digest)}!`;
    const out: RawRef[] = [];
    for await (const key of this.db.keys({ gt: prefix, lt: `${prefix}\u{10ffff}`, limit })) {
      const rest = key.slice(prefix.length);
      const m = /^(.*)!(\d{16})$/.exec(rest);
      if (m !== null) out.push({ deviceId: m[1]!, seq: Number(m[2]) });
    }
    return out;
  }

  async findByTime(deviceId: string, q: TimeQuery): Promise<TimeRef[]> {
    checkTimeQuery(q);
    const prefix = `${q.by === 'device' ? 'tdev' : 'trcv'}!${deviceId}!`;
    const out: TimeRef[] = [];
    for await (const [key, value] of this.db.iterator({ gte: `${prefix}${pad(q.fromMs)}`, lt: `${prefix}${pad(q.toMs)}` })) {
      // A device id may itself hold `!`: keep only keys that are exactly <prefix><16 digits>!<16 digits>.
      const m = /^(\d{16})!(\d{16})$/.exec(key.slice(prefix.length));
      if (m === null) continue;
      const o = dec(value);
      const ref: TimeRef = { seq: Number(m[2]), receivedAt: num(o, 'receivedAt') };
      if (o.has('deviceTime')) ref.deviceTime = num(o, 'deviceTime');
      out.push(ref);
      if (out.length >= q.limit) break;
    }
    return out;
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  // ---- devices and registry

  async putDevice(row: DeviceRow): Promise<void> {
    const id = row.record.deviceId;
    await writeBatch(
      this.db,
      [
        { type: 'put', key: `dev!${id}`, value: enc({ record: cleanRecord(row.record), publicKey: row.publicKey, kid: row.kid }) },
        { type: 'put', key: `kid!${toBase64Url(row.kid)}`, value: enc({ deviceId: id }) },
      ],
      SYNC,
    );
  }

  async listDevices(): Promise<DeviceRow[]> {
    const out: DeviceRow[] = [];
    for await (const value of this.db.values({ gt: 'dev!', lt: 'dev"' })) out.push(decDevice(value));
    return out;
  }

  async getDevice(deviceId: string): Promise<DeviceRow | undefined> {
    const v = await this.db.get(`dev!${deviceId}`);
    return v === undefined ? undefined : decDevice(v);
  }

  async getDeviceKeys(deviceId: string): Promise<DeviceKeys | undefined> {
    let v: Uint8Array | undefined;
    if (this.registryRows.has(deviceId)) v = this.registryRows.get(deviceId);
    else {
      v = await this.db.get(registryKey(deviceId));
      if (!this.registryRows.has(deviceId)) this.registryRows.set(deviceId, v === undefined ? undefined : Uint8Array.from(v));
    }
    return v === undefined ? undefined : decodeDeviceKeys(v);
  }

  async listDeviceKeys(): Promise<DeviceKeys[]> {
    const out: DeviceKeys[] = [];
    for await (const value of this.db.values({ gt: 'reg!', lt: 'reg"' })) out.push(decodeDeviceKeys(value));
    return out;
  }

  async getEnrolmentRequest(digest: Uint8Array): Promise<Uint8Array | undefined> {
    const v = await this.db.get(enrolmentRequestKey(digest));
    return v === undefined ? undefined : Uint8Array.from(v);
  }

  // ---- heads and entries

  async getHead(deviceId: string): Promise<Head | undefined> {
    const known = this.heads.get(deviceId);
    if (known !== undefined) return { seq: known.seq, digest: known.digest.slice() };
    const v = await this.db.get(`head!${deviceId}`);
    if (v === undefined) return undefined;
    const o = dec(v);
    const head = { seq: num(o, 'seq'), digest: bytes(o, 'digest') };
    if (!this.heads.has(deviceId)) this.heads.set(deviceId, { seq: head.seq, digest: head.digest.slice() });
    return head;
  }

  async listHeads(): Promise<Map<string, Head>> {
    const out = new Map<string, Head>();
    for await (const [key, value] of this.db.iterator({ gt: 'head!', lt: 'head"' })) {
      const o = dec(value);
      out.set(key.slice(5), { seq: num(o, 'seq'), digest: bytes(o, 'digest') });
    }
    return out;
  }

  async getEntry(deviceId: string, seq: number): Promise<EntryRow | undefined> {
    const [v, pos] = await this.db.getMany([`ent!${deviceId}!${pad(seq)}`, `bpos!${deviceId}!${pad(seq)}`]);
    return v === undefined ? undefined : withPosition(decEntry(v), pos);
  }

  async getEntries(deviceId: string, firstSeq: number, lastSeq: number): Promise<[number, EntryRow][]> {
    const out: [number, EntryRow][] = [];
    const range = (kind: string) => ({ gte: `${kind}!${deviceId}!${pad(firstSeq)}`, lte: `${kind}!${deviceId}!${pad(lastSeq)}`, limit: lastSeq - firstSeq + 1 });
    const positions = new Map<number, Uint8Array>();
    const posPrefix = `bpos!${deviceId}!`.length;
    for await (const [key, value] of this.db.iterator(range('bpos'))) positions.set(Number(key.slice(posPrefix)), value);
    const prefix = `ent!${deviceId}!`.length;
    for await (const [key, value] of this.db.iterator(range('ent'))) {
      const seq = Number(key.slice(prefix));
      out.push([seq, withPosition(decEntry(value), positions.get(seq))]);
    }
    return out;
  }

  async commit(deviceId: string, items: readonly CommitItem[], head: Head, options: CommitOptions = {}): Promise<PendingLeaf[]> {
    checkCommitItems(items, head);
    return this.locks.run(`dev:${deviceId}`, async () => {
      const stored = (await this.getHead(deviceId))?.seq ?? 0;
      const fresh: CommitItem[] = [];
      for (const item of items) {
        if (item.seq <= stored) {
          const have = await this.getEntry(deviceId, item.seq);
          if (have === undefined || !equalBytes(have.statement, item.entry.statement)) throw conflict(deviceId, item.seq, 'a different statement is stored at this seq');
        } else fresh.push(item);
      }
      if (fresh.length === 0) return [];
      if (fresh[0]!.seq !== stored + 1) throw conflict(deviceId, fresh[0]!.seq, `the stored head is ${stored}`);
      const ops: Op[] = [];
      const registryRow = options.keys === undefined ? undefined : encodeDeviceKeys(options.keys);
      if (options.keys !== undefined) ops.push({ type: 'put', key: registryKey(options.keys.deviceId), value: registryRow! });
      if (options.enrolmentRequest !== undefined) ops.push({ type: 'put', key: enrolmentRequestKey(options.enrolmentRequest.digest), value: options.enrolmentRequest.file });
      const pending: PendingRowLeaf[] = [];
      // Reserve the orders before any await so that concurrent commits of other devices get distinct ones.
      const firstOrder = this.nextOrder;
      this.nextOrder = firstOrder + fresh.length;
      for (const [i, item] of fresh.entries()) {
        const order = firstOrder + i;
        ops.push({ type: 'put', key: `ent!${deviceId}!${pad(item.seq)}`, value: encEntry(item.entry) });
        ops.push(...indexOps(deviceId, item.seq, item.entry, item.index));
        pending.push({ order, deviceId, seq: item.seq, leafHash: item.leafHash, row: firstOrder });
      }
      ops.push(pendingRowOp(pending));
      ops.push({ type: 'put', key: `head!${deviceId}`, value: enc({ seq: head.seq, digest: head.digest }) });
      const heldSeqs = this.held.get(deviceId);
      const passed = heldSeqs === undefined ? [] : [...heldSeqs].filter((seq) => seq <= head.seq);
      for (const seq of passed) ops.push({ type: 'del', key: `held!${deviceId}!${pad(seq)}` });
      await this.writeSynced(ops);
      // in order of `order`: a commit that reserved lower orders and became durable later goes before
      let at = this.pending.length;
      while (at > 0 && this.pending[at - 1]!.order > firstOrder) at--;
      this.pending.splice(at, 0, ...pending);
      this.heads.set(deviceId, { seq: head.seq, digest: head.digest.slice() });
      if (options.keys !== undefined) this.registryRows.set(options.keys.deviceId, registryRow);
      for (const seq of passed) heldSeqs!.delete(seq);
      return pending.map(plainLeaf);
    });
  }

  async putFork(fork: ForkRow): Promise<void> {
    const h = toHex(sha256(fork.statement)).slice(0, 16);
    const value: Record<string, unknown> = { statement: fork.statement, receivedAt: fork.receivedAt };
    if (fork.reading !== undefined) value['reading'] = fork.reading;
    await this.db.put(`fork!${fork.deviceId}!${pad(fork.seq)}!${h}`, enc(value), SYNC);
  }

  async listForks(deviceId: string): Promise<ForkRow[]> {
    const out: ForkRow[] = [];
    const prefix = `fork!${deviceId}!`;
    for await (const [key, value] of this.db.iterator({ gt: prefix, lt: `${prefix}\u{10ffff}` })) {
      // A device id may itself hold `!`: keep only keys that are exactly <prefix><16 digits>!<16 hex>.
      if (!/^\d{16}![0-9a-f]{16}$/.test(key.slice(prefix.length))) continue;
      const o = dec(value);
      const row: ForkRow = { deviceId, seq: Number(key.slice(prefix.length, prefix.length + 16)), statement: bytes(o, 'statement'), receivedAt: num(o, 'receivedAt') };
      const r = o.get('reading');
      if (r instanceof Uint8Array) row.reading = r;
      out.push(row);
    }
    return out;
  }

  // ---- statements ahead of the head

  async hold(deviceId: string, row: HeldRow): Promise<boolean> {
    return (await this.holdAll(deviceId, [row])).length === 1;
  }

  async holdAll(deviceId: string, rows: readonly HeldRow[]): Promise<number[]> {
    checkHeldRows(rows);
    return this.locks.run(`dev:${deviceId}`, async () => {
      const set = this.heldSet(deviceId);
      const fresh = rows.filter((r) => !set.has(r.seq));
      if (fresh.length === 0) return [];
      await this.writeSynced(fresh.map((r) => ({ type: 'put', key: `held!${deviceId}!${pad(r.seq)}`, value: enc({ payload: r.payload, receivedAt: r.receivedAt, ...(r.signatureChecked === true ? { signatureChecked: true } : {}) }) })));
      for (const r of fresh) set.add(r.seq);
      return fresh.map((r) => r.seq).sort((a, b) => a - b);
    });
  }

  async listHeld(deviceId: string, fromSeq: number, limit: number): Promise<HeldRow[]> {
    // the mirror of held seqs (this process is the only writer) spares the disk look when nothing is held there
    const seqs = this.held.get(deviceId);
    if (seqs === undefined || ![...seqs].some((seq) => seq >= fromSeq)) return [];
    const prefix = `held!${deviceId}!`;
    const out: HeldRow[] = [];
    for await (const [key, value] of this.db.iterator({ gte: `${prefix}${pad(fromSeq)}`, lt: `${prefix}\u{10ffff}` })) {
      const rest = key.slice(prefix.length);
      if (!/^\d{16}$/.test(rest)) continue;
      const o = dec(value);
      out.push(decHeld(Number(rest), o));
      if (out.length >= limit) break;
    }
    return out;
  }

  async listHeldRun(deviceId: string, fromSeq: number, limit: number): Promise<HeldRow[]> {
    const seqs = this.held.get(deviceId);
    if (seqs === undefined || !seqs.has(fromSeq)) return [];
    let run = 0;
    while (run < limit && seqs.has(fromSeq + run)) run++;
    const prefix = `held!${deviceId}!`;
    const out: HeldRow[] = [];
    for await (const [key, value] of this.db.iterator({ gte: `${prefix}${pad(fromSeq)}`, lt: `${prefix}${pad(fromSeq + run)}` })) {
      const seq = Number(key.slice(prefix.length));
      if (seq !== fromSeq + out.length) break;
      const o = dec(value);
      out.push(decHeld(seq, o));
    }
    return out;
  }

  async countHeld(deviceId: string): Promise<number> {
    return this.held.get(deviceId)?.size ?? 0;
  }

  async countAllHeld(): Promise<number> {
    let n = 0;
    for (const set of this.held.values()) n += set.size;
    return n;
  }

  async dropHeld(deviceId: string, seq: number): Promise<void> {
    await this.locks.run(`dev:${deviceId}`, async () => {
      await this.writeSynced([{ type: 'del', key: `held!${deviceId}!${pad(seq)}` }]);
      this.held.get(deviceId)?.delete(seq);
    });
  }

  // ---- pending leaves and batches

  async countPending(): Promise<number> {
    return this.pending.length;
  }

  async listPending(limit?: number): Promise<PendingLeaf[]> {
    return this.pending.slice(0, limit).map(plainLeaf);
  }

  async sealBatch(maxSize: number, build: (batchId: number, leaves: readonly PendingLeaf[]) => Promise<SealedBatch>): Promise<BatchRow | undefined> {
    if (!Number.isSafeInteger(maxSize) || maxSize < 1) throw new RangeError('maxSize must be a positive integer');
    return this.locks.run('seal', async () => {
      const leaves = await this.listPending(maxSize);
      if (leaves.length === 0) return undefined;
      const batchId = this.nextBatch;
      const batch = await build(batchId, leaves);
      if (batch.batchId !== batchId) throw new RangeError(`batch id ${batch.batchId} is not the next one (${batchId})`);
      if (batch.size !== leaves.length || batch.leafHashes.length !== leaves.length) throw new RangeError('the batch must hold exactly the leaves given');
      // The entries stay as committed: their batch position goes beside them (a pending leaf was written in the
      // same atomic batch as its entry, so it never names a missing one).
      const ops: Op[] = [];
      for (const [i, l] of leaves.entries()) ops.push({ type: 'put', key: `bpos!${l.deviceId}!${pad(l.seq)}`, value: encPosition(batchId, i) });
      // The pending rows the batch took from: gone, or (the last one, cut by maxSize) written again with the rest.
      const sealed = new Set(leaves.map((l) => l.order));
      const rows = new Set(this.pending.filter((l) => sealed.has(l.order)).map((l) => l.row));
      const rest = this.pending.filter((l) => rows.has(l.row) && !sealed.has(l.order));
      for (const r of rows) ops.push({ type: 'del', key: `pend!${pad(r)}` });
      const moved = rest.map((l) => ({ ...l, row: rest[0]!.order }));
      if (moved.length > 0) ops.push(pendingRowOp(moved));
      const row: BatchRow = { ...batch, leaves: leaves.map((l) => ({ deviceId: l.deviceId, seq: l.seq })) };
      ops.push({ type: 'put', key: `bat!${pad(batchId)}`, value: encBatch(row) });
      ops.push({ type: 'put', key: `unanch!${pad(batchId)}`, value: EMPTY });
      // the anchor outbox row, in the same write as the batch
      ops.push({ type: 'put', key: `anc!${pad(batchId)}`, value: new TextEncoder().encode(JSON.stringify(OUTBOX_ANCHOR_JOB)) });
      await writeBatch(this.db, ops, SYNC);
      const movedByOrder = new Map(moved.map((l) => [l.order, l]));
      this.pending = this.pending.filter((l) => !sealed.has(l.order)).map((l) => movedByOrder.get(l.order) ?? l);
      this.nextBatch = batchId + 1;
      return row;
    });
  }

  async setAnchor(batchId: number, anchor: AnchorRef): Promise<void> {
    const row = await this.getBatch(batchId);
    if (row === undefined) throw new RangeError(`no batch ${batchId}`);
    row.anchor = anchor;
    await writeBatch(
      this.db,
      [
        { type: 'put', key: `bat!${pad(batchId)}`, value: encBatch(row) },
        { type: 'del', key: `unanch!${pad(batchId)}` },
        { type: 'del', key: `anc!${pad(batchId)}` },
      ],
      SYNC,
    );
  }

  async putAnchorJob(batchId: number, job: object): Promise<void> {
    await this.db.put(`anc!${pad(batchId)}`, new TextEncoder().encode(JSON.stringify(job)), SYNC);
  }

  async getAnchorJob<T>(batchId: number): Promise<T | undefined> {
    const v = await this.db.get(`anc!${pad(batchId)}`);
    return v === undefined ? undefined : (JSON.parse(new TextDecoder().decode(v)) as T);
  }

  async getBatch(batchId: number): Promise<BatchRow | undefined> {
    const v = await this.db.get(`bat!${pad(batchId)}`);
    return v === undefined ? undefined : decBatch(v);
  }

  async listUnanchoredIds(): Promise<number[]> {
    const out: number[] = [];
    for await (const key of this.db.keys({ gt: 'unanch!', lt: 'unanch"' })) out.push(Number(key.slice(7)));
    return out;
  }

  async batchCount(): Promise<number> {
    return this.nextBatch - 1;
  }

  async leaseAnchorJobs(worker: string, leaseMs: number, limit: number): Promise<number[]> {
    checkLease(worker, leaseMs, limit);
    return this.locks.run('anchor-lease', async () => {
      const now = Date.now();
      const out: number[] = [];
      for (const id of await this.listUnanchoredIds()) {
        if (out.length >= limit) break;
        const l = this.leases.get(id);
        if (l !== undefined && l.worker !== worker && l.untilMs >= now) continue;
        this.leases.set(id, { worker, untilMs: now + leaseMs });
        out.push(id);
      }
      return out;
    });
  }

  private holdsLease(batchId: number, worker: string): boolean {
    const l = this.leases.get(batchId);
    return l !== undefined && l.worker === worker && l.untilMs >= Date.now();
  }

  async putLeasedAnchorJob(batchId: number, worker: string, job: object): Promise<boolean> {
    return this.locks.run('anchor-lease', async () => {
      if (!this.holdsLease(batchId, worker)) return false;
      await this.putAnchorJob(batchId, job);
      return true;
    });
  }

  async signAnchorWithNonce(batchId: number, worker: string, account: string, chainNonce: number, sign: (nonce: number) => Promise<AnchorNonceJob>): Promise<boolean> {
    const acct = account.toLowerCase();
    return this.locks.run('anchor-lease', async () => {
      if (!this.holdsLease(batchId, worker)) return false;
      const inFlight: number[] = [];
      for await (const [key, v] of this.db.iterator({ gt: 'anc!', lt: 'anc"' })) {
        if (key === `anc!${pad(batchId)}`) continue;
        const j = JSON.parse(new TextDecoder().decode(v)) as { state?: string; nonce?: unknown };
        if (typeof j.nonce === 'number' && IN_FLIGHT_ANCHOR_STATES.includes(j.state ?? '')) inFlight.push(j.nonce);
      }
      const nonce = nextAnchorNonce(chainNonce, inFlight);
      const job = await sign(nonce);
      if (job.nonce !== nonce) throw new RangeError(`the signed job carries nonce ${job.nonce}, not the allocated ${nonce}`);
      await writeBatch(
        this.db,
        [
          { type: 'put', key: `anc!${pad(batchId)}`, value: new TextEncoder().encode(JSON.stringify(job)) },
          { type: 'put', key: `nonce!${acct}`, value: new TextEncoder().encode(String(nonce)) },
        ],
        SYNC,
      );
      return true;
    });
  }

  async getLastAnchorNonce(account: string): Promise<number | undefined> {
    const v = await this.db.get(`nonce!${account.toLowerCase()}`);
    return v === undefined ? undefined : Number(new TextDecoder().decode(v));
  }

  // ---- alert notifications

  async putAlertDelivery(row: AlertDeliveryRow): Promise<void> {
    const marker = `apend!${row.channel}!${pad(row.queuedAt)}!${row.alertId}`;
    await writeBatch(
      this.db,
      [{ type: 'put', key: `adel!${row.alertId}!${row.channel}`, value: encDelivery(row) }, row.state === 'pending' ? { type: 'put', key: marker, value: EMPTY } : { type: 'del', key: marker }],
      SYNC,
    );
  }

  async getAlertDelivery(alertId: string, channel: string): Promise<AlertDeliveryRow | undefined> {
    const v = await this.db.get(`adel!${alertId}!${channel}`);
    return v === undefined ? undefined : decDelivery(alertId, channel, v);
  }

  async listAlertDeliveries(alertId: string): Promise<AlertDeliveryRow[]> {
    const prefix = `adel!${alertId}!`;
    const out: AlertDeliveryRow[] = [];
    for await (const [key, value] of this.db.iterator({ gt: prefix, lt: `${prefix}\u{10ffff}` })) out.push(decDelivery(alertId, key.slice(prefix.length), value));
    return out;
  }

  async listPendingAlertDeliveries(channel: string, limit: number): Promise<AlertDeliveryRow[]> {
    const prefix = `apend!${channel}!`;
    const out: AlertDeliveryRow[] = [];
    for await (const key of this.db.keys({ gt: prefix, lt: `${prefix}\u{10ffff}`, limit })) {
      const row = await this.getAlertDelivery(key.slice(prefix.length + 17), channel);
      if (row !== undefined && row.state === 'pending') out.push(row);
    }
    return out;
  }

  async countPendingAlertDeliveries(channel: string): Promise<number> {
    const prefix = `apend!${channel}!`;
    let n = 0;
    for await (const _key of this.db.keys({ gt: prefix, lt: `${prefix}\u{10ffff}` })) n++;
    return n;
  }
}

function encDelivery(r: AlertDeliveryRow): Uint8Array {
  const o: Record<string, unknown> = { state: r.state, body: r.body, queuedAt: r.queuedAt, attempts: r.attempts };
  if (r.lastAttemptAt !== undefined) o['lastAttemptAt'] = r.lastAttemptAt;
  if (r.lastError !== undefined) o['lastError'] = r.lastError;
  if (r.deliveredAt !== undefined) o['deliveredAt'] = r.deliveredAt;
  return enc(o);
}

function decDelivery(alertId: string, channel: string, value: Uint8Array): AlertDeliveryRow {
  const o = dec(value);
  const state = str(o, 'state');
  if (state !== 'pending' && state !== 'delivered') throw new IngestError('INGEST_STORE_ERROR', 'store field state is not pending or delivered');
  const row: AlertDeliveryRow = { alertId, channel, state, body: bytes(o, 'body'), queuedAt: num(o, 'queuedAt'), attempts: num(o, 'attempts') };
  if (o.has('lastAttemptAt')) row.lastAttemptAt = num(o, 'lastAttemptAt');
  if (o.has('lastError')) row.lastError = str(o, 'lastError');
  if (o.has('deliveredAt')) row.deliveredAt = num(o, 'deliveredAt');
  return row;
}

/** A pending leaf as LevelStore keeps it: with the order of the `pend` row that holds it. */
interface PendingRowLeaf extends PendingLeaf {
  row: number;
}

const plainLeaf = (l: PendingRowLeaf): PendingLeaf => ({ order: l.order, deviceId: l.deviceId, seq: l.seq, leafHash: l.leafHash });

/** The `pend` row of consecutive leaves of one device (consecutive orders and seqs), keyed by the first's order. */
function pendingRowOp(leaves: readonly PendingRowLeaf[]): Op {
  const first = leaves[0]!;
  const hashes = new Uint8Array(32 * leaves.length);
  for (const [i, l] of leaves.entries()) {
    if (l.deviceId !== first.deviceId || l.seq !== first.seq + i || l.order !== first.order + i || l.leafHash.length !== 32) throw new RangeError('a pending row holds consecutive leaves of one device');
    hashes.set(l.leafHash, 32 * i);
  }
  return { type: 'put', key: `pend!${pad(first.order)}`, value: encRow([['seq', first.seq], ['deviceId', first.deviceId], ['leafHashes', hashes]]) };
}

/** The leaves of the `pend` row at `order`: one commit's ({leafHashes}) or, in older stores, one leaf ({leafHash}). */
function decPendingRow(order: number, value: Uint8Array): PendingRowLeaf[] {
  const o = dec(value);
  const deviceId = str(o, 'deviceId');
  const seq = num(o, 'seq');
  if (o.has('leafHash')) return [{ order, deviceId, seq, leafHash: bytes(o, 'leafHash'), row: order }];
  const hashes = bytes(o, 'leafHashes');
  if (hashes.length === 0 || hashes.length % 32 !== 0) throw new IngestError('INGEST_STORE_ERROR', `pending row ${order}: leafHashes is not a multiple of 32 bytes`);
  return Array.from({ length: hashes.length / 32 }, (_, i) => ({ order: order + i, deviceId, seq: seq + i, leafHash: hashes.slice(32 * i, 32 * i + 32), row: order }));
}

/** Raw-frame and time index rows of one entry (written in the same batch as the entry). */
function indexOps(deviceId: string, seq: number, entry: EntryRow, known?: IndexFields): Op[] {
  const f = indexFieldsOf(entry.reading, known);
  const ops: Op[] = f.raw.map((d) => ({ type: 'put', key: rawKey(d, deviceId, seq), value: EMPTY }));
  // one value for both time rows: {receivedAt, deviceTime?}
  const t = encRow(f.deviceTime === undefined ? [['receivedAt', entry.receivedAt]] : [['deviceTime', f.deviceTime], ['receivedAt', entry.receivedAt]]);
  if (f.deviceTime !== undefined) ops.push({ type: 'put', key: `tdev!${deviceId}!${pad(f.deviceTime)}!${pad(seq)}`, value: t });
  ops.push({ type: 'put', key: `trcv!${deviceId}!${pad(entry.receivedAt)}!${pad(seq)}`, value: t });
  return ops;
}

/**
 * Writes `ops` as one atomic LevelDB batch. Through a chained batch: abstract-level's array form copies and
 * re-validates every op (measured here: about 12 us per op against 3 us chained, write included).
 */
async function writeBatch(db: Level<string, Uint8Array>, ops: readonly Op[], options?: { sync: boolean }): Promise<void> {
  const batch = db.batch();
  try {
    addOps(batch, ops);
  } catch (e) {
    await batch.close();
    throw e;
  }
  await (options === undefined ? batch.write() : batch.write(options));
}

/** Puts `ops` into a chained batch (LevelDB copies each key and value as it is put). */
function addOps(batch: ReturnType<Level<string, Uint8Array>['batch']>, ops: readonly Op[]): void {
  for (const op of ops) {
    if (op.type === 'put') batch.put(op.key, op.value);
    else batch.del(op.key);
  }
}

// ---- value encoding

function enc(value: Record<string, unknown>): Uint8Array {
  return encodeCbor(value);
}

function dec(value: Uint8Array): Map<unknown, unknown> {
  const v = decodeCbor(value, { what: 'store value' });
  if (!(v instanceof Map)) throw new IngestError('INGEST_STORE_ERROR', 'store value is not a map');
  return v;
}

function field(o: Map<unknown, unknown>, k: string): unknown {
  return o.get(k);
}

function num(o: Map<unknown, unknown>, k: string): number {
  const v = field(o, k);
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new IngestError('INGEST_STORE_ERROR', `store field ${k} is not an integer`);
  return v;
}

function str(o: Map<unknown, unknown>, k: string): string {
  const v = field(o, k);
  if (typeof v !== 'string') throw new IngestError('INGEST_STORE_ERROR', `store field ${k} is not a string`);
  return v;
}

function bytes(o: Map<unknown, unknown>, k: string): Uint8Array {
  const v = field(o, k);
  if (!(v instanceof Uint8Array)) throw new IngestError('INGEST_STORE_ERROR', `store field ${k} is not bytes`);
  return v;
}

function toPlain(v: unknown): unknown {
  if (v instanceof Map) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of v) o[String(k)] = toPlain(x);
    return o;
  }
  if (Array.isArray(v)) return v.map(toPlain);
  return v;
}

/** Drops undefined fields (CBOR has no undefined; exactOptionalPropertyTypes keeps them out of our own types). */
function cleanRecord(r: object): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r)) if (v !== undefined) o[k] = v;
  return o;
}

function decDevice(value: Uint8Array): DeviceRow {
  const o = dec(value);
  return { record: toPlain(o.get('record')) as EnrolmentRecord, publicKey: bytes(o, 'publicKey'), kid: bytes(o, 'kid') };
}

/** An entry as committed; its batch position, once sealed, is a `bpos` row of its own (never in the entry). */
function encEntry(e: EntryRow): Uint8Array {
  return encRow(e.reading === undefined ? [['statement', e.statement], ['receivedAt', e.receivedAt]] : [['reading', e.reading], ['statement', e.statement], ['receivedAt', e.receivedAt]]);
}

type RowValue = Uint8Array | number | string;

/**
 * The deterministic CBOR (RFC 8949 §4.2.1) of a map from short ASCII text keys to byte strings, unsigned integers
 * and text, written in one allocation: the rows written for every reading. `fields` must come in the map's
 * deterministic order (shorter keys first, then bytewise); the same bytes as encodeCbor (rows.test.ts).
 */
export function encRow(fields: readonly (readonly [string, RowValue])[]): Uint8Array {
  let size = headSize(fields.length);
  const texts: (Uint8Array | undefined)[] = [];
  for (const [k, v] of fields) {
    size += 1 + k.length;
    if (typeof v === 'number') size += headSize(v);
    else if (typeof v === 'string') {
      const b = TEXT.encode(v);
      texts.push(b);
      size += headSize(b.length) + b.length;
      continue;
    } else size += headSize(v.length) + v.length;
    texts.push(undefined);
  }
  const out = rowBytes(size);
  let at = writeHead(out, 0, 5, fields.length);
  for (const [i, [k, v]] of fields.entries()) {
    out[at++] = 0x60 | k.length;
    for (let j = 0; j < k.length; j++) out[at++] = k.charCodeAt(j);
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`store field ${k} must be an unsigned integer`);
      at = writeHead(out, at, 0, v);
    } else {
      const b = typeof v === 'string' ? texts[i]! : v;
      at = writeHead(out, at, typeof v === 'string' ? 3 : 2, b.length);
      out.set(b, at);
      at += b.length;
    }
  }
  return out;
}

const TEXT = new TextEncoder();

/**
 * Row values are cut from shared 64 KiB slabs instead of an allocation each: a value is put into a LevelDB batch,
 * which copies it, and dropped; every reading writes three or more rows, and an ArrayBuffer of its own for each
 * (memory outside the heap, freed after a scavenge) cost more than writing them. A value is a view into its slab,
 * which stays alive while any of its values is referenced; larger values get their own buffer.
 */
const SLAB_BYTES = 65_536;
let slab = new Uint8Array(SLAB_BYTES);
let slabUsed = 0;

function rowBytes(size: number): Uint8Array {
  if (size > SLAB_BYTES / 8) return new Uint8Array(size);
  if (slabUsed + size > SLAB_BYTES) {
    slab = new Uint8Array(SLAB_BYTES);
    slabUsed = 0;
  }
  const out = slab.subarray(slabUsed, slabUsed + size);
  slabUsed += size;
  return out;
}

function headSize(n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n < 0x100000000 ? 5 : 9;
}

function writeHead(out: Uint8Array, at: number, major: number, n: number): number {
  const m = major << 5;
  if (n < 24) out[at++] = m | n;
  else if (n < 0x100) {
    out[at++] = m | 24;
    out[at++] = n;
  } else if (n < 0x10000) {
    out[at++] = m | 25;
    out[at++] = n >>> 8;
    out[at++] = n & 0xff;
  } else if (n < 0x100000000) {
    out[at++] = m | 26;
    new DataView(out.buffer, out.byteOffset).setUint32(at, n);
    at += 4;
  } else {
    out[at++] = m | 27;
    const view = new DataView(out.buffer, out.byteOffset);
    view.setUint32(at, Math.floor(n / 2 ** 32));
    view.setUint32(at + 4, n >>> 0);
    at += 8;
  }
  return at;
}

function decHeld(seq: number, o: Map<unknown, unknown>): HeldRow {
  const row: HeldRow = { seq, payload: bytes(o, 'payload'), receivedAt: num(o, 'receivedAt') };
  if (o.get('signatureChecked') === true) row.signatureChecked = true;
  return row;
}

function decEntry(value: Uint8Array): EntryRow {
  const o = dec(value);
  const e: EntryRow = { statement: bytes(o, 'statement'), receivedAt: num(o, 'receivedAt') };
  if (o.has('reading')) e.reading = bytes(o, 'reading');
  if (o.has('batchId')) e.batchId = num(o, 'batchId');
  if (o.has('leafIndex')) e.leafIndex = num(o, 'leafIndex');
  return e;
}

/** A sealed entry's batch position: batch id (8 bytes, big-endian) and leaf index (4). */
function encPosition(batchId: number, leafIndex: number): Uint8Array {
  const out = rowBytes(12);
  const hi = Math.floor(batchId / 2 ** 32);
  const lo = batchId >>> 0;
  for (let i = 0; i < 4; i++) {
    out[i] = (hi >>> (24 - 8 * i)) & 0xff;
    out[4 + i] = (lo >>> (24 - 8 * i)) & 0xff;
    out[8 + i] = (leafIndex >>> (24 - 8 * i)) & 0xff;
  }
  return out;
}

/** The entry with its batch position from a `bpos` row, when sealed (older stores hold it in the entry itself). */
function withPosition(e: EntryRow, pos: Uint8Array | undefined): EntryRow {
  if (pos === undefined) return e;
  if (pos.length !== 12) throw new IngestError('INGEST_STORE_ERROR', 'batch position is not 12 bytes');
  const view = new DataView(pos.buffer, pos.byteOffset, 12);
  e.batchId = view.getUint32(0) * 2 ** 32 + view.getUint32(4);
  e.leafIndex = view.getUint32(8);
  return e;
}

function encBatch(b: BatchRow): Uint8Array {
  const leafHashes = new Uint8Array(32 * b.leafHashes.length);
  b.leafHashes.forEach((h, i) => leafHashes.set(h, 32 * i));
  const o: Record<string, unknown> = {
    batchId: b.batchId,
    size: b.size,
    root: b.root,
    leafHashes,
    leaves: b.leaves.map((l) => [l.deviceId, l.seq]),
    protectedBytes: b.protectedBytes,
    signature: b.signature,
    createdAt: b.createdAt,
  };
  if (b.anchor !== undefined) o['anchor'] = cleanRecord(b.anchor);
  return enc(o);
}

function decBatch(value: Uint8Array): BatchRow {
  const o = dec(value);
  const packed = bytes(o, 'leafHashes');
  const size = num(o, 'size');
  if (packed.length !== 32 * size) throw new IngestError('INGEST_STORE_ERROR', 'batch leaf hashes do not match its size');
  const leafHashes: Uint8Array[] = [];
  for (let i = 0; i < size; i++) leafHashes.push(packed.subarray(32 * i, 32 * i + 32));
  const leavesRaw = o.get('leaves');
  if (!Array.isArray(leavesRaw)) throw new IngestError('INGEST_STORE_ERROR', 'batch leaves is not an array');
  const leaves = leavesRaw.map((l: unknown) => {
    if (!Array.isArray(l) || typeof l[0] !== 'string' || typeof l[1] !== 'number') throw new IngestError('INGEST_STORE_ERROR', 'bad batch leaf');
    return { deviceId: l[0], seq: l[1] };
  });
  const row: BatchRow = {
    batchId: num(o, 'batchId'),
    size,
    root: bytes(o, 'root'),
    leafHashes,
    leaves,
    protectedBytes: bytes(o, 'protectedBytes'),
    signature: bytes(o, 'signature'),
    createdAt: num(o, 'createdAt'),
  };
  if (o.has('anchor')) row.anchor = toPlain(o.get('anchor')) as AnchorRef;
  return row;
}
