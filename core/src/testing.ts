/**
 * @stele/core/testing: helpers for tests in every package (a test signer, signed chains, bundles built from
 * parts, alert fixtures). Not for production code: it uses a software key and fixed test data.
 */
export * from './cose/test-helpers.ts';
export * from './verify/test-bundle.ts';
export * from './alerts/test-helpers.ts';
