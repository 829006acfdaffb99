/**
 * TPM 2.0 key attestation (FORMAT.md §14.5): proof that a device's signing key was made inside a TPM whose
 * endorsement key (EK) is certified by a CA the verifier pins.
 *
 * The evidence, made by `stele gateway provision` with the TPM backend (device/src/provision/tpm-certify.ts):
 * - the EK certificate from the TPM's NV (TCG EK Credential Profile) and any intermediate CA certificates;
 * - the EK's public area (TPMT_PUBLIC), which must be the key that certificate certifies;
 * - an attestation key (AK): a restricted ECDSA P-256 signing key made in the endorsement hierarchy as a child of
 *   that EK (tpm2_createak). A restricted key signs only statements the TPM itself made (Part 1 §25.2), and the
 *   statement names its signer by qualified name, so a genuine AK says which EK it sits under;
 * - TPMS_ATTEST of TPM2_Certify(device key, AK) and the AK's TPMT_SIGNATURE over it;
 * - the device key's TPMT_PUBLIC: non-duplicable (fixedTPM, fixedParent), generated inside the TPM
 *   (sensitiveDataOrigin), a signing key, whose P-256 point is the enrolled key.
 *
 * What no offline verifier can check: that the AK is itself inside that TPM rather than a software key that mimics
 * one. Provisioning checks it by credential activation (TPM2_MakeCredential to the EK, TPM2_ActivateCredential by
 * the TPM) before it writes the evidence, and the installer countersigns the request; FORMAT.md §14.5 states this.
 */
import { equalBytes, fromBase64Url } from '../bytes.ts';
import { verifyEs256 } from '../ecdsa.ts';
import { AttestationError } from './errors.ts';
import { nameOf, parseCertifyAttest, parseEcdsaSignature, parsePublic, qualifiedNameUnderEndorsement, TPM_ALG, TPM_ECC_NIST_P256, TPMA_OBJECT, type TpmPublic } from './structures.ts';
import { MAX_CERTIFICATE_BYTES, parseCertificate, verifyCertificateSignature, type Certificate } from './x509.ts';

/** `kind` of a TPM2_Certify attestation in an enrolment request (FORMAT.md §13.2). */
export const TPM2_CERTIFY_KIND = 'tpm2-certify';
/** Most intermediate CA certificates carried. */
export const MAX_INTERMEDIATES = 4;

/** The attestation as it travels in the enrolment request: binary fields as base64url text. */
export interface Tpm2CertifyAttestation {
  kind: 'tpm2-certify';
  /** The EK certificate (DER) and the NV index it was read from. */
  ekCertificate: { nvIndex: string; der: string };
  /** CA certificates (DER) from the EK certificate's issuer upwards, without the pinned root; may be empty. */
  intermediates: string[];
  /** TPMT_PUBLIC of the EK. */
  ekPublic: string;
  /** TPMT_PUBLIC of the attestation key. */
  akPublic: string;
  /** TPMT_PUBLIC of the device's signing key. */
  keyPublic: string;
  /** TPMS_ATTEST made by TPM2_Certify. */
  attest: string;
  /** TPMT_SIGNATURE of the AK over `attest`. */
  signature: string;
}

/** Evidence that passed {@link checkTpm2Certify}: its parts decoded, the chain not yet judged. */
export interface CheckedTpm2Certify {
  ekCertificate: Certificate;
  intermediates: Certificate[];
  ek: TpmPublic;
  ak: TpmPublic;
  key: TpmPublic;
}

const MEMBERS = ['kind', 'ekCertificate', 'intermediates', 'ekPublic', 'akPublic', 'keyPublic', 'attest', 'signature'];

function format(message: string, field?: string): never {
  throw new AttestationError('ATTESTATION_FORMAT_ERROR', `attestation: ${message}`, field === undefined ? {} : { where: { field } });
}

function b64(v: unknown, field: string, max: number): Uint8Array {
  if (typeof v !== 'string' || v.length === 0 || v.length > Math.ceil((max * 4) / 3) + 2) format(`${field} is not base64url of at most ${max} bytes`, field);
  try {
    return fromBase64Url(v as string);
  } catch {
    return format(`${field} is not base64url`, field);
  }
}

const has = (attrs: number, bit: number): boolean => (attrs & bit) === bit;

