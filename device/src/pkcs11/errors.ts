import { SteleError } from '@stele/core';

/**
 * Codes raised by the PKCS#11 key store (SoftHSM, TPM 2.0 through tpm2-pkcs11, secure elements, HSMs).
 * - `KEY_BACKEND_UNAVAILABLE`: the pkcs11js binding is not installed or not compiled (the message says what to install).
 * - `KEY_MODULE_MISSING`: the PKCS#11 library (`module`) is not there or does not load.
 * - `KEY_TOKEN_MISSING`: no token with that label (at first open).
 * - `KEY_PIN_UNAVAILABLE`: the PIN file or environment variable named in the config is missing or empty.
 * - `KEY_PIN_FILE_MODE`: the PIN file is readable by group or others: refused, with the chmod to run.
 * - `KEY_PIN_INCORRECT`: the token refused the PIN. The signer will not try the same PIN again (lockout).
 * - `KEY_PIN_LOCKED`: the token locked the user PIN; an officer must reset it with the SO PIN.
 * - `KEY_NOT_FOUND`: no private key with that label / id on the token.
 * - `KEY_EXISTS`: refusing to generate a key under a label that is already used (a key is never replaced silently).
 * - `KEY_AMBIGUOUS`: several private keys answer to that label; name one with `keyId`.
 * - `KEY_MISMATCH`: after a reconnect the key under that label is not the key this signer started with.
 * - `KEY_DEVICE_REMOVED`: the token went away (unplugged, daemon gone, session lost). The signer reconnects on a
 *   later call, with backoff; a caller retries the same message.
 * - `KEY_SIGN_TIMEOUT`: no answer within `timeoutMs` (the caller is never left waiting).
 * - `KEY_SIGNER_CLOSED`: `close()` was called.
 * - `KEY_TOKEN_ERROR`: any other PKCS#11 failure (the CKR name is in `where.ckr`, the binding error in `cause`).
 */
export type TokenErrorCode =
  | 'KEY_BACKEND_UNAVAILABLE'
  | 'KEY_MODULE_MISSING'
  | 'KEY_TOKEN_MISSING'
  | 'KEY_PIN_UNAVAILABLE'
  | 'KEY_PIN_FILE_MODE'
  | 'KEY_PIN_INCORRECT'
  | 'KEY_PIN_LOCKED'
  | 'KEY_NOT_FOUND'
  | 'KEY_EXISTS'
  | 'KEY_AMBIGUOUS'
  | 'KEY_MISMATCH'
  | 'KEY_DEVICE_REMOVED'
  | 'KEY_SIGN_TIMEOUT'
  | 'KEY_SIGNER_CLOSED'
  | 'KEY_TOKEN_ERROR';

export class TokenError extends SteleError<TokenErrorCode> {}

/** What to do when pkcs11js cannot be loaded: it compiles with node-gyp at install time. */
export const PKCS11JS_INSTALL_HINT =
  'the PKCS#11 backend needs the optional package pkcs11js, compiled with node-gyp: install a compiler and Python ' +
  '(Debian/Ubuntu: `sudo apt-get install build-essential python3`), then run `npm rebuild pkcs11js` in the project folder';
