/**
 * The PostgreSQL ingest store: several ingest workers share one database (issue #11). Client: `postgres`
 * (porsager/postgres.js 3.4): no dependencies of its own and its own TypeScript types, so nothing else enters the
 * lockfile and no `@types` devDependency is needed (node-postgres `pg` pulls five packages and `@types/pg`).
 *
 * Settings, from the measurements on PostgreSQL 15 in issue #11:
 *   - `jit = off` for ingest's sessions (sent as a connection parameter): JIT made the chain-check query 6x slower;
 *   - `synchronous_commit` is left on (the server default): off gained only 5 to 20 %, and a confirmation signed
 *     for a commit that a crash then loses would break the no-loss promise;
 *   - one sealer at a time: `sealBatch` locks the single `stele_state` row FOR UPDATE and takes the oldest rows of
 *     the `pending` table by their exact `ord` (never "ord greater than the last sealed": rows of transactions that
 *     commit late have lower ords and that rule skipped 1.2 to 3.2 % of them);
 *   - a commit locks its device's `heads` row FOR UPDATE, so two workers judging the same device serialise there;
 *     inserts are idempotent on (device_id, seq).
 *
 * Tables (created when absent, under an advisory lock so that workers starting together do not race):
 *   stele_state(id = 1, next_batch)   the batch counter, the sealer's lock
 *   devices, kids, registry            enrolment records, kid -> device, key registry rows (encodeDeviceKeys)
 *   heads(device_id, seq, digest)      committed heads (devices and their lifecycle logs, registry/registry.ts)
 *   entries(device_id, seq, ...)       committed statements; indexes by (device_id, device_time_ms, seq) and by
 *                                      (device_id, received_at_ms, seq) for time windows
 *   raw_index(digest, device_id, seq)  frame digests named by readings received in full
 *   forks, held, pending               second statements for a seq; statements ahead of the head; unsealed leaves
 *   batches, anchor_jobs               sealed batches (anchor jsonb once final); where each anchor stands: the
 *                                      outbox row, written {state: 'prepared'} in the seal transaction, leased to
 *                                      one worker at a time (leased_by, lease_until_ms on the database clock)
 *   anchor_nonces(account, last_nonce) the anchoring account's nonce row: its lock serialises allocation
 *   enrolment_requests(digest, file)   enrolment request files, kept with their enrolment statements
 */
import postgres from 'postgres';
import { type AnchorRef, equalBytes, toHex, sha256 } from '@stele/core';
import type { EnrolmentRecord } from '@stele/device';
import { IngestError } from '../../errors.ts';
import { decodeDeviceKeys, encodeDeviceKeys, type DeviceKeys } from '../../registry/index.ts';
import { checkCommitItems, checkHeldRows, checkLease, checkTimeQuery, conflict, IN_FLIGHT_ANCHOR_STATES, indexFieldsOf, nextAnchorNonce, OUTBOX_ANCHOR_JOB } from '../derive.ts';
import type {
  AlertDeliveryRow,
  AnchorNonceJob,
  BatchRow,
  CommitItem,
  CommitOptions,
  DeviceRow,
  EntryRow,
  ForkRow,
  Head,
  HeldRow,
  IngestStore,
  PendingLeaf,
  RawRef,
  SealedBatch,
  TimeQuery,
  TimeRef,
} from '../types.ts';

type Sql = postgres.Sql<Record<string, never>>;
type Tx = postgres.TransactionSql<Record<string, never>>;
type Row = Record<string, unknown>;

