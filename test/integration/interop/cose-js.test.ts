/**
 * Interoperability (issue 10 item 7): a second, independent COSE implementation decodes and verifies our
 * statements (FORMAT.md §3) and receipts (§5), so a protocol bug cannot be frozen into FORMAT.md's examples by our
 * own encoder. cose-js (devDependency of @stele/test) shares no code with core: node-cbor for CBOR, elliptic for
 * P-256, its own Sig_structure; the receipt's root is computed here from the proof with node:crypto, following
 * RFC 9162 §2.1.3.2 as FORMAT.md §4 writes it out. Nothing of @stele/core is imported. Tampered vectors must fail
 * in cose-js too, so the test can fail.
 *
 * cose-js verifies over its own re-encoding of the decoded protected header: that it verifies at all shows our
 * protected headers are in the preferred (shortest) CBOR form that an independent encoder writes again byte for byte.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import cbor from 'cbor';
import cose from 'cose-js';
import { describe, expect, it } from 'vitest';

const BUNDLES = join(import.meta.dirname, '..', '..', 'vectors', 'bundles');

interface BundleJson {
  device: { deviceId: string; publicKey: string; kid: string };
  ingest: { issuer: string; publicKey: string; kid: string };
  entries: { seq: number; batchId: number; reading?: string; statement: string; receipt: string }[];
  batches: { batchId: number; size: number; root: string }[];
}

const b64 = (s: string): Buffer => Buffer.from(s, 'base64url');
/** Roots are `0x` + 64 lowercase hex in the bundle (FORMAT.md §7). */
const hex0x = (s: string): Buffer => {
  expect(s).toMatch(/^0x[0-9a-f]{64}$/);
  return Buffer.from(s.slice(2), 'hex');
};
const sha256 = (...parts: Uint8Array[]): Buffer => createHash('sha256').update(Buffer.concat(parts)).digest();
const load = (name: string): BundleJson => JSON.parse(readFileSync(join(BUNDLES, name), 'utf8')) as BundleJson;

/** An uncompressed SEC1 P-256 point as the {x, y} cose-js takes. */
function coordinates(sec1: Buffer): { x: Buffer; y: Buffer } {
  expect(sec1.length).toBe(65);
  expect(sec1[0]).toBe(0x04);
  return { x: sec1.subarray(1, 33), y: sec1.subarray(33) };
}

