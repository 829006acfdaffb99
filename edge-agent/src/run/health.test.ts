/**
 * Health that tells the truth (issue #9): a refused outbox, a chain that diverges from ingest's head, ingest
 * rejecting every reading, a Modbus probe that never answers and a device ingest does not know make `/healthz`
 * 503 and show in `stele gateway status` and `stele gateway doctor`. Real gateway (startGateway), aedes in
 * process, a fake ingest on MQTT and a small HTTP stand-in for ingest's read-only API.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmod, mkdtemp, readdir, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialPortMock } from 'serialport';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSoftwareKey, type SoftwareSigner } from '@stele/device';
import { encodeFrame, MockSerialLine } from '@stele/hardware';
import { runGateway } from '../cli.ts';
import { parseConfig } from '../config/config.ts';
import { runDoctor } from '../doctor/doctor.ts';
import { isUnhealthy } from '../ops/http.ts';
import { Outbox } from '../outbox.ts';
import { acquired, collect, startBroker, startFakeIngest, waitFor, type FakeIngest, type TestBroker } from '../test-helpers.ts';
import { startGateway, type RunningGateway } from './gateway.ts';

const DEVICE = 'gw-health-test';
const frame = (i: number) =>
  encodeFrame({
    header: { QN: `20240101120000${String(i).padStart(3, '0')}`, ST: '31', CN: '2011', PW: '123456', MN: '010000A8900016F000169DC0', Flag: 4 },
    cp: { params: { DataTime: '20240101120000' }, items: { a21026: { Rtd: `${i}.00`, Flag: 'N' } } },
  });

const config = (dir: string, url: string, extra = '') => `gateway:
  id: ${DEVICE}
  dataDir: ${dir}/data
key:
  software:
    path: ${dir}/key.pem
broker:
  url: ${url}
  resendAfter: 1s
instruments:
  - id: cems-1
    driver: hj212
    port: /dev/ttySTELE-HEALTH0
disk:
  warnAtFreeBytes: 1GB
  stopAtFreeBytes: 100MB
health:
  port: 0
${extra}`;

/** A stand-in for ingest's read-only HTTP API: head and keys of one device, as set by the test. */
async function startIngestApi() {
  const state: { head: { seq: number; digest: string }; keys: { kid: string; from: number; revokedAfter?: number }[] | undefined } = {
    head: { seq: 0, digest: '00'.repeat(32) },
    keys: undefined,
  };
  const server = http.createServer((req, res) => {
    const send = (code: number, body: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.url === `/devices/${DEVICE}/head`) return send(200, { deviceId: DEVICE, ...state.head });
    if (req.url === `/devices/${DEVICE}/keys`) return state.keys === undefined ? send(404, { code: 'INGEST_UNKNOWN_DEVICE' }) : send(200, { deviceId: DEVICE, keys: state.keys.map((k) => ({ backend: 'software', ...k })) });
    return send(404, { code: 'HTTP_NOT_FOUND' });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, state, close: () => new Promise<void>((r) => server.close(() => r())) };
}

describe('gateway health', () => {
  let dir: string;
  let broker: TestBroker;
  let ingest: FakeIngest | undefined;
  let api: Awaited<ReturnType<typeof startIngestApi>>;
  let gw: RunningGateway | undefined;
  let signer: SoftwareSigner;
  const logs: { level: string; msg: string; fields: Record<string, unknown> }[] = [];
  const log = (level: string, msg: string, fields: Record<string, unknown>) => logs.push({ level, msg, fields });

  beforeAll(async () => {
    broker = await startBroker();
    api = await startIngestApi();
  });
  afterAll(async () => {
    await api.close();
    await broker.close();
  });
  let line: MockSerialLine;
  const start = async (extra = '') => {
    line = new MockSerialLine('/dev/ttySTELE-HEALTH0');
    gw = await startGateway(parseConfig(config(dir, broker.url, extra), join(dir, 'gateway.yaml')), {
      log,
      bindingFor: (i) => (i.port === line.path ? line.binding : undefined),
      statfs: async () => ({ bavail: 50e9 / 4096, bsize: 4096 }),
      clock: { probe: async () => ({ synced: true, via: 'test' }) },
    });
    return gw;
  };
  const healthz = async () => {
    const res = await fetch(`${gw!.opsUrl}/healthz`);
    return { status: res.status, body: (await res.json()) as { failing: string[] } };
  };
  afterEach(async () => {
    await gw?.stop();
    gw = undefined;
    await ingest?.stop();
    ingest = undefined;
    SerialPortMock.binding.reset();
    api.state.head = { seq: 0, digest: '00'.repeat(32) };
    api.state.keys = undefined;
    await rm(dir, { recursive: true, force: true });
  });
  const fresh = async () => {
    dir = await mkdtemp(join(tmpdir(), 'stele-health-'));
    signer = await createSoftwareKey(join(dir, 'key.pem'));
  };

  it('an outbox whose CURRENT was deleted: refused, /healthz 503 with OUTBOX_MISSING, status and doctor say so', async () => {
    await fresh();
    const outbox = await Outbox.open(join(dir, 'data', 'outbox'));
    for (let i = 1; i <= 3; i++) await outbox.take(acquired(i), signer, DEVICE);
    await outbox.close();
    await unlink(join(dir, 'data', 'outbox', 'CURRENT'));

    await start();
    expect(gw!.status().state).toBe('refused');
    const h = await healthz();
    expect(h.status).toBe(503);
    expect(h.body.failing.join('\n')).toContain('OUTBOX_MISSING');
    expect(h.body.failing.join('\n')).toContain('stele gateway reinstall');
    expect((await fetch(`${gw!.opsUrl}/metrics`)).status).toBe(200);

    const out = collect();
    expect(await runGateway(['status', '--url', gw!.opsUrl], out.io)).toBe(0);
    expect(out.out()).toContain('REFUSED   OUTBOX_MISSING');

    await writeFile(join(dir, 'gateway.yaml'), config(dir, broker.url));
    const report = await runDoctor({ configFile: join(dir, 'gateway.yaml'), brokerTimeoutMs: 2000, fetchStatus: async () => gw!.status(), clockProbe: async () => ({ synced: true, via: 'test' }) });
    expect(report.ok).toBe(false);
    expect(report.checks.find((c) => c.name === 'outbox')).toMatchObject({ status: 'fail', code: 'OUTBOX_MISSING' });
    // nothing was recreated: still refused with the agent stopped
    await gw!.stop();
    gw = undefined;
    const alone = await runDoctor({ configFile: join(dir, 'gateway.yaml'), brokerTimeoutMs: 2000, fetchStatus: async () => undefined, clockProbe: async () => ({ synced: true, via: 'test' }) });
    expect(alone.checks.find((c) => c.name === 'outbox')).toMatchObject({ status: 'fail', code: 'OUTBOX_MISSING' });
  });

  it('a chain behind ingest\'s head (a lost outbox): nothing is published, PUBLISH_CHAIN_DIVERGED, /healthz 503', async () => {
    await fresh();
    ingest = await startFakeIngest(broker.url, DEVICE);
    api.state.head = { seq: 40, digest: 'ab'.repeat(32) };
    await start(`ingest:\n  url: ${api.url}\n`);
    await waitFor(() => gw!.status().instruments[0]!.state === 'open', 5000, 'port open');
    for (let i = 1; i <= 3; i++) line.device.write(frame(i));
    await waitFor(() => gw!.status().outbox.head >= 3, 5000, 'taken 3');
    await waitFor(() => gw!.status().broker.stalled !== undefined, 5000, 'publishing stopped');
    expect(gw!.status().broker.stalled).toBe('PUBLISH_CHAIN_DIVERGED');
    expect(ingest.received).toEqual([]);
    const h = await healthz();
    expect(h.status).toBe(503);
    expect(h.body.failing.join('\n')).toMatch(/PUBLISH_CHAIN_DIVERGED.*seq 40.*stele gateway reinstall/);
  });

  it('a chain that matches ingest\'s head publishes; ingest rejecting every reading (UNKNOWN_KEY_ERROR) makes it unhealthy', async () => {
    await fresh();
    ingest = await startFakeIngest(broker.url, DEVICE, { ack: false });
    await start(`ingest:\n  url: ${api.url}\n`);
    await waitFor(() => gw!.status().instruments[0]!.state === 'open', 5000, 'port open');
    line.device.write(frame(1));
    await waitFor(() => ingest!.received.includes(1), 5000, 'seq 1 sent');
    expect((await healthz()).status).toBe(200);
    await ingest.reject(1, 'UNKNOWN_KEY_ERROR');
    await waitFor(() => gw!.status().broker.rejectStreak !== undefined, 5000, 'reject seen');
    const h = await healthz();
    expect(h.status).toBe(503);
    expect(h.body.failing.join('\n')).toMatch(/UNKNOWN_KEY_ERROR.*stele ingest enrol/);
    const out = collect();
    await runGateway(['status', '--url', gw!.opsUrl], out.io);
    expect(out.out()).toContain('UNHEALTHY');
    expect(out.out()).toContain('UNKNOWN_KEY_ERROR');
  });

  it('doctor asks ingest whether this device is enrolled with this key', async () => {
    await fresh();
    const file = join(dir, 'gateway.yaml');
    await writeFile(file, config(dir, broker.url, `ingest:\n  url: ${api.url}\n`));
    const enrolment = async () => (await runDoctor({ configFile: file, brokerTimeoutMs: 2000, fetchStatus: async () => undefined, clockProbe: async () => ({ synced: true, via: 'test' }) })).checks.find((c) => c.name === 'enrolment');
    expect(await enrolment()).toMatchObject({ status: 'fail', code: 'DEVICE_NOT_ENROLLED' });
    const kid = Buffer.from(signer.keyId).toString('base64url');
    api.state.keys = [{ kid: 'someone-else', from: 1 }];
    expect(await enrolment()).toMatchObject({ status: 'fail', code: 'KEY_NOT_ENROLLED' });
    api.state.keys = [{ kid, from: 1, revokedAfter: 9 }];
    expect(await enrolment()).toMatchObject({ status: 'fail', code: 'KEY_REVOKED' });
    api.state.keys = [{ kid, from: 1 }];
    expect(await enrolment()).toMatchObject({ status: 'ok' });
  });
});

describe('secrets and evidence on disk', () => {
  it('creates the data folder and outbox 0700 with files 0600, and refuses key and PIN files open to others, naming chmod', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stele-health-modes-'));
    const gwc = (extra: string) => parseConfig(`gateway:\n  id: ${DEVICE}\n  dataDir: ${dir}/data\n${extra}broker:\n  url: mqtt://127.0.0.1:1\nhealth:\n  port: 0\n`, join(dir, 'gateway.yaml'));
    try {
      await createSoftwareKey(join(dir, 'key.pem'));
      const software = `key:\n  software:\n    path: ${dir}/key.pem\n`;
      const running = await startGateway(gwc(software), { statfs: async () => ({ bavail: 50e9 / 4096, bsize: 4096 }), clock: { probe: async () => ({ synced: true, via: 'test' }) } });
      await running.stop();
      expect((await stat(join(dir, 'data'))).mode & 0o777).toBe(0o700);
      expect((await stat(join(dir, 'data', 'outbox'))).mode & 0o777).toBe(0o700);
      const files = await readdir(join(dir, 'data', 'outbox'));
      expect(files.length).toBeGreaterThan(2);
      for (const f of files) expect({ f, mode: (await stat(join(dir, 'data', 'outbox', f))).mode & 0o777 }).toEqual({ f, mode: 0o600 });

      await chmod(join(dir, 'key.pem'), 0o644);
      const err = await startGateway(gwc(software)).catch((e: unknown) => e as { code?: string; message?: string });
      expect(err).toMatchObject({ code: 'KEY_FILE_MODE' });
      expect((err as Error).message).toContain(`chmod o-rwx ${dir}/key.pem`);

      await writeFile(join(dir, 'token.pin'), '1234', { mode: 0o644 });
      await chmod(join(dir, 'token.pin'), 0o644);
      const pkcs11 = `key:\n  pkcs11:\n    module: ${dir}/no-such-module.so\n    token: stele\n    kind: tpm\n    pinFile: ${dir}/token.pin\n`;
      const pinErr = await startGateway(gwc(pkcs11)).catch((e: unknown) => e as { code?: string; message?: string });
      expect(pinErr).toMatchObject({ code: 'KEY_FILE_MODE' });
      expect((pinErr as Error).message).toContain(`chmod o-rwx ${dir}/token.pin`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('doctor and Modbus probes', () => {
  it('fails when one of two probes on a bus never answered, though the instrument delivers readings', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stele-health-probe-'));
    try {
      await createSoftwareKey(join(dir, 'key.pem'));
      const file = join(dir, 'gateway.yaml');
      await writeFile(
        file,
        `gateway:\n  id: ${DEVICE}\n  dataDir: ${dir}/data\nkey:\n  software:\n    path: ${dir}/key.pem\nbroker:\n  url: mqtt://127.0.0.1:1\nhealth:\n  port: 0\ninstruments:\n  - id: th-bus\n    driver: modbus-th\n    port: /dev/ttySTELE-PROBE0\n    options:\n      devices:\n        - { sensor: th-a, slave: 1, profile: xy-md02 }\n        - { sensor: th-b, slave: 2, profile: xy-md02 }\n`,
      );
      const now = Date.now();
      const status = (sensors: Record<string, { readings: number; lastReadingAt: number }>) =>
        ({
          pid: 1,
          now,
          startedAt: now - 1000,
          state: 'running',
          outbox: { head: 5, acked: 5, depth: 0 },
          broker: { url: 'x', connected: true, mode: 'full', sent: 5, resends: 0, rejected: {}, stalled: undefined },
          disk: { level: 'ok' },
          instruments: [{ id: 'th-bus', driver: 'modbus-th', port: '/dev/ttySTELE-PROBE0', state: 'open', lastError: undefined, opens: 1, frames: 5, rejections: {}, refused: 0, lastReadingAt: now - 500, sensors }],
        }) as never;
      const frames = async (sensors: Record<string, { readings: number; lastReadingAt: number }>) =>
        (await runDoctor({ configFile: file, brokerTimeoutMs: 500, fetchStatus: async () => status(sensors), clockProbe: async () => ({ synced: true, via: 'test' }) })).checks.find((c) => c.name === 'frames:th-bus');
      expect(await frames({ 'th-a': { readings: 5, lastReadingAt: now - 500 } })).toMatchObject({ status: 'fail', code: 'INSTRUMENT_PROBE_SILENT' });
      expect((await frames({ 'th-a': { readings: 5, lastReadingAt: now - 500 } }))!.message).toContain('probe th-b (slave 2) never answered');
      expect(await frames({ 'th-a': { readings: 5, lastReadingAt: now - 500 }, 'th-b': { readings: 1, lastReadingAt: now - 500 } })).toMatchObject({ status: 'ok' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('isUnhealthy', () => {
  const base = {
    deviceId: 'gw',
    pid: 1,
    startedAt: 0,
    now: 1_000_000,
    state: 'running' as const,
    outbox: { head: 10, acked: 10, depth: 0 },
    lastAck: undefined,
    taken: 10,
    failed: 0,
    refused: 0,
    signingRatePerSec: 0,
    takeMsAvg: 0,
    broker: { url: 'mqtt://x', connected: true, mode: 'full' as const, sent: 0, resends: 0, rejected: {}, stalled: undefined },
    instruments: [],
    relays: {},
    disk: { level: 'ok' as const, freeBytes: 1e10, warnAtFreeBytes: 1, stopAtFreeBytes: 0, policy: 'refuse-new' as const, refused: 0, checkedAt: 0, error: undefined },
    clock: { synced: true, source: 'ntp', reason: 'ntp' as const, via: 'x', jumps: 0, lastJumpMs: undefined, checkedAt: 0 },
    retention: {} as never,
    problems: [],
    agent: {} as never,
  };

  it('is healthy with nothing wrong', () => {
    expect(isUnhealthy(base)).toEqual([]);
  });

  it('reports failed takes (a sudden full disk) for five minutes after the last one', () => {
    const s = { ...base, failed: 61, lastFailedTake: { code: 'OUTBOX_IO', message: 'cannot store the reading', at: base.now - 1000 } };
    expect(isUnhealthy(s).join()).toMatch(/61 failed.*OUTBOX_IO/);
    expect(isUnhealthy({ ...s, now: s.now + 300_000 })).toEqual([]);
  });

  it('reports a reject streak of any code from three in a row, and a fork at once', () => {
    expect(isUnhealthy({ ...base, broker: { ...base.broker, rejectStreak: { seq: 11, code: 'INGEST_REORDER_FULL', streak: 2 } } })).toEqual([]);
    expect(isUnhealthy({ ...base, broker: { ...base.broker, rejectStreak: { seq: 11, code: 'INGEST_REORDER_FULL', streak: 3 } } }).join()).toContain('INGEST_REORDER_FULL ×3');
    expect(isUnhealthy({ ...base, broker: { ...base.broker, rejectStreak: { seq: 11, code: 'FORK_ERROR', streak: 1 } } }).join()).toContain('stele gateway reinstall');
  });

  it('reports a publisher connected with readings waiting and no ack for two minutes', () => {
    expect(isUnhealthy({ ...base, outbox: { head: 20, acked: 10, depth: 10 }, broker: { ...base.broker, noAckForMs: 119_000 } })).toEqual([]);
    expect(isUnhealthy({ ...base, outbox: { head: 20, acked: 10, depth: 10 }, broker: { ...base.broker, noAckForMs: 121_000 } }).join()).toContain('publishing stalled');
  });
});