const SCHEMA = `
create table if not exists stele_state (id int primary key check (id = 1), next_batch bigint not null);
insert into stele_state (id, next_batch) values (1, 1) on conflict do nothing;
create table if not exists devices (device_id text primary key, record jsonb not null, public_key bytea not null, kid bytea not null);
create table if not exists kids (kid bytea primary key, device_id text not null);
create table if not exists registry (device_id text primary key, keys bytea not null);
create table if not exists heads (device_id text primary key, seq bigint not null, digest bytea not null);
create table if not exists entries (
  device_id text not null, seq bigint not null, statement bytea not null, reading bytea,
  received_at_ms bigint not null, device_time_ms bigint, batch_id bigint, leaf_index int,
  primary key (device_id, seq));
create index if not exists entries_by_device_time on entries (device_id, device_time_ms, seq) where device_time_ms is not null;
create index if not exists entries_by_received on entries (device_id, received_at_ms, seq);
create table if not exists raw_index (digest bytea not null, device_id text not null, seq bigint not null, primary key (digest, device_id, seq));
create table if not exists forks (device_id text not null, seq bigint not null, hash text not null, statement bytea not null, reading bytea,
  received_at_ms bigint not null, primary key (device_id, seq, hash));
create table if not exists held (device_id text not null, seq bigint not null, payload bytea not null, received_at_ms bigint not null, primary key (device_id, seq));
create table if not exists pending (ord bigserial primary key, device_id text not null, seq bigint not null, leaf_hash bytea not null);
create table if not exists batches (batch_id bigint primary key, size int not null, root bytea not null, leaf_hashes bytea not null,
  leaves jsonb not null, protected bytea not null, signature bytea not null, created_at_ms bigint not null, anchor jsonb);
create index if not exists batches_unanchored on batches (batch_id) where anchor is null;
create table if not exists anchor_jobs (batch_id bigint primary key, job jsonb not null);
alter table anchor_jobs add column if not exists leased_by text;
alter table held add column if not exists signature_checked boolean not null default false;
alter table anchor_jobs add column if not exists lease_until_ms bigint;
insert into anchor_jobs (batch_id, job) select batch_id, '{"state":"prepared"}'::jsonb from batches where anchor is null on conflict do nothing;
create table if not exists anchor_nonces (account text primary key, last_nonce bigint);
create table if not exists enrolment_requests (digest bytea primary key, file bytea not null);
create table if not exists alert_deliveries (alert_id text not null, channel text not null, state text not null, body bytea not null,
  queued_at_ms bigint not null, attempts int not null, last_attempt_ms bigint, last_error text, delivered_at_ms bigint,
  primary key (alert_id, channel));
create index if not exists alert_deliveries_pending on alert_deliveries (channel, queued_at_ms, alert_id) where state = 'pending';
`;

export interface PostgresStoreOptions {
  /** Connections in this worker's pool. Default 4. */
  maxConnections?: number;
}

export class PostgresStore implements IngestStore {
  readonly kind = 'postgres' as const;

  private constructor(
    private readonly sql: Sql,
    readonly location: string,
  ) {}

  /** Connects to `url` (postgres:// or postgresql://) and creates the tables when absent. */
  static async open(url: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const location = redact(url);
    const sql = postgres(url, {
      max: options.maxConnections ?? 4,
      onnotice: () => {},
      connect_timeout: 10,
      connection: { application_name: 'stele-ingest', jit: 'off' },
    }) as unknown as Sql;
    try {
      await sql.begin(async (tx) => {
        await tx`select pg_advisory_xact_lock(hashtext('stele-ingest-schema'))`;
        await tx.unsafe(SCHEMA);
      });
    } catch (cause) {
      await sql.end({ timeout: 1 }).catch(() => {});
      throw new IngestError('INGEST_STORE_UNAVAILABLE', `cannot open the PostgreSQL store ${location}: ${cause instanceof Error ? cause.message : String(cause)}`, {
        cause,
        where: { store: location },
      });
    }
    return new PostgresStore(sql, location);
  }

  async close(): Promise<void> {
    await this.sql.end({ timeout: 5 });
  }

  // ---- devices and registry

  async putDevice(row: DeviceRow): Promise<void> {
    const id = row.record.deviceId;
    const record = JSON.parse(JSON.stringify(row.record)) as postgres.JSONValue;
    await this.sql.begin(async (tx) => {
      await tx`insert into devices (device_id, record, public_key, kid) values (${id}, ${tx.json(record)}, ${buf(row.publicKey)}, ${buf(row.kid)})
        on conflict (device_id) do update set record = excluded.record, public_key = excluded.public_key, kid = excluded.kid`;
      await tx`insert into kids (kid, device_id) values (${buf(row.kid)}, ${id}) on conflict (kid) do update set device_id = excluded.device_id`;
    });
  }

