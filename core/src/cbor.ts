import { decode, encode, rfc8949EncodeOptions, Tagged } from 'cborg';
import { FormatError } from './errors.ts';
import { DECLINED, decodeFastChecked, encodeFast } from './cbor-fast.ts';

export { Tagged };

/**
 * Deterministic CBOR (RFC 8949 §4.2.1): shortest heads, definite lengths, map keys sorted bytewise.
 * Use `Map` for integer-keyed maps (COSE headers) and plain objects for text-keyed maps.
 */
export function encodeCbor(value: unknown): Uint8Array {
  const fast = encodeFast(value);
  if (fast !== undefined) return fast;
  const b = encode(value, rfc8949EncodeOptions);
  // cborg may hand back a Node Buffer, whose slice() does not copy: always give callers a plain Uint8Array.
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * Strict decoder for untrusted bytes: rejects indefinite lengths, duplicate keys, undefined and trailing bytes;
 * every map comes back as a `Map` (whatever its key types); tags listed in `tags` are preserved as `Tagged`,
 * any other tag is an error.
 */
export function decodeCbor(bytes: Uint8Array, options: { tags?: number[]; what?: string } = {}): unknown {
  return decodeCborChecked(bytes, options).value;
}

/**
 * decodeCbor, and `deterministic`: true only when the bytes are known to be exactly the deterministic encoding
 * of the value (encodeCbor would give them back), so that a caller checking that may skip encoding it again;
 * false says nothing (encode and compare as before).
 * `views: true`: byte strings may be views into `bytes` (the caller owns `bytes` and never changes it).
 */
export function decodeCborChecked(bytes: Uint8Array, options: { tags?: number[]; what?: string; views?: boolean } = {}): { value: unknown; deterministic: boolean } {
  const fast = decodeFastChecked(bytes, options.tags ?? [], options.views === true);
  if (fast.value !== DECLINED) return fast;
  return { value: decodeWithCborg(bytes, options), deterministic: false };
}

function decodeWithCborg(bytes: Uint8Array, options: { tags?: number[]; what?: string }): unknown {
  const tags = Tagged.preserve(...(options.tags ?? []));
  try {
    return decode(bytes, {
      strict: true,
      allowIndefinite: false,
      allowUndefined: false,
      rejectDuplicateMapKeys: true,
      useMaps: true,
      tags,
    } as Parameters<typeof decode>[1]);
  } catch (cause) {
    throw new FormatError('CBOR_DECODE_ERROR', `${options.what ?? 'CBOR'}: ${(cause as Error).message}`, { cause });
  }
}

/** True when `bytes` is exactly the deterministic encoding of what it decodes to. */
export function isDeterministicCbor(bytes: Uint8Array, decoded: unknown): boolean {
  const again = encodeCbor(decoded);
  if (again.length !== bytes.length) return false;
  for (let i = 0; i < again.length; i++) if (again[i] !== bytes[i]) return false;
  return true;
}
