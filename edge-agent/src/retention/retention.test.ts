import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createSoftwareKey, type SoftwareSigner } from '@stele/device';
import { Outbox } from '../outbox.ts';
import { acquired } from '../test-helpers.ts';
import { Retention, type RetentionOptions } from './retention.ts';

const DEVICE = 'gw-ret-1';
let dir: string;
let signer: SoftwareSigner;
let outbox: Outbox;
let clock: number;
const started: Retention[] = [];

beforeAll(async () => {
  const keyDir = await mkdtemp(join(tmpdir(), 'stele-ret-key-'));
  signer = await createSoftwareKey(join(keyDir, 'k.pem'));
  await rm(keyDir, { recursive: true, force: true });
});
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stele-ret-'));
  outbox = await Outbox.open(join(dir, 'outbox'));
  clock = 1000;
});
afterEach(async () => {
  for (const r of started.splice(0)) await r.stop();
  await outbox.close();
  await rm(dir, { recursive: true, force: true });
});

async function take(n: number): Promise<void> {
  const from = outbox.head().seq + 1;
  for (let i = from; i < from + n; i++) await outbox.take(acquired(i), signer, DEVICE);
}

async function retention(options: Partial<RetentionOptions> = {}): Promise<Retention> {
  const r = new Retention({
    outbox,
    stateFile: join(dir, 'retention.json'),
    intervalMs: 3_600_000, // rounds are driven by the test
    markIntervalMs: 1000,
    saveIntervalMs: 1000,
    monotonicNow: () => clock,
    ...options,
  });
  started.push(r);
  await r.start();
  return r;
}

const stored = async () => (await outbox.pendingFrom(0, 100_000)).map((e) => e.seq);

describe('Retention', () => {
  it('never prunes a reading ingest has not confirmed', async () => {
    const r = await retention({ keepForMs: 0 });
    await take(10);
    await r.runOnce();
    expect(await stored()).toHaveLength(10);
    await outbox.markAcked(4);
    await r.runOnce();
    expect(await stored()).toEqual([5, 6, 7, 8, 9, 10]);
    expect(r.status()).toMatchObject({ pruned: 4, oldestSeq: 5, retained: 0 });
  });

  it('keeps the newest keepReadings acknowledged readings', async () => {
    const r = await retention({ keepForMs: 0, keepReadings: 3 });
    await take(10);
    await outbox.markAcked(8);
    await r.runOnce();
    expect(await stored()).toEqual([6, 7, 8, 9, 10]);
    expect(r.status()).toMatchObject({ retained: 3, prunableUpTo: 5 });
  });

  it('keeps acknowledged readings for keepForMs of agent uptime, measured by the monotonic clock', async () => {
    const r = await retention({ keepForMs: 10_000 });
    await take(5); // taken at uptime ~0
    clock += 2000;
    await r.runOnce(); // mark: seq 5 at uptime 2000
    await take(5); // 6..10 taken after that mark
    await outbox.markAcked(10);
    clock += 5000;
    await r.runOnce(); // mark: seq 10 at 7000
    expect(await stored()).toHaveLength(10); // nothing is 10 s old yet
    clock += 5000; // uptime 12 000: the mark (5 @ 2000) is 10 s old, (10 @ 7000) is not
    await r.runOnce();
    expect(await stored()).toEqual([6, 7, 8, 9, 10]);
    clock += 5000;
    await r.runOnce();
    expect(await stored()).toEqual([]);
  });

  it('ignores wall-clock time entirely: a clock jump of a year expires nothing', async () => {
    const realNow = Date.now;
    try {
      const r = await retention({ keepForMs: 60_000 });
      await take(5);
      clock += 1000;
      await r.runOnce();
      await outbox.markAcked(5);
      Date.now = () => realNow() + 365 * 24 * 3600_000;
      await r.runOnce();
      expect(await stored()).toHaveLength(5);
    } finally {
      Date.now = realNow;
    }
  });

  it('carries the uptime over restarts through its state file, and only the time the agent ran counts', async () => {
    let r = await retention({ keepForMs: 10_000 });
    await take(5);
    clock += 1000;
    await r.runOnce(); // mark 5 @ 1000
    await outbox.markAcked(5);
    clock += 6000;
    await r.stop(); // saved at uptime 7000
    const saved = JSON.parse(await readFile(join(dir, 'retention.json'), 'utf8')) as { uptimeMs: number; marks: number[][] };
    expect(saved.uptimeMs).toBe(7000);
    expect(saved.marks).toContainEqual([5, 1000]);

    clock += 3_600_000; // the gateway was off for an hour: not counted
    r = await retention({ keepForMs: 10_000 });
    expect(r.uptimeMs()).toBe(7000);
    await r.runOnce();
    expect(await stored()).toHaveLength(5);
    clock += 4000; // uptime 11 000: mark 5 @ 1000 is now 10 s old
    await r.runOnce();
    expect(await stored()).toEqual([]);
  });

  it('prunes a large backlog in bounded batches and the chain goes on', async () => {
    const r = await retention({ keepForMs: 0, batchSize: 7 });
    await take(50);
    await outbox.markAcked(45);
    await r.runOnce();
    expect(await stored()).toEqual([46, 47, 48, 49, 50]);
    expect(r.status().pruned).toBe(45);
    const t = await outbox.take(acquired(51), signer, DEVICE);
    expect(t.seq).toBe(51);
  });

  it('starts over from uptime 0 when the state file is unreadable (retention only gets longer)', async () => {
    await writeFile(join(dir, 'retention.json'), '{not json');
    const r = await retention({ keepForMs: 1000 });
    expect(r.uptimeMs()).toBe(0);
    await take(3);
    await outbox.markAcked(3);
    await r.runOnce();
    expect(await stored()).toHaveLength(3);
  });

  it('checks its options', () => {
    expect(() => new Retention({ outbox, stateFile: '' })).toThrow(TypeError);
    expect(() => new Retention({ outbox, stateFile: 'x', keepReadings: -1 })).toThrow(RangeError);
    expect(() => new Retention({ outbox, stateFile: 'x', batchSize: 0 })).toThrow(RangeError);
  });
});
