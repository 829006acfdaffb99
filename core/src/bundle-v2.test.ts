/** The compact bundle form, `stele-evidence/2` (FORMAT.md §7.1): lossless, same verdicts, structural errors coded. */
import { describe, expect, it } from 'vitest';
import { BUNDLE_FORMAT_V2, bundleToJson, encodeBundle, parseBundle, parseBundleBytes } from './bundle.ts';
import { fromBase64Url, toBase64Url } from './bytes.ts';
import { FormatError } from './errors.ts';
import { buildTestBundle, chainReader, flipByte, policyTrustingBundle } from './verify/test-bundle.ts';
import { verifyBundle } from './verify/verify.ts';
import type { Verdict } from './verify/verdict.ts';

const codes = (v: Verdict): string[] => [...new Set(v.checks.flatMap((c) => c.failures.map((f) => f.code)))].sort();

function errorOf(f: () => unknown): FormatError {
  try {
    f();
  } catch (e) {
    if (e instanceof FormatError) return e;
    throw e;
  }
  throw new Error('expected a FormatError');
}

// 40 readings in batches of 16, 16, 8; seq 5..20 as device-level batches of 8; the window cut at 3..37 so that
// batches 1 and 3 are only partly in the bundle (nodes needed) and a cut device-level batch keeps its statements.
const full = await buildTestBundle({ count: 40, batchSizes: [16, 16, 8], deviceBatches: [{ first: 5, count: 8 }, { first: 13, count: 8 }, { first: 1, count: 4 }] });
const bundle = structuredClone(full.bundle);
bundle.window = { firstSeq: 3, lastSeq: 37 };
bundle.entries = bundle.entries.filter((e) => e.seq >= 3 && e.seq <= 37);
const built = { ...full, bundle };
const v2 = (): Record<string, any> => bundleToJson(built.bundle, { form: 2 });

describe('stele-evidence/2', () => {
  it('carries one receipt and the nodes per batch, device-level batches once, and reads back to the same statements and receipts', () => {
    const j = v2();
    expect(j.format).toBe(BUNDLE_FORMAT_V2);
    expect(j.entries.every((e: Record<string, unknown>) => e.receipt === undefined && typeof e.leaf === 'number')).toBe(true);
    expect(j.deviceBatches).toHaveLength(2); // the batch of seq 1..4 is cut by the window: its statements stay
    expect(j.entries.filter((e: Record<string, unknown>) => e.deviceBatch !== undefined)).toHaveLength(16);
    expect(j.batches[0].nodes.length).toBeGreaterThan(0);
    const back = parseBundle(JSON.parse(JSON.stringify(j)));
    expect(back.format).toBe(BUNDLE_FORMAT_V2);
    expect(back.entries).toEqual(built.bundle.entries);
    expect(encodeBundle(back, { form: 1 })).toEqual(encodeBundle(built.bundle));
    expect(bundleToJson(back)).toEqual(j);
    expect(encodeBundle(back).length).toBeLessThan(encodeBundle(built.bundle).length * 0.75);
  });

  it('gives the v1 verdict, valid and tampered (node, receipt signature, device signature, root)', async () => {
    const trust = await policyTrustingBundle(built.bundle);
    const opts = { anchorReader: chainReader(built.chain), trust };
    const judge = async (j: Record<string, any>) => verifyBundle(parseBundle(j), opts);
    const v1 = await verifyBundle(built.bundle, opts);
    const same = await judge(v2());
    expect(same).toEqual(v1);
    expect(v1.state).toBe('verified');
    const flip = (s: string, i: number) => toBase64Url(flipByte(fromBase64Url(s), i));
    const node = v2();
    node.batches[0].nodes[0] = flip(node.batches[0].nodes[0], 3);
    expect(codes(await judge(node))).toEqual(['INCLUSION_PROOF_ERROR']);
    const sig = v2();
    sig.batches[1].receipt.signature = flip(sig.batches[1].receipt.signature, -1);
    expect(codes(await judge(sig))).toEqual(['RECEIPT_SIGNATURE_ERROR']);
    const dsig = v2();
    dsig.deviceBatches[1].signature = flip(dsig.deviceBatches[1].signature, -1);
    expect(codes(await judge(dsig))).toEqual(['INCLUSION_PROOF_ERROR', 'SIGNATURE_ERROR']);
    const root = v2();
    root.batches[2].root = `0x${'00'.repeat(31)}01`;
    expect(codes(await judge(root))).toEqual(['ANCHOR_MISMATCH_ERROR']);
  });

  const cases: [string, (j: Record<string, any>) => void, string][] = [
    ['a missing node', (j) => j.batches[0].nodes.pop(), '$.batches[0].nodes'],
    ['an extra node', (j) => j.batches[0].nodes.push(j.batches[0].nodes[0]), '$.batches[0].nodes'],
    ['a short node', (j) => (j.batches[0].nodes[0] = 'AAAA'), '$.batches[0].nodes[0]'],
    ['nodes without a receipt', (j) => delete j.batches[0].receipt, '$.batches[0].receipt'],
    ['a batch without receipt that entries name', (j) => { delete j.batches[0].receipt; delete j.batches[0].nodes; }, '$.batches[0].receipt'],
    ['a leaf twice', (j) => (j.entries[1].leaf = j.entries[0].leaf), '$.entries[1].leaf'],
    ['a leaf beyond the batch', (j) => (j.entries[0].leaf = 99), '$.entries[0].leaf'],
    ['statement and digest together', (j) => (j.entries.find((e: any) => e.digest).statement = j.entries[0].statement), `$.entries[2].statement`],
    ['neither statement nor digest', (j) => delete j.entries[0].statement, '$.entries[0].statement'],
    ['a receipt per entry (the v1 key)', (j) => (j.entries[0].receipt = 'AAAA'), '$.entries[0].receipt'],
    ['an entry of a device-level batch removed by hand', (j) => j.entries.splice(3, 1), '$.deviceBatches[0]'],
    ['an unknown device-level batch', (j) => (j.entries.find((e: any) => e.digest).deviceBatch = 7), '$.entries[2].deviceBatch'],
    ['a device-level batch header that is not CBOR', (j) => (j.deviceBatches[0].header = 'AAAA'), '$.deviceBatches[0].header'],
  ];
  for (const [what, change, path] of cases) {
    it(`rejects ${what} with BUNDLE_FORMAT_ERROR at ${path}`, () => {
      const j = v2();
      change(j);
      const e = errorOf(() => parseBundle(j));
      expect(e.code).toBe('BUNDLE_FORMAT_ERROR');
      expect(e.where).toEqual({ path });
    });
  }

  it('is read from file bytes like v1, and a bundle whose receipts disagree has no compact form', () => {
    expect(parseBundleBytes(encodeBundle(built.bundle, { form: 2 })).entries).toEqual(built.bundle.entries);
    const b = structuredClone(built.bundle);
    b.entries[0]!.receipt = flipByte(b.entries[0]!.receipt, -1);
    expect(errorOf(() => bundleToJson(b, { form: 2 })).code).toBe('BUNDLE_FORMAT_ERROR');
  });
});