  async getDevice(deviceId: string): Promise<DeviceRow | undefined> {
    const [r] = await this.sql`select record, public_key, kid from devices where device_id = ${deviceId}`;
    return r === undefined ? undefined : deviceOf(r);
  }

  async listDevices(): Promise<DeviceRow[]> {
    return (await this.sql`select record, public_key, kid from devices order by device_id`).map(deviceOf);
  }

  async getDeviceKeys(deviceId: string): Promise<DeviceKeys | undefined> {
    const [r] = await this.sql`select keys from registry where device_id = ${deviceId}`;
    return r === undefined ? undefined : decodeDeviceKeys(u8(r['keys']));
  }

  async listDeviceKeys(): Promise<DeviceKeys[]> {
    return (await this.sql`select keys from registry order by device_id`).map((r) => decodeDeviceKeys(u8(r['keys'])));
  }

  async getEnrolmentRequest(digest: Uint8Array): Promise<Uint8Array | undefined> {
    const [r] = await this.sql`select file from enrolment_requests where digest = ${buf(digest)}`;
    return r === undefined ? undefined : u8(r['file']);
  }

  // ---- chains

  async getHead(deviceId: string): Promise<Head | undefined> {
    const [r] = await this.sql`select seq, digest from heads where device_id = ${deviceId}`;
    return r === undefined ? undefined : { seq: int(r['seq']), digest: u8(r['digest']) };
  }

  async listHeads(): Promise<Map<string, Head>> {
    const out = new Map<string, Head>();
    for (const r of await this.sql`select device_id, seq, digest from heads order by device_id`) out.set(String(r['device_id']), { seq: int(r['seq']), digest: u8(r['digest']) });
    return out;
  }

  async getEntry(deviceId: string, seq: number): Promise<EntryRow | undefined> {
    const [r] = await this.sql`select statement, reading, received_at_ms, batch_id, leaf_index from entries where device_id = ${deviceId} and seq = ${seq}`;
    return r === undefined ? undefined : entryOf(r);
  }

  async getEntries(deviceId: string, firstSeq: number, lastSeq: number): Promise<[number, EntryRow][]> {
    const rows = await this.sql`select seq, statement, reading, received_at_ms, batch_id, leaf_index from entries
      where device_id = ${deviceId} and seq between ${firstSeq} and ${lastSeq} order by seq`;
    return rows.map((r) => [int(r['seq']), entryOf(r)]);
  }

