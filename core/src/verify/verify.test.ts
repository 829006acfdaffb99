import { describe, expect, it } from 'vitest';
import { AnchorError } from '../anchor/evm-reader.ts';
import type { EvidenceBundle } from '../bundle.ts';
import { encodeBundle, parseBundle } from '../bundle.ts';
import { toHex } from '../bytes.ts';
import { encodeReading, readingDigest } from '../reading.ts';
import type { VerifyCode } from './codes.ts';
import { VERIFY_CODES } from './codes.ts';
import { buildTestBundle, chainReader, cloneBundle, flipByte, tamper, testSigner, unreachableReader } from './test-bundle.ts';
import type { Verdict } from './verdict.ts';
import { verifyBundle, verifyBundleBytes } from './verify.ts';
import type { AnchorReader } from './verify.ts';

const codes = (v: Verdict): VerifyCode[] => v.checks.flatMap((c) => c.failures.map((f) => f.code));
const codeSet = (v: Verdict): VerifyCode[] => [...new Set(codes(v))].sort();
const check = (v: Verdict, id: string) => v.checks.find((c) => c.id === id)!;
const firstCode = (v: Verdict): VerifyCode | undefined => v.checks.find((c) => c.status === 'fail')?.failures[0]?.code;

/** The valid 10-reading bundle in 2 batches (6 + 4), shared read-only; tamper on clones. */
const base = await buildTestBundle();
const online = { anchorReader: base.anchorReader, trust: base.trust };

/** Tamper one entry (by seq) of a clone of the base bundle. */
function withEntry(seq: number, change: (e: EvidenceBundle['entries'][number]) => void): EvidenceBundle {
  const b = cloneBundle(base.bundle);
  const e = b.entries.find((x) => x.seq === seq)!;
  change(e);
  return b;
}

