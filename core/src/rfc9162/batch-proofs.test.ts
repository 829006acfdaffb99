import { describe, expect, it } from 'vitest';
import { equalBytes } from '../bytes.ts';
import { sha256 } from '../hash.ts';
import { BatchProofs } from './batch-proofs.ts';
import { inclusionProof, rootFromLeafHashes } from './proof-build.ts';
import { verifyInclusion } from './proof-verify.ts';

const leaves = (n: number): Uint8Array[] => Array.from({ length: n }, (_, i) => sha256(Uint8Array.of(i, i >> 8)));

describe('BatchProofs', () => {
  it('gives the same root and inclusion proofs as the reference builders for every size 1..70', () => {
    for (let n = 1; n <= 70; n++) {
      const hashes = leaves(n);
      const proofs = new BatchProofs(hashes);
      const root = rootFromLeafHashes(hashes);
      expect(equalBytes(proofs.root(), root)).toBe(true);
      for (let i = 0; i < n; i++) {
        const mine = proofs.inclusionProof(i);
        const theirs = inclusionProof(hashes, i);
        expect(mine.length).toBe(theirs.length);
        mine.forEach((h, k) => expect(equalBytes(h, theirs[k]!)).toBe(true));
        verifyInclusion(i, n, hashes[i]!, mine, root);
      }
    }
  });

  it('refuses an empty batch and an index out of range', () => {
    expect(() => new BatchProofs([])).toThrow(RangeError);
    expect(() => new BatchProofs(leaves(3)).inclusionProof(3)).toThrow(RangeError);
  });
});
