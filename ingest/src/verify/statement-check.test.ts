import { describe, expect, it } from 'vitest';
import { GENESIS_PREV } from '@stele/core';
import { KeyRegistry } from '../registry/index.ts';
import { envelope, makeChain, testSigner } from '../test-helpers.ts';
import { checkStatement, type StatementCheckContext } from './statement-check.ts';

describe('checkStatement: a held statement whose signature ingest already checked', () => {
  it('is not checked again (HeldRow.signatureChecked); unmarked, its signature is checked; the mark spares nothing else', async () => {
    const signer = testSigner();
    const [r] = await makeChain(signer, 'gw-held', 1, 1, GENESIS_PREV);
    const registry = new KeyRegistry();
    registry.adopt({ deviceId: 'gw-held', keys: [{ kid: signer.keyId, publicKey: signer.publicKey, backend: 'software', from: 1, via: 'enrolment' }], chained: [], log: 1 });
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
