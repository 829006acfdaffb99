/**
 * The gateway process: config -> signer, outbox, publisher, agent, one source per instrument, disk and clock
 * monitors, the local ops endpoint, the MQTT health topic, systemd readiness and watchdog.
 *
 * Stop order (SIGTERM/SIGINT): stop the instruments (no new readings), let the agent finish takes in progress
 * (each is on disk when it completes) and stop publishing, then close the outbox, the signer and the endpoints.
 * Unacknowledged readings stay in the outbox and are sent again at the next start.
 */
import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { GatewayAgent } from '../agent.ts';
import type { GatewayConfig, InstrumentConfig } from '../config/config.ts';
import { OutboxError } from '../errors.ts';
import { toLogFn, type Logger } from '../log.ts';
import { Outbox } from '../outbox.ts';
import { Publisher } from '../publisher.ts';
import { Retention } from '../retention/retention.ts';
import { Hj212Relay } from '../forward/hj212-relay.ts';
import type { Acquired } from '../outbox.ts';
import { ClockMonitor, type ClockProbe } from '../ops/clock.ts';
import { DiskMonitor, type StatfsFn } from '../ops/disk.ts';
import { HealthPublisher } from '../ops/health-topic.ts';
import { startOpsServer, type OpsServer } from '../ops/http.ts';
import { createNotifier, type Notifier } from '../ops/notify.ts';
import { problemsOf, type GatewayStatus } from '../ops/status.ts';
import { headCheck, REINSTALL_FIX } from '../ingest-head.ts';
import { InstrumentRunner, type InstrumentDeps } from './instrument.ts';
import { mqttOptionsFor } from './mqtt-options.ts';
import { openSigner, type ClosableSigner, type OpenSignerOptions } from './signer.ts';

export interface GatewayDeps {
  log?: Logger;
  env?: NodeJS.ProcessEnv;
  /** serialport's mock binding per instrument (tests, demos); undefined: the native binding. */
  bindingFor?: (instrument: InstrumentConfig) => InstrumentDeps['binding'] | undefined;
  statfs?: StatfsFn;
  clock?: { now?: () => number; monotonic?: () => number; probe?: ClockProbe };
  signer?: OpenSignerOptions;
  /** Override the ops port (tests use 0). Default config.health.port. */
  healthPort?: number;
  /** Default: systemd-notify when NOTIFY_SOCKET is set. */
  notifier?: Notifier;
}

export interface RunningGateway {
  readonly deviceId: string;
  /** The ops endpoint, e.g. http://127.0.0.1:9102. */
  readonly opsUrl: string;
  status(): GatewayStatus;
  /** Graceful stop; idempotent. */
  stop(reason?: string): Promise<void>;
}

