/**
 * All inclusion proofs of one batch in O(n log n): the RFC 9162 §2.1 tree equals the bottom-up pairing of each
 * level where a lone last node is carried up unchanged, so the audit path of leaf i is, level by level, the
 * sibling of i's ancestor when it has one (leaf side first, as RFC 9162 §2.1.3.1 orders PATH).
 * core's `inclusionProof(leafHashes, i)` recomputes subtrees per call (O(n) each); exporting a bundle of a few
 * thousand entries of one batch would then be quadratic. Cross-checked against core in merkle-batch.test.ts.
 */
import { hashChildren } from '@stele/core/rfc9162/index.ts';

export class BatchProofs {
  private readonly levels: Uint8Array[][];

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

  get size(): number {
    return this.levels[0]!.length;
  }

  root(): Uint8Array {
    return this.levels[this.levels.length - 1]![0]!;
  }

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
