/** The outbox's unsigned takes and signing stage (slow keys, FORMAT.md §3.1, §12). */
import { beforeAll, describe, expect, it } from 'vitest';
import { equalBytes, decodeReading, GENESIS_PREV, readingDigest } from '@stele/core';
import { checkStatementAgainstReading, parseStatement, verifyStatementSignature } from '@stele/core/cose';
import { parseLifecycleStatement } from '@stele/core/lifecycle';
import type { Signer } from '@stele/core';
import type { SoftwareSigner } from '@stele/device';
import type { OutboxEntry } from './outbox.ts';
import { rotateKey } from './rotation.ts';
import { acquired, createTestKeyPair, useOutboxDir } from './test-helpers.ts';

const D = 'gw-sign-1';
const { open, openOutbox } = useOutboxDir('stele-outbox-sign-');
let signer: SoftwareSigner;
let second: SoftwareSigner;

beforeAll(async () => {
  [signer, second] = await createTestKeyPair('stele-outbox-sign-key-');
});

/** A signer that fails while `failing()` is true (a token unplugged), else signs with `inner`. */
function flaky(inner: Signer, failing: () => boolean): Signer {
  return {
    algorithm: inner.algorithm,
    keyId: inner.keyId,
    publicKey: inner.publicKey,
    backend: inner.backend,
    sign: async (m) => {
      if (failing()) throw Object.assign(new Error('token not present'), { code: 'PKCS11_TOKEN_GONE' });
      return inner.sign(m);
    },
  };
}

/** Entries are seq 1..n, chained, each statement valid for its reading under `key`. */
async function expectValidChain(entries: OutboxEntry[], n: number, key: Signer = signer): Promise<void> {
  expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
  let prev = GENESIS_PREV;
  for (const e of entries) {
    const r = decodeReading(e.reading);
    expect(equalBytes(r.prev, prev)).toBe(true);
    const st = parseStatement(e.statement);
    expect(st.seq).toBe(e.seq);
    expect(checkStatementAgainstReading(st, e.reading)).toBe('ok');
    expect(await verifyStatementSignature(st, key.publicKey)).toBe(true);
    prev = readingDigest(e.reading);
  }
}

