/**
 * `stele gateway <run|doctor|status|provision>`: the gateway daemon and the installer's tools.
 * Exit status: 0 ok; 1 something is wrong (doctor found a failure, run failed to start, status got no answer);
 * 2 usage error.
 */
import { parseCommand, usageError } from '@stele/command';
import { pino } from 'pino';
import { ConfigError, formatIssue } from './config/errors.ts';
import { loadConfig } from './config/config.ts';
import { formatDoctorReport, runDoctor, type DoctorOptions } from './doctor/doctor.ts';
import { isUnhealthy } from './ops/http.ts';
import { fmtBytes, type GatewayStatus } from './ops/status.ts';
import { startGateway, type GatewayDeps } from './run/gateway.ts';
import { keyFix } from './run/signer.ts';
import { cmdReinstall, cmdRotateKey } from './lifecycle-cli.ts';

export interface GatewayIo {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/** Test seams: stop `run` with a signal instead of SIGTERM/SIGINT; inject gateway and doctor dependencies. */
export interface GatewayCliDeps {
  signal?: AbortSignal;
  gateway?: GatewayDeps;
  doctor?: Partial<DoctorOptions>;
  env?: NodeJS.ProcessEnv;
  /** Called once the agent runs (tests read its ops URL). */
  onStarted?: (info: { opsUrl: string }) => void;
}

export const DEFAULT_CONFIG = '/etc/stele/gateway.yaml';

export const GATEWAY_USAGE = `usage: stele gateway <command> [options]

commands:
  run        run the gateway agent (the systemd service runs this)
  doctor     check config, serial ports, key, clock, broker, disk; each failure with the fix to try
  status     ask the running agent: outbox depth, last ack, instruments, signing rate
  provision  make the gateway's key in the TPM / secure element and write its enrolment request
  rotate-key replace the gateway's key (a rotation statement signed by the old key; agent stopped)
  reinstall  start a new, empty outbox after the head ingest signed (new SD card, same key; agent stopped)

stele gateway <command> --help for its options. The config file defaults to $STELE_CONFIG or ${DEFAULT_CONFIG}.
`;

const RUN_USAGE = `usage: stele gateway run [--config FILE]

Runs the agent until SIGTERM or SIGINT: reads the instruments, signs each reading, stores it in the outbox and
publishes it. Logs are JSON lines on stdout (level: gateway.logLevel, or STELE_LOG_LEVEL). Health, Prometheus
metrics and status on http://127.0.0.1:<health.port>/healthz, /metrics, /status.

  --config FILE   the config file (default $STELE_CONFIG or ${DEFAULT_CONFIG})
  -h, --help      this text
`;

const DOCTOR_USAGE = `usage: stele gateway doctor [--config FILE] [--listen SECONDS] [--json]

Checks the config, each instrument's serial port (present, permissions, frames seen), the key backend (loads and
signs), the clock, the broker (reachable, credentials accepted), disk space and the outbox. Prints each failure
with the fix to try. Exit status 1 when a check failed, 0 when all passed (warnings allowed).

  --config FILE      the config file (default $STELE_CONFIG or ${DEFAULT_CONFIG})
  --listen SECONDS   listen to each instrument this long and count frames (when the agent is not running; when
                     it is, frames seen come from the agent)
  --json             print the report as JSON
  -h, --help         this text
`;

const STATUS_USAGE = `usage: stele gateway status [--config FILE | --url URL] [--json]

Asks the running agent (only one process can open the outbox): outbox depth, last acknowledgement, broker,
per-instrument last reading, signing rate, disk, clock.

  --config FILE   read health.port from this config (default $STELE_CONFIG or ${DEFAULT_CONFIG})
  --url URL       the agent's ops endpoint, e.g. http://127.0.0.1:9102
  --json          print the agent's status JSON as is
  -h, --help      this text
`;

export async function runGateway(argv: string[], io: GatewayIo, deps: GatewayCliDeps = {}): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'run':
      return cmdRun(rest, io, deps);
    case 'doctor':
      return cmdDoctor(rest, io, deps);
    case 'status':
      return cmdStatus(rest, io, deps);
    case 'provision':
      return cmdProvision(rest, io);
    case 'rotate-key':
      return cmdRotateKey(rest, io, (v) => configPath(v as Parsed, deps.env ?? process.env));
    case 'reinstall':
      return cmdReinstall(rest, io, (v) => configPath(v as Parsed, deps.env ?? process.env));
    case undefined:
      io.stderr.write(GATEWAY_USAGE);
      return 2;
    case '--help':
    case '-h':
    case 'help':
      io.stdout.write(GATEWAY_USAGE);
      return 0;
    default:
      io.stderr.write(`stele gateway: unknown command '${sub}'\n\n${GATEWAY_USAGE}`);
      return 2;
  }
}

type Parsed = Record<string, string | boolean | undefined>;

