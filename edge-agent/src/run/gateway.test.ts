import { decodeReading, toBase64Url } from '@stele/core';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialPortMock } from 'serialport';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSoftwareKey } from '@stele/device';
import { encodeFrame, MockSerialLine } from '@stele/hardware';
import { parseConfig } from '../config/config.ts';
import { Outbox } from '../outbox.ts';
import { startBroker, startFakeIngest, TEST_INGEST, waitFor, type FakeIngest, type TestBroker } from '../test-helpers.ts';
import { startGateway, type RunningGateway } from './gateway.ts';

const frame = (i: number) =>
  encodeFrame({
    header: { QN: `20240101120000${String(i).padStart(3, '0')}`, ST: '31', CN: '2011', PW: '123456', MN: '010000A8900016F000169DC0', Flag: 4 },
    cp: { params: { DataTime: '20240101120000' }, items: { a21026: { Rtd: `${i}.00`, Flag: 'N' }, a19001: { Rtd: '6.8', Flag: 'N' } } },
  });

const config = (dir: string, url: string, extra = '') => `gateway:
  id: gw-run-test
  dataDir: ${dir}/data
key:
  software:
    path: ${dir}/key.pem
broker:
  url: ${url}
  resendAfter: 2s
ingest:
  publicKey: ${toBase64Url(TEST_INGEST.publicKey)}
instruments:
  - id: cems-1
    driver: hj212
    port: /dev/ttySTELE-RUN0
  - id: cems-missing
    driver: hj212
    port: /dev/serial/by-id/usb-STELE_TEST_DOES_NOT_EXIST-if00-port0
    reconnect: 50ms
    reconnectMax: 200ms
disk:
  warnAtFreeBytes: 1GB
  stopAtFreeBytes: 100MB
  checkEvery: 100ms
health:
  port: 0
${extra}`;

