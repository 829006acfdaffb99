/**
 * Instruments that are not a serial line: export folders (Parr run files, custody events) and the cold room
 * (DS18B20 probes in sysfs, door contacts and the alarm output on GPIO). Each is an async source of readings
 * for the agent, like a serial driver session; what they reject is counted as an issue with its code.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import postgres from 'postgres';
import { fromUtf8, sleep } from '@stele/core';
import type { Measurement } from '@stele/core';
import {
  CoalError,
  ColdRoomController,
  DatabasePoller,
  measurementsFromRow,
  type CoalKind,
  type DbRow,
  type RunCsvColumn,
  createCommandRunner,
  custodyMeasurements,
  ExportFolderPoller,
  GpioAlarmOutput,
  parseRunCsv,
  readAllDs18b20,
  readDoor,
  type CommandRunner,
  type CustodyEvent,
  type DoorContact,
  type ExportFile,
  type GpiodDialect,
} from '@stele/hardware';
import type { InstrumentConfig } from '../config/config.ts';

/** What a local source yields: a reading's content without the clock state (the runner adds it). */
export interface LocalReading {
  sensor: string;
  time: number;
  meas: Measurement[];
  raw: Uint8Array[];
}

export interface LocalSourceDeps {
  /** Where pollers keep their state (handled files). */
  stateDir: string;
  now: () => number;
  onIssue: (issue: { code: string; error: Error }) => void;
  /** libgpiod tools runner (tests: a fake-tools PATH). Default: the real commands. */
  commands?: CommandRunner;
}

/** Largest custody event file, bytes. */
const MAX_CUSTODY_FILE = 64 * 1024;


/** Polls a folder; `handle` turns one settled file into readings (a CoalError rejects the file, counted). */
async function* pollFolder(c: InstrumentConfig, deps: LocalSourceDeps, signal: AbortSignal, handle: (f: ExportFile) => LocalReading[], include?: RegExp): AsyncGenerator<LocalReading> {
  const o = c.options as { dir: string; interval: number; settle: number; writerRenames: boolean };
  const poller = new ExportFolderPoller({
    dir: o.dir,
    stateFile: join(deps.stateDir, `${c.id}.folder.json`),
    settleMs: o.settle,
    writerRenames: o.writerRenames,
    now: deps.now,
    ...(include === undefined ? {} : { include }),
  });
  while (!signal.aborted) {
    const out: LocalReading[] = [];
    const report = await poller.pollOnce((file) => {
      out.push(...handle(file));
    });
    for (const r of report.rejected) deps.onIssue({ code: r.error.code, error: r.error });
    for (const f of report.failed) deps.onIssue({ code: 'INSTRUMENT_FAILED', error: f.error instanceof Error ? f.error : new Error(String(f.error)) });
    yield* out;
    await sleep(o.interval, signal);
  }
}

/** Parr 6x00 run files (`*.csv`): one reading per final result; results not final are issues COAL_NOT_FINAL. */
export function parrCsvSource(c: InstrumentConfig, deps: LocalSourceDeps, signal: AbortSignal): AsyncGenerator<LocalReading> {
  const o = c.options as { utcOffsetMinutes: number };
  return pollFolder(c, deps, signal, (file) => {
    const parsed = parseRunCsv(file.bytes, undefined, { file: file.name, utcOffsetMinutes: o.utcOffsetMinutes });
    for (const r of parsed.rejected) deps.onIssue({ code: r.error.code, error: r.error });
    const out: LocalReading[] = [];
    for (const r of parsed.results) {
      if (!r.final) {
        deps.onIssue({ code: 'COAL_NOT_FINAL', error: new CoalError('COAL_NOT_FINAL', `${file.name}: result for ${r.sampleId} has status ${r.status}`, { where: { file: file.name } }) });
        continue;
      }
      out.push({ sensor: c.id, time: deps.now(), meas: r.meas, raw: [r.raw] });
    }
    return out;
  });
}

