/**
 * TPM 2.0 key attestation at provisioning (FORMAT.md §14.5, docs/keys.md): proves that the device key tpm2-pkcs11
 * just made is a non-duplicable key of this TPM, certified by an attestation key (AK) under the TPM's
 * endorsement key (EK), whose certificate the TPM manufacturer (or swtpm's local CA) issued.
 *
 * With tpm2-tools (TCTI from TPM2TOOLS_TCTI; gateways: /dev/tpmrm0) and tpm2_ptool (store from TPM2_PKCS11_STORE):
 * 1. the EK certificate from NV (RSA 2048 EK, TCG EK Credential Profile index 0x01c00002);
 * 2. `tpm2_createek -G rsa` (the same key: primaries are derived from the endorsement seed and the template) and
 *    `tpm2_createak` (restricted ECDSA P-256 signing key, child of the EK);
 * 3. credential activation: TPM2_MakeCredential (in software, to the EK public from the certificate's TPM) and
 *    TPM2_ActivateCredential by the TPM under the EK's policy (PolicySecret of the endorsement hierarchy). Only a
 *    TPM holding both that EK and that AK recovers the secret: the check no offline verifier can make;
 * 4. the key's TPM blobs from the tpm2-pkcs11 store (`tpm2_ptool export --format tpm2`, with the user PIN: it
 *    prints the key's object auth), `tpm2_load` under the token's persistent primary, `tpm2_certify` by the AK;
 * 5. core's checkTpm2Certify on the result before anything is written.
 *
 * Every file lives in a 0700 temp dir removed at the end; the TPM's transient objects die with each tool's
 * connection to the resource manager. The PIN is passed to tpm2_ptool on its command line (it has no other way):
 * visible to other local users through /proc while it runs, so provision on a gateway no one else is logged in to.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  equalBytes,
  toBase64Url,
  toHex,
  checkTpm2Certify,
  TPM2_CERTIFY_KIND,
  unwrapTpm2bPublic,
  type Tpm2CertifyAttestation,
  SteleError,
} from '@stele/core';

const run = promisify(execFile);

/** The TCG EK Credential Profile NV index of the RSA 2048 EK certificate, and the EK it certifies. */
const RSA_EK_CERT_INDEX = '0x1c00002';

export type TpmCertifyErrorCode = 'TPM_CERTIFY_FAILED';
export class TpmCertifyError extends SteleError<TpmCertifyErrorCode> {}

export interface TpmCertifyOptions {
  /** tpm2-pkcs11 token and key labels of the device key. */
  tokenLabel: string;
  keyLabel: string;
  /** The token's user PIN. */
  pin: string;
  /** SEC1 point of the device key: the certified key must be it. */
  devicePoint: Uint8Array;
  /** CA certificates (DER) above the EK certificate's issuer to carry (intermediates); default none. */
  intermediates?: Uint8Array[];
  env?: NodeJS.ProcessEnv;
}