describe('gateway run', () => {
  let dir: string;
  let broker: TestBroker;
  let ingest: FakeIngest;
  let gw: RunningGateway | undefined;
  let line: MockSerialLine;
  let free = 50e9;
  const logs: { level: string; msg: string; fields: Record<string, unknown> }[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stele-run-'));
    await createSoftwareKey(join(dir, 'key.pem'));
    broker = await startBroker();
    ingest = await startFakeIngest(broker.url, 'gw-run-test');
  });
  afterEach(async () => {
    await gw?.stop();
    gw = undefined;
    SerialPortMock.binding.reset();
  });
  afterAll(async () => {
    await ingest.stop();
    await broker.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('takes readings from the serial line, publishes them, answers /healthz, /metrics and /status, and drains on stop', async () => {
    line = new MockSerialLine('/dev/ttySTELE-RUN0');
    const c = parseConfig(config(dir, broker.url), join(dir, 'gateway.yaml'));
    gw = await startGateway(c, {
      log: (level, msg, fields) => logs.push({ level, msg, fields }),
      bindingFor: (i) => (i.port === line.path ? line.binding : undefined),
      statfs: async () => ({ bavail: free / 4096, bsize: 4096 }),
      clock: { probe: async () => ({ synced: true, via: 'test' }) },
    });
    await waitFor(() => gw!.status().instruments[0]!.state === 'open', 5000, 'port open');
    for (let i = 1; i <= 20; i++) line.device.write(frame(i));
    await waitFor(() => ingest.committed() >= 20, 10_000, 'ingest committed 20');
    await waitFor(() => gw!.status().outbox.acked >= 20, 5000, 'acked 20');

    // the missing port: a clear error naming the instrument and the path, and the others keep running
    const missing = gw.status().instruments[1]!;
    expect(missing.state).toBe('waiting');
    expect(missing.lastError?.code).toBe('INSTRUMENT_PORT_MISSING');
    expect(missing.lastError?.message).toContain('cems-missing');
    expect(missing.lastError?.message).toContain('/dev/serial/by-id/usb-STELE_TEST_DOES_NOT_EXIST-if00-port0');
    const logged = logs.filter((l) => l.fields.code === 'INSTRUMENT_PORT_MISSING');
    expect(logged.length).toBe(1); // once per cause, not per retry
    expect(logged[0]!.fields).toMatchObject({ instrument: 'cems-missing', path: '/dev/serial/by-id/usb-STELE_TEST_DOES_NOT_EXIST-if00-port0' });

    const health = await fetch(`${gw.opsUrl}/healthz`);
    expect(health.status).toBe(200);
    const metrics = await (await fetch(`${gw.opsUrl}/metrics`)).text();
    expect(metrics).toMatch(/^stele_outbox_depth 0$/m);
    expect(metrics).toMatch(/^stele_readings_taken_total 20$/m);
    expect(metrics).toMatch(/^stele_instrument_up\{instrument="cems-1"\} 1$/m);
    expect(metrics).toMatch(/^stele_instrument_up\{instrument="cems-missing"\} 0$/m);
    expect(metrics).toMatch(/^stele_instrument_last_reading_age_seconds\{instrument="cems-1"\} /m);
    expect(metrics).toMatch(/^stele_disk_free_bytes 50000000000$/m);
    expect(metrics).toMatch(/^stele_clock_synced 1$/m);
    const status = (await (await fetch(`${gw.opsUrl}/status`)).json()) as { outbox: { head: number }; instruments: { id: string; frames: number }[] };
    expect(status.outbox.head).toBe(20);
    expect(status.instruments.find((i) => i.id === 'cems-1')!.frames).toBe(20);

    // more frames, then stop right away: every reading taken is on disk, the chain continues after a restart
    for (let i = 21; i <= 30; i++) line.device.write(frame(i));
    await waitFor(() => gw!.status().taken === 30, 5000, '30 taken');
    await gw.stop('test');
    gw = undefined;
    const outbox = await Outbox.open(join(dir, 'data', 'outbox'));
    try {
      expect(outbox.head().seq).toBe(30);
      const entries = await outbox.pendingFrom(1, 100);
      expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
      // the logger's own DataTime and CN travel beside the gateway time (FORMAT.md §2.3)
      const first = decodeReading(entries[0]!.reading);
      expect([first.itime, first.rtype]).toEqual(['20240101120000', '2011']);
    } finally {
      await outbox.close();
    }
  });

  it('refuses new readings below the stop level (counted, alarmed) and never drops taken ones', async () => {
    line = new MockSerialLine('/dev/ttySTELE-RUN0');
    free = 50e9;
    const c = parseConfig(config(dir, broker.url), join(dir, 'gateway.yaml'));
    gw = await startGateway(c, {
      bindingFor: (i) => (i.port === line.path ? line.binding : undefined),
      statfs: async () => ({ bavail: BigInt(Math.floor(free / 4096)), bsize: 4096n }),
      clock: { probe: async () => ({ synced: false, via: 'test' }) },
    });
    const head0 = gw.status().outbox.head;
    await waitFor(() => gw!.status().instruments[0]!.state === 'open', 5000, 'port open');
    line.device.write(frame(1));
    await waitFor(() => gw!.status().outbox.head === head0 + 1, 5000, 'one taken');

    free = 50e6; // below stopAt (100 MB)
    await waitFor(() => gw!.status().disk.level === 'stop', 5000, 'stop level');
    for (let i = 2; i <= 6; i++) line.device.write(frame(i));
    await waitFor(() => gw!.status().refused === 5, 5000, '5 refused');
    const s = gw.status();
    expect(s.outbox.head).toBe(head0 + 1);
    expect(s.instruments[0]!.refused).toBe(5);
    expect(s.problems.some((p) => p.startsWith('disk full'))).toBe(true);
    expect((await fetch(`${gw.opsUrl}/healthz`)).status).toBe(503);
    expect(await (await fetch(`${gw.opsUrl}/metrics`)).text()).toMatch(/^stele_readings_refused_total\{instrument="cems-1"\} 5$/m);

    free = 500e6; // between stop and warn: taking again, warning stays
    await waitFor(() => gw!.status().disk.level === 'warn', 5000, 'warn level');
    line.device.write(frame(7));
    await waitFor(() => gw!.status().outbox.head === head0 + 2, 5000, 'taken again');
    expect(gw.status().clock).toMatchObject({ synced: false, reason: 'not-synchronised' });
  });
});
