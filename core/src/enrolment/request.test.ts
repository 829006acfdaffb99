import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { toBase64Url } from '../bytes.ts';
import { testSigner } from '../verify/test-bundle.ts';
import type { Tpm2CertifyAttestation } from '../tpm2/attestation.ts';
import { signEnrolmentRequest, verifyEnrolmentRequest, type Attestation, type EnrolmentRequest } from './request.ts';
import { EnrolmentError } from './record.ts';

const fixture = JSON.parse(readFileSync(new URL('../../../test/fixtures/tpm2/certify.json', import.meta.url), 'utf8')) as { attestation: Tpm2CertifyAttestation };

async function requestWith(attestation: Attestation, keyBackend: EnrolmentRequest['keyBackend']) {
  const device = testSigner('request-test-device', keyBackend);
  const installer = testSigner('request-test-installer');
  const request: EnrolmentRequest = {
    version: 1,
    deviceId: 'gw-att-1',
    publicKey: toBase64Url(device.publicKey),
    kid: toBase64Url(device.keyId),
    keyBackend,
    keyStore: { store: 'test' },
    attestation,
    gateway: { hostname: 'gw', serial: { source: 'none', value: '' }, macs: [] },
    site: 'site',
    instruments: [],
    installer: { publicKey: toBase64Url(installer.publicKey), kid: toBase64Url(installer.keyId) },
    createdAt: '2026-12-03T07:00:00.000Z',
  };
  return signEnrolmentRequest(request, device, installer);
}

async function failure(p: Promise<unknown>): Promise<{ code?: string; where?: Record<string, unknown> }> {
  try {
    await p;
  } catch (e) {
    if (e instanceof EnrolmentError) return { code: e.code, ...(e.where === undefined ? {} : { where: e.where }) };
    throw e;
  }
  return {};
}

describe('an enrolment request with a TPM2_Certify attestation', () => {
  describe('when the attestation certifies another key than the request names', () => {
    it('rejects with ENROLMENT_ATTESTATION_INVALID (ATTESTATION_KEY_MISMATCH)', async () => {
      const f = await failure(verifyEnrolmentRequest(await requestWith(fixture.attestation, 'tpm')));
      expect(f.code).toBe('ENROLMENT_ATTESTATION_INVALID');
      expect(f.where?.code).toBe('ATTESTATION_KEY_MISMATCH');
    });
  });
  describe('when the backend is not tpm', () => {
    it('rejects with ENROLMENT_ATTESTATION_INVALID', async () => {
      expect((await failure(verifyEnrolmentRequest(await requestWith(fixture.attestation, 'pkcs11')))).code).toBe('ENROLMENT_ATTESTATION_INVALID');
    });
  });
  describe('when TPMS_ATTEST is tampered with', () => {
    it('rejects with ENROLMENT_ATTESTATION_INVALID (ATTESTATION_FORMAT_ERROR for a bad magic)', async () => {
      const attest = Buffer.from(fixture.attestation.attest, 'base64url');
      attest[0] = 0;
      const f = await failure(verifyEnrolmentRequest(await requestWith({ ...fixture.attestation, attest: attest.toString('base64url') }, 'tpm')));
      expect(f.code).toBe('ENROLMENT_ATTESTATION_INVALID');
      expect(f.where?.code).toBe('ATTESTATION_FORMAT_ERROR');
    });
  });
  it('accepts a plain declaration ("none")', async () => {
    const v = await verifyEnrolmentRequest(await requestWith({ kind: 'none', reason: 'software key' }, 'software'));
    expect(v.record.keyBackend).toBe('software');
  });
});
