import { afterEach, describe, expect, it } from 'vitest';
import { Level } from 'level';
import { encodeCbor, encodeReading, GENESIS_PREV } from '@stele/core';
import { readingAt, tempDir } from '../../test-helpers.ts';
import { LevelStore } from './level-store.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const b = (n: number): Uint8Array => new Uint8Array(32).fill(n);
const item = (deviceId: string, seq: number) => ({
  seq,
  entry: { statement: b(seq & 0xff), reading: encodeReading(readingAt(deviceId, seq, GENESIS_PREV)), receivedAt: 1000 + seq },
  leafHash: b((seq + 1) & 0xff),
});

/** Seals at most `max` pending leaves into a batch (root and signature stand-ins: the store does not judge them). */
const sealUpTo = (store: LevelStore, max: number) =>
  store.sealBatch(max, async (batchId, leaves) => ({ batchId, size: leaves.length, root: b(0), leafHashes: leaves.map((l) => l.leafHash), protectedBytes: b(1), signature: new Uint8Array(64), createdAt: 1 }));

describe('LevelStore group commit (many devices, one synced batch)', () => {
  it('closed while commits of 40 devices gather: each commit resolves with its rows durable or rejects with none of them, never half', async () => {
    const dir = await tempDir('store-group');
    cleanups.push(() => dir.remove());
    const store = await LevelStore.open(dir.path);
    const devices = Array.from({ length: 40 }, (_, d) => `gw-${d}`);
    // Ten commits per device, each waiting for the one before (as ingest's per-device drain does); the store is
    // closed once the first group is durable, while later ones gather.
    const outcomes = new Map<string, number>(); // device -> last seq whose commit resolved
    let firstDurable!: () => void;
    const durable = new Promise<void>((r) => (firstDurable = r));
    const runs = devices.map(async (id) => {
      for (let seq = 1; seq <= 10; seq++) {
        try {
          await store.commit(id, [item(id, seq)], { seq, digest: b(seq) });
          outcomes.set(id, seq);
          firstDurable();
        } catch {
          return;
        }
      }
    });
    await durable;
    await store.close();
    await Promise.all(runs); // none hangs
    const reopened = await LevelStore.open(dir.path);
    cleanups.push(() => reopened.close());
    let resolved = 0;
    for (const id of devices) {
      const last = outcomes.get(id) ?? 0;
      resolved += last;
      const head = (await reopened.getHead(id))?.seq ?? 0;
      // what resolved is durable; what rejected is not there; nothing in between
      expect(head, id).toBe(last);
      const entries = await reopened.getEntries(id, 1, 10);
      expect(entries.map(([seq]) => seq), id).toEqual(Array.from({ length: last }, (_, i) => i + 1));
    }
    expect(resolved).toBeGreaterThan(0);
    expect(resolved).toBeLessThan(400);
  });

  it('sealing takes its leaves from memory: with 40 devices committing and batches sealed meanwhile, what is left pending is what the rows on disk say, in order', async () => {
    const dir = await tempDir('store-pending');
    cleanups.push(() => dir.remove());
    const store = await LevelStore.open(dir.path);
    const devices = Array.from({ length: 40 }, (_, d) => `gw-${d}`);
    const sealed: { deviceId: string; seq: number }[] = [];
    const seal = async (max: number) => {
      const row = await sealUpTo(store, max);
      if (row !== undefined) sealed.push(...row.leaves);
    };
    // commits of one, two and three statements (one pending row each), batches of 7 that cut rows
    const commits = devices.map(async (id) => {
      for (const [from, to] of [[1, 1], [2, 3], [4, 6], [7, 8], [9, 10]] as const) {
        const items = Array.from({ length: to - from + 1 }, (_, i) => item(id, from + i));
        await store.commit(id, items, { seq: to, digest: b(to) });
        if (to % 3 === 0) await seal(7);
      }
    });
    await Promise.all(commits);
    const live = await store.listPending();
    expect(await store.countPending()).toBe(live.length);
    expect(live.map((l) => l.order)).toEqual([...live.map((l) => l.order)].sort((x, y) => x - y));
    // every committed leaf is either sealed once or pending, never both
    const key = (l: { deviceId: string; seq: number }) => `${l.deviceId}/${l.seq}`;
    const all = [...sealed.map(key), ...live.map(key)];
    expect(new Set(all).size).toBe(400);
    expect(all.length).toBe(400);
    await store.close();
    const reopened = await LevelStore.open(dir.path);
    cleanups.push(() => reopened.close());
    expect(await reopened.listPending()).toEqual(live);
    await sealUpTo(reopened, 1000);
    expect(await reopened.countPending()).toBe(0);
    expect(await reopened.listPending()).toEqual([]);
  });

  it('reads a pending row of a store written before rows held a whole commit (one leaf, {leafHash}); a batch that cuts a row writes the rest again', async () => {
    const dir = await tempDir('store-pending-old');
    cleanups.push(() => dir.remove());
    const store = await LevelStore.open(dir.path);
    await store.commit('gw-new', [item('gw-new', 1), item('gw-new', 2)], { seq: 2, digest: b(2) }); // orders 0 and 1, one row
    await store.close();
    const db = new Level<string, Uint8Array>(dir.path, { valueEncoding: 'view' });
    await db.put(`pend!${'5'.padStart(16, '0')}`, encodeCbor({ seq: 1, deviceId: 'gw-old', leafHash: b(9) }));
    await db.close();
    const listed = async (s: LevelStore) => (await s.listPending()).map((l) => [l.deviceId, l.seq, l.leafHash[0]]);
    let s = await LevelStore.open(dir.path);
    expect(await listed(s)).toEqual([['gw-new', 1, 2], ['gw-new', 2, 3], ['gw-old', 1, 9]]);
    expect((await sealUpTo(s, 1))!.leaves).toEqual([{ deviceId: 'gw-new', seq: 1 }]);
    expect(await listed(s)).toEqual([['gw-new', 2, 3], ['gw-old', 1, 9]]);
    await s.close();
    s = await LevelStore.open(dir.path);
    expect(await listed(s)).toEqual([['gw-new', 2, 3], ['gw-old', 1, 9]]);
    expect((await sealUpTo(s, 10))!.leaves).toEqual([{ deviceId: 'gw-new', seq: 2 }, { deviceId: 'gw-old', seq: 1 }]);
    await s.close();
    s = await LevelStore.open(dir.path);
    cleanups.push(() => s.close());
    expect(await listed(s)).toEqual([]);
    // orders go on after the last pending row's; none is left, so a new commit starts again at 0
    await s.commit('gw-new', [item('gw-new', 3)], { seq: 3, digest: b(3) });
    expect(await listed(s)).toEqual([['gw-new', 3, 4]]);
  });
});