  async commit(deviceId: string, items: readonly CommitItem[], head: Head, options: CommitOptions = {}): Promise<PendingLeaf[]> {
    checkCommitItems(items, head);
    return this.sql.begin(async (tx) => {
      // The device's head row is the lock two workers judging the same device meet at.
      await tx`insert into heads (device_id, seq, digest) values (${deviceId}, 0, ${buf(new Uint8Array(32))}) on conflict do nothing`;
      const [h] = await tx`select seq from heads where device_id = ${deviceId} for update`;
      const stored = int(h!['seq']);
      const old = items.filter((i) => i.seq <= stored);
      if (old.length > 0) {
        const have = new Map<number, Uint8Array>();
        for (const r of await tx`select seq, statement from entries where device_id = ${deviceId} and seq between ${old[0]!.seq} and ${old[old.length - 1]!.seq}`) {
          have.set(int(r['seq']), u8(r['statement']));
        }
        for (const i of old) {
          const s = have.get(i.seq);
          if (s === undefined || !equalBytes(s, i.entry.statement)) throw conflict(deviceId, i.seq, 'a different statement is stored at this seq');
        }
      }
      const fresh = items.filter((i) => i.seq > stored);
      if (fresh.length === 0) return [];
      if (fresh[0]!.seq !== stored + 1) throw conflict(deviceId, fresh[0]!.seq, `the stored head is ${stored}`);
      const entryRows = [];
      const rawRows = [];
      for (const i of fresh) {
        const f = indexFieldsOf(i.entry.reading, i.index);
        entryRows.push({
          device_id: deviceId,
          seq: i.seq,
          statement: buf(i.entry.statement),
          reading: i.entry.reading === undefined ? null : buf(i.entry.reading),
          received_at_ms: i.entry.receivedAt,
          device_time_ms: f.deviceTime ?? null,
        });
        for (const d of f.raw) rawRows.push({ digest: buf(d), device_id: deviceId, seq: i.seq });
      }
      // The writes below depend on nothing but the lock taken above: sent together, postgres.js pipelines them on
      // the transaction's connection (one round trip instead of one each; any failure still aborts the whole).
      const pendRows = fresh.map((i) => ({ device_id: deviceId, seq: i.seq, leaf_hash: buf(i.leafHash) }));
      const writes: Promise<unknown>[] = [
        tx`insert into entries ${tx(entryRows, 'device_id', 'seq', 'statement', 'reading', 'received_at_ms', 'device_time_ms')}`,
        tx`update heads set seq = ${head.seq}, digest = ${buf(head.digest)} where device_id = ${deviceId}`,
        tx`delete from held where device_id = ${deviceId} and seq <= ${head.seq}`,
      ];
      if (rawRows.length > 0) writes.push(tx`insert into raw_index ${tx(rawRows, 'digest', 'device_id', 'seq')} on conflict do nothing`);
      if (options.keys !== undefined) {
        writes.push(tx`insert into registry (device_id, keys) values (${options.keys.deviceId}, ${buf(encodeDeviceKeys(options.keys))})
          on conflict (device_id) do update set keys = excluded.keys`);
      }
      if (options.enrolmentRequest !== undefined) {
        writes.push(tx`insert into enrolment_requests (digest, file) values (${buf(options.enrolmentRequest.digest)}, ${buf(options.enrolmentRequest.file)})
          on conflict (digest) do nothing`);
      }
      const [ords] = await Promise.all([tx`insert into pending ${tx(pendRows, 'device_id', 'seq', 'leaf_hash')} returning ord, seq`, ...writes]);
      const ordOf = new Map(ords.map((r) => [int(r['seq']), int(r['ord'])]));
      return fresh.map((i) => ({ order: ordOf.get(i.seq)!, deviceId, seq: i.seq, leafHash: i.leafHash }));
    });
  }

  async putFork(fork: ForkRow): Promise<void> {
    const h = toHex(sha256(fork.statement)).slice(0, 16);
    await this.sql`insert into forks (device_id, seq, hash, statement, reading, received_at_ms)
      values (${fork.deviceId}, ${fork.seq}, ${h}, ${buf(fork.statement)}, ${fork.reading === undefined ? null : buf(fork.reading)}, ${fork.receivedAt})
      on conflict do nothing`;
  }

  async listForks(deviceId: string): Promise<ForkRow[]> {
    const rows = await this.sql`select seq, statement, reading, received_at_ms from forks where device_id = ${deviceId} order by seq, hash`;
    return rows.map((r) => {
      const f: ForkRow = { deviceId, seq: int(r['seq']), statement: u8(r['statement']), receivedAt: int(r['received_at_ms']) };
      if (r['reading'] !== null) f.reading = u8(r['reading']);
      return f;
    });
  }

  async findByRawDigest(digest: Uint8Array, limit = 100): Promise<RawRef[]> {
    if (!(digest instanceof Uint8Array) || digest.length !== 32) throw new TypeError('digest must be 32 bytes');
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError('limit must be a positive integer');
    const rows = await this.sql`select device_id, seq from raw_index where digest = ${buf(digest)} order by device_id, seq limit ${limit}`;
    return rows.map((r) => ({ deviceId: String(r['device_id']), seq: int(r['seq']) }));
  }

