import { describe, expect, it } from 'vitest';
import { concatBytes, fromHex, toHex } from '../bytes.ts';
import { decodeCbor, encodeCbor, Tagged } from '../cbor.ts';
import { sha256 } from '../hash.ts';
import { keyIdOf } from '../keys.ts';
import { encodeReading, GENESIS_PREV, readingDigest } from '../reading.ts';
import {
  checkStatementAgainstReading,
  encodeStatementProtectedHeader,
  parseStatement,
  READING_CONTENT_TYPE,
  signStatement,
  verifyStatementSignature,
} from './statement.ts';
import { sigStructure1 } from './sign1.ts';
import { createTestSigner, digestOf, sampleReading, toHighS } from './test-helpers.ts';

const signer = createTestSigner();
const reading1 = encodeReading(sampleReading({ seq: 1, prev: GENESIS_PREV }));
const reading2 = encodeReading(sampleReading({ seq: 2, prev: readingDigest(reading1) }));

/** A COSE_Sign1 built from parts, with an explicitly given protected header map (for malformed statements). */
function statementFrom(parts: { protectedMap?: Map<number, unknown>; protectedBytes?: Uint8Array; unprotected?: Map<number, unknown>; payload?: unknown; signature?: unknown; tag?: number | null }): Uint8Array {
  const protectedBytes =
    parts.protectedBytes ??
    encodeCbor(parts.protectedMap ?? decodeCbor(encodeStatementProtectedHeader({ kid: signer.keyId, device: 'gw-0001', seq: 1, prev: GENESIS_PREV })));
  const body = [protectedBytes, parts.unprotected ?? new Map(), 'payload' in parts ? parts.payload : sha256(reading1), 'signature' in parts ? parts.signature : new Uint8Array(64).fill(1)];
  return encodeCbor(parts.tag === null ? body : new Tagged(parts.tag ?? 18, body));
}

function goodHeader(): Map<number, unknown> {
  return decodeCbor(encodeStatementProtectedHeader({ kid: signer.keyId, device: 'gw-0001', seq: 1, prev: GENESIS_PREV })) as Map<number, unknown>;
}

const expectReject = (bytes: Uint8Array): void => {
  expect(() => parseStatement(bytes)).toThrow(expect.objectContaining({ code: 'STATEMENT_FORMAT_ERROR' }));
};

describe('signStatement / parseStatement', () => {
  it('round-trips: header fields from the reading, kid from the signer, payload SHA-256(reading)', async () => {
    const bytes = await signStatement(reading2, signer);
    const s = parseStatement(bytes);
    expect(s.kid).toEqual(keyIdOf(signer.publicKey));
    expect(s.device).toBe('gw-0001');
    expect(s.seq).toBe(2);
    expect(s.prev).toEqual(readingDigest(reading1));
    expect(s.payload).toEqual(sha256(reading2));
    expect(s.signature).toHaveLength(64);
    expect(s.toBeSigned).toEqual(sigStructure1(s.protectedBytes, s.payload));
    expect(await verifyStatementSignature(s, signer.publicKey)).toBe(true);
    expect(checkStatementAgainstReading(s, reading2)).toBe('ok');
  });

  it('gives fields of its own: the statement bytes (a Uint8Array or a Buffer) changed after parsing change none of them', async () => {
    const signed = await signStatement(reading2, signer);
    for (const input of [signed.slice(), Buffer.from(signed)]) {
      const s = parseStatement(input);
      const before = structuredClone({ kid: s.kid, prev: s.prev, payload: s.payload, signature: s.signature, protectedBytes: s.protectedBytes, toBeSigned: s.toBeSigned });
      input.fill(0);
      expect({ kid: s.kid, prev: s.prev, payload: s.payload, signature: s.signature, protectedBytes: s.protectedBytes, toBeSigned: s.toBeSigned }).toEqual(before);
      expect(s.kid).toEqual(keyIdOf(signer.publicKey));
    }
  });

  it('encodes the protected header of FORMAT.md §3 byte for byte', () => {
    const kid = digestOf(0x4b);
    const prev = digestOf(0x50);
    const expected = concatBytes(
      fromHex('a7'), // map of 7, keys in deterministic order: 1, 4, 15, 258, 259, -65537, -65538
      fromHex('0126'), // 1: -7
      fromHex('045820'), kid, // 4: bstr(32)
      fromHex('0fa10267'), new TextEncoder().encode('gw-0001'), // 15: {2: "gw-0001"}
      fromHex('1901022f'), // 258: -16
      fromHex('1901037827'), new TextEncoder().encode(READING_CONTENT_TYPE), // 259: tstr(39)
      fromHex('3a000100001903e8'), // -65537: 1000
      fromHex('3a000100015820'), prev, // -65538: bstr(32)
    );
    expect(encodeStatementProtectedHeader({ kid, device: 'gw-0001', seq: 1000, prev })).toEqual(expected);
    expect(READING_CONTENT_TYPE).toHaveLength(39);
  });

  it('has an empty unprotected header, the payload inline, tag 18', async () => {
    const t = decodeCbor(await signStatement(reading1, signer), { tags: [18] }) as Tagged;
    expect(t.tag).toBe(18);
    const [, u, payload] = t.value as [Uint8Array, Map<number, unknown>, Uint8Array];
    expect(u.size).toBe(0);
    expect(payload).toEqual(sha256(reading1));
  });

  it('refuses bytes that are not a valid reading (TypeError)', async () => {
    await expect(signStatement(new Uint8Array([1, 2, 3]), signer)).rejects.toThrow(TypeError);
  });
});

