import { decodeCborChecked } from './cbor.ts';
import { equalBytes } from './bytes.ts';
import { FormatError } from './errors.ts';
import { sha256 } from './hash.ts';
import { copyBytes, encodeDeterministic } from './cose/plain-bytes.ts';

/** One value from the instrument (FORMAT.md §2). `value` is the text exactly as the instrument sent it. */
export interface Measurement {
  code: string;
  kind: string;
  value: string;
  unit?: string;
  flag?: string;
}

/** Whether the device clock was synchronised, and how (`ntp`, `rtc`, `none`, `sim`). */
export interface ClockState {
  synced: boolean;
  source: string;
}

/** A reading, FORMAT.md §2. `time` is device time in ms since the epoch and is untrusted (§8): order is `seq`. */
export interface Reading {
  v: 1;
  device: string;
  sensor: string;
  /** Per-device sequence number, from 1, strictly +1. */
  seq: number;
  /** SHA-256 of the previous reading's bytes; {@link GENESIS_PREV} for seq 1. */
  prev: Uint8Array;
  time: number;
  clock: ClockState;
  meas: Measurement[];
  /** SHA-256 of each exact instrument frame this reading came from. */
  raw: Uint8Array[];
  /** Last anchored batch root the gateway had seen (a not-before bound). */
  anchor?: Uint8Array;
  /**
   * The instrument's own time for this record, FORMAT.md §2.3: `YYYYMMDDhhmmss` or `YYYYMMDDhhmmsszzz` digits in
   * the instrument's local civil time, exactly as it sent them (HJ 212 `DataTime`). Untrusted like `time`.
   */
  itime?: string;
  /** The instrument's record type, FORMAT.md §2.3 (HJ 212: the `CN`, e.g. `2051` minute data). */
  rtype?: string;
}

/** Format version of FORMAT.md §2. */
export const READING_VERSION = 1;
/** Length of every digest in a reading (`prev`, `raw[i]`, `anchor`): SHA-256. */
export const DIGEST_LENGTH = 32;
/** `prev` of the reading with seq 1: 32 zero bytes (FORMAT.md §2). Do not mutate. */
export const GENESIS_PREV: Uint8Array = new Uint8Array(DIGEST_LENGTH);

const READING_REQUIRED = ['v', 'device', 'sensor', 'seq', 'prev', 'time', 'clock', 'meas', 'raw'] as const;
const READING_OPTIONAL = ['anchor', 'itime', 'rtype'] as const;
const CLOCK_KEYS = ['synced', 'source'] as const;
const MEAS_REQUIRED = ['code', 'kind', 'value'] as const;
const MEAS_OPTIONAL = ['unit', 'flag'] as const;

/** Builds the CBOR data model of a reading (text-keyed plain objects, optional keys left out, never null). */
function toCborModel(reading: Reading): Record<string, unknown> {
  const meas = Array.isArray(reading.meas)
    ? reading.meas.map((m) => {
        const out: Record<string, unknown> = { code: m.code, kind: m.kind, value: m.value };
        if (m.unit !== undefined) out.unit = m.unit;
        if (m.flag !== undefined) out.flag = m.flag;
        return out;
      })
    : reading.meas;
  const clock = reading.clock !== null && typeof reading.clock === 'object'
    ? { synced: reading.clock.synced, source: reading.clock.source }
    : reading.clock;
  const out: Record<string, unknown> = {
    v: reading.v,
    device: reading.device,
    sensor: reading.sensor,
    seq: reading.seq,
    prev: reading.prev,
    time: reading.time,
    clock,
    meas,
    raw: reading.raw,
  };
  if (reading.anchor !== undefined) out.anchor = reading.anchor;
  if (reading.itime !== undefined) out.itime = reading.itime;
  if (reading.rtype !== undefined) out.rtype = reading.rtype;
  return out;
}

/**
 * Encodes a reading as deterministic CBOR (FORMAT.md §2). The result always decodes with {@link decodeReading};
 * a reading that would not (wrong types, seq < 1, digests not 32 bytes) is misuse: TypeError.
 */
