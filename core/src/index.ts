/**
 * @stele/core: byte formats (docs/FORMAT.md), hashing, signatures, Merkle proofs and offline verification.
 * Isomorphic: no Node-only APIs, so the verifier page can use it in a browser.
 */
export * from './errors.ts';
export * from './log.ts';
export * from './bytes.ts';
export * from './hash.ts';
export * from './cbor.ts';
export * from './keys.ts';
export * from './ecdsa.ts';
export * from './signer.ts';
export * from './reading.ts';
export * from './cose/index.ts';
export * from './rfc9162/index.ts';
export * from './anchor/evm-reader.ts';
export * from './lifecycle/index.ts';
export * from './enrolment/index.ts';
export * from './bundle.ts';
export * from './verify/index.ts';
export * from './trust/index.ts';
export * from './tpm2/index.ts';
export * from './alerts/index.ts';
export * from './prng.ts';
export * from './sleep.ts';
export * from './chain-link.ts';
export * from './wire/index.ts';
