import { describe, expect, it } from 'vitest';
import { concatBytes, fromHex, toHex, utf8 } from '../bytes.ts';
import { decodeCbor, encodeCbor, Tagged } from '../cbor.ts';
import { encodeReading, GENESIS_PREV, readingDigest } from '../reading.ts';
import { hashLeaf, inclusionProof, rootFromLeafHashes } from '../rfc9162/index.ts';
import { encodeReceipt, encodeReceiptProtectedHeader, parseReceipt, signBatchRoot, verifyReceipt, type ReceiptClaims } from './receipt.ts';
import { sigStructure1 } from './sign1.ts';
import { signStatement } from './statement.ts';
import { createTestSigner, digestOf, sampleReading, toHighS } from './test-helpers.ts';

const device = createTestSigner();
const ingest = createTestSigner();
const claims: ReceiptClaims = { kid: ingest.keyId, issuer: 'stele-ingest-dev', issuedAt: 1_763_900_000, batchId: 7 };

/** A batch of `n` statements from one device, as ingest would see it. */
async function batch(n: number): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  let prev = GENESIS_PREV;
  for (let seq = 1; seq <= n; seq++) {
    const reading = encodeReading(sampleReading({ seq, prev }));
    out.push(await signStatement(reading, device));
    prev = readingDigest(reading);
  }
  return out;
}

describe('signBatchRoot / encodeReceipt / parseReceipt / verifyReceipt', () => {
  it.each([1, 2, 3, 5, 8, 13])('gives every entry of a batch of %i a receipt that verifies against the batch root', async (n) => {
    const statements = await batch(n);
    const leaves = statements.map(hashLeaf);
    const root = rootFromLeafHashes(leaves);
    const { protectedBytes, signature } = await signBatchRoot(root, claims, ingest);
    for (let i = 0; i < n; i++) {
      const proof = { treeSize: n, leafIndex: i, path: inclusionProof(leaves, i) };
      const receipt = parseReceipt(encodeReceipt(protectedBytes, signature, proof));
      expect(receipt).toEqual({ ...claims, proof, protectedBytes, signature });
      const result = await verifyReceipt(receipt, leaves[i]!, ingest.publicKey);
      expect(result.root).toEqual(root);
      expect(result.signatureValid).toBe(true);
    }
  });

  it('encodes the protected header and unprotected proof of FORMAT.md §5 byte for byte', () => {
    const kid = digestOf(0x4b);
    expect(toHex(encodeReceiptProtectedHeader({ kid, issuer: 'i', issuedAt: 1000, batchId: 1 }))).toBe(
      'a5' + '0126' + '045820' + '4b'.repeat(32) + '0fa2016169' + '061903e8' + '19018b01' + '3a0001000201',
    );
    const bytes = encodeReceipt(utf8('P'), new Uint8Array(64), { treeSize: 3, leafIndex: 2, path: [digestOf(1)] });
    // 18([h'50', {396: {-1: [h'83 03 02 81 5820 01..']}}, nil, sig])
    const inner = '830302815820' + '01'.repeat(32);
    expect(toHex(bytes)).toBe('d2844150' + 'a119018c' + 'a120' + '81' + '5826' + inner + 'f6' + '5840' + '00'.repeat(64));
  });

  it('signs ["Signature1", protected, h\'\', root] with the root as detached payload', async () => {
    const root = digestOf(9);
    const { protectedBytes, signature } = await signBatchRoot(root, claims, ingest);
    const { verifyEs256 } = await import('../ecdsa.ts');
    expect(await verifyEs256(ingest.publicKey, sigStructure1(protectedBytes, root), signature)).toBe(true);
  });

  it('refuses claims whose kid is not the signer key id, and a root that is not 32 bytes (RangeError)', async () => {
    await expect(signBatchRoot(digestOf(1), { ...claims, kid: device.keyId }, ingest)).rejects.toThrow(RangeError);
    await expect(signBatchRoot(new Uint8Array(31), claims, ingest)).rejects.toThrow(RangeError);
    await expect(signBatchRoot(digestOf(1), { ...claims, batchId: 0 }, ingest)).rejects.toThrow(RangeError);
  });

  it('reports signatureValid false for a flipped signature byte, another key, or another leaf', async () => {
    const statements = await batch(4);
    const leaves = statements.map(hashLeaf);
    const { protectedBytes, signature } = await signBatchRoot(rootFromLeafHashes(leaves), claims, ingest);
    const proof = { treeSize: 4, leafIndex: 1, path: inclusionProof(leaves, 1) };
    const flipped = signature.slice();
    flipped[5]! ^= 1;
    const bad = parseReceipt(encodeReceipt(protectedBytes, flipped, proof));
    expect((await verifyReceipt(bad, leaves[1]!, ingest.publicKey)).signatureValid).toBe(false);
    const good = parseReceipt(encodeReceipt(protectedBytes, signature, proof));
    expect((await verifyReceipt(good, leaves[1]!, device.publicKey)).signatureValid).toBe(false);
    const other = await verifyReceipt(good, leaves[2]!, ingest.publicKey);
    expect(other.signatureValid).toBe(false);
    expect(other.root).not.toEqual(rootFromLeafHashes(leaves));
  });

  it('accepts a high-S receipt signature', async () => {
    const leaves = (await batch(2)).map(hashLeaf);
    const { protectedBytes, signature } = await signBatchRoot(rootFromLeafHashes(leaves), claims, ingest);
    const receipt = parseReceipt(encodeReceipt(protectedBytes, toHighS(signature), { treeSize: 2, leafIndex: 0, path: inclusionProof(leaves, 0) }));
    expect((await verifyReceipt(receipt, leaves[0]!, ingest.publicKey)).signatureValid).toBe(true);
  });

  it('throws INCLUSION_PROOF_ERROR when the path has the wrong length for its index and size', async () => {
    const leaves = (await batch(5)).map(hashLeaf);
    const { protectedBytes, signature } = await signBatchRoot(rootFromLeafHashes(leaves), claims, ingest);
    const path = inclusionProof(leaves, 2);
    for (const p of [path.slice(1), [...path, digestOf(3)]]) {
      const receipt = parseReceipt(encodeReceipt(protectedBytes, signature, { treeSize: 5, leafIndex: 2, path: p }));
      await expect(verifyReceipt(receipt, leaves[2]!, ingest.publicKey)).rejects.toMatchObject({ code: 'INCLUSION_PROOF_ERROR' });
    }
  });
});

