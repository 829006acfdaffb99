/**
 * The signer conformance suite on a TPM 2.0: swtpm + tpm2-abrmd on a private session D-Bus + tpm2-pkcs11
 * (test/scripts/swtpm-up.sh, DEPENDENCIES.md §6). Runs only with STELE_TPM=1 (`npm run test:tpm`); skipped with
 * the reason otherwise. With STELE_TPM=1 a missing package is a failure, not a skip.
 *
 * Token removal: tpm2-abrmd is stopped (the tabrmd TCTI then fails: CKR_GENERAL_ERROR from tpm2-pkcs11, as a
 * vanished /dev/tpmrm0 would) and started again; the signer's reconnect (C_Finalize + C_Initialize) picks it up.
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { verifyTpm2Certify } from '@stele/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyEnrolmentRequest } from '@stele/core/enrolment';
import { Pkcs11Signer, provisionGateway } from '@stele/device';
import { certifyTpmKey } from '@stele/device';
import { signerConformanceSuite } from '@stele/device/testing';
import { startSwTpm, TPM2_PKCS11_MODULE, tpmSkipReason, type SwTpm } from './helpers.ts';

const skip = await tpmSkipReason();
const FAST = { reconnectDelayMs: 50, reconnectMaxDelayMs: 500, timeoutMs: 20_000 };

// One TPM for the whole file: the tabrmd TCTI talks D-Bus through GLib, which keeps one session-bus connection per
// process, so a second swtpm + abrmd on another private bus is unreachable from this process.
let tpmStarted: Promise<SwTpm> | undefined;
const sharedTpm = (): Promise<SwTpm> => (tpmStarted ??= startSwTpm());
afterAll(async () => {
  if (tpmStarted !== undefined) await (await tpmStarted).cleanup();
});

signerConformanceSuite(
  'TPM 2.0 (swtpm + tpm2-pkcs11)',
  () => {
    let tpm: SwTpm | undefined;
    let keyId = '';
    const config = () => ({
      backend: 'tpm' as const,
      module: TPM2_PKCS11_MODULE!,
      tokenLabel: tpm!.label,
      pin: { file: tpm!.pinFile },
      keyLabel: 'stele-suite',
      keyId,
    });
    return {
      async setup() {
        tpm = await sharedTpm();
        const { keyId: _unused, ...withoutId } = config();
        const made = await Pkcs11Signer.generate(withoutId, FAST);
        keyId = made.tokenKeyId;
        await made.close();
      },
      open: () => Pkcs11Signer.open(config(), FAST),
      openWithWrongPin: () => Pkcs11Signer.open({ ...config(), pin: { env: 'STELE_TEST_WRONG_PIN' } }, { ...FAST, env: { STELE_TEST_WRONG_PIN: '11112222' } }),
      openWithMissingToken: () => Pkcs11Signer.open({ ...config(), tokenLabel: 'no-such-token' }, FAST),
      openWithMissingModule: () => Pkcs11Signer.open({ ...config(), module: '/nonexistent/libtpm2_pkcs11.so' }, FAST),
      removeToken: () => tpm!.stopResourceManager(),
      restoreToken: () => tpm!.startResourceManager(),
      rateSamples: 300,
    };
  },
  skip === undefined ? {} : { skip },
);

describe.skipIf(skip !== undefined)(`provisioning on the TPM${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let tpm: SwTpm;
  beforeAll(async () => {
    tpm = await sharedTpm();
  });

  it('makes the key in the TPM and certifies it: TPM2_Certify by an AK under the EK whose certificate chains to the swtpm local CA', async () => {
    const result = await provisionGateway({
      backend: { kind: 'pkcs11', config: { backend: 'tpm', module: TPM2_PKCS11_MODULE!, tokenLabel: tpm.label, pin: { file: tpm.pinFile } } },
      deviceId: 'gw-tpm-1',
      site: 'cold room 3',
      instruments: [{ id: 'th-1', kind: 'modbus-th' }],
      installerKeyFile: join(tpm.dir, 'installer.pem'),
      createInstallerKey: true,
      outDir: join(tpm.dir, 'usb'),
    });
    const verified = await verifyEnrolmentRequest(result.fileBytes);
    expect(verified.record.keyBackend).toBe('tpm');
    expect(verified.request.keyStore).toMatchObject({ sensitive: true, extractable: false, neverExtractable: true, tokenManufacturer: 'IBM' });
    const att = verified.request.attestation;
    expect(att.kind).toBe('tpm2-certify');
    if (att.kind !== 'tpm2-certify') return;
    const cert = new X509Certificate(Buffer.from(att.ekCertificate.der, 'base64url'));
    expect(cert.issuer).toMatch(/swtpm-localca/);
    // The local CA swtpm_setup used is the root a trust policy pins for this test TPM; its root CA works through it.
    const localCa = new X509Certificate(await readFile(join(tpm.dir, 'localca', 'issuercert.pem'))).raw;
    const rootCa = new X509Certificate(await readFile(join(tpm.dir, 'localca', 'swtpm-localca-rootca-cert.pem'))).raw;
    const point = Buffer.from(verified.record.publicKey, 'base64url');
    expect((await verifyTpm2Certify(att, point, [new Uint8Array(localCa)])).root).toBe(0);
    expect(await verifyTpm2Certify(att, point, [new Uint8Array(rootCa)]).catch((e: { code?: string }) => e.code)).toBe('ATTESTATION_UNTRUSTED_ROOT');
  });

  it('refuses to certify a key it cannot find, or a key that is not the device key, with TPM_CERTIFY_FAILED naming the step', async () => {
    const pin = (await readFile(tpm.pinFile, 'utf8')).trim();
    const point = new Uint8Array(65).fill(1);
    const missing = await certifyTpmKey({ tokenLabel: tpm.label, keyLabel: 'no-such-key', pin, devicePoint: point }).catch((e: { code?: string; where?: { step?: string } }) => e);
    expect(missing).toMatchObject({ code: 'TPM_CERTIFY_FAILED', where: { step: 'exporting the key blobs from the tpm2-pkcs11 store' } });
    // The key of gw-tpm-1 (made above) certified, but claimed for another point: core's check refuses it.
    const other = await certifyTpmKey({ tokenLabel: tpm.label, keyLabel: 'stele-device', pin, devicePoint: point }).catch((e: { code?: string; where?: { step?: string }; cause?: { code?: string } }) => e);
    expect(other).toMatchObject({ code: 'TPM_CERTIFY_FAILED', where: { step: 'check' }, cause: { code: 'ATTESTATION_KEY_MISMATCH' } });
  });

  it('with --tpm-ek-chain the request carries the intermediate, and the root CA is enough', async () => {
    const result = await provisionGateway({
      backend: { kind: 'pkcs11', config: { backend: 'tpm', module: TPM2_PKCS11_MODULE!, tokenLabel: tpm.label, pin: { file: tpm.pinFile }, keyLabel: 'gw-tpm-2' } },
      deviceId: 'gw-tpm-2',
      site: 'cold room 4',
      instruments: [{ id: 'th-1', kind: 'modbus-th' }],
      installerKeyFile: join(tpm.dir, 'installer.pem'),
      createInstallerKey: true,
      outDir: join(tpm.dir, 'usb2'),
      requireAttestation: true,
      tpmIntermediates: [new Uint8Array(new X509Certificate(await readFile(join(tpm.dir, 'localca', 'issuercert.pem'))).raw)],
    });
    const att = result.request.attestation;
    if (att.kind !== 'tpm2-certify') throw new Error(`expected tpm2-certify, got ${att.kind}`);
    const rootCa = new X509Certificate(await readFile(join(tpm.dir, 'localca', 'swtpm-localca-rootca-cert.pem'))).raw;
    expect((await verifyTpm2Certify(att, Buffer.from(result.request.publicKey, 'base64url'), [new Uint8Array(rootCa)])).root).toBe(0);
  });
});
