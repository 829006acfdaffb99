import { SteleError } from '@stele/core';

/**
 * Codes for HJ 212 input that fails a check. The shared fixtures (packets_invalid.jsonl) state verdicts as
 * framing booleans, not names; they map as: `crc_ok: false` -> HJ212_BAD_CRC, `length_ok: false` ->
 * HJ212_BAD_LENGTH, `data_segment_over_1024: true` (strict) -> HJ212_OVERSIZE.
 */
export type Hj212ErrorCode =
  /** Bytes between frames that are not a frame (only reported when they are more than CR/LF/space/NUL). */
  | 'HJ212_NOISE'
  /** The declared length `LLLL` disagrees with the bytes between it and the CRC (HJ 212-2017 §6.3.1). */
  | 'HJ212_BAD_LENGTH'
  /** The 4 CRC digits are not hex or not the CRC16 of the data segment (Appendix A). */
  | 'HJ212_BAD_CRC'
  /** The data segment breaks the field grammar (§6.3.2, §6.3.3): no `CP=&&…&&`, a pair without `=`, a bad Flag… */
  | 'HJ212_BAD_FIELD'
  /** The frame does not end with CR LF, or no terminator came within the largest possible frame. */
  | 'HJ212_BAD_TRAILER'
  /**
   * The frame was cut off: the next `##LLLL` (or the end of the stream) came before its end. Adjacent candidates
   * each cut off by the next are folded into one (its `candidates` says how many).
   */
  | 'HJ212_TRUNCATED'
  /** The data segment is longer than allowed (strict: 1024 bytes, §6.3.1). */
  | 'HJ212_OVERSIZE'
  /** A split packet (PNUM/PNO) that cannot be reassembled: conflicting parts, evicted or expired groups. */
  | 'HJ212_REASSEMBLY'
  /** The serial link closed or failed while readings were awaited. */
  | 'HJ212_LINK_CLOSED';

export class Hj212Error extends SteleError<Hj212ErrorCode> {
  /** Offset in the byte stream of the first byte the error is about (the `##` of a frame). */
  readonly offset: number;
  /** Number of bytes the error covers (consumed and skipped). */
  readonly length: number;
  /** True for a broken link (HJ212_LINK_CLOSED), as the driver contract asks. */
  readonly disconnected: boolean;
  /** Frame candidates the error covers: 1, or n for a folded run of HJ212_TRUNCATED candidates. */
  readonly candidates: number;

  constructor(code: Hj212ErrorCode, message: string, options: { offset?: number; length?: number; candidates?: number; cause?: unknown } = {}) {
    const offset = options.offset ?? 0;
    const length = options.length ?? 0;
    const candidates = options.candidates ?? 1;
    super(code, message, { cause: options.cause, where: candidates === 1 ? { offset, length } : { offset, length, candidates } });
    this.offset = offset;
    this.length = length;
    this.candidates = candidates;
    this.disconnected = code === 'HJ212_LINK_CLOSED';
  }

  /** The `{code, offset, message}` shape the CLI prints. */
  toJSON(): { code: Hj212ErrorCode; offset: number; message: string } {
    return { code: this.code, offset: this.offset, message: this.message };
  }
}
