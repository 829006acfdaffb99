/**
 * Checking steps shared by the parsers of untrusted COSE_Sign1 structures (statements FORMAT.md §3, §3.1,
 * receipts §5, lifecycle statements §13). Each parser passes its own `fail`, so every failure carries that
 * parser's error code (STATEMENT_FORMAT_ERROR, RECEIPT_FORMAT_ERROR).
 */
import { equalBytes } from '../bytes.ts';
import { decodeCborChecked } from '../cbor.ts';
import { KEY_ID_LENGTH } from '../keys.ts';
import { DIGEST_LENGTH } from '../reading.ts';
import { ALG_ES256, HEADER_ALG, HEADER_KID } from './labels.ts';
import { copyBytes, encodeDeterministic } from './plain-bytes.ts';
import { type CoseSign1, decodeSign1Checked } from './sign1.ts';

/** Throws the parser's format error; `where` names the field (and label) that failed. */
export type FailFormat = (message: string, where: Record<string, unknown>, cause?: unknown) => never;

/**
 * decodeSign1 on untrusted bytes: misuse (TypeError) is rethrown as is; any other failure becomes
 * `fail('<what> is not a tagged COSE_Sign1', { field: 'cose' }, cause)`. `deterministic` and
 * `protectedDeterministic` as in CheckedSign1 (true: the bytes need not be encoded again to be judged).
 */
export function decodeSign1Or(bytes: Uint8Array, what: string, fail: FailFormat, views = false): CoseSign1 & { deterministic: boolean; protectedDeterministic: boolean } {
  try {
    const { sign1, deterministic, protectedDeterministic } = decodeSign1Checked(bytes, { views });
    return { ...sign1, deterministic, protectedDeterministic };
  } catch (cause) {
    if (cause instanceof TypeError) throw cause;
    return fail(`${what} is not a tagged COSE_Sign1`, { field: 'cose' }, cause);
  }
}

/** Every protected header label is one of `labels`, and alg (1) is ES256 (-7), checked in that order. */
export function checkLabelsAndAlg(h: Map<number, unknown>, labels: ReadonlySet<number>, fail: FailFormat): void {
  for (const label of h.keys()) if (!labels.has(label)) fail('unexpected protected header label', { field: 'protected', label });
  if (h.get(HEADER_ALG) !== ALG_ES256) fail('alg is not ES256 (-7)', { field: 'protected', label: HEADER_ALG });
}

/** The kid (4) of a protected header, which must be 32 bytes (FORMAT.md §2). Not a copy. */
export function protectedKid(h: Map<number, unknown>, fail: FailFormat): Uint8Array {
  const kid = h.get(HEADER_KID);
  if (!(kid instanceof Uint8Array) || kid.length !== KEY_ID_LENGTH) fail('kid is not 32 bytes', { field: 'protected', label: HEADER_KID });
  return kid;
}

/**
 * Decodes the bytes of one inclusion proof `[tree_size, leaf_index, path]` (RFC 9162 §4.11 as FORMAT.md §3.1, §5
 * carry it): tree_size a safe integer >= `minTreeSize`, leaf_index below it, each path entry 32 bytes (copied),
 * and the bytes in deterministic encoding. Does not check the path length against the index and size.
 */
export function decodeProofBytes(
  bytes: Uint8Array,
  minTreeSize: number,
  fail: FailFormat,
): { treeSize: number; leafIndex: number; path: Uint8Array[] } {
  let decoded: unknown;
  let deterministic: boolean;
  try {
    ({ value: decoded, deterministic } = decodeCborChecked(bytes, { what: 'inclusion proof' }));
  } catch (cause) {
    fail('inclusion proof is not valid CBOR', { field: 'vdp' }, cause);
  }
  if (!Array.isArray(decoded) || decoded.length !== 3) fail('inclusion proof is not [tree_size, leaf_index, path]', { field: 'vdp' });
  const [treeSize, leafIndex, path] = decoded as [unknown, unknown, unknown];
  if (typeof treeSize !== 'number' || !Number.isSafeInteger(treeSize) || treeSize < minTreeSize) {
    fail(`tree_size is not an integer >= ${minTreeSize}`, { field: 'vdp.treeSize' });
  }
  if (typeof leafIndex !== 'number' || !Number.isSafeInteger(leafIndex) || leafIndex < 0 || leafIndex >= treeSize) {
    fail('leaf_index is not below tree_size', { field: 'vdp.leafIndex' });
  }
  if (!Array.isArray(path)) fail('path is not an array', { field: 'vdp.path' });
  path.forEach((p: unknown, i) => {
    if (!(p instanceof Uint8Array) || p.length !== DIGEST_LENGTH) fail('a path entry is not 32 bytes', { field: `vdp.path[${i}]` });
  });
  const plain = (path as Uint8Array[]).map(copyBytes);
  if (!deterministic && !equalBytes(encodeDeterministic([treeSize, leafIndex, plain]), bytes)) fail('inclusion proof is not in deterministic encoding', { field: 'vdp' });
  return { treeSize, leafIndex, path: plain };
}
