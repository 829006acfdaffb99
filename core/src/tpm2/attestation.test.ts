import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { fromBase64Url, toBase64Url } from '../bytes.ts';
import { checkTpm2Certify, chainToRoot, verifyTpm2Certify, type Tpm2CertifyAttestation } from './attestation.ts';
import { parseCertifyAttest, parsePublic } from './structures.ts';
import { parseCertificate, verifyCertificateSignature } from './x509.ts';

/** Captured from swtpm 0.7.1 + tpm2-tools 5.4 + tpm2-pkcs11 1.9 (test/fixtures/tpm2/SOURCE.md). */
const fixture = JSON.parse(readFileSync(new URL('../../../test/fixtures/tpm2/certify.json', import.meta.url), 'utf8')) as {
  attestation: Tpm2CertifyAttestation;
  devicePublicKey: string;
  localCa: string;
  rootCa: string;
};
const device = fromBase64Url(fixture.devicePublicKey);
const localCa = fromBase64Url(fixture.localCa);
const rootCa = fromBase64Url(fixture.rootCa);
const att = (): Tpm2CertifyAttestation => structuredClone(fixture.attestation);

async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string | undefined> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
}

/** Flips one bit of a base64url field at byte `at` (negative: from the end). */
function flip(text: string, at: number): string {
  const b = fromBase64Url(text);
  const i = at < 0 ? b.length + at : at;
  b[i] = b[i]! ^ 0x01;
  return toBase64Url(b);
}