/** The command's name for messages, from its usage text (`usage: stele gateway run …`). */
function commandName(usage: string): string {
  return /^usage: (stele gateway \S+)/.exec(usage)?.[1] ?? 'stele gateway';
}

function parse(argv: string[], options: Record<string, { type: 'string' | 'boolean'; short?: string }>, usage: string, io: GatewayIo): Parsed | number {
  const parsed = parseCommand(argv, { name: commandName(usage), usage, options }, io);
  return typeof parsed === 'number' ? parsed : (parsed.values as Parsed);
}

function configPath(values: Parsed, env: NodeJS.ProcessEnv): string {
  return typeof values.config === 'string' ? values.config : (env.STELE_CONFIG ?? DEFAULT_CONFIG);
}

function printStartError(err: unknown, io: GatewayIo): void {
  if (err instanceof ConfigError) {
    io.stderr.write(`stele gateway: ${err.code}: ${err.issues.length > 0 ? `\n${err.issues.map((i) => `  ${formatIssue(i)}`).join('\n')}` : err.message}\n`);
    return;
  }
  const e = err as { code?: string; message?: string; where?: Record<string, unknown> };
  io.stderr.write(`stele gateway: ${e.code === undefined ? '' : `${e.code}: `}${e.message ?? String(err)}\n`);
  if (typeof e.code === 'string' && e.code.startsWith('KEY_')) io.stderr.write(`  fix: ${keyFix(e.code)}\n`);
}

