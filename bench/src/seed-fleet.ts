/**
 * The seed case's fleet (issue #11 acceptance): 19,000 devices at one reading per minute each for 10 minutes
 * against one ingest, reading-to-stored-confirmation p50/p99 and the store's size per million readings,
 * projected to 200 million readings.
 *
 *   npm run bench -- seed-fleet [--devices 19000] [--minutes 10] [--per-minute 1] [--connections 50]
 *                               [--store leveldb|postgres] [--broker mosquitto|aedes] [--write]
 *
 * The devices are signers, not full gateways (19,000 gateway processes' worth of outboxes and MQTT pairs do not
 * fit this 2-core machine next to ingest; bench/src/fleet.ts runs the full gateway path at 500 x 4): each has its
 * own P-256 key (node:crypto, in memory), is enrolled at ingest through POST /enrol, and publishes real signed
 * statements (COSE_Sign1 over a chained reading, seq/prev as a gateway makes them, `{statement, reading}` CBOR on
 * `stele/v1/<device>/statements`, QoS 1) over `--connections` shared MQTT connections. One observer connection
 * subscribes to `stele/v1/+/acks` and checks each confirmation as the gateway does (checkConfirmation under the
 * pinned ingest key, the named device, the head digest at upTo equal to the chain the device built).
 * Latency: from the moment the statement is handed to MQTT to the observer holding a verified `stored`
 * confirmation covering it. Store size: the LevelDB store folder (du) or pg_database_size of the ingest database.
 */
import { generateKeyPairSync } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { GENESIS_PREV, encodeReading, equalBytes, readingDigest, sha256, utf8 } from '@stele/core';
import { checkConfirmation, signStatement } from '@stele/core/cose';
import { deviceTopic, encodeStatementMessage, parseDeviceTopic } from '@stele/core/wire';
import { SoftwareSigner } from '@stele/device';
import { createTestDatabase } from '@stele/ingest/testing';

type TestDatabase = Awaited<ReturnType<typeof createTestDatabase>>;
import { procCpuSeconds, writeMarkdownSection } from './harness.ts';
import { machineLine, startStack, type BenchStack } from './gateway-stack.ts';

const RESEND_AFTER_MS = 30_000;
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface SeedFleetOptions {
  devices: number;
  perMinute: number;
  durationMs: number;
  connections: number;
  store: 'leveldb' | 'postgres';
  broker?: 'mosquitto' | 'aedes';
  drainMs?: number;
  say?: (line: string) => void;
}

export interface SeedFleetReport {
  sent: number;
  stored: number;
  atIngest: number;
  storedMs: { p50: number; p99: number; max: number };
  storeBytes: number;
  /** After enrolment, before the first reading. */
  storeBytesBefore: number;
  storeWhat: string;
  ingestReadings: number;
  loadBefore: number[];
  loadAfter: number[];
  loadWallS: number;
  enrolS: number;
  broker: string;
  ingestCpu: number;
  ingestMaxRssMiB: number;
  benchCpu: number;
  bad: Record<string, number>;
  resends: number;
}

