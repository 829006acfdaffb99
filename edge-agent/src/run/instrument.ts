/**
 * One instrument: its serial transport (hardware's SerialTransport: by-id paths, reconnect with backoff, a
 * missing adapter retried until it appears), its driver session, and the Acquired items the agent takes.
 * A failing instrument never stalls another: each has its own transport, timers and source.
 *
 * The full-disk policy is applied here, before the take: under `refuse-new` a reading is decoded (so the line
 * stays drained and counted) but not taken, and counted as refused.
 */
import type { ClockState } from '@stele/core';
import { sleep } from '@stele/core';
import { cal3kDriver, hj212Driver, modbusDriver, REGISTER_PROFILES, SerialTransport, type SensorSession, type SerialStatus, type SerialTransportOptions } from '@stele/hardware';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { InstrumentConfig } from '../config/config.ts';
import { coldRoomSource, custodyFolderSource, labDbSource, parrCsvSource, type LocalSourceDeps } from './local-sources.ts';
import type { LogFn } from '../log.ts';
import type { Acquired } from '../outbox.ts';
import type { DiskMonitor } from '../ops/disk.ts';
import type { InstrumentStatus } from '../ops/status.ts';

export type PortErrorCode = 'INSTRUMENT_PORT_MISSING' | 'INSTRUMENT_PORT_DENIED' | 'INSTRUMENT_PORT_BUSY' | 'INSTRUMENT_PORT_FAILED' | 'INSTRUMENT_DRIVER_UNAVAILABLE';

/** A plain cause and the fix to try, for a port that cannot be opened (shared with doctor). */
export function describePortProblem(code: PortErrorCode, instrument: string, path: string): { message: string; fix: string } {
  switch (code) {
    case 'INSTRUMENT_PORT_MISSING':
      return {
        message: `instrument ${instrument}: serial port ${path} does not exist`,
        fix: `check the cable and the USB adapter; list the ports with \`ls -l /dev/serial/by-id/\` and put the right path in the config`,
      };
    case 'INSTRUMENT_PORT_DENIED':
      return {
        message: `instrument ${instrument}: no permission to open ${path}`,
        fix: 'add the service user to the dialout group (`sudo usermod -aG dialout stele`, then restart the service) or fix the udev rule',
      };
    case 'INSTRUMENT_PORT_BUSY':
      return {
        message: `instrument ${instrument}: ${path} is in use by another program`,
        fix: 'stop the other program (`sudo fuser -v ' + path + '`); is the gateway agent already running?',
      };
    case 'INSTRUMENT_DRIVER_UNAVAILABLE':
      return { message: `instrument ${instrument}: its driver is not available in this build`, fix: 'use one of the drivers listed in docs/gateway-install.md' };
    default:
      return { message: `instrument ${instrument}: cannot open ${path}`, fix: 'check the port path and line settings (baud, parity, stop bits); see the log for the system error' };
  }
}

/** Maps an open failure (SerialError with its cause, or a raw error) to a port problem code. */
export function portErrorCode(err: unknown): PortErrorCode {
  const e = err as { code?: unknown; cause?: { code?: unknown; message?: unknown }; message?: unknown };
  if (e.code === 'SERIAL_PERMISSION_DENIED' || e.code === 'EACCES' || e.code === 'EPERM') return 'INSTRUMENT_PORT_DENIED';
  const causeCode = e.cause?.code ?? e.code;
  const text = `${String(e.message ?? '')} ${String(e.cause?.message ?? '')}`;
  if (causeCode === 'ENOENT' || /no such file|ENOENT|does not exist/i.test(text)) return 'INSTRUMENT_PORT_MISSING';
  if (causeCode === 'EBUSY' || /resource busy|cannot lock|temporarily unavailable|EBUSY/i.test(text)) return 'INSTRUMENT_PORT_BUSY';
  if (/permission denied/i.test(text)) return 'INSTRUMENT_PORT_DENIED';
  return 'INSTRUMENT_PORT_FAILED';
}

