/** The signer named by the config's `key`: a software key file, or a key on a PKCS#11 token (TPM, SE, HSM). */
import { readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Signer } from '@stele/core';
import { KeyError, loadSoftwareSigner, Pkcs11Signer, type Pkcs11SignerOptions } from '@stele/device';
import type { KeyConfig } from '../config/config.ts';

export type ClosableSigner = Signer & { close?: () => Promise<void> };

export interface OpenSignerOptions {
  /** Environment a `pinEnv` PIN is read from. Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Test seam for the PKCS#11 signer. */
  pkcs11?: Pkcs11SignerOptions;
  /** Called with a KEY_FILE_MODE warning (software key readable by others). */
  onWarning?: (warning: Error) => void;
}

/**
 * Opens the configured key. Never creates one: a gateway's key is made once by `stele gateway provision` and
 * enrolled; a new key here would sign readings ingest does not know. Errors are @stele/device's KeyError /
 * TokenError codes (KEY_FILE_MISSING, KEY_PIN_INCORRECT, KEY_TOKEN_MISSING, ...), passed through.
 */
export async function openSigner(key: KeyConfig, options: OpenSignerOptions = {}): Promise<ClosableSigner> {
  // A secret readable by any user of the machine is refused, not warned about (issue #9): the fix is one chmod.
  if (key.backend === 'software') await refuseOpenToOthers(key.path, 'key file');
  else if ('file' in key.pin) await refuseOpenToOthers(key.pin.file, 'PIN file');
  if (key.backend === 'software') {
    const signer = await loadSoftwareSigner(key.path, options.onWarning === undefined ? {} : { onWarning: options.onWarning });
    const latencyFile = (options.env ?? process.env).STELE_SIM_SIGN_LATENCY_FILE;
    return latencyFile === undefined || latencyFile === '' ? signer : withSimulatedLatency(signer, latencyFile);
  }
  return Pkcs11Signer.open(
    {
      backend: key.kind,
      module: key.module,
      tokenLabel: key.token,
      pin: key.pin,
      ...(key.keyLabel === undefined ? {} : { keyLabel: key.keyLabel }),
      ...(key.keyId === undefined ? {} : { keyId: key.keyId }),
    },
    { ...options.pkcs11, ...(options.env === undefined ? {} : { env: options.env }) },
  );
}

/**
 * `stele sim`'s slow secure element (docs/simulator.md, fault `slow-signer`), set only by the sim through the
 * environment variable STELE_SIM_SIGN_LATENCY_FILE: each signature of the software key waits the milliseconds
 * written in that file (re-read at most every 100 ms; 0 or unreadable: no wait) before the real signing, as a
 * secure element on a slow bus does. The agent measures that latency and signs device-level batches (FORMAT §3.1).
 */
function withSimulatedLatency(signer: ClosableSigner, file: string): ClosableSigner {
  let latencyMs = 0;
  let readAt = Number.NEGATIVE_INFINITY;
  const current = () => {
    const t = performance.now();
    if (t - readAt >= 100) {
      readAt = t;
      try {
        const v = Number(readFileSync(file, 'utf8').trim());
        latencyMs = Number.isFinite(v) && v > 0 ? Math.min(v, 60_000) : 0;
      } catch {
        latencyMs = 0;
      }
    }
    return latencyMs;
  };
  return {
    algorithm: signer.algorithm,
    keyId: signer.keyId,
    publicKey: signer.publicKey,
    backend: signer.backend,
    async sign(message: Uint8Array): Promise<Uint8Array> {
      const ms = current();
      if (ms > 0) await sleep(ms);
      return signer.sign(message);
    },
    ...(signer.close === undefined ? {} : { close: () => signer.close!() }),
  };
}

/** KEY_FILE_MODE when `path` grants anything to others (mode & 0o007); a missing file is left to the loader. */
async function refuseOpenToOthers(path: string, what: string): Promise<void> {
  if (process.platform === 'win32') return;
  let mode: number;
  try {
    mode = (await stat(path)).mode & 0o777;
  } catch {
    return;
  }
  if ((mode & 0o007) !== 0) {
    throw new KeyError('KEY_FILE_MODE', `the ${what} ${path} is open to every user of this machine (mode ${mode.toString(8).padStart(3, '0')}): refused; fix: \`chmod o-rwx ${path}\` (0600, or 0640 root:stele)`, {
      where: { path, mode },
    });
  }
}

/** Fix to try for a key error code (doctor and `gateway run` print it). */
export function keyFix(code: string | undefined): string {
  switch (code) {
    case 'KEY_FILE_MISSING':
      return 'no key yet: run `stele gateway provision` (and enrol the gateway), or correct key.software.path';
    case 'KEY_FILE_INVALID':
      return 'the key file is not a P-256 PKCS#8 PEM key: restore the provisioned key file';
    case 'KEY_FILE_MODE':
      return 'the key or PIN file is readable by other users: `sudo chmod 600 FILE` (or 0640 with owner root, group stele); a key that was exposed should be rotated (docs/keys.md)';
    case 'KEY_PIN_FILE_MODE':
      return 'the PIN file is readable by other users: `sudo chmod 600 FILE` (owned by the stele user), then restart';
    case 'KEY_FILE_IO':
      return 'the service user cannot read the key file: `sudo chown stele: FILE && sudo chmod 600 FILE`';
    case 'KEY_BACKEND_UNAVAILABLE':
      return 'the pkcs11js module is not built: install build-essential and python3, then `npm rebuild pkcs11js`';
    case 'KEY_MODULE_MISSING':
      return 'key.pkcs11.module does not exist or does not load: install the token library (e.g. `sudo apt install libtpm2-pkcs11-1`) and check the path';
    case 'KEY_TOKEN_MISSING':
      return 'no token with that label: list tokens with `pkcs11-tool --module MODULE -L`, or run `stele gateway provision`';
    case 'KEY_PIN_UNAVAILABLE':
      return 'the PIN file or variable named in the config is missing or empty: create it (mode 0600, owned by the stele user)';
    case 'KEY_PIN_INCORRECT':
      return 'the token refused the PIN: correct the PIN file; do not retry blindly, the token locks after a few wrong PINs';
    case 'KEY_PIN_LOCKED':
      return 'the token locked the user PIN: an officer must reset it with the SO PIN';
    case 'KEY_NOT_FOUND':
      return 'no key with that label or id on the token: check key.pkcs11.keyLabel / keyId, or run `stele gateway provision`';
    case 'KEY_AMBIGUOUS':
      return 'several keys carry that label: set key.pkcs11.keyId to the one enrolled';
    default:
      return 'see the error above; `stele gateway doctor` checks the key backend';
  }
}