  async findByTime(deviceId: string, q: TimeQuery): Promise<TimeRef[]> {
    checkTimeQuery(q);
    const rows =
      q.by === 'device'
        ? await this.sql`select seq, received_at_ms, device_time_ms from entries
            where device_id = ${deviceId} and device_time_ms >= ${q.fromMs} and device_time_ms < ${q.toMs}
            order by device_time_ms, seq limit ${q.limit}`
        : await this.sql`select seq, received_at_ms, device_time_ms from entries
            where device_id = ${deviceId} and received_at_ms >= ${q.fromMs} and received_at_ms < ${q.toMs}
            order by received_at_ms, seq limit ${q.limit}`;
    return rows.map((r) => {
      const t: TimeRef = { seq: int(r['seq']), receivedAt: int(r['received_at_ms']) };
      if (r['device_time_ms'] !== null) t.deviceTime = int(r['device_time_ms']);
      return t;
    });
  }

  // ---- statements ahead of the head

  async hold(deviceId: string, row: HeldRow): Promise<boolean> {
    return (await this.holdAll(deviceId, [row])).length === 1;
  }

  async holdAll(deviceId: string, rows: readonly HeldRow[]): Promise<number[]> {
    checkHeldRows(rows);
    if (rows.length === 0) return [];
    const values = rows.map((r) => ({ device_id: deviceId, seq: r.seq, payload: buf(r.payload), received_at_ms: r.receivedAt, signature_checked: r.signatureChecked === true }));
    const r = await this.sql`insert into held ${this.sql(values, 'device_id', 'seq', 'payload', 'received_at_ms', 'signature_checked')} on conflict do nothing returning seq`;
    return r.map((x) => int(x['seq'])).sort((a, b) => a - b);
  }

  async listHeld(deviceId: string, fromSeq: number, limit: number): Promise<HeldRow[]> {
    const rows = await this.sql`select seq, payload, received_at_ms, signature_checked from held where device_id = ${deviceId} and seq >= ${fromSeq} order by seq limit ${limit}`;
    return rows.map(heldRow);
  }

  async listHeldRun(deviceId: string, fromSeq: number, limit: number): Promise<HeldRow[]> {
    // seq - row_number() stays fromSeq - 1 exactly over the run without a gap; rows past it stay on the server
    const rows = await this.sql`
      select seq, payload, received_at_ms, signature_checked from (
        select seq, payload, received_at_ms, signature_checked, seq - row_number() over (order by seq) as step from held
        where device_id = ${deviceId} and seq >= ${fromSeq} and seq < ${fromSeq + limit}
      ) run where step = ${fromSeq - 1} order by seq`;
    return rows.map(heldRow);
  }

  async countHeld(deviceId: string): Promise<number> {
    const [r] = await this.sql`select count(*) as n from held where device_id = ${deviceId}`;
    return int(r!['n']);
  }

  async countAllHeld(): Promise<number> {
    const [r] = await this.sql`select count(*) as n from held`;
    return int(r!['n']);
  }

  async dropHeld(deviceId: string, seq: number): Promise<void> {
    await this.sql`delete from held where device_id = ${deviceId} and seq = ${seq}`;
  }

  // ---- pending leaves, batches, anchors

  async countPending(): Promise<number> {
    const [r] = await this.sql`select count(*) as n from pending`;
    return int(r!['n']);
  }

  async listPending(limit?: number): Promise<PendingLeaf[]> {
    const rows =
      limit === undefined
        ? await this.sql`select ord, device_id, seq, leaf_hash from pending order by ord`
        : await this.sql`select ord, device_id, seq, leaf_hash from pending order by ord limit ${limit}`;
    return rows.map(pendingOf);
  }

