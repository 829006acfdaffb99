/**
 * Streaming HJ 212 frame decoder: bytes in (any chunking), frames and rejections out. Pure: no I/O, no clock.
 *
 * Frame (HJ 212-2017 §6.3.1): `##` LLLL <data segment, LLLL bytes> CCCC CR LF.
 * Framing rule: find `##` + 4 digits; the frame ends at the first LF after it (data segments are printable text;
 * UTF-8 never contains 0x0A inside a multi-byte character). If that LF is exactly where LLLL says, the frame is
 * well formed; otherwise the length or the trailer is wrong. A `##LLLL` seen before the end marks a truncated
 * frame, and decoding resumes there, so one lost byte costs one frame, not two.
 *
 * Memory: the decoder never holds more than the largest possible frame (2 + 4 + 9999 + 4 + 2 bytes) plus the
 * last chunk, whatever it is fed; noise is counted, not kept.
 */
import { sha256 } from '@stele/core';
import { type Hj212CrcVariant, HJ212_CRC_VARIANTS, crc16Hj212, crcText } from './crc.ts';
import { Hj212Error, type Hj212ErrorCode } from './errors.ts';
import { SegmentFieldError, parseDataSegment } from './segment.ts';
import type { Hj212Anomaly, Hj212DecodeResult, Hj212Frame, Hj212Parsed, Hj212Rejection } from './types.ts';

export type Hj212Mode = 'strict' | 'lenient';

export interface Hj212DecoderOptions {
  /**
   * `strict` (default): frame, length (UTF-8 bytes), CRC of the configured variant, CR LF, data segment
   * <= 1024 bytes and the field grammar must all pass, else the frame is rejected.
   * `lenient`: also accepts, recording an anomaly each: a data segment over 1024 bytes, a length that counts
   * characters instead of UTF-8 bytes, the other CRC variant, a bare LF or missing CR LF, grammar slips
   * (pairs without `=`, a non-numeric Flag, bad PNUM/PNO), non-UTF-8 bytes.
   * Lowercase CRC digits are fine in both modes.
   */
  mode?: Hj212Mode;
  /** CRC the sender uses. Default `hj212` (Appendix A); `modbus-lsb-first` for loggers that send Modbus CRC. */
  crc?: Hj212CrcVariant;
  /** Largest data segment accepted at all, in bytes. Default 1024 strict (§6.3.1), 9999 lenient (what LLLL allows). */
  maxDataLength?: number;
}

/** HJ 212-2017 §6.3.1: data segment 0..1024 characters. */
export const HJ212_MAX_DATA_LENGTH = 1024;
/** `##` + 4 digits + 9999 + CRC + CR LF: no frame can be longer. */
export const HJ212_MAX_FRAME_BYTES = 2 + 4 + 9999 + 4 + 2;
/** A run of noise is reported once it reaches this many bytes, so that noise is never kept or grown. */
const NOISE_REPORT_BYTES = 4096;
/** Raw bytes kept for a folded run of truncated candidates (its first bytes; the error's length covers the run). */
export const HJ212_RUN_RAW_BYTES = 256;

const HASH = 0x23;
const CR = 0x0d;
const LF = 0x0a;
const isDigit = (b: number | undefined): boolean => b !== undefined && b >= 0x30 && b <= 0x39;
const isQuiet = (b: number): boolean => b === CR || b === LF || b === 0x20 || b === 0x00 || b === 0x09;

const utf8Fatal = new TextDecoder('utf-8', { fatal: true });
const utf8Loose = new TextDecoder('utf-8');
const latin1 = new TextDecoder('latin1');

export class Hj212StreamDecoder {
  readonly mode: Hj212Mode;
  readonly crc: Hj212CrcVariant;
  readonly maxDataLength: number;

  private buf = new Uint8Array(1024);
  private start = 0; // first unconsumed byte in buf
  private stop = 0; // one past the last byte in buf
  private base = 0; // stream offset of buf[0]

  // The candidate frame being scanned (when inFrame).
  private inFrame = false;
  private p = 0; // index of its `##`
  private declared = 0;
  private scan = 0; // next index to examine
  private nextStart = -1; // index of a `##LLLL` seen before its end

