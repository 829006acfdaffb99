/**
 * The software key store: a P-256 private key in a PKCS#8 PEM file, for development and the demo.
 * Its enrolment says `keyBackend: 'software'`, so a verifier can tell it apart from a key that never left
 * secure hardware. The private key lives in a node:crypto `KeyObject` held in a private field: it is never
 * logged, never serialised (`toJSON` and `util.inspect` show only the key id) and never exported again.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { open, readFile, stat } from 'node:fs/promises';
import { toBase64Url, keyIdOf } from '@stele/core';
import type { KeyBackend, Signer } from '@stele/core';
import { KeyError } from './errors.ts';

export interface LoadKeyOptions {
  /**
   * Called with a `KEY_FILE_MODE` warning when the key file is readable by group or others.
   * Default: `process.emitWarning`.
   */
  onWarning?: (warning: KeyError) => void;
}

const INSPECT = Symbol.for('nodejs.util.inspect.custom');

export class SoftwareSigner implements Signer {
  readonly algorithm = 'ES256' as const;
  readonly backend = 'software' as const satisfies KeyBackend;
  readonly keyId: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly #key: KeyObject;

  /** Wraps a P-256 private `KeyObject`; throws `KEY_FILE_INVALID` for any other key. */
  constructor(privateKey: KeyObject) {
    if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'ec' || privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new KeyError('KEY_FILE_INVALID', 'not a P-256 private key');
    }
    this.#key = privateKey;
    this.publicKey = sec1Uncompressed(createPublicKey(privateKey));
    this.keyId = keyIdOf(this.publicKey);
  }

  /** ES256 over SHA-256(message), as the 64-byte `r || s` of RFC 9053 §2.1 (IEEE P1363 encoding). */
  async sign(message: Uint8Array): Promise<Uint8Array> {
    if (!(message instanceof Uint8Array)) throw new TypeError('message must be a Uint8Array');
    const sig = cryptoSign('sha256', message, { key: this.#key, dsaEncoding: 'ieee-p1363' });
    return new Uint8Array(sig.buffer, sig.byteOffset, sig.byteLength);
  }

  /** Only the public facts: the key never reaches a log line or a JSON file. */
  toJSON(): { backend: 'software'; kid: string } {
    return { backend: this.backend, kid: toBase64Url(this.keyId) };
  }

  toString(): string {
    return `SoftwareSigner(kid=${toBase64Url(this.keyId)})`;
  }

  [INSPECT](): string {
    return this.toString();
  }
}

/**
 * Creates a new P-256 key at `path` (PKCS#8 PEM, file mode 0600) and returns its signer.
 * Refuses to overwrite: `KEY_FILE_EXISTS` when the file is already there. The parent folder must exist.
 */
export async function createSoftwareKey(path: string): Promise<SoftwareSigner> {
  checkPath(path);
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' });
  let handle;
  try {
    // 'wx' = O_CREAT | O_EXCL: never replaces an existing key; the mode is applied at creation, so the key is
    // never readable by others, not even for a moment.
    handle = await open(path, 'wx', 0o600);
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'EEXIST') throw new KeyError('KEY_FILE_EXISTS', 'key file already exists', { cause, where: { path } });
    throw new KeyError('KEY_FILE_IO', 'cannot create key file', { cause, where: { path } });
  }
  try {
    await handle.writeFile(pem);
    await handle.sync();
  } catch (cause) {
    throw new KeyError('KEY_FILE_IO', 'cannot write key file', { cause, where: { path } });
  } finally {
    await handle.close();
  }
  return new SoftwareSigner(privateKey);
}

/**
 * Loads the key at `path`. `KEY_FILE_MISSING` when there is none, `KEY_FILE_INVALID` when it is not a PKCS#8
 * PEM P-256 private key, `KEY_FILE_MODE` (with the chmod to run) when every user may read it (mode & 0o007).
 */
export async function loadSoftwareSigner(path: string, options: LoadKeyOptions = {}): Promise<SoftwareSigner> {
  checkPath(path);
  let text: string;
  try {
    const info = await stat(path);
    if (process.platform !== 'win32' && (info.mode & 0o007) !== 0) {
      // A key every user can read is a key others may have copied: refuse it, and name the fix.
      throw new KeyError('KEY_FILE_MODE', `key file ${path} is open to every user of this machine (mode ${(info.mode & 0o777).toString(8)}): run \`chmod 600 ${path}\` (or 0640 root:stele)`, {
        where: { path, mode: info.mode & 0o777 },
      });
    }
    text = await readFile(path, 'utf8');
  } catch (cause) {
    if (cause instanceof KeyError) throw cause;
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') throw new KeyError('KEY_FILE_MISSING', 'no key file', { cause, where: { path } });
    throw new KeyError('KEY_FILE_IO', 'cannot read key file', { cause, where: { path } });
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: text, format: 'pem' });
  } catch {
    // no cause attached: OpenSSL's message could quote part of the file
    throw new KeyError('KEY_FILE_INVALID', 'key file is not a PEM private key', { where: { path } });
  }
  try {
    return new SoftwareSigner(key);
  } catch (err) {
    if (err instanceof KeyError) throw new KeyError(err.code, err.message, { where: { path } });
    throw err;
  }
}

/** Loads the key at `path`, or creates it (mode 0600) when there is none. */
export async function loadOrCreateSoftwareSigner(path: string, options: LoadKeyOptions = {}): Promise<SoftwareSigner> {
  try {
    return await loadSoftwareSigner(path, options);
  } catch (err) {
    if (!(err instanceof KeyError) || err.code !== 'KEY_FILE_MISSING') throw err;
  }
  try {
    return await createSoftwareKey(path);
  } catch (err) {
    // another process created it in between: use that one
    if (err instanceof KeyError && err.code === 'KEY_FILE_EXISTS') return loadSoftwareSigner(path, options);
    throw err;
  }
}

function checkPath(path: string): void {
  if (typeof path !== 'string' || path.length === 0) throw new TypeError('path must be a non-empty string');
}

/** SEC1 uncompressed point `0x04 || X || Y` (FORMAT.md §1) from a P-256 public key. */
function sec1Uncompressed(publicKey: KeyObject): Uint8Array {
  const jwk = publicKey.export({ format: 'jwk' });
  if (typeof jwk.x !== 'string' || typeof jwk.y !== 'string') throw new KeyError('KEY_FILE_INVALID', 'not an EC public key');
  const x = Buffer.from(jwk.x, 'base64url');
  const y = Buffer.from(jwk.y, 'base64url');
  if (x.length !== 32 || y.length !== 32) throw new KeyError('KEY_FILE_INVALID', 'not a P-256 point');
  const out = new Uint8Array(65);
  out[0] = 0x04;
  out.set(x, 1);
  out.set(y, 33);
  return out;
}