/** FORMAT.md §4 / RFC 9162 §2.1.3.2, written again here so the check does not rest on core's rfc9162 code. */
function rootFromProof(leafIndex: number, treeSize: number, leafHash: Buffer, path: Buffer[]): Buffer {
  if (leafIndex >= treeSize) throw new Error('leaf index beyond the tree');
  let fn = leafIndex;
  let sn = treeSize - 1;
  let r = leafHash;
  for (const p of path) {
    if (sn === 0) throw new Error('path too long');
    if (fn % 2 === 1 || fn === sn) {
      r = sha256(Buffer.of(1), p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      r = sha256(Buffer.of(1), r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn !== 0) throw new Error('path too short');
  return r;
}

/** cose-js's verdict on a COSE_Sign1: the payload it verified, or the error it threw. */
async function coseJsVerify(message: Uint8Array, publicKey: Buffer): Promise<{ ok: true; payload: Buffer } | { ok: false; error: string }> {
  try {
    return { ok: true, payload: await cose.sign.verify(message, { key: coordinates(publicKey) }, { defaultType: cose.sign.Sign1Tag }) };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
}

/** Decodes a receipt with node-cbor, checks its shape, and re-encodes it with the root as the payload (§5: detached). */
function receiptWithRoot(receipt: Buffer, root: Buffer): { attached: Buffer; protectedHeader: Map<number, unknown>; proof: [number, number, Buffer[]] } {
  const tagged = cbor.decodeFirstSync(receipt) as { tag: number; value: [Buffer, Map<number, unknown>, null, Buffer] };
  expect(tagged.tag).toBe(18);
  const [protectedBytes, unprotected, payload, signature] = tagged.value;
  expect(payload).toBeNull(); // detached
  const vdp = unprotected.get(396) as Map<number, Buffer[]>;
  const proofs = vdp.get(-1)!;
  expect(proofs).toHaveLength(1);
  const proof = cbor.decodeFirstSync(proofs[0]!) as [number, number, Buffer[]];
  const attached = cbor.encode(new cbor.Tagged(18, [protectedBytes, unprotected, root, signature]));
  return { attached, protectedHeader: cbor.decodeFirstSync(protectedBytes) as Map<number, unknown>, proof };
}

describe('cose-js (node-cbor + elliptic) reads and verifies our COSE', () => {
  const bundle = load('valid.bundle.json');
  const devicePublicKey = b64(bundle.device.publicKey);
  const ingestPublicKey = b64(bundle.ingest.publicKey);

  describe('statements (FORMAT.md §3)', () => {
    it.each(bundle.entries.map((e) => [e.seq, e] as const))('seq %i verifies under the device key, over the reading digest', async (seq, entry) => {
      const statement = b64(entry.statement);
      const verdict = await coseJsVerify(statement, devicePublicKey);
      expect(verdict).toMatchObject({ ok: true });
      if (!verdict.ok) return;
      // COSE Hash Envelope: the payload is SHA-256 of the reading bytes
      expect(verdict.payload.toString('hex')).toBe(sha256(b64(entry.reading!)).toString('hex'));
      const header = cbor.decodeFirstSync((cbor.decodeFirstSync(statement) as { value: Buffer[] }).value[0]!) as Map<number, unknown>;
      expect(header.get(1)).toBe(-7); // ES256
      expect(Buffer.from(header.get(4) as Buffer).toString('base64url')).toBe(bundle.device.kid);
      expect((header.get(15) as Map<number, string>).get(2)).toBe(bundle.device.deviceId);
      expect(header.get(258)).toBe(-16); // SHA-256
      expect(header.get(-65537)).toBe(seq);
    });
  });

  describe('receipts (FORMAT.md §5)', () => {
    it.each(bundle.entries.map((e) => [e.seq, e] as const))('seq %i: the proof gives the recorded root, and the receipt verifies under the ingest key with it', async (_seq, entry) => {
      const batch = bundle.batches.find((b) => b.batchId === entry.batchId)!;
      const root = hex0x(batch.root);
      const { attached, protectedHeader, proof } = receiptWithRoot(b64(entry.receipt), root);
      const [treeSize, leafIndex, path] = proof;
      expect(treeSize).toBe(batch.size);
      expect(rootFromProof(leafIndex, treeSize, sha256(Buffer.of(0), b64(entry.statement)), path).toString('hex')).toBe(root.toString('hex'));
      expect(protectedHeader.get(1)).toBe(-7);
      expect(Buffer.from(protectedHeader.get(4) as Buffer).toString('base64url')).toBe(bundle.ingest.kid);
      expect((protectedHeader.get(15) as Map<number, unknown>).get(1)).toBe(bundle.ingest.issuer);
      expect(protectedHeader.get(395)).toBe(1); // RFC9162_SHA256
      expect(protectedHeader.get(-65539)).toBe(entry.batchId);
      expect(await coseJsVerify(attached, ingestPublicKey)).toMatchObject({ ok: true });
    });
  });

  describe('when the vectors are tampered with', () => {
    it('rejects a statement whose signature was changed (tampered-statement-signature)', async () => {
      const tampered = load('tampered-statement-signature.bundle.json');
      const verdicts = await Promise.all(tampered.entries.map((e) => coseJsVerify(b64(e.statement), b64(tampered.device.publicKey))));
      expect(verdicts.filter((v) => !v.ok)).toHaveLength(1);
    });

    it('rejects a receipt whose signature was changed (tampered-receipt-signature)', async () => {
      const tampered = load('tampered-receipt-signature.bundle.json');
      const verdicts = await Promise.all(
        tampered.entries.map((e) => coseJsVerify(receiptWithRoot(b64(e.receipt), hex0x(tampered.batches.find((b) => b.batchId === e.batchId)!.root)).attached, b64(tampered.ingest.publicKey))),
      );
      expect(verdicts.filter((v) => !v.ok).length).toBeGreaterThan(0);
    });

    it('rejects a receipt checked against another root', async () => {
      const entry = bundle.entries[0]!;
      const { attached } = receiptWithRoot(b64(entry.receipt), Buffer.alloc(32, 0xab));
      expect(await coseJsVerify(attached, ingestPublicKey)).toMatchObject({ ok: false });
    });
  });
});