  async sealBatch(maxSize: number, build: (batchId: number, leaves: readonly PendingLeaf[]) => Promise<SealedBatch>): Promise<BatchRow | undefined> {
    if (!Number.isSafeInteger(maxSize) || maxSize < 1) throw new RangeError('maxSize must be a positive integer');
    return this.sql.begin(async (tx: Tx) => {
      // One sealer at a time: the state row is the lock; a second sealer waits here, then sees what this one took.
      const [st] = await tx`select next_batch from stele_state where id = 1 for update`;
      const batchId = int(st!['next_batch']);
      const leaves = (await tx`select ord, device_id, seq, leaf_hash from pending order by ord limit ${maxSize}`).map(pendingOf);
      if (leaves.length === 0) return undefined;
      const batch = await build(batchId, leaves);
      if (batch.batchId !== batchId) throw new RangeError(`batch id ${batch.batchId} is not the next one (${batchId})`);
      if (batch.size !== leaves.length || batch.leafHashes.length !== leaves.length) throw new RangeError('the batch must hold exactly the leaves given');
      const ords = leaves.map((l) => String(l.order));
      const updated = await tx`update entries e set batch_id = ${batchId}, leaf_index = p.idx
        from (select device_id, seq, (row_number() over (order by ord) - 1)::int as idx from pending where ord = any(${ords}::int8[])) p
        where e.device_id = p.device_id and e.seq = p.seq`;
      if (updated.count !== leaves.length) throw new IngestError('INGEST_STORE_ERROR', 'pending leaves without entries', { where: { batchId } });
      await tx`delete from pending where ord = any(${ords}::int8[])`;
      const row: BatchRow = { ...batch, leaves: leaves.map((l) => ({ deviceId: l.deviceId, seq: l.seq })) };
      const packed = new Uint8Array(32 * batch.size);
      batch.leafHashes.forEach((h, i) => packed.set(h, 32 * i));
      await tx`insert into batches (batch_id, size, root, leaf_hashes, leaves, protected, signature, created_at_ms)
        values (${batchId}, ${batch.size}, ${buf(batch.root)}, ${buf(packed)}, ${tx.json(row.leaves.map((l) => [l.deviceId, l.seq]))},
                ${buf(batch.protectedBytes)}, ${buf(batch.signature)}, ${batch.createdAt})`;
      // the anchor outbox row, in the seal transaction: whichever worker leases it anchors the batch
      await tx`insert into anchor_jobs (batch_id, job) values (${batchId}, ${tx.json(OUTBOX_ANCHOR_JOB)})`;
      await tx`update stele_state set next_batch = ${batchId + 1} where id = 1`;
      return row;
    });
  }

  async getBatch(batchId: number): Promise<BatchRow | undefined> {
    const [r] = await this.sql`select * from batches where batch_id = ${batchId}`;
    if (r === undefined) return undefined;
    const size = int(r['size']);
    const packed = u8(r['leaf_hashes']);
    if (packed.length !== 32 * size) throw new IngestError('INGEST_STORE_ERROR', 'batch leaf hashes do not match its size', { where: { batchId } });
    const leafHashes: Uint8Array[] = [];
    for (let i = 0; i < size; i++) leafHashes.push(packed.subarray(32 * i, 32 * i + 32));
    const leaves = r['leaves'];
    if (!Array.isArray(leaves)) throw new IngestError('INGEST_STORE_ERROR', 'batch leaves is not an array', { where: { batchId } });
    const row: BatchRow = {
      batchId: int(r['batch_id']),
      size,
      root: u8(r['root']),
      leafHashes,
      leaves: leaves.map((l: unknown) => {
        if (!Array.isArray(l) || typeof l[0] !== 'string' || typeof l[1] !== 'number') throw new IngestError('INGEST_STORE_ERROR', 'bad batch leaf', { where: { batchId } });
        return { deviceId: l[0], seq: l[1] };
      }),
      protectedBytes: u8(r['protected']),
      signature: u8(r['signature']),
      createdAt: int(r['created_at_ms']),
    };
    if (r['anchor'] !== null) row.anchor = r['anchor'] as AnchorRef;
    return row;
  }

  async batchCount(): Promise<number> {
    const [r] = await this.sql`select next_batch from stele_state where id = 1`;
    return int(r!['next_batch']) - 1;
  }

  async listUnanchoredIds(): Promise<number[]> {
    return (await this.sql`select batch_id from batches where anchor is null order by batch_id`).map((r) => int(r['batch_id']));
  }

  async putAnchorJob(batchId: number, job: object): Promise<void> {
    const value = JSON.parse(JSON.stringify(job)) as postgres.JSONValue;
    await this.sql`insert into anchor_jobs (batch_id, job) values (${batchId}, ${this.sql.json(value)}) on conflict (batch_id) do update set job = excluded.job`;
  }

  async getAnchorJob<T>(batchId: number): Promise<T | undefined> {
    const [r] = await this.sql`select job from anchor_jobs where batch_id = ${batchId}`;
    return r === undefined ? undefined : (r['job'] as T);
  }

