import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SHARED_SKIP_REASON, sharedDir } from '@stele/testkit';
import { ModbusError } from './errors.ts';
import {
  appendCrc,
  bitsPerCharacter,
  checkCrc,
  crcModbus,
  decodeReadResponse,
  decodeRequest,
  encodeException,
  encodeReadRequest,
  encodeReadResponse,
  interCharTimeoutMs,
  silentIntervalMs,
} from './frame.ts';
import { MD02, XY_MD02, XY_MD02_X100, formatScaled, measurementsFromRegisters, profileRequest } from './profile.ts';

const hex = (s: string) => Uint8Array.from(s.trim().split(/\s+/).map((h) => parseInt(h, 16)));
const toHex = (b: Uint8Array) => [...b].map((x) => x.toString(16).toUpperCase().padStart(2, '0')).join(' ');

interface FixtureFrame {
  id: string;
  hex: string;
  crc_ok: boolean;
  decoded?: Record<string, number>;
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof ModbusError ? e.code : `not a ModbusError: ${String(e)}`;
  }
  return undefined;
}

describe('CRC-16/MODBUS', () => {
  it('has the check value 0x4B37 for "123456789"', () => {
    expect(crcModbus(new TextEncoder().encode('123456789'))).toBe(0x4b37);
  });
  it('is appended low byte first', () => {
    expect(toHex(appendCrc(hex('01 04 00 01 00 02')))).toBe('01 04 00 01 00 02 20 0B');
  });
});

