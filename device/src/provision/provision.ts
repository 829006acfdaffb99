/**
 * `stele gateway provision`: make the device key inside the chosen backend and write a countersigned enrolment
 * request for ingest, with no network (file on USB + a QR-sized summary). See docs/keys.md.
 */
import { mkdir, open, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { toBase64Url } from '@stele/core';
import type { Signer } from '@stele/core';
import { checkDeviceId } from '../enrolment.ts';
import { DEFAULT_KEY_LABEL, Pkcs11Signer, type Pkcs11SignerConfig, type Pkcs11SignerOptions } from '../pkcs11/signer.ts';
import { createSoftwareKey, loadSoftwareSigner } from '../software-signer.ts';
import { readPin } from '../pkcs11/pin.ts';
import { ProvisionError } from './errors.ts';
import { certifyTpmKey, TpmCertifyError } from './tpm-certify.ts';
import { readGatewayIdentity, readTpmAttestation, type Attestation, type GatewayIdentity } from './identity.ts';
import { enrolmentSummary, ENROLMENT_REQUEST_VERSION, signEnrolmentRequest, type EnrolmentRequest, type InstrumentEntry } from '@stele/core/enrolment';

/** Where the device key is made: a software key file, or a PKCS#11 token (SoftHSM, TPM, secure element, HSM). */
export type ProvisionBackend =
  | { kind: 'software'; keyFile: string }
  | { kind: 'pkcs11'; config: Pkcs11SignerConfig; options?: Pkcs11SignerOptions };

export interface ProvisionOptions {
  backend: ProvisionBackend;
  deviceId: string;
  site: string;
  instruments: InstrumentEntry[];
  /** The installer's own software key (PKCS#8 PEM). */
  installerKeyFile: string;
  /** Create the installer key when the file does not exist. Default false (KEY_FILE_MISSING). */
  createInstallerKey?: boolean;
  installerName?: string;
  /** Folder for the request, its summary and a readable JSON copy; created if missing. */
  outDir: string;
  /** Default: now. */
  now?: Date;
  /** Default: read from this machine (hostname, serial, MACs). */
  gateway?: GatewayIdentity;
  /**
   * Default: for `tpm`, a TPM2_Certify of the key by an AK under the EK (tpm-certify.ts), or, when that fails, the
   * EK certificate alone with the reason (unless `requireAttestation`); `none` for other backends.
   */
  attestation?: Attestation;
  /** TPM backend: fail (TPM_CERTIFY_FAILED) rather than write a request without a TPM2_Certify. Default false. */
  requireAttestation?: boolean;
  /** TPM backend: CA certificates (DER) above the EK certificate's issuer, carried in the attestation. */
  tpmIntermediates?: Uint8Array[];
}

export interface ProvisionResult {
  /** The countersigned request (the file to carry to ingest). */
  requestFile: string;
  /** The QR-sized summary text, also written to `summaryFile`. */
  summary: string;
  summaryFile: string;
  /** Readable copy of the request (not signed: the .cose file is the evidence). */
  jsonFile: string;
  /** Non-secret key config for the agent (module, token, key label and id, PIN source); PKCS#11 only. */
  keyConfigFile: string | undefined;
  request: EnrolmentRequest;
  fileBytes: Uint8Array;
}

/** Makes the key, writes `<deviceId>.enrol.cose`, `.enrol.txt`, `.enrol.json` (and `.key.json` for PKCS#11) in outDir. */
export async function provisionGateway(options: ProvisionOptions): Promise<ProvisionResult> {
  checkDeviceId(options.deviceId);
  if (typeof options.site !== 'string' || options.site === '') throw new TypeError('site must be a non-empty string');
  if (!Array.isArray(options.instruments)) throw new TypeError('instruments must be an array');
  for (const i of options.instruments) {
    if (typeof i?.id !== 'string' || i.id === '') throw new TypeError('every instrument needs an id');
  }
  await mkdir(options.outDir, { recursive: true });
  const base = join(options.outDir, `${options.deviceId}.enrol`);
  const requestFile = `${base}.cose`;
  await refuseExisting(requestFile);

  const installer = await loadInstaller(options);
  let device: Signer & { close?(): Promise<void> };
  let keyStore: EnrolmentRequest['keyStore'];
  let keyConfig: Pkcs11SignerConfig | undefined;
  if (options.backend.kind === 'software') {
    device = await createSoftwareKey(options.backend.keyFile);
    keyStore = { store: 'software', note: 'PKCS#8 file on the gateway: the key can be copied' };
  } else {
    const p11 = await Pkcs11Signer.generate(options.backend.config, options.backend.options);
    device = p11;
    keyConfig = { ...options.backend.config, keyId: p11.tokenKeyId };
    const token = await p11.describeToken();
    const protection = await p11.describeKeyProtection();
    keyStore = {
      store: 'pkcs11',
      library: token.library,
      libraryManufacturer: token.libraryManufacturer,
      tokenLabel: token.tokenLabel,
      tokenManufacturer: token.tokenManufacturer,
      tokenModel: token.tokenModel,
      tokenSerial: token.tokenSerial,
      keyId: p11.tokenKeyId,
      ...Object.fromEntries(Object.entries(protection).filter(([k, v]) => k !== 'backend' && v !== undefined)),
    } as EnrolmentRequest['keyStore'];
  }
  try {
    const attestation =
      options.attestation ??
      (device.backend === 'tpm' && options.backend.kind === 'pkcs11'
        ? await attestTpmKey(options.backend.config, device.publicKey, options)
        : { kind: 'none' as const, reason: `the ${device.backend} backend offers no attestation` });
    const request: EnrolmentRequest = {
      version: ENROLMENT_REQUEST_VERSION,
      deviceId: options.deviceId,
      publicKey: toBase64Url(device.publicKey),
      kid: toBase64Url(device.keyId),
      keyBackend: device.backend,
      keyStore,
      attestation,
      gateway: options.gateway ?? (await readGatewayIdentity()),
      site: options.site,
      instruments: options.instruments,
      installer: {
        ...(options.installerName === undefined ? {} : { name: options.installerName }),
        publicKey: toBase64Url(installer.publicKey),
        kid: toBase64Url(installer.keyId),
      },
      createdAt: (options.now ?? new Date()).toISOString(),
    };
    const fileBytes = await signEnrolmentRequest(request, device, installer);
    const summary = enrolmentSummary(request, fileBytes);
    const summaryFile = `${base}.txt`;
    const jsonFile = `${base}.json`;
    const keyConfigFile = keyConfig === undefined ? undefined : join(options.outDir, `${options.deviceId}.key.json`);
    try {
      await writeAtomically(requestFile, fileBytes);
      await writeFile(summaryFile, `${summary}\n`);
      await writeFile(jsonFile, `${JSON.stringify(request, null, 2)}\n`);
      if (keyConfigFile !== undefined) await writeFile(keyConfigFile, `${JSON.stringify(keyConfig, null, 2)}\n`);
    } catch (cause) {
      throw new ProvisionError('PROVISION_IO', 'cannot write the enrolment request', { cause, where: { outDir: options.outDir } });
    }
    return { requestFile, summary, summaryFile, jsonFile, keyConfigFile, request, fileBytes };
  } finally {
    await device.close?.();
  }
}

/** TPM2_Certify of the new key (tpm-certify.ts); on failure the EK certificate alone, saying why, unless required. */
async function attestTpmKey(config: Pkcs11SignerConfig, devicePoint: Uint8Array, options: ProvisionOptions): Promise<Attestation> {
  try {
    return await certifyTpmKey({
      tokenLabel: config.tokenLabel,
      keyLabel: config.keyLabel ?? DEFAULT_KEY_LABEL,
      pin: await readPin(config.pin, options.backend.kind === 'pkcs11' ? options.backend.options?.env : undefined),
      devicePoint,
      ...(options.tpmIntermediates === undefined ? {} : { intermediates: options.tpmIntermediates }),
    });
  } catch (err) {
    if (options.requireAttestation === true || !(err instanceof TpmCertifyError)) throw err;
    const fallback = await readTpmAttestation();
    if (fallback.kind === 'tpm-ek-certificate') fallback.note = `${fallback.note}; TPM2_Certify not made: ${err.message}`.slice(0, 500);
    else if (fallback.kind === 'none') fallback.reason = `${fallback.reason}; TPM2_Certify not made: ${err.message}`.slice(0, 500);
    return fallback;
  }
}

async function loadInstaller(options: ProvisionOptions): Promise<Signer> {
  try {
    return await loadSoftwareSigner(options.installerKeyFile);
  } catch (err) {
    if (options.createInstallerKey === true && (err as { code?: string }).code === 'KEY_FILE_MISSING') return createSoftwareKey(options.installerKeyFile);
    throw err;
  }
}

async function refuseExisting(path: string): Promise<void> {
  try {
    const h = await open(path, 'r');
    await h.close();
  } catch {
    return;
  }
  throw new ProvisionError('PROVISION_OUTPUT_EXISTS', 'an enrolment request for this device is already in the output folder', { where: { path } });
}

async function writeAtomically(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  const h = await open(tmp, 'wx', 0o644);
  try {
    await h.writeFile(bytes);
    await h.sync();
  } finally {
    await h.close();
  }
  await rename(tmp, path);
}
