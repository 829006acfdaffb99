/** Check 2 with lifecycle data (FORMAT.md §13): which key signed each reading, and whether it was valid then. */
import { describe, expect, it } from 'vitest';
import { encodeBundle, parseBundle } from '../bundle.ts';
import { toBase64Url } from '../bytes.ts';
import { parseLifecycleStatement } from '../lifecycle/index.ts';
import type { VerifyCode } from './codes.ts';
import { buildTestBundle, cloneBundle, flipByte, testSigner } from './test-bundle.ts';
import type { Verdict } from './verdict.ts';
import { verifyBundle, verifyBundleBytes } from './verify.ts';

const codes = (v: Verdict): VerifyCode[] => v.checks.flatMap((c) => c.failures.map((f) => f.code));
const failuresOf = (v: Verdict, code: VerifyCode) => v.checks.flatMap((c) => c.failures).filter((f) => f.code === code);
const check = (v: Verdict, id: string) => v.checks.find((c) => c.id === id)!;

const device = testSigner('device');
const next = testSigner('next', 'tpm');
const stranger = testSigner('stranger');

describe('a bundle with lifecycle data', () => {
  describe('when the device key was only enrolled', () => {
    it('is verified; check 2 names the key and the readings it signed, and revocation is no longer "unchecked"', async () => {
      const built = await buildTestBundle({ lifecycle: true });
      const v = await verifyBundle(built.bundle, { anchorReader: built.anchorReader, trust: built.trust });
      expect(codes(v)).toEqual([]);
      expect(v.state).toBe('verified');
      expect(v.summary.keys).toEqual([
        { kid: toBase64Url(device.keyId), backend: 'software', attested: false, via: 'enrolment', from: 1, signed: [[1, 10]] },
      ]);
      const ids = v.notes.map((n) => n.id);
      expect(ids).toContain('lifecycle-as-exported');
      expect(ids).not.toContain('revocation-unchecked');
    });

    it('round-trips through its JSON file form', async () => {
      const built = await buildTestBundle({ lifecycle: true });
      const again = parseBundle(JSON.parse(new TextDecoder().decode(encodeBundle(built.bundle))));
      expect(again).toEqual(built.bundle);
      expect(again.lifecycle).toHaveLength(1);
    });
  });

  describe('when the key was rotated at seq 5', () => {
    it('is verified: seq 1-4 under the old key (valid up to 5), 6-10 under the new one, the chain linking through the rotation', async () => {
      const built = await buildTestBundle({ rotations: [{ seq: 5, to: next }] });
      const v = await verifyBundle(built.bundle, { anchorReader: built.anchorReader, trust: built.trust });
      expect(codes(v)).toEqual([]);
      expect(v.state).toBe('verified');
      expect(v.summary.keys?.map((k) => [k.via, k.from, k.until, k.signed])).toEqual([
        ['enrolment', 1, 5, [[1, 4]]],
        ['rotation', 6, undefined, [[6, 10]]],
      ]);
      expect(v.notes.map((n) => n.id)).toContain('key-rotated');
      expect(check(v, 'enrolment').sentence.en).toMatch(/seq 1–5.*seq 6 on/);
    });

    it('still verifies a window after the rotation (the rotation travels in `lifecycle`)', async () => {
      const built = await buildTestBundle({ rotations: [{ seq: 5, to: next }], window: { firstSeq: 6, lastSeq: 10 } });
      const v = await verifyBundle(built.bundle, { anchorReader: built.anchorReader, trust: built.trust });
      expect(codes(v)).toEqual([]);
    });

    it('fails a reading signed afterwards by the rotated-out key with KEY_ROTATED_ERROR (and nothing else)', async () => {
      const built = await buildTestBundle({ rotations: [{ seq: 5, to: next }], signerOf: (seq) => (seq === 7 ? device : undefined) });
      const v = await verifyBundle(built.bundle, { anchorReader: built.anchorReader, trust: built.trust });
      expect(codes(v)).toEqual(['KEY_ROTATED_ERROR']);
      expect(failuresOf(v, 'KEY_ROTATED_ERROR')[0]).toMatchObject({ seq: 7, expected: 'seq <= 5' });
      expect(check(v, 'enrolment').status).toBe('fail');
    });

    it('fails a reading signed by the new key before the rotation with UNKNOWN_KEY_ERROR', async () => {
      const built = await buildTestBundle({ rotations: [{ seq: 5, to: next }], signerOf: (seq) => (seq === 3 ? next : undefined) });
      const v = await verifyBundle(built.bundle);
      expect(codes(v)).toEqual(['UNKNOWN_KEY_ERROR']);
      expect(failuresOf(v, 'UNKNOWN_KEY_ERROR')[0]).toMatchObject({ seq: 3, expected: 'seq >= 6' });
    });

    it('rejects a rotation signed by a key that is not the device key, and then every reading under the announced key', async () => {
      const built = await buildTestBundle({ rotations: [{ seq: 5, to: next }], signerOf: (seq) => (seq === 5 ? stranger : undefined) });
      const v = await verifyBundle(built.bundle);
      const unknown = failuresOf(v, 'UNKNOWN_KEY_ERROR');
      expect(unknown[0]).toMatchObject({ seq: 5, path: '$.lifecycle[1]' });
      expect(unknown.slice(1).map((f) => f.seq)).toEqual([6, 7, 8, 9, 10]);
    });

    it('reports a removed rotation statement as a gap, and the new key as unknown', async () => {
      const built = await buildTestBundle({ rotations: [{ seq: 5, to: next }] });
      const b = cloneBundle(built.bundle);
      b.lifecycle = b.lifecycle!.filter((e) => parseLifecycleStatement(e.statement).body.type !== 'rotation');
      const v = await verifyBundle(b);
      expect(failuresOf(v, 'SEQUENCE_GAP_ERROR').map((f) => f.seq)).toEqual([5]);
      expect(failuresOf(v, 'UNKNOWN_KEY_ERROR').map((f) => f.seq)).toEqual([6, 7, 8, 9, 10]);
    });
  });

  describe('when ingest revoked the device key after seq 6', () => {
    it('fails readings 7-10 with KEY_REVOKED_ERROR and keeps 1-6', async () => {
      const built = await buildTestBundle({ revocations: [{ after: 6 }] });
      const v = await verifyBundle(built.bundle, { anchorReader: built.anchorReader, trust: built.trust });
      expect([...new Set(codes(v))]).toEqual(['KEY_REVOKED_ERROR']);
      expect(failuresOf(v, 'KEY_REVOKED_ERROR').map((f) => f.seq)).toEqual([7, 8, 9, 10]);
      expect(v.notes.map((n) => n.id)).toContain('key-revoked');
      expect(v.summary.keys?.[0]?.revokedAfter).toBe(6);
    });

    it('is verified for the window before the revocation', async () => {
      const built = await buildTestBundle({ count: 10, window: { firstSeq: 1, lastSeq: 6 }, revocations: [{ after: 6 }] });
      const v = await verifyBundle(built.bundle, { anchorReader: built.anchorReader, trust: built.trust });
      expect(codes(v)).toEqual([]);
    });
  });

  describe('when a reading is signed by a key never enrolled', () => {
    it('fails it with UNKNOWN_KEY_ERROR (and SIGNATURE_ERROR under the enrolled key)', async () => {
      const built = await buildTestBundle({ lifecycle: true, signerOf: (seq) => (seq === 4 ? stranger : undefined) });
      const v = await verifyBundle(built.bundle);
      expect(failuresOf(v, 'UNKNOWN_KEY_ERROR').map((f) => f.seq)).toEqual([4]);
      expect(failuresOf(v, 'SIGNATURE_ERROR').map((f) => f.seq)).toEqual([4]);
    });
  });

  describe('when the enrolment statement is not signed by the ingest key', () => {
    it('refuses it, says the record is not backed, and every reading is under an unknown key', async () => {
      const built = await buildTestBundle({ lifecycle: true, lifecycleIngestSigner: stranger });
      const v = await verifyBundle(built.bundle);
      const unknown = failuresOf(v, 'UNKNOWN_KEY_ERROR');
      expect(unknown[0]).toMatchObject({ path: '$.lifecycle[0]' });
      expect(unknown.filter((f) => f.seq !== undefined)).toHaveLength(10);
      expect(v.state).toBe('failed');
    });
  });

  describe('when the agent was reinstalled at seq 4', () => {
    it('is verified, with a note', async () => {
      const built = await buildTestBundle({ reinstalls: [4] });
      const v = await verifyBundle(built.bundle, { anchorReader: built.anchorReader, trust: built.trust });
      expect(codes(v)).toEqual([]);
      expect(v.notes.map((n) => n.id)).toContain('agent-reinstalled');
    });
  });

  describe('when a lifecycle entry is damaged', () => {
    it('reports an undecodable statement as BUNDLE_FORMAT_ERROR at its path', async () => {
      const built = await buildTestBundle({ lifecycle: true });
      const b = cloneBundle(built.bundle);
      b.lifecycle![0]!.statement = new Uint8Array([0xd2, 0x80]);
      const v = await verifyBundle(b);
      expect(v.checks[0]!.failures[0]).toMatchObject({ code: 'BUNDLE_FORMAT_ERROR', path: '$.lifecycle[0].statement' });
    });

    it('reports a changed receipt signature of the enrolment as RECEIPT_SIGNATURE_ERROR without a seq', async () => {
      const built = await buildTestBundle({ lifecycle: true });
      const b = cloneBundle(built.bundle);
      b.lifecycle![0]!.receipt = flipByte(b.lifecycle![0]!.receipt, -1);
      const v = await verifyBundle(b);
      expect(codes(v)).toEqual(['RECEIPT_SIGNATURE_ERROR']);
      expect(failuresOf(v, 'RECEIPT_SIGNATURE_ERROR')[0]!.seq).toBeUndefined();
    });

    it('refuses a lifecycle entry with a key other than batchId, statement, receipt (BUNDLE_FORMAT_ERROR)', async () => {
      const built = await buildTestBundle({ lifecycle: true });
      const json = JSON.parse(new TextDecoder().decode(built.bytes)) as { lifecycle: Record<string, unknown>[] };
      json.lifecycle[0]!['seq'] = 1;
      const { verdict } = await verifyBundleBytes(new TextEncoder().encode(JSON.stringify(json)));
      expect(verdict.checks[0]!.failures[0]).toMatchObject({ code: 'BUNDLE_FORMAT_ERROR', path: '$.lifecycle[0].seq' });
    });

    it('refuses a lifecycle entry naming a batch that is not listed (BUNDLE_FORMAT_ERROR)', async () => {
      const built = await buildTestBundle({ lifecycle: true });
      const b = cloneBundle(built.bundle);
      b.lifecycle![0]!.batchId = 99;
      const { verdict } = await verifyBundleBytes(encodeBundle(b));
      expect(verdict.checks[0]!.failures[0]).toMatchObject({ code: 'BUNDLE_FORMAT_ERROR', path: '$.lifecycle[0].batchId' });
    });
  });
});

describe('a bundle without lifecycle data (made before FORMAT.md §13)', () => {
  it('still verifies by its record alone, with the revocation note', async () => {
    const built = await buildTestBundle();
    const v = await verifyBundle(built.bundle, { anchorReader: built.anchorReader, trust: built.trust });
    expect(v.state).toBe('verified');
    expect(v.summary.keys).toEqual([{ kid: toBase64Url(device.keyId), backend: 'software', attested: false, via: 'record', from: 1, signed: [[1, 10]] }]);
    expect(v.notes.map((n) => n.id)).toContain('revocation-unchecked');
  });
});
