/** Helpers shared by the rule kinds: selection, time windows, alert ids (FORMAT.md §15.1). */
import { toHex, utf8 } from '../bytes.ts';
import { sha256 } from '../hash.ts';
import type { Alert, AlertWindow, EvalReading, Rule } from './types.ts';

/** Default UTC offset of instrument time: HJ 212 loggers keep China Standard Time. */
export const DEFAULT_UTC_OFFSET = '+08:00';

/** Readings the rule selects (its devices and sensors), verified only, in (device, seq) order. */
export function selectReadings(rule: Rule, readings: readonly EvalReading[]): EvalReading[] {
  return readings.filter(
    (r) =>
      r.rejected === undefined &&
      (rule.devices === undefined || rule.devices.includes(r.reading.device)) &&
      (rule.sensors === undefined || rule.sensors.includes(r.reading.sensor)),
  );
}

/** Offset `±HH:MM` in minutes. */
export function offsetMinutes(utcOffset: string): number {
  const sign = utcOffset.startsWith('-') ? -1 : 1;
  const [h, m] = utcOffset.slice(1).split(':').map(Number) as [number, number];
  return sign * (h * 60 + m);
}

/** `YYYYMMDDhhmmss…` (first 14 digits) in the given offset -> `YYYY-MM-DDThh:mm:ss±HH:MM`. */
export function itimeIso(itime: string, utcOffset: string): string {
  const t = itime.padEnd(14, '0');
  return `${t.slice(0, 4)}-${t.slice(4, 6)}-${t.slice(6, 8)}T${t.slice(8, 10)}:${t.slice(10, 12)}:${t.slice(12, 14)}${utcOffset}`;
}

/** Instrument time -> ms since the epoch (UTC), given its offset. */
export function itimeMs(itime: string, utcOffset: string): number {
  const ms = Date.UTC(+itime.slice(0, 4), +itime.slice(4, 6) - 1, +itime.slice(6, 8), +itime.slice(8, 10), +itime.slice(10, 12), +itime.slice(12, 14), itime.length >= 17 ? +itime.slice(14, 17) : 0);
  return ms - offsetMinutes(utcOffset) * 60_000;
}

/** ms since the epoch -> `YYYY-MM-DDThh:mm:ss.sss±HH:MM` in the given offset. */
export function msIso(ms: number, utcOffset: string): string {
  const local = new Date(ms + offsetMinutes(utcOffset) * 60_000).toISOString(); // …Z, shifted
  return `${local.slice(0, 23)}${utcOffset}`;
}

/** The next clock hour of `YYYYMMDDhh` as `YYYYMMDDhh` (calendar arithmetic in UTC on the local digits). */
export function nextHour(hour: string): string {
  const ms = Date.UTC(+hour.slice(0, 4), +hour.slice(4, 6) - 1, +hour.slice(6, 8), +hour.slice(8, 10)) + 3600_000;
  const d = new Date(ms).toISOString();
  return `${d.slice(0, 4)}${d.slice(5, 7)}${d.slice(8, 10)}${d.slice(11, 13)}`;
}

/** The next day of `YYYYMMDD`. */
export function nextDay(day: string): string {
  const ms = Date.UTC(+day.slice(0, 4), +day.slice(4, 6) - 1, +day.slice(6, 8)) + 86_400_000;
  const d = new Date(ms).toISOString();
  return `${d.slice(0, 4)}${d.slice(5, 7)}${d.slice(8, 10)}`;
}

/** The window of a clock hour `YYYYMMDDhh` of instrument time. */
export function hourWindow(hour: string, utcOffset: string): AlertWindow {
  return { from: itimeIso(`${hour}0000`, utcOffset), to: itimeIso(`${nextHour(hour)}0000`, utcOffset), basis: 'itime' };
}

/** The window of a day `YYYYMMDD` of instrument time. */
export function dayWindow(day: string, utcOffset: string): AlertWindow {
  return { from: itimeIso(`${day}000000`, utcOffset), to: itimeIso(`${nextDay(day)}000000`, utcOffset), basis: 'itime' };
}

/**
 * The alert id (FORMAT.md §15.1): lowercase hex SHA-256 of the UTF-8 text
 * `stele-alert/1` LF rule.id LF rule.version LF kind LF subject LF window.from.
 */
export function alertId(rule: Rule, kind: string, subject: string, window: AlertWindow): string {
  return toHex(sha256(utf8(['stele-alert/1', rule.id, rule.version, kind, subject, window.from].join('\n'))));
}

/** Builds an alert with its id. */
export function makeAlert(a: Omit<Alert, 'id'>): Alert {
  return { id: alertId(a.rule, a.kind, a.subject, a.window), ...a };
}

/** Units that mean the same thing in different spellings (instruments print m3 or m³, C or °C). */
const UNIT_ALIASES: Readonly<Record<string, string>> = { 'mg/m3': 'mg/m³', C: '°C', degC: '°C', '℃': '°C' };
export const normUnit = (u: string): string => UNIT_ALIASES[u] ?? u;
