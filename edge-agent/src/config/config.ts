/**
 * The gateway's config file (YAML; JSON is YAML too): parsed with line positions, checked against the schema
 * below, every problem reported at once as `file:line:column field: what is expected`.
 * Relative paths in the file resolve against the file's folder.
 */
import { open } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { LineCounter, parseDocument, YAMLMap as YAMLMapClass, type YAMLMap, type YAMLSeq } from 'yaml';
import { fromBase64Url, assertP256PublicKey } from '@stele/core';
import { HJ212_CRC_VARIANTS, REGISTER_PROFILES } from '@stele/hardware';
import { ConfigError, formatIssue, type ConfigIssue } from './errors.ts';
import {
  INVALID,
  anyMap,
  boolean,
  bytes,
  duration,
  integer,
  list,
  object,
  oneOf,
  report,
  string,
  type At,
  type Ctx,
  type Rule,
} from './schema.ts';

export type LogLevelName = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
export type Parity = 'none' | 'even' | 'odd' | 'mark' | 'space';
export type DiskPolicy = 'refuse-new';

export type KeyConfig =
  | { backend: 'software'; path: string }
  | {
      backend: 'pkcs11';
      /** What the token is, recorded in enrolments: `pkcs11` (default), `tpm`, `secure-element`. */
      kind: 'pkcs11' | 'tpm' | 'secure-element';
      module: string;
      token: string;
      keyLabel?: string;
      keyId?: string;
      pin: { file: string } | { env: string };
    };

export interface BrokerConfig {
  url: string;
  username?: string;
  passwordFile?: string;
  tls?: { ca?: string; cert?: string; key?: string; rejectUnauthorized: boolean };
  clientId?: string;
  mode: 'full' | 'hash-only';
  protocolVersion: 4 | 5;
  /** Resend from the acked mark when ingest has not acknowledged within this. Default 10 s. */
  resendAfterMs: number;
}

export interface InstrumentConfig {
  /** The reading's `sensor` and the name in logs, status and metrics. */
  id: string;
  driver: string;
  /** A device path; prefer /dev/serial/by-id/... (stable across reboots and replugs). */
  port: string;
  baud: number;
  dataBits: 5 | 6 | 7 | 8;
  parity: Parity;
  stopBits: 1 | 1.5 | 2;
  /** Driver options, checked by the driver (hj212: crc, mode, acknowledge). */
  options: Record<string, unknown>;
  /** Reopen a port that failed or is missing: first delay, doubling up to `reconnectMaxMs`. */
  reconnectMs: number;
  reconnectMaxMs: number;
}

/** HJ 212 in the path to the authority's platform: loggers connect here, frames go upstream byte for byte. */
export interface RelayConfig {
  id: string;
  listen: { host: string; port: number };
  upstream: { host: string; port: number };
  mode: 'strict' | 'lenient';
  /** Data logger connections at once (the LAN is untrusted); more are refused at accept and counted. Default 16. */
  maxConnections: number;
  /** Bytes per second read from one logger connection; beyond, it is paused (TCP backpressure) and counted. Default 64 KiB. */
  maxBytesPerSecond: number;
  /** Bytes per second read from all logger connections together; beyond, they are paused and counted. Default 256 KiB. */
  maxTotalBytesPerSecond: number;
}

export interface GatewayConfig {
  /** Absolute path of the file this came from. */
  file: string;
  gateway: { id: string; dataDir: string; logLevel: LogLevelName };
  key: KeyConfig;
  broker: BrokerConfig;
  /**
   * `publicKey`: the ingest key pinned at provisioning: only confirmations it signed move the acked mark (FORMAT.md
   * §11.1). Absent: nothing is acknowledged (and doctor says so).
   * `url`: ingest's HTTP API (optional): on each broker connection the agent compares its chain head with ingest's
   * before publishing, and `doctor` asks whether this device is enrolled with this key. Absent: neither is checked.
   */
  ingest: { publicKey?: Uint8Array; url?: string } | undefined;
  instruments: InstrumentConfig[];
  relays: RelayConfig[];
  /** How long acknowledged readings stay on the gateway (evidence hand-over), in agent uptime. Default 30 days; and at least the newest `keepReadings` (default 0). */
  retention: { keepAckedMs: number; keepReadings: number };
  disk: { warnAtFreeBytes: number; stopAtFreeBytes: number; policy: DiskPolicy; checkEveryMs: number };
  health: { port: number; host: string; publishEveryMs: number };
  clock: { checkEveryMs: number; jumpThresholdMs: number };
}

