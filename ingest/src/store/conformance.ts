/**
 * The store conformance suite (as abstract-level ships its own): every IngestStore implementation runs it
 * (./conformance.test.ts runs LevelDB and PostgreSQL). It pins the interface's promises (./types.ts): durable
 * across reopen, idempotent insert on (device, seq), conflicts refused atomically, held statements once per seq,
 * one sealer at a time with no leaf missed or sealed twice, and the frame and time indexes.
 */
import { describe, expect, it } from 'vitest';
import { utf8, SteleError, sha256, encodeReading, GENESIS_PREV, type Reading } from '@stele/core';
import type { DeviceKeys } from '../registry/index.ts';
import type { CommitItem, IngestStore, PendingLeaf, SealedBatch } from './types.ts';

export interface StoreHarness {
  /** A fresh, empty store. */
  store: IngestStore;
  /** Closes `store` and opens the same store again (what a restart does). */
  reopen(): Promise<IngestStore>;
  /**
   * A second handle on the same store, as a second worker would hold, or undefined when the implementation is
   * one process only (LevelDB: concurrency is then tested on the one handle).
   */
  second(): Promise<IngestStore | undefined>;
  cleanup(): Promise<void>;
}

const b = (n: number): Uint8Array => new Uint8Array(32).fill(n & 0xff);
const frame = (i: number): Uint8Array => sha256(utf8(`##0100QN=${i};CN=2011\r\n`));
const T0 = 1_700_000_000_000;

function readingOf(deviceId: string, seq: number, timeMs: number, raw: Uint8Array[] = [frame(seq)]): Uint8Array {
  const r: Reading = {
    v: 1,
    device: deviceId,
    sensor: 'cems-1',
    seq,
    prev: GENESIS_PREV,
    time: timeMs,
    clock: { synced: true, source: 'ntp' },
    meas: [{ code: 'a21026', kind: 'Rtd', value: '1.0', unit: 'mg/m3', flag: 'N' }],
    raw,
  };
  return encodeReading(r);
}

/** Items seq from..to of a device; statement bytes depend on (device tag, seq, variant). */
function items(from: number, to: number, opts: { tag?: number; variant?: number; full?: boolean; deviceId?: string } = {}): CommitItem[] {
  const out: CommitItem[] = [];
  for (let seq = from; seq <= to; seq++) {
    const statement = utf8(`statement ${opts.tag ?? 0} ${seq} ${opts.variant ?? 0}`);
    const entry: CommitItem['entry'] = { statement, receivedAt: T0 + 500 + seq * 1000 };
    if (opts.full === true) entry.reading = readingOf(opts.deviceId ?? 'gw-1', seq, T0 + seq * 1000);
    out.push({ seq, entry, leafHash: sha256(statement) });
  }
  return out;
}

const headOf = (seq: number): { seq: number; digest: Uint8Array } => ({ seq, digest: b(seq) });

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return e instanceof SteleError ? e.code : `not a SteleError: ${String(e)}`;
  }
  return 'resolved';
}

/** Builds what a sealer signs (the signature is not the store's business; fixed bytes). */
const build = async (batchId: number, leaves: readonly PendingLeaf[]): Promise<SealedBatch> => ({
  batchId,
  size: leaves.length,
  root: b(batchId),
  leafHashes: leaves.map((l) => l.leafHash),
  protectedBytes: utf8(`protected ${batchId}`),
  signature: b(200),
  createdAt: T0 + batchId,
});

const record = { deviceId: 'gw-1', publicKey: 'pk', kid: 'kid', keyBackend: 'software' as const, enrolledAt: '2026-01-01T00:00:00.000Z', site: 'stack 2' };
const keysOf = (deviceId: string, log: number): DeviceKeys => ({
  deviceId,
  keys: [{ kid: b(5), publicKey: b(4), backend: 'software', from: 1, via: 'enrolment', revokedAfter: 9 }],
  chained: [3],
  log,
});