  // Bytes already known to hold no LF: [lfFreeFrom, lfFreeTo) (buffer indices). A candidate cut short by the next
  // `##LLLL` has scanned up to its own declared end for an LF; the next candidate starts inside that span and
  // skips it instead of scanning it again. Without this, `##9999` repeated cost ~10 KB of scanning per 6 input
  // bytes (0.03-0.15 MB/s; docs/BENCHMARKS.md, HJ 212 resynchronisation).
  private lfFreeFrom = -1;
  private lfFreeTo = -1;

  // The current run of candidates each cut off by the next one (HJ212_TRUNCATED), not reported yet. A lone one is
  // reported as it always was; two or more adjacent ones fold into one rejection (see flushRun). Without this,
  // `##9999` or `##0000` repeated cost one coded error (with a stack) per 6 input bytes: 0.2 MB/s against ~30 MB/s
  // for noise (docs/BENCHMARKS.md, HJ 212 resynchronisation).
  private run: { from: number; to: number; count: number; raw: Uint8Array; declared: number; cutByNext: boolean } | undefined;

  // The current noise run.
  private noiseFrom = -1; // stream offset, -1 when none
  private noiseLen = 0;
  private noiseLoud = false;

  constructor(options: Hj212DecoderOptions = {}) {
    const mode = options.mode ?? 'strict';
    if (mode !== 'strict' && mode !== 'lenient') throw new RangeError(`options.mode must be strict or lenient, got ${String(mode)}`);
    const crc = options.crc ?? 'hj212';
    if (!HJ212_CRC_VARIANTS.includes(crc)) throw new RangeError(`options.crc must be one of ${HJ212_CRC_VARIANTS.join(', ')}`);
    const max = options.maxDataLength ?? (mode === 'strict' ? HJ212_MAX_DATA_LENGTH : 9999);
    if (!Number.isInteger(max) || max < 0 || max > 9999) throw new RangeError('options.maxDataLength must be an integer 0..9999');
    this.mode = mode;
    this.crc = crc;
    this.maxDataLength = max;
  }

  /** Bytes held for an unfinished frame (bounded by HJ212_MAX_FRAME_BYTES + 5). */
  get bufferedBytes(): number {
    return this.stop - this.start;
  }

  /** Stream offset of the next byte to be pushed. */
  get streamOffset(): number {
    return this.base + this.stop;
  }

  /** Feeds a chunk; returns every frame or rejection it completes, in stream order. */
  push(chunk: Uint8Array): Hj212DecodeResult[] {
    if (!(chunk instanceof Uint8Array)) throw new TypeError('chunk must be a Uint8Array');
    const out: Hj212DecodeResult[] = [];
    let off = 0;
    // Feed in slices so the buffer stays bounded even for one huge chunk.
    while (off < chunk.length) {
      const room = Math.max(64, HJ212_MAX_FRAME_BYTES + 16 - (this.stop - this.start));
      const n = Math.min(room, chunk.length - off);
      this.append(chunk.subarray(off, off + n));
      off += n;
      this.process(false, out);
    }
    this.flushRun(out);
    return out;
  }

  /** The stream ended: returns what the held bytes amount to (a truncated frame, noise, or nothing). */
  end(): Hj212DecodeResult[] {
    const out: Hj212DecodeResult[] = [];
    this.process(true, out);
    this.flushRun(out);
    this.flushNoise(out);
    return out;
  }

  private append(bytes: Uint8Array): void {
    const live = this.stop - this.start;
    if (this.stop + bytes.length > this.buf.length) {
      if (live + bytes.length <= this.buf.length && this.start > 0) {
        this.buf.copyWithin(0, this.start, this.stop);
      } else {
        const next = new Uint8Array(Math.max(this.buf.length * 2, live + bytes.length));
        next.set(this.buf.subarray(this.start, this.stop));
        this.buf = next;
      }
      const shift = this.start;
      this.base += shift;
      this.start = 0;
      this.stop = live;
      if (this.inFrame) {
        this.p -= shift;
        this.scan -= shift;
        if (this.nextStart >= 0) this.nextStart -= shift;
      }
      this.lfFreeFrom = Math.max(0, this.lfFreeFrom - shift);
      this.lfFreeTo -= shift;
      if (this.lfFreeTo <= this.lfFreeFrom) this.lfFreeFrom = this.lfFreeTo = -1;
    }
    this.buf.set(bytes, this.stop);
    this.stop += bytes.length;
  }

  private process(final: boolean, out: Hj212DecodeResult[]): void {
    for (;;) {
      if (!this.inFrame) {
        if (!this.seek(final, out)) return;
      }
      if (!this.frame(final, out)) return;
    }
  }