describe('parseReceipt rejects with RECEIPT_FORMAT_ERROR', () => {
  const sig = new Uint8Array(64).fill(3);
  const goodProof = (): Uint8Array => encodeCbor([3, 1, [digestOf(1), digestOf(2)]]);
  const header = (): Map<number, unknown> => decodeCbor(encodeReceiptProtectedHeader(claims)) as Map<number, unknown>;
  function receiptFrom(parts: { protectedMap?: Map<number, unknown>; protectedBytes?: Uint8Array; unprotected?: Map<number, unknown>; payload?: unknown; signature?: unknown; tag?: number | null }): Uint8Array {
    const protectedBytes = parts.protectedBytes ?? encodeCbor(parts.protectedMap ?? header());
    const unprotected = parts.unprotected ?? new Map([[396, new Map([[-1, [goodProof()]]])]]);
    const body = [protectedBytes, unprotected, 'payload' in parts ? parts.payload : null, 'signature' in parts ? parts.signature : sig];
    return encodeCbor(parts.tag === null ? body : new Tagged(parts.tag ?? 18, body));
  }
  const expectReject = (bytes: Uint8Array): void => {
    expect(() => parseReceipt(bytes)).toThrow(expect.objectContaining({ code: 'RECEIPT_FORMAT_ERROR' }));
  };
  const vdp = (proofs: unknown): Map<number, unknown> => new Map([[396, new Map([[-1, proofs]])]]);

  it('accepts the well-formed baseline these cases alter', () => {
    expect(parseReceipt(receiptFrom({})).proof).toEqual({ treeSize: 3, leafIndex: 1, path: [digestOf(1), digestOf(2)] });
  });

  it('when it is not tag 18 or not CBOR', () => {
    expectReject(receiptFrom({ tag: null }));
    expectReject(receiptFrom({ tag: 98 }));
    expectReject(fromHex('d2'));
  });

  it.each([
    ['alg is not -7', 1, -35],
    ['kid is missing', 4, undefined],
    ['kid is 20 bytes', 4, new Uint8Array(20)],
    ['CWT claims are missing', 15, undefined],
    ['iss is missing', 15, new Map([[6, 1]])],
    ['iat is missing', 15, new Map([[1, 'x']])],
    ['iat is negative', 15, new Map<number, unknown>([[1, 'x'], [6, -1]])],
    ['iss is not text', 15, new Map<number, unknown>([[1, 1], [6, 1]])],
    ['an extra claim is present', 15, new Map<number, unknown>([[1, 'x'], [6, 1], [2, 'sub']])],
    ['vds is 2', 395, 2],
    ['vds is missing', 395, undefined],
    ['batch id is missing', -65539, undefined],
    ['batch id is 0', -65539, 0],
    ['batch id is beyond 2^53', -65539, 2n ** 63n],
    ['an unknown label is present', 3, 'application/cbor'],
  ] as [string, number, unknown][])('when %s', (_name, label, value) => {
    const h = header();
    if (value === undefined) h.delete(label);
    else h.set(label, value);
    expectReject(receiptFrom({ protectedMap: h }));
  });

  it('when the protected header is not deterministic', () => {
    const entries = [...header().entries()].reverse();
    expectReject(receiptFrom({ protectedBytes: concatBytes(new Uint8Array([0xa5]), ...entries.map(([k, v]) => concatBytes(encodeCbor(k), encodeCbor(v)))) }));
  });

  it('when the payload is attached, or the signature is not 64 bytes', () => {
    expectReject(receiptFrom({ payload: digestOf(1) }));
    expectReject(receiptFrom({ payload: new Uint8Array(0) }));
    expectReject(receiptFrom({ signature: new Uint8Array(63) }));
  });

  it('when the unprotected header is not exactly {396: {-1: [one proof]}}', () => {
    expectReject(receiptFrom({ unprotected: new Map() }));
    expectReject(receiptFrom({ unprotected: new Map<number, unknown>([[396, new Map([[-1, [goodProof()]]])], [4, new Uint8Array(32)]]) }));
    expectReject(receiptFrom({ unprotected: new Map([[396, new Map([[-2, [goodProof()]]])]]) }));
    expectReject(receiptFrom({ unprotected: new Map([[396, [goodProof()]]]) }));
    expectReject(receiptFrom({ unprotected: vdp([]) }));
    expectReject(receiptFrom({ unprotected: vdp([goodProof(), goodProof()]) }));
    expectReject(receiptFrom({ unprotected: vdp(goodProof()) }));
  });

  it.each([
    ['not a byte string', [3, 1, [digestOf(1)]]],
    ['not CBOR', fromHex('ff')],
    ['not an array of 3', encodeCbor([3, 1])],
    ['tree size 0', encodeCbor([0, 0, []])],
    ['leaf index = tree size', encodeCbor([3, 3, [digestOf(1)]])],
    ['negative leaf index', encodeCbor([3, -1, [digestOf(1)]])],
    ['tree size beyond 2^53', encodeCbor([2n ** 60n, 1, [digestOf(1)]])],
    ['a path entry of 31 bytes', encodeCbor([3, 1, [new Uint8Array(31), digestOf(2)]])],
    ['a path that is not an array', encodeCbor([3, 1, digestOf(1)])],
    ['a long integer head', concatBytes(fromHex('831803'), encodeCbor(1), encodeCbor([digestOf(1)]))],
  ] as [string, unknown][])('when the inclusion proof is %s', (_name, proof) => {
    expectReject(receiptFrom({ unprotected: vdp([proof]) }));
  });
});
