/** COSE and CWT labels used by Stele, with their sources. */

/** CBOR tag of COSE_Sign1 (RFC 9052 §4.2). */
export const COSE_SIGN1_TAG = 18;

/** Common header parameters (RFC 9052 §3.1). */
export const HEADER_ALG = 1;
export const HEADER_CONTENT_TYPE = 3;
export const HEADER_KID = 4;
/** CWT claims in a COSE header (RFC 9597 §2). */
export const HEADER_CWT_CLAIMS = 15;
/** COSE Hash Envelope (RFC 9995): payload_hash_alg and preimage_content_type. */
export const HEADER_PAYLOAD_HASH_ALG = 258;
export const HEADER_PREIMAGE_CONTENT_TYPE = 259;
/** COSE Receipts (RFC 9942): verifiable data structure and verifiable data structure proofs. */
export const HEADER_VDS = 395;
export const HEADER_VDP = 396;
/** Stele private-use labels (FORMAT.md §3, §5; RFC 9052 §16.2: labels < -65536 are private use). */
export const HEADER_STELE_SEQ = -65537;
export const HEADER_STELE_PREV = -65538;
export const HEADER_STELE_BATCH_ID = -65539;
/** Number K of readings one device-level batch signature covers (FORMAT.md §3.1), K >= 2. */
export const HEADER_STELE_BATCH_SIZE = -65540;

/** ES256 (RFC 9053 §2.1) and SHA-256 (RFC 9054 §2.1) algorithm ids. */
export const ALG_ES256 = -7;
export const ALG_SHA256 = -16;
/** RFC9162_SHA256 verifiable data structure (RFC 9942 / draft-ietf-cose-merkle-tree-proofs). */
export const VDS_RFC9162_SHA256 = 1;
/** Inclusion proofs key inside the vdp map (RFC 9942). */
export const VDP_INCLUSION_PROOFS = -1;

/** CWT claim keys (RFC 8392 §3.1). */
export const CWT_ISS = 1;
export const CWT_SUB = 2;
export const CWT_IAT = 6;
