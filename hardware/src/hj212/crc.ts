/**
 * HJ 212 CRC16 (HJ 212-2017 Appendix A) and the Modbus-style variant some data loggers put in its place.
 *
 * HJ 212 CRC16, as printed in the standard: `reg = 0xFFFF`; per byte `reg = (reg >> 8) ^ byte` (the register's
 * LOW byte is dropped before every byte), then 8 rounds of `lsb = reg & 1; reg >>= 1; if (lsb) reg ^= 0xA001`.
 * The result is written as 4 hex digits, high byte first. Because the low byte is dropped, only 256 values are
 * possible: it catches line noise, nothing more (integrity comes from the reading's signature).
 *
 * Modbus-style variant (seen in the field, PROTOCOLS.md §1.6): the CRC-16/MODBUS value (`reg ^= byte`, same
 * rounds) written low byte first, e.g. `"123456789"` -> 0x4B37 -> `"374B"`.
 */

/** Which CRC a sender puts in the 4 hex digits after the data segment. */
export type Hj212CrcVariant = 'hj212' | 'modbus-lsb-first';

export const HJ212_CRC_VARIANTS: readonly Hj212CrcVariant[] = ['hj212', 'modbus-lsb-first'];

/** The reflected 0x8005 table (CRC-16/ARC): T[i] = 8 rounds applied to i. T[0x01] = 0xC0C1, T[0xFF] = 0x4040. */
const TABLE: Uint16Array = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let reg = i;
    for (let k = 0; k < 8; k++) reg = reg & 1 ? (reg >>> 1) ^ 0xa001 : reg >>> 1;
    t[i] = reg;
  }
  return t;
})();

/** HJ 212-2017 Appendix A CRC16 of `data` (the data segment only: not `##`, the length, or CR LF). */
export function crc16Hj212(data: Uint8Array, start = 0, end = data.length): number {
  let reg = 0xffff;
  for (let i = start; i < end; i++) reg = TABLE[((reg >>> 8) ^ data[i]!) & 0xff]!;
  return reg;
}

/** CRC-16/MODBUS of `data` (init 0xFFFF, reflected 0x8005, no final XOR). */
export function crc16Modbus(data: Uint8Array, start = 0, end = data.length): number {
  let reg = 0xffff;
  for (let i = start; i < end; i++) reg = (reg >>> 8) ^ TABLE[(reg ^ data[i]!) & 0xff]!;
  return reg;
}

const hex4 = (n: number): string => n.toString(16).toUpperCase().padStart(4, '0');

/**
 * The 4 characters a sender using `variant` writes after the data segment, uppercase:
 * `hj212` -> the HJ 212 CRC high byte first; `modbus-lsb-first` -> the Modbus CRC low byte first.
 */
export function crcText(data: Uint8Array, variant: Hj212CrcVariant = 'hj212', start = 0, end = data.length): string {
  if (variant === 'hj212') return hex4(crc16Hj212(data, start, end));
  if (variant === 'modbus-lsb-first') {
    const v = crc16Modbus(data, start, end);
    return hex4(((v & 0xff) << 8) | (v >>> 8));
  }
  throw new RangeError(`crc variant must be one of ${HJ212_CRC_VARIANTS.join(', ')}, got ${String(variant)}`);
}

/** True when `text` (4 hex digits, either case) is the `variant` CRC of `data`. */
export function checkCrc(data: Uint8Array, text: string, variant: Hj212CrcVariant = 'hj212'): boolean {
  return /^[0-9A-Fa-f]{4}$/.test(text) && text.toUpperCase() === crcText(data, variant);
}