export function storeConformance(name: string, open: () => Promise<StoreHarness>, options: { skip?: string } = {}): void {
  describe.skipIf(options.skip !== undefined)(`IngestStore conformance: ${name}${options.skip !== undefined ? ` (skipped: ${options.skip})` : ''}`, () => {
    const withStore = (title: string, fn: (h: StoreHarness) => Promise<void>, timeoutMs = 60_000) =>
      it(
        title,
        async () => {
          const h = await open();
          try {
            await fn(h);
          } finally {
            await h.cleanup();
          }
        },
        timeoutMs,
      );

    withStore('keeps devices, registry rows, heads, entries, pending leaves and batches across reopen', async (h) => {
      let s = h.store;
      await s.putDevice({ record, publicKey: b(4), kid: b(5) });
      const leaves = await s.commit('gw-1', items(1, 2, { full: true }), headOf(2), { keys: keysOf('gw-1', 1) });
      expect(leaves.map((l) => l.seq)).toEqual([1, 2]);
      expect(leaves[1]!.order).toBeGreaterThan(leaves[0]!.order);
      await s.commit('gw-1', items(3, 3), headOf(3), { enrolmentRequest: { digest: sha256(utf8('request file')), file: utf8('request file') } });
      const sealed = await s.sealBatch(2, build);
      expect(sealed).toMatchObject({ batchId: 1, size: 2, leaves: [{ deviceId: 'gw-1', seq: 1 }, { deviceId: 'gw-1', seq: 2 }] });
      s = await h.reopen();
      expect(await s.getDevice('gw-1')).toEqual({ record, publicKey: b(4), kid: b(5) });
      expect((await s.listDevices()).map((d) => d.record.deviceId)).toEqual(['gw-1']);
      expect(await s.getDevice('gw-2')).toBeUndefined();
      expect(await s.getDeviceKeys('gw-1')).toEqual(keysOf('gw-1', 1));
      expect(await s.listDeviceKeys()).toEqual([keysOf('gw-1', 1)]);
      expect(await s.getEnrolmentRequest(sha256(utf8('request file')))).toEqual(utf8('request file'));
      expect(await s.getEnrolmentRequest(sha256(utf8('other')))).toBeUndefined();
      expect(await s.getHead('gw-1')).toEqual(headOf(3));
      expect(await s.getHead('gw-2')).toBeUndefined();
      expect(await s.listHeads()).toEqual(new Map([['gw-1', headOf(3)]]));
      const one = items(1, 1, { full: true })[0]!.entry;
      expect(await s.getEntry('gw-1', 1)).toEqual({ ...one, batchId: 1, leafIndex: 0 });
      expect(await s.getEntry('gw-1', 3)).toEqual(items(3, 3)[0]!.entry);
      expect(await s.getEntry('gw-1', 4)).toBeUndefined();
      expect((await s.getEntries('gw-1', 2, 9)).map(([seq]) => seq)).toEqual([2, 3]);
      expect((await s.listPending()).map((l) => [l.deviceId, l.seq])).toEqual([['gw-1', 3]]);
      expect(await s.countPending()).toBe(1);
      expect(await s.batchCount()).toBe(1);
      expect(await s.listUnanchoredIds()).toEqual([1]);
      const batch = await s.getBatch(1);
      expect(batch).toMatchObject({ batchId: 1, size: 2, root: b(1), protectedBytes: utf8('protected 1'), signature: b(200), createdAt: T0 + 1 });
      expect(batch!.leafHashes).toEqual(items(1, 2).map((i) => i.leafHash));
      expect(await s.getBatch(2)).toBeUndefined();
    });

    withStore('anchors: a job is kept until the final anchor replaces it; the batch is then anchored', async (h) => {
      const s = h.store;
      await s.commit('gw-1', items(1, 1), headOf(1));
      await s.sealBatch(10, build);
      // the outbox row, written with the batch
      expect(await s.getAnchorJob(1)).toEqual({ state: 'prepared' });
      await s.putAnchorJob(1, { state: 'signed', rawTx: '0x01', nonce: 3 });
      await s.putAnchorJob(1, { state: 'sent', rawTx: '0x01', nonce: 3 });
      const r = await h.reopen();
      expect(await r.getAnchorJob(1)).toEqual({ state: 'sent', rawTx: '0x01', nonce: 3 });
      const anchor = { chainId: 31337, contract: '0xc', txHash: '0xt', blockNumber: 7, blockTime: 1_700_000_000, rpc: 'http://x' };
      await r.setAnchor(1, anchor);
      expect(await r.listUnanchoredIds()).toEqual([]);
      expect(await r.getAnchorJob(1)).toBeUndefined();
      expect((await r.getBatch(1))!.anchor).toEqual(anchor);
    });

    withStore('leases each unanchored batch to one worker at a time; an ended lease passes to another', async (h) => {
      const s = h.store;
      const other = (await h.second()) ?? s;
      for (let d = 1; d <= 3; d++) {
        await s.commit(`gw-${d}`, items(1, 1, { tag: d }), headOf(1));
        await s.sealBatch(1, build);
      }
      expect(await s.leaseAnchorJobs('w1', 60_000, 2)).toEqual([1, 2]);
      expect(await other.leaseAnchorJobs('w2', 60_000, 10)).toEqual([3]);
      expect(await s.leaseAnchorJobs('w1', 60_000, 10)).toEqual([1, 2]); // renewed; 3 is w2's
      expect(await other.putLeasedAnchorJob(1, 'w2', { state: 'signed' })).toBe(false);
      expect(await s.getAnchorJob(1)).toEqual({ state: 'prepared' });
      expect(await s.putLeasedAnchorJob(1, 'w1', { state: 'signed', raw: '0x01' })).toBe(true);
      expect(await s.getAnchorJob(1)).toEqual({ state: 'signed', raw: '0x01' });
      // w2 dies: its lease (renewed for 1 ms here) ends and w1 takes the job over, where w2 left it
      expect(await other.putLeasedAnchorJob(3, 'w2', { state: 'broadcast', raw: '0x03' })).toBe(true);
      expect(await other.leaseAnchorJobs('w2', 1, 10)).toEqual([3]);
      const deadline = Date.now() + 10_000;
      let taken: number[] = [];
      while (!(taken = await s.leaseAnchorJobs('w1', 60_000, 10)).includes(3) && Date.now() < deadline) await new Promise((r) => setImmediate(r));
      expect(taken).toEqual([1, 2, 3]);
      expect(await s.getAnchorJob(3)).toEqual({ state: 'broadcast', raw: '0x03' });
      expect(await other.putLeasedAnchorJob(3, 'w2', { state: 'prepared' })).toBe(false);
      await s.setAnchor(1, { chainId: 31337, contract: '0xc', txHash: '0xt', blockNumber: 7, blockTime: 1_700_000_000 });
      expect(await s.leaseAnchorJobs('w1', 60_000, 10)).toEqual([2, 3]);
      await expect(s.leaseAnchorJobs('', 1, 1)).rejects.toThrow(TypeError);
      await expect(s.leaseAnchorJobs('w1', 0, 1)).rejects.toThrow(RangeError);
    });

    withStore('two workers leasing at once get disjoint jobs, every unanchored batch to one of them', async (h) => {
      const s = h.store;
      const other = (await h.second()) ?? s;
      for (let d = 1; d <= 8; d++) {
        await s.commit(`gw-${d}`, items(1, 1, { tag: d }), headOf(1));
        await s.sealBatch(1, build);
      }
      const [a, b2] = await Promise.all([s.leaseAnchorJobs('wa', 60_000, 100), other.leaseAnchorJobs('wb', 60_000, 100)]);
      expect(a.filter((id) => b2.includes(id))).toEqual([]);
      expect([...a, ...b2].sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    });

    withStore('allocates anchor nonces after the chain count and every nonce in flight, saving the signed transaction with its nonce', async (h) => {
      const s = h.store;
      const other = (await h.second()) ?? s;
      for (let d = 1; d <= 4; d++) {
        await s.commit(`gw-${d}`, items(1, 1, { tag: d }), headOf(1));
        await s.sealBatch(1, build);
      }
      expect(await s.leaseAnchorJobs('w1', 60_000, 2)).toEqual([1, 2]);
      expect(await other.leaseAnchorJobs('w2', 60_000, 10)).toEqual([3, 4]);
      const signer = (batchId: number) => async (nonce: number) => ({ state: 'signed', nonce, raw: `0xraw-${batchId}-${nonce}`, txHash: `0xh${batchId}` });
      expect(await s.getLastAnchorNonce('0xAbC')).toBeUndefined();
      expect(await s.signAnchorWithNonce(1, 'w1', '0xAbC', 5, signer(1))).toBe(true);
      expect(await s.getAnchorJob(1)).toEqual({ state: 'signed', nonce: 5, raw: '0xraw-1-5', txHash: '0xh1' });
      // two workers at once: distinct nonces, one after the other
      const [r2, r3] = await Promise.all([s.signAnchorWithNonce(2, 'w1', '0xabc', 5, signer(2)), other.signAnchorWithNonce(3, 'w2', '0xabc', 5, signer(3))]);
      expect([r2, r3]).toEqual([true, true]);
      const n2 = (await s.getAnchorJob<{ nonce: number }>(2))!.nonce;
      const n3 = (await s.getAnchorJob<{ nonce: number }>(3))!.nonce;
      expect([n2, n3].sort()).toEqual([6, 7]);
      expect(await s.getLastAnchorNonce('0xabc')).toBe(Math.max(n2, n3));
      // no lease, no nonce: the signer is never called and nothing is written
      let called = false;
      expect(await s.signAnchorWithNonce(4, 'w1', '0xabc', 5, async (n) => ((called = true), { state: 'signed', nonce: n }))).toBe(false);
      expect(called).toBe(false);
      expect(await s.getAnchorJob(4)).toEqual({ state: 'prepared' });
      // a signer that fails takes no nonce
      await expect(other.signAnchorWithNonce(4, 'w2', '0xabc', 5, () => Promise.reject(new Error('token gone')))).rejects.toThrow('token gone');
      expect(await s.getAnchorJob(4)).toEqual({ state: 'prepared' });
      // a transaction found lost goes back to prepared: its nonce is free again and the next allocation takes it (the
      // lowest nonce not in flight, so no gap is left for the chain to wait on); the chain's count still counts
      expect(await other.putLeasedAnchorJob(3, 'w2', { state: 'prepared' })).toBe(true);
      expect(await other.signAnchorWithNonce(4, 'w2', '0xabc', 5, signer(4))).toBe(true);
      expect((await s.getAnchorJob<{ nonce: number }>(4))!.nonce).toBe(n3); // 5 (batch 1) and n2 (batch 2) are still in flight
      expect(await other.signAnchorWithNonce(3, 'w2', '0xabc', 20, signer(3))).toBe(true);
      expect((await s.getAnchorJob<{ nonce: number }>(3))!.nonce).toBe(20);
      const r = await h.reopen();
      expect(await r.getAnchorJob(1)).toEqual({ state: 'signed', nonce: 5, raw: '0xraw-1-5', txHash: '0xh1' });
      expect(await r.getLastAnchorNonce('0xABC')).toBe(20);
    });

    withStore('inserts idempotently on (device, seq): the same statements again write nothing', async (h) => {
      const s = h.store;
      await s.commit('gw-1', items(1, 3), headOf(3));
      expect(await s.commit('gw-1', items(1, 3), headOf(3))).toEqual([]);
      expect(await s.commit('gw-1', items(2, 3), headOf(3))).toEqual([]);
      // overlapping: the known part is skipped, the rest committed
      expect((await s.commit('gw-1', items(3, 5), headOf(5))).map((l) => l.seq)).toEqual([4, 5]);
      expect(await s.countPending()).toBe(5);
      expect(await s.getHead('gw-1')).toEqual(headOf(5));
    });

    withStore('refuses a different statement at a stored seq, or a gap after the head, with INGEST_STORE_CONFLICT and writes nothing', async (h) => {
      const s = h.store;
      await s.commit('gw-1', items(1, 2), headOf(2));
      expect(await codeOf(s.commit('gw-1', items(2, 3, { variant: 1 }), headOf(3)))).toBe('INGEST_STORE_CONFLICT');
      expect(await codeOf(s.commit('gw-1', items(4, 5), headOf(5)))).toBe('INGEST_STORE_CONFLICT');
      expect(await s.getHead('gw-1')).toEqual(headOf(2));
      expect(await s.getEntry('gw-1', 3)).toBeUndefined();
      expect(await s.countPending()).toBe(2);
      // misuse: not contiguous, or a head that is not the last item
      await expect(s.commit('gw-1', [...items(3, 3), ...items(5, 5)], headOf(5))).rejects.toThrow(RangeError);
      await expect(s.commit('gw-1', items(3, 4), headOf(3))).rejects.toThrow(RangeError);
    });

    withStore('commits a device once when two writers race on the same statements', async (h) => {
      const other = (await h.second()) ?? h.store;
      const results = await Promise.allSettled([h.store.commit('gw-1', items(1, 50), headOf(50)), other.commit('gw-1', items(1, 50), headOf(50))]);
      const written = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value.length] : []));
      expect(written.sort((x, y) => x - y)).toEqual([0, 50]);
      expect(await h.store.countPending()).toBe(50);
      // different statements racing for the same seqs: one wins, the other is a conflict
      const race = await Promise.allSettled([h.store.commit('gw-2', items(1, 5, { tag: 1 }), headOf(5)), other.commit('gw-2', items(1, 5, { tag: 2 }), headOf(5))]);
      expect(race.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
      const loser = race.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect((loser.reason as SteleError<string>).code).toBe('INGEST_STORE_CONFLICT');
      expect(await h.store.countPending()).toBe(55);
    });

    withStore('holds a statement ahead of the head once per seq, and drops it when the head passes it', async (h) => {
      const s = h.store;
      expect(await s.hold('gw-1', { seq: 3, payload: utf8('m3'), receivedAt: 30 })).toBe(true);
      expect(await s.hold('gw-1', { seq: 3, payload: utf8('m3 again'), receivedAt: 31 })).toBe(false);
      expect(await s.hold('gw-1', { seq: 5, payload: utf8('m5'), receivedAt: 50 })).toBe(true);
      expect(await s.hold('gw-1!x', { seq: 4, payload: utf8('other'), receivedAt: 40 })).toBe(true);
      expect(await s.listHeld('gw-1', 2, 10)).toEqual([
        { seq: 3, payload: utf8('m3'), receivedAt: 30 },
        { seq: 5, payload: utf8('m5'), receivedAt: 50 },
      ]);
      expect(await s.listHeld('gw-1', 4, 1)).toEqual([{ seq: 5, payload: utf8('m5'), receivedAt: 50 }]);
      // the run without a gap from a seq: 3 alone (4 is not held), 5 alone, none from 4
      expect(await s.listHeldRun('gw-1', 3, 10)).toEqual([{ seq: 3, payload: utf8('m3'), receivedAt: 30 }]);
      expect(await s.listHeldRun('gw-1', 4, 10)).toEqual([]);
      expect(await s.listHeldRun('gw-1', 5, 10)).toEqual([{ seq: 5, payload: utf8('m5'), receivedAt: 50 }]);
      expect(await s.countHeld('gw-1')).toBe(2);
      expect(await s.countAllHeld()).toBe(3);
      await s.commit('gw-1', items(1, 3), headOf(3));
      expect((await s.listHeld('gw-1', 0, 10)).map((r) => r.seq)).toEqual([5]);
      await s.dropHeld('gw-1', 5);
      expect(await s.countHeld('gw-1')).toBe(0);
      expect(await (await h.reopen()).listHeld('gw-1!x', 0, 10)).toEqual([{ seq: 4, payload: utf8('other'), receivedAt: 40 }]);
    });

    withStore('holds several statements in one write, leaving the seqs already held as they are', async (h) => {
      const s = h.store;
      expect(await s.hold('gw-1', { seq: 4, payload: utf8('m4'), receivedAt: 40 })).toBe(true);
      expect(await s.holdAll('gw-1', [])).toEqual([]);
      expect(
        await s.holdAll('gw-1', [
          { seq: 6, payload: utf8('m6'), receivedAt: 60 },
          { seq: 4, payload: utf8('m4 again'), receivedAt: 41 },
          { seq: 5, payload: utf8('m5'), receivedAt: 50 },
        ]),
      ).toEqual([5, 6]);
      expect(await s.listHeld('gw-1', 0, 10)).toEqual([
        { seq: 4, payload: utf8('m4'), receivedAt: 40 },
        { seq: 5, payload: utf8('m5'), receivedAt: 50 },
        { seq: 6, payload: utf8('m6'), receivedAt: 60 },
      ]);
      expect(await s.countHeld('gw-1')).toBe(3);
      expect((await s.listHeldRun('gw-1', 4, 10)).map((r) => r.seq)).toEqual([4, 5, 6]);
      expect((await s.listHeldRun('gw-1', 4, 2)).map((r) => r.seq)).toEqual([4, 5]);
      expect((await s.listHeldRun('gw-1', 5, 10)).map((r) => r.seq)).toEqual([5, 6]);
      expect((await s.holdAll('gw-1', [{ seq: 9, payload: utf8('m9'), receivedAt: 90 }, { seq: 8, payload: utf8('m8'), receivedAt: 80 }]))).toEqual([8, 9]);
      expect((await s.listHeldRun('gw-1', 4, 10)).map((r) => r.seq)).toEqual([4, 5, 6]);
      expect((await s.listHeldRun('gw-1', 8, 10)).map((r) => r.seq)).toEqual([8, 9]);
      // whether its signature was checked before it was held comes back as written, absent when not
      expect(await s.holdAll('gw-1', [{ seq: 10, payload: utf8('m10'), receivedAt: 100, signatureChecked: true }])).toEqual([10]);
      expect(await s.listHeldRun('gw-1', 8, 10)).toEqual([
        { seq: 8, payload: utf8('m8'), receivedAt: 80 },
        { seq: 9, payload: utf8('m9'), receivedAt: 90 },
        { seq: 10, payload: utf8('m10'), receivedAt: 100, signatureChecked: true },
      ]);
      expect(await s.countHeld('gw-1')).toBe(6);
      await s.dropHeld('gw-1', 8);
      await s.dropHeld('gw-1', 9);
      expect(await s.countHeld('gw-1')).toBe(4);
      await expect(s.holdAll('gw-1', [{ seq: 7, payload: utf8('a'), receivedAt: 1 }, { seq: 7, payload: utf8('b'), receivedAt: 1 }])).rejects.toThrow(RangeError);
      await expect(s.holdAll('gw-1', [{ seq: 0, payload: utf8('a'), receivedAt: 1 }])).rejects.toThrow(RangeError);
      expect(await s.countHeld('gw-1')).toBe(4);
      await s.commit('gw-1', items(1, 5), headOf(5));
      expect(await (await h.reopen()).listHeld('gw-1', 0, 10)).toEqual([
        { seq: 6, payload: utf8('m6'), receivedAt: 60 },
        { seq: 10, payload: utf8('m10'), receivedAt: 100, signatureChecked: true },
      ]);
    });

    withStore('seals the oldest pending leaves in commit order, batch ids from 1, nothing when nothing is pending', async (h) => {
      const s = h.store;
      expect(await s.sealBatch(4, build)).toBeUndefined();
      await s.commit('gw-1', items(1, 3, { tag: 1 }), headOf(3));
      await s.commit('gw-2', items(1, 2, { tag: 2 }), headOf(2));
      await s.commit('gw-1', items(4, 4, { tag: 1 }), headOf(4));
      const one = await s.sealBatch(4, build);
      expect(one!.leaves).toEqual([
        { deviceId: 'gw-1', seq: 1 },
        { deviceId: 'gw-1', seq: 2 },
        { deviceId: 'gw-1', seq: 3 },
        { deviceId: 'gw-2', seq: 1 },
      ]);
      expect(await s.getEntry('gw-2', 1)).toMatchObject({ batchId: 1, leafIndex: 3 });
      const two = await s.sealBatch(4, build);
      expect(two).toMatchObject({ batchId: 2, size: 2, leaves: [{ deviceId: 'gw-2', seq: 2 }, { deviceId: 'gw-1', seq: 4 }] });
      expect(await s.getEntry('gw-1', 4)).toMatchObject({ batchId: 2, leafIndex: 1 });
      expect(await s.countPending()).toBe(0);
      expect(await s.listUnanchoredIds()).toEqual([1, 2]);
      // a sealer that fails (e.g. its key token went away) leaves everything pending and the id unused
      await s.commit('gw-1', items(5, 5, { tag: 1 }), headOf(5));
      await expect(s.sealBatch(4, () => Promise.reject(new Error('token removed')))).rejects.toThrow('token removed');
      expect(await s.countPending()).toBe(1);
      expect((await s.sealBatch(4, build))!.batchId).toBe(3);
    });

    withStore(
      'two sealers racing with committers: every leaf sealed exactly once, batch ids contiguous',
      async (h) => {
        const other = (await h.second()) ?? h.store;
        const devices = 6;
        const perDevice = 60;
        let committing = true;
        const commits = (async () => {
          for (let seq = 1; seq <= perDevice; seq += 10) {
            await Promise.all(
              Array.from({ length: devices }, (_, d) => (d % 2 === 0 ? h.store : other).commit(`gw-${d}`, items(seq, seq + 9, { tag: d }), headOf(seq + 9))),
            );
          }
          committing = false;
        })();
        const sealed: { batchId: number; leaves: { deviceId: string; seq: number }[] }[] = [];
        const sealer = async (s: IngestStore) => {
          for (;;) {
            const wasCommitting = committing;
            const row = await s.sealBatch(25, build);
            if (row !== undefined) sealed.push(row);
            else if (!wasCommitting) return;
            else await new Promise((r) => setImmediate(r));
          }
        };
        await Promise.all([commits, sealer(h.store), sealer(other)]);
        const seen = new Set<string>();
        for (const row of sealed) for (const l of row.leaves) seen.add(`${l.deviceId}/${l.seq}`);
        const total = sealed.reduce((n, r) => n + r.leaves.length, 0);
        expect(total).toBe(devices * perDevice); // no double
        expect(seen.size).toBe(devices * perDevice); // no miss
        expect(sealed.map((r) => r.batchId).sort((x, y) => x - y)).toEqual(sealed.map((_, i) => i + 1));
        expect(await h.store.countPending()).toBe(0);
        for (const row of sealed) {
          for (const [i, l] of row.leaves.entries()) expect(await h.store.getEntry(l.deviceId, l.seq)).toMatchObject({ batchId: row.batchId, leafIndex: i });
        }
      },
      120_000,
    );

    withStore('records forks, never applied', async (h) => {
      const s = h.store;
      await s.commit('gw-1', items(1, 1), headOf(1));
      await s.putFork({ deviceId: 'gw-1', seq: 1, statement: utf8('other'), reading: utf8('r'), receivedAt: 5 });
      await s.putFork({ deviceId: 'gw-1', seq: 1, statement: utf8('other'), reading: utf8('r'), receivedAt: 5 });
      await s.putFork({ deviceId: 'gw-1!x', seq: 1, statement: utf8('x'), receivedAt: 6 });
      expect(await s.listForks('gw-1')).toEqual([{ deviceId: 'gw-1', seq: 1, statement: utf8('other'), reading: utf8('r'), receivedAt: 5 }]);
      expect(await s.getEntry('gw-1', 1)).toEqual(items(1, 1)[0]!.entry);
    });

    withStore('finds readings by frame digest, across devices, readings in full only', async (h) => {
      const s = h.store;
      const shared = frame(99);
      const full = items(1, 2, { full: true });
      full[1]!.entry.reading = readingOf('gw-1', 2, T0, [frame(2), shared]);
      await s.commit('gw-1', [...full, ...items(3, 3)], headOf(3));
      const other = items(7, 7);
      other[0]!.entry.reading = readingOf('gw-2!x', 7, T0, [shared]);
      await s.commit('gw-2!x', [...items(1, 6, { tag: 2 }), ...other], headOf(7));
      expect(await s.findByRawDigest(frame(1))).toEqual([{ deviceId: 'gw-1', seq: 1 }]);
      expect(await s.findByRawDigest(shared)).toEqual([
        { deviceId: 'gw-1', seq: 2 },
        { deviceId: 'gw-2!x', seq: 7 },
      ]);
      expect(await s.findByRawDigest(shared, 1)).toHaveLength(1);
      expect(await s.findByRawDigest(frame(3))).toEqual([]);
      await expect(s.findByRawDigest(new Uint8Array(31))).rejects.toThrow(TypeError);
    });

    withStore('finds a device window by device time and by receive time; hash-only statements by receive time only', async (h) => {
      const s = h.store;
      // seq 1..6 in full (device time T0 + seq s), 7..8 hash-only; receive time T0 + 0.5 s + seq s
      await s.commit('gw-1', [...items(1, 6, { full: true }), ...items(7, 8)], headOf(8));
      await s.commit('gw-1!x', items(1, 8, { full: true, deviceId: 'gw-1!x', tag: 9 }), headOf(8));
      const byDevice = await s.findByTime('gw-1', { by: 'device', fromMs: T0 + 2000, toMs: T0 + 5000, limit: 100 });
      expect(byDevice).toEqual([2, 3, 4].map((seq) => ({ seq, deviceTime: T0 + seq * 1000, receivedAt: T0 + 500 + seq * 1000 })));
      const byReceive = await s.findByTime('gw-1', { by: 'received', fromMs: T0 + 5000, toMs: T0 + 100_000, limit: 100 });
      expect(byReceive.map((r) => r.seq)).toEqual([5, 6, 7, 8]);
      expect(byReceive[3]).toEqual({ seq: 8, receivedAt: T0 + 8500 }); // hash-only: no device time
      expect(await s.findByTime('gw-1', { by: 'device', fromMs: T0 + 7000, toMs: T0 + 100_000, limit: 100 })).toEqual([]);
      expect((await s.findByTime('gw-1', { by: 'received', fromMs: 0, toMs: T0 + 100_000, limit: 3 })).map((r) => r.seq)).toEqual([1, 2, 3]);
      await expect(s.findByTime('gw-1', { by: 'device', fromMs: 10, toMs: 5, limit: 1 })).rejects.toThrow(RangeError);
      expect((await (await h.reopen()).findByTime('gw-1', { by: 'device', fromMs: T0, toMs: T0 + 2000, limit: 10 })).map((r) => r.seq)).toEqual([1]);
    });

    withStore('keeps alert delivery records across reopen; pending ones are listed per channel, oldest first, until delivered', async (h) => {
      const s = h.store;
      const id = (n: number): string => n.toString(16).padStart(64, '0');
      await s.putAlertDelivery({ alertId: id(2), channel: 'webhook', state: 'pending', body: utf8('{"n":2}'), queuedAt: T0 + 2, attempts: 0 });
      await s.putAlertDelivery({ alertId: id(1), channel: 'webhook', state: 'pending', body: utf8('{"n":1}'), queuedAt: T0 + 1, attempts: 0 });
      await s.putAlertDelivery({ alertId: id(1), channel: 'mqtt', state: 'pending', body: utf8('{"n":1}'), queuedAt: T0 + 1, attempts: 0 });
      expect((await s.listPendingAlertDeliveries('webhook', 10)).map((r) => r.alertId)).toEqual([id(1), id(2)]);
      expect((await s.listPendingAlertDeliveries('webhook', 1)).map((r) => r.alertId)).toEqual([id(1)]);
      expect(await s.countPendingAlertDeliveries('webhook')).toBe(2);
      await s.putAlertDelivery({ alertId: id(1), channel: 'webhook', state: 'pending', body: utf8('{"n":1}'), queuedAt: T0 + 1, attempts: 1, lastAttemptAt: T0 + 5, lastError: 'HTTP 503' });
      await s.putAlertDelivery({ alertId: id(1), channel: 'webhook', state: 'delivered', body: utf8('{"n":1}'), queuedAt: T0 + 1, attempts: 2, lastAttemptAt: T0 + 9, deliveredAt: T0 + 9, lastError: 'HTTP 503' });
      const r = await h.reopen();
      expect((await r.listPendingAlertDeliveries('webhook', 10)).map((x) => x.alertId)).toEqual([id(2)]);
      expect(await r.countPendingAlertDeliveries('webhook')).toBe(1);
      expect(await r.countPendingAlertDeliveries('mqtt')).toBe(1);
      const all = await r.listAlertDeliveries(id(1));
      expect(all.map((x) => [x.channel, x.state, x.attempts])).toEqual([['mqtt', 'pending', 0], ['webhook', 'delivered', 2]]);
      expect(all[1]).toMatchObject({ lastAttemptAt: T0 + 9, deliveredAt: T0 + 9, lastError: 'HTTP 503' });
      expect(all[1]!.body).toEqual(utf8('{"n":1}'));
      expect(await r.getAlertDelivery(id(3), 'webhook')).toBeUndefined();
    });
  });
}
