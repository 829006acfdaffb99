import { describe, expect, it } from 'vitest';
import { equalBytes } from '../bytes.ts';
import { decodeCbor, encodeCbor, Tagged } from '../cbor.ts';
import { sha256 } from '../hash.ts';
import { encodeReading, GENESIS_PREV, readingDigest } from '../reading.ts';
import { hashLeaf, rootFromLeafHashes } from '../rfc9162/index.ts';
import { HEADER_STELE_BATCH_SIZE, HEADER_VDP, HEADER_VDS, VDP_INCLUSION_PROOFS } from './labels.ts';
import { decodeSign1, encodeSign1, sigStructure1 } from './sign1.ts';
import {
  checkStatementAgainstReading,
  encodeStatementProtectedHeader,
  parseStatement,
  signBatchedStatements,
  signStatement,
  verifyStatementSignature,
} from './statement.ts';
import { createTestSigner, digestOf, sampleReading } from './test-helpers.ts';

const signer = createTestSigner();
const other = createTestSigner();

/** Readings seq first..first+n-1 of one chain, the first linked to `prev`. */
function chain(n: number, first = 1, prev: Uint8Array = GENESIS_PREV): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const bytes = encodeReading(sampleReading({ seq: first + i, prev: i === 0 ? prev : readingDigest(out[i - 1]!), time: 1_763_900_000_000 + i }));
    out.push(bytes);
  }
  return out;
}

const expectReject = (bytes: Uint8Array): void => {
  expect(() => parseStatement(bytes)).toThrow(expect.objectContaining({ code: 'STATEMENT_FORMAT_ERROR' }));
};

/** The statement with its parts changed and re-encoded (deterministically, so only the change is judged). */
function rebuilt(bytes: Uint8Array, change: (p: ReturnType<typeof decodeSign1>) => void): Uint8Array {
  const p = decodeSign1(bytes);
  change(p);
  return encodeSign1({ protectedBytes: p.protectedBytes, unprotectedHeader: p.unprotectedHeader, payload: p.payload, signature: p.signature });
}

/** The unprotected header of a batched statement with its proof replaced by `proof` (any CBOR value). */
function withProof(proof: unknown): Map<number, unknown> {
  return new Map<number, unknown>([[HEADER_VDP, new Map<number, unknown>([[VDP_INCLUSION_PROOFS, [encodeCbor(proof)]]])]]);
}