describe('Outbox.takeUnsigned and signPending', () => {
  it('stores a reading durably before it is signed, and never lists it for publishing until then', async () => {
    const o = await openOutbox();
    for (let i = 1; i <= 5; i++) expect((await o.takeUnsigned(acquired(i), signer, D)).seq).toBe(i);
    expect(o.head().seq).toBe(5);
    expect(o.unsignedCount()).toBe(5);
    expect(o.signedUpTo()).toBe(0);
    expect(await o.pendingFrom(1, 10)).toEqual([]);
    const run = await o.signPending({ maxCount: 3 });
    expect(run).toMatchObject({ first: 1, count: 3 });
    expect(o.signedUpTo()).toBe(3);
    expect((await o.pendingFrom(1, 10)).map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(await o.signPending()).toMatchObject({ first: 4, count: 2 });
    expect(await o.signPending()).toBeUndefined();
    const entries = await o.pendingFrom(1, 10);
    await expectValidChain(entries, 5);
    // 1..3 share one signature (a device-level batch), 4..5 another
    const st = entries.map((e) => parseStatement(e.statement));
    expect(st.map((s) => s.batch?.index)).toEqual([0, 1, 2, 0, 1]);
    expect(equalBytes(st[0]!.signature, st[2]!.signature)).toBe(true);
  });

  it('signs a lone reading as a single-reading statement (FORMAT.md §3 bytes)', async () => {
    const o = await openOutbox();
    await o.takeUnsigned(acquired(1), signer, D);
    expect(await o.signPending()).toMatchObject({ first: 1, count: 1 });
    const [e] = await o.pendingFrom(1, 1);
    expect(parseStatement(e!.statement).batch).toBeUndefined();
  });

  it('keeps unsigned readings across a restart and signs them with the key it is given then', async () => {
    const o = await openOutbox();
    await o.take(acquired(1), signer, D);
    for (let i = 2; i <= 4; i++) await o.takeUnsigned(acquired(i), signer, D);
    await o.close();
    open.splice(0);
    const again = await openOutbox();
    expect(again.head().seq).toBe(4);
    expect(again.unsignedCount()).toBe(3);
    await expect(again.signPending()).rejects.toMatchObject({ code: 'OUTBOX_UNSIGNED' });
    expect(await again.signPending({ signer })).toMatchObject({ first: 2, count: 3 });
    await expectValidChain(await again.pendingFrom(1, 10), 4);
  });

  it('take() behind unsigned readings still returns a signed entry, and order holds', async () => {
    const o = await openOutbox();
    await o.takeUnsigned(acquired(1), signer, D);
    await o.takeUnsigned(acquired(2), signer, D);
    const t = await o.take(acquired(3), signer, D);
    expect(t.seq).toBe(3);
    expect(parseStatement(t.statement).seq).toBe(3);
    expect(o.unsignedCount()).toBe(0);
    await expectValidChain(await o.pendingFrom(1, 10), 3);
  });

  it('leaves readings unsigned and durable while the signer fails, and signs them once it is back', async () => {
    const o = await openOutbox();
    let gone = true;
    const token = flaky(signer, () => gone);
    for (let i = 1; i <= 3; i++) await o.takeUnsigned(acquired(i), token, D);
    await expect(o.signPending()).rejects.toMatchObject({ code: 'PKCS11_TOKEN_GONE' });
    expect(o.unsignedCount()).toBe(3);
    await o.takeUnsigned(acquired(4), token, D); // taking goes on meanwhile
    gone = false;
    expect(await o.signPending()).toMatchObject({ first: 1, count: 4 });
    await expectValidChain(await o.pendingFrom(1, 10), 4);
  });

  it('never mixes two keys in one signature', async () => {
    const o = await openOutbox();
    await o.takeUnsigned(acquired(1), signer, D);
    await o.takeUnsigned(acquired(2), signer, D);
    await o.takeUnsigned(acquired(3), second, D);
    expect(await o.signPending()).toMatchObject({ first: 1, count: 2 });
    expect(await o.signPending()).toMatchObject({ first: 3, count: 1 });
    const [, , third] = await o.pendingFrom(1, 10);
    expect(await verifyStatementSignature(parseStatement(third!.statement), second.publicKey)).toBe(true);
  });

  it('signs waiting readings with the old key before a rotation is appended', async () => {
    const o = await openOutbox();
    await o.takeUnsigned(acquired(1), signer, D);
    await o.takeUnsigned(acquired(2), signer, D);
    const r = await rotateKey(o, D, signer, second);
    expect(r.seq).toBe(3);
    expect(o.unsignedCount()).toBe(0);
    await o.takeUnsigned(acquired(4), second, D);
    await o.signPending();
    const entries = await o.pendingFrom(1, 10);
    expect(entries.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    for (const e of entries.slice(0, 2)) expect(await verifyStatementSignature(parseStatement(e.statement), signer.publicKey)).toBe(true);
    expect(parseLifecycleStatement(entries[2]!.statement).seq).toBe(3);
    expect(await verifyStatementSignature(parseStatement(entries[3]!.statement), second.publicKey)).toBe(true);
  });

  it('refuses to append a lifecycle statement after readings unsigned since a restart (OUTBOX_UNSIGNED)', async () => {
    const o = await openOutbox();
    await o.takeUnsigned(acquired(1), signer, D);
    await o.close();
    open.splice(0);
    const again = await openOutbox();
    await expect(rotateKey(again, D, signer, second)).rejects.toMatchObject({ code: 'OUTBOX_UNSIGNED' });
    expect(again.head().seq).toBe(1);
  });

  it('rejects a bad maxCount as misuse', async () => {
    const o = await openOutbox();
    expect(() => o.signPending({ maxCount: 0 })).toThrow(RangeError);
  });
});