  /** Looks for `##` + 4 digits; everything before it is noise. Returns true when a candidate frame starts. */
  private seek(final: boolean, out: Hj212DecodeResult[]): boolean {
    const b = this.buf;
    for (;;) {
      let i = this.start;
      while (i + 1 < this.stop && !(b[i] === HASH && b[i + 1] === HASH)) i++;
      if (i + 1 >= this.stop) {
        // No `##` yet: keep a trailing `#` (it may be the first half).
        const keep = !final && this.stop > this.start && b[this.stop - 1] === HASH ? 1 : 0;
        this.noise(this.start, this.stop - keep, out);
        this.start = this.stop - keep;
        return false;
      }
      this.noise(this.start, i, out);
      this.start = i;
      if (this.stop - i < 6) {
        if (final) {
          this.noise(i, this.stop, out);
          this.start = this.stop;
        }
        return false;
      }
      if (isDigit(b[i + 2]) && isDigit(b[i + 3]) && isDigit(b[i + 4]) && isDigit(b[i + 5])) {
        this.flushNoise(out);
        this.inFrame = true;
        this.p = i;
        this.declared = (b[i + 2]! - 48) * 1000 + (b[i + 3]! - 48) * 100 + (b[i + 4]! - 48) * 10 + (b[i + 5]! - 48);
        this.scan = i + 6;
        this.nextStart = -1;
        return true;
      }
      this.noise(i, i + 1, out);
      this.start = i + 1;
    }
  }

  /** Scans the candidate frame for its end. Returns true when it was settled (consumed). */
  private frame(final: boolean, out: Hj212DecodeResult[]): boolean {
    const b = this.buf;
    const p = this.p;
    const crcAt = p + 6 + this.declared; // where LLLL says the CRC starts
    const limit = p + HJ212_MAX_FRAME_BYTES;
    let i = this.scan;
    const scanFrom = i;
    let lf = -1;
    let waiting = false;
    while (i < this.stop && i < limit) {
      if (this.nextStart >= 0) {
        // After a `##LLLL` inside the candidate, it is only still whole if its CR LF is where LLLL says.
        if (i >= crcAt + 6) break;
        // only an LF matters now: jump over bytes an earlier candidate already found free of LF
        if (i >= this.lfFreeFrom && i < this.lfFreeTo) {
          i = Math.min(this.lfFreeTo, crcAt + 6, limit, this.stop);
          continue;
        }
      }
      const c = b[i]!;
      if (c === LF) {
        lf = i;
        break;
      }
      // (a `#` as the last byte held may be the first half of `##`: wait for the next byte, never read past stop)
      if (this.nextStart < 0 && c === HASH && (i + 1 >= this.stop || b[i + 1] === HASH)) {
        if (i + 5 >= this.stop) {
          if (!final) waiting = true; // cannot tell yet whether `##` starts a frame
          if (waiting) break;
        } else if (isDigit(b[i + 2]) && isDigit(b[i + 3]) && isDigit(b[i + 4]) && isDigit(b[i + 5])) {
          this.nextStart = i;
        }
      }
      i++;
    }
    this.scan = i;
    if (lf < 0 && i > scanFrom) {
      // [scanFrom, i) holds no LF: extend the known span when it touches it, else start a new one
      if (this.lfFreeTo >= scanFrom && this.lfFreeFrom <= scanFrom && this.lfFreeFrom >= 0) this.lfFreeTo = Math.max(this.lfFreeTo, i);
      else {
        this.lfFreeFrom = scanFrom;
        this.lfFreeTo = i;
      }
    }

    const q = this.nextStart;
    if (lf >= 0) {
      if (lf === crcAt + 5 && b[crcAt + 4] === CR) {
        const r = this.settle(p, lf + 1, crcAt, true, []);
        if (r.ok || q < 0) return this.emit(out, r, lf + 1);
        return this.truncatedAt(q, out);
      }
      if (q >= 0) return this.truncatedAt(q, out);
      return this.misframed(lf, out);
    }
    if (q >= 0 && (i >= crcAt + 6 || final)) return this.truncatedAt(q, out);
    if (i >= limit) {
      return this.reject(out, 'HJ212_BAD_TRAILER', `no CR LF within ${HJ212_MAX_FRAME_BYTES} bytes of the frame start`, p, limit);
    }
    if (final && !waiting) {
      // The stream ended inside the candidate.
      if (this.stop === crcAt + 4 && q < 0) return this.missingCrlf(this.stop, out);
      return this.truncatedRun(out, p, this.stop, false);
    }
    return false;
  }

