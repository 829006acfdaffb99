import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { equalBytes, decodeReading, GENESIS_PREV, readingDigest } from '@stele/core';
import { checkStatementAgainstReading, parseStatement, verifyStatementSignature } from '@stele/core/cose';
import type { SoftwareSigner } from '@stele/device';
import { OutboxError } from './errors.ts';
import { Outbox, type Acquired, type OutboxEntry } from './outbox.ts';
import { acquired, createTestKey, useOutboxDir } from './test-helpers.ts';

const outboxDir = useOutboxDir('stele-outbox-');
const { openOutbox } = outboxDir;
let signer: SoftwareSigner;

beforeAll(async () => {
  signer = await createTestKey('stele-outbox-key-');
});

/** Checks that entries are seq 1..n, each prev the digest of the one before, each statement valid and matching. */
async function expectValidChain(entries: OutboxEntry[], n: number): Promise<void> {
  expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
  let prev = GENESIS_PREV;
  for (const e of entries) {
    const r = decodeReading(e.reading);
    expect(r.seq).toBe(e.seq);
    expect(equalBytes(r.prev, prev)).toBe(true);
    const st = parseStatement(e.statement);
    expect(st.seq).toBe(e.seq);
    expect(checkStatementAgainstReading(st, e.reading)).toBe('ok');
    expect(await verifyStatementSignature(st, signer.publicKey)).toBe(true);
    prev = readingDigest(e.reading);
  }
}

describe('Outbox', () => {
  it('starts an empty chain at seq 1 with GENESIS_PREV', async () => {
    const o = await openOutbox();
    expect(o.head().seq).toBe(0);
    const t = await o.take(acquired(1), signer, 'gw-1');
    expect(t.seq).toBe(1);
    const r = decodeReading(t.reading);
    expect(r).toMatchObject({ v: 1, device: 'gw-1', sensor: 'sensor-a', seq: 1, time: acquired(1).time });
    expect(r.prev).toEqual(GENESIS_PREV);
    expect(o.head()).toEqual({ seq: 1, digest: readingDigest(t.reading) });
  });

  it('continues the chain across close and reopen', async () => {
    let o = await openOutbox();
    for (let i = 1; i <= 3; i++) await o.take(acquired(i), signer, 'gw-1');
    const head = o.head();
    await o.close();
    o = await openOutbox();
    expect(o.head()).toEqual(head);
    for (let i = 4; i <= 5; i++) await o.take(acquired(i), signer, 'gw-1');
    await expectValidChain(await o.pendingFrom(1, 100), 5);
  });

  it('serialises concurrent takes: 1..N contiguous with valid prev links', async () => {
    const o = await openOutbox();
    const N = 40;
    const results = await Promise.all(Array.from({ length: N }, (_, i) => o.take(acquired(i), signer, 'gw-1')));
    expect(results.map((r) => r.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    expect(results.map((r) => r.seq)).toEqual(Array.from({ length: N }, (_, i) => i + 1)); // in call order, too
    await expectValidChain(await o.pendingFrom(1, 1000), N);
  });

  it('spends no seq when an acquired item is not a valid reading', async () => {
    const o = await openOutbox();
    await o.take(acquired(1), signer, 'gw-1');
    const bad = { ...acquired(2), time: -5 } as Acquired;
    const [r1, r2, r3] = await Promise.allSettled([o.take(bad, signer, 'gw-1'), o.take(acquired(3), signer, 'gw-1'), o.take(acquired(4), signer, 'gw-1')]);
    expect(r1.status).toBe('rejected');
    expect((r1 as PromiseRejectedResult).reason).toBeInstanceOf(TypeError);
    expect(r2.status === 'fulfilled' && r2.value.seq).toBe(2);
    expect(r3.status === 'fulfilled' && r3.value.seq).toBe(3);
    await expectValidChain(await o.pendingFrom(1, 100), 3);
  });

  it('persists the acked mark, never backwards, clamped to the head', async () => {
    let o = await openOutbox();
    for (let i = 1; i <= 5; i++) await o.take(acquired(i), signer, 'gw-1');
    await o.markAcked(3);
    await o.markAcked(2);
    expect(o.ackedUpTo()).toBe(3);
    expect(o.pendingCount()).toBe(2);
    await o.close();
    o = await openOutbox();
    expect(o.ackedUpTo()).toBe(3);
    await o.markAcked(99);
    expect(o.ackedUpTo()).toBe(5);
    expect(() => o.markAcked(-1)).toThrow(RangeError);
  });

  it('keeps entries after ack; prune deletes only acknowledged ones and the chain goes on', async () => {
    let o = await openOutbox();
    for (let i = 1; i <= 6; i++) await o.take(acquired(i), signer, 'gw-1');
    await o.markAcked(4);
    expect((await o.pendingFrom(1, 100)).length).toBe(6);
    await o.prune(10);
    expect((await o.pendingFrom(1, 100)).map((e) => e.seq)).toEqual([5, 6]);
    await o.close();
    o = await openOutbox();
    const t = await o.take(acquired(7), signer, 'gw-1');
    expect(t.seq).toBe(7);
    const [e6, e7] = await o.pendingFrom(6, 10);
    expect(decodeReading(e7!.reading).prev).toEqual(readingDigest(e6!.reading));
  });

  it('pendingFrom pages in seq order', async () => {
    const o = await openOutbox();
    for (let i = 1; i <= 12; i++) await o.take(acquired(i), signer, 'gw-1');
    expect((await o.pendingFrom(5, 3)).map((e) => e.seq)).toEqual([5, 6, 7]);
    expect((await o.pendingFrom(11, 10)).map((e) => e.seq)).toEqual([11, 12]);
    expect(await o.pendingFrom(13, 10)).toEqual([]);
    // 10 sorts after 9: keys are zero-padded
    expect((await o.pendingFrom(9, 2)).map((e) => e.seq)).toEqual([9, 10]);
  });

  it('refuses to mix devices in one chain with OUTBOX_DEVICE_MISMATCH', async () => {
    const o = await openOutbox();
    await o.take(acquired(1), signer, 'gw-1');
    await expect(o.take(acquired(2), signer, 'gw-2')).rejects.toMatchObject({ code: 'OUTBOX_DEVICE_MISMATCH' });
    expect(o.head().seq).toBe(1);
  });

  it('rejects takes after close with OUTBOX_CLOSED, and close waits for takes in progress', async () => {
    const o = await Outbox.open(join(outboxDir.dir, 'db'));
    const pending = o.take(acquired(1), signer, 'gw-1');
    const closed = o.close();
    await expect(pending).resolves.toMatchObject({ seq: 1 });
    await closed;
    const err = await o.take(acquired(2), signer, 'gw-1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OutboxError);
    expect((err as OutboxError).code).toBe('OUTBOX_CLOSED');
  });

  it('reports a second opener with OUTBOX_LOCKED', async () => {
    await openOutbox();
    await expect(Outbox.open(join(outboxDir.dir, 'db'))).rejects.toMatchObject({ code: 'OUTBOX_LOCKED' });
  });
});