/**
 * Checks TPM2_Certify evidence from untrusted input against the device's SEC1 P-256 key, everything but the
 * certificate chain's root: the shape (exactly the members of {@link Tpm2CertifyAttestation}); TPMS_ATTEST magic
 * TPM_GENERATED_VALUE and type TPM_ST_ATTEST_CERTIFY; the certified name equals nameAlg || SHA-256(keyPublic);
 * keyPublic is a fixedTPM, fixedParent, sensitiveDataOrigin, unrestricted signing P-256 key whose point is
 * `devicePoint`; the AK is a fixedTPM restricted signing P-256 key (not decrypt) and its ECDSA-SHA256 signature
 * over TPMS_ATTEST verifies; the statement's qualifiedSigner is the AK's qualified name under the EK in the
 * endorsement hierarchy; the EK is a fixedTPM restricted decryption key; the EK certificate certifies exactly
 * that key. Throws AttestationError with the code of the first failure.
 */
export async function checkTpm2Certify(value: unknown, devicePoint: Uint8Array): Promise<CheckedTpm2Certify> {
  if (!(devicePoint instanceof Uint8Array)) throw new TypeError('devicePoint must be a Uint8Array');
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return format('is not a map');
  const o = value as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!MEMBERS.includes(k)) format(`${k} is not a member of a ${TPM2_CERTIFY_KIND} attestation`, k);
  if (o.kind !== TPM2_CERTIFY_KIND) format(`kind is not "${TPM2_CERTIFY_KIND}"`, 'kind');
  const ekc = o.ekCertificate as Record<string, unknown> | undefined;
  if (typeof ekc !== 'object' || ekc === null || Object.keys(ekc).some((k) => k !== 'nvIndex' && k !== 'der')) format('ekCertificate is not {nvIndex, der}', 'ekCertificate');
  if (typeof ekc!.nvIndex !== 'string' || !/^0x0?1c[0-9a-f]{5}$/i.test(ekc!.nvIndex)) format('ekCertificate.nvIndex is not a TCG EK NV index', 'ekCertificate.nvIndex');
  if (!Array.isArray(o.intermediates) || o.intermediates.length > MAX_INTERMEDIATES) format(`intermediates is not a list of at most ${MAX_INTERMEDIATES}`, 'intermediates');
  const ekCertificate = parseCertificate(b64(ekc!.der, 'ekCertificate.der', MAX_CERTIFICATE_BYTES));
  const intermediates = (o.intermediates as unknown[]).map((c, i) => parseCertificate(b64(c, `intermediates[${i}]`, MAX_CERTIFICATE_BYTES)));
  const ek = parsePublic(b64(o.ekPublic, 'ekPublic', 1024), 'ekPublic');
  const ak = parsePublic(b64(o.akPublic, 'akPublic', 1024), 'akPublic');
  const key = parsePublic(b64(o.keyPublic, 'keyPublic', 1024), 'keyPublic');
  const attestBytes = b64(o.attest, 'attest', 1024);
  const attest = parseCertifyAttest(attestBytes);
  const sig = parseEcdsaSignature(b64(o.signature, 'signature', 256));

  // The certified object is the device key.
  if (!equalBytes(attest.name, nameOf(key))) {
    throw new AttestationError('ATTESTATION_KEY_MISMATCH', 'the certified name is not the name of keyPublic', { where: { field: 'keyPublic' } });
  }
  const keyRules = TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.sensitiveDataOrigin | TPMA_OBJECT.sign;
  if (key.type !== TPM_ALG.ECC || key.curve !== TPM_ECC_NIST_P256 || !has(key.attributes, keyRules) || has(key.attributes, TPMA_OBJECT.restricted)) {
    throw new AttestationError('ATTESTATION_KEY_MISMATCH', 'keyPublic is not a non-duplicable P-256 signing key generated in the TPM', { where: { field: 'keyPublic' } });
  }
  if (key.point === undefined || !equalBytes(key.point, devicePoint)) {
    throw new AttestationError('ATTESTATION_KEY_MISMATCH', 'the certified key is not the enrolled device key', { where: { field: 'keyPublic' } });
  }

  // The statement is the AK's, and the AK is a TPM-resident restricted signing key under the EK.
  const akRules = TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.sensitiveDataOrigin | TPMA_OBJECT.restricted | TPMA_OBJECT.sign;
  if (ak.type !== TPM_ALG.ECC || ak.curve !== TPM_ECC_NIST_P256 || ak.point === undefined || !has(ak.attributes, akRules) || has(ak.attributes, TPMA_OBJECT.decrypt)) {
    throw new AttestationError('ATTESTATION_SIGNATURE_ERROR', 'akPublic is not a restricted P-256 signing key fixed to the TPM', { where: { field: 'akPublic' } });
  }
  if (sig.hash !== TPM_ALG.SHA256 || !(await verifyEs256(ak.point, attestBytes, sig.rs))) {
    throw new AttestationError('ATTESTATION_SIGNATURE_ERROR', 'the attestation key signature over TPMS_ATTEST does not verify', { where: { field: 'signature' } });
  }
  const ekRules = TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.restricted | TPMA_OBJECT.decrypt;
  if (!has(ek.attributes, ekRules) || has(ek.attributes, TPMA_OBJECT.sign)) format('ekPublic is not a restricted decryption key fixed to the TPM', 'ekPublic');
  if (!equalBytes(attest.qualifiedSigner, qualifiedNameUnderEndorsement(ek, ak))) {
    throw new AttestationError('ATTESTATION_SIGNATURE_ERROR', 'the statement names another signer than this attestation key under this EK', { where: { field: 'attest' } });
  }

  // The EK certificate certifies this EK.
  const certKey = ekCertificate.publicKey;
  const same =
    (certKey.kind === 'rsa' && ek.type === TPM_ALG.RSA && equalBytes(certKey.modulus, ek.modulus!) && bigEndian(certKey.exponent) === ek.exponent) ||
    (certKey.kind === 'ec' && ek.point !== undefined && equalBytes(certKey.point, ek.point));
  if (!same) throw new AttestationError('ATTESTATION_EK_MISMATCH', 'the EK certificate certifies another key than ekPublic', { where: { field: 'ekCertificate' } });
  return { ekCertificate, intermediates, ek, ak, key };
}