export async function startGateway(config: GatewayConfig, deps: GatewayDeps = {}): Promise<RunningGateway> {
  const log = toLogFn(deps.log);
  const env = deps.env ?? process.env;
  const deviceId = config.gateway.id;
  const startedAt = Date.now();
  let state: GatewayStatus['state'] = 'starting';
  const cleanups: (() => Promise<void> | void)[] = [];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) await Promise.resolve().then(c).catch((err: unknown) => log('warn', 'cleanup step failed', { err: (err as Error).message }));
    cleanups.length = 0;
  };

  try {
    // Evidence and secrets: everything the agent creates is its user's only (files 0600, folders 0700), LevelDB's
    // files included (LevelDB creates them with the process umask).
    process.umask(0o077);
    await mkdir(config.gateway.dataDir, { recursive: true, mode: 0o700 });
    await chmod(config.gateway.dataDir, 0o700);

    const signer: ClosableSigner = await openSigner(config.key, {
      ...deps.signer,
      env,
      onWarning: (w) => log('warn', w.message, { code: (w as { code?: string }).code, path: config.key.backend === 'software' ? config.key.path : undefined }),
    });
    cleanups.push(() => signer.close?.());
    log('info', 'signing key open', { backend: signer.backend, kid: Buffer.from(signer.keyId).toString('base64url') });

    const outboxDir = join(config.gateway.dataDir, 'outbox');
    let outbox: Outbox;
    try {
      outbox = await Outbox.open(outboxDir);
    } catch (err) {
      if (err instanceof OutboxError && err.code === 'OUTBOX_LOCKED') {
        throw new OutboxError('OUTBOX_LOCKED', `the outbox ${outboxDir} is held by another process: is the agent already running? (\`stele gateway status\` asks it)`, {
          cause: err,
          where: { dir: outboxDir },
        });
      }
      if (err instanceof OutboxError && REFUSALS.has(err.code)) {
        // Refused, not crashed: the ops endpoint says why (unhealthy) until an operator acts; nothing is taken.
        const refusal = { code: err.code, message: `${outboxDir}: ${err.message}`, fix: outboxFix(err.code) };
        log('error', 'the outbox is refused: nothing is taken or published', { ...refusal });
        await cleanup();
        return startRefused(config, deps, refusal, startedAt);
      }
      throw err;
    }
    cleanups.push(() => outbox.close());
    log('info', 'outbox open', { dir: outboxDir, head: outbox.head().seq, acked: outbox.ackedUpTo() });

    // acknowledged readings stay for retention.keepAcked of agent uptime (never wall-clock time), then go
    const retention = new Retention({
      outbox,
      stateFile: join(config.gateway.dataDir, 'retention.json'),
      keepForMs: config.retention.keepAckedMs,
      keepReadings: config.retention.keepReadings,
      ...(deps.log === undefined ? {} : { log: deps.log }),
    });
    await retention.start();
    cleanups.push(() => retention.stop());

    const clock = new ClockMonitor({
      ...deps.clock,
      jumpThresholdMs: config.clock.jumpThresholdMs,
      checkEveryMs: config.clock.checkEveryMs,
      onChange: (s) => log(s.synced ? 'info' : 'warn', s.synced ? 'clock synchronised' : 'clock not synchronised: readings record clock.synced = false', { reason: s.reason, via: s.via, lastJumpMs: s.lastJumpMs }),
    });
    await clock.start();
    cleanups.push(() => clock.stop());

    let health: HealthPublisher | undefined;
    const disk = new DiskMonitor({
      dir: config.gateway.dataDir,
      warnAtFreeBytes: config.disk.warnAtFreeBytes,
      stopAtFreeBytes: config.disk.stopAtFreeBytes,
      policy: config.disk.policy,
      checkEveryMs: config.disk.checkEveryMs,
      ...(deps.statfs === undefined ? {} : { statfs: deps.statfs }),
      onChange: (s, previous) => {
        const fields = { freeBytes: s.freeBytes, warnAtFreeBytes: s.warnAtFreeBytes, stopAtFreeBytes: s.stopAtFreeBytes, policy: s.policy, previous };
        if (s.level === 'stop') log('error', 'disk full: new readings are refused; unsent readings are kept', { ...fields, code: 'DISK_FULL' });
        else if (s.level === 'warn') log('warn', 'disk space low', { ...fields, code: 'DISK_LOW' });
        else if (s.level === 'unknown') log('warn', 'cannot read the free space of the data folder', { error: s.error });
        else log('info', previous === 'unknown' ? 'disk space ok' : 'disk space back to normal', fields);
        health?.publish();
      },
    });
    await disk.start();
    cleanups.push(() => disk.stop());

    const mqttOptions = await mqttOptionsFor(config.broker);
    const clientId = config.broker.clientId ?? `stele-gw-${deviceId}`;
    const ingestUrl = config.ingest?.url;
    const publisher = new Publisher({
      ...(ingestUrl === undefined
        ? {}
        : { checkBeforePublishing: headCheck(outbox, ingestUrl, deviceId, (err) => log('warn', "cannot ask ingest for this device's head; publishing (acks and rejects still guard the chain)", { url: ingestUrl, err: err.message })) }),
      mqttUrl: config.broker.url,
      deviceId,
      outbox,
      mode: config.broker.mode,
      protocolVersion: config.broker.protocolVersion,
      resendAfterMs: config.broker.resendAfterMs,
      clientId,
      mqttOptions,
      ...(config.ingest?.publicKey === undefined ? {} : { ingestKey: config.ingest.publicKey }),
      ...(deps.log === undefined ? {} : { log: deps.log }),
    });
    let lastAck: GatewayStatus['lastAck'];
    publisher.on('acked', (upTo: number) => {
      lastAck = { upTo, at: Date.now() };
    });
    let connectedAt: number | undefined;
    publisher.on('connect', () => (connectedAt = Date.now()));
    publisher.on('offline', () => (connectedAt = undefined));
    const agent = new GatewayAgent({ deviceId, signer, outbox, publisher, ...(deps.log === undefined ? {} : { log: deps.log }) });
    cleanups.push(() => agent.stop());

    const instruments = config.instruments.map(
      (c) => {
        const binding = deps.bindingFor?.(c);
        return new InstrumentRunner(c, { clock: () => clock.state(), disk, log, stateDir: join(config.gateway.dataDir, 'instruments'), ...(binding === undefined ? {} : { binding }) });
      },
    );
    // HJ 212 relays to the authority's platform: they forward whatever happens to Stele's broker
    const relays = config.relays.map((r) => ({
      id: r.id,
      relay: new Hj212Relay({
        listen: r.listen,
        upstream: r.upstream,
        decoder: { mode: r.mode },
        maxConnections: r.maxConnections,
        maxBytesPerSecond: r.maxBytesPerSecond,
        maxTotalBytesPerSecond: r.maxTotalBytesPerSecond,
        clock: () => clock.state(),
        ...(deps.log === undefined ? {} : { log: deps.log }),
      }),
    }));
    for (const r of relays) {
      await r.relay.start();
      cleanups.push(() => r.relay.stop());
    }
    // stopped before the agent (cleanups run in reverse): no new readings while the last takes finish
    cleanups.push(() => Promise.all(instruments.map((i) => i.stop())).then(() => undefined));

    const status = (): GatewayStatus => {
      const a = agent.status();
      const p = a.publisher;
      const base: Omit<GatewayStatus, 'problems'> = {
        deviceId,
        pid: process.pid,
        startedAt,
        now: Date.now(),
        state,
        outbox: { head: a.seq, acked: a.acked, depth: a.pending },
        lastAck,
        taken: a.taken,
        failed: a.failed,
        refused: disk.status().refused,
        signingRatePerSec: a.signingRatePerSec,
        takeMsAvg: a.takeMsAvg,
        signing: {
          unsigned: a.signing.unsigned,
          maxUnsigned: a.signing.maxUnsigned,
          signatures: a.signing.signatures,
          signMsAvg: a.signing.signMsAvg,
          keyRatePerSec: a.signing.keyRatePerSec,
          batching: a.signing.batching,
          ...(a.signing.lastError === undefined ? {} : { lastError: `${a.signing.lastError.code}: ${a.signing.lastError.message}` }),
        },
        broker: {
          url: config.broker.url,
          connected: p?.connected ?? false,
          mode: config.broker.mode,
          sent: p?.sent ?? 0,
          resends: p?.resends ?? 0,
          rejected: p?.rejected ?? {},
          stalled: p?.stalled,
          ...(p?.stalledDetail === undefined ? {} : { stalledDetail: p.stalledDetail }),
          ...(p?.rejectStreak === undefined ? {} : { rejectStreak: p.rejectStreak }),
          ackBeyondHead: p?.problems.PUBLISH_ACK_BEYOND_HEAD ?? 0,
          // progress is an ack, or nothing waiting; the clock starts at the connection
          noAckForMs: p?.connected && a.pending > 0 && connectedAt !== undefined ? Date.now() - Math.max(connectedAt, lastAck?.at ?? 0) : 0,
          ignored: p?.ignored ?? {},
          ingestKeyPinned: config.ingest?.publicKey !== undefined,
        },
        ...(a.lastError === undefined ? {} : { lastFailedTake: { code: a.lastError.code, message: a.lastError.message, at: a.lastError.at } }),
        instruments: instruments.map((i) => i.status()),
        relays: Object.fromEntries(relays.map((r) => [r.id, r.relay.status()])),
        disk: disk.status(),
        clock: clock.status(),
        retention: retention.status(),
        agent: a,
      };
      return { ...base, problems: problemsOf(base) };
    };

    const ops: OpsServer = await startOpsServer({ host: config.health.host, port: deps.healthPort ?? config.health.port, status });
    cleanups.push(() => ops.close());
    log('info', 'ops endpoint listening', { url: ops.url });

    health = new HealthPublisher({
      url: config.broker.url,
      deviceId,
      clientId: `${clientId}-health`,
      mqttOptions,
      protocolVersion: config.broker.protocolVersion,
      status,
      publishEveryMs: config.health.publishEveryMs,
      ...(deps.log === undefined ? {} : { log: deps.log }),
    });
    health.start();
    cleanups.push(() => health?.stop());

    await publisher.start();
    for (const i of instruments) agent.addSource(i.config.id, i.source());
    for (const r of relays) agent.addSource(`relay:${r.id}`, refuseWhenFull(r.relay.readings(), disk, () => log('error', 'disk full: relayed reading refused (the frame was still forwarded)', { relay: r.id, code: 'DISK_FULL_REFUSED' })));
    state = 'running';
    log('info', 'gateway running', { deviceId, instruments: instruments.map((i) => i.config.id), broker: config.broker.url, mode: config.broker.mode });

    const notifier = deps.notifier ?? (await createNotifier(env, (m) => log('warn', m, {})));
    await notifier.ready(`running: ${instruments.length} instrument(s)`);
    let watchdog: NodeJS.Timeout | undefined;
    if (notifier.watchdogIntervalMs !== undefined) {
      // a ping proves the event loop turns; the unit restarts the agent when they stop
      watchdog = setInterval(() => void notifier.watchdog(), notifier.watchdogIntervalMs);
      watchdog.unref();
    }

    let stopping: Promise<void> | undefined;
    return {
      deviceId,
      opsUrl: ops.url,
      status,
      stop(reason = 'stop requested') {
        stopping ??= (async () => {
          state = 'stopping';
          clearInterval(watchdog);
          log('info', 'gateway stopping', { reason });
          await notifier.stopping(reason);
          await cleanup();
          log('info', 'gateway stopped', { head: outbox.head().seq, acked: outbox.ackedUpTo() });
        })();
        return stopping;
      },
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** Outbox refusals the agent reports on its ops endpoint instead of exiting (issue #9). */
const REFUSALS = new Set(['OUTBOX_MISSING', 'OUTBOX_ROLLED_BACK', 'OUTBOX_CORRUPT', 'OUTBOX_GAP']);

export function outboxFix(code: string): string {
  switch (code) {
    case 'OUTBOX_MISSING':
      return `do not let the agent start a new chain: if the files can be restored, restore them; else ${REINSTALL_FIX}`;
    case 'OUTBOX_ROLLED_BACK':
      return `the disk lost writes it had confirmed (check the SD card: \`dmesg\`, \`smartctl\`); ${REINSTALL_FIX}`;
    default:
      return `copy the data folder aside for the evidence (\`sudo cp -a DATA_DIR DATA_DIR.damaged\`), report it with \`stele gateway doctor --json\`, then ${REINSTALL_FIX}`;
  }
}

/** The agent with a refused outbox: only the ops endpoint, unhealthy, saying why and what to do. */
async function startRefused(config: GatewayConfig, deps: GatewayDeps, refusal: NonNullable<GatewayStatus['refusal']>, startedAt: number): Promise<RunningGateway> {
  const status = (): GatewayStatus => {
    const base: Omit<GatewayStatus, 'problems'> = {
      deviceId: config.gateway.id,
      pid: process.pid,
      startedAt,
      now: Date.now(),
      state: 'refused',
      refusal,
      outbox: { head: 0, acked: 0, depth: 0 },
      lastAck: undefined,
      taken: 0,
      failed: 0,
      refused: 0,
      signingRatePerSec: 0,
      takeMsAvg: 0,
      broker: { url: config.broker.url, connected: false, mode: config.broker.mode, sent: 0, resends: 0, rejected: {}, stalled: undefined },
      instruments: config.instruments.map((c) => ({ id: c.id, driver: c.driver, port: c.port, state: 'stopped', lastError: undefined, opens: 0, frames: 0, rejections: {}, refused: 0, lastReadingAt: undefined })),
      relays: {},
      disk: { level: 'unknown', freeBytes: undefined, warnAtFreeBytes: config.disk.warnAtFreeBytes, stopAtFreeBytes: config.disk.stopAtFreeBytes, policy: config.disk.policy, refused: 0, checkedAt: undefined, error: undefined },
      clock: { synced: false, source: 'none', reason: 'unknown', via: 'not checked (outbox refused)', jumps: 0, lastJumpMs: undefined, checkedAt: undefined },
      retention: { uptimeMs: 0, oldestSeq: undefined, retained: 0, pruned: 0, prunableUpTo: 0 } as GatewayStatus['retention'],
      agent: undefined as unknown as GatewayStatus['agent'],
    };
    return { ...base, problems: problemsOf(base) };
  };
  const ops = await startOpsServer({ host: config.health.host, port: deps.healthPort ?? config.health.port, status });
  let stopping: Promise<void> | undefined;
  return {
    deviceId: config.gateway.id,
    opsUrl: ops.url,
    status,
    stop() {
      stopping ??= ops.close();
      return stopping;
    },
  };
}

/** The full-disk policy for a source that is not an InstrumentRunner (relays): refused items are counted. */
async function* refuseWhenFull(source: AsyncIterable<Acquired>, disk: DiskMonitor, onFirstRefusal: () => void): AsyncGenerator<Acquired, void, undefined> {
  let refused = 0;
  for await (const item of source) {
    if (disk.admits()) {
      yield item;
      continue;
    }
    disk.refuse();
    if (refused++ % 100 === 0) onFirstRefusal();
  }
}