export function encodeReading(reading: Reading): Uint8Array {
  if (reading === null || typeof reading !== 'object') throw new TypeError('reading must be an object');
  let bytes: Uint8Array;
  try {
    bytes = encodeDeterministic(toCborModel(reading));
  } catch (cause) {
    throw new TypeError('reading cannot be encoded as CBOR', { cause });
  }
  try {
    decodeReading(bytes);
  } catch (cause) {
    const where = cause instanceof FormatError ? cause.where : undefined;
    throw new TypeError(`reading is not valid per FORMAT.md §2${where ? ` (${JSON.stringify(where)})` : ''}`, { cause });
  }
  return bytes;
}

/** FORMAT.md §2.3: `rtype` is 1 to 16 ASCII letters or digits. */
export const RTYPE_PATTERN = /^[0-9A-Za-z]{1,16}$/;
const ITIME_PATTERN = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{3})?$/;

/** Days in `month` (1..12) of the proleptic Gregorian `year`. */
function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/**
 * Whether `text` is an instrument time of FORMAT.md §2.3: 14 or 17 ASCII digits `YYYYMMDDhhmmss[zzz]`, month
 * 01..12, day 01..days of that month (Gregorian), hour 00..23, minute and second 00..59 (no leap second).
 */
export function isInstrumentTime(text: string): boolean {
  const m = ITIME_PATTERN.exec(text);
  if (m === null) return false;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  return month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth(year, month) && hour <= 23 && minute <= 59 && second <= 59;
}

function fail(message: string, where: Record<string, unknown>): never {
  throw new FormatError('READING_FORMAT_ERROR', message, { where });
}

function expectMap(value: unknown, path: string): Map<unknown, unknown> {
  if (!(value instanceof Map)) fail(`${path} is not a map`, { field: path });
  return value;
}

/** Rejects any key that is not a text string in `required` or `optional`, and any missing required key. */
function checkKeys(map: Map<unknown, unknown>, required: readonly string[], optional: readonly string[], path: string): void {
  for (const key of map.keys()) {
    if (typeof key !== 'string' || (!required.includes(key) && !optional.includes(key))) {
      fail(`${path} has an unknown key`, { field: path, key: typeof key === 'string' ? key : String(key) });
    }
  }
  for (const key of required) if (!map.has(key)) fail(`${path} lacks "${key}"`, { field: `${path}.${key}` });
}

function expectText(value: unknown, path: string): string {
  if (typeof value !== 'string') fail(`${path} is not a text string`, { field: path });
  return value;
}

function expectUint(value: unknown, path: string, min: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    fail(`${path} is not an unsigned integer >= ${min} within 2^53 - 1`, { field: path });
  }
  return value;
}

/** A 32-byte digest; copied unless `own` (the decoder's byte string is already the caller's to keep). */
function expectDigest(value: unknown, path: string, own: boolean): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== DIGEST_LENGTH) fail(`${path} is not a 32-byte string`, { field: path });
  return own ? value : copyBytes(value);
}

function expectArray(value: unknown, path: string): unknown[] {
  if (!Array.isArray(value)) fail(`${path} is not an array`, { field: path });
  return value;
}

/**
 * Decodes and checks a reading from untrusted bytes: exactly the keys and types of FORMAT.md §2, `v` = 1,
 * 1 <= seq <= 2^53 - 1, digests of 32 bytes, and the bytes must be the deterministic encoding of the result.
 * Throws FormatError `READING_FORMAT_ERROR` (with `where.field`) otherwise. `views: true`: its digests may be views
 * into `bytes`, for a caller that owns `bytes` and never changes it.
 */