  /** A `##LLLL` came before the candidate's end: the candidate stops there. */
  private truncatedAt(q: number, out: Hj212DecodeResult[]): boolean {
    const p = this.p;
    const crcEnd = p + 6 + this.declared + 4;
    if (q === crcEnd) return this.missingCrlf(q, out);
    if (q > crcEnd) return this.reject(out, 'HJ212_BAD_TRAILER', `no CR LF after the CRC; the next frame starts ${q - crcEnd} bytes later`, p, q);
    return this.truncatedRun(out, p, q, true);
  }

  /** Data and CRC are complete where LLLL says, but no CR LF follows. */
  private missingCrlf(end: number, out: Hj212DecodeResult[]): boolean {
    const p = this.p;
    if (this.mode === 'strict') return this.reject(out, 'HJ212_BAD_TRAILER', 'frame does not end with CR LF', p, end, true);
    return this.emit(out, this.settle(p, end, p + 6 + this.declared, false, [{ code: 'MISSING_CRLF', message: 'no CR LF after the CRC' }]), end);
  }

  /** The first LF after `##LLLL` is not where LLLL says. */
  private misframed(lf: number, out: Hj212DecodeResult[]): boolean {
    const b = this.buf;
    const p = this.p;
    const end = lf + 1;
    const hasCr = lf - 1 >= p + 6 && b[lf - 1] === CR;
    const crcAt = (hasCr ? lf - 1 : lf) - 4;
    if (crcAt < p + 6) return this.reject(out, 'HJ212_BAD_TRAILER', 'frame ends before its CRC', p, end);
    const anomalies: Hj212Anomaly[] = [];
    const actual = crcAt - (p + 6);
    const lenient = this.mode === 'lenient';
    if (actual !== this.declared) {
      const chars = lenient ? countUtf8Chars(b.subarray(p + 6, crcAt)) : -1;
      if (chars !== this.declared) {
        return this.reject(out, 'HJ212_BAD_LENGTH', `declared length ${this.declared}, data segment has ${actual} bytes`, p, end, true, crcAt, hasCr);
      }
      anomalies.push({ code: 'LENGTH_CHAR_COUNT', message: `declared length ${this.declared} counts characters; the data segment has ${actual} UTF-8 bytes` });
    }
    if (!hasCr) {
      if (!lenient) return this.reject(out, 'HJ212_BAD_TRAILER', 'frame ends with LF without CR', p, end, true, crcAt, hasCr);
      anomalies.push({ code: 'BARE_LF', message: 'frame ends with LF without CR' });
    }
    return this.emit(out, this.settle(p, end, crcAt, hasCr, anomalies), end);
  }

