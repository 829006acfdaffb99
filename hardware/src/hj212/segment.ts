/**
 * The data segment grammar (HJ 212-2017 §6.3.2 table 3, §6.3.3):
 *   header = `KEY=value;` pairs in any order (parse by key, not position), then `CP=&&<data area>&&` last.
 *   data area: groups split on `;`, pairs on `,`, key/value on the first `=`; a key containing `-` splits on its
 *   LAST `-` into (code, sub-field). Empty groups are ignored (a trailing `;` before `&&` occurs in the field).
 * Values stay the exact received strings.
 */
import type { Hj212Anomaly, Hj212Cp, Hj212FlagDecoded } from './types.ts';

export interface ParsedSegment {
  header_order: string[];
  header: Record<string, string>;
  flag_decoded?: Hj212FlagDecoded;
  cp: Hj212Cp;
}

/** A grammar failure: the message says what; the caller turns it into HJ212_BAD_FIELD. */
export class SegmentFieldError extends Error {}

const CP_OPEN = 'CP=&&';

/** A plain object without a prototype, so keys like `__proto__` from the wire are ordinary keys. */
export function record<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

/**
 * Parses a data segment (the text between `LLLL` and the CRC). In strict mode a grammar problem throws
 * SegmentFieldError; in lenient mode it is recorded in `anomalies` and the pair skipped. Anomalies that never
 * reject (a duplicate key with the same value, Flag's D bit disagreeing with PNUM/PNO) are recorded in both.
 */
export function parseDataSegment(text: string, lenient: boolean, anomalies: Hj212Anomaly[]): ParsedSegment {
  const bad = (code: Hj212Anomaly['code'], message: string): void => {
    if (!lenient) throw new SegmentFieldError(message);
    anomalies.push({ code, message });
  };

  let cpAt = text.startsWith(CP_OPEN) ? 0 : text.indexOf(`;${CP_OPEN}`);
  if (cpAt < 0) throw new SegmentFieldError('no CP=&& in the data segment');
  if (cpAt > 0) cpAt += 1;
  const bodyStart = cpAt + CP_OPEN.length;
  if (text.length < bodyStart + 2 || !text.endsWith('&&')) throw new SegmentFieldError('CP data area does not end with &&');

  // Header.
  const header = record<string>();
  const header_order: string[] = [];
  for (const part of text.slice(0, cpAt).split(';')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0) {
      bad('BAD_PAIR', `header field without key=value: ${JSON.stringify(part.slice(0, 40))}`);
      continue;
    }
    const key = part.slice(0, eq);
    const value = part.slice(eq + 1);
    if (key in header) {
      bad('DUPLICATE_KEY', `header key ${key} appears twice`);
    } else {
      header_order.push(key);
    }
    header[key] = value;
  }

  // CP data area.
  const params = record<string>();
  const items = record<Record<string, string>>();
  const item_order: string[] = [];
  for (const group of text.slice(bodyStart, text.length - 2).split(';')) {
    if (group === '') continue;
    for (const pair of group.split(',')) {
      if (pair === '') {
        anomalies.push({ code: 'EMPTY_PAIR', message: 'empty pair (",,") in CP' });
        continue;
      }
      const eq = pair.indexOf('=');
      if (eq <= 0) {
        bad('BAD_PAIR', `CP pair without key=value: ${JSON.stringify(pair.slice(0, 40))}`);
        continue;
      }
      const key = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      const dash = key.lastIndexOf('-');
      if (dash < 0) {
        setOnce(params, key, value, key, lenient, anomalies);
      } else {
        const code = key.slice(0, dash);
        const sub = key.slice(dash + 1);
        let item = items[code];
        if (item === undefined) {
          item = record<string>();
          items[code] = item;
          item_order.push(code);
        }
        setOnce(item, sub, value, key, lenient, anomalies);
      }
    }
  }

  const out: ParsedSegment = { header_order, header, cp: { params, items, item_order } };

  // Flag (table 3): integer 0..255, bits V5..V0 D A.
  const flagText = header.Flag;
  if (flagText !== undefined) {
    if (/^\d{1,3}$/.test(flagText) && Number(flagText) <= 255) {
      const value = Number(flagText);
      out.flag_decoded = {
        value,
        version_bits_V5_V0: value >> 2,
        D_has_PNUM_PNO: ((value >> 1) & 1) as 0 | 1,
        A_ack_required: (value & 1) as 0 | 1,
      };
    } else {
      bad('BAD_FLAG', `Flag is not an integer 0..255: ${JSON.stringify(flagText.slice(0, 20))}`);
    }
  }

  // PNUM / PNO (§6.3.2, C.49/C.50): both or neither, 1 <= PNO <= PNUM.
  const pnum = header.PNUM;
  const pno = header.PNO;
  if (pnum !== undefined || pno !== undefined) {
    const n = pnum !== undefined && /^\d{1,4}$/.test(pnum) ? Number(pnum) : NaN;
    const k = pno !== undefined && /^\d{1,4}$/.test(pno) ? Number(pno) : NaN;
    if (!(n >= 1 && k >= 1 && k <= n)) bad('BAD_PACKET_NUMBER', `PNUM/PNO invalid: PNUM=${String(pnum)} PNO=${String(pno)}`);
  }
  if (out.flag_decoded !== undefined) {
    const split = pnum !== undefined || pno !== undefined;
    if ((out.flag_decoded.D_has_PNUM_PNO === 1) !== split) {
      anomalies.push({
        code: 'FLAG_SPLIT_MISMATCH',
        message: split ? 'PNUM/PNO present but Flag D bit is 0' : 'Flag D bit is 1 but PNUM/PNO absent',
      });
    }
  }
  return out;
}

/** Later duplicates win (the reference reading's behaviour); the first position is kept. */
function setOnce(
  target: Record<string, string>,
  key: string,
  value: string,
  fullKey: string,
  lenient: boolean,
  anomalies: Hj212Anomaly[],
): void {
  const prev = target[key];
  if (prev !== undefined) {
    if (prev !== value && !lenient) throw new SegmentFieldError(`CP key ${fullKey} appears twice with different values`);
    anomalies.push({ code: 'DUPLICATE_KEY', message: `CP key ${fullKey} appears twice` });
  }
  target[key] = value;
}
