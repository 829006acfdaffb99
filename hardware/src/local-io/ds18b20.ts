/**
 * DS18B20 (and family) temperature probes through the kernel's w1 driver, no dependency: each probe is
 * `/sys/bus/w1/devices/28-xxxxxxxxxxxx/w1_slave`, two lines:
 *
 *   6f 01 4b 46 7f ff 0c 10 5e : crc=5e YES
 *   6f 01 4b 46 7f ff 0c 10 5e t=22937
 *
 * The root is injectable, so tests use a fixture directory. Failures are results with codes, never a throw:
 * CRC `NO` (or a scratchpad that fails our own Dallas CRC-8) -> W1_BAD_CRC; `t=85000`, the power-on reset value
 * (no conversion took place) -> W1_POWER_ON_RESET; an all-zero scratchpad, which passes CRC-8 -> W1_ZERO_SCRATCHPAD.
 * A real 85.000 °C is therefore reported as an error too: cold-chain probes never see it.
 *
 * The measurement value is the kernel's millidegree integer with the decimal point moved three places
 * (`t=22937` -> `22.937`, exact text manipulation, no floating point); the reading keeps the SHA-256 of the
 * exact w1_slave bytes.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256 } from '@stele/core';
import type { Measurement } from '@stele/core';
import { LocalIoError } from './errors.ts';

export const W1_DEVICES_ROOT = '/sys/bus/w1/devices';
/** 1-Wire family codes of thermometers that use the w1_slave format: DS18S20, DS1822, DS18B20, DS1825/MAX31850, DS28EA00. */
export const W1_THERM_FAMILIES: readonly string[] = ['10', '22', '28', '3b', '42'];
/** Power-on reset value of the DS18B20 temperature register, in m°C (datasheet: 85 °C). */
export const DS18B20_POWER_ON_MILLI = 85000;

export interface Ds18b20Reading {
  ok: true;
  id: string;
  millicelsius: number;
  meas: Measurement;
  /** SHA-256 of the exact w1_slave bytes. */
  raw: Uint8Array;
  bytes: Uint8Array;
}
export interface Ds18b20Failure {
  ok: false;
  id: string;
  error: LocalIoError;
  raw?: Uint8Array;
}
export type Ds18b20Result = Ds18b20Reading | Ds18b20Failure;

/** Dallas/Maxim CRC-8 (polynomial x^8 + x^5 + x^4 + 1, reflected 0x8C), as in the DS18B20 datasheet. */
export function crc8Dallas(bytes: Uint8Array): number {
  let crc = 0;
  for (const byte of bytes) {
    let b = byte;
    for (let i = 0; i < 8; i++) {
      const mix = (crc ^ b) & 1;
      crc >>= 1;
      if (mix) crc ^= 0x8c;
      b >>= 1;
    }
  }
  return crc;
}

/** `-1250` -> `-1.250`, `22937` -> `22.937` (exact). */
export function milliToDecimalText(milli: number): string {
  const neg = milli < 0;
  const digits = String(Math.abs(milli)).padStart(4, '0');
  return `${neg ? '-' : ''}${digits.slice(0, -3)}.${digits.slice(-3)}`;
}

const LINE1 = /^((?:[0-9a-f]{2} ){9}): crc=([0-9a-f]{2}) (YES|NO)$/;
const LINE2 = /^((?:[0-9a-f]{2} ){9})t=(-?\d+)$/;

/** Parses the bytes of one w1_slave file. */
export function parseW1Slave(id: string, bytes: Uint8Array): Ds18b20Result {
  const raw = sha256(bytes);
  const fail = (code: 'W1_BAD_FORMAT' | 'W1_BAD_CRC' | 'W1_POWER_ON_RESET' | 'W1_ZERO_SCRATCHPAD', message: string): Ds18b20Failure => ({
    ok: false,
    id,
    error: new LocalIoError(code, message, { where: { id } }),
    raw,
  });
  const text = new TextDecoder('latin1').decode(bytes);
  const lines = text.replace(/\n$/, '').split('\n');
  if (lines.length !== 2) return fail('W1_BAD_FORMAT', 'w1_slave does not have two lines');
  const m1 = LINE1.exec(lines[0]!);
  const m2 = LINE2.exec(lines[1]!);
  if (m1 === null || m2 === null) return fail('W1_BAD_FORMAT', 'w1_slave lines do not match the kernel format');
  if (m1[3] === 'NO') return fail('W1_BAD_CRC', 'kernel reports crc NO');
  const pad = Uint8Array.from(m1[1]!.trim().split(' ').map((h) => parseInt(h, 16)));
  if (crc8Dallas(pad.subarray(0, 8)) !== pad[8] || parseInt(m1[2]!, 16) !== pad[8]) return fail('W1_BAD_CRC', 'scratchpad fails CRC-8');
  if (pad.every((b) => b === 0)) return fail('W1_ZERO_SCRATCHPAD', 'all-zero scratchpad (data line shorted or floating)');
  const milli = Number(m2[2]);
  if (!Number.isSafeInteger(milli)) return fail('W1_BAD_FORMAT', 't= is not an integer');
  if (milli === DS18B20_POWER_ON_MILLI) return fail('W1_POWER_ON_RESET', 't=85000: power-on reset value, no conversion');
  return {
    ok: true,
    id,
    millicelsius: milli,
    meas: { code: id, kind: 'temperature', value: milliToDecimalText(milli), unit: '°C' },
    raw,
    bytes: bytes.slice(),
  };
}

/** Thermometer ids under `root` (family codes {@link W1_THERM_FAMILIES}), sorted. A missing root lists nothing. */
export async function listW1Thermometers(root = W1_DEVICES_ROOT): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(root);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new LocalIoError('W1_READ_FAILED', `cannot list ${root}`, { cause: e, where: { root } });
  }
  return names.filter((n) => /^[0-9a-f]{2}-[0-9a-f]{12}$/.test(n) && W1_THERM_FAMILIES.includes(n.slice(0, 2))).sort();
}

/** Reads one probe. Never throws for probe trouble: the result carries the code. */
export async function readDs18b20(id: string, options: { root?: string } = {}): Promise<Ds18b20Result> {
  if (typeof id !== 'string' || id.includes('/') || id.includes('..')) throw new TypeError('id must be a 1-Wire device name');
  const path = join(options.root ?? W1_DEVICES_ROOT, id, 'w1_slave');
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'W1_NOT_FOUND' : 'W1_READ_FAILED';
    return { ok: false, id, error: new LocalIoError(code, `cannot read ${path}`, { cause: e, where: { id } }) };
  }
  return parseW1Slave(id, bytes);
}

/** Reads the given probes (default: every thermometer under the root), in order. */
export async function readAllDs18b20(options: { root?: string; ids?: readonly string[] } = {}): Promise<Ds18b20Result[]> {
  const ids = options.ids ?? (await listW1Thermometers(options.root));
  const out: Ds18b20Result[] = [];
  for (const id of ids) out.push(await readDs18b20(id, options.root === undefined ? {} : { root: options.root })); // one at a time: the w1 bus is serial anyway
  return out;
}