/**
 * Custody events (hardware/src/coal/custody.ts), one JSON object per file (`*.json`) as the sampling, preparation
 * or lab terminal writes them: one reading each, `raw` = SHA-256 of the file. A file that is not one valid event
 * is rejected (CUSTODY_BAD_EVENT), counted, and not signed.
 */
export function custodyFolderSource(c: InstrumentConfig, deps: LocalSourceDeps, signal: AbortSignal): AsyncGenerator<LocalReading> {
  return pollFolder(
    c,
    deps,
    signal,
    (file) => {
      if (file.bytes.length > MAX_CUSTODY_FILE) throw new CoalError('CUSTODY_BAD_EVENT', `${file.name}: larger than ${MAX_CUSTODY_FILE} bytes`, { where: { file: file.name } });
      let event: CustodyEvent;
      try {
        event = JSON.parse(fromUtf8(file.bytes)) as CustodyEvent;
      } catch (cause) {
        throw new CoalError('CUSTODY_BAD_EVENT', `${file.name}: not JSON`, { cause, where: { file: file.name } });
      }
      let meas: Measurement[];
      try {
        meas = custodyMeasurements(event);
      } catch (err) {
        if (err instanceof CoalError) throw new CoalError('CUSTODY_BAD_EVENT', `${file.name}: ${err.message}`, { cause: err, where: { file: file.name, ...err.where } });
        throw new CoalError('CUSTODY_BAD_EVENT', `${file.name}: not a custody event`, { cause: err, where: { file: file.name } });
      }
      return [{ sensor: c.id, time: deps.now(), meas, raw: [file.sha256] }];
    },
    /\.json$/i,
  );
}

export interface LabDbOptions {
  url: string;
  passwordFile?: string;
  table: string;
  key: string;
  cursor: string;
  final?: string;
  columns: { column: string; code: string; kind: CoalKind; unit?: string }[];
  interval: number;
  maxRows: number;
}

const quoteName = (name: string): string => name.split('.').map((p) => `"${p.replace(/"/g, '""')}"`).join('.');

/** A PostgreSQL connection for the lab database: one connection, the password from its file (never in the URL). */
export async function connectLabDb(o: LabDbOptions): Promise<postgres.Sql> {
  const password = o.passwordFile === undefined ? undefined : (await readFile(o.passwordFile, 'utf8')).replace(/\r?\n$/, '');
  return postgres(o.url, { max: 1, connect_timeout: 10, idle_timeout: 60, onnotice: () => {}, connection: { application_name: 'stele-gateway' }, ...(password === undefined ? {} : { password }) });
}

/**
 * The lab database (PROTOCOLS.md §3.1: the instrument software or the LIMS writes result rows): polled with the
 * DatabasePoller (cursor on the time column, inclusive, persisted in the state folder; rows not final hold it
 * back). One reading per final row: the mapped columns as measurements, `raw` = SHA-256 of the canonical row
 * bytes (the evidence of a row; a corrected row has a new digest and is signed again). A row not final is
 * counted COAL_NOT_FINAL once per poll, not signed.
 */
export async function* labDbSource(c: InstrumentConfig, deps: LocalSourceDeps, signal: AbortSignal): AsyncGenerator<LocalReading> {
  const o = c.options as unknown as LabDbOptions;
  const sql = await connectLabDb(o);
  const columns: Record<string, RunCsvColumn> = Object.fromEntries(o.columns.map((x) => [x.column, { code: x.code, kind: x.kind, ...(x.unit === undefined ? {} : { unit: x.unit }) }]));
  const text = `select * from ${quoteName(o.table)} where ($1::text is null or ${quoteName(o.cursor)} >= $1::timestamptz) order by ${quoteName(o.cursor)}, ${quoteName(o.key)} limit ${o.maxRows}`;
  const poller = new DatabasePoller<DbRow>({
    query: async (since) => (await sql.unsafe(text, [since ?? null])) as unknown as DbRow[],
    key: (row) => String(row[o.key]),
    cursor: (row) => {
      const v = row[o.cursor];
      return v instanceof Date ? v.toISOString() : String(v);
    },
    isFinal: (row) => o.final === undefined || row[o.final] === true,
    stateFile: join(deps.stateDir, `${c.id}.lab-db.json`),
  });
  try {
    while (!signal.aborted) {
      const out: LocalReading[] = [];
      try {
        const report = await poller.pollOnce((e) => {
          out.push({ sensor: c.id, time: deps.now(), meas: measurementsFromRow(e.row, columns), raw: [e.sha256] });
        });
        for (const key of report.waiting) deps.onIssue({ code: 'COAL_NOT_FINAL', error: new CoalError('COAL_NOT_FINAL', `${o.table}: row ${key} is not final yet`, { where: { table: o.table, key } }) });
      } catch (err) {
        deps.onIssue({ code: 'INSTRUMENT_SOURCE_UNAVAILABLE', error: err instanceof Error ? err : new Error(String(err)) });
      }
      yield* out;
      await sleep(o.interval, signal);
    }
  } finally {
    await sql.end({ timeout: 1 }).catch(() => undefined);
  }
}

