/**
 * All inclusion proofs of one batch (a fixed list of leaf hashes) in O(n log n): the RFC 9162 §2.1 tree equals the
 * bottom-up pairing of each level where a lone last node is carried up unchanged, so the audit path of leaf i is,
 * level by level, the sibling of i's ancestor when it has one (leaf side first, as RFC 9162 §2.1.3.1 orders PATH).
 *
 * The one batch proof builder (issue 10 item 2; it was ingest's `merkle-batch.ts`). `inclusionProof(leafHashes, i)`
 * in proof-build.ts recomputes subtrees per call (O(n) each), so a bundle of thousands of entries of one batch
 * would be quadratic; `MerkleTree` answers any tree size but folds the right edge per proof. Measured for every
 * proof of one batch: 3,600 leaves 79 ms here against 245 ms with MerkleTree, 86,400 leaves 2.1 s against 6.0 s
 * (tsx, 2-core machine at load ~10, 2026-12-03). Checked against the reference builders in batch-proofs.test.ts.
 */
import { hashChildren } from './hash.ts';

/** The root and every inclusion proof of one batch of leaf hashes (leaf hashes are trusted log state). */
export class BatchProofs {
  private readonly levels: Uint8Array[][];

  /** Builds every level once, O(n) hashes. RangeError for an empty batch. */
  constructor(leafHashes: readonly Uint8Array[]) {
    if (leafHashes.length === 0) throw new RangeError('a batch has at least one leaf');
    const levels: Uint8Array[][] = [leafHashes.slice()];
    let cur = levels[0]!;
    while (cur.length > 1) {
      const next: Uint8Array[] = [];
      for (let j = 0; j + 1 < cur.length; j += 2) next.push(hashChildren(cur[j]!, cur[j + 1]!));
      if (cur.length % 2 === 1) next.push(cur[cur.length - 1]!);
      levels.push(next);
      cur = next;
    }
    this.levels = levels;
  }

  /** The number of leaves. */
  get size(): number {
    return this.levels[0]!.length;
  }

  /** MTH of the batch, RFC 9162 §2.1.1. */
  root(): Uint8Array {
    return this.levels[this.levels.length - 1]![0]!;
  }

  /** The inclusion path of `leafIndex`, RFC 9162 §2.1.3.1, leaf up. RangeError unless 0 <= leafIndex < size. */
  inclusionProof(leafIndex: number): Uint8Array[] {
    if (!Number.isSafeInteger(leafIndex) || leafIndex < 0 || leafIndex >= this.size) throw new RangeError(`leafIndex ${leafIndex} out of range`);
    const path: Uint8Array[] = [];
    let i = leafIndex;
    for (let k = 0; k < this.levels.length - 1; k++) {
      const level = this.levels[k]!;
      const sibling = i ^ 1;
      if (sibling < level.length) path.push(level[sibling]!);
      i >>= 1;
    }
    return path;
  }
}