  async leaseAnchorJobs(worker: string, leaseMs: number, limit: number): Promise<number[]> {
    checkLease(worker, leaseMs, limit);
    const now = this.sql.unsafe(NOW_MS);
    // SKIP LOCKED: a job another worker is leasing right now is passed over, not waited for.
    const rows = await this.sql`with c as (
        select j.batch_id from anchor_jobs j join batches b on b.batch_id = j.batch_id
        where b.anchor is null and (j.leased_by = ${worker} or j.lease_until_ms is null or j.lease_until_ms < ${now})
        order by j.batch_id limit ${limit} for update of j skip locked)
      update anchor_jobs j set leased_by = ${worker}, lease_until_ms = ${now} + ${leaseMs} from c where j.batch_id = c.batch_id
      returning j.batch_id`;
    return rows.map((r) => int(r['batch_id'])).sort((a, b) => a - b);
  }

  async putLeasedAnchorJob(batchId: number, worker: string, job: object): Promise<boolean> {
    const value = JSON.parse(JSON.stringify(job)) as postgres.JSONValue;
    const r = await this.sql`update anchor_jobs set job = ${this.sql.json(value)}
      where batch_id = ${batchId} and leased_by = ${worker} and lease_until_ms >= ${this.sql.unsafe(NOW_MS)}`;
    return r.count === 1;
  }

  async signAnchorWithNonce(batchId: number, worker: string, account: string, chainNonce: number, sign: (nonce: number) => Promise<AnchorNonceJob>): Promise<boolean> {
    const acct = account.toLowerCase();
    return this.sql.begin(async (tx: Tx) => {
      // The account's nonce row is the lock: one allocation at a time over every worker.
      await tx`insert into anchor_nonces (account, last_nonce) values (${acct}, null) on conflict do nothing`;
      await tx`select last_nonce from anchor_nonces where account = ${acct} for update`;
      const [held] = await tx`select 1 as ok from anchor_jobs
        where batch_id = ${batchId} and leased_by = ${worker} and lease_until_ms >= ${tx.unsafe(NOW_MS)} for update`;
      if (held === undefined) return false;
      const inFlight = await tx`select (job->>'nonce')::bigint as nonce from anchor_jobs
        where batch_id <> ${batchId} and job->>'state' = any(${IN_FLIGHT_ANCHOR_STATES as string[]}::text[]) and job ? 'nonce'`;
      const nonce = nextAnchorNonce(chainNonce, inFlight.map((r) => int(r['nonce'])));
      const job = await sign(nonce);
      if (job.nonce !== nonce) throw new RangeError(`the signed job carries nonce ${job.nonce}, not the allocated ${nonce}`);
      const value = JSON.parse(JSON.stringify(job)) as postgres.JSONValue;
      await tx`update anchor_jobs set job = ${tx.json(value)} where batch_id = ${batchId}`;
      await tx`update anchor_nonces set last_nonce = ${nonce} where account = ${acct}`;
      return true;
    });
  }

  async getLastAnchorNonce(account: string): Promise<number | undefined> {
    const [r] = await this.sql`select last_nonce from anchor_nonces where account = ${account.toLowerCase()}`;
    return r === undefined || r['last_nonce'] === null ? undefined : int(r['last_nonce']);
  }

  async setAnchor(batchId: number, anchor: AnchorRef): Promise<void> {
    const value = JSON.parse(JSON.stringify(anchor)) as postgres.JSONValue;
    await this.sql.begin(async (tx) => {
      const r = await tx`update batches set anchor = ${tx.json(value)} where batch_id = ${batchId}`;
      if (r.count !== 1) throw new RangeError(`no batch ${batchId}`);
      await tx`delete from anchor_jobs where batch_id = ${batchId}`;
    });
  }

  // ---- alert notifications