async function cmdRun(argv: string[], io: GatewayIo, deps: GatewayCliDeps): Promise<number> {
  const values = parse(argv, { config: { type: 'string', short: 'c' } }, RUN_USAGE, io);
  if (typeof values === 'number') return values;
  const env = deps.env ?? process.env;
  let config;
  try {
    config = await loadConfig(configPath(values, env));
  } catch (err) {
    printStartError(err, io);
    return 1;
  }
  const level = env.STELE_LOG_LEVEL ?? config.gateway.logLevel;
  const logger = pino({ level, base: { device: config.gateway.id }, timestamp: pino.stdTimeFunctions.isoTime }, io.stdout as NodeJS.WritableStream & { write: (s: string) => boolean });
  let gw;
  try {
    gw = await startGateway(config, { log: logger, env, ...deps.gateway });
  } catch (err) {
    const e = err as { code?: string; message?: string };
    logger.fatal({ code: e.code, err: e.message, ...(e.code?.startsWith('KEY_') ? { fix: keyFix(e.code) } : {}) }, 'gateway failed to start');
    printStartError(err, io);
    return 1;
  }
  deps.onStarted?.({ opsUrl: gw.opsUrl });
  const reason = await new Promise<string>((resolve) => {
    if (deps.signal !== undefined) {
      if (deps.signal.aborted) return resolve('aborted');
      deps.signal.addEventListener('abort', () => resolve('aborted'), { once: true });
      return;
    }
    const on = (sig: NodeJS.Signals) => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      resolve(sig);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
  await gw.stop(reason);
  return 0;
}

async function cmdDoctor(argv: string[], io: GatewayIo, deps: GatewayCliDeps): Promise<number> {
  const values = parse(argv, { config: { type: 'string', short: 'c' }, json: { type: 'boolean' }, listen: { type: 'string' } }, DOCTOR_USAGE, io);
  if (typeof values === 'number') return values;
  let listenMs = 0;
  if (typeof values.listen === 'string') {
    const s = Number(values.listen);
    if (!Number.isFinite(s) || s <= 0 || s > 3600) {
      return usageError(io, { name: 'stele gateway doctor', usage: DOCTOR_USAGE }, '--listen must be a number of seconds (0 < S <= 3600)');
    }
    listenMs = Math.round(s * 1000);
  }
  const env = deps.env ?? process.env;
  const report = await runDoctor({ configFile: configPath(values, env), listenMs, env, ...deps.doctor });
  io.stdout.write(values.json === true ? `${JSON.stringify(report, null, 2)}\n` : formatDoctorReport(report));
  return report.ok ? 0 : 1;
}

async function cmdStatus(argv: string[], io: GatewayIo, deps: GatewayCliDeps): Promise<number> {
  const values = parse(argv, { config: { type: 'string', short: 'c' }, url: { type: 'string' }, json: { type: 'boolean' } }, STATUS_USAGE, io);
  if (typeof values === 'number') return values;
  let base: string;
  if (typeof values.url === 'string') base = values.url.replace(/\/+$/, '');
  else {
    try {
      const c = await loadConfig(configPath(values, deps.env ?? process.env));
      base = `http://${c.health.host.includes(':') ? `[${c.health.host}]` : c.health.host}:${c.health.port}`;
    } catch (err) {
      printStartError(err, io);
      return 1;
    }
  }
  let s: GatewayStatus;
  try {
    const res = await fetch(`${base}/status`, { signal: AbortSignal.timeout(3000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    s = (await res.json()) as GatewayStatus;
  } catch (err) {
    io.stderr.write(`stele gateway status: the agent does not answer at ${base} (${(err as Error).message}); is it running? \`sudo systemctl status stele-gateway\`\n`);
    return 1;
  }
  io.stdout.write(values.json === true ? `${JSON.stringify(s, null, 2)}\n` : formatStatus(s));
  return 0;
}

const age = (now: number, at: number | undefined) => (at === undefined ? 'never' : `${Math.max(0, Math.round((now - at) / 1000))} s ago`);

export function formatStatus(s: GatewayStatus): string {
  const l: string[] = [];
  l.push(`gateway   ${s.deviceId}  ${s.state}, pid ${s.pid}, up ${Math.round((s.now - s.startedAt) / 1000)} s`);
  if (s.refusal !== undefined) {
    l.push(`REFUSED   ${s.refusal.code}: ${s.refusal.message}`, `fix       ${s.refusal.fix}`);
    return `${l.join('\n')}\n`;
  }
  const failing = isUnhealthy(s);
  l.push(`health    ${failing.length === 0 ? 'ok' : `UNHEALTHY (/healthz 503): ${failing.length} problem(s) stop evidence, listed below`}`);
  l.push(`outbox    depth ${s.outbox.depth} (head seq ${s.outbox.head}, acked up to ${s.outbox.acked})`);
  l.push(`last ack  ${s.lastAck === undefined ? 'none since start' : `up to seq ${s.lastAck.upTo}, ${age(s.now, s.lastAck.at)}`}`);
  l.push(`broker    ${s.broker.connected ? 'connected' : 'NOT connected'} ${s.broker.url} (${s.broker.mode}); sent ${s.broker.sent}, resends ${s.broker.resends}${Object.keys(s.broker.rejected).length > 0 ? `, rejected ${JSON.stringify(s.broker.rejected)}` : ''}`);
  l.push(`signing   ${s.signingRatePerSec.toFixed(2)} readings/s, ${s.takeMsAvg.toFixed(1)} ms per take; taken ${s.taken}, failed ${s.failed}, refused ${s.refused}`);
  if (s.signing !== undefined) {
    const g = s.signing;
    l.push(`key       ${g.signMsAvg.toFixed(1)} ms per signature (${g.keyRatePerSec.toFixed(1)}/s); ${g.unsigned} waiting (max ${g.maxUnsigned}), ${g.signatures} signatures${g.batching ? ', signing device-level batches' : ''}${g.lastError === undefined ? '' : `; last failure ${g.lastError}`}`);
  }
  l.push('instruments');
  for (const i of s.instruments) {
    const rej = Object.entries(i.rejections).map(([c, n]) => `${c} ×${n}`).join(', ');
    l.push(`  ${i.id.padEnd(16)} ${i.state.padEnd(11)} ${i.port}`);
    l.push(`  ${''.padEnd(16)} last reading ${age(s.now, i.lastReadingAt)}, ${i.frames} reading(s)${rej === '' ? '' : `, rejected ${rej}`}${i.refused > 0 ? `, refused ${i.refused}` : ''}`);
    if (i.state !== 'open' && i.lastError !== undefined) l.push(`  ${''.padEnd(16)} ${i.lastError.code}: ${i.lastError.message}`);
  }
  l.push(`disk      ${s.disk.level}, ${fmtBytes(s.disk.freeBytes)} free (warn below ${fmtBytes(s.disk.warnAtFreeBytes)}, stop below ${fmtBytes(s.disk.stopAtFreeBytes)}, policy ${s.disk.policy})`);
  l.push(`clock     ${s.clock.synced ? 'synchronised' : `NOT synchronised (${s.clock.reason})`}${s.clock.jumps > 0 ? `, ${s.clock.jumps} jump(s), last ${s.clock.lastJumpMs} ms` : ''}`);
  const problems = [...new Set([...failing.filter((f) => !f.startsWith('agent ')), ...s.problems])];
  if (problems.length > 0) {
    l.push('problems');
    for (const p of problems) l.push(`  - ${p}`);
  }
  return `${l.join('\n')}\n`;
}

async function cmdProvision(argv: string[], io: GatewayIo): Promise<number> {
  let mod: { runGatewayProvision?: (argv: string[], io: GatewayIo) => Promise<number> };
  try {
    mod = (await import('@stele/device/provision')) as typeof mod;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'ERR_PACKAGE_PATH_NOT_EXPORTED') {
      io.stderr.write('stele gateway provision: not available in this build (@stele/device has no provision CLI)\n');
      return 1;
    }
    throw err;
  }
  if (typeof mod.runGatewayProvision !== 'function') {
    io.stderr.write('stele gateway provision: not available in this build (@stele/device has no provision CLI)\n');
    return 1;
  }
  return mod.runGatewayProvision(argv, io);
}
