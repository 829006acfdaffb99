/**
 * Just enough X.509 (RFC 5280) to follow a TPM endorsement key certificate to a pinned CA certificate: a bounded
 * DER reader (X.690), the fields a chain check needs, and signature verification for the algorithms TPM vendors
 * and swtpm's local CA use: RSASSA-PKCS1-v1_5 (RFC 8017 §8.2.2) with SHA-256/384/512, and ECDSA on P-256/P-384
 * (RFC 5758 §3.2). Isomorphic (BigInt and @noble only), synchronous.
 *
 * Not a general path validator: no name constraints, policies, revocation or validity times (EK certificates
 * are made for the life of the TPM; swtpm's run to 9999-12-31). What it checks is written in FORMAT.md §14.5.
 */
import { p256, p384 } from '@noble/curves/nist.js';
import { sha256, sha384, sha512 } from '@noble/hashes/sha2.js';
import { concatBytes, equalBytes, toHex } from '../bytes.ts';
import { AttestationError } from './errors.ts';

/** Largest certificate read, bytes (FORMAT.md §14.2 `MAX_CERT_BYTES` of a policy root is the same). */
export const MAX_CERTIFICATE_BYTES = 16 * 1024;

interface Tlv {
  tag: number;
  /** Whole element (tag, length, value). */
  raw: Uint8Array;
  value: Uint8Array;
}

function bad(message: string): never {
  throw new AttestationError('ATTESTATION_FORMAT_ERROR', `certificate: ${message}`);
}

/** Reads one DER element at `offset` (definite lengths only, at most 4 length bytes, minimal form). */
function readTlv(bytes: Uint8Array, offset: number): Tlv & { end: number } {
  if (offset + 2 > bytes.length) bad('truncated element');
  const tag = bytes[offset]!;
  if ((tag & 0x1f) === 0x1f) bad('high tag numbers are not used in certificates');
  let len = bytes[offset + 1]!;
  let head = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) bad('indefinite or oversized length');
    if (offset + 2 + n > bytes.length) bad('truncated length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + bytes[offset + 2 + i]!;
    if (len < 0x80 || (n > 1 && bytes[offset + 2] === 0)) bad('length not in minimal form');
    head = 2 + n;
  }
  const end = offset + head + len;
  if (end > bytes.length) bad('element runs past its parent');
  return { tag, raw: bytes.subarray(offset, end), value: bytes.subarray(offset + head, end), end };
}

/** The children of a constructed element, in order. */
function children(value: Uint8Array): Tlv[] {
  const out: Tlv[] = [];
  let at = 0;
  while (at < value.length) {
    const t = readTlv(value, at);
    out.push(t);
    at = t.end;
    if (out.length > 64) bad('too many elements');
  }
  return out;
}

function need(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (t === undefined || t.tag !== tag) bad(`${what} missing or of the wrong type`);
  return t;
}

const SEQUENCE = 0x30;
const OID = 0x06;
const INTEGER = 0x02;
const BIT_STRING = 0x03;
const OCTET_STRING = 0x04;
const BOOLEAN = 0x01;

// DER contents of the object identifiers used here.
const OID_RSA = '2a864886f70d010101'; // 1.2.840.113549.1.1.1 rsaEncryption
const OID_EC = '2a8648ce3d0201'; // 1.2.840.10045.2.1 id-ecPublicKey
const OID_P256 = '2a8648ce3d030107'; // 1.2.840.10045.3.1.7 prime256v1
const OID_P384 = '2b81040022'; // 1.3.132.0.34 secp384r1
const OID_BASIC_CONSTRAINTS = '551d13'; // 2.5.29.19
const SIGNATURE_ALGORITHMS: Record<string, { kind: 'rsa' | 'ecdsa'; hash: 'sha256' | 'sha384' | 'sha512' }> = {
  '2a864886f70d01010b': { kind: 'rsa', hash: 'sha256' }, // sha256WithRSAEncryption, RFC 8017 App. C
  '2a864886f70d01010c': { kind: 'rsa', hash: 'sha384' },
  '2a864886f70d01010d': { kind: 'rsa', hash: 'sha512' },
  '2a8648ce3d040302': { kind: 'ecdsa', hash: 'sha256' }, // ecdsa-with-SHA256, RFC 5758 §3.2
  '2a8648ce3d040303': { kind: 'ecdsa', hash: 'sha384' },
};
const HASHES = { sha256, sha384, sha512 };
/** DigestInfo prefixes of EMSA-PKCS1-v1_5 (RFC 8017 §9.2 note 1). */
const DIGEST_INFO: Record<'sha256' | 'sha384' | 'sha512', string> = {
  sha256: '3031300d060960864801650304020105000420',
  sha384: '3041300d060960864801650304020205000430',
  sha512: '3051300d060960864801650304020305000440',
};

