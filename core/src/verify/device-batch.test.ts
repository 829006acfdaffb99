import { describe, expect, it } from 'vitest';
import type { EvidenceBundle } from '../bundle.ts';
import { parseStatement, signBatchedStatements } from '../cose/index.ts';
import { encodeReading } from '../reading.ts';
import type { VerifyCode } from './codes.ts';
import { buildTestBundle, cloneBundle, flipByte, testSigner } from './test-bundle.ts';
import type { Verdict } from './verdict.ts';
import { verifyBundle } from './verify.ts';

/** Device-level batches (FORMAT.md §3.1) in evidence bundles. */

const codeSet = (v: Verdict): VerifyCode[] => [...new Set(v.checks.flatMap((c) => c.failures.map((f) => f.code)))].sort();

/** 10 readings; seq 2..6 signed with one signature, seq 7..8 with another; ingest batches of 6 + 4. */
const RUNS = [
  { first: 2, count: 5 },
  { first: 7, count: 2 },
];
const base = await buildTestBundle({ deviceBatches: RUNS });
const online = { anchorReader: base.anchorReader, trust: base.trust };

function withEntry(bundle: EvidenceBundle, seq: number, change: (e: EvidenceBundle['entries'][number]) => void): EvidenceBundle {
  const b = cloneBundle(bundle);
  change(b.entries.find((x) => x.seq === seq)!);
  return b;
}

describe('a bundle whose readings were signed in device-level batches', () => {
  it('holds batched statements, byte for byte what signBatchedStatements gives', async () => {
    const st = base.bundle.entries.map((e) => parseStatement(e.statement));
    expect(st.map((s) => s.batch?.index)).toEqual([undefined, 0, 1, 2, 3, 4, 0, 1, undefined, undefined]);
    const bodies = base.bundle.entries.slice(1, 6).map((e) => e.reading!);
    expect(await signBatchedStatements(bodies, testSigner('device'))).toEqual(base.bundle.entries.slice(1, 6).map((e) => e.statement));
  });

  it('is verified with a chain reader', async () => {
    const v = await verifyBundle(base.bundle, online);
    expect(codeSet(v)).toEqual([]);
    expect(v.state).toBe('verified');
  });

  it('is verified hash-only: inside a batch the signed tree order is the link', async () => {
    const { bundle, anchorReader, trust } = await buildTestBundle({ deviceBatches: RUNS, hashOnly: true });
    const v = await verifyBundle(bundle, { anchorReader, trust });
    expect(codeSet(v)).toEqual([]);
    expect(v.state).toBe('verified');
  });

  it('is verified with a window that starts inside a batch', async () => {
    const { bundle, anchorReader, trust } = await buildTestBundle({ deviceBatches: RUNS, window: { firstSeq: 4, lastSeq: 10 }, hashOnly: (s) => s % 2 === 0 });
    const v = await verifyBundle(bundle, { anchorReader, trust });
    expect(codeSet(v)).toEqual([]);
  });

  describe('when tampered with', () => {
    it('a changed body inside a batch: DIGEST_MISMATCH_ERROR', async () => {
      const b = withEntry(base.bundle, 4, (e) => {
        e.reading = encodeReading({ ...base.readings[3]!, meas: [{ ...base.readings[3]!.meas[0]!, value: '99.9' }] });
      });
      expect(codeSet(await verifyBundle(b, online))).toEqual(['DIGEST_MISMATCH_ERROR']);
    });

    it('a changed batch signature byte: SIGNATURE_ERROR (and the leaf no longer in the ingest batch)', async () => {
      const b = withEntry(base.bundle, 4, (e) => (e.statement = flipByte(e.statement, e.statement.length - 1)));
      expect(codeSet(await verifyBundle(b, online))).toEqual(['INCLUSION_PROOF_ERROR', 'SIGNATURE_ERROR']);
    });

    it('a removed entry inside a batch: SEQUENCE_GAP_ERROR only (the next one is not judged against a gap)', async () => {
      const b = cloneBundle(base.bundle);
      b.entries = b.entries.filter((e) => e.seq !== 4);
      expect(codeSet(await verifyBundle(b, online))).toEqual(['SEQUENCE_GAP_ERROR']);
    });

    it('hash-only, a statement from another batch at seq - 1: CHAIN_LINK_ERROR', async () => {
      // seq 3 signed in a batch of its own (3..4) elsewhere: seq 4 of the bundle's batch 2..6 does not follow it
      const other = await buildTestBundle({ deviceBatches: [{ first: 3, count: 2 }], hashOnly: true });
      const hashOnly = await buildTestBundle({ deviceBatches: RUNS, hashOnly: true });
      const b = cloneBundle(hashOnly.bundle);
      const three = b.entries.find((e) => e.seq === 3)!;
      const foreign = other.bundle.entries.find((e) => e.seq === 3)!;
      three.statement = foreign.statement; // same reading, another (validly signed) batch
      const v = await verifyBundle(b, { anchorReader: hashOnly.anchorReader, trust: hashOnly.trust });
      expect(codeSet(v)).toContain('CHAIN_LINK_ERROR');
      expect(v.checks.find((c) => c.id === 'completeness')!.failures.map((f) => f.seq)).toEqual([4]);
    });
  });

  it('a device key that signs a batch with a broken link inside: CHAIN_LINK_ERROR when the body is shown', async () => {
    const broken = { deviceBatches: RUNS, prevOf: (seq: number, real: Uint8Array) => (seq === 4 ? real.map((x) => x ^ 0xff) : undefined) };
    const full = await buildTestBundle(broken);
    const v = await verifyBundle(full.bundle, { anchorReader: full.anchorReader, trust: full.trust });
    expect(codeSet(v)).toEqual(['CHAIN_LINK_ERROR']);
    // hash-only, the device's signed order is all there is to judge: it stands (FORMAT.md §3.1)
    const hashOnly = await buildTestBundle({ ...broken, hashOnly: (s) => s === 4 });
    expect(codeSet(await verifyBundle(hashOnly.bundle, { anchorReader: hashOnly.anchorReader, trust: hashOnly.trust }))).toEqual([]);
  });

  it('a batch signed by a key never enrolled: UNKNOWN_KEY_ERROR and SIGNATURE_ERROR for each of its readings', async () => {
    const stranger = testSigner('stranger');
    const { bundle, anchorReader, trust } = await buildTestBundle({ deviceBatches: RUNS, signerOf: (s) => (s === 2 ? stranger : undefined) });
    const v = await verifyBundle(bundle, { anchorReader, trust });
    expect(codeSet(v)).toEqual(['SIGNATURE_ERROR', 'UNKNOWN_KEY_ERROR']);
    expect(v.checks.find((c) => c.id === 'signatures')!.failures.map((f) => f.seq)).toEqual([2, 3, 4, 5, 6]);
  });
});
