import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SHARED_SKIP_REASON } from '@stele/testkit';
import { checkCrc, crc16Hj212, crc16Modbus, crcText } from './crc.ts';
import { hj212FixtureDir } from './fixtures.ts';

const enc = (s: string) => new TextEncoder().encode(s);
const dir = hj212FixtureDir();

describe('HJ 212 CRC16 (Appendix A)', () => {
  it('gives the check values of PROTOCOLS.md §1.6', () => {
    expect(crcText(enc('123456789'))).toBe('2F80');
    expect(crcText(enc(''))).toBe('FFFF');
    expect(crcText(enc('A'))).toBe('7080');
  });

  it('matches the bit-by-bit algorithm as printed in the standard', () => {
    const reference = (data: Uint8Array): number => {
      let reg = 0xffff;
      for (const b of data) {
        reg = (reg >>> 8) ^ b;
        for (let k = 0; k < 8; k++) {
          const lsb = reg & 1;
          reg >>>= 1;
          if (lsb) reg ^= 0xa001;
        }
      }
      return reg;
    };
    let seed = 7;
    const next = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 16;
    for (let n = 0; n < 500; n++) {
      const data = Uint8Array.from({ length: next() % 300 }, () => next() & 0xff);
      expect(crc16Hj212(data)).toBe(reference(data));
    }
  });

  it('only ever has a low byte in {00,01,40,41,80,81,C0,C1}', () => {
    const lows = new Set<number>();
    for (let i = 0; i < 2000; i++) lows.add(crc16Hj212(enc(`frame ${i} ${i * 7919}`)) & 0xff);
    for (const l of lows) expect([0x00, 0x01, 0x40, 0x41, 0x80, 0x81, 0xc0, 0xc1]).toContain(l);
  });

  it('checks digits case-insensitively and refuses non-hex', () => {
    expect(checkCrc(enc('123456789'), '2f80')).toBe(true);
    expect(checkCrc(enc('123456789'), '2F81')).toBe(false);
    expect(checkCrc(enc('123456789'), '2F8G')).toBe(false);
  });

  it('throws RangeError for an unknown variant', () => {
    expect(() => crcText(enc('x'), 'crc32' as never)).toThrow(RangeError);
  });
});

describe('Modbus-style variant', () => {
  it('is CRC-16/MODBUS written low byte first', () => {
    expect(crc16Modbus(enc('123456789'))).toBe(0x4b37);
    expect(crcText(enc('123456789'), 'modbus-lsb-first')).toBe('374B');
    expect(crc16Modbus(enc('A'))).toBe(0x707f);
  });
});

describe.skipIf(!dir)(`crc_vectors.json (${SHARED_SKIP_REASON})`, () => {
  const vectors = dir
    ? (JSON.parse(readFileSync(join(dir, 'crc_vectors.json'), 'utf8')) as {
        vectors: { input_ascii: string; hj212: string; modbus_crc16_value?: string; modbus_wire_bytes_lsb_first?: string }[];
      }).vectors
    : [];

  it('has vectors', () => expect(vectors.length).toBeGreaterThanOrEqual(5));

  for (const v of vectors) {
    it(`HJ 212 CRC of ${JSON.stringify(v.input_ascii.slice(0, 24))}… is ${v.hj212}`, () => {
      expect(crcText(enc(v.input_ascii))).toBe(v.hj212);
      if (v.modbus_crc16_value !== undefined) {
        expect(crc16Modbus(enc(v.input_ascii)).toString(16).toUpperCase().padStart(4, '0')).toBe(v.modbus_crc16_value);
      }
      if (v.modbus_wire_bytes_lsb_first !== undefined) {
        expect(crcText(enc(v.input_ascii), 'modbus-lsb-first')).toBe(v.modbus_wire_bytes_lsb_first.replace(/ /g, ''));
      }
    });
  }
});