/** A subject public key this module can verify with. */
export type CertPublicKey =
  | { kind: 'rsa'; modulus: Uint8Array; exponent: Uint8Array }
  | { kind: 'ec'; curve: 'P-256' | 'P-384'; point: Uint8Array };

export interface Certificate {
  der: Uint8Array;
  tbs: Uint8Array;
  /** DER of the issuer and subject Names, compared byte for byte. */
  issuer: Uint8Array;
  subject: Uint8Array;
  publicKey: CertPublicKey | { kind: 'unsupported'; algorithm: string };
  signatureAlgorithm: string;
  signature: Uint8Array;
  /** basicConstraints cA (false when the extension is absent). */
  isCa: boolean;
}

/** Strips the leading zero of a DER INTEGER's two's-complement form (unsigned big-endian bytes). */
function unsignedInt(t: Tlv): Uint8Array {
  if (t.value.length === 0) bad('empty integer');
  let v = t.value;
  while (v.length > 1 && v[0] === 0) v = v.subarray(1);
  return v;
}

/** Parses a DER certificate (RFC 5280 §4.1). AttestationError ATTESTATION_FORMAT_ERROR when it is not one. */
export function parseCertificate(der: Uint8Array): Certificate {
  if (!(der instanceof Uint8Array)) throw new TypeError('der must be a Uint8Array');
  if (der.length > MAX_CERTIFICATE_BYTES) bad(`larger than ${MAX_CERTIFICATE_BYTES} bytes`);
  const top = readTlv(der, 0);
  if (top.tag !== SEQUENCE || top.end !== der.length) bad('not a DER SEQUENCE of its own length');
  const [tbsT, algT, sigT] = children(top.value);
  const tbs = need(tbsT, SEQUENCE, 'tbsCertificate');
  const alg = children(need(algT, SEQUENCE, 'signatureAlgorithm').value);
  const signatureAlgorithm = toHex(need(alg[0], OID, 'signature algorithm').value);
  const sigBits = need(sigT, BIT_STRING, 'signatureValue').value;
  if (sigBits.length < 2 || sigBits[0] !== 0) bad('signature bit string has unused bits');
  const fields = children(tbs.value);
  let i = 0;
  if (fields[0]?.tag === 0xa0) i++; // [0] version
  need(fields[i++], INTEGER, 'serialNumber');
  const innerAlg = children(need(fields[i++], SEQUENCE, 'signature').value);
  if (toHex(need(innerAlg[0], OID, 'tbs signature algorithm').value) !== signatureAlgorithm) bad('the two signature algorithms differ');
  const issuer = need(fields[i++], SEQUENCE, 'issuer').raw;
  need(fields[i++], SEQUENCE, 'validity');
  const subject = need(fields[i++], SEQUENCE, 'subject').raw;
  const spki = children(need(fields[i++], SEQUENCE, 'subjectPublicKeyInfo').value);
  const spkiAlg = children(need(spki[0], SEQUENCE, 'subjectPublicKeyInfo.algorithm').value);
  const keyAlg = toHex(need(spkiAlg[0], OID, 'key algorithm').value);
  const keyBits = need(spki[1], BIT_STRING, 'subjectPublicKey').value;
  if (keyBits.length < 2 || keyBits[0] !== 0) bad('public key bit string has unused bits');
  const keyBytes = keyBits.subarray(1);
  let publicKey: Certificate['publicKey'];
  if (keyAlg === OID_RSA) {
    const [n, e] = children(need(readTlv(keyBytes, 0), SEQUENCE, 'RSAPublicKey').value);
    publicKey = { kind: 'rsa', modulus: unsignedInt(need(n, INTEGER, 'modulus')), exponent: unsignedInt(need(e, INTEGER, 'publicExponent')) };
  } else if (keyAlg === OID_EC) {
    const curve = toHex(need(spkiAlg[1], OID, 'named curve').value);
    if (curve === OID_P256 || curve === OID_P384) publicKey = { kind: 'ec', curve: curve === OID_P256 ? 'P-256' : 'P-384', point: keyBytes };
    else publicKey = { kind: 'unsupported', algorithm: `ec ${curve}` };
  } else {
    publicKey = { kind: 'unsupported', algorithm: keyAlg };
  }
  let isCa = false;
  for (const f of fields.slice(i)) {
    if (f.tag !== 0xa3) continue; // [3] extensions
    for (const ext of children(need(children(f.value)[0], SEQUENCE, 'extensions').value)) {
      const parts = children(need(ext, SEQUENCE, 'extension').value);
      if (toHex(need(parts[0], OID, 'extnID').value) !== OID_BASIC_CONSTRAINTS) continue;
      const octets = need(parts[parts.length - 1], OCTET_STRING, 'extnValue').value;
      const bc = children(need(readTlv(octets, 0), SEQUENCE, 'basicConstraints').value);
      isCa = bc[0]?.tag === BOOLEAN && bc[0].value.length === 1 && bc[0].value[0] === 0xff;
    }
  }
  return { der, tbs: tbs.raw, issuer, subject, publicKey, signatureAlgorithm, signature: sigBits.subarray(1), isCa };
}