describe('verifyStatementSignature', () => {
  it('returns false for a flipped signature byte, and for another key', async () => {
    const s = parseStatement(await signStatement(reading1, signer));
    for (const i of [0, 40, 63]) {
      const sig = s.signature.slice();
      sig[i]! ^= 0x20;
      expect(await verifyStatementSignature({ ...s, signature: sig }, signer.publicKey)).toBe(false);
    }
    expect(await verifyStatementSignature(s, createTestSigner().publicKey)).toBe(false);
  });

  it('accepts a high-S signature (a hardware signer may produce one)', async () => {
    const highSigner = { ...signer, sign: async (m: Uint8Array) => toHighS(await signer.sign(m)) };
    const s = parseStatement(await signStatement(reading1, highSigner));
    expect(await verifyStatementSignature(s, signer.publicKey)).toBe(true);
  });
});

describe('checkStatementAgainstReading', () => {
  it('gives DIGEST_MISMATCH when any byte of the reading changed', async () => {
    const s = parseStatement(await signStatement(reading2, signer));
    for (const i of [0, 10, reading2.length - 1]) {
      const changed = reading2.slice();
      changed[i]! ^= 0x01;
      expect(checkStatementAgainstReading(s, changed)).toBe('DIGEST_MISMATCH');
    }
    expect(checkStatementAgainstReading(s, reading1)).toBe('DIGEST_MISMATCH');
  });

  it('gives HEADER_MISMATCH when the header seq, device or prev differ from the reading (digest matching)', async () => {
    for (const fields of [
      { seq: 3, device: 'gw-0001', prev: readingDigest(reading1) },
      { seq: 2, device: 'gw-0002', prev: readingDigest(reading1) },
      { seq: 2, device: 'gw-0001', prev: GENESIS_PREV },
    ]) {
      const protectedBytes = encodeStatementProtectedHeader({ kid: signer.keyId, ...fields });
      const payload = sha256(reading2);
      const signature = await signer.sign(sigStructure1(protectedBytes, payload));
      const s = parseStatement(statementFrom({ protectedBytes, payload, signature }));
      expect(await verifyStatementSignature(s, signer.publicKey)).toBe(true);
      expect(checkStatementAgainstReading(s, reading2)).toBe('HEADER_MISMATCH');
    }
  });

  it('throws READING_FORMAT_ERROR when the digest matches bytes that are not a reading', async () => {
    const junk = encodeCbor({ not: 'a reading' });
    const protectedBytes = encodeStatementProtectedHeader({ kid: signer.keyId, device: 'gw-0001', seq: 1, prev: GENESIS_PREV });
    const s = parseStatement(statementFrom({ protectedBytes, payload: sha256(junk) }));
    expect(() => checkStatementAgainstReading(s, junk)).toThrow(expect.objectContaining({ code: 'READING_FORMAT_ERROR' }));
  });
});