/** The sensors an instrument must deliver: each Modbus probe of its bus (doctor checks every one answered). */
export function expectedSensors(c: InstrumentConfig): { sensor: string; what: string }[] {
  if (c.driver !== 'modbus-th' && c.driver !== 'modbus-rtu') return [];
  return ((c.options.devices ?? []) as { sensor: string; slave: number }[]).map((d) => ({ sensor: d.sensor, what: `probe ${d.sensor} (slave ${d.slave})` }));
}

export interface InstrumentDeps {
  clock: () => ClockState;
  disk?: DiskMonitor;
  log: LogFn;
  /** serialport's mock binding (tests, demos). Default: the native binding. */
  binding?: SerialTransportOptions['binding'];
  now?: () => number;
  /** Where folder pollers keep their state. Default: the OS temp folder (the gateway passes its data dir). */
  stateDir?: string;
  /** libgpiod tools runner for the cold room (tests). */
  commands?: LocalSourceDeps['commands'];
}

/** Supported driver names (config `instruments[].driver`). */
export const DRIVERS = ['hj212', 'modbus-th', 'modbus-rtu', 'cal3k', 'parr-csv', 'custody-folder', 'cold-room', 'ds18b20', 'lab-db'] as const;
/** Drivers that do not read a serial port (their source is a folder, sysfs and GPIO). */
const LOCAL_DRIVERS = new Set(['parr-csv', 'custody-folder', 'cold-room', 'ds18b20', 'lab-db']);

export class InstrumentRunner {
  readonly config: InstrumentConfig;
  readonly #deps: InstrumentDeps;
  readonly #abort = new AbortController();
  readonly #status: InstrumentStatus;
  #transport: SerialTransport | undefined;
  #session: SensorSession | undefined;
  #lastLoggedCode: string | undefined;

