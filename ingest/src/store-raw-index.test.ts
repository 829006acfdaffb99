import { Level } from 'level';
import { afterEach, describe, expect, it } from 'vitest';
import { utf8 } from '@stele/core/bytes.ts';
import { sha256 } from '@stele/core/hash.ts';
import { encodeReading, GENESIS_PREV } from '@stele/core/reading.ts';
import { IngestStore } from './store.ts';
import { readingAt, tempDir } from './test-helpers.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const b = (n: number): Uint8Array => new Uint8Array(32).fill(n);
const frame = (i: number) => sha256(utf8(`##0100QN=${i};CN=2011\r\n`));

function readingWith(deviceId: string, seq: number, raw: Uint8Array[]): Uint8Array {
  return encodeReading({ ...readingAt(deviceId, seq, GENESIS_PREV), raw });
}

describe('IngestStore raw frame index', () => {
  it('finds readings by the SHA-256 of a frame they name, across devices, and survives reopen', async () => {
    const dir = await tempDir('store-raw');
    cleanups.push(() => dir.remove());
    let store = await IngestStore.open(dir.path);
    await store.commit(
      'gw-1',
      [
        { seq: 1, entry: { statement: b(1), reading: readingWith('gw-1', 1, [frame(1)]), receivedAt: 1 }, leafHash: b(21) },
        { seq: 2, entry: { statement: b(2), reading: readingWith('gw-1', 2, [frame(2), frame(3)]), receivedAt: 2 }, leafHash: b(22) },
        { seq: 3, entry: { statement: b(3), receivedAt: 3 }, leafHash: b(23) }, // hash-only: nothing to index
      ],
      { seq: 3, digest: b(9) },
    );
    // the same frame seen by a second gateway (e.g. two gateways on one logger)
    await store.commit('gw-2!x', [{ seq: 7, entry: { statement: b(4), reading: readingWith('gw-2!x', 7, [frame(3)]), receivedAt: 4 }, leafHash: b(24) }], {
      seq: 7,
      digest: b(8),
    });
    expect(await store.findByRawDigest(frame(1))).toEqual([{ deviceId: 'gw-1', seq: 1 }]);
    expect(await store.findByRawDigest(frame(2))).toEqual([{ deviceId: 'gw-1', seq: 2 }]);
    expect(await store.findByRawDigest(frame(3))).toEqual([
      { deviceId: 'gw-1', seq: 2 },
      { deviceId: 'gw-2!x', seq: 7 },
    ]);
    expect(await store.findByRawDigest(frame(4))).toEqual([]);
    expect(await store.findByRawDigest(frame(3), 1)).toHaveLength(1);
    await store.close();
    store = await IngestStore.open(dir.path);
    cleanups.push(() => store.close());
    expect(await store.findByRawDigest(frame(2))).toEqual([{ deviceId: 'gw-1', seq: 2 }]);
    await expect(store.findByRawDigest(new Uint8Array(31))).rejects.toThrow(TypeError);
  });

  it('builds the index on open for a store written before the index existed', async () => {
    const dir = await tempDir('store-raw-old');
    cleanups.push(() => dir.remove());
    let store = await IngestStore.open(dir.path);
    await store.commit('gw-1', [{ seq: 1, entry: { statement: b(1), reading: readingWith('gw-1', 1, [frame(9)]), receivedAt: 1 }, leafHash: b(21) }], {
      seq: 1,
      digest: b(9),
    });
    await store.close();
    // Make it an old store: no index keys, no marker.
    const db = new Level<string, Uint8Array>(dir.path, { valueEncoding: 'view' });
    await db.open();
    await db.clear({ gt: 'raw!', lt: 'raw"' });
    await db.del('meta!rawIndex');
    await db.close();

    store = await IngestStore.open(dir.path);
    cleanups.push(() => store.close());
    expect(await store.findByRawDigest(frame(9))).toEqual([{ deviceId: 'gw-1', seq: 1 }]);
  });
});