function bigOf(bytes: Uint8Array): bigint {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n;
}

function modPow(base: bigint, exp: bigint, mod: bigint): bigint {
  let result = 1n;
  let b = base % mod;
  let e = exp;
  while (e > 0n) {
    if (e & 1n) result = (result * b) % mod;
    b = (b * b) % mod;
    e >>= 1n;
  }
  return result;
}

/** RSASSA-PKCS1-v1_5 verification (RFC 8017 §8.2.2), modulus 2048..4096 bits. */
export function verifyRsaPkcs1(key: { modulus: Uint8Array; exponent: Uint8Array }, hash: 'sha256' | 'sha384' | 'sha512', message: Uint8Array, signature: Uint8Array): boolean {
  const k = key.modulus.length;
  if (k < 256 || k > 512 || signature.length !== k || key.exponent.length > 4) return false;
  const n = bigOf(key.modulus);
  const s = bigOf(signature);
  if (s >= n) return false;
  const m = modPow(s, bigOf(key.exponent), n);
  const em = new Uint8Array(k);
  let v = m;
  for (let i = k - 1; i >= 0; i--) {
    em[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  const t = concatBytes(hexBytes(DIGEST_INFO[hash]), HASHES[hash](message));
  const expected = new Uint8Array(k);
  expected[1] = 0x01;
  expected.fill(0xff, 2, k - t.length - 1);
  expected.set(t, k - t.length);
  return equalBytes(em, expected);
}

function hexBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** ECDSA over a message with the given hash; `der` true for an X.509 (DER SEQUENCE) signature, else r || s. */
export function verifyEcdsa(curve: 'P-256' | 'P-384', point: Uint8Array, hash: 'sha256' | 'sha384', message: Uint8Array, signature: Uint8Array, der: boolean): boolean {
  try {
    const c = curve === 'P-256' ? p256 : p384;
    return c.verify(signature, HASHES[hash](message), point, { prehash: false, lowS: false, format: der ? 'der' : 'compact' });
  } catch {
    return false;
  }
}

/** True when `cert`'s signature verifies with `issuerKey`. Unknown algorithms give false. */
export function verifyCertificateSignature(cert: Certificate, issuerKey: Certificate['publicKey']): boolean {
  const alg = SIGNATURE_ALGORITHMS[cert.signatureAlgorithm];
  if (alg === undefined) return false;
  if (alg.kind === 'rsa') return issuerKey.kind === 'rsa' && verifyRsaPkcs1(issuerKey, alg.hash, cert.tbs, cert.signature);
  if (issuerKey.kind !== 'ec' || alg.hash === 'sha512') return false;
  return verifyEcdsa(issuerKey.curve, issuerKey.point, alg.hash, cert.tbs, cert.signature, true);
}