  /** Checks CRC, size and fields of a frame whose boundaries are known: [p, end), CRC at crcAt. */
  private settle(p: number, end: number, crcAt: number, hasCrlf: boolean, anomalies: Hj212Anomaly[]): Hj212DecodeResult {
    const b = this.buf;
    const offset = this.base + p;
    const raw = b.slice(p, end);
    const fail = (code: Hj212ErrorCode, message: string, parsed?: Hj212Parsed): Hj212Rejection => {
      const r: Hj212Rejection = { ok: false, error: new Hj212Error(code, message, { offset, length: end - p }), raw };
      if (parsed !== undefined) r.parsed = parsed;
      return r;
    };
    const dataStart = p + 6;
    const crcDeclared = latin1.decode(b.subarray(crcAt, crcAt + 4));
    const crcHj = crc16Hj212(b, dataStart, crcAt).toString(16).toUpperCase().padStart(4, '0');
    const hexOk = /^[0-9A-Fa-f]{4}$/.test(crcDeclared);
    const upper = crcDeclared.toUpperCase();
    let variant: Hj212Parsed['framing']['crc_variant_detected'] = 'unknown';
    if (hexOk) {
      if (upper === (this.crc === 'hj212' ? crcHj : crcText(b, this.crc, dataStart, crcAt))) variant = this.crc;
      else {
        const other: Hj212CrcVariant = this.crc === 'hj212' ? 'modbus-lsb-first' : 'hj212';
        if (upper === (other === 'hj212' ? crcHj : crcText(b, other, dataStart, crcAt))) variant = other;
      }
    }
    const actual = crcAt - dataStart;
    const lenient = this.mode === 'lenient';
    let crcAccepted = variant === this.crc;
    if (variant !== 'unknown' && variant !== this.crc && lenient) {
      anomalies.push({ code: 'CRC_VARIANT', message: `CRC ${crcDeclared} is the ${variant} CRC, expected ${this.crc}` });
      crcAccepted = true;
    }
    const framing: Hj212Parsed['framing'] = {
      declared_length: this.declared,
      actual_length_bytes: actual,
      length_ok: actual === this.declared,
      crc_declared: crcDeclared,
      crc_hj212: crcHj,
      crc_ok: crcAccepted,
      crc_variant_detected: variant,
      has_crlf: hasCrlf,
      data_segment_over_1024: actual > HJ212_MAX_DATA_LENGTH,
    };

    // Fields: parse even when the CRC fails, so a rejection can show what the frame claimed.
    const segBytes = b.subarray(dataStart, crcAt);
    let text: string;
    let fieldError: string | undefined;
    try {
      text = utf8Fatal.decode(segBytes);
    } catch {
      text = utf8Loose.decode(segBytes);
      if (lenient) anomalies.push({ code: 'NON_UTF8', message: 'data segment is not valid UTF-8' });
      else fieldError = 'data segment is not valid UTF-8';
    }
    let parsed: Hj212Parsed | undefined;
    try {
      parsed = { framing, ...parseDataSegment(text, lenient, anomalies) };
    } catch (e) {
      if (!(e instanceof SegmentFieldError)) throw e;
      fieldError ??= e.message;
    }
    if (!hexOk) return fail('HJ212_BAD_CRC', `CRC field is not 4 hex digits: ${JSON.stringify(crcDeclared)}`, parsed);
    if (!crcAccepted) {
      const hint = variant === 'unknown' ? '' : ` (it is the ${variant} CRC; try crc=${variant})`;
      return fail('HJ212_BAD_CRC', `CRC ${crcDeclared} does not match ${this.crc === 'hj212' ? crcHj : crcText(b, this.crc, dataStart, crcAt)}${hint}`, parsed);
    }
    if (actual > this.maxDataLength) {
      return fail('HJ212_OVERSIZE', `data segment of ${actual} bytes exceeds ${this.maxDataLength}`, parsed);
    }
    if (actual > HJ212_MAX_DATA_LENGTH) {
      anomalies.push({ code: 'OVERSIZE', message: `data segment of ${actual} bytes exceeds the standard's ${HJ212_MAX_DATA_LENGTH}` });
    }
    if (fieldError !== undefined || parsed === undefined) return fail('HJ212_BAD_FIELD', fieldError ?? 'data segment does not parse');
    const frame: Hj212Frame = { ok: true, offset, raw, sha256: sha256(raw), parsed, anomalies };
    return frame;
  }

  private emit(out: Hj212DecodeResult[], r: Hj212DecodeResult, end: number): true {
    this.flushRun(out);
    out.push(r);
    this.start = end;
    this.inFrame = false;
    return true;
  }

  /** Rejects [p, end). With `known`, the frame's boundaries are certain and it is parsed for the record. */
  private reject(
    out: Hj212DecodeResult[],
    code: Hj212ErrorCode,
    message: string,
    p: number,
    end: number,
    known = false,
    crcAt = -1,
    hasCr = false,
  ): true {
    let parsed: Hj212Parsed | undefined;
    if (known) {
      const at = crcAt >= 0 ? crcAt : end - 4;
      if (at >= p + 6) {
        const r = this.settle(p, end, at, hasCr, []);
        parsed = r.parsed;
      }
    }
    const rej: Hj212Rejection = {
      ok: false,
      error: new Hj212Error(code, message, { offset: this.base + p, length: end - p }),
      raw: this.buf.slice(p, end),
    };
    if (parsed !== undefined) rej.parsed = parsed;
    return this.emit(out, rej, end);
  }