describe('TPM2_Certify evidence from swtpm', () => {
  it('parses TPMS_ATTEST as a certify statement by TPM_GENERATED_VALUE', () => {
    const a = parseCertifyAttest(fromBase64Url(fixture.attestation.attest));
    expect(a.magic).toBe(0xff544347);
    expect(a.type).toBe(0x8017);
    expect(a.name.length).toBe(34);
  });

  it('verifies against the swtpm local CA that issued the EK certificate, and against its root through the intermediate', async () => {
    expect((await verifyTpm2Certify(att(), device, [localCa])).root).toBe(0);
    expect((await verifyTpm2Certify(att(), device, [rootCa, localCa])).root).toBe(1);
    expect((await verifyTpm2Certify(att(), device, [rootCa])).root).toBe(0);
    const noIntermediate = { ...att(), intermediates: [] };
    expect((await verifyTpm2Certify(noIntermediate, device, [localCa])).root).toBe(0);
  });

  it('checks the CA signatures (RSA PKCS#1 v1.5, SHA-256)', () => {
    const ek = parseCertificate(fromBase64Url(fixture.attestation.ekCertificate.der));
    const ca = parseCertificate(localCa);
    const root = parseCertificate(rootCa);
    expect(verifyCertificateSignature(ek, ca.publicKey)).toBe(true);
    expect(verifyCertificateSignature(ca, root.publicKey)).toBe(true);
    expect(verifyCertificateSignature(ek, root.publicKey)).toBe(false);
    expect(ca.isCa && root.isCa && !ek.isCa).toBe(true);
  });

  describe('when the certified key is another key', () => {
    it('rejects with ATTESTATION_KEY_MISMATCH', async () => {
      const other = new Uint8Array(device);
      other[64] = other[64]! ^ 1; // not even on the curve: the point compare fails first
      expect(await codeOf(checkTpm2Certify(att(), other))).toBe('ATTESTATION_KEY_MISMATCH');
      // keyPublic altered to hold another point: its name no longer matches the certified name.
      expect(await codeOf(checkTpm2Certify({ ...att(), keyPublic: flip(att().keyPublic, -1) }, device))).toBe('ATTESTATION_KEY_MISMATCH');
    });
  });

  describe('when the pinned CA is another CA', () => {
    it('rejects with ATTESTATION_UNTRUSTED_ROOT', async () => {
      const otherCa = parseCertificate(rootCa); // a real CA, but not the EK's issuer chain end when the intermediate is withheld
      const noIntermediate = { ...att(), intermediates: [] };
      expect(await codeOf(verifyTpm2Certify(noIntermediate, device, [otherCa.der]))).toBe('ATTESTATION_UNTRUSTED_ROOT');
      expect(await codeOf(verifyTpm2Certify(att(), device, []))).toBe('ATTESTATION_UNTRUSTED_ROOT');
    });
  });

  describe('when TPMS_ATTEST is tampered with', () => {
    it('rejects a changed byte with ATTESTATION_SIGNATURE_ERROR', async () => {
      // clock field: a byte no structural rule covers, only the AK signature.
      expect(await codeOf(checkTpm2Certify({ ...att(), attest: flip(att().attest, 50) }, device))).toBe('ATTESTATION_SIGNATURE_ERROR');
    });
    it('rejects a wrong magic or type with ATTESTATION_FORMAT_ERROR', async () => {
      expect(await codeOf(checkTpm2Certify({ ...att(), attest: flip(att().attest, 0) }, device))).toBe('ATTESTATION_FORMAT_ERROR');
      expect(await codeOf(checkTpm2Certify({ ...att(), attest: flip(att().attest, 5) }, device))).toBe('ATTESTATION_FORMAT_ERROR');
    });
    it('rejects a changed certified name with ATTESTATION_KEY_MISMATCH', async () => {
      expect(await codeOf(checkTpm2Certify({ ...att(), attest: flip(att().attest, -40) }, device))).toBe('ATTESTATION_KEY_MISMATCH');
    });
    it('rejects a changed signature with ATTESTATION_SIGNATURE_ERROR', async () => {
      expect(await codeOf(checkTpm2Certify({ ...att(), signature: flip(att().signature, 10) }, device))).toBe('ATTESTATION_SIGNATURE_ERROR');
    });
  });

  describe('when the parts do not belong together', () => {
    it('rejects an EK certificate of another key with ATTESTATION_EK_MISMATCH', async () => {
      const ekPublic = flip(att().ekPublic, -1); // another modulus: the certificate no longer certifies it
      // The qualified signer changes with the EK, so the signer check fails first; swap the order by using the
      // certificate of the intermediate CA (another RSA key) in place of the EK certificate.
      expect(await codeOf(checkTpm2Certify({ ...att(), ekPublic }, device))).toBe('ATTESTATION_SIGNATURE_ERROR');
      expect(await codeOf(checkTpm2Certify({ ...att(), ekCertificate: { nvIndex: '0x01c00002', der: fixture.localCa } }, device))).toBe('ATTESTATION_EK_MISMATCH');
    });
    it('rejects an AK that is not a restricted signing key with ATTESTATION_SIGNATURE_ERROR', async () => {
      const ak = fromBase64Url(att().akPublic);
      ak[5] = ak[5]! & ~0x01; // clear TPMA_OBJECT.restricted (bit 16)
      expect(parsePublic(ak).attributes & 0x10000).toBe(0);
      expect(await codeOf(checkTpm2Certify({ ...att(), akPublic: toBase64Url(ak) }, device))).toBe('ATTESTATION_SIGNATURE_ERROR');
    });
    it('rejects a broken intermediate link with ATTESTATION_CHAIN_ERROR', async () => {
      const checked = await checkTpm2Certify(att(), device);
      const badIntermediate = parseCertificate(rootCa); // a CA, but not the EK certificate's issuer
      expect(await codeOf(() => chainToRoot({ ...checked, intermediates: [badIntermediate] }, [rootCa]))).toBe('ATTESTATION_CHAIN_ERROR');
    });
    it('rejects unknown members and truncated structures with ATTESTATION_FORMAT_ERROR', async () => {
      expect(await codeOf(checkTpm2Certify({ ...att(), extra: 1 }, device))).toBe('ATTESTATION_FORMAT_ERROR');
      expect(await codeOf(checkTpm2Certify({ ...att(), attest: toBase64Url(fromBase64Url(att().attest).subarray(0, 60)) }, device))).toBe('ATTESTATION_FORMAT_ERROR');
      expect(await codeOf(checkTpm2Certify({ ...att(), ekCertificate: { nvIndex: '0x01c00002', der: 'AAAA' } }, device))).toBe('ATTESTATION_FORMAT_ERROR');
    });
  });
});
