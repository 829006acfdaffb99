/**
 * The decoded shape of an HJ 212 frame. Key names follow the shared fixtures' `expected` records
 * (`../shared/domain/fixtures/hj212/*.jsonl`) so a decoded frame can be compared with them as is.
 */
import type { Hj212CrcVariant } from './crc.ts';
import type { Hj212Error } from './errors.ts';

export interface Hj212Framing {
  /** `LLLL` as a number. */
  declared_length: number;
  /** UTF-8 bytes of the data segment as received. */
  actual_length_bytes: number;
  length_ok: boolean;
  /** The 4 CRC characters exactly as received (case kept). */
  crc_declared: string;
  /** The HJ 212 Appendix A CRC of the data segment, uppercase. */
  crc_hj212: string;
  crc_ok: boolean;
  /** Which CRC the declared digits matched; `unknown` when none. */
  crc_variant_detected: Hj212CrcVariant | 'unknown';
  has_crlf: boolean;
  data_segment_over_1024: boolean;
}

/** Flag = V5..V0 D A (HJ 212-2017 §6.3.2 table 3 note). */
export interface Hj212FlagDecoded {
  value: number;
  /** 0 = HJ/T 212-2005, 1 = HJ 212-2017. */
  version_bits_V5_V0: number;
  /** D: PNUM and PNO present (split packet). */
  D_has_PNUM_PNO: 0 | 1;
  /** A: the receiver must answer. */
  A_ack_required: 0 | 1;
}

/** The CP data area (§6.3.3): values are the exact received strings, never re-formatted. */
export interface Hj212Cp {
  /** Keys without `-`: DataTime, QnRtn, RtdInterval, … */
  params: Record<string, string>;
  /** `code-Sub=value` pairs: items[code][Sub] = value, e.g. items.a21026.Rtd = "12.5". */
  items: Record<string, Record<string, string>>;
  /** Item codes in the order they first appear. */
  item_order: string[];
}

export interface Hj212Parsed {
  framing: Hj212Framing;
  /** Header keys in received order (each once). */
  header_order: string[];
  /** QN, ST, CN, PW, MN, Flag, PNUM, PNO… as received (by key, not position). */
  header: Record<string, string>;
  /** Present only when the header has a valid Flag. */
  flag_decoded?: Hj212FlagDecoded;
  cp: Hj212Cp;
}

export type Hj212AnomalyCode =
  | 'OVERSIZE'
  | 'LENGTH_CHAR_COUNT'
  | 'CRC_VARIANT'
  | 'MISSING_CRLF'
  | 'BARE_LF'
  | 'DUPLICATE_KEY'
  | 'BAD_PAIR'
  | 'EMPTY_PAIR'
  | 'BAD_FLAG'
  | 'BAD_PACKET_NUMBER'
  | 'FLAG_SPLIT_MISMATCH'
  | 'NON_UTF8'
  /** DataTime is not YYYYMMDDhhmmss[zzz]: the reading carries no itime (FORMAT.md §2.3). */
  | 'BAD_DATATIME';

/** Something off that was accepted (lenient mode), or noted without consequence (both modes). */
export interface Hj212Anomaly {
  code: Hj212AnomalyCode;
  message: string;
}

/** A frame that passed the checks of the decoder's mode. */
export interface Hj212Frame {
  ok: true;
  /** Stream offset of its `##`. */
  offset: number;
  /** The exact bytes received, `##` through CR LF. */
  raw: Uint8Array;
  /** SHA-256 of `raw`. */
  sha256: Uint8Array;
  parsed: Hj212Parsed;
  /** Empty for a clean frame. */
  anomalies: Hj212Anomaly[];
}

/** Bytes that were rejected, with the reason. */
export interface Hj212Rejection {
  ok: false;
  error: Hj212Error;
  /**
   * The rejected frame's bytes (absent for noise). For a folded run of truncated candidates (`candidates` >= 2),
   * only the run's first HJ212_RUN_RAW_BYTES (256) bytes; `error.length` covers the whole run.
   */
  raw?: Uint8Array;
  /** Present when several adjacent HJ212_TRUNCATED candidates were folded into this one rejection: how many. */
  candidates?: number;
  /** What the frame would parse to, when its boundaries were known and its fields parse (e.g. a bad CRC). */
  parsed?: Hj212Parsed;
}

export type Hj212DecodeResult = Hj212Frame | Hj212Rejection;
