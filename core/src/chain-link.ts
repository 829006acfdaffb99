/**
 * The chain-link rule (FORMAT.md §3, §3.1), once for ingest (which refuses a statement that does not extend the
 * committed head) and the verifier (which reports CHAIN_LINK_ERROR in a bundle).
 */
import { equalBytes } from './bytes.ts';

/** A statement's place in a device-level batch (FORMAT.md §3.1): the signed root and its leaf index. */
export interface BatchPosition {
  root: Uint8Array;
  index: number;
}

/** What a statement links by: its prev, or, sent hash-only inside a device-level batch, its batch position. */
export interface ChainLinkFrom {
  /** The signed prev, or the reading body's prev; undefined for a hash-only reading inside a device-level batch. */
  prev: Uint8Array | undefined;
  batch?: BatchPosition | undefined;
}

/** What stands at seq - 1: its chain digest (GENESIS_PREV before seq 1) and its batch position, if any. */
export interface ChainLinkTo {
  digest: Uint8Array;
  batch?: BatchPosition | undefined;
}

/**
 * True when the statement `from` (at seq) extends `to` (the entry at seq - 1): its prev is `to`'s digest; or, with
 * no prev (hash-only inside a device-level batch, §3.1), `to` is the leaf before it in the same signed tree.
 */
export function extendsChain(from: ChainLinkFrom, to: ChainLinkTo): boolean {
  if (from.prev !== undefined) return equalBytes(from.prev, to.digest);
  const here = from.batch;
  const there = to.batch;
  return here !== undefined && there !== undefined && there.index === here.index - 1 && equalBytes(there.root, here.root);
}