const dir = sharedDir();
describe.skipIf(!dir)(`every frame of fixtures/modbus/temp_humidity_sensor_frames.json ${dir ? '' : SHARED_SKIP_REASON}`, () => {
  const frames: FixtureFrame[] = dir
    ? JSON.parse(readFileSync(join(dir, 'domain/fixtures/modbus/temp_humidity_sensor_frames.json'), 'utf8')).frames
    : [];

  it('has frames', () => expect(frames.length).toBeGreaterThan(10));

  it('has the CRC the fixture says', () => {
    for (const f of frames) expect(checkCrc(hex(f.hex)), f.id).toBe(f.crc_ok);
  });

  it('requests decode and re-encode byte for byte', () => {
    for (const f of frames.filter((x) => x.id.endsWith('-req') || x.id.includes('set-'))) {
      if (f.id === 'sht20-set-addr-baud-resp') continue; // FC 0x10 response, not a request
      const r = decodeRequest(hex(f.hex));
      if (r.functionCode === 0x03 || r.functionCode === 0x04) {
        expect(toHex(encodeReadRequest({ slave: r.slave, functionCode: r.functionCode, address: r.address, quantity: r.quantity })), f.id).toBe(f.hex);
      }
    }
    expect(decodeRequest(hex('01 10 01 01 00 02 04 00 20 25 80 25 09')).values).toEqual([0x20, 9600]);
    expect(decodeRequest(hex('01 06 01 01 00 08 D8 30')).values).toEqual([8]);
  });

  const byId = (id: string) => {
    const f = frames.find((x) => x.id === id);
    if (f === undefined) throw new Error(`fixture ${id} missing`);
    return f;
  };
  const valueOf = (m: { code: string; value: string }[], code: string) => m.find((x) => x.code === code)?.value;

  it('XY-MD02 ×10 temperature and humidity responses decode to their values', () => {
    const t = byId('sht20-read-temp-resp-x10');
    const tr = decodeReadResponse(hex(t.hex), { slave: 1, functionCode: 4, address: 1, quantity: 1 });
    expect(tr.registers).toEqual([t.decoded!.raw]);
    expect(formatScaled(tr.registers[0]!, 10)).toBe('30.5');
    expect(Number(formatScaled(tr.registers[0]!, 10))).toBe(t.decoded!.temperature_c);
    const h = byId('sht20-read-hum-resp-x10');
    const hr = decodeReadResponse(hex(h.hex), { slave: 1, functionCode: 4, address: 2, quantity: 1 });
    expect(hr.registers).toEqual([h.decoded!.raw]);
    expect(Number(formatScaled(hr.registers[0]!, 10))).toBe(h.decoded!.rh_pct);
  });

  it('×100 clones decode with scale 100, keeping two decimals', () => {
    const t = decodeReadResponse(hex(byId('sht20-read-temp-resp-x100').hex));
    expect(t.registers).toEqual([3050]);
    expect(formatScaled(3050, 100)).toBe('30.50');
    expect(Number(formatScaled(t.registers[0]!, 100))).toBe(byId('sht20-read-temp-resp-x100').decoded!.temperature_c);
    const h = decodeReadResponse(hex(byId('sht20-read-hum-resp-x100').hex));
    expect(Number(formatScaled(h.registers[0]!, 100))).toBe(byId('sht20-read-hum-resp-x100').decoded!.rh_pct);
    // The ×100 profile applied to a two-register read:
    const m = measurementsFromRegisters(XY_MD02_X100, [3050, 5460]);
    expect(m).toEqual([
      { code: 'temperature', kind: 'Rtd', unit: '°C', value: '30.50' },
      { code: 'humidity', kind: 'Rtd', unit: '%RH', value: '54.60' },
    ]);
  });

  it('the XY-MD02 two-register read: request from the profile, response to measurements', () => {
    const req = profileRequest(XY_MD02, 1);
    expect(toHex(encodeReadRequest(req))).toBe(byId('sht20-read-both-req').hex);
    const f = byId('sht20-read-both-resp');
    const r = decodeReadResponse(hex(f.hex), req);
    const m = measurementsFromRegisters(XY_MD02, r.registers, req.address);
    expect(m).toEqual([
      { code: 'temperature', kind: 'Rtd', unit: '°C', value: '30.5' },
      { code: 'humidity', kind: 'Rtd', unit: '%RH', value: '54.6' },
    ]);
    expect(Number(valueOf(m, 'temperature'))).toBe(f.decoded!.temperature_c);
    expect(Number(valueOf(m, 'humidity'))).toBe(f.decoded!.rh_pct);
  });

  it('the MD02 FC 03 read: humidity first, negative temperature in two’s complement', () => {
    const req = profileRequest(MD02, 1);
    expect(toHex(encodeReadRequest(req))).toBe(byId('md02-fc03-read-req').hex);
    const f = byId('md02-fc03-read-resp');
    const r = decodeReadResponse(hex(f.hex), req);
    expect(r.registers).toEqual([f.decoded!.humidity_raw, 0xff9b]);
    const m = measurementsFromRegisters(MD02, r.registers, req.address);
    expect(m.map((x) => [x.code, x.value])).toEqual([
      ['humidity', '14.6'],
      ['temperature', '-10.1'],
    ]);
    expect(Number(valueOf(m, 'temperature'))).toBe(f.decoded!.temperature_c);
    expect(Number(valueOf(m, 'humidity'))).toBe(f.decoded!.rh_pct);
  });

  it('the holding-register read of the address decodes', () => {
    const f = byId('sht20-read-addr-resp');
    const r = decodeReadResponse(hex(f.hex), decodeRequestAsRead(byId('sht20-read-addr-req').hex));
    expect(r.registers).toEqual([f.decoded!.address]);
  });

  it('the same frame with one bit flipped is MODBUS_BAD_CRC', () => {
    for (const f of frames.filter((x) => x.decoded !== undefined)) {
      const b = hex(f.hex);
      b[3] = b[3]! ^ 0x01;
      expect(codeOf(() => decodeReadResponse(b)), f.id).toBe('MODBUS_BAD_CRC');
    }
  });
});

function decodeRequestAsRead(h: string) {
  const r = decodeRequest(hex(h));
  if (r.functionCode !== 3 && r.functionCode !== 4) throw new Error('not a read');
  return { slave: r.slave, functionCode: r.functionCode, address: r.address, quantity: r.quantity } as const;
}

