import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { toHex, sha256 } from '@stele/core';
import { crc8Dallas, listW1Thermometers, milliToDecimalText, parseW1Slave, readAllDs18b20, readDs18b20 } from './ds18b20.ts';

/**
 * Fixture builder: the kernel's w1_slave text for a scratchpad whose temperature register is `raw16`
 * (1/16 °C), with the Dallas CRC-8 computed here (unless `crc` overrides it), and `t=` as the w1_therm driver
 * prints it (raw16 * 1000 / 16, truncated).
 */
function w1Slave(raw16: number, opts: { crc?: number; verdict?: 'YES' | 'NO'; t?: number; pad?: number[] } = {}): string {
  const pad = opts.pad ?? [raw16 & 0xff, (raw16 >> 8) & 0xff, 0x4b, 0x46, 0x7f, 0xff, 0x0c, 0x10];
  const crc = opts.crc ?? crc8Dallas(Uint8Array.from(pad));
  const hex = [...pad, crc].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  const t = opts.t ?? Math.trunc((((raw16 << 16) >> 16) * 1000) / 16);
  return `${hex} : crc=${crc.toString(16).padStart(2, '0')} ${opts.verdict ?? 'YES'}\n${hex} t=${t}\n`;
}
const enc = (s: string) => new TextEncoder().encode(s);

describe('crc8Dallas', () => {
  it('matches Maxim AN27 (02 1C B8 01 00 00 00 -> A2) and a published w1_slave capture (72 01 4b 46 7f ff 0e 10 -> 57)', () => {
    expect(crc8Dallas(Uint8Array.of(0x02, 0x1c, 0xb8, 0x01, 0, 0, 0))).toBe(0xa2);
    expect(crc8Dallas(Uint8Array.of(0x72, 0x01, 0x4b, 0x46, 0x7f, 0xff, 0x0e, 0x10))).toBe(0x57);
  });
});

describe('parseW1Slave', () => {
  it('reads 23.125 °C from the published capture, value as exact decimal text, digest of the exact bytes', () => {
    const bytes = enc('72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n');
    const r = parseW1Slave('28-000005e2fdc3', bytes);
    expect(r).toMatchObject({ ok: true, millicelsius: 23125, meas: { code: '28-000005e2fdc3', kind: 'temperature', value: '23.125', unit: '°C' } });
    expect(toHex(r.raw!)).toBe(toHex(sha256(bytes)));
  });
  it('reads negative temperatures (-10.125 °C) and formats milli values exactly', () => {
    const r = parseW1Slave('28-a', enc(w1Slave(0xff5e))); // -162/16 = -10.125
    expect(r.ok && r.meas.value).toBe('-10.125');
    expect([milliToDecimalText(5), milliToDecimalText(-62), milliToDecimalText(125000)]).toEqual(['0.005', '-0.062', '125.000']);
  });
  it('reports kernel CRC NO, and bytes that fail CRC-8 despite YES, as W1_BAD_CRC', () => {
    expect(parseW1Slave('28-a', enc(w1Slave(0x0172, { verdict: 'NO' })))).toMatchObject({ ok: false, error: { code: 'W1_BAD_CRC' } });
    expect(parseW1Slave('28-a', enc(w1Slave(0x0172, { crc: 0x5e })))).toMatchObject({ ok: false, error: { code: 'W1_BAD_CRC' } });
  });
  it('reports the 85 °C power-on value as W1_POWER_ON_RESET and an all-zero scratchpad as W1_ZERO_SCRATCHPAD', () => {
    expect(parseW1Slave('28-a', enc(w1Slave(0x0550)))).toMatchObject({ ok: false, error: { code: 'W1_POWER_ON_RESET' } });
    expect(parseW1Slave('28-a', enc(w1Slave(0, { pad: [0, 0, 0, 0, 0, 0, 0, 0] })))).toMatchObject({ ok: false, error: { code: 'W1_ZERO_SCRATCHPAD' } });
  });
  it('reports anything else as W1_BAD_FORMAT', () => {
    for (const text of ['', 'garbage\n', w1Slave(0x172).split('\n')[0]!, w1Slave(0x172).replace('t=', 'T=')]) {
      expect(parseW1Slave('28-a', enc(text))).toMatchObject({ ok: false, error: { code: 'W1_BAD_FORMAT' } });
    }
  });
});

describe('reading /sys/bus/w1 (fixture root)', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'stele-w1-'));
    const probes: Record<string, string> = {
      '28-0316a2795eff': w1Slave(0x0060), // 6.000 °C
      '28-0316a2795f00': w1Slave(0x0550), // power-on value
      '10-000802b4a1c2': w1Slave(0x0010), // DS18S20 family
    };
    for (const [id, text] of Object.entries(probes)) {
      await mkdir(join(root, id));
      await writeFile(join(root, id, 'w1_slave'), text);
    }
    await mkdir(join(root, 'w1_bus_master1'));
    await mkdir(join(root, '28-0316a2795f01')); // listed but no w1_slave: unplugged mid-read
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('lists thermometers only, and reads each with its own outcome', async () => {
    expect(await listW1Thermometers(root)).toEqual(['10-000802b4a1c2', '28-0316a2795eff', '28-0316a2795f00', '28-0316a2795f01']);
    const rs = await readAllDs18b20({ root });
    expect(rs.map((r) => (r.ok ? r.meas.value : r.error.code))).toEqual(['1.000', '6.000', 'W1_POWER_ON_RESET', 'W1_NOT_FOUND']);
    expect(await listW1Thermometers(join(root, 'nope'))).toEqual([]);
    expect((await readDs18b20('28-ffffffffffff', { root })).ok).toBe(false);
    await expect(readDs18b20('../etc', { root })).rejects.toThrow(TypeError);
  });
});
