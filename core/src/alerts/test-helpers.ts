/** Builders of readings for the rule engine's tests (hand-computed cases). */
import { GENESIS_PREV, type Measurement, type Reading } from '../reading.ts';
import { evalReading } from './engine.ts';
import type { EvalReading } from './types.ts';
import { fromHex } from '../bytes.ts';

export const T0 = Date.UTC(2026, 10, 20, 6, 0, 0); // 2026-11-20T06:00:00Z = 14:00 +08:00
export const MIN = 60_000;

/** Readings of one device chained by seq (prev = digest of the one before), from seq `first`. */
export function chain(items: Omit<Reading, 'v' | 'device' | 'seq' | 'prev'>[], device = 'gw-1', first = 1): EvalReading[] {
  const out: EvalReading[] = [];
  let prev = GENESIS_PREV;
  items.forEach((it, i) => {
    const e = evalReading({ v: 1, device, seq: first + i, prev, ...it });
    prev = fromHex(e.digest);
    out.push(e);
  });
  return out;
}

const two = (n: number) => String(n).padStart(2, '0');
/** Instrument time of minute `m` after 2026-11-20 14:00 local. */
export function itimeAt(m: number): string {
  const d = new Date(Date.UTC(2026, 10, 20, 14, 0) + m * MIN);
  return `${d.getUTCFullYear()}${two(d.getUTCMonth() + 1)}${two(d.getUTCDate())}${two(d.getUTCHours())}${two(d.getUTCMinutes())}00`;
}

/** An HJ 212 minute record (CN 2051) with SO2 and O2 means. */
export function minuteRecord(minute: number, so2: string, o2: string, flag = 'N', o2Flag = 'N'): Omit<Reading, 'v' | 'device' | 'seq' | 'prev'> {
  const meas: Measurement[] = [
    { code: 'a21026', kind: 'Avg', value: so2, unit: 'mg/m³', flag },
    { code: 'a19001', kind: 'Avg', value: o2, unit: '%', flag: o2Flag },
  ];
  return { sensor: 'MN1', time: T0 + (minute + 1) * MIN, clock: { synced: true, source: 'ntp' }, meas, raw: [], itime: itimeAt(minute), rtype: '2051' };
}

/** A temperature sample (DS18B20 shape: code = probe id, kind temperature). */
export function tempSample(timeMs: number, value: string, probe = 'p1'): Omit<Reading, 'v' | 'device' | 'seq' | 'prev'> {
  return { sensor: 'room-1', time: timeMs, clock: { synced: true, source: 'ntp' }, meas: [{ code: probe, kind: 'temperature', value, unit: '°C' }], raw: [] };
}
