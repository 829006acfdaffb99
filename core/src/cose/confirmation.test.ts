import { describe, expect, it } from 'vitest';
import { decodeCbor, encodeCbor, Tagged } from '../cbor.ts';
import { checkConfirmation, parseConfirmation, signConfirmation, type ConfirmationBody } from './confirmation.ts';
import { decodeSign1, encodeSign1, sigStructure1 } from './sign1.ts';
import { createTestSigner, digestOf, toHighS } from './test-helpers.ts';

const ingest = createTestSigner();
const other = createTestSigner();
const body: ConfirmationBody = { type: 'stored', device: 'gw-0001', upTo: 7, head: digestOf(7), issuedAt: 1_790_000_000 };
const expectCode = async (bytes: Uint8Array, code: string, device = 'gw-0001') =>
  expect(checkConfirmation(bytes, { publicKey: ingest.publicKey, device })).rejects.toMatchObject({ code });

/** Re-signs a confirmation whose payload map was changed by `edit` (keys kept in deterministic order by the encoder). */
async function resigned(edit: (m: Map<string, unknown>) => void, signer = ingest): Promise<Uint8Array> {
  const cose = decodeSign1(await signConfirmation(body, signer));
  const m = decodeCbor(cose.payload!) as Map<string, unknown>;
  edit(m);
  const payload = encodeCbor(m);
  return encodeSign1({ ...cose, payload, signature: await signer.sign(sigStructure1(cose.protectedBytes, payload)) });
}

describe('signConfirmation / checkConfirmation', () => {
  it('round-trips every field, payload keys in deterministic order', async () => {
    const bytes = await signConfirmation(body, ingest);
    const c = await checkConfirmation(bytes, { publicKey: ingest.publicKey, device: 'gw-0001' });
    expect(c).toMatchObject({ type: 'stored', device: 'gw-0001', upTo: 7, head: digestOf(7), issuedAt: 1_790_000_000, kid: ingest.keyId });
    expect([...(decodeCbor(c.payloadBytes) as Map<string, unknown>).keys()]).toEqual(['v', 'iat', 'head', 'type', 'upTo', 'device']);
  });

  it('accepts a high-S signature (FORMAT.md §0)', async () => {
    const cose = decodeSign1(await signConfirmation(body, ingest));
    const bytes = encodeSign1({ ...cose, signature: toHighS(cose.signature) });
    await expect(checkConfirmation(bytes, { publicKey: ingest.publicKey, device: 'gw-0001' })).resolves.toMatchObject({ upTo: 7 });
  });

  describe('when it was not signed by the pinned key', () => {
    it('rejects another key with CONFIRMATION_KEY_ERROR', async () => expectCode(await signConfirmation(body, other), 'CONFIRMATION_KEY_ERROR'));
    it('rejects the pinned kid over a foreign signature with CONFIRMATION_SIGNATURE_ERROR', async () => {
      const cose = decodeSign1(await signConfirmation(body, ingest));
      const forged = encodeSign1({ ...cose, signature: await other.sign(sigStructure1(cose.protectedBytes, cose.payload!)) });
      await expectCode(forged, 'CONFIRMATION_SIGNATURE_ERROR');
    });
    it('rejects an unsigned ack {upTo} with CONFIRMATION_FORMAT_ERROR', async () => expectCode(encodeCbor(new Map([['upTo', 2 ** 53 - 1]])), 'CONFIRMATION_FORMAT_ERROR'));
  });

  it('rejects a confirmation for another device with CONFIRMATION_DEVICE_ERROR', async () => expectCode(await signConfirmation(body, ingest), 'CONFIRMATION_DEVICE_ERROR', 'gw-0002'));

  describe('when the bytes are not the FORMAT.md §11.1 structure', () => {
    const cases: [string, (m: Map<string, unknown>) => void][] = [
      ['an extra payload key', (m) => m.set('x', 1)],
      ['a missing key', (m) => m.delete('iat')],
      ['v 2', (m) => m.set('v', 2)],
      ['an unknown type', (m) => m.set('type', 'seen')],
      ['upTo 0', (m) => m.set('upTo', 0)],
      ['upTo above 2^53-1', (m) => m.set('upTo', 2n ** 60n)],
      ['a 31-byte head', (m) => m.set('head', new Uint8Array(31))],
      ['an empty device', (m) => m.set('device', '')],
    ];
    for (const [name, edit] of cases) it(`rejects ${name} with CONFIRMATION_FORMAT_ERROR`, async () => expectCode(await resigned(edit), 'CONFIRMATION_FORMAT_ERROR'));

    it('rejects an untagged, a detached and an oversized confirmation', async () => {
      const cose = decodeSign1(await signConfirmation(body, ingest));
      const untagged = encodeCbor([cose.protectedBytes, cose.unprotectedHeader, cose.payload, cose.signature]);
      expect(() => parseConfirmation(untagged)).toThrow(expect.objectContaining({ code: 'CONFIRMATION_FORMAT_ERROR' }));
      expect(() => parseConfirmation(encodeSign1({ ...cose, payload: null }))).toThrow(expect.objectContaining({ code: 'CONFIRMATION_FORMAT_ERROR' }));
      const big = encodeCbor(new Tagged(18, [cose.protectedBytes, new Map([[99, new Uint8Array(2000)]]), cose.payload, cose.signature]));
      expect(() => parseConfirmation(big)).toThrow(expect.objectContaining({ code: 'CONFIRMATION_FORMAT_ERROR' }));
    });

    it('rejects a non-deterministic payload (map keys out of order)', async () => {
      const cose = decodeSign1(await signConfirmation(body, ingest));
      // hand-built map(6) with "device" first: valid CBOR, not deterministic
      const m = decodeCbor(cose.payload!) as Map<string, unknown>;
      const parts = [...m.entries()].reverse().map(([k, v]) => [encodeCbor(k), encodeCbor(v)]).flat();
      const payload = new Uint8Array([0xa6, ...parts.flatMap((p) => [...p])]);
      const bytes = encodeSign1({ ...cose, payload, signature: await ingest.sign(sigStructure1(cose.protectedBytes, payload)) });
      await expectCode(bytes, 'CONFIRMATION_FORMAT_ERROR');
    });
  });
});