interface ColdRoomOptions {
  root: string;
  probes?: string[];
  interval: number;
  gpio: GpiodDialect;
  doors: { id: string; chip: string; line: number; activeLow: boolean; openLevel: 0 | 1 }[];
  alarm?: { chip: string; line: number; activeLow: boolean };
  rule?: { low: number; high: number; hysteresis: number; outOfRange: number; doorOpen: number; doorClosed: number; probeFault?: number };
}

/**
 * The cold room: every `interval`, read the probes and doors, update the GSP alarm rule, switch the alarm output
 * when it changes, and record one reading (probe temperatures, door states, alarm state and reasons). Probe
 * faults are issues with their code (W1_BAD_CRC, W1_POWER_ON_RESET…).
 */
export async function* coldRoomSource(c: InstrumentConfig, deps: LocalSourceDeps, signal: AbortSignal): AsyncGenerator<LocalReading> {
  const o = c.options as unknown as ColdRoomOptions;
  const commands = deps.commands ?? createCommandRunner();
  const doors: DoorContact[] = o.doors.map((d) => ({ id: d.id, line: { chip: d.chip, offset: d.line, activeLow: d.activeLow }, openLevel: d.openLevel }));
  const output = o.alarm === undefined ? undefined : new GpioAlarmOutput(commands, { chip: o.alarm.chip, offset: o.alarm.line, activeLow: o.alarm.activeLow }, { dialect: o.gpio, onError: (e) => deps.onIssue({ code: e.code, error: e }) });
  const r = o.rule;
  const controller = new ColdRoomController({
    room: c.id,
    // without an alarm the rule still reports its state; limits wide open unless configured
    rule: r === undefined ? { lowC: -80, highC: 125, outOfRangeMinutes: 1e9, doorOpenMinutes: 1e9 } : { lowC: r.low, highC: r.high, hysteresisC: r.hysteresis, outOfRangeMinutes: r.outOfRange / 60_000, doorOpenMinutes: r.doorOpen / 60_000, doorClosedMinutes: r.doorClosed / 60_000, ...(r.probeFault === undefined ? {} : { probeFaultMinutes: r.probeFault / 60_000 }) },
    readProbes: () => readAllDs18b20({ root: o.root, ...(o.probes === undefined ? {} : { ids: o.probes }) }),
    readDoors: async () => {
      const out = [];
      for (const d of doors) out.push(await readDoor(commands, d, o.gpio));
      return out;
    },
    ...(output === undefined ? {} : { output }),
    now: deps.now,
  });
  // Stopping the instrument releases the alarm line even while this generator waits at a yield.
  const release = () => void output?.close().catch(() => undefined);
  signal.addEventListener('abort', release, { once: true });
  try {
    while (!signal.aborted) {
      const tick = await controller.tick();
      for (const f of tick.failures) if (!f.ok) deps.onIssue({ code: f.error.code, error: f.error });
      yield { sensor: c.id, time: deps.now(), meas: tick.meas, raw: tick.raw };
      await sleep(o.interval, signal);
    }
  } finally {
    signal.removeEventListener('abort', release);
    await output?.close().catch(() => undefined);
  }
}
