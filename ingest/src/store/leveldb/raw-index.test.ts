import { Level } from 'level';
import { afterEach, describe, expect, it } from 'vitest';
import { utf8, sha256, encodeReading, GENESIS_PREV } from '@stele/core';
import { readingAt, tempDir } from '../../test-helpers.ts';
import { LevelStore } from './level-store.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const b = (n: number): Uint8Array => new Uint8Array(32).fill(n);
const frame = (i: number) => sha256(utf8(`##0100QN=${i};CN=2011\r\n`));

function readingWith(deviceId: string, seq: number, raw: Uint8Array[]): Uint8Array {
  return encodeReading({ ...readingAt(deviceId, seq, GENESIS_PREV), raw });
}

describe('LevelStore indexes of stores written before them', () => {
  it('builds the frame and time indexes on open for a store written before they existed', async () => {
    const dir = await tempDir('store-raw-old');
    cleanups.push(() => dir.remove());
    let store = await LevelStore.open(dir.path);
    await store.commit('gw-1', [{ seq: 1, entry: { statement: b(1), reading: readingWith('gw-1', 1, [frame(9)]), receivedAt: 1 }, leafHash: b(21) }], {
      seq: 1,
      digest: b(9),
    });
    await store.close();
    // Make it an old store: no index keys, no marker.
    const db = new Level<string, Uint8Array>(dir.path, { valueEncoding: 'view' });
    await db.open();
    await db.clear({ gt: 'raw!', lt: 'raw"' });
    await db.clear({ gt: 'tdev!', lt: 'tdev"' });
    await db.clear({ gt: 'trcv!', lt: 'trcv"' });
    await db.del('meta!rawIndex');
    await db.del('meta!timeIndex');
    await db.close();

    store = await LevelStore.open(dir.path);
    cleanups.push(() => store.close());
    expect(await store.findByRawDigest(frame(9))).toEqual([{ deviceId: 'gw-1', seq: 1 }]);
    const time = readingAt('gw-1', 1, GENESIS_PREV).time;
    expect(await store.findByTime('gw-1', { by: 'device', fromMs: time, toMs: time + 1, limit: 10 })).toEqual([{ seq: 1, deviceTime: time, receivedAt: 1 }]);
    expect(await store.findByTime('gw-1', { by: 'received', fromMs: 0, toMs: 2, limit: 10 })).toEqual([{ seq: 1, deviceTime: time, receivedAt: 1 }]);
  });
});