export function decodeReading(bytes: Uint8Array, options: { views?: boolean } = {}): Reading {
  const views = options.views === true;
  if (!(bytes instanceof Uint8Array)) throw new TypeError('bytes must be a Uint8Array');
  let decoded: unknown;
  let deterministic: boolean;
  try {
    ({ value: decoded, deterministic } = decodeCborChecked(bytes, { what: 'reading', views }));
  } catch (cause) {
    throw new FormatError('READING_FORMAT_ERROR', 'reading is not valid CBOR', { cause, where: { field: '' } });
  }
  // cbor-fast's byte strings (bytes found deterministic) are copies of their own, or the views asked for: not copied
  // again; cborg's may share the input.
  const own = views || deterministic;
  const map = expectMap(decoded, 'reading');
  checkKeys(map, READING_REQUIRED, READING_OPTIONAL, 'reading');
  if (map.get('v') !== READING_VERSION) fail('reading.v is not 1', { field: 'reading.v' });

  const clockMap = expectMap(map.get('clock'), 'reading.clock');
  checkKeys(clockMap, CLOCK_KEYS, [], 'reading.clock');
  const synced = clockMap.get('synced');
  if (typeof synced !== 'boolean') fail('reading.clock.synced is not a boolean', { field: 'reading.clock.synced' });

  const meas = expectArray(map.get('meas'), 'reading.meas').map((item, i): Measurement => {
    const path = `reading.meas[${i}]`;
    const m = expectMap(item, path);
    checkKeys(m, MEAS_REQUIRED, MEAS_OPTIONAL, path);
    const out: Measurement = {
      code: expectText(m.get('code'), `${path}.code`),
      kind: expectText(m.get('kind'), `${path}.kind`),
      value: expectText(m.get('value'), `${path}.value`),
    };
    if (m.has('unit')) out.unit = expectText(m.get('unit'), `${path}.unit`);
    if (m.has('flag')) out.flag = expectText(m.get('flag'), `${path}.flag`);
    return out;
  });

  const reading: Reading = {
    v: 1,
    device: expectText(map.get('device'), 'reading.device'),
    sensor: expectText(map.get('sensor'), 'reading.sensor'),
    seq: expectUint(map.get('seq'), 'reading.seq', 1),
    prev: expectDigest(map.get('prev'), 'reading.prev', own),
    time: expectUint(map.get('time'), 'reading.time', 0),
    clock: { synced, source: expectText(clockMap.get('source'), 'reading.clock.source') },
    meas,
    raw: expectArray(map.get('raw'), 'reading.raw').map((d, i) => expectDigest(d, `reading.raw[${i}]`, own)),
  };
  if (map.has('anchor')) reading.anchor = expectDigest(map.get('anchor'), 'reading.anchor', own);
  if (map.has('itime')) {
    const itime = expectText(map.get('itime'), 'reading.itime');
    if (!isInstrumentTime(itime)) fail('reading.itime is not YYYYMMDDhhmmss[zzz] with a valid date and time', { field: 'reading.itime' });
    reading.itime = itime;
  }
  if (map.has('rtype')) {
    const rtype = expectText(map.get('rtype'), 'reading.rtype');
    if (!RTYPE_PATTERN.test(rtype)) fail('reading.rtype is not 1 to 16 ASCII letters or digits', { field: 'reading.rtype' });
    reading.rtype = rtype;
  }

  // Deterministic encoding (RFC 8949 §4.2.1): one reading, one byte string, one digest. This also rejects
  // floating-point encodings of integers, which the CBOR decoder turns into plain numbers. Bytes the decoder found
  // deterministic, holding exactly the keys checked above, are already that encoding (not made again).
  if (!deterministic && !equalBytes(encodeDeterministic(toCborModel(reading)), bytes)) {
    fail('reading is not in deterministic CBOR encoding', { field: 'reading' });
  }
  return reading;
}

/** The reading digest of FORMAT.md §2.1: SHA-256 of the reading bytes exactly as encoded. */
export function readingDigest(readingBytes: Uint8Array): Uint8Array {
  if (!(readingBytes instanceof Uint8Array)) throw new TypeError('readingBytes must be a Uint8Array');
  return sha256(readingBytes);
}
