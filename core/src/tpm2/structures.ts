/**
 * The TPM 2.0 structures a key certification carries, read from their canonical big-endian marshalling
 * (TPM 2.0 Library, Part 2: Structures, rev 1.59; section numbers below are that part's). Bounded reads: every
 * size is checked against the bytes present, and trailing bytes are an error.
 */
import { concatBytes } from '../bytes.ts';
import { sha256 } from '../hash.ts';
import { AttestationError } from './errors.ts';

/** TPM_GENERATED_VALUE (§6.2): the first four bytes of every TPMS_ATTEST the TPM makes ("\xffTCG"). */
export const TPM_GENERATED_VALUE = 0xff544347;
/** TPM_ST_ATTEST_CERTIFY (§6.9): the tag of a TPM2_Certify statement. */
export const TPM_ST_ATTEST_CERTIFY = 0x8017;
/** TPM_ALG_ID values (§6.3). */
export const TPM_ALG = { RSA: 0x0001, SHA256: 0x000b, NULL: 0x0010, RSASSA: 0x0014, ECDSA: 0x0018, ECC: 0x0023 } as const;
/** TPM_ECC_CURVE (§6.4). */
export const TPM_ECC_NIST_P256 = 0x0003;
/** TPM_RH_ENDORSEMENT (§7.4): the hierarchy handle that heads the qualified name of an EK (Part 1 §16). */
export const TPM_RH_ENDORSEMENT = 0x4000000b;

/** TPMA_OBJECT bits (§8.3.2). */
export const TPMA_OBJECT = {
  fixedTPM: 0x00000002,
  fixedParent: 0x00000010,
  sensitiveDataOrigin: 0x00000020,
  restricted: 0x00010000,
  decrypt: 0x00020000,
  sign: 0x00040000,
} as const;

function bad(what: string, message: string): never {
  throw new AttestationError('ATTESTATION_FORMAT_ERROR', `${what}: ${message}`, { where: { structure: what } });
}

/** A cursor over marshalled bytes that refuses to read past the end. */
class Reader {
  private at = 0;
  constructor(
    private readonly bytes: Uint8Array,
    private readonly what: string,
  ) {}
  private take(n: number): Uint8Array {
    if (this.at + n > this.bytes.length) bad(this.what, 'truncated');
    const out = this.bytes.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }
  u8(): number {
    return this.take(1)[0]!;
  }
  u16(): number {
    const b = this.take(2);
    return (b[0]! << 8) | b[1]!;
  }
  u32(): number {
    const b = this.take(4);
    return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
  }
  u64(): bigint {
    const hi = BigInt(this.u32());
    return (hi << 32n) | BigInt(this.u32());
  }
  /** A TPM2B_*: UINT16 size then that many bytes. */
  sized(max: number): Uint8Array {
    const n = this.u16();
    if (n > max) bad(this.what, `a sized field of ${n} bytes (at most ${max})`);
    return this.take(n);
  }
  end(): void {
    if (this.at !== this.bytes.length) bad(this.what, `${this.bytes.length - this.at} bytes after the structure`);
  }
}

/** TPMS_ATTEST (§10.12.12) of a TPM2_Certify (attested = TPMS_CERTIFY_INFO, §10.12.3). */
export interface CertifyAttest {
  magic: number;
  type: number;
  /** TPM2B_NAME: qualified name of the signing key. */
  qualifiedSigner: Uint8Array;
  extraData: Uint8Array;
  clock: bigint;
  resetCount: number;
  restartCount: number;
  safe: boolean;
  firmwareVersion: bigint;
  /** Name of the certified object (nameAlg || H(TPMT_PUBLIC)). */
  name: Uint8Array;
  qualifiedName: Uint8Array;
}

/** Parses a TPMS_ATTEST; only the certify type is accepted (ATTESTATION_FORMAT_ERROR otherwise, magic included). */
export function parseCertifyAttest(bytes: Uint8Array): CertifyAttest {
  const r = new Reader(bytes, 'TPMS_ATTEST');
  const magic = r.u32();
  if (magic !== TPM_GENERATED_VALUE) bad('TPMS_ATTEST', 'magic is not TPM_GENERATED_VALUE');
  const type = r.u16();
  if (type !== TPM_ST_ATTEST_CERTIFY) bad('TPMS_ATTEST', `type 0x${type.toString(16)} is not TPM_ST_ATTEST_CERTIFY`);
  const qualifiedSigner = r.sized(68);
  const extraData = r.sized(64);
  const clock = r.u64();
  const resetCount = r.u32();
  const restartCount = r.u32();
  const safe = r.u8();
  if (safe > 1) bad('TPMS_ATTEST', 'clockInfo.safe is not a TPMI_YES_NO');
  const firmwareVersion = r.u64();
  const name = r.sized(68);
  const qualifiedName = r.sized(68);
  r.end();
  return { magic, type, qualifiedSigner, extraData, clock, resetCount, restartCount, safe: safe === 1, firmwareVersion, name, qualifiedName };
}

