/**
 * Register-map profiles: which registers of which function code hold what, with scale, signedness and word
 * order, turned into Stele measurements with the value as exact decimal text (raw 305, scale 10 -> "30.5").
 * Register maps are vendor-specific (HJ 212-2017 §7 / PROTOCOLS.md §1.12, §4.2): never guess one from a read.
 */
import type { Measurement } from '@stele/core';
import type { ModbusReadFunction, ReadRequest } from './frame.ts';

import type { Parity } from '../transport/serial-transport.ts';

export interface RegisterChannel {
  /** Measurement code, e.g. `temperature`, `humidity`. */
  code: string;
  /** Measurement kind. Default `Rtd` (a real-time value, as HJ 212 names it). */
  kind?: string;
  unit?: string;
  /** Register address (protocol address, as on the wire). */
  register: number;
  /** 1 (default) or 2 registers (32-bit value). */
  words?: 1 | 2;
  /** Two's complement. Default true (temperatures go below zero). */
  signed?: boolean;
  /** Raw value / scale = value; a power of ten (1, 10, 100, 1000). Default 10. The text keeps log10(scale) decimals. */
  scale?: number;
}

export interface RegisterProfile {
  /** e.g. `xy-md02`. */
  name: string;
  functionCode: ModbusReadFunction;
  channels: readonly RegisterChannel[];
  /** For 2-word values: `high-first` (default, big-endian words) or `low-first`. */
  wordOrder?: 'high-first' | 'low-first';
  /** Line settings the family ships with (users override per device). */
  serial: { baudRate: number; parity: Parity; dataBits: 8 | 7; stopBits: 1 | 2 };
}

/**
 * XY-MD02 / SHT20 modules (PROTOCOLS.md §4.2; e-tinkers/Modbus-RTU examples/SHT20): FC 0x04, input register
 * 0x0001 = temperature, 0x0002 = RH, signed, ×10; 9600 8N1. Some units ship with even parity: override `serial`.
 */
export const XY_MD02: RegisterProfile = {
  name: 'xy-md02',
  functionCode: 0x04,
  channels: [
    { code: 'temperature', kind: 'Rtd', unit: '°C', register: 0x0001, signed: true, scale: 10 },
    { code: 'humidity', kind: 'Rtd', unit: '%RH', register: 0x0002, signed: true, scale: 10 },
  ],
  serial: { baudRate: 9600, parity: 'none', dataBits: 8, stopBits: 1 },
};

/** XY-MD02 clones that scale by 100 (`0x0BEA` = 30.50 °C). */
export const XY_MD02_X100: RegisterProfile = {
  ...XY_MD02,
  name: 'xy-md02-x100',
  channels: XY_MD02.channels.map((c) => ({ ...c, scale: 100 })),
};

/** "MD02" / RS-WS clones (MD02 manual §5.4–5.6): FC 0x03, 0x0000 = RH, 0x0001 = temperature, signed, ×10. */
export const MD02: RegisterProfile = {
  name: 'md02',
  functionCode: 0x03,
  channels: [
    { code: 'humidity', kind: 'Rtd', unit: '%RH', register: 0x0000, signed: true, scale: 10 },
    { code: 'temperature', kind: 'Rtd', unit: '°C', register: 0x0001, signed: true, scale: 10 },
  ],
  serial: { baudRate: 9600, parity: 'none', dataBits: 8, stopBits: 1 },
};

export const REGISTER_PROFILES: Readonly<Record<string, RegisterProfile>> = {
  [XY_MD02.name]: XY_MD02,
  [XY_MD02_X100.name]: XY_MD02_X100,
  [MD02.name]: MD02,
};

const SCALES = new Set([1, 10, 100, 1000, 10000]);

/** Checks a profile (misuse -> TypeError/RangeError). */
export function assertProfile(profile: RegisterProfile): void {
  if (profile === null || typeof profile !== 'object') throw new TypeError('profile must be an object');
  if (profile.functionCode !== 0x03 && profile.functionCode !== 0x04) throw new RangeError('profile.functionCode must be 0x03 or 0x04');
  if (!Array.isArray(profile.channels) || profile.channels.length === 0) throw new RangeError('profile.channels must not be empty');
  for (const c of profile.channels) {
    if (typeof c.code !== 'string' || c.code === '') throw new TypeError('channel.code must be a non-empty string');
    if (!Number.isInteger(c.register) || c.register < 0 || c.register > 0xffff) throw new RangeError(`channel ${c.code}: register must be 0..65535`);
    if (c.words !== undefined && c.words !== 1 && c.words !== 2) throw new RangeError(`channel ${c.code}: words must be 1 or 2`);
    if (c.scale !== undefined && !SCALES.has(c.scale)) throw new RangeError(`channel ${c.code}: scale must be a power of ten 1..10000`);
  }
  const { quantity } = readSpan(profile);
  if (quantity > 125) throw new RangeError('profile channels span more than 125 registers');
}

function readSpan(profile: RegisterProfile): { address: number; quantity: number } {
  let lo = Infinity;
  let hi = -Infinity;
  for (const c of profile.channels) {
    lo = Math.min(lo, c.register);
    hi = Math.max(hi, c.register + (c.words ?? 1) - 1);
  }
  return { address: lo, quantity: hi - lo + 1 };
}

/** The one read that covers every channel of `profile` on `slave`. */
export function profileRequest(profile: RegisterProfile, slave: number): ReadRequest {
  assertProfile(profile);
  return { slave, functionCode: profile.functionCode, ...readSpan(profile) };
}

/** `raw / scale` as exact decimal text with log10(scale) decimals: (305, 10) -> "30.5", (-5, 10) -> "-0.5", (3050, 100) -> "30.50". */
export function formatScaled(raw: number, scale: number): string {
  if (!Number.isSafeInteger(raw)) throw new RangeError('raw must be a safe integer');
  if (!SCALES.has(scale)) throw new RangeError('scale must be a power of ten 1..10000');
  const decimals = Math.round(Math.log10(scale));
  const sign = raw < 0 ? '-' : '';
  const digits = String(Math.abs(raw));
  if (decimals === 0) return sign + digits;
  const padded = digits.padStart(decimals + 1, '0');
  return `${sign}${padded.slice(0, -decimals)}.${padded.slice(-decimals)}`;
}

/** The raw integer of `channel` from registers read starting at `start`. */
export function channelRaw(profile: RegisterProfile, channel: RegisterChannel, registers: readonly number[], start: number): number {
  const i = channel.register - start;
  const words = channel.words ?? 1;
  const signed = channel.signed ?? true;
  const w0 = registers[i];
  const w1 = registers[i + 1];
  if (w0 === undefined || (words === 2 && w1 === undefined)) throw new RangeError(`channel ${channel.code}: register ${channel.register} was not read`);
  if (words === 1) return signed && w0 >= 0x8000 ? w0 - 0x10000 : w0;
  const [hi, lo] = (profile.wordOrder ?? 'high-first') === 'high-first' ? [w0, w1!] : [w1!, w0];
  const u = hi * 0x10000 + lo;
  return signed && u >= 0x80000000 ? u - 0x100000000 : u;
}

/** Measurements of a profile from the registers of its read (profileRequest), in channel order. */
export function measurementsFromRegisters(profile: RegisterProfile, registers: readonly number[], start = readSpan(profile).address): Measurement[] {
  return profile.channels.map((c) => {
    const m: Measurement = { code: c.code, kind: c.kind ?? 'Rtd', value: formatScaled(channelRaw(profile, c, registers, start), c.scale ?? 10) };
    if (c.unit !== undefined) m.unit = c.unit;
    return m;
  });
}