  async putAlertDelivery(r: AlertDeliveryRow): Promise<void> {
    await this.sql`insert into alert_deliveries (alert_id, channel, state, body, queued_at_ms, attempts, last_attempt_ms, last_error, delivered_at_ms)
      values (${r.alertId}, ${r.channel}, ${r.state}, ${buf(r.body)}, ${r.queuedAt}, ${r.attempts}, ${r.lastAttemptAt ?? null}, ${r.lastError ?? null}, ${r.deliveredAt ?? null})
      on conflict (alert_id, channel) do update set state = excluded.state, body = excluded.body, queued_at_ms = excluded.queued_at_ms,
        attempts = excluded.attempts, last_attempt_ms = excluded.last_attempt_ms, last_error = excluded.last_error, delivered_at_ms = excluded.delivered_at_ms`;
  }

  async getAlertDelivery(alertId: string, channel: string): Promise<AlertDeliveryRow | undefined> {
    const rows = await this.sql`select * from alert_deliveries where alert_id = ${alertId} and channel = ${channel}`;
    return rows[0] === undefined ? undefined : deliveryOf(rows[0]);
  }

  async listAlertDeliveries(alertId: string): Promise<AlertDeliveryRow[]> {
    return (await this.sql`select * from alert_deliveries where alert_id = ${alertId} order by channel`).map(deliveryOf);
  }

  async listPendingAlertDeliveries(channel: string, limit: number): Promise<AlertDeliveryRow[]> {
    return (await this.sql`select * from alert_deliveries where channel = ${channel} and state = 'pending' order by queued_at_ms, alert_id limit ${limit}`).map(deliveryOf);
  }

  async countPendingAlertDeliveries(channel: string): Promise<number> {
    const rows = await this.sql`select count(*)::int as n from alert_deliveries where channel = ${channel} and state = 'pending'`;
    return int(rows[0]?.['n']);
  }
}

function deliveryOf(r: Row): AlertDeliveryRow {
  const state = r['state'];
  if (state !== 'pending' && state !== 'delivered') throw new IngestError('INGEST_STORE_ERROR', 'alert delivery state is not pending or delivered');
  const row: AlertDeliveryRow = { alertId: String(r['alert_id']), channel: String(r['channel']), state, body: u8(r['body']), queuedAt: int(r['queued_at_ms']), attempts: int(r['attempts']) };
  if (r['last_attempt_ms'] !== null) row.lastAttemptAt = int(r['last_attempt_ms']);
  if (r['last_error'] !== null) row.lastError = String(r['last_error']);
  if (r['delivered_at_ms'] !== null) row.deliveredAt = int(r['delivered_at_ms']);
  return row;
}

/** Now on the database's clock, ms: leases compare against one clock whichever worker's host runs slow. */
const NOW_MS = 'floor(extract(epoch from clock_timestamp()) * 1000)::bigint';

/** The URL without its password, for logs and errors. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://(unparsable URL)';
  }
}

function buf(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

function heldRow(r: Record<string, unknown>): HeldRow {
  const row: HeldRow = { seq: int(r['seq']), payload: u8(r['payload']), receivedAt: int(r['received_at_ms']) };
  if (r['signature_checked'] === true) row.signatureChecked = true;
  return row;
}

function u8(v: unknown): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new IngestError('INGEST_STORE_ERROR', 'store column is not bytes');
  return Uint8Array.from(v);
}

function int(v: unknown): number {
  const n = typeof v === 'string' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n)) throw new IngestError('INGEST_STORE_ERROR', 'store column is not an integer');
  return n;
}

function deviceOf(r: Row): DeviceRow {
  return { record: r['record'] as EnrolmentRecord, publicKey: u8(r['public_key']), kid: u8(r['kid']) };
}

function entryOf(r: Row): EntryRow {
  const e: EntryRow = { statement: u8(r['statement']), receivedAt: int(r['received_at_ms']) };
  if (r['reading'] !== null) e.reading = u8(r['reading']);
  if (r['batch_id'] !== null) e.batchId = int(r['batch_id']);
  if (r['leaf_index'] !== null) e.leafIndex = int(r['leaf_index']);
  return e;
}

function pendingOf(r: Row): PendingLeaf {
  return { order: int(r['ord']), deviceId: String(r['device_id']), seq: int(r['seq']), leafHash: u8(r['leaf_hash']) };
}