  constructor(config: InstrumentConfig, deps: InstrumentDeps) {
    this.config = config;
    this.#deps = deps;
    this.#status = {
      id: config.id,
      driver: config.driver,
      port: config.port,
      state: 'connecting',
      lastError: undefined,
      opens: 0,
      frames: 0,
      rejections: {},
      refused: 0,
      lastReadingAt: undefined,
      sensors: {},
    };
  }



  status(): InstrumentStatus {
    return {
      ...this.#status,
      rejections: { ...this.#status.rejections },
      lastError: this.#status.lastError && { ...this.#status.lastError },
      sensors: Object.fromEntries(Object.entries(this.#status.sensors ?? {}).map(([k, v]) => [k, { ...v }])),
    };
  }

  /** The readings to take, until {@link stop}. Reopens the port and restarts the session on failure. */
  async *source(): AsyncGenerator<Acquired, void, undefined> {
    const signal = this.#abort.signal;
    let delayMs = this.config.reconnectMs;
    while (!signal.aborted) {
      try {
        yield* this.#runSession(signal);
        delayMs = this.config.reconnectMs;
      } catch (err) {
        if (signal.aborted) break;
        this.#fail(err);
        await sleep(delayMs, signal);
        delayMs = Math.min(delayMs * 2, this.config.reconnectMaxMs);
      } finally {
        await this.#closeSession();
      }
    }
    this.#status.state = 'stopped';
  }

  async *#runSession(signal: AbortSignal): AsyncGenerator<Acquired, void, undefined> {
    if (LOCAL_DRIVERS.has(this.config.driver)) {
      yield* this.#runLocal(signal);
      return;
    }
    const c = this.config;
    const log = this.#deps.log;
    const transport = new SerialTransport({
      path: c.port,
      baudRate: c.baud,
      dataBits: c.dataBits,
      parity: c.parity,
      stopBits: c.stopBits,
      reconnect: { initialDelayMs: c.reconnectMs, maxDelayMs: c.reconnectMaxMs },
      retryInitialOpen: true,
      ...(this.#deps.binding === undefined ? {} : { binding: this.#deps.binding }),
      // repeated open failures are summarised by this runner (once per cause), not logged per attempt
      log: (level, msg, fields) => log(msg === 'serial port open failed' ? 'debug' : level, msg, { instrument: c.id, ...fields }),
    });
    this.#transport = transport;
    transport.onStatus((s) => this.#onTransport(s));
    this.#status.state = 'connecting';
    const onIssue = (issue: { code: string; error: Error }) => {
      const first = this.#status.rejections[issue.code] === undefined;
      this.#status.rejections[issue.code] = (this.#status.rejections[issue.code] ?? 0) + 1;
      log(first ? 'warn' : 'debug', 'instrument data rejected', { instrument: c.id, code: issue.code, err: issue.error.message, count: this.#status.rejections[issue.code] });
    };
    const o = c.options;
    let session: SensorSession;
    if (c.driver === 'hj212') {
      session = await hj212Driver.open(
        {
          sensor: typeof o.sensor === 'string' ? o.sensor : c.id,
          mode: o.mode as 'strict' | 'lenient',
          crc: o.crc as 'hj212' | 'modbus-lsb-first',
          acknowledge: o.acknowledge === true,
          ...(typeof o.silenceTimeout === 'number' ? { silenceTimeoutMs: o.silenceTimeout } : {}),
          onIssue,
          ...(this.#deps.now === undefined ? {} : { now: this.#deps.now }),
        },
        transport,
      );
    } else if (c.driver === 'modbus-th' || c.driver === 'modbus-rtu') {
      const devices = (o.devices as { sensor: string; slave: number; profile: string; interval: number; offset: number }[]).map((d) => ({
        sensor: d.sensor,
        slave: d.slave,
        profile: REGISTER_PROFILES[d.profile]!,
        intervalMs: d.interval,
        offsetMs: d.offset,
      }));
      session = await modbusDriver.open({ devices, timeoutMs: o.timeout as number, onIssue, ...(this.#deps.now === undefined ? {} : { now: this.#deps.now }) }, transport);
    } else if (c.driver === 'cal3k') {
      session = await cal3kDriver.open(
        {
          sensor: typeof o.sensor === 'string' ? o.sensor : c.id,
          finalStatuses: o.finalStatuses as string[],
          ...(typeof o.silenceTimeout === 'number' ? { silenceTimeoutMs: o.silenceTimeout } : {}),
          onIssue,
          ...(this.#deps.now === undefined ? {} : { now: this.#deps.now }),
        },
        transport,
      );
    } else {
      throw Object.assign(new Error(`driver ${c.driver} is not available`), { code: 'INSTRUMENT_DRIVER_UNAVAILABLE' });
    }
    this.#session = session;
    for await (const r of session.readings(signal)) {
      this.#status.frames++;
      this.#status.lastReadingAt = (this.#deps.now ?? Date.now)();
      const per = (this.#status.sensors ??= {});
      const one = (per[r.sensor] ??= { readings: 0, lastReadingAt: 0 });
      one.readings++;
      one.lastReadingAt = this.#status.lastReadingAt;
      const disk = this.#deps.disk;
      if (disk !== undefined && !disk.admits()) {
        disk.refuse();
        this.#status.refused++;
        if (this.#status.refused === 1 || this.#status.refused % 100 === 0) {
          log('error', 'disk full: reading refused (policy refuse-new); unsent readings are kept', { instrument: c.id, refused: this.#status.refused, code: 'DISK_FULL_REFUSED' });
        }
        continue;
      }
      yield {
        sensor: r.sensor,
        time: r.time,
        clock: this.#deps.clock(),
        meas: r.meas,
        raw: r.raw,
        ...(r.itime === undefined ? {} : { itime: r.itime }),
        ...(r.rtype === undefined ? {} : { rtype: r.rtype }),
      };
    }
  }

  /** A folder or cold-room source: no port to open; failures restart it like a session. */
  async *#runLocal(signal: AbortSignal): AsyncGenerator<Acquired, void, undefined> {
    const c = this.config;
    const log = this.#deps.log;
    const now = this.#deps.now ?? Date.now;
    const deps: LocalSourceDeps = {
      stateDir: this.#deps.stateDir ?? join(tmpdir(), 'stele-instruments'),
      now,
      onIssue: (issue) => {
        const first = this.#status.rejections[issue.code] === undefined;
        this.#status.rejections[issue.code] = (this.#status.rejections[issue.code] ?? 0) + 1;
        log(first ? 'warn' : 'debug', 'instrument data rejected', { instrument: c.id, code: issue.code, err: issue.error.message, count: this.#status.rejections[issue.code] });
      },
      ...(this.#deps.commands === undefined ? {} : { commands: this.#deps.commands }),
    };
    await mkdir(deps.stateDir, { recursive: true, mode: 0o750 });
    const source = c.driver === 'parr-csv' ? parrCsvSource(c, deps, signal) : c.driver === 'custody-folder' ? custodyFolderSource(c, deps, signal) : c.driver === 'lab-db' ? labDbSource(c, deps, signal) : coldRoomSource(c, deps, signal);
    this.#status.state = 'open';
    this.#status.opens++;
    for await (const r of source) {
      this.#status.frames++;
      this.#status.lastReadingAt = now();
      const disk = this.#deps.disk;
      if (disk !== undefined && !disk.admits()) {
        disk.refuse();
        this.#status.refused++;
        continue;
      }
      yield { sensor: r.sensor, time: r.time, clock: this.#deps.clock(), meas: r.meas, raw: r.raw };
    }
  }

  #onTransport(s: SerialStatus): void {
    const c = this.config;
    if (s.type === 'open') {
      this.#status.state = 'open';
      this.#status.opens++;
      if (this.#lastLoggedCode !== undefined) this.#deps.log('info', 'instrument port is back', { instrument: c.id, path: c.port, realPath: s.realPath });
      this.#lastLoggedCode = undefined;
    } else if (s.type === 'error') {
      this.#fail(s.error);
    } else if (s.type === 'reconnecting') {
      if (this.#status.state === 'open' || this.#status.state === 'connecting') this.#status.state = 'waiting';
    } else if (s.type === 'closed' && s.reason === 'gave-up') {
      this.#status.state = 'unavailable';
    }
  }

  #fail(err: unknown): void {
    const e = err as { code?: unknown; message?: unknown };
    const code = e.code === 'SERIAL_DISCONNECTED' ? 'INSTRUMENT_DISCONNECTED' : e.code === 'INSTRUMENT_DRIVER_UNAVAILABLE' ? e.code : String(e.code ?? '').startsWith('SERIAL_') ? portErrorCode(err) : String(e.code ?? 'INSTRUMENT_FAILED');
    const c = this.config;
    let message = String(e.message ?? err);
    let fix: string | undefined;
    if (code.startsWith('INSTRUMENT_PORT') || code === 'INSTRUMENT_DRIVER_UNAVAILABLE') ({ message, fix } = describePortProblem(code as PortErrorCode, c.id, c.port));
    else if (code === 'INSTRUMENT_DISCONNECTED') message = `instrument ${c.id}: ${c.port} went away (adapter unplugged?)`;
    this.#status.lastError = { code, message, at: Date.now() };
    if (this.#status.state !== 'stopped') this.#status.state = 'waiting';
    if (code !== this.#lastLoggedCode) {
      this.#lastLoggedCode = code;
      this.#deps.log('error', `${message}; retrying`, { instrument: c.id, path: c.port, code, ...(fix === undefined ? {} : { fix }) });
    }
  }

  async #closeSession(): Promise<void> {
    const session = this.#session;
    const transport = this.#transport;
    this.#session = undefined;
    this.#transport = undefined;
    await session?.close().catch(() => undefined);
    await transport?.close().catch(() => undefined);
  }

  /** Stops reading: the source ends, the session and port close. */
  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#closeSession();
    this.#status.state = 'stopped';
  }
}