describe('parseStatement rejects with STATEMENT_FORMAT_ERROR', () => {
  it('accepts the well-formed baseline these cases alter', () => {
    expect(() => parseStatement(statementFrom({}))).not.toThrow();
  });

  it('when it is not tag 18 (no tag, tag 98, tag 61) or not CBOR', () => {
    expectReject(statementFrom({ tag: null }));
    expectReject(statementFrom({ tag: 98 }));
    expectReject(statementFrom({ tag: 61 }));
    expectReject(fromHex('d284'));
  });

  it.each([
    ['alg is ES384 (-35)', 1, -35],
    ['alg is "ES256" text', 1, 'ES256'],
    ['payload_hash_alg is SHA-384 (-43)', 258, -43],
    ['payload_hash_alg is missing', 258, undefined],
    ['preimage_content_type is another type', 259, 'application/cbor'],
    ['preimage_content_type is the integer 60', 259, 60],
    ['content type (label 3) is present', 3, 'application/cbor'],
    ['kid is missing', 4, undefined],
    ['kid is 31 bytes', 4, new Uint8Array(31)],
    ['kid is 33 bytes', 4, new Uint8Array(33)],
    ['CWT claims are missing', 15, undefined],
    ['CWT claims lack sub', 15, new Map([[1, 'gw-0001']])],
    ['CWT claims carry an extra claim', 15, new Map<number, unknown>([[2, 'gw-0001'], [6, 1]])],
    ['sub is not text', 15, new Map([[2, 7]])],
    ['seq is missing', -65537, undefined],
    ['seq is 0', -65537, 0],
    ['seq is negative', -65537, -1],
    ['seq is beyond 2^53', -65537, 2n ** 60n],
    ['prev is missing', -65538, undefined],
    ['prev is 31 bytes', -65538, new Uint8Array(31)],
    ['an unknown label is present', 33, 1],
  ] as [string, number, unknown][])('when %s', (_name, label, value) => {
    const h = goodHeader();
    if (value === undefined) h.delete(label);
    else h.set(label, value);
    expectReject(statementFrom({ protectedMap: h }));
  });

  it('when the protected header is not in deterministic encoding (labels out of order, long heads)', () => {
    const entries = [...goodHeader().entries()].reverse();
    const unordered = concatBytes(new Uint8Array([0xa7]), ...entries.map(([k, v]) => concatBytes(encodeCbor(k), encodeCbor(v))));
    expectReject(statementFrom({ protectedBytes: unordered }));
    const good = encodeCbor(goodHeader());
    expect(toHex(good.subarray(0, 3))).toBe('a70126');
    const longAlg = concatBytes(fromHex('a7013806'), good.subarray(3)); // -7 as 38 06
    expectReject(statementFrom({ protectedBytes: longAlg }));
  });

  it('when the unprotected header is not empty', () => {
    expectReject(statementFrom({ unprotected: new Map([[4, new Uint8Array(32)]]) }));
  });

  it('when the payload is not 32 bytes, is detached, or is not bytes', () => {
    expectReject(statementFrom({ payload: new Uint8Array(31) }));
    expectReject(statementFrom({ payload: new Uint8Array(33) }));
    expectReject(statementFrom({ payload: null }));
    expectReject(statementFrom({ payload: 'digest' }));
  });

  it('when the signature is not 64 bytes', () => {
    expectReject(statementFrom({ signature: new Uint8Array(63) }));
    expectReject(statementFrom({ signature: new Uint8Array(65) }));
    expectReject(statementFrom({ signature: new Uint8Array(0) }));
    expectReject(statementFrom({ signature: fromHex('3044' + '00'.repeat(68)) }));
  });

  it('when the COSE_Sign1 itself is not in deterministic encoding (a long length head)', () => {
    const good = statementFrom({});
    // d2 84 58 <len> ...: re-encode the protected bstr length with a 2-byte head (59 00 <len>)
    expect(toHex(good.subarray(0, 3))).toBe('d28458');
    const long = concatBytes(fromHex('d2845900'), good.subarray(3));
    expectReject(long);
  });
});
