import { afterEach, describe, expect, it } from 'vitest';
import { encodeReading, GENESIS_PREV } from '@stele/core';
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
      const row = await store.sealBatch(max, async (batchId, leaves) => ({
        batchId,
        size: leaves.length,
        root: b(0),
        leafHashes: leaves.map((l) => l.leafHash),
        protectedBytes: b(1),
        signature: new Uint8Array(64),
        createdAt: 1,
      }));
      if (row !== undefined) sealed.push(...row.leaves);
    };
    const commits = devices.map(async (id) => {
      for (let seq = 1; seq <= 10; seq++) {
        await store.commit(id, [item(id, seq)], { seq, digest: b(seq) });
        if (seq % 3 === 0) await seal(7);
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
    await reopened.sealBatch(1000, async (batchId, leaves) => ({ batchId, size: leaves.length, root: b(0), leafHashes: leaves.map((l) => l.leafHash), protectedBytes: b(1), signature: new Uint8Array(64), createdAt: 1 }));
    expect(await reopened.countPending()).toBe(0);
    expect(await reopened.listPending()).toEqual([]);
  });
});
