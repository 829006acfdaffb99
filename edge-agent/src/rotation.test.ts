import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { equalBytes, sha256, GENESIS_PREV } from '@stele/core';
import { parseStatement } from '@stele/core/cose';
import { parseLifecycleStatement } from '@stele/core/lifecycle';
import { testSigner } from '@stele/core/testing';
import { Outbox, type Acquired } from './outbox.ts';
import { reinstallAgent, rotateKey } from './rotation.ts';

const dirs: string[] = [];
const outboxes: Outbox[] = [];
afterEach(async () => {
  for (const o of outboxes.splice(0)) await o.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function open(): Promise<{ outbox: Outbox; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'stele-rotation-'));
  dirs.push(dir);
  const outbox = await Outbox.open(dir);
  outboxes.push(outbox);
  return { outbox, dir };
}

const acquired = (n: number): Acquired => ({ sensor: 's1', time: 1_700_000_000_000 + n, clock: { synced: false, source: 'none' }, meas: [], raw: [] });
const D = 'gw-rot-1';
const oldKey = testSigner('rotation-old');
const newKey = testSigner('rotation-new', 'tpm');

describe('rotateKey', () => {
  it('takes a rotation statement signed by the old key at the next seq, and the chain links through it', async () => {
    const { outbox } = await open();
    await outbox.take(acquired(1), oldKey, D);
    const before = outbox.head();
    const r = await rotateKey(outbox, D, oldKey, newKey, () => 42);
    expect(r.seq).toBe(2);
    const st = parseLifecycleStatement(r.statement);
    expect(st.body).toMatchObject({ type: 'rotation', device: D, backend: 'tpm', time: 42 });
    expect(st.seq).toBe(2);
    expect(equalBytes(st.prev!, before.digest)).toBe(true);
    expect(equalBytes(st.kid, oldKey.keyId)).toBe(true);
    expect(equalBytes(outbox.head().digest, sha256(r.reading))).toBe(true);
    const next = await outbox.take(acquired(3), newKey, D);
    const reading = parseStatement(next.statement);
    expect(reading.seq).toBe(3);
    expect(equalBytes(reading.prev!, sha256(r.reading))).toBe(true);
    expect((await outbox.pendingFrom(1, 10)).map((e) => e.seq)).toEqual([1, 2, 3]);
  });

  it('survives a reopen: the outbox stays consistent with a lifecycle entry at its head', async () => {
    const { outbox, dir } = await open();
    await outbox.take(acquired(1), oldKey, D);
    await rotateKey(outbox, D, oldKey, newKey);
    await outbox.close();
    outboxes.splice(outboxes.indexOf(outbox), 1);
    const again = await Outbox.open(dir);
    outboxes.push(again);
    expect(again.head().seq).toBe(2);
  });
});

describe('reinstallAgent', () => {
  it('starts an empty outbox after the head ingest confirmed: seq head + 1, prev = its digest, 1..head acknowledged', async () => {
    const { outbox } = await open();
    const confirmed = { seq: 41, digest: sha256(new Uint8Array([41])) };
    const r = await reinstallAgent(outbox, D, oldKey, confirmed);
    expect(r.seq).toBe(42);
    const st = parseLifecycleStatement(r.statement);
    expect(st.body.type).toBe('reinstall');
    expect(equalBytes(st.prev!, confirmed.digest)).toBe(true);
    expect(outbox.ackedUpTo()).toBe(41);
    expect(outbox.pendingCount()).toBe(1);
    const next = await outbox.take(acquired(43), oldKey, D);
    expect(next.seq).toBe(43);
    expect((await outbox.pendingFrom(outbox.ackedUpTo() + 1, 10)).map((e) => e.seq)).toEqual([42, 43]);
  });

  it('starts from genesis when ingest holds nothing yet', async () => {
    const { outbox } = await open();
    const r = await reinstallAgent(outbox, D, oldKey, { seq: 0, digest: GENESIS_PREV });
    expect(r.seq).toBe(1);
    expect(equalBytes(parseLifecycleStatement(r.statement).prev!, GENESIS_PREV)).toBe(true);
  });

  it('refuses an outbox that has taken anything (misuse: RangeError)', async () => {
    const { outbox } = await open();
    await outbox.take(acquired(1), oldKey, D);
    await expect(reinstallAgent(outbox, D, oldKey, { seq: 5, digest: new Uint8Array(32) })).rejects.toThrow(RangeError);
  });

  it('refuses another device id (OUTBOX_DEVICE_MISMATCH)', async () => {
    const { outbox } = await open();
    await outbox.take(acquired(1), oldKey, D);
    await expect(rotateKey(outbox, 'gw-other', oldKey, newKey)).rejects.toMatchObject({ code: 'OUTBOX_DEVICE_MISMATCH' });
  });
});