/** TPMT_PUBLIC (§12.2.4), ECC (§12.2.3.6) or RSA (§12.2.3.5) parameters. */
export interface TpmPublic {
  type: number;
  nameAlg: number;
  attributes: number;
  authPolicy: Uint8Array;
  /** Signing scheme (TPM_ALG_NULL when none) and its hash. */
  scheme: number;
  schemeHash: number;
  /** ECC: the curve; RSA: undefined. */
  curve?: number;
  /** ECC: SEC1 uncompressed point 0x04 || X || Y (coordinates left-padded to 32 bytes for P-256). */
  point?: Uint8Array;
  /** RSA: modulus and exponent (0 in the structure means 65537, §12.2.3.5). */
  modulus?: Uint8Array;
  exponent?: number;
  /** The exact bytes parsed: what the name hashes. */
  bytes: Uint8Array;
}

/** Parses a TPMT_PUBLIC of an ECC or RSA key (ATTESTATION_FORMAT_ERROR for other types). */
export function parsePublic(bytes: Uint8Array, what = 'TPMT_PUBLIC'): TpmPublic {
  const r = new Reader(bytes, what);
  const type = r.u16();
  const nameAlg = r.u16();
  const attributes = r.u32();
  const authPolicy = r.sized(64);
  // TPMT_SYM_DEF_OBJECT (§11.1.7): algorithm, then keyBits and mode unless NULL.
  const sym = r.u16();
  if (sym !== TPM_ALG.NULL) {
    r.u16();
    r.u16();
  }
  const scheme = r.u16();
  const schemeHash = scheme === TPM_ALG.NULL ? TPM_ALG.NULL : r.u16();
  if (type === TPM_ALG.ECC) {
    const curve = r.u16();
    const kdf = r.u16();
    if (kdf !== TPM_ALG.NULL) r.u16();
    const x = r.sized(66);
    const y = r.sized(66);
    r.end();
    let point: Uint8Array | undefined;
    if (curve === TPM_ECC_NIST_P256) {
      if (x.length > 32 || y.length > 32) bad(what, 'a P-256 coordinate longer than 32 bytes');
      point = new Uint8Array(65);
      point[0] = 0x04;
      point.set(x, 33 - x.length);
      point.set(y, 65 - y.length);
    }
    return { type, nameAlg, attributes, authPolicy, scheme, schemeHash, curve, ...(point === undefined ? {} : { point }), bytes };
  }
  if (type === TPM_ALG.RSA) {
    const keyBits = r.u16();
    const exponent = r.u32();
    const modulus = r.sized(512);
    r.end();
    if (modulus.length * 8 !== keyBits) bad(what, 'modulus length does not match keyBits');
    return { type, nameAlg, attributes, authPolicy, scheme, schemeHash, modulus, exponent: exponent === 0 ? 65537 : exponent, bytes };
  }
  return bad(what, `object type 0x${type.toString(16)} is not ECC or RSA`);
}

/** TPMT_SIGNATURE (§11.3.4) of ECDSA: the hash and `r || s`, each left-padded to 32 bytes (P-256). */
export function parseEcdsaSignature(bytes: Uint8Array): { hash: number; rs: Uint8Array } {
  const r = new Reader(bytes, 'TPMT_SIGNATURE');
  const alg = r.u16();
  if (alg !== TPM_ALG.ECDSA) bad('TPMT_SIGNATURE', `sigAlg 0x${alg.toString(16)} is not TPM_ALG_ECDSA`);
  const hash = r.u16();
  const sr = r.sized(66);
  const ss = r.sized(66);
  r.end();
  if (sr.length > 32 || ss.length > 32) bad('TPMT_SIGNATURE', 'r or s longer than 32 bytes (not P-256)');
  const rs = new Uint8Array(64);
  rs.set(sr, 32 - sr.length);
  rs.set(ss, 64 - ss.length);
  return { hash, rs };
}

function u16Bytes(n: number): Uint8Array {
  return new Uint8Array([n >> 8, n & 0xff]);
}

function u32Bytes(n: number): Uint8Array {
  return new Uint8Array([(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
}

/** Name of an object (Part 1 §16): nameAlg || H_nameAlg(TPMT_PUBLIC). Only SHA-256 names are supported. */
export function nameOf(pub: TpmPublic): Uint8Array {
  if (pub.nameAlg !== TPM_ALG.SHA256) bad('TPMT_PUBLIC', 'nameAlg is not SHA-256');
  return concatBytes(u16Bytes(pub.nameAlg), sha256(pub.bytes));
}

/**
 * Qualified name of a key made under an endorsement-hierarchy primary (Part 1 §16): the primary's is
 * nameAlg || H(TPM_RH_ENDORSEMENT || Name(primary)); its child's is nameAlg || H(QN(primary) || Name(child)).
 */
export function qualifiedNameUnderEndorsement(primary: TpmPublic, child: TpmPublic): Uint8Array {
  const qnPrimary = concatBytes(u16Bytes(TPM_ALG.SHA256), sha256(concatBytes(u32Bytes(TPM_RH_ENDORSEMENT), nameOf(primary))));
  return concatBytes(u16Bytes(TPM_ALG.SHA256), sha256(concatBytes(qnPrimary, nameOf(child))));
}

/** Strips the UINT16 size of a TPM2B_PUBLIC (what tpm2-tools writes) to the TPMT_PUBLIC inside. */
export function unwrapTpm2bPublic(bytes: Uint8Array): Uint8Array {
  if (bytes.length < 2) bad('TPM2B_PUBLIC', 'truncated');
  const n = (bytes[0]! << 8) | bytes[1]!;
  if (n !== bytes.length - 2) bad('TPM2B_PUBLIC', 'size does not match the bytes');
  return bytes.subarray(2);
}
