/**
 * HJ 212 frame encoder: header fields + CP -> `##LLLL<data segment>CCCC\r\n` with the length in UTF-8 bytes and
 * the CRC of the chosen variant. Plus the data logger's answers (HJ 212-2017 §6.1–6.2, Appendix C):
 * 9011 request answer (QnRtn), 9012 execution result (ExeRtn), 9014 data answer.
 */
import { utf8 } from '@stele/core';
import { type Hj212CrcVariant, crcText } from './crc.ts';
import { HJ212_MAX_DATA_LENGTH } from './decoder.ts';

/** Header fields of the data segment, written in the 2017 order QN;ST;CN;PW;MN;Flag;PNUM;PNO. */
export interface Hj212HeaderInput {
  QN?: string;
  ST: string;
  CN: string;
  PW: string;
  MN: string;
  Flag?: number | string;
  PNUM?: number | string;
  PNO?: number | string;
}

/**
 * The CP data area. `params` are written one per group (`DataTime=…;RtdInterval=30`); each item is one group
 * of its sub-fields (`a21026-Rtd=12.5,a21026-Flag=N`), in insertion order. A string is written verbatim.
 */
export interface Hj212CpInput {
  params?: Record<string, string>;
  items?: Record<string, Record<string, string>>;
}

export interface Hj212EncodeInput {
  header: Hj212HeaderInput;
  cp: Hj212CpInput | string;
  /** Default `hj212`. */
  crc?: Hj212CrcVariant;
  /** Allow a data segment over 1024 bytes (up to 9999). Default false. */
  allowOversize?: boolean;
}

const HEADER_ORDER = ['QN', 'ST', 'CN', 'PW', 'MN', 'Flag', 'PNUM', 'PNO'] as const;
/** Characters that would change the structure of a data segment. */
const FORBIDDEN = /[;,=&\r\n]/;

function checkText(what: string, s: string, allowDash = true): void {
  if (typeof s !== 'string') throw new TypeError(`${what} must be a string`);
  if (FORBIDDEN.test(s) || (!allowDash && s.includes('-'))) throw new RangeError(`${what} contains a reserved character: ${JSON.stringify(s)}`);
}

/** The CP body (between `CP=&&` and `&&`). */
export function formatCp(cp: Hj212CpInput): string {
  const groups: string[] = [];
  for (const [k, v] of Object.entries(cp.params ?? {})) {
    checkText('CP param name', k, false);
    if (k === '') throw new RangeError('CP param name is empty');
    checkText(`CP param ${k}`, v);
    groups.push(`${k}=${v}`);
  }
  for (const [code, subs] of Object.entries(cp.items ?? {})) {
    checkText('CP item code', code);
    const pairs: string[] = [];
    for (const [sub, v] of Object.entries(subs)) {
      checkText(`CP sub-field of ${code}`, sub, false);
      checkText(`CP value ${code}-${sub}`, v);
      pairs.push(`${code}-${sub}=${v}`);
    }
    if (pairs.length > 0) groups.push(pairs.join(','));
  }
  return groups.join(';');
}

/** The data segment text: header fields then `CP=&&…&&`. */
export function formatDataSegment(header: Hj212HeaderInput, cp: Hj212CpInput | string): string {
  const parts: string[] = [];
  for (const key of HEADER_ORDER) {
    const v = header[key];
    if (v === undefined) continue;
    const s = String(v);
    checkText(`header ${key}`, s);
    parts.push(`${key}=${s}`);
  }
  const body = typeof cp === 'string' ? cp : formatCp(cp);
  if (typeof cp === 'string' && /[\r\n]|&&/.test(cp)) throw new RangeError('CP body contains CR, LF or &&');
  parts.push(`CP=&&${body}&&`);
  return parts.join(';');
}

/** Frames a data segment: `##` + length (UTF-8 bytes, 4 digits) + segment + CRC + CR LF. */
export function frameDataSegment(segment: string | Uint8Array, crc: Hj212CrcVariant = 'hj212', allowOversize = false): Uint8Array {
  const data = typeof segment === 'string' ? utf8(segment) : segment;
  const max = allowOversize ? 9999 : HJ212_MAX_DATA_LENGTH;
  if (data.length > max) throw new RangeError(`data segment of ${data.length} bytes exceeds ${max}`);
  const head = utf8(`##${String(data.length).padStart(4, '0')}`);
  const tail = utf8(`${crcText(data, crc)}\r\n`);
  const out = new Uint8Array(head.length + data.length + tail.length);
  out.set(head, 0);
  out.set(data, head.length);
  out.set(tail, head.length + data.length);
  return out;
}

/** Encodes one frame. Throws RangeError for values that cannot be written (reserved characters, too long). */
export function encodeFrame(input: Hj212EncodeInput): Uint8Array {
  return frameDataSegment(formatDataSegment(input.header, input.cp), input.crc ?? 'hj212', input.allowOversize ?? false);
}

/** QN / DataTime text for a time: `YYYYMMDDhhmmsszzz` (QN) or `YYYYMMDDhhmmss` (DataTime), in local time of the site. */
export function formatHj212Time(timeMs: number, withMs: boolean, utcOffsetMinutes = 480): string {
  if (!Number.isFinite(timeMs)) throw new RangeError('timeMs must be a finite number');
  const d = new Date(timeMs + utcOffsetMinutes * 60_000);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const s = `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`;
  return withMs ? s + p(d.getUTCMilliseconds(), 3) : s;
}

/** Who answers: the data logger's identity. ST of answers is 91 (system interaction), Flag 4 (§6.1, App. C). */
export interface Hj212AnswerInput {
  /** QN of the request (9011/9012) or upload (9014) being answered. */
  qn: string;
  mn: string;
  pw: string;
  crc?: Hj212CrcVariant;
}

function answer(cn: string, a: Hj212AnswerInput, params: Record<string, string>): Uint8Array {
  return encodeFrame({ header: { QN: a.qn, ST: '91', CN: cn, PW: a.pw, MN: a.mn, Flag: 4 }, cp: { params }, crc: a.crc ?? 'hj212' });
}

/** QnRtn values (table 9 notes): 1 ready, 2 refused, 3 PW error, 4 MN error, 5 ST error, 6 Flag error, 7 QN error, 8 CN error, 9 CRC error, 100 unknown. */
export type QnRtn = 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 100;
/** ExeRtn values: 1 success, 2 failed, 3 bad request condition, 4 timeout, 5 busy, 6 system fault, 100 no data. */
export type ExeRtn = 1 | 2 | 3 | 4 | 5 | 6 | 100;

/** CN=9011 request answer: `ST=91;CN=9011;QN=<request QN>;Flag=4;CP=&&QnRtn=n&&`. */
export function encodeRequestAnswer(a: Hj212AnswerInput & { qnRtn?: QnRtn }): Uint8Array {
  return answer('9011', a, { QnRtn: String(a.qnRtn ?? 1) });
}

/** CN=9012 execution result: `ST=91;CN=9012;QN=<request QN>;Flag=4;CP=&&ExeRtn=n&&`. */
export function encodeExecutionAnswer(a: Hj212AnswerInput & { exeRtn?: ExeRtn }): Uint8Array {
  return answer('9012', a, { ExeRtn: String(a.exeRtn ?? 1) });
}

/** CN=9014 data answer to an upload with A=1: `ST=91;CN=9014;QN=<upload QN>;Flag=4;CP=&&&&`. */
export function encodeDataAnswer(a: Hj212AnswerInput): Uint8Array {
  return answer('9014', a, {});
}
