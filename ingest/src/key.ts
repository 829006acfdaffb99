/**
 * The ingest key (receipts, lifecycle statements): made once by `stele ingest init`, never by `run`. Where it lives
 * is written to DIR/ingest-key.json: a software key file, or a key on a PKCS#11 token (HSM, SoftHSM2, TPM) with
 * the same signer the gateway uses. A wrong path is an error; nothing here ever makes a second identity.
 */
import { mkdir, readFile, stat, chmod } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { toBase64Url, toHex } from '@stele/core';
import type { Signer } from '@stele/core';
import { checkPinSource, createSoftwareKey, loadSoftwareSigner, Pkcs11Signer, type Pkcs11SignerConfig } from '@stele/device';
import { IngestError } from './errors.ts';
import { writePrivateFile } from './private-files.ts';

export type IngestKeyConfig = { backend: 'software'; path: string } | ({ backend: 'pkcs11' } & { pkcs11: Pkcs11SignerConfig });

export type IngestSigner = Signer & { close?(): Promise<void> };

/** Where `stele ingest init` records the key. */
export function keyConfigPath(dataDir: string): string {
  return join(dataDir, 'ingest-key.json');
}

/** The key id line printed for the trust policy. */
export function describeIngestKey(signer: Signer): string {
  return `ingest key id (kid) ${toBase64Url(signer.keyId)}\n  hex ${toHex(signer.keyId)}\n  public key ${toBase64Url(signer.publicKey)}\n  backend ${signer.backend}\n`;
}

/**
 * Makes the ingest key and records it: a software key at `keyFile` (default DIR/keys/ingest.pem, mode 0600 in a 0700
 * folder) or a key generated on the PKCS#11 token of `pkcs11`. INGEST_KEY_EXISTS when DIR already has one.
 */
export async function initIngestKey(dataDir: string, options: { keyFile?: string; pkcs11?: Pkcs11SignerConfig } = {}): Promise<IngestSigner> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await chmod(dataDir, 0o700);
  const configFile = keyConfigPath(dataDir);
  if (await exists(configFile)) {
    throw new IngestError('INGEST_KEY_EXISTS', `${configFile} already names the ingest key; a second one would be a new identity`, { where: { file: configFile } });
  }
  let signer: IngestSigner;
  let config: IngestKeyConfig;
  if (options.pkcs11 !== undefined) {
    checkPinSource(options.pkcs11.pin);
    const generated = await Pkcs11Signer.generate({ keyLabel: 'stele-ingest', ...options.pkcs11 });
    signer = generated;
    config = { backend: 'pkcs11', pkcs11: { keyLabel: 'stele-ingest', ...options.pkcs11, keyId: generated.tokenKeyId } };
  } else {
    const keyFile = options.keyFile ?? join(dataDir, 'keys', 'ingest.pem');
    await mkdir(dirname(keyFile), { recursive: true, mode: 0o700 });
    signer = await createSoftwareKey(keyFile);
    config = { backend: 'software', path: keyFile };
  }
  await writePrivateFile(configFile, `${JSON.stringify(config, null, 2)}\n`);
  return signer;
}

/**
 * Opens the ingest key: the software key at `keyFile` when given (it must exist), else the key DIR/ingest-key.json
 * names, else an existing DIR/keys/ingest.pem (data directories from before `init`). INGEST_KEY_MISSING (with the `stele ingest init` to run) when there is none; KEY_ / TOKEN errors pass through.
 */
export async function openIngestKey(dataDir: string, keyFile?: string): Promise<IngestSigner> {
  if (keyFile !== undefined) {
    try {
      return await loadSoftwareSigner(keyFile);
    } catch (err) {
      if ((err as { code?: string }).code === 'KEY_FILE_MISSING') {
        throw new IngestError('INGEST_KEY_MISSING', `no ingest key at ${keyFile}: check --key, or make one with \`stele ingest init --data ${dataDir} --key ${keyFile}\``, { cause: err, where: { path: keyFile } });
      }
      throw err;
    }
  }
  const configFile = keyConfigPath(dataDir);
  let text: string;
  try {
    text = await readFile(configFile, 'utf8');
  } catch (cause) {
    // A data directory from before `init` recorded its key: its existing key file (never a new one).
    const legacy = join(dataDir, 'keys', 'ingest.pem');
    if (await exists(legacy)) return loadSoftwareSigner(legacy);
    throw new IngestError('INGEST_KEY_MISSING', `no ingest key in ${dataDir}: make one with \`stele ingest init --data ${dataDir}\` (once; its key id goes into the trust policy)`, { cause, where: { file: configFile } });
  }
  let config: IngestKeyConfig;
  try {
    config = JSON.parse(text) as IngestKeyConfig;
    if (config.backend !== 'software' && config.backend !== 'pkcs11') throw new TypeError('backend');
  } catch (cause) {
    throw new IngestError('INGEST_KEY_MISSING', `${configFile} is not an ingest key config`, { cause, where: { file: configFile } });
  }
  if (config.backend === 'software') return loadSoftwareSigner(config.path);
  return Pkcs11Signer.open(config.pkcs11);
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
