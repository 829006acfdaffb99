import { afterEach, describe, expect, it } from 'vitest';
import { IngestStore } from './store.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

async function tempDir(prefix: string): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `stele-${prefix}-`));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const b = (n: number): Uint8Array => new Uint8Array(32).fill(n);
const record = { deviceId: 'gw-1', publicKey: 'pk', kid: 'kid', keyBackend: 'software' as const, enrolledAt: '2026-01-01T00:00:00.000Z' };

describe('IngestStore', () => {
  it('keeps devices, heads, entries, pending leaves and batches across close and reopen', async () => {
    const dir = await tempDir('store');
    cleanups.push(() => dir.remove());
    let store = await IngestStore.open(dir.path);
    await store.putDevice({ record, publicKey: b(4), kid: b(5) });
    const leaves = await store.commit(
      'gw-1',
      [
        { seq: 1, entry: { statement: b(1), reading: b(11), receivedAt: 100 }, leafHash: b(21) },
        { seq: 2, entry: { statement: b(2), receivedAt: 101 }, leafHash: b(22) },
      ],
      { seq: 2, digest: b(9) },
    );
    expect(leaves.map((l) => l.order)).toEqual([0, 1]);
    await store.commit('gw-1', [{ seq: 3, entry: { statement: b(3), receivedAt: 102 }, leafHash: b(23) }], { seq: 3, digest: b(10) });
    await store.writeBatch({ batchId: 1, size: 2, root: b(30), leafHashes: [b(21), b(22)], protectedBytes: b(31), signature: b(32), createdAt: 5 }, leaves);
    await store.close();

    store = await IngestStore.open(dir.path);
    cleanups.push(() => store.close());
    expect((await store.listDevices())[0]!.record).toEqual(record);
    expect(await store.listHeads()).toEqual(new Map([['gw-1', { seq: 3, digest: b(10) }]]));
    expect(await store.getEntry('gw-1', 1)).toEqual({ statement: b(1), reading: b(11), receivedAt: 100, batchId: 1, leafIndex: 0 });
    expect(await store.getEntry('gw-1', 3)).toEqual({ statement: b(3), receivedAt: 102 });
    expect(await store.listPending()).toEqual([{ order: 2, deviceId: 'gw-1', seq: 3, leafHash: b(23) }]);
    expect(await store.listUnanchoredIds()).toEqual([1]);
    expect(store.peekNextBatchId()).toBe(2);
    const anchor = { chainId: 31337, contract: '0xc', txHash: '0xt', blockNumber: 7, blockTime: 1700000000 };
    await store.setAnchor(1, anchor);
    expect(await store.listUnanchoredIds()).toEqual([]);
    const batch = await store.getBatch(1);
    expect(batch).toMatchObject({ batchId: 1, size: 2, anchor, leaves: [{ deviceId: 'gw-1', seq: 1 }, { deviceId: 'gw-1', seq: 2 }] });
    expect(batch!.leafHashes).toEqual([b(21), b(22)]);
  });

  it('refuses a batch id that is not the next one', async () => {
    const dir = await tempDir('store');
    cleanups.push(() => dir.remove());
    const store = await IngestStore.open(dir.path);
    cleanups.push(() => store.close());
    await expect(store.writeBatch({ batchId: 2, size: 0, root: b(0), leafHashes: [], protectedBytes: b(0), signature: b(0), createdAt: 0 }, [])).rejects.toThrow(RangeError);
  });
});
