import { describe, expect, it } from 'vitest';
import { decodeReading, GENESIS_PREV, parseStatement } from '@stele/core';
import { decodeStatementMessage } from '@stele/core/wire';
import { KeyRegistry } from '../registry/index.ts';
import { envelope, makeChain, testSigner } from '../test-helpers.ts';
import { checkStatement, type StatementCheckContext } from './statement-check.ts';

/** A device's first signed reading, and a key registry with its key enrolled. */
async function oneEnrolledReading(deviceId: string) {
  const signer = testSigner();
  const [r] = await makeChain(signer, deviceId, 1, 1, GENESIS_PREV);
  const registry = new KeyRegistry();
  registry.adopt({ deviceId, keys: [{ kid: signer.keyId, publicKey: signer.publicKey, backend: 'software', from: 1, via: 'enrolment' }], chained: [], log: 1 });
  return { r, registry };
}

describe('checkStatement: a held statement whose signature ingest already checked', () => {
  it('is not checked again (HeldRow.signatureChecked); unmarked, its signature is checked; the mark spares nothing else', async () => {
    const { r, registry } = await oneEnrolledReading('gw-held');
    let calls = 0;
    const ctx = (answer: boolean): StatementCheckContext => ({
      maxMessageBytes: 65536,
      registry,
      verifySignature: async () => {
        calls++;
        return answer;
      },
    });
    const payload = envelope(r!);
    // checked before it was held: decoded and judged, the signature not asked for again
    const held = await checkStatement(ctx(false), 'gw-held', { payload, receivedAt: 1, signatureChecked: true });
    expect(held.ok && held.value.verified && held.value.seq === 1).toBe(true);
    expect(calls).toBe(0);
    // not marked: checked, and a signature that does not verify is refused
    expect(await checkStatement(ctx(false), 'gw-held', { payload, receivedAt: 1 })).toMatchObject({ ok: false, code: 'SIGNATURE_ERROR', seq: 1 });
    expect(calls).toBe(1);
    // the mark spares the signature only: the rest is judged as ever (another device's topic)
    expect(await checkStatement(ctx(true), 'gw-other', { payload, receivedAt: 1, signatureChecked: true })).toMatchObject({ ok: false, code: 'UNKNOWN_KEY_ERROR' });
  });
});

describe('checkStatement: the message is decoded as views into ingest\'s own copy', () => {
  it('gives what a decode with copies gives (parseStatement, the reading check), its parts sharing the copy\'s memory', async () => {
    const { r, registry } = await oneEnrolledReading('gw-views');
    const ctx: StatementCheckContext = { maxMessageBytes: 65536, registry, verifySignature: async () => true };
    // as onMessage keeps it: a copy in Node's shared pool, seen as a plain Uint8Array
    const pooled = Buffer.from(envelope(r!));
    const payload = new Uint8Array(pooled.buffer, pooled.byteOffset, pooled.byteLength);
    const got = await checkStatement(ctx, 'gw-views', { payload, receivedAt: 1 });
    if (!got.ok) throw new Error(got.code);
    const { statement, reading } = decodeStatementMessage(payload.slice());
    const copied = parseStatement(statement);
    expect(got.value.parsed).toEqual(copied);
    expect(got.value.statement).toEqual(statement);
    expect(got.value.reading).toEqual(reading);
    expect(got.value.index).toEqual({ raw: decodeReading(reading!).raw, deviceTime: decodeReading(reading!).time });
    for (const part of [got.value.statement, got.value.reading!, got.value.kid, got.value.parsed!.signature, got.value.parsed!.payload, got.value.prev!]) {
      expect(Object.getPrototypeOf(part)).toBe(Uint8Array.prototype);
      expect(part.buffer).toBe(payload.buffer);
    }
  });
});