interface Device {
  id: string;
  signer: SoftwareSigner;
  seq: number;
  prev: Uint8Array;
  /** digest and publish time per seq (index seq - 1) */
  digests: Uint8Array[];
  sentAt: number[];
  /** Payloads not confirmed stored yet (index seq - 1), for resends. */
  payloads: (Buffer | undefined)[];
  /** Last publish or confirmation: the resend clock. */
  lastActivity: number;
  stored: number;
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function cpuSecondsOf(pid: number): number | undefined {
  try {
    return procCpuSeconds(pid);
  } catch {
    return undefined;
  }
}

function rssMiBOf(pid: number): number {
  const r = spawnSync('cat', [`/proc/${pid}/status`], { encoding: 'utf8' });
  return Number(/^VmRSS:\s+(\d+)/m.exec(r.stdout ?? '')?.[1] ?? 0) / 1024;
}

export async function runSeedFleet(o: SeedFleetOptions): Promise<SeedFleetReport> {
  const say = o.say ?? ((s: string) => process.stderr.write(`${s}\n`));
  const dir = await mkdtemp(join(tmpdir(), 'stele-seed-fleet-'));
  let stack: BenchStack | undefined;
  let db: TestDatabase | undefined;
  const clients: mqtt.MqttClient[] = [];
  try {
    if (o.store === 'postgres') db = await createTestDatabase();
    stack = await startStack(dir, { ...(o.broker === undefined ? {} : { broker: o.broker }), ...(db === undefined ? {} : { storeUrl: db.url }) });
    say(`seed-fleet: broker ${stack.broker}, ingest ${stack.api} on ${o.store}; making and enrolling ${o.devices} device keys`);
    const t0 = performance.now();
    const devices: Device[] = [];
    let next = 0;
    const enrol = async () => {
      for (let i = next++; i < o.devices; i = next++) {
        const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
        const d: Device = { id: `seed-${String(i + 1).padStart(5, '0')}`, signer: new SoftwareSigner(privateKey), seq: 0, prev: GENESIS_PREV, digests: [], sentAt: [], payloads: [], lastActivity: 0, stored: 0 };
        await stack!.enrol(d.signer, d.id);
        devices[i] = d;
        if ((i + 1) % 2000 === 0) say(`seed-fleet: ${i + 1} enrolled`);
      }
    };
    await Promise.all(Array.from({ length: 16 }, enrol));
    const enrolS = (performance.now() - t0) / 1000;
    const byId = new Map(devices.map((d) => [d.id, d]));

    const storedMs: number[] = [];
    const bad: Record<string, number> = {};
    const observer = mqtt.connect(stack.mqttUrl, { protocolVersion: 5, clean: true, reconnectPeriod: 1000 });
    clients.push(observer);
    await new Promise<void>((r, j) => observer.once('connect', () => r()).once('error', j));
    await observer.subscribeAsync(deviceTopic('+', 'acks'), { qos: 1 });
    const ingestKey = stack.ingestKey;
    observer.on('message', (topic, payload) => {
      const t = parseDeviceTopic(topic);
      const d = t === undefined ? undefined : byId.get(t.device);
      if (d === undefined) return;
      const at = Date.now();
      void checkConfirmation(new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength), { publicKey: ingestKey, device: d.id }).then(
        (c) => {
          if (c.type !== 'stored' || c.upTo <= d.stored) return;
          const mine = d.digests[c.upTo - 1];
          if (mine === undefined || !equalBytes(mine, c.head)) {
            bad['CONFIRMATION_HEAD'] = (bad['CONFIRMATION_HEAD'] ?? 0) + 1;
            return;
          }
          for (let s = d.stored; s < c.upTo; s++) {
            storedMs.push(at - d.sentAt[s]!);
            d.payloads[s] = undefined;
          }
          d.stored = c.upTo;
          d.lastActivity = at;
        },
        (err: unknown) => {
          const code = (err as { code?: string }).code ?? 'ERROR';
          bad[code] = (bad[code] ?? 0) + 1;
        },
      );
    });
    for (let i = 0; i < o.connections; i++) {
      const c = mqtt.connect(stack.mqttUrl, { protocolVersion: 5, clean: true, reconnectPeriod: 1000 });
      clients.push(c);
      await new Promise<void>((r, j) => c.once('connect', () => r()).once('error', j));
    }
    say(`seed-fleet: ${o.devices} devices enrolled in ${enrolS.toFixed(0)} s; ${o.connections} connections; publishing`);

    // Store size (LevelDB: the store folder; PostgreSQL: the whole database), before and after the load
    const storeWhat = db === undefined ? 'LevelDB store folder, du -sb DATA/store' : 'PostgreSQL pg_database_size of the ingest database';
    const storeSize = (): number => {
      if (db === undefined) return Number(spawnSync('du', ['-sb', join(dir, 'ingest', 'store')], { encoding: 'utf8' }).stdout.split('\t')[0]);
      return Number(spawnSync('psql', [db.url, '-tAc', 'select pg_database_size(current_database())'], { encoding: 'utf8' }).stdout.trim());
    };
    const storeBytesBefore = storeSize();
    const readingsBefore = ((await (await fetch(`${stack.api}/health`)).json()) as { readings: number }).readings;
    const ingestPid = stack.ingest.proc.pid!;
    const ingestCpu0 = cpuSecondsOf(ingestPid) ?? 0;
    let ingestMaxRss = rssMiBOf(ingestPid);
    const benchCpu0 = process.cpuUsage();
    const loadBefore = loadavg();
    const start = performance.now();
    const total = Math.floor((o.devices * o.perMinute * o.durationMs) / 60_000);
    let k = 0;
    let sent = 0;
    const frameOf = (d: Device) => utf8(`##0100QN=${d.seq};ST=31;CN=2051;CP=&&a21026-Avg=${(d.seq % 50) + 10.5}&&\r\n`);
    const publishOne = async (d: Device) => {
      d.seq++;
      const seq = d.seq;
      const reading = encodeReading({
        v: 1,
        device: d.id,
        sensor: 'cems-1',
        seq,
        prev: d.prev,
        time: Date.now(),
        clock: { synced: true, source: 'ntp' },
        meas: [
          { code: 'a21026', kind: 'Avg', value: `${(seq % 50) + 10.5}`, unit: 'mg/m3', flag: 'N' },
          { code: 'a19001', kind: 'Avg', value: '8.9', unit: '%', flag: 'N' },
        ],
        raw: [sha256(frameOf(d))],
      });
      d.prev = readingDigest(reading);
      d.digests[seq - 1] = d.prev;
      const statement = await signStatement(reading, d.signer);
      const payload = encodeStatementMessage({ statement, reading });
      const buf = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
      d.sentAt[seq - 1] = Date.now();
      d.payloads[seq - 1] = buf;
      d.lastActivity = Date.now();
      clientOf(d).publish(deviceTopic(d.id, 'statements'), buf, { qos: 1 });
      sent++;
    };
    const clientOf = (d: Device) => clients[1 + (Number(d.id.slice(5)) % o.connections)]!;
    // As a gateway does (resendAfter): a device with no stored confirmation for RESEND_AFTER_MS after its last
    // publish or confirmation sends again from its confirmed mark (a broker may drop QoS 1 messages it cannot
    // queue for a slow subscriber; ingest stores each seq once).
    let resends = 0;
    const resender = setInterval(() => {
      const now = Date.now();
      for (const d of devices) {
        if (d.stored >= d.seq || now - d.lastActivity < RESEND_AFTER_MS) continue;
        for (let s = d.stored; s < d.seq; s++) {
          const buf = d.payloads[s];
          if (buf === undefined) continue;
          clientOf(d).publish(deviceTopic(d.id, 'statements'), buf, { qos: 1 });
          resends++;
        }
        d.lastActivity = now;
      }
    }, 5_000);
    const sampler = setInterval(() => (ingestMaxRss = Math.max(ingestMaxRss, rssMiBOf(ingestPid))), 5_000);
    const progress = setInterval(() => {
      const n = devices.reduce((a, d) => a + d.stored, 0);
      say(`seed-fleet: ${((performance.now() - start) / 60_000).toFixed(1)} min; sent ${sent}, stored-confirmed ${n}, resends ${resends}`);
    }, 30_000);
    // Paced: by time t, k = t / duration * total statements are due; device k mod N sends its next reading.
    while (k < total) {
      const due = Math.min(total, Math.floor(((performance.now() - start) / o.durationMs) * total));
      const batch: Promise<void>[] = [];
      for (; k < due; k++) batch.push(publishOne(devices[k % o.devices]!));
      await Promise.all(batch);
      await new Promise((r) => setTimeout(r, 20));
    }
    const loadWallS = (performance.now() - start) / 1000;
    const loadAfter = loadavg();
    const ingestCpu = ((cpuSecondsOf(ingestPid) ?? 0) - ingestCpu0) / loadWallS;
    const cpu = process.cpuUsage(benchCpu0);
    const benchCpu = (cpu.user + cpu.system) / 1e6 / loadWallS;
    say(`seed-fleet: ${sent} statements sent in ${loadWallS.toFixed(0)} s; waiting for the confirmations`);
    const drainBy = Date.now() + (o.drainMs ?? 180_000);
    while (Date.now() < drainBy && devices.some((d) => d.stored < d.seq)) await new Promise((r) => setTimeout(r, 250));
    clearInterval(sampler);
    clearInterval(progress);
    clearInterval(resender);
    let atIngest = 0;
    for (let i = 0; i < devices.length; i += 64) {
      const heads = await Promise.all(devices.slice(i, i + 64).map((d) => stack!.head(d.id)));
      atIngest += heads.reduce((a, b) => a + b, 0);
    }
    const health = (await (await fetch(`${stack.api}/health`)).json()) as { readings: number };
    const storeBytes = storeSize();
    const sorted = storedMs.sort((a, b) => a - b);
    return {
      sent,
      stored: sorted.length,
      atIngest,
      storedMs: { p50: pct(sorted, 50), p99: pct(sorted, 99), max: sorted[sorted.length - 1] ?? NaN },
      storeBytes,
      storeBytesBefore,
      storeWhat,
      ingestReadings: health.readings - readingsBefore,
      loadBefore,
      loadAfter,
      loadWallS,
      enrolS,
      broker: stack.broker,
      ingestCpu,
      ingestMaxRssMiB: ingestMaxRss,
      benchCpu,
      bad,
      resends,
    };
  } finally {
    for (const c of clients) await c.endAsync(true).catch(() => undefined);
    await stack?.stop().catch(() => undefined);
    await db?.drop().catch(() => undefined);
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

export function formatSeedFleetReport(r: SeedFleetReport, o: SeedFleetOptions, command: string, machine: string): string {
  const f = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
  const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
  const perMillion = ((r.storeBytes - r.storeBytesBefore) / Math.max(1, r.ingestReadings)) * 1e6;
  return [
    `- Date: ${new Date().toISOString()}; machine: ${machine}`,
    `- Command: \`${command}\` (broker: ${r.broker}; ingest \`stele ingest run --embedded-chain --batch-ms 1000\` on ${o.store}, one worker)`,
    `- Load: ${f(o.devices)} devices (signers with their own P-256 keys, enrolled in ${f(r.enrolS)} s), ${o.perMinute} reading per minute each ` +
      `(${((o.devices * o.perMinute) / 60).toFixed(0)} readings/s), for ${(r.loadWallS / 60).toFixed(1)} min over ${o.connections} MQTT connections; ` +
      `load average ${load(r.loadBefore)} before, ${load(r.loadAfter)} at the end of the load`,
    `- Readings: ${f(r.sent)} signed statements sent (${f(r.resends)} resends after ${RESEND_AFTER_MS / 1000} s without a confirmation), ${f(r.atIngest)} at ingest (sum of GET /devices/ID/head), ${f(r.stored)} with a verified stored confirmation` +
      `${Object.keys(r.bad).length === 0 ? '' : `; confirmations refused: ${JSON.stringify(r.bad)}`}`,
    `- Reading to stored confirmation: p50 **${f(r.storedMs.p50)} ms**, p99 **${f(r.storedMs.p99)} ms**, max ${f(r.storedMs.max)} ms`,
    `- CPU over the load: ingest ${r.ingestCpu.toFixed(2)} cores (max RSS ${f(r.ingestMaxRssMiB)} MiB), the devices' process ${r.benchCpu.toFixed(2)} cores`,
    `- Store (${r.storeWhat}): ${(r.storeBytesBefore / 2 ** 20).toFixed(1)} MiB after the ${f(o.devices)} enrolments, ${(r.storeBytes / 2 ** 20).toFixed(1)} MiB after ${f(r.ingestReadings)} readings: ` +
      `**${(perMillion / 2 ** 30).toFixed(2)} GiB per million readings**, projected **${((perMillion * 200) / 2 ** 40).toFixed(2)} TiB for 200 million** (linear)`,
  ].join('\n');
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      devices: { type: 'string', default: '19000' },
      minutes: { type: 'string', default: '10' },
      'per-minute': { type: 'string', default: '1' },
      connections: { type: 'string', default: '50' },
      store: { type: 'string', default: 'leveldb' },
      broker: { type: 'string' },
      write: { type: 'boolean', default: false },
    },
  });
  const num = (name: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new Error(`--${name} needs a number >= ${min} (got ${JSON.stringify(v)})`);
    return n;
  };
  if (values.store !== 'leveldb' && values.store !== 'postgres') throw new Error('--store is leveldb or postgres');
  if (values.broker !== undefined && values.broker !== 'mosquitto' && values.broker !== 'aedes') throw new Error('--broker is mosquitto or aedes');
  const o: SeedFleetOptions = {
    devices: Math.floor(num('devices', values.devices, 1)),
    durationMs: num('minutes', values.minutes, 0.05) * 60_000,
    perMinute: num('per-minute', values['per-minute'], 0.01),
    connections: Math.floor(num('connections', values.connections, 1)),
    store: values.store,
    ...(values.broker === undefined ? {} : { broker: values.broker }),
  };
  const command = `npm run bench -- seed-fleet ${argv.filter((a) => a !== '--write').join(' ')}`.trim();
  const r = await runSeedFleet(o);
  const text = formatSeedFleetReport(r, o, command, await machineLine());
  process.stdout.write(`${text}\n`);
  if (values.write) {
    const section = `## Seed-case fleet (${o.store === 'postgres' ? 'PostgreSQL' : 'LevelDB'})`;
    process.stderr.write(`wrote ${await writeMarkdownSection(join(repoRoot, 'docs', 'BENCHMARKS.md'), section, `Issue #11 (bench/src/seed-fleet.ts).\n\n${text}`)}\n`);
  }
  if (r.sent === 0 || r.stored !== r.sent || r.atIngest !== r.sent) process.exitCode = 1;
}