function bigEndian(bytes: Uint8Array): number {
  let n = 0;
  for (const b of bytes) n = n * 256 + b;
  return n;
}

/**
 * Follows the EK certificate through the intermediates to one of `roots` (DER certificates, e.g. a trust
 * policy's `attestationRoots`): each certificate's issuer Name equals the next one's subject and its signature
 * verifies under the next one's key; intermediates are CAs; the last is issued by (or is) a root. Returns the
 * index of that root. ATTESTATION_CHAIN_ERROR when a link in the carried chain is broken,
 * ATTESTATION_UNTRUSTED_ROOT when no root signed the top of the chain.
 */
export function chainToRoot(checked: Pick<CheckedTpm2Certify, 'ekCertificate' | 'intermediates'>, roots: readonly Uint8Array[]): number {
  const parsedRoots = roots.map((r) => parseCertificate(r));
  const chain = [checked.ekCertificate, ...checked.intermediates];
  for (let i = 0; i < chain.length; i++) {
    const cert = chain[i]!;
    const root = parsedRoots.findIndex((r) => equalBytes(r.der, cert.der) || (equalBytes(r.subject, cert.issuer) && verifyCertificateSignature(cert, r.publicKey)));
    if (root >= 0) return root;
    const next = chain[i + 1];
    if (next === undefined) break;
    if (!next.isCa || !equalBytes(next.subject, cert.issuer) || !verifyCertificateSignature(cert, next.publicKey)) {
      throw new AttestationError('ATTESTATION_CHAIN_ERROR', `certificate ${i} of the chain is not signed by the CA after it`, { where: { index: i } });
    }
  }
  throw new AttestationError('ATTESTATION_UNTRUSTED_ROOT', 'the EK certificate does not chain to a pinned attestation root', { where: { roots: roots.length } });
}

/** {@link checkTpm2Certify} then {@link chainToRoot}: the whole verification. Returns the root's index. */
export async function verifyTpm2Certify(value: unknown, devicePoint: Uint8Array, roots: readonly Uint8Array[]): Promise<{ root: number; checked: CheckedTpm2Certify }> {
  const checked = await checkTpm2Certify(value, devicePoint);
  return { root: chainToRoot(checked, roots), checked };
}