  /**
   * Rejects the candidate [p, end) as HJ212_TRUNCATED, cut off by the next `##LLLL` (cutByNext) or by the end of
   * the stream: adds it to the current run, or starts one when it does not adjoin it.
   */
  private truncatedRun(out: Hj212DecodeResult[], p: number, end: number, cutByNext: boolean): true {
    const from = this.base + p;
    const run = this.run;
    if (run !== undefined && run.to === from) {
      run.to = this.base + end;
      run.count++;
      if (run.raw.length > HJ212_RUN_RAW_BYTES) run.raw = run.raw.slice(0, HJ212_RUN_RAW_BYTES);
      else if (run.raw.length < HJ212_RUN_RAW_BYTES) {
        const more = this.buf.subarray(p, Math.min(end, p + HJ212_RUN_RAW_BYTES - run.raw.length));
        const raw = new Uint8Array(run.raw.length + more.length);
        raw.set(run.raw);
        raw.set(more, run.raw.length);
        run.raw = raw;
      }
    } else {
      this.flushRun(out);
      this.run = { from, to: this.base + end, count: 1, raw: this.buf.slice(p, end), declared: this.declared, cutByNext };
    }
    this.start = end;
    this.inFrame = false;
    return true;
  }

  /**
   * Reports the current run of truncated candidates: a lone one exactly as any rejection (its message, all its
   * bytes); a run of n >= 2 as one HJ212_TRUNCATED covering the run, with `candidates: n` and its first
   * HJ212_RUN_RAW_BYTES bytes.
   */
  private flushRun(out: Hj212DecodeResult[]): void {
    const run = this.run;
    if (run === undefined) return;
    this.run = undefined;
    const length = run.to - run.from;
    if (run.count === 1) {
      const message = run.cutByNext
        ? `frame cut off: the next frame starts ${length} bytes after this one (declared length ${run.declared})`
        : `stream ended inside a frame (declared length ${run.declared})`;
      out.push({ ok: false, error: new Hj212Error('HJ212_TRUNCATED', message, { offset: run.from, length }), raw: run.raw });
      return;
    }
    const message = `${run.count} frame starts in a row, each cut off by the next \`##LLLL\` (${length} bytes; corrupt or hostile input)`;
    out.push({
      ok: false,
      error: new Hj212Error('HJ212_TRUNCATED', message, { offset: run.from, length, candidates: run.count }),
      raw: run.raw.length > HJ212_RUN_RAW_BYTES ? run.raw.slice(0, HJ212_RUN_RAW_BYTES) : run.raw,
      candidates: run.count,
    });
  }

  private noise(from: number, to: number, out: Hj212DecodeResult[]): void {
    if (to <= from) return;
    this.flushRun(out);
    if (this.noiseFrom < 0) this.noiseFrom = this.base + from;
    for (let i = from; i < to && !this.noiseLoud; i++) if (!isQuiet(this.buf[i]!)) this.noiseLoud = true;
    this.noiseLen += to - from;
    if (this.noiseLen >= NOISE_REPORT_BYTES) this.flushNoise(out);
  }

  private flushNoise(out: Hj212DecodeResult[]): void {
    if (this.noiseFrom >= 0 && this.noiseLoud) {
      out.push({
        ok: false,
        error: new Hj212Error('HJ212_NOISE', `${this.noiseLen} bytes that are not a frame`, { offset: this.noiseFrom, length: this.noiseLen }),
      });
    }
    this.noiseFrom = -1;
    this.noiseLen = 0;
    this.noiseLoud = false;
  }
}

/** Number of UTF-8 characters (code points) in `bytes`, counting each malformed byte as one. */
function countUtf8Chars(bytes: Uint8Array): number {
  let n = 0;
  for (const byte of bytes) if ((byte & 0xc0) !== 0x80) n++;
  return n;
}

/** Decodes every frame in `bytes` (a whole capture). */
export function decodeAll(bytes: Uint8Array, options: Hj212DecoderOptions = {}): Hj212DecodeResult[] {
  const d = new Hj212StreamDecoder(options);
  return [...d.push(bytes), ...d.end()];
}

/**
 * Decodes exactly one frame (`##…\r\n`). Anything else (noise around it, a second frame, nothing) makes the
 * result a rejection: the first one found, or HJ212_TRUNCATED when there was no frame at all.
 */
export function decodeFrame(bytes: Uint8Array, options: Hj212DecoderOptions = {}): Hj212DecodeResult {
  const results = decodeAll(bytes, options);
  const only = results[0];
  if (results.length === 1 && only !== undefined) return only;
  const firstBad = results.find((r) => !r.ok);
  if (firstBad !== undefined) return firstBad;
  if (only === undefined) return { ok: false, error: new Hj212Error('HJ212_TRUNCATED', 'no frame in input', { offset: 0, length: bytes.length }) };
  return { ok: false, error: new Hj212Error('HJ212_NOISE', `${results.length} frames where one was expected`, { offset: 0, length: bytes.length }) };
}
