/**
 * `stele gateway doctor`: what an installer checks before leaving a site. Config, each instrument's serial port
 * (present, permissions, frames seen), the key backend (loads and signs), the clock, the broker (reachable,
 * credentials accepted), disk space, and the outbox. Every failure carries the fix to try.
 *
 * When the agent is running (its /status answers), the ports and the outbox belong to it: frames seen and the
 * outbox state come from the agent instead of opening them here.
 */
import { connectLabDb, type LabDbOptions } from '../run/local-sources.ts';
import { constants as fsConstants } from 'node:fs';
import { access, readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { verifyEs256, utf8 } from '@stele/core';
import { SerialPortMock } from 'serialport';
import { listW1Thermometers } from '@stele/hardware';
import { loadConfig, SERIAL_DRIVERS, type GatewayConfig, type InstrumentConfig } from '../config/config.ts';
import { ConfigError, formatIssue } from '../config/errors.ts';
import { Outbox } from '../outbox.ts';
import { ClockMonitor, type ClockProbe } from '../ops/clock.ts';
import { DiskMonitor, type StatfsFn } from '../ops/disk.ts';
import { fmtBytes, type GatewayStatus } from '../ops/status.ts';
import { describePortProblem, expectedSensors, InstrumentRunner, portErrorCode } from '../run/instrument.ts';
import { isUnhealthy } from '../ops/http.ts';
import { outboxFix } from '../run/gateway.ts';
import type { InstrumentStatus } from '../ops/status.ts';
import { mqttOptionsFor } from '../run/mqtt-options.ts';
import { keyFix, openSigner, type OpenSignerOptions } from '../run/signer.ts';
import { checkBroker } from './broker.ts';
import { deviceTopic } from '@stele/core/wire';

export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip';

export interface DoctorCheck {
  /** `config`, `port:<instrument>`, `frames:<instrument>`, `key`, `enrolment`, `clock`, `broker`, `disk`, `outbox`, `agent`, `health`. */
  name: string;
  status: CheckStatus;
  message: string;
  /** What to try, for warn and fail. */
  fix?: string;
  /** An error code, when one applies (CONFIG_INVALID, INSTRUMENT_PORT_MISSING, KEY_PIN_INCORRECT, ...). */
  code?: string;
}

export interface DoctorReport {
  ok: boolean;
  config: string;
  checks: DoctorCheck[];
}

export interface DoctorOptions {
  configFile: string;
  /** Listen to each instrument this long and count frames (skipped while the agent runs). Default 0 (off). */
  listenMs?: number;
  env?: NodeJS.ProcessEnv;
  brokerTimeoutMs?: number;
  /** Test seams. */
  statfs?: StatfsFn;
  clockProbe?: ClockProbe;
  signer?: OpenSignerOptions;
  bindingFor?: (instrument: InstrumentConfig) => typeof SerialPortMock.binding | undefined;
  /** Asks the running agent; default GET http://<health.host>:<health.port>/status. */
  fetchStatus?: (config: GatewayConfig) => Promise<GatewayStatus | undefined>;
  /** HTTP client for ingest's API (test seam). Default global fetch. */
  fetch?: typeof fetch;
}

export async function runDoctor(o: DoctorOptions): Promise<DoctorReport> {
  const checks: DoctorCheck[] = [];
  const add = (c: DoctorCheck) => checks.push(c);
  let config: GatewayConfig;
  try {
    config = await loadConfig(o.configFile);
    add({ name: 'config', status: 'ok', message: `${config.file}: valid (${config.instruments.length} instrument(s))` });
  } catch (err) {
    if (err instanceof ConfigError) {
      add({
        name: 'config',
        status: 'fail',
        code: err.code,
        message: err.issues.length > 0 ? `config has ${err.issues.length} problem(s):\n${err.issues.map((i) => `    ${formatIssue(i)}`).join('\n')}` : err.message,
        fix: err.code === 'CONFIG_UNREADABLE' ? 'pass the right file with --config (default /etc/stele/gateway.yaml), readable by this user' : 'correct the lines named above; docs/gateway-install.md lists every field',
      });
      return { ok: false, config: o.configFile, checks };
    }
    throw err;
  }

  const running = await (o.fetchStatus ?? fetchAgentStatus)(config).catch(() => undefined);
  add(
    running === undefined
      ? { name: 'agent', status: 'warn', message: `the agent does not answer on ${config.health.host}:${config.health.port}`, fix: 'start it: `sudo systemctl start stele-gateway` (logs: `journalctl -u stele-gateway -e`)' }
      : { name: 'agent', status: 'ok', message: `running (pid ${running.pid}, up ${Math.round((running.now - running.startedAt) / 1000)} s, outbox depth ${running.outbox.depth})` },
  );

  for (const ins of config.instruments) {
    if (!(SERIAL_DRIVERS as readonly string[]).includes(ins.driver)) {
      for (const c of await checkLocalSource(ins, (o.env ?? process.env).PATH)) add(c);
      if (running !== undefined) add(framesFromAgent(ins, running, o.listenMs));
      continue;
    }
    const port = await checkPort(ins);
    add(port);
    if (running !== undefined) add(framesFromAgent(ins, running, o.listenMs));
    else if (port.status !== 'fail' && (o.listenMs ?? 0) > 0) add(await listenFrames(ins, o.listenMs!, o.bindingFor?.(ins)));
  }

  const key = await checkKey(config, o);
  const { kid, ...keyCheck } = key;
  add(keyCheck);
  add(await checkEnrolment(config, kid, o));
  add(await checkClock(o.clockProbe));
  add(await checkBrokerOf(config, o));
  add(await checkDisk(config, o.statfs));
  if (running === undefined) add(await checkOutbox(config));
  else if (running.refusal !== undefined) add({ name: 'outbox', status: 'fail', code: running.refusal.code, message: `the running agent refused its outbox: ${running.refusal.message}`, fix: running.refusal.fix });
  else add({ name: 'outbox', status: 'ok', message: `head seq ${running.outbox.head}, acked up to ${running.outbox.acked} (from the running agent)` });
  if (running !== undefined && running.refusal === undefined) {
    // what the agent's /healthz says stops evidence: failed takes, rejects, a stalled publisher
    const failing = isUnhealthy(running).filter((f) => !f.startsWith('disk full'));
    add(
      failing.length === 0
        ? { name: 'health', status: 'ok', message: 'the running agent reports nothing that stops evidence (/healthz 200)' }
        : { name: 'health', status: 'fail', code: 'AGENT_UNHEALTHY', message: `the running agent is unhealthy (/healthz 503):\n${failing.map((f) => `    - ${f}`).join('\n')}`, fix: 'act on each line above; `stele gateway status` shows them live' },
    );
  }

  return { ok: checks.every((c) => c.status !== 'fail'), config: config.file, checks };
}

async function fetchAgentStatus(config: GatewayConfig): Promise<GatewayStatus | undefined> {
  const host = config.health.host.includes(':') ? `[${config.health.host}]` : config.health.host;
  const res = await fetch(`http://${host}:${config.health.port}/status`, { signal: AbortSignal.timeout(1500) });
  if (!res.ok) return undefined;
  return (await res.json()) as GatewayStatus;
}

/** Present, a character device, readable and writable by this user (with the dialout hint). */
/**
 * The source of an instrument that is not a serial line: an export folder must exist and be readable; the cold
 * room's 1-Wire folder must list the configured probes (or at least one), and libgpiod's tools must be installed
 * when doors or an alarm output are configured.
 */
export async function checkLocalSource(ins: InstrumentConfig, pathEnv: string | undefined = process.env.PATH): Promise<DoctorCheck[]> {
  const name = `source:${ins.id}`;
  const o = ins.options as { dir?: string; root?: string; probes?: string[]; doors?: unknown[]; alarm?: unknown };
  if (ins.driver === 'parr-csv' || ins.driver === 'custody-folder') {
    const dir = o.dir!;
    try {
      if (!(await stat(dir)).isDirectory()) return [{ name, status: 'fail', code: 'INSTRUMENT_SOURCE_MISSING', message: `instrument ${ins.id}: ${dir} is not a folder`, fix: 'point options.dir at the export folder (mount the share first)' }];
      await access(dir, fsConstants.R_OK | fsConstants.X_OK);
    } catch (err) {
      const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
      return [
        {
          name,
          status: 'fail',
          code: missing ? 'INSTRUMENT_SOURCE_MISSING' : 'INSTRUMENT_SOURCE_DENIED',
          message: `instrument ${ins.id}: ${missing ? `folder ${dir} does not exist` : `no permission to read ${dir}`}`,
          fix: missing ? 'mount the instrument PC share (see docs/installer.md) or fix options.dir' : 'give the service user read access to the folder (or mount the share with its uid)',
        },
      ];
    }
    const files = (await readdir(dir)).length;
    return [{ name, status: 'ok', message: `instrument ${ins.id}: folder ${dir} readable (${files} entries)` }];
  }
  if (ins.driver === 'lab-db') {
    const db = ins.options as unknown as LabDbOptions;
    let sql: Awaited<ReturnType<typeof connectLabDb>> | undefined;
    try {
      sql = await connectLabDb(db);
      const cols = await sql`select column_name from information_schema.columns where (table_schema || '.' || table_name = ${db.table} or (table_name = ${db.table} and table_schema = any (current_schemas(false))))`;
      const have = new Set(cols.map((r) => String(r['column_name'])));
      if (have.size === 0) return [{ name, status: 'fail', code: 'INSTRUMENT_SOURCE_MISSING', message: `instrument ${ins.id}: no table ${db.table} visible to the database user`, fix: 'check options.table and grant SELECT on it to the gateway\'s database user' }];
      const missing = [db.key, db.cursor, ...(db.final === undefined ? [] : [db.final]), ...db.columns.map((c) => c.column)].filter((c) => !have.has(c));
      if (missing.length > 0) return [{ name, status: 'fail', code: 'INSTRUMENT_SOURCE_MISSING', message: `instrument ${ins.id}: ${db.table} has no column ${missing.join(', ')}`, fix: 'fix the column names in options (key, cursor, final, columns)' }];
      return [{ name, status: 'ok', message: `instrument ${ins.id}: ${db.table} readable (${have.size} columns)` }];
    } catch (err) {
      return [{ name, status: 'fail', code: 'INSTRUMENT_SOURCE_DENIED', message: `instrument ${ins.id}: cannot read the lab database: ${(err as Error).message}`, fix: 'check options.url, the password file and that the database accepts the gateway (pg_hba.conf)' }];
    } finally {
      await sql?.end({ timeout: 1 }).catch(() => undefined);
    }
  }
  const out: DoctorCheck[] = [];
  const root = o.root ?? '/sys/bus/w1/devices';
  const present = await listW1Thermometers(root).catch(() => [] as string[]);
  const wanted = o.probes ?? [];
  const absent = wanted.filter((p) => !present.includes(p));
  if (present.length === 0) {
    out.push({ name, status: 'fail', code: 'INSTRUMENT_SOURCE_MISSING', message: `instrument ${ins.id}: no DS18B20 probe under ${root}`, fix: 'enable 1-Wire (dtoverlay=w1-gpio in /boot/firmware/config.txt, reboot) and check the probe wiring and its 4.7 kΩ pull-up' });
  } else if (absent.length > 0) {
    out.push({ name, status: 'fail', code: 'INSTRUMENT_SOURCE_MISSING', message: `instrument ${ins.id}: probe(s) ${absent.join(', ')} not found under ${root}`, fix: `present: ${present.join(', ')}; fix options.probes or the wiring` });
  } else {
    out.push({ name, status: 'ok', message: `instrument ${ins.id}: ${wanted.length > 0 ? wanted.length : present.length} probe(s) present under ${root}` });
  }
  if ((o.doors?.length ?? 0) > 0 || o.alarm !== undefined) {
    const dirs = (pathEnv ?? '').split(':').filter((d) => d !== '');
    const found = await Promise.all(['gpioget', 'gpioset'].map(async (t) => (await Promise.all(dirs.map((d) => access(join(d, t), fsConstants.X_OK).then(() => true, () => false)))).some(Boolean)));
    if (found.every(Boolean)) out.push({ name: `gpio:${ins.id}`, status: 'ok', message: `instrument ${ins.id}: gpioget and gpioset found` });
    else out.push({ name: `gpio:${ins.id}`, status: 'fail', code: 'GPIO_COMMAND_MISSING', message: `instrument ${ins.id}: libgpiod tools (gpioget, gpioset) are not installed`, fix: 'sudo apt-get install gpiod' });
  }
  return out;
}

export async function checkPort(ins: InstrumentConfig): Promise<DoctorCheck> {
  const name = `port:${ins.id}`;
  let info;
  try {
    info = await stat(ins.port);
  } catch (err) {
    const code = portErrorCode(err);
    const p = describePortProblem(code, ins.id, ins.port);
    const present = await listSerialPorts();
    return {
      name,
      status: 'fail',
      code,
      message: p.message,
      fix: code === 'INSTRUMENT_PORT_MISSING' ? `${p.fix}${present.length > 0 ? `; present now: ${present.join(', ')}` : '; no /dev/serial/by-id entries: is the adapter plugged in?'}` : p.fix,
    };
  }
  if (!info.isCharacterDevice()) {
    return { name, status: 'fail', code: 'INSTRUMENT_PORT_FAILED', message: `instrument ${ins.id}: ${ins.port} is not a serial device`, fix: 'point instruments[].port at the tty device (/dev/serial/by-id/...)' };
  }
  try {
    await access(ins.port, fsConstants.R_OK | fsConstants.W_OK);
  } catch {
    const group = await groupName(info.gid);
    const p = describePortProblem('INSTRUMENT_PORT_DENIED', ins.id, ins.port);
    return {
      name,
      status: 'fail',
      code: 'INSTRUMENT_PORT_DENIED',
      message: `${p.message} (owned by group ${group ?? info.gid}, mode ${(info.mode & 0o777).toString(8)})`,
      fix: portDeniedFix(group ?? String(info.gid), info.mode),
    };
  }
  return { name, status: 'ok', message: `instrument ${ins.id}: ${ins.port} present, readable and writable` };
}

/**
 * The fix for a serial port the user cannot open. Serial ports belong to dialout (root:dialout 0660, as udev makes
 * them on Debian, Raspberry Pi OS and Ubuntu): only then is joining the port's group the fix. A port owned by
 * another group (root, tty) has a wrong udev rule, and joining that group would hand out far more than a serial
 * port: never advise it.
 */
export function portDeniedFix(group: string, mode: number): string {
  if (group === 'dialout' && (mode & 0o060) === 0o060) {
    return "add this user to group dialout: `sudo usermod -aG dialout $USER` (log in again; the service's user is in it through the unit's SupplementaryGroups)";
  }
  return `the port should be root:dialout 0660 (it is group ${group}, mode ${(mode & 0o777).toString(8)}): fix it with a udev rule, e.g. SUBSYSTEM=="tty", ATTRS{idVendor}=="0403", GROUP="dialout", MODE="0660" in /etc/udev/rules.d/99-stele-serial.rules, then \`sudo udevadm trigger\` (docs/gateway-install.md, "Serial ports"); never add a user to group ${group}`;
}

async function listSerialPorts(): Promise<string[]> {
  try {
    return (await readdir('/dev/serial/by-id')).map((n) => join('/dev/serial/by-id', n));
  } catch {
    return [];
  }
}

async function groupName(gid: number): Promise<string | undefined> {
  try {
    const text = await readFile('/etc/group', 'utf8');
    for (const line of text.split('\n')) {
      const [name, , id] = line.split(':');
      if (Number(id) === gid) return name;
    }
  } catch {
    /* no /etc/group */
  }
  return undefined;
}

function framesFromAgent(ins: InstrumentConfig, s: GatewayStatus, listenMs: number | undefined): DoctorCheck {
  const name = `frames:${ins.id}`;
  const i = s.instruments.find((x) => x.id === ins.id);
  if (i === undefined) return { name, status: 'warn', message: `the running agent has no instrument ${ins.id} (config changed since it started?)`, fix: 'restart the agent: `sudo systemctl restart stele-gateway`' };
  const rejected = Object.entries(i.rejections).map(([c, n]) => `${c} ×${n}`).join(', ');
  if (i.state !== 'open') return { name, status: 'fail', ...(i.lastError === undefined ? {} : { code: i.lastError.code }), message: `instrument ${ins.id}: ${i.state}${i.lastError ? `: ${i.lastError.message}` : ''}`, fix: 'see the port check above and `journalctl -u stele-gateway -e`' };
  if (i.lastReadingAt === undefined) {
    return {
      name,
      status: 'fail',
      message: `instrument ${ins.id}: port open, no reading yet${rejected === '' ? '' : ` (rejected: ${rejected})`}`,
      fix: 'check baud, parity and stop bits against the instrument, and the wiring (TX/RX crossed for RS-232, A/B for RS-485)',
    };
  }
  const silent = silentSensors(ins, i);
  if (silent !== undefined) return { name, status: 'fail', code: 'INSTRUMENT_PROBE_SILENT', message: `instrument ${ins.id}: ${silent} (the others did)`, fix: PROBE_FIX };
  const ageS = Math.round((s.now - i.lastReadingAt) / 1000);
  const limitS = listenMs !== undefined && listenMs > 0 ? listenMs / 1000 : 600;
  return {
    name,
    status: ageS <= limitS ? 'ok' : 'warn',
    message: `instrument ${ins.id}: ${i.frames} reading(s), last ${ageS} s ago${rejected === '' ? '' : `; rejected: ${rejected}`}`,
    ...(ageS <= limitS ? {} : { fix: 'the instrument went quiet: check it is sending and the cable' }),
  };
}

/** Opens the port with the instrument's driver for `ms` and counts what arrives (the agent must not be running). */
async function listenFrames(ins: InstrumentConfig, ms: number, binding: typeof SerialPortMock.binding | undefined): Promise<DoctorCheck> {
  const name = `frames:${ins.id}`;
  const runner = new InstrumentRunner(
    { ...ins, reconnectMs: ms + 1000, reconnectMaxMs: ms + 1000 },
    { clock: () => ({ synced: false, source: 'none' }), log: () => undefined, ...(binding === undefined ? {} : { binding }) },
  );
  const source = runner.source();
  let readings = 0;
  const pump = (async () => {
    for await (const _ of source) readings++;
  })();
  await new Promise((r) => setTimeout(r, ms));
  await runner.stop();
  await source.return(undefined).catch(() => undefined);
  await Promise.race([pump.catch(() => undefined), new Promise((r) => setTimeout(r, 1000))]);
  const s = runner.status();
  const rejected = Object.entries(s.rejections).map(([c, n]) => `${c} ×${n}`).join(', ');
  if (s.opens === 0 && s.lastError !== undefined) {
    return { name, status: 'fail', code: s.lastError.code, message: s.lastError.message, fix: describePortProblem(s.lastError.code as never, ins.id, ins.port).fix };
  }
  const silent = silentSensors(ins, s);
  if (readings > 0 && silent !== undefined) return { name, status: 'fail', code: 'INSTRUMENT_PROBE_SILENT', message: `instrument ${ins.id}: ${silent} in ${ms / 1000} s (the others did)`, fix: PROBE_FIX };
  if (readings > 0) return { name, status: 'ok', message: `instrument ${ins.id}: ${readings} reading(s) in ${ms / 1000} s${rejected === '' ? '' : `; rejected: ${rejected}`}` };
  return {
    name,
    status: 'fail',
    code: 'INSTRUMENT_NO_FRAMES',
    message: `instrument ${ins.id}: no reading in ${ms / 1000} s${rejected === '' ? '' : ` (rejected: ${rejected})`}`,
    fix:
      rejected === ''
        ? 'nothing arrived: check the instrument sends (and how often), the wiring (TX/RX crossed for RS-232, A/B for RS-485), and listen longer with --listen'
        : 'bytes arrive but do not decode: check baud, parity and stop bits, and the driver options (hj212: crc modbus-lsb-first, mode lenient)',
  };
}

const PROBE_FIX = "check that probe's slave address and its wiring on the RS-485 bus (A/B, termination), and listen longer with --listen when it polls slowly";

/** Which configured probes of an instrument never delivered a reading (undefined: all did, or none expected). */
function silentSensors(ins: InstrumentConfig, s: Pick<InstrumentStatus, 'sensors'>): string | undefined {
  const silent = expectedSensors(ins).filter((e) => (s.sensors?.[e.sensor]?.readings ?? 0) === 0);
  if (silent.length === 0) return undefined;
  return `${silent.map((e) => e.what).join(', ')} never answered`;
}

async function checkKey(config: GatewayConfig, o: DoctorOptions): Promise<DoctorCheck & { kid?: string }> {
  const what = config.key.backend === 'software' ? `software key ${config.key.path}` : `${config.key.kind} key on token ${JSON.stringify(config.key.token)} (${config.key.module})`;
  let warning: string | undefined;
  try {
    const signer = await openSigner(config.key, { ...o.signer, ...(o.env === undefined ? {} : { env: o.env }), onWarning: (w) => (warning = w.message) });
    try {
      const message = utf8('stele gateway doctor');
      const sig = await signer.sign(message);
      if (!(await verifyEs256(signer.publicKey, message, sig))) {
        return { name: 'key', status: 'fail', code: 'KEY_SIGNATURE_INVALID', message: `${what}: the test signature does not verify`, fix: 'the token is misbehaving: re-provision the key' };
      }
      const kid = Buffer.from(signer.keyId).toString('base64url');
      if (warning !== undefined) return { kid, name: 'key', status: 'warn', code: 'KEY_FILE_MODE', message: `${what}: signs (kid ${kid}), but ${warning}`, fix: `chmod 600 the key file` };
      return { kid, name: 'key', status: config.key.backend === 'software' ? 'warn' : 'ok', message: `${what}: loads and signs (kid ${kid})`, ...(config.key.backend === 'software' ? { fix: 'a software key is for bench setups: verifiers flag it; provision a TPM or secure-element key for the field' } : {}) };
    } finally {
      await signer.close?.();
    }
  } catch (err) {
    const code = (err as { code?: string }).code;
    return { name: 'key', status: 'fail', ...(code === undefined ? {} : { code }), message: `${what}: ${(err as Error).message}`, fix: keyFix(code) };
  }
}

/**
 * Asks ingest (config `ingest.url`, `GET /devices/<id>/keys`) whether this device is enrolled with this key and the
 * key may sign now: an unenrolled gateway has every reading rejected (UNKNOWN_KEY_ERROR).
 */
async function checkEnrolment(config: GatewayConfig, kid: string | undefined, o: DoctorOptions): Promise<DoctorCheck> {
  const name = 'enrolment';
  const id = config.gateway.id;
  if (config.ingest === undefined) {
    return { name, status: 'warn', code: 'INGEST_URL_UNSET', message: 'cannot ask ingest whether this device is enrolled: no ingest.url in the config', fix: "set ingest.url to ingest's HTTP API (docs/gateway-install.md)" };
  }
  if (kid === undefined) return { name, status: 'skip', message: 'the key did not load (see the key check)' };
  const url = `${config.ingest.url}/devices/${encodeURIComponent(id)}/keys`;
  let res: Response;
  let body: { keys?: { kid?: unknown; until?: unknown; revokedAfter?: unknown }[] };
  try {
    res = await (o.fetch ?? fetch)(url, { signal: AbortSignal.timeout(o.brokerTimeoutMs ?? 5000) });
    const text = await res.text();
    if (text.length > 1_000_000) throw new Error('answer too large');
    body = res.status === 404 ? {} : (JSON.parse(text) as typeof body);
  } catch (err) {
    return { name, status: 'warn', code: 'INGEST_UNREACHABLE', message: `cannot ask ingest at ${config.ingest.url}: ${(err as Error).message}`, fix: 'check ingest.url and that ingest runs (`curl URL/health`)' };
  }
  const enrolFix = `enrol this gateway at ingest: \`stele ingest enrol ${id}.enrol.cose\` (the file \`stele gateway provision\` wrote; docs/installer.md)`;
  if (res.status === 404) return { name, status: 'fail', code: 'DEVICE_NOT_ENROLLED', message: `ingest does not know device ${id}: every reading would be rejected (UNKNOWN_KEY_ERROR)`, fix: enrolFix };
  if (!res.ok || !Array.isArray(body.keys)) return { name, status: 'warn', code: 'INGEST_UNREACHABLE', message: `ingest answered HTTP ${res.status} for ${url}`, fix: 'check ingest.url' };
  const span = body.keys.find((k) => k.kid === kid);
  if (span === undefined) {
    return { name, status: 'fail', code: 'KEY_NOT_ENROLLED', message: `device ${id} is enrolled at ingest with another key (${body.keys.map((k) => String(k.kid)).join(', ')}), not with this one (kid ${kid}): every reading would be rejected (UNKNOWN_KEY_ERROR)`, fix: `${enrolFix}; or point key: at the key that was enrolled` };
  }
  if (span.revokedAfter !== undefined) return { name, status: 'fail', code: 'KEY_REVOKED', message: `this key (kid ${kid}) was revoked at ingest after seq ${String(span.revokedAfter)}`, fix: 'a revoked key never signs again: provision a new key and enrol it (docs/keys.md)' };
  if (span.until !== undefined) return { name, status: 'fail', code: 'KEY_ROTATED_OUT', message: `this key (kid ${kid}) was rotated out at seq ${String(span.until)}`, fix: 'point key: at the current key of this device (docs/keys.md, rotation)' };
  return { name, status: 'ok', message: `ingest has device ${id} enrolled with this key (kid ${kid})` };
}

async function checkClock(probe: ClockProbe | undefined): Promise<DoctorCheck> {
  const m = new ClockMonitor(probe === undefined ? {} : { probe });
  const s = await m.check();
  if (s.synced) return { name: 'clock', status: 'ok', message: `synchronised (${s.via}), ${new Date().toISOString()}` };
  if (s.reason === 'no-rtc') return { name: 'clock', status: 'fail', code: 'CLOCK_NO_RTC', message: `the date is ${new Date().toISOString()}: no RTC and no time sync yet`, fix: 'give the gateway network time (NTP, `timedatectl set-ntp true`) or fit an RTC; readings record the clock as unsynced meanwhile' };
  if (s.reason === 'unknown') return { name: 'clock', status: 'warn', message: 'cannot tell whether the clock is synchronised (no timedatectl, no systemd-timesyncd)', fix: 'use systemd-timesyncd or chrony with timedatectl; readings record the clock as unsynced meanwhile' };
  return { name: 'clock', status: 'fail', code: 'CLOCK_UNSYNCED', message: `the clock is not synchronised (${s.via})`, fix: 'enable time sync: `sudo timedatectl set-ntp true`; check NTP (UDP 123) is allowed out; `timedatectl timesync-status`' };
}

async function checkBrokerOf(config: GatewayConfig, o: DoctorOptions): Promise<DoctorCheck> {
  let mqttOptions;
  try {
    mqttOptions = await mqttOptionsFor(config.broker);
  } catch (err) {
    return { name: 'broker', status: 'fail', code: (err as { code?: string }).code ?? 'BROKER_SECRET_UNREADABLE', message: (err as Error).message, fix: 'create the file named in the config, readable by the stele user (mode 0600)' };
  }
  const clientId = `${config.broker.clientId ?? `stele-gw-${config.gateway.id}`}-doctor`;
  const r = await checkBroker({
    url: config.broker.url,
    mqttOptions,
    clientId,
    protocolVersion: config.broker.protocolVersion,
    subscribeTopic: deviceTopic(config.gateway.id, 'acks'),
    timeoutMs: o.brokerTimeoutMs ?? 5000,
  });
  if (r.cause === 'ok') return { name: 'broker', status: 'ok', message: r.message };
  return { name: 'broker', status: 'fail', code: `BROKER_${r.cause.toUpperCase().replace(/-/g, '_')}`, message: r.message, ...(r.fix === undefined ? {} : { fix: r.fix }) };
}

async function checkDisk(config: GatewayConfig, statfs: StatfsFn | undefined): Promise<DoctorCheck> {
  // the data folder may not exist before the first run: measure the nearest folder that does
  let dir = config.gateway.dataDir;
  for (let i = 0; i < 64; i++) {
    try {
      await stat(dir);
      break;
    } catch {
      dir = dirname(dir);
    }
  }
  const m = new DiskMonitor({ dir, warnAtFreeBytes: config.disk.warnAtFreeBytes, stopAtFreeBytes: config.disk.stopAtFreeBytes, ...(statfs === undefined ? {} : { statfs }) });
  const s = await m.check();
  try {
    await access(dir, fsConstants.W_OK);
  } catch {
    return { name: 'disk', status: 'fail', code: 'DATA_DIR_NOT_WRITABLE', message: `${dir} is not writable by this user`, fix: `\`sudo chown -R stele: ${config.gateway.dataDir}\` (the service runs as user stele)` };
  }
  const free = `${fmtBytes(s.freeBytes)} free on ${dir}`;
  if (s.level === 'stop') return { name: 'disk', status: 'fail', code: 'DISK_FULL', message: `${free}, below stopAtFreeBytes ${fmtBytes(s.stopAtFreeBytes)}: new readings are refused`, fix: 'free space (journal: `sudo journalctl --vacuum-size=100M`; apt: `sudo apt clean`), or move dataDir to a larger disk; never delete the outbox' };
  if (s.level === 'warn') return { name: 'disk', status: 'warn', code: 'DISK_LOW', message: `${free}, below warnAtFreeBytes ${fmtBytes(s.warnAtFreeBytes)}`, fix: 'free space before it reaches the stop level; check the broker link (an outbox that does not drain grows)' };
  if (s.level === 'unknown') return { name: 'disk', status: 'warn', message: `cannot read free space of ${dir}: ${s.error}`, fix: 'check the data folder path' };
  return { name: 'disk', status: 'ok', message: free };
}

async function checkOutbox(config: GatewayConfig): Promise<DoctorCheck> {
  const dir = join(config.gateway.dataDir, 'outbox');
  try {
    await stat(dir);
  } catch {
    return { name: 'outbox', status: 'ok', message: `${dir} does not exist yet (created at the first run)` };
  }
  try {
    const outbox = await Outbox.open(dir, { create: false });
    try {
      return { name: 'outbox', status: 'ok', message: `head seq ${outbox.head().seq}, acked up to ${outbox.ackedUpTo()}, ${outbox.pendingCount()} waiting` };
    } finally {
      await outbox.close();
    }
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'OUTBOX_LOCKED') return { name: 'outbox', status: 'warn', code, message: `${dir} is held by another process, but no agent answers on the ops port`, fix: 'is an agent running with another health.port? `sudo systemctl status stele-gateway`' };
    return {
      name: 'outbox',
      status: 'fail',
      ...(code === undefined ? {} : { code }),
      message: `${dir}: ${(err as Error).message}`,
      fix: code !== undefined && ['OUTBOX_MISSING', 'OUTBOX_ROLLED_BACK', 'OUTBOX_CORRUPT', 'OUTBOX_GAP'].includes(code) ? outboxFix(code) : 'check the folder permissions (`sudo chown -R stele: DATA_DIR`)',
    };
  }
}

const MARK: Record<CheckStatus, string> = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL', skip: 'skip' };

export function formatDoctorReport(r: DoctorReport): string {
  const lines = r.checks.map((c) => `[${MARK[c.status]}] ${c.name.padEnd(18)} ${c.message}${c.fix !== undefined && c.status !== 'ok' ? `\n       ${''.padEnd(18)} fix: ${c.fix}` : ''}`);
  const fails = r.checks.filter((c) => c.status === 'fail').length;
  const warns = r.checks.filter((c) => c.status === 'warn').length;
  lines.push('', fails === 0 ? `all checks passed${warns > 0 ? ` (${warns} warning(s))` : ''}` : `${fails} check(s) failed, ${warns} warning(s)`);
  return `${lines.join('\n')}\n`;
}