describe('decodeReadResponse', () => {
  const req = { slave: 1, functionCode: 4, address: 1, quantity: 2 } as const;
  it('reports an exception with its code and meaning', () => {
    try {
      decodeReadResponse(encodeException(1, 4, 2), req);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ModbusError);
      const m = e as ModbusError;
      expect(m.code).toBe('MODBUS_EXCEPTION');
      expect(m.exceptionCode).toBe(2);
      expect(m.exceptionMeaning).toBe('ILLEGAL DATA ADDRESS');
    }
    expect((() => { try { decodeReadResponse(encodeException(1, 4, 0x42)); } catch (e) { return (e as ModbusError).exceptionMeaning; } return undefined; })()).toBe('UNKNOWN EXCEPTION');
  });
  it('rejects answers from another slave or to another function as MODBUS_UNEXPECTED', () => {
    expect(codeOf(() => decodeReadResponse(encodeReadResponse(2, 4, [1, 2]), req))).toBe('MODBUS_UNEXPECTED');
    expect(codeOf(() => decodeReadResponse(encodeReadResponse(1, 3, [1, 2]), req))).toBe('MODBUS_UNEXPECTED');
  });
  it('rejects a register count that differs from the request as MODBUS_BAD_LENGTH', () => {
    expect(codeOf(() => decodeReadResponse(encodeReadResponse(1, 4, [1]), req))).toBe('MODBUS_BAD_LENGTH');
    expect(codeOf(() => decodeReadResponse(hex('01 04')))).toBe('MODBUS_BAD_LENGTH');
    expect(codeOf(() => decodeReadResponse(appendCrc(hex('01 04 05 00 01 00 02'))))).toBe('MODBUS_BAD_LENGTH');
  });
  it('rejects other function codes as MODBUS_UNSUPPORTED', () => {
    expect(codeOf(() => decodeReadResponse(hex('01 06 01 01 00 08 D8 30')))).toBe('MODBUS_UNSUPPORTED');
  });
  it('never throws anything but ModbusError on random bytes', () => {
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) & 0xff;
    for (let i = 0; i < 20_000; i++) {
      const n = rand() % 12;
      const b = Uint8Array.from({ length: n }, rand);
      const framed = i % 2 === 0 ? appendCrc(b) : b;
      try {
        decodeReadResponse(framed, i % 3 === 0 ? req : undefined);
      } catch (e) {
        expect(e).toBeInstanceOf(ModbusError);
      }
    }
  });
  it('throws RangeError for a bad request (misuse)', () => {
    expect(() => encodeReadRequest({ slave: 0, functionCode: 4, address: 1, quantity: 1 })).toThrow(RangeError);
    expect(() => encodeReadRequest({ slave: 1, functionCode: 4, address: 1, quantity: 126 })).toThrow(RangeError);
    expect(() => encodeReadRequest({ slave: 1, functionCode: 6 as 4, address: 1, quantity: 1 })).toThrow(RangeError);
  });
});

describe('formatScaled', () => {
  it('gives exact decimal text', () => {
    expect(formatScaled(215, 10)).toBe('21.5');
    expect(formatScaled(-5, 10)).toBe('-0.5');
    expect(formatScaled(-205, 10)).toBe('-20.5');
    expect(formatScaled(0, 10)).toBe('0.0');
    expect(formatScaled(7, 100)).toBe('0.07');
    expect(formatScaled(42, 1)).toBe('42');
    expect(formatScaled(-32768, 10)).toBe('-3276.8');
  });
  it('XY-MD02 0xFF33 is -20.5 °C (PROTOCOLS.md §4.2)', () => {
    expect(measurementsFromRegisters(XY_MD02, [0xff33, 100])[0]?.value).toBe('-20.5');
  });
  it('unsigned channels and 32-bit values in either word order', () => {
    const p = {
      ...XY_MD02,
      channels: [
        { code: 'u', register: 1, signed: false, scale: 1 },
        { code: 'big', register: 2, words: 2 as const, scale: 10 },
      ],
    };
    expect(measurementsFromRegisters(p, [0xff33, 0x0001, 0x0002]).map((m) => m.value)).toEqual(['65331', '6553.8']);
    expect(measurementsFromRegisters({ ...p, wordOrder: 'low-first' }, [0xff33, 0x0002, 0x0001]).map((m) => m.value)).toEqual(['65331', '6553.8']);
    expect(measurementsFromRegisters(p, [0, 0xffff, 0xfffe]).map((m) => m.value)).toEqual(['0', '-0.2']);
  });
});

describe('frame timing (Serial Line v1.02 §2.5.1.1)', () => {
  it('t3.5 and t1.5 follow the baud rate up to 19200, then are fixed', () => {
    expect(silentIntervalMs(9600, 11)).toBeCloseTo(4.0104, 3);
    expect(silentIntervalMs(9600, bitsPerCharacter({ parity: 'none' }))).toBeCloseTo(3.6458, 3);
    expect(bitsPerCharacter({ parity: 'even' })).toBe(11);
    expect(silentIntervalMs(19200)).toBeCloseTo(2.0052, 3);
    expect(silentIntervalMs(38400)).toBe(1.75);
    expect(silentIntervalMs(115200)).toBe(1.75);
    expect(interCharTimeoutMs(9600)).toBeCloseTo(1.71875, 4);
    expect(interCharTimeoutMs(115200)).toBe(0.75);
    expect(() => silentIntervalMs(0)).toThrow(RangeError);
  });
});
