import { encodeCbor } from '../cbor.ts';

/**
 * cborg returns a Node `Buffer` for some outputs. `Buffer#slice` does not copy and `toEqual` treats a Buffer
 * and a Uint8Array as different, so everything Stele's format code returns is a plain Uint8Array view instead.
 */
export function plainBytes(bytes: Uint8Array): Uint8Array {
  return bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** encodeCbor (deterministic) returning a plain Uint8Array. */
export function encodeDeterministic(value: unknown): Uint8Array {
  return plainBytes(encodeCbor(value));
}

/** A copy of `bytes` as a plain Uint8Array (never a view on the input). */
export function copyBytes(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}