/** Drivers that read a serial port (`port` required). */
export const SERIAL_DRIVERS = ['hj212', 'modbus-th', 'modbus-rtu', 'cal3k'] as const;
/**
 * Drivers the config accepts; the runner says so clearly when one of them is not available in this build.
 * `parr-csv` and `custody-folder` poll a folder (`options.dir`); `cold-room` (alias `ds18b20`) reads DS18B20
 * probes from sysfs, door contacts from GPIO and drives the alarm output; `lab-db` polls the lab's PostgreSQL
 * database (a LIMS or the instrument software's results table). Those have no `port`: their source is it.
 */
export const KNOWN_DRIVERS = [...SERIAL_DRIVERS, 'parr-csv', 'custody-folder', 'cold-room', 'ds18b20', 'lab-db'] as const;
const GPIO_DIALECTS = ['v1', 'v2'] as const;

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const DEVICE_ID = /^[^/+#\u0000-\u001f\u007f]{1,128}$/;
const DEVICE_PATH = /^(\/|[A-Za-z]:|COM\d)/;
const BAUDS = [1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600];

function path(expected = 'a file path'): Rule<string> {
  return string({ expected });
}

function hj212Options(): Rule<Record<string, unknown>> {
  return object({
    crc: { rule: oneOf(HJ212_CRC_VARIANTS), default: 'hj212' },
    mode: { rule: oneOf(['strict', 'lenient'] as const), default: 'strict' },
    acknowledge: { rule: boolean(), default: false },
    /** Reading `sensor`: default the instrument id. */
    sensor: { rule: string({ pattern: NAME, expected: 'a sensor name' }) },
    /** Raise DRIVER_TIMEOUT when no frame came for this long (the logger sends at least every minute). */
    silenceTimeout: { rule: duration({ minMs: 1000 }) },
  });
}

/** Modbus RTU T/RH loggers on one RS-485 bus: each device its slave address, register profile and poll period. */
function modbusOptions(): Rule<Record<string, unknown>> {
  const profiles = Object.keys(REGISTER_PROFILES);
  return object({
    timeout: { rule: duration({ minMs: 10 }), default: 1000 },
    devices: {
      rule: list(
        object({
          sensor: { rule: string({ pattern: NAME, expected: 'a sensor name' }), required: true },
          slave: { rule: integer({ min: 1, max: 247 }), required: true },
          profile: { rule: oneOf(profiles), required: true },
          interval: { rule: duration({ minMs: 100 }), default: 60_000 },
          offset: { rule: duration(), default: 0 },
        }),
        { min: 1 },
      ),
      required: true,
    },
  });
}

/** CAL3K calorimeter on RS-232 (PROTOCOLS.md §3.1): which Status values mean final must come from the unit's manual. */
function cal3kOptions(): Rule<Record<string, unknown>> {
  return object({
    finalStatuses: { rule: list(string({ expected: 'a Status value such as "4"' }), { min: 1 }), required: true },
    sensor: { rule: string({ pattern: NAME, expected: 'a sensor name' }) },
    silenceTimeout: { rule: duration({ minMs: 1000 }) },
  });
}

/** A folder the instrument PC (Parr run files) or a custody terminal (JSON events) writes to. */
function folderOptions(extra: Record<string, { rule: Rule<unknown>; default?: unknown; required?: boolean }> = {}): Rule<Record<string, unknown>> {
  return object({
    dir: { rule: path('the folder to poll (a local folder or a mounted share)'), required: true },
    interval: { rule: duration({ minMs: 100 }), default: 10_000 },
    settle: { rule: duration(), default: 2000 },
    writerRenames: { rule: boolean(), default: false },
    ...extra,
  });
}

/** SQL identifier (a table may be schema-qualified): checked here, double-quoted in the query. */
const SQL_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/**
 * The lab database poller (hardware/src/coal/db-poller.ts) on PostgreSQL: the connection URL without a password
 * (the password in a file), the results table, its key and time (cursor) columns, an optional boolean column that
 * says a row is final (approved), and which columns become which measurements.
 */
function labDbOptions(): Rule<Record<string, unknown>> {
  return object({
    url: { rule: string({ pattern: /^postgres(ql)?:\/\/[^:@/\s]+@[^/\s]+\/[^\s?#]+$/, expected: 'postgres://USER@HOST:PORT/DATABASE (no password: use passwordFile)' }), required: true },
    passwordFile: { rule: path('a file holding the database password') },
    table: { rule: string({ pattern: /^([A-Za-z_][A-Za-z0-9_]{0,62}\.)?[A-Za-z_][A-Za-z0-9_]{0,62}$/, expected: 'a table name (schema.table allowed)' }), required: true },
    key: { rule: string({ pattern: SQL_NAME, expected: 'the primary key column' }), required: true },
    cursor: { rule: string({ pattern: SQL_NAME, expected: 'a timestamp column that grows when a row is written or changed' }), required: true },
    final: { rule: string({ pattern: SQL_NAME, expected: 'a boolean column that is true once the result is approved' }) },
    columns: {
      rule: list(
        object({
          column: { rule: string({ pattern: SQL_NAME, expected: 'a column name' }), required: true },
          code: { rule: string({ pattern: /^[^\u0000-\u001f]{1,64}$/, expected: 'a measurement code such as Qnet,v,ar' }), required: true },
          kind: { rule: oneOf(['ar', 'ad', 'd', 'daf', 'dmmf', 'id', 'run'] as const), required: true },
          unit: { rule: string({ pattern: /^[^\u0000-\u001f]{1,16}$/, expected: 'a unit such as MJ/kg' }) },
        }),
        { min: 1 },
      ),
      required: true,
    },
    interval: { rule: duration({ minMs: 1000 }), default: 30_000 },
    /** Rows read per poll at most (the next poll continues from the cursor). */
    maxRows: { rule: integer({ min: 1, max: 10_000 }), default: 1000 },
  });
}

const gpioLine = () =>
  object({
    chip: { rule: string({ pattern: /^[A-Za-z0-9_./-]{1,64}$/, expected: 'a GPIO chip such as gpiochip0' }), required: true },
    line: { rule: integer({ min: 0, max: 1023 }), required: true },
    activeLow: { rule: boolean(), default: false },
  });

/** DS18B20 probes (sysfs), door contacts and the alarm output (GPIO through libgpiod tools), PROTOCOLS.md §4.3. */
function coldRoomOptions(): Rule<Record<string, unknown>> {
  return object(
    {
      root: { rule: path('the 1-Wire devices folder'), default: '/sys/bus/w1/devices' },
      probes: { rule: list(string({ pattern: /^[0-9a-f]{2}-[0-9a-f]{12}$/, expected: 'a 1-Wire id such as 28-0316a2795cff' }), { min: 1 }) },
      interval: { rule: duration({ minMs: 1000 }), default: 60_000 },
      gpio: { rule: oneOf(GPIO_DIALECTS), default: 'v1' },
      doors: {
        rule: list(
          object({
            id: { rule: string({ pattern: NAME, expected: 'a door name' }), required: true },
            chip: { rule: string({ pattern: /^[A-Za-z0-9_./-]{1,64}$/, expected: 'a GPIO chip such as gpiochip0' }), required: true },
            line: { rule: integer({ min: 0, max: 1023 }), required: true },
            activeLow: { rule: boolean(), default: false },
            openLevel: { rule: oneOfNumbers([0, 1]), default: 1 },
          }),
        ),
        default: [],
      },
      alarm: { rule: gpioLine() },
      rule: {
        rule: object({
          low: { rule: celsius(), required: true },
          high: { rule: celsius(), required: true },
          hysteresis: { rule: celsius(), default: 0.5 },
          outOfRange: { rule: duration(), required: true },
          doorOpen: { rule: duration(), required: true },
          doorClosed: { rule: duration(), default: 0 },
          probeFault: { rule: duration() },
        }),
      },
    },
    {
      refine(v, f, ctx) {
        if (v.alarm !== undefined && v.rule === undefined) report(ctx, f.at('rule'), 'required when alarm is set (when does the alarm come on?)');
      },
    },
  );
}

function celsius(): Rule<number> {
  return (at, ctx) => {
    const node = at.node as { value?: unknown } | undefined;
    const v = node?.value;
    if (typeof v === 'number' && Number.isFinite(v) && v >= -80 && v <= 125) return v;
    return report(ctx, at, `expected a temperature in °C from -80 to 125, got ${v === undefined ? 'nothing' : JSON.stringify(v)}`);
  };
}

function instrument(drivers: readonly string[]): Rule<Record<string, unknown>> {
  const base = object(
    {
      id: { rule: string({ pattern: NAME, expected: 'a name of letters, digits, ".", "_" or "-" (at most 64)' }), required: true },
      driver: { rule: oneOf(drivers), required: true },
      port: { rule: string({ pattern: DEVICE_PATH, expected: 'a device path such as /dev/serial/by-id/usb-FTDI_...-if00-port0' }) },
      baud: {
        rule: (at, ctx) => {
          const v = integer({ min: 50, max: 4_000_000 })(at, ctx);
          if (v !== INVALID && !BAUDS.includes(v)) return report(ctx, at, `expected a standard baud rate (${BAUDS.join(', ')}), got ${v}`);
          return v;
        },
        default: 9600,
      },
      dataBits: { rule: oneOfNumbers([5, 6, 7, 8]), default: 8 },
      parity: { rule: oneOf(['none', 'even', 'odd', 'mark', 'space'] as const), default: 'none' },
      stopBits: { rule: oneOfNumbers([1, 1.5, 2]), default: 1 },
      options: { rule: anyMap(), default: {} },
      reconnect: { rule: duration({ minMs: 10 }), default: 1000 },
      reconnectMax: { rule: duration({ minMs: 10 }), default: 30_000 },
    },
    {
      refine(v, f, ctx) {
        // driver options: hj212's are known here; other drivers check their own when they open
        if (v.driver === 'hj212') {
          const at = f.at('options');
          if (at.node === undefined) v.options = { crc: 'hj212', mode: 'strict', acknowledge: false };
          else {
            const checked = hj212Options()(at, ctx);
            if (checked !== INVALID) v.options = checked;
          }
        } else if (String(v.driver).startsWith('modbus')) {
          const checked = modbusOptions()(f.at('options'), ctx);
          if (checked !== INVALID) v.options = checked;
        } else {
          const rule = v.driver === 'cal3k' ? cal3kOptions() : v.driver === 'parr-csv' ? folderOptions({ utcOffsetMinutes: { rule: integer({ min: 0, max: 24 * 60 }), default: 480 } }) : v.driver === 'custody-folder' ? folderOptions() : v.driver === 'lab-db' ? labDbOptions() : coldRoomOptions();
          const at = f.at('options');
          const checked = rule(at.node === undefined ? { ...at, node: new YAMLMapClass() } : at, ctx);
          if (checked !== INVALID) v.options = checked;
        }
        const serial = (SERIAL_DRIVERS as readonly string[]).includes(v.driver as string);
        if (serial && v.port === undefined) report(ctx, f.at('port'), 'required field is missing');
        if (!serial && v.port !== undefined) report(ctx, f.at('port'), `not used by driver ${String(v.driver)} (its source is in options: ${v.driver === 'cold-room' || v.driver === 'ds18b20' ? 'root, doors, alarm' : v.driver === 'lab-db' ? 'url, table' : 'dir'})`);
        // the source of a non-serial instrument stands where a port would, in status, logs and doctor
        if (!serial && v.options !== undefined) {
          const o = v.options as Record<string, unknown>;
          v.port = v.driver === 'lab-db' ? `${String(o['url'])}#${String(o['table'])}` : String(o['dir'] ?? o['root'] ?? '');
        }
      },
    },
  );
  return (at, ctx) => {
    const v = base(at, ctx);
    if (v === INVALID) return v;
    const { reconnect, reconnectMax, ...rest } = v;
    return { ...rest, reconnectMs: reconnect, reconnectMaxMs: reconnectMax };
  };
}

function oneOfNumbers<const T extends number>(values: readonly T[]): Rule<T> {
  return (at, ctx) => {
    const node = at.node as { value?: unknown } | undefined;
    const v = node?.value;
    if (typeof v === 'number' && (values as readonly number[]).includes(v)) return v as T;
    return report(ctx, at, `expected one of ${values.join(', ')}, got ${v === undefined ? 'nothing' : JSON.stringify(v)}`);
  };
}

function keyRule(): Rule<KeyConfig> {
  const software = object({ path: { rule: path('the path of the PEM key file'), required: true } });
  const pkcs11 = object(
    {
      module: { rule: path('the path of the PKCS#11 library, e.g. /usr/lib/aarch64-linux-gnu/pkcs11/libtpm2_pkcs11.so'), required: true },
      token: { rule: string({ expected: 'the token label' }), required: true },
      keyLabel: { rule: string() },
      keyId: { rule: string({ pattern: /^([0-9a-fA-F]{2})+$/, expected: 'the CKA_ID in hex' }) },
      pinFile: { rule: path('the path of a file holding the PIN (mode 0600)') },
      pinEnv: { rule: string({ pattern: /^[A-Za-z_][A-Za-z0-9_]*$/, expected: 'an environment variable name' }) },
      kind: { rule: oneOf(['pkcs11', 'tpm', 'secure-element'] as const), default: 'pkcs11' },
    },
    {
      refine(v, f, ctx) {
        const n = Number(v.pinFile !== undefined) + Number(v.pinEnv !== undefined);
        if (n !== 1) report(ctx, f.at(n === 0 ? 'pinFile' : 'pinEnv'), 'expected exactly one of pinFile or pinEnv (never the PIN itself)');
      },
    },
  );
  const outer = object({ software: { rule: software }, pkcs11: { rule: pkcs11 } }, {
    refine(v, f, ctx) {
      const n = Number(v.software !== undefined) + Number(v.pkcs11 !== undefined);
      if (n !== 1) report(ctx, f.at(n === 0 ? 'software' : 'pkcs11'), 'expected exactly one key backend: software or pkcs11');
    },
  });
  return (at, ctx) => {
    const v = outer(at, ctx);
    if (v === INVALID) return v;
    if (v.software !== undefined) return { backend: 'software', path: (v.software as { path: string }).path };
    const p = v.pkcs11 as Record<string, string>;
    return {
      backend: 'pkcs11',
      kind: p.kind as 'pkcs11',
      module: p.module!,
      token: p.token!,
      ...(p.keyLabel === undefined ? {} : { keyLabel: p.keyLabel }),
      ...(p.keyId === undefined ? {} : { keyId: p.keyId }),
      pin: p.pinFile !== undefined ? { file: p.pinFile } : { env: p.pinEnv! },
    };
  };
}

function brokerRule(): Rule<Record<string, unknown>> {
  return object(
    {
      url: { rule: string({ pattern: /^(mqtts?|wss?):\/\/[^\s/]+/, expected: 'a broker URL such as mqtts://broker.example:8883 (mqtt, mqtts, ws or wss)' }), required: true },
      username: { rule: string() },
      passwordFile: { rule: path('the path of a file holding the broker password') },
      tls: {
        rule: object(
          { ca: { rule: path() }, cert: { rule: path() }, key: { rule: path() }, rejectUnauthorized: { rule: boolean(), default: true } },
          {
            refine(v, f, ctx) {
              if ((v.cert === undefined) !== (v.key === undefined)) report(ctx, f.at(v.cert === undefined ? 'cert' : 'key'), 'expected cert and key together (a client certificate needs its key)');
            },
          },
        ),
      },
      clientId: { rule: string({ maxLength: 128 }) },
      mode: { rule: oneOf(['full', 'hash-only'] as const), default: 'full' },
      protocolVersion: { rule: oneOfNumbers([4, 5]), default: 4 },
      resendAfter: { rule: duration({ minMs: 100 }), default: 10_000 },
    },
    {
      refine(v, f, ctx) {
        if (v.passwordFile !== undefined && v.username === undefined) report(ctx, f.at('username'), 'required when passwordFile is set');
      },
    },
  );
}

function rootRule(drivers: readonly string[]): Rule<Record<string, unknown>> {
  return object(
    {
      gateway: {
        rule: object({
          id: { rule: string({ pattern: DEVICE_ID, expected: 'the device id: 1..128 characters without "/", "+", "#"' }), required: true },
          dataDir: { rule: path('the data folder (outbox, keys), e.g. /var/lib/stele'), required: true },
          logLevel: { rule: oneOf(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const), default: 'info' },
        }),
        required: true,
      },
      key: { rule: keyRule(), required: true },
      broker: { rule: brokerRule(), required: true },
      ingest: {
        rule: object({
          publicKey: {
            rule: (at, ctx) => {
              const v = string({ pattern: /^[A-Za-z0-9_-]{87}$/, expected: "the ingest public key: 87 base64url characters (SEC1 uncompressed P-256, as `stele ingest key` prints it)" })(at, ctx);
              if (v === INVALID) return v;
              try {
                const key = fromBase64Url(v);
                assertP256PublicKey(key);
                return key;
              } catch {
                return report(ctx, at, 'expected a P-256 public key (SEC1 uncompressed, 65 bytes, base64url); this one is not on the curve or not canonical');
              }
            },
          },
          url: { rule: string({ pattern: /^https?:\/\/[^\s/]+(\/[^\s]*)?$/, expected: "ingest's HTTP API, e.g. https://ingest.example.org:8080", maxLength: 2048 }) },
        }),
      },
      instruments: {
        rule: instrumentsRule(drivers),
        default: [],
      },
      relays: {
        rule: list(
          object({
            id: { rule: string({ pattern: NAME, expected: 'a name of letters, digits, ".", "_" or "-"' }), required: true },
            listen: {
              rule: object({ host: { rule: string({ expected: 'an address to listen on, e.g. 0.0.0.0 or the LAN address' }), default: '127.0.0.1' }, port: { rule: integer({ min: 1, max: 65535 }), required: true } }),
              required: true,
            },
            upstream: {
              rule: object({ host: { rule: string({ expected: "the platform's host name or address" }), required: true }, port: { rule: integer({ min: 1, max: 65535 }), required: true } }),
              required: true,
            },
            mode: { rule: oneOf(['strict', 'lenient'] as const), default: 'lenient' },
            maxConnections: { rule: integer({ min: 1, max: 10_000 }), default: 16 },
            maxBytesPerSecond: { rule: bytes({ min: 1 }), default: 64 * 1024 },
            maxTotalBytesPerSecond: { rule: bytes({ min: 1 }), default: 256 * 1024 },
          }),
        ),
        default: [],
      },
      retention: {
        rule: object({ keepAcked: { rule: duration(), default: 30 * 86_400_000 }, keepReadings: { rule: integer(), default: 0 } }),
        default: { keepAcked: 30 * 86_400_000, keepReadings: 0 },
      },
      disk: {
        rule: object(
          {
            warnAtFreeBytes: { rule: bytes(), default: 1_000_000_000 },
            stopAtFreeBytes: { rule: bytes(), default: 200_000_000 },
            policy: { rule: oneOf(['refuse-new'] as const), default: 'refuse-new' },
            checkEvery: { rule: duration({ minMs: 100 }), default: 30_000 },
          },
          {
            refine(v, f, ctx) {
              if ((v.stopAtFreeBytes as number) >= (v.warnAtFreeBytes as number)) report(ctx, f.at('stopAtFreeBytes'), 'expected less than warnAtFreeBytes (the warning comes first)');
            },
          },
        ),
        default: { warnAtFreeBytes: 1_000_000_000, stopAtFreeBytes: 200_000_000, policy: 'refuse-new', checkEvery: 30_000 },
      },
      health: {
        rule: object({
          port: { rule: integer({ min: 0, max: 65535 }), default: 9102 },
          host: { rule: oneOf(['127.0.0.1', '::1', 'localhost'] as const), default: '127.0.0.1' },
          publishEvery: { rule: duration({ minMs: 1000 }), default: 60_000 },
        }),
        default: { port: 9102, host: '127.0.0.1', publishEvery: 60_000 },
      },
      clock: {
        rule: object({
          checkEvery: { rule: duration({ minMs: 100 }), default: 10_000 },
          jumpThreshold: { rule: duration({ minMs: 100 }), default: 2000 },
        }),
        default: { checkEvery: 10_000, jumpThreshold: 2000 },
      },
    },
  );
}

/** The instrument list: each item, then ids unique and a port owned by one instrument (Modbus slaves share a bus). */
function instrumentsRule(drivers: readonly string[]): Rule<Record<string, unknown>[]> {
  const items = list(instrument(drivers));
  return (at, ctx) => {
    const instruments = items(at, ctx);
    if (instruments === INVALID) return INVALID;
    const seq = at.node as YAMLSeq;
    const ids = new Map<string, number>();
    const ports = new Map<string, number>();
    const before = ctx.issues.length;
    instruments.forEach((ins, i) => {
      const item = seq.items[i] as YAMLMap | undefined;
      const fieldAt = (name: string): At => ({
        node: item?.get(name, true),
        path: `${at.path}[${i}].${name}`,
        fallbackOffset: item?.range?.[0] ?? 0,
      });
      const id = ins.id as string;
      if (ids.has(id)) report(ctx, fieldAt('id'), `duplicate instrument id ${JSON.stringify(id)} (also instruments[${ids.get(id)}])`);
      else ids.set(id, i);
      const port = ins.port as string;
      if (ins.driver === 'cold-room' || ins.driver === 'ds18b20') return; // several rooms share the 1-Wire folder
      // one instrument owns a port (several Modbus slaves on one bus are one instrument's `devices`)
      if (ports.has(port)) report(ctx, fieldAt('port'), `port ${port} is already used by instruments[${ports.get(port)}] (put Modbus slaves of one bus in one instrument's options.devices)`);
      else ports.set(port, i);
    });
    return ctx.issues.length > before ? INVALID : instruments;
  };
}

export interface ParseConfigOptions {
  /** Driver names accepted in `instruments[].driver`. Default {@link KNOWN_DRIVERS}. */
  drivers?: readonly string[];
}

/**
 * Parses and checks config text. Throws ConfigError CONFIG_INVALID listing every issue (YAML syntax first:
 * nothing is checked in a document that does not parse).
 */
export function parseConfig(text: string, file: string, options: ParseConfigOptions = {}): GatewayConfig {
  if (typeof text !== 'string') throw new TypeError('text must be a string');
  const abs = resolve(file);
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const issues: ConfigIssue[] = [];
  for (const e of doc.errors) {
    const { line, col } = lineCounter.linePos(e.pos[0]);
    issues.push({ file: abs, line, column: col, path: '', message: `YAML syntax: ${e.message.split('\n')[0]}` });
  }
  if (issues.length === 0) {
    const ctx: Ctx = { file: abs, lineCounter, issues };
    const value = rootRule(options.drivers ?? KNOWN_DRIVERS)({ node: doc.contents ?? undefined, path: '', fallbackOffset: 0 }, ctx);
    if (value !== INVALID && issues.length === 0) return toConfig(value, abs);
  }
  throw configInvalid(issues);
}

/** Largest config file read (a real one is a few KiB): a 100 MB junk file must not cost gigabytes to parse. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/**
 * Reads and checks a config file. CONFIG_UNREADABLE when it cannot be read; CONFIG_TOO_LARGE over
 * MAX_CONFIG_BYTES (checked before reading, and again on what was read); CONFIG_INVALID as {@link parseConfig}.
 */
export async function loadConfig(file: string, options: ParseConfigOptions = {}): Promise<GatewayConfig> {
  let text: string;
  try {
    const fh = await open(file, 'r');
    try {
      const size = (await fh.stat()).size;
      if (size > MAX_CONFIG_BYTES) {
        throw new ConfigError('CONFIG_TOO_LARGE', `the config file ${file} has ${size} bytes; at most ${MAX_CONFIG_BYTES} are read`, { where: { file: resolve(file), sizeBytes: size } });
      }
      const buf = Buffer.alloc(MAX_CONFIG_BYTES + 1);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      if (bytesRead > MAX_CONFIG_BYTES) throw new ConfigError('CONFIG_TOO_LARGE', `the config file ${file} grew past ${MAX_CONFIG_BYTES} bytes`, { where: { file: resolve(file) } });
      text = buf.subarray(0, bytesRead).toString('utf8');
    } finally {
      await fh.close();
    }
  } catch (cause) {
    if (cause instanceof ConfigError) throw cause;
    const code = (cause as NodeJS.ErrnoException).code;
    throw new ConfigError('CONFIG_UNREADABLE', `cannot read the config file ${file}${code === 'ENOENT' ? ' (no such file)' : code === 'EACCES' ? ' (permission denied)' : ''}`, {
      cause,
      where: { file: resolve(file) },
    });
  }
  return parseConfig(text, file, options);
}

function configInvalid(issues: ConfigIssue[]): ConfigError {
  issues.sort((a, b) => a.line - b.line || a.column - b.column);
  const first = issues[0] ?? { file: '?', line: 1, column: 1, path: '', message: 'empty' };
  const lines = issues.map((i) => `  ${formatIssue(i)}`);
  return new ConfigError('CONFIG_INVALID', `config has ${issues.length} problem${issues.length === 1 ? '' : 's'}:\n${lines.join('\n')}`, {
    where: { file: first.file, line: first.line, column: first.column, path: first.path },
    issues,
  });
}

function toConfig(v: Record<string, unknown>, file: string): GatewayConfig {
  const dir = dirname(file);
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(dir, p));
  const gateway = v.gateway as GatewayConfig['gateway'];
  const key = v.key as KeyConfig;
  const b = v.broker as Record<string, unknown>;
  const tls = b.tls as Record<string, unknown> | undefined;
  const broker: BrokerConfig = {
    url: b.url as string,
    mode: b.mode as BrokerConfig['mode'],
    protocolVersion: b.protocolVersion as 4 | 5,
    resendAfterMs: b.resendAfter as number,
    ...(b.username === undefined ? {} : { username: b.username as string }),
    ...(b.passwordFile === undefined ? {} : { passwordFile: abs(b.passwordFile as string) }),
    ...(b.clientId === undefined ? {} : { clientId: b.clientId as string }),
    ...(tls === undefined
      ? {}
      : {
          tls: {
            rejectUnauthorized: tls.rejectUnauthorized as boolean,
            ...(tls.ca === undefined ? {} : { ca: abs(tls.ca as string) }),
            ...(tls.cert === undefined ? {} : { cert: abs(tls.cert as string) }),
            ...(tls.key === undefined ? {} : { key: abs(tls.key as string) }),
          },
        }),
  };
  const disk = v.disk as Record<string, unknown>;
  const health = v.health as Record<string, unknown>;
  const clock = v.clock as Record<string, unknown>;
  return {
    file,
    gateway: { ...gateway, dataDir: abs(gateway.dataDir) },
    key:
      key.backend === 'software'
        ? { backend: 'software', path: abs(key.path) }
        : { ...key, module: key.module, pin: 'file' in key.pin ? { file: abs(key.pin.file) } : key.pin },
    broker,
    ingest: v.ingest === undefined ? undefined : ingestOf(v.ingest as { publicKey?: Uint8Array; url?: string }),
    instruments: v.instruments as InstrumentConfig[],
    relays: v.relays as RelayConfig[],
    retention: { keepAckedMs: (v.retention as { keepAcked: number }).keepAcked, keepReadings: (v.retention as { keepReadings: number }).keepReadings },
    disk: {
      warnAtFreeBytes: disk.warnAtFreeBytes as number,
      stopAtFreeBytes: disk.stopAtFreeBytes as number,
      policy: disk.policy as DiskPolicy,
      checkEveryMs: disk.checkEvery as number,
    },
    health: { port: health.port as number, host: health.host as string, publishEveryMs: health.publishEvery as number },
    clock: { checkEveryMs: clock.checkEvery as number, jumpThresholdMs: clock.jumpThreshold as number },
  };
}

function ingestOf(i: { publicKey?: Uint8Array; url?: string }): NonNullable<GatewayConfig['ingest']> {
  return { ...(i.publicKey === undefined ? {} : { publicKey: i.publicKey }), ...(i.url === undefined ? {} : { url: i.url.replace(/\/+$/, '') }) };
}
