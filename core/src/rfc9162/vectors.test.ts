/**
 * The RFC 6962 / RFC 9162 proof vectors of transparency-dev/merkle (testdata/, see ../shared/vectors/SOURCE.md),
 * read in place. Each JSON file is one case; `wantErr: true` cases must raise MerkleError with the code of
 * their kind, the others must verify.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SHARED_SKIP_REASON, sharedDir } from '@stele/testkit';
import { MerkleError, verifyConsistency, verifyInclusion } from './index.ts';

const shared = sharedDir();
const dir = shared === undefined ? undefined : join(shared, 'vectors', 'rfc9162', 'testdata');

/** subtree* cases that are not RFC 9162 trees (start > 0 or start == end), left out when read: see below. */
const SUBTREE_INCLUSION_LEFT_OUT = 111;
const SUBTREE_CONSISTENCY_LEFT_OUT = 27;

interface InclusionCase { leafIdx: number; treeSize: number; root: string; leafHash: string; proof: string[] | null; desc: string; wantErr: boolean }
interface ConsistencyCase { size1: number; size2: number; root1: string; root2: string; proof: string[] | null; desc: string; wantErr: boolean }
interface SubtreeInclusionCase { leafIdx: number; start: number; end: number; root: string; leafHash: string; proof: string[] | null; desc: string; wantErr: boolean }
interface SubtreeConsistencyCase { start: number; end: number; size: number; root1: string; root2: string; proof: string[] | null; desc: string; wantErr: boolean }

/** Go encodes []byte in JSON as standard base64 with padding. */
const b64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));
const proofOf = (p: string[] | null): Uint8Array[] => (p ?? []).map(b64);

function listJson(root: string, sub: string): { name: string; path: string }[] {
  const out: { name: string; path: string }[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.json')) out.push({ name: relative(root, p), path: p });
    }
  };
  walk(join(root, sub));
  return out;
}

// JSON.parse turns the Go uint64 values (e.g. 2^64 - 1 for "leafIdx sub 1") into unsafe doubles: the verifier
// must reject those as malformed, which is what these cases want.
const load = <T>(path: string): T => JSON.parse(readFileSync(path, 'utf8')) as T;

function expectOutcome(run: () => void, wantErr: boolean, code: MerkleError['code']): void {
  if (!wantErr) {
    expect(run).not.toThrow();
    return;
  }
  let caught: unknown;
  try {
    run();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(MerkleError);
  expect((caught as MerkleError).code).toBe(code);
}

function runInclusion(c: { leafIdx: number; treeSize: number; root: string; leafHash: string; proof: string[] | null; wantErr: boolean }): void {
  expectOutcome(
    () => verifyInclusion(c.leafIdx, c.treeSize, b64(c.leafHash), proofOf(c.proof), b64(c.root)),
    c.wantErr,
    'INCLUSION_PROOF_ERROR',
  );
}

function runConsistency(c: { size1: number; size2: number; root1: string; root2: string; proof: string[] | null; wantErr: boolean }): void {
  expectOutcome(
    () => verifyConsistency(c.size1, c.size2, b64(c.root1), b64(c.root2), proofOf(c.proof)),
    c.wantErr,
    'CONSISTENCY_PROOF_ERROR',
  );
}

describe.skipIf(!dir)(`transparency-dev/merkle vectors${dir ? '' : ` (${SHARED_SKIP_REASON})`}`, () => {
  const root = dir!;

  describe('inclusion/', () => {
    const files = dir ? listJson(root, 'inclusion') : [];
    it('has the vectors', () => expect(files.length).toBeGreaterThan(80));
    for (const f of files) {
      const c = load<InclusionCase>(f.path);
      it(`${f.name}: ${c.wantErr ? 'rejects with INCLUSION_PROOF_ERROR' : 'verifies'}`, () => runInclusion(c));
    }
  });

  describe('consistency/', () => {
    const files = dir ? listJson(root, 'consistency') : [];
    it('has the vectors', () => expect(files.length).toBeGreaterThan(80));
    for (const f of files) {
      const c = load<ConsistencyCase>(f.path);
      it(`${f.name}: ${c.wantErr ? 'rejects with CONSISTENCY_PROOF_ERROR' : 'verifies'}`, () => runConsistency(c));
    }
  });

  // The subtree* folders test proofs for an arbitrary subtree [start, end) of a tree (the tiled-log / Merkle Tree
  // Certificates drafts, not RFC 9162). A subtree [0, end) with end > 0 *is* the RFC 9162 tree of size `end`, so
  // those cases are RFC 9162 inclusion proofs (leafIdx in tree size `end`) and consistency proofs (size1 = end,
  // size2 = size), and we run them. The others are left out when the folder is read (not registered as skips, so
  // CI's skip count stays a signal):
  // - start > 0: a subtree that does not start at leaf 0 has no RFC 9162 meaning (no tree of that shape exists);
  // - start == end: the draft defines the empty subtree as consistent with any tree, while RFC 9162 §2.1.4.1
  //   defines consistency only for 0 < m (and our verifier rejects size1 == 0, as the consistency/additional
  //   vectors require).
  // How many are left out is pinned, so a changed vector set is seen.
  const isRfc9162Tree = (c: { start: number; end: number }): boolean => c.start === 0 && c.end > 0;

  describe('subtreeinclusion/ (cases with start == 0 < end, as RFC 9162 inclusion)', () => {
    const all = dir ? listJson(root, 'subtreeinclusion').map((f) => ({ f, c: load<SubtreeInclusionCase>(f.path) })) : [];
    const cases = all.filter(({ c }) => isRfc9162Tree(c));
    it(`runs ${cases.length} cases and leaves out ${all.length - cases.length} that are not RFC 9162 trees`, () => {
      expect(cases.length).toBeGreaterThan(0);
      expect(all.length - cases.length).toBe(SUBTREE_INCLUSION_LEFT_OUT);
    });
    for (const { f, c } of cases) {
      it(`${f.name}: ${c.wantErr ? 'rejects with INCLUSION_PROOF_ERROR' : 'verifies'}`, () => runInclusion({ ...c, treeSize: c.end }));
    }
  });

  describe('subtreeconsistency/ (cases with start == 0 < end, as RFC 9162 consistency)', () => {
    const all = dir ? listJson(root, 'subtreeconsistency').map((f) => ({ f, c: load<SubtreeConsistencyCase>(f.path) })) : [];
    const cases = all.filter(({ c }) => isRfc9162Tree(c));
    it(`runs ${cases.length} cases and leaves out ${all.length - cases.length} that are not RFC 9162 trees`, () => {
      expect(cases.length).toBeGreaterThan(0);
      expect(all.length - cases.length).toBe(SUBTREE_CONSISTENCY_LEFT_OUT);
    });
    for (const { f, c } of cases) {
      it(`${f.name}: ${c.wantErr ? 'rejects with CONSISTENCY_PROOF_ERROR' : 'verifies'}`, () =>
        runConsistency({ ...c, size1: c.end, size2: c.size }));
    }
  });
});