/** Makes and checks a `tpm2-certify` attestation of the device key; TpmCertifyError TPM_CERTIFY_FAILED naming the step. */
export async function certifyTpmKey(options: TpmCertifyOptions): Promise<Tpm2CertifyAttestation> {
  const env = options.env ?? process.env;
  const dir = await mkdtemp(join(tmpdir(), 'stele-tpm-certify-'));
  const f = (name: string) => join(dir, name);
  const step = async (what: string, cmd: string, args: string[]): Promise<string> => {
    try {
      return (await run(cmd, args, { env, timeout: 60_000 })).stdout;
    } catch (cause) {
      const stderr = String((cause as { stderr?: unknown }).stderr ?? '').trim().split('\n').slice(-2).join(' | ');
      throw new TpmCertifyError('TPM_CERTIFY_FAILED', `TPM attestation: ${what} failed${stderr === '' ? '' : `: ${stderr}`}`, { cause, where: { step: what, command: cmd } });
    }
  };
  try {
    await step('reading the EK certificate', 'tpm2_nvread', [RSA_EK_CERT_INDEX, '-o', f('ekcert.bin')]);
    const ekCert = trimDer(new Uint8Array(await readFile(f('ekcert.bin'))));

    await step('creating the EK', 'tpm2_createek', ['-c', f('ek.ctx'), '-G', 'rsa', '-u', f('ek.pub')]);
    await step('creating the attestation key', 'tpm2_createak', ['-C', f('ek.ctx'), '-c', f('ak.ctx'), '-G', 'ecc256', '-g', 'sha256', '-s', 'ecdsa', '-u', f('ak.pub'), '-n', f('ak.name')]);

    // Credential activation: the AK is in the TPM that holds the EK.
    const secret = randomBytes(32);
    await writeFile(f('secret.bin'), secret, { mode: 0o600 });
    const akName = toHex(new Uint8Array(await readFile(f('ak.name'))));
    await step('making the credential', 'tpm2_makecredential', ['-T', 'none', '-u', f('ek.pub'), '-s', f('secret.bin'), '-n', akName, '-o', f('cred.bin')]);
    await step('starting the EK policy session', 'tpm2_startauthsession', ['--policy-session', '-S', f('session.ctx')]);
    await step('satisfying the EK policy', 'tpm2_policysecret', ['-S', f('session.ctx'), '-c', 'e']);
    await step('activating the credential', 'tpm2_activatecredential', ['-c', f('ak.ctx'), '-C', f('ek.ctx'), '-i', f('cred.bin'), '-o', f('recovered.bin'), '-P', `session:${f('session.ctx')}`]);
    await step('closing the EK policy session', 'tpm2_flushcontext', [f('session.ctx')]);
    if (!equalBytes(new Uint8Array(await readFile(f('recovered.bin'))), secret)) {
      throw new TpmCertifyError('TPM_CERTIFY_FAILED', 'TPM attestation: the TPM did not recover the credential (the AK is not under this EK)', { where: { step: 'activating the credential' } });
    }

    // The device key as the TPM holds it, and its certification by the AK.
    const exported = await step('exporting the key blobs from the tpm2-pkcs11 store', 'tpm2_ptool', [
      'export',
      '--label',
      options.tokenLabel,
      '--key-label',
      options.keyLabel,
      '--userpin',
      options.pin,
      '--format',
      'tpm2',
      '--output-prefix',
      f('key'),
    ]);
    const auth = /^object-auth:\s*(\S+)\s*$/m.exec(exported)?.[1];
    if (auth === undefined) throw new TpmCertifyError('TPM_CERTIFY_FAILED', 'TPM attestation: tpm2_ptool export printed no object-auth', { where: { step: 'export' } });
    const primaries = await step('listing the tpm2-pkcs11 primary', 'tpm2_ptool', ['listprimaries']);
    const handle = /esys-tr:\s*(81[0-9a-f]{6})/i.exec(primaries)?.[1];
    if (handle === undefined) throw new TpmCertifyError('TPM_CERTIFY_FAILED', 'TPM attestation: the tpm2-pkcs11 store has no persistent primary key', { where: { step: 'listprimaries' } });
    await step('loading the key', 'tpm2_load', ['-C', `0x${handle}`, '-u', f('key.pub'), '-r', f('key.priv'), '-c', f('key.ctx')]);
    await step('certifying the key', 'tpm2_certify', ['-C', f('ak.ctx'), '-c', f('key.ctx'), '-P', auth, '-g', 'sha256', '-o', f('attest.bin'), '-s', f('sig.bin')]);

    const attestation: Tpm2CertifyAttestation = {
      kind: TPM2_CERTIFY_KIND,
      ekCertificate: { nvIndex: RSA_EK_CERT_INDEX, der: toBase64Url(ekCert) },
      intermediates: (options.intermediates ?? []).map((c) => toBase64Url(c)),
      ekPublic: toBase64Url(unwrapTpm2bPublic(new Uint8Array(await readFile(f('ek.pub'))))),
      akPublic: toBase64Url(unwrapTpm2bPublic(new Uint8Array(await readFile(f('ak.pub'))))),
      keyPublic: toBase64Url(unwrapTpm2bPublic(new Uint8Array(await readFile(f('key.pub'))))),
      attest: toBase64Url(new Uint8Array(await readFile(f('attest.bin')))),
      signature: toBase64Url(new Uint8Array(await readFile(f('sig.bin')))),
    };
    try {
      await checkTpm2Certify(attestation, options.devicePoint);
    } catch (cause) {
      throw new TpmCertifyError('TPM_CERTIFY_FAILED', `TPM attestation: the evidence does not check (${(cause as Error).message})`, { cause, where: { step: 'check' } });
    }
    return attestation;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** NV areas are often larger than the certificate: keep the DER SEQUENCE only (X.690 §8.1.3 lengths). */
export function trimDer(bytes: Uint8Array): Uint8Array {
  if (bytes.length < 2 || bytes[0] !== 0x30) return bytes;
  const first = bytes[1]!;
  if (first < 0x80) return bytes.subarray(0, Math.min(bytes.length, 2 + first));
  const n = first & 0x7f;
  if (n === 0 || n > 4 || bytes.length < 2 + n) return bytes;
  let len = 0;
  for (let i = 0; i < n; i++) len = len * 256 + bytes[2 + i]!;
  return bytes.subarray(0, Math.min(bytes.length, 2 + n + len));
}