describe('a valid bundle of 10 readings in 2 batches', () => {
  it('is verified with a chain reader, every check passing (alert not applicable)', async () => {
    const v = await verifyBundle(base.bundle, online);
    expect(codes(v)).toEqual([]);
    expect(v.state).toBe('verified');
    expect(v.checks.map((c) => [c.id, c.status])).toEqual([
      ['format', 'pass'],
      ['enrolment', 'pass'],
      ['signatures', 'pass'],
      ['completeness', 'pass'],
      ['inclusion', 'pass'],
      ['receipt', 'pass'],
      ['anchor', 'pass'],
      ['time', 'pass'],
      ['alert', 'not-applicable'],
      ['flags', 'pass'],
      ['trust', 'pass'],
    ]);
    expect(v.checks.map((c) => c.number)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(v.summary).toMatchObject({ readings: 10, bodies: 10, firstSeq: 1, lastSeq: 10, batches: 2, devices: ['gw-test-0001'] });
    // The bundle's own rpc is not asked unless the officer says so (useBundleRpc): the reader answered alone.
    expect(v.summary.anchors.map((a) => a.confirmedBy)).toEqual([['(anchor reader)'], ['(anchor reader)']]);
    expect(v.notes.map((n) => n.id)).toEqual(['software-key', 'revocation-unchecked']);
  });

  it('gives a plain-JSON verdict with zh and en sentences everywhere', async () => {
    const v = await verifyBundle(base.bundle, online);
    expect(JSON.parse(JSON.stringify(v))).toEqual(v);
    for (const c of v.checks) for (const t of [c.title, c.sentence]) expect(t.zh.length * t.en.length).toBeGreaterThan(0);
  });

  it('round-trips through its JSON file form', async () => {
    const again = parseBundle(JSON.parse(new TextDecoder().decode(base.bytes)));
    expect(again).toEqual(base.bundle);
    const { verdict } = await verifyBundleBytes(base.bytes, online);
    expect(verdict.state).toBe('verified');
    expect(verdict.summary.bundleSha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('is partial offline: anchor and time bound unchecked', async () => {
    const v = await verifyBundle(base.bundle, { trust: base.trust });
    expect(v.state).toBe('partial');
    expect(check(v, 'anchor').status).toBe('unchecked');
    expect(check(v, 'time').status).toBe('unchecked');
    expect(check(v, 'trust')).toMatchObject({ status: 'unchecked', code: 'KEY_WINDOW_UNCHECKED' });
    expect(v.headline.en).toMatch(/anchor was not checked/);
  });

  it('is partial when the reader cannot reach the chain, naming the URL', async () => {
    const v = await verifyBundle(base.bundle, { anchorReader: unreachableReader, rpcUrls: ['http://127.0.0.1:9'] });
    expect(v.state).toBe('partial');
    expect(codes(v)).toEqual([]);
    expect(check(v, 'anchor').status).toBe('unchecked');
    expect(check(v, 'anchor').sentence.en).toContain('http://127.0.0.1:9');
    expect(check(v, 'anchor').sentence.zh).toContain('http://127.0.0.1:9');
  });

  it('is verified when one of two endpoints is unreachable and the other confirms', async () => {
    const reader: AnchorReader = (ref, id, url) => (url === 'http://a' ? unreachableReader(ref, id, url) : base.anchorReader(ref, id, url));
    const v = await verifyBundle(base.bundle, { anchorReader: reader, rpcUrls: ['http://a', 'http://b'], trust: base.trust });
    expect(v.state).toBe('verified');
    expect(v.notes.some((n) => n.id === 'rpc-unreachable')).toBe(true);
  });

  it('is partial when two endpoints disagree, naming both', async () => {
    const reader: AnchorReader = async (ref, id, url) => {
      const facts = await base.anchorReader(ref, id, url);
      return url === 'http://b' ? { ...facts, root: `0x${'ab'.repeat(32)}` } : facts;
    };
    const v = await verifyBundle(base.bundle, { anchorReader: reader, rpcUrls: ['http://a', 'http://b'], trust: base.trust });
    expect(v.state).toBe('partial');
    expect(check(v, 'anchor').sentence.en).toMatch(/http:\/\/a.*http:\/\/b/);
  });
});

describe('the tamper matrix', () => {
  it('a changed measurement value (re-encoded reading) -> DIGEST_MISMATCH_ERROR', async () => {
    const reading = base.readings[4]!;
    const changed = encodeReading({ ...reading, meas: [{ ...reading.meas[0]!, value: '99.9' }] });
    const v = await verifyBundle(withEntry(5, (e) => (e.reading = changed)), online);
    expect(v.state).toBe('failed');
    expect(codeSet(v)).toEqual(['DIGEST_MISMATCH_ERROR']);
    expect(check(v, 'signatures').failures[0]).toMatchObject({ seq: 5, expected: toHex(readingDigest(base.bundle.entries[4]!.reading!)) });
    expect(v.headline.en).toMatch(/^Failed: Reading 5 .*changed after signing/);
  });

  it('one statement signature byte -> SIGNATURE_ERROR (and the changed leaf is not in the batch)', async () => {
    const v = await verifyBundle(withEntry(3, (e) => (e.statement = tamper.signatureByte(e.statement))), online);
    expect(firstCode(v)).toBe('SIGNATURE_ERROR');
    expect(codeSet(v)).toEqual(['INCLUSION_PROOF_ERROR', 'SIGNATURE_ERROR']);
    expect(check(v, 'signatures').failures).toMatchObject([{ code: 'SIGNATURE_ERROR', seq: 3 }]);
  });

  it('one proof node -> INCLUSION_PROOF_ERROR only', async () => {
    const v = await verifyBundle(withEntry(2, (e) => (e.receipt = tamper.proofNode(e.receipt, 1))), online);
    expect(codeSet(v)).toEqual(['INCLUSION_PROOF_ERROR']);
    expect(check(v, 'inclusion').failures).toMatchObject([{ seq: 2, batchId: 1 }]);
    expect(check(v, 'receipt').status).toBe('pass');
  });

  it('one receipt signature byte -> RECEIPT_SIGNATURE_ERROR only', async () => {
    const v = await verifyBundle(withEntry(8, (e) => (e.receipt = tamper.signatureByte(e.receipt))), online);
    expect(codeSet(v)).toEqual(['RECEIPT_SIGNATURE_ERROR']);
    expect(check(v, 'receipt').failures).toMatchObject([{ seq: 8, batchId: 2 }]);
    expect(check(v, 'inclusion').status).toBe('pass');
  });

  it('a changed batch root -> ANCHOR_MISMATCH_ERROR, offline too', async () => {
    const b = cloneBundle(base.bundle);
    b.batches[1]!.root = flipByte(b.batches[1]!.root, 0);
    const offline = await verifyBundle(b);
    expect(offline.state).toBe('failed');
    expect(codeSet(offline)).toEqual(['ANCHOR_MISMATCH_ERROR']);
    expect(check(offline, 'anchor').failures).toHaveLength(1);
    const withChain = await verifyBundle(b, online);
    expect(codeSet(withChain)).toEqual(['ANCHOR_MISMATCH_ERROR']);
    expect(check(withChain, 'anchor').failures.map((f) => f.batchId)).toEqual([2, 2]);
    expect(check(withChain, 'inclusion').status).toBe('pass');
    expect(check(withChain, 'receipt').status).toBe('pass');
  });

  it('a changed batch size -> ANCHOR_MISMATCH_ERROR', async () => {
    const b = cloneBundle(base.bundle);
    b.batches[0]!.size = 7;
    expect(codeSet(await verifyBundle(b))).toEqual(['ANCHOR_MISMATCH_ERROR']);
  });

  it('a reading removed from the middle -> SEQUENCE_GAP_ERROR naming the seq', async () => {
    const b = cloneBundle(base.bundle);
    b.entries = b.entries.filter((e) => e.seq !== 5 && e.seq !== 6);
    const v = await verifyBundle(b, online);
    expect(codeSet(v)).toEqual(['SEQUENCE_GAP_ERROR']);
    expect(check(v, 'completeness').failures).toMatchObject([{ seq: 5, expected: '5-6' }]);
    expect(v.headline.en).toContain('Readings 5–6 are missing (2');
    expect(v.headline.zh).toContain('序号 5–6 缺失');
  });

  it('a window claiming more than the entries -> SEQUENCE_GAP_ERROR at the end', async () => {
    const b = cloneBundle(base.bundle);
    b.window = { firstSeq: 1, lastSeq: 12 };
    const v = await verifyBundle(b, online);
    expect(codeSet(v)).toEqual(['SEQUENCE_GAP_ERROR']);
    expect(check(v, 'completeness').failures[0]).toMatchObject({ seq: 11, expected: '11-12' });
  });

  it('a reordered prev (reading 6 signed after 4) -> CHAIN_LINK_ERROR', async () => {
    let digest4: Uint8Array | undefined;
    const built = await buildTestBundle({
      prevOf: (seq, real) => {
        if (seq === 5) digest4 = real;
        return seq === 6 ? digest4 : undefined;
      },
    });
    const v = await verifyBundle(built.bundle, { anchorReader: built.anchorReader, trust: built.trust });
    expect(codeSet(v)).toEqual(['CHAIN_LINK_ERROR']);
    expect(check(v, 'completeness').failures).toMatchObject([{ seq: 6 }]);
  });

  it('a body whose prev differs from its signed header -> HEADER_MISMATCH_ERROR', async () => {
    const built = await buildTestBundle({
      prevOf: (seq) => (seq === 4 ? new Uint8Array(32).fill(9) : undefined),
      headerPrevOf: (seq, real) => (seq === 4 ? real : undefined),
    });
    const v = await verifyBundle(built.bundle, { anchorReader: built.anchorReader, trust: built.trust });
    expect(codeSet(v)).toEqual(['HEADER_MISMATCH_ERROR']);
    expect(check(v, 'signatures').failures[0]!.sentence.en).toBe("Reading 4's previous digest differs from its signed statement.");
  });

  it('a first reading that does not start from the genesis prev -> CHAIN_LINK_ERROR', async () => {
    const built = await buildTestBundle({ prevOf: (seq) => (seq === 1 ? new Uint8Array(32).fill(7) : undefined) });
    const v = await verifyBundle(built.bundle, { anchorReader: built.anchorReader, trust: built.trust });
    expect(codeSet(v)).toEqual(['CHAIN_LINK_ERROR']);
  });

  it('two statements with one seq -> FORK_ERROR', async () => {
    const built = await buildTestBundle({ forks: [5] });
    expect(built.bundle.entries).toHaveLength(11);
    const v = await verifyBundle(built.bundle, { anchorReader: built.anchorReader, trust: built.trust });
    expect(codeSet(v)).toEqual(['FORK_ERROR']);
    expect(check(v, 'completeness').failures).toMatchObject([{ seq: 5 }]);
  });

  it('a statement signed under an unknown kid -> UNKNOWN_KEY_ERROR first', async () => {
    const stranger = testSigner('stranger');
    const built = await buildTestBundle({ signerOf: (seq) => (seq === 4 ? stranger : undefined) });
    const v = await verifyBundle(built.bundle, { anchorReader: built.anchorReader, trust: built.trust });
    expect(firstCode(v)).toBe('UNKNOWN_KEY_ERROR');
    expect(codeSet(v)).toEqual(['SIGNATURE_ERROR', 'UNKNOWN_KEY_ERROR']);
    expect(check(v, 'enrolment').failures).toMatchObject([{ seq: 4, actual: toHex(stranger.keyId) }]);
  });

  it('a swapped enrolment key -> UNKNOWN_KEY_ERROR for every statement', async () => {
    const b = cloneBundle(base.bundle);
    const other = testSigner('other device');
    b.device.publicKey = other.publicKey;
    b.device.kid = other.keyId;
    const v = await verifyBundle(b, online);
    expect(firstCode(v)).toBe('UNKNOWN_KEY_ERROR');
    expect(check(v, 'enrolment').failures).toHaveLength(10);
  });

  it('an enrolment kid that is not the id of its key -> UNKNOWN_KEY_ERROR', async () => {
    const b = cloneBundle(base.bundle);
    b.device.kid = flipByte(b.device.kid, 0);
    const v = await verifyBundle(b, online);
    expect(codeSet(v)).toEqual(['UNKNOWN_KEY_ERROR']);
  });

  it('truncated JSON -> BUNDLE_FORMAT_ERROR, every other check unchecked', async () => {
    const { verdict } = await verifyBundleBytes(base.bytes.subarray(0, 500), online);
    expect(verdict.state).toBe('failed');
    expect(codes(verdict)).toEqual(['BUNDLE_FORMAT_ERROR']);
    expect(verdict.checks.slice(1).every((c) => c.status === 'unchecked')).toBe(true);
  });

  it('a statement that does not decode -> BUNDLE_FORMAT_ERROR with its path', async () => {
    const v = await verifyBundle(withEntry(4, (e) => (e.statement = e.statement.subarray(0, 40))), online);
    expect(firstCode(v)).toBe('BUNDLE_FORMAT_ERROR');
    expect(check(v, 'format').failures[0]).toMatchObject({ seq: 4, path: '$.entries[3].statement' });
    // It is not also reported as missing.
    expect(codes(v)).not.toContain('SEQUENCE_GAP_ERROR');
  });

  it('an entry labelled with another seq than its statement -> BUNDLE_FORMAT_ERROR', async () => {
    const v = await verifyBundle(withEntry(4, (e) => (e.seq = 5)), online);
    expect(firstCode(v)).toBe('BUNDLE_FORMAT_ERROR');
  });

  it('a receipt for another batch -> INCLUSION_PROOF_ERROR', async () => {
    const b = cloneBundle(base.bundle);
    const e1 = b.entries.find((e) => e.seq === 1)!;
    e1.receipt = b.entries.find((e) => e.seq === 7)!.receipt;
    expect(codeSet(await verifyBundle(b, online))).toEqual(['INCLUSION_PROOF_ERROR']);
  });

  it('receipts signed by another ingest key -> RECEIPT_SIGNATURE_ERROR', async () => {
    const built = await buildTestBundle({ ingestSigner: testSigner('rogue ingest') });
    const b = cloneBundle(built.bundle);
    b.ingest = { ...base.bundle.ingest };
    const v = await verifyBundle(b, { anchorReader: built.anchorReader, trust: base.trust });
    expect(codeSet(v)).toEqual(['RECEIPT_SIGNATURE_ERROR']);
  });
});

describe('the on-chain anchor', () => {
  it('a chain that has no such anchor -> ANCHOR_NOT_FOUND_ERROR', async () => {
    const v = await verifyBundle(base.bundle, { anchorReader: chainReader(new Map([[1, base.chain.get(1)!]])) });
    expect(codeSet(v)).toEqual(['ANCHOR_NOT_FOUND_ERROR']);
    expect(check(v, 'anchor').failures).toMatchObject([{ batchId: 2 }]);
  });

  it('an endpoint serving another chain -> ANCHOR_MISMATCH_ERROR', async () => {
    const reader: AnchorReader = async () => {
      throw new AnchorError('ANCHOR_MISMATCH_ERROR', 'other chain', { where: { expected: 31337, actual: 1 } });
    };
    const v = await verifyBundle(base.bundle, { anchorReader: reader });
    expect(codeSet(v)).toEqual(['ANCHOR_MISMATCH_ERROR']);
    expect(check(v, 'anchor').failures[0]).toMatchObject({ expected: '31337', actual: '1' });
  });

  it('an unanchored batch -> partial', async () => {
    const built = await buildTestBundle({ unanchored: [2] });
    const v = await verifyBundle(built.bundle, { anchorReader: built.anchorReader, trust: built.trust });
    expect(v.state).toBe('partial');
    expect(v.notes.some((n) => n.id === 'not-anchored')).toBe(true);
  });

  it('a bundle with no rpc recorded and a reader that needs one stays unchecked (offline wording)', async () => {
    const built = await buildTestBundle({ rpc: null });
    const reader: AnchorReader = async (ref, id, url) => (url === undefined ? unreachableReader(ref, id, url) : built.anchorReader(ref, id, url));
    const v = await verifyBundle(built.bundle, { anchorReader: reader });
    expect(v.state).toBe('partial');
    expect(check(v, 'anchor').sentence.en).toMatch(/No chain endpoint/);
  });
});

describe('time bounds, flags, hash-only', () => {
  it('a synced reading later than its block time + 300 s -> TIME_BOUND_ERROR', async () => {
    const built = await buildTestBundle({ timeOf: (seq) => (seq === 9 ? Date.UTC(2027, 0, 1) : undefined) });
    const v = await verifyBundle(built.bundle, { anchorReader: built.anchorReader, trust: built.trust });
    // Block time of batch 2 follows its latest reading, so make the chain say the block came earlier.
    expect(check(v, 'time').status).toBe('pass');
    const early = new Map([...built.chain].map(([id, f]) => [id, { ...f, blockTime: Date.UTC(2026, 10, 20, 7) / 1000 }]));
    const v2 = await verifyBundle(built.bundle, { anchorReader: chainReader(early) });
    expect(codeSet(v2)).toEqual(['TIME_BOUND_ERROR']);
    expect(check(v2, 'time').failures).toMatchObject([{ seq: 9, batchId: 2 }]);
  });

  it('readings with an unsynced clock are not bounded, and a note says so', async () => {
    const built = await buildTestBundle({ clockSynced: false });
    const early = new Map([...built.chain].map(([id, f]) => [id, { ...f, blockTime: 0 }]));
    const v = await verifyBundle(built.bundle, { anchorReader: chainReader(early) });
    expect(codes(v)).toEqual([]);
    expect(check(v, 'time').status).toBe('not-applicable');
    expect(v.notes.some((n) => n.id === 'clock-unsynced')).toBe(true);
  });

  it('non-N data flags are listed as a note, not a failure', async () => {
    const built = await buildTestBundle({ flagOf: (seq) => (seq === 3 || seq === 7 ? 'C' : seq === 8 ? 'M' : 'N') });
    const v = await verifyBundle(built.bundle, { anchorReader: built.anchorReader, trust: built.trust });
    expect(v.state).toBe('verified');
    expect(check(v, 'flags').sentence.en).toBe('Non-N data flags present: C × 2 (seq 3, 7); M × 1 (seq 8)');
    expect(v.notes.some((n) => n.id === 'data-flags')).toBe(true);
  });

  it('a hash-only bundle verifies, with a note that bodies are absent', async () => {
    const built = await buildTestBundle({ hashOnly: true });
    const v = await verifyBundle(built.bundle, { anchorReader: built.anchorReader, trust: built.trust });
    expect(v.state).toBe('verified');
    expect(check(v, 'flags').status).toBe('not-applicable');
    expect(check(v, 'time').status).toBe('not-applicable');
    expect(v.notes.some((n) => n.id === 'hash-only')).toBe(true);
  });

  it('a hash-only bundle still catches a reordered chain', async () => {
    let digest4: Uint8Array | undefined;
    const built = await buildTestBundle({
      hashOnly: true,
      prevOf: (seq, real) => {
        if (seq === 5) digest4 = real;
        return seq === 6 ? digest4 : undefined;
      },
    });
    expect(codeSet(await verifyBundle(built.bundle, { anchorReader: built.anchorReader, trust: built.trust }))).toEqual(['CHAIN_LINK_ERROR']);
  });

  it('an alert in the bundle that nothing recomputes yet leaves check 9 unchecked and the verdict partial', async () => {
    const b = cloneBundle(base.bundle);
    b.alert = { value: '41.2' };
    const v = await verifyBundle(b, online);
    expect(check(v, 'alert').status).toBe('unchecked');
    expect(v.state).toBe('partial');
  });
});

describe('a window that starts later than seq 1', () => {
  it('verifies without needing the reading before the window', async () => {
    const built = await buildTestBundle({ count: 12, window: { firstSeq: 3, lastSeq: 12 } });
    const v = await verifyBundle(built.bundle, { anchorReader: built.anchorReader, trust: built.trust });
    expect(v.state).toBe('verified');
    expect(v.summary).toMatchObject({ firstSeq: 3, lastSeq: 12, readings: 10 });
  });
});

describe('codes', () => {
  it('lists each code once', () => {
    expect(new Set(VERIFY_CODES).size).toBe(VERIFY_CODES.length);
    expect(VERIFY_CODES).toHaveLength(22);
  });
});

it('encodeBundle output is what the builder returns', () => {
  expect(encodeBundle(base.bundle)).toEqual(base.bytes);
});

describe('duplicate entries', () => {
  it('an identical duplicate is a note, not a failure', async () => {
    const b = cloneBundle(base.bundle);
    b.entries.push({ ...b.entries[3]! });
    const v = await verifyBundle(b, online);
    expect(v.state).toBe('verified');
    expect(v.notes.some((n) => n.id === 'duplicate-entry')).toBe(true);
  });

  it('a duplicate statement carrying another body -> DIGEST_MISMATCH_ERROR', async () => {
    const b = cloneBundle(base.bundle);
    const reading = base.readings[3]!;
    b.entries.push({ ...b.entries[3]!, reading: encodeReading({ ...reading, meas: [{ ...reading.meas[0]!, value: '0.0' }] }) });
    expect(codeSet(await verifyBundle(b, online))).toEqual(['DIGEST_MISMATCH_ERROR']);
  });
});