describe('signBatchedStatements', () => {
  it('gives exactly the single-reading statement for one reading (K = 1 is today\'s form)', async () => {
    const [r] = chain(1);
    const [batched] = await signBatchedStatements([r!], signer);
    expect(batched).toEqual(await signStatement(r!, signer));
    expect(parseStatement(batched!).batch).toBeUndefined();
  });

  describe('when five consecutive readings are signed together', async () => {
    const readings = chain(5, 41, digestOf(0x77));
    const statements = await signBatchedStatements(readings, signer);
    const parsed = statements.map((s) => parseStatement(s));
    const root = rootFromLeafHashes(readings.map((r) => hashLeaf(sha256(r))));

    it('gives one statement per reading with its own payload, seq and inclusion proof', () => {
      expect(statements).toHaveLength(5);
      parsed.forEach((st, i) => {
        expect(st.seq).toBe(41 + i);
        expect(st.payload).toEqual(sha256(readings[i]!));
        expect(st.batch).toMatchObject({ first: 41, count: 5, index: i });
        expect(st.batch!.root).toEqual(root);
        expect(st.batch!.prev).toEqual(digestOf(0x77));
        expect(st.toBeSigned).toEqual(sigStructure1(st.protectedBytes, root));
      });
    });

    it('signs once: the protected header and the signature are the batch\'s, identical for all five', () => {
      for (const st of parsed) {
        expect(st.protectedBytes).toEqual(parsed[0]!.protectedBytes);
        expect(st.signature).toEqual(parsed[0]!.signature);
      }
      const h = decodeCbor(parsed[0]!.protectedBytes) as Map<number, unknown>;
      expect(h.get(HEADER_VDS)).toBe(1);
      expect(h.get(HEADER_STELE_BATCH_SIZE)).toBe(5);
      expect(parsed[0]!.protectedBytes).toEqual(
        encodeStatementProtectedHeader({ kid: signer.keyId, device: 'gw-0001', seq: 41, prev: digestOf(0x77), batchSize: 5 }),
      );
    });

    it('carries prev for the first reading only: the others link through their bodies or the tree order', () => {
      expect(parsed[0]!.prev).toEqual(digestOf(0x77));
      for (const st of parsed.slice(1)) expect(st.prev).toBeUndefined();
    });

    it('verifies every statement with the device key and against its reading', async () => {
      for (const [i, st] of parsed.entries()) {
        expect(await verifyStatementSignature(st, signer.publicKey)).toBe(true);
        expect(await verifyStatementSignature(st, other.publicKey)).toBe(false);
        expect(checkStatementAgainstReading(st, readings[i]!)).toBe('ok');
      }
    });

    it('matches a body to its own statement only', () => {
      expect(checkStatementAgainstReading(parsed[2]!, readings[3]!)).toBe('DIGEST_MISMATCH');
    });

    it('is deterministic CBOR and re-parses to the same bytes', () => {
      for (const s of statements) expect(encodeCbor(decodeCbor(s, { tags: [18] }))).toEqual(s);
    });

    describe('when tampered with', () => {
      it('a changed payload leads to another root: the signature fails', async () => {
        const bytes = rebuilt(statements[2]!, (p) => {
          p.payload![0]! ^= 1;
        });
        expect(await verifyStatementSignature(parseStatement(bytes), signer.publicKey)).toBe(false);
      });

      it('a changed proof node: the signature fails', async () => {
        const path = parsed[2]!.batch!.path.map((x) => x.slice());
        path[0]![0]! ^= 1;
        const bytes = rebuilt(statements[2]!, (p) => {
          p.unprotectedHeader = withProof([5, 2, path]);
        });
        expect(await verifyStatementSignature(parseStatement(bytes), signer.publicKey)).toBe(false);
      });

      it('another leaf index (same path length) claims another seq: the signature fails', async () => {
        // index 2 and 3 of five both have a path of length 3 and the same subtree sizes
        const bytes = rebuilt(statements[2]!, (p) => {
          p.unprotectedHeader = withProof([5, 3, parsed[2]!.batch!.path]);
        });
        const st = parseStatement(bytes);
        expect(st.seq).toBe(44);
        expect(await verifyStatementSignature(st, signer.publicKey)).toBe(false);
      });

      it('a changed batch size in the header: the signature fails (the header is signed)', async () => {
        // leaf 0 has a path of three nodes in a tree of 5 and of 6 alike, so the proof still fits
        const bytes = rebuilt(statements[0]!, (p) => {
          p.protectedBytes = encodeStatementProtectedHeader({ kid: signer.keyId, device: 'gw-0001', seq: 41, prev: digestOf(0x77), batchSize: 6 });
          p.unprotectedHeader = withProof([6, 0, parsed[0]!.batch!.path]);
        });
        expect(await verifyStatementSignature(parseStatement(bytes), signer.publicKey)).toBe(false);
        // leaf 4 does not: its path has one node for 5 leaves, two for 6
        const misfit = rebuilt(statements[4]!, (p) => {
          p.protectedBytes = encodeStatementProtectedHeader({ kid: signer.keyId, device: 'gw-0001', seq: 41, prev: digestOf(0x77), batchSize: 6 });
          p.unprotectedHeader = withProof([6, 4, parsed[4]!.batch!.path]);
        });
        expectReject(misfit);
      });

      it('a changed signature byte: the signature fails', async () => {
        const bytes = rebuilt(statements[1]!, (p) => {
          p.signature[63]! ^= 1;
        });
        expect(await verifyStatementSignature(parseStatement(bytes), signer.publicKey)).toBe(false);
      });

      it('a statement of one batch does not verify with the proof of another', async () => {
        const second = await signBatchedStatements(chain(5, 46, readingDigest(readings[4]!)), signer);
        const bytes = rebuilt(statements[1]!, (p) => {
          p.unprotectedHeader = decodeSign1(second[1]!).unprotectedHeader;
        });
        expect(await verifyStatementSignature(parseStatement(bytes), signer.publicKey)).toBe(false);
      });
    });

    describe('when the batch form is malformed', () => {
      it('rejects a batch header with an empty unprotected header', () => {
        expectReject(rebuilt(statements[0]!, (p) => (p.unprotectedHeader = new Map())));
      });
      it('rejects a proof whose tree size is not the header\'s batch size', () => {
        expectReject(rebuilt(statements[4]!, (p) => (p.unprotectedHeader = withProof([8, 4, parsed[4]!.batch!.path]))));
      });
      it('rejects a leaf index at or beyond the batch size', () => {
        expectReject(rebuilt(statements[4]!, (p) => (p.unprotectedHeader = withProof([5, 5, parsed[4]!.batch!.path]))));
      });
      it('rejects a path too long or too short for its index and size (INCLUSION_PROOF_ERROR as cause)', () => {
        const path = parsed[2]!.batch!.path;
        expectReject(rebuilt(statements[2]!, (p) => (p.unprotectedHeader = withProof([5, 2, [...path, digestOf(1)]]))));
        expectReject(rebuilt(statements[2]!, (p) => (p.unprotectedHeader = withProof([5, 2, path.slice(1)]))));
        try {
          parseStatement(rebuilt(statements[2]!, (p) => (p.unprotectedHeader = withProof([5, 2, path.slice(1)]))));
        } catch (e) {
          expect((e as Error).cause).toMatchObject({ code: 'INCLUSION_PROOF_ERROR' });
        }
      });
      it('rejects a path entry that is not 32 bytes, and more than one proof', () => {
        expectReject(rebuilt(statements[2]!, (p) => (p.unprotectedHeader = withProof([5, 2, [new Uint8Array(31)]]))));
        const u = new Map<number, unknown>([[HEADER_VDP, new Map<number, unknown>([[VDP_INCLUSION_PROOFS, [encodeCbor([5, 2, parsed[2]!.batch!.path]), encodeCbor([5, 2, parsed[2]!.batch!.path])]]])]]);
        expectReject(rebuilt(statements[2]!, (p) => (p.unprotectedHeader = u)));
      });
      it('rejects a batch size below 2 and a vds other than 1', () => {
        const h = decodeCbor(parsed[0]!.protectedBytes) as Map<number, unknown>;
        const one = new Map(h);
        one.set(HEADER_STELE_BATCH_SIZE, 1);
        expectReject(rebuilt(statements[0]!, (p) => (p.protectedBytes = encodeCbor(one))));
        const vds = new Map(h);
        vds.set(HEADER_VDS, 2);
        expectReject(rebuilt(statements[0]!, (p) => (p.protectedBytes = encodeCbor(vds))));
        const noSize = new Map(h);
        noSize.delete(HEADER_STELE_BATCH_SIZE);
        expectReject(rebuilt(statements[0]!, (p) => (p.protectedBytes = encodeCbor(noSize))));
      });
      it('rejects the batch size label without vds, and a proof on a single-reading statement', async () => {
        const single = await signStatement(readings[0]!, signer);
        const h = decodeCbor(decodeSign1(single).protectedBytes) as Map<number, unknown>;
        h.set(HEADER_STELE_BATCH_SIZE, 5);
        expectReject(rebuilt(single, (p) => (p.protectedBytes = encodeCbor(h))));
        expectReject(rebuilt(single, (p) => (p.unprotectedHeader = withProof([5, 0, parsed[0]!.batch!.path]))));
      });
      it('rejects a proof that is not in deterministic encoding', () => {
        const path = parsed[1]!.batch!.path;
        // 5 encoded in two bytes (0x18 0x05) instead of one
        const proof = new Uint8Array([0x83, 0x18, 0x05, 0x01, ...encodeCbor(path)]);
        const u = new Map<number, unknown>([[HEADER_VDP, new Map<number, unknown>([[VDP_INCLUSION_PROOFS, [proof]]])]]);
        expect(() => rebuilt(statements[1]!, (p) => (p.unprotectedHeader = u))).not.toThrow();
        expectReject(rebuilt(statements[1]!, (p) => (p.unprotectedHeader = u)));
      });
      it('is not mistaken for a receipt: tag 18 with a payload and a hash-envelope header', () => {
        expect(decodeCbor(statements[0]!, { tags: [18] })).toBeInstanceOf(Tagged);
      });
    });
  });

  describe('when misused', () => {
    it('refuses an empty list, a gap in seq, a broken prev link and two devices', async () => {
      const r = chain(3);
      await expect(signBatchedStatements([], signer)).rejects.toThrow(RangeError);
      await expect(signBatchedStatements([r[0]!, r[2]!], signer)).rejects.toThrow(RangeError);
      const broken = encodeReading(sampleReading({ seq: 2, prev: digestOf(9) }));
      await expect(signBatchedStatements([r[0]!, broken], signer)).rejects.toThrow(RangeError);
      const otherDevice = encodeReading(sampleReading({ device: 'gw-0002', seq: 2, prev: readingDigest(r[0]!) }));
      await expect(signBatchedStatements([r[0]!, otherDevice], signer)).rejects.toThrow(RangeError);
      await expect(signBatchedStatements([r[0]!, new Uint8Array([1, 2])], signer)).rejects.toThrow(TypeError);
    });
  });

  it('checks device and seq of a body inside a batch, and leaves its prev to the chain check', async () => {
    const r = chain(3);
    const st = (await signBatchedStatements(r, signer)).map((s) => parseStatement(s));
    expect(equalBytes(st[1]!.payload, sha256(r[1]!))).toBe(true);
    expect(checkStatementAgainstReading(st[1]!, r[1]!)).toBe('ok');
    expect(checkStatementAgainstReading(st[0]!, r[0]!)).toBe('ok');
  });
});
