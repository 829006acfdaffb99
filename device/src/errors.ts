import { SteleError } from '@stele/core';

/**
 * Codes raised by the device key stores.
 * - `KEY_FILE_EXISTS`: refusing to overwrite an existing key file (a key is never replaced silently).
 * - `KEY_FILE_MISSING`: no key file at that path.
 * - `KEY_FILE_INVALID`: the file is not a PKCS#8 PEM private key, or not a P-256 key.
 * - `KEY_FILE_MODE`: the key file (or PIN file) is readable by group or others: refused, with the chmod to run.
 * - `KEY_FILE_IO`: any other file-system failure (the cause is attached).
 */
export type KeyErrorCode = 'KEY_FILE_EXISTS' | 'KEY_FILE_MISSING' | 'KEY_FILE_INVALID' | 'KEY_FILE_MODE' | 'KEY_FILE_IO';

export class KeyError extends SteleError<KeyErrorCode> {}
