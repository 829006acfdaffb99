import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialPortMock } from 'serialport';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSoftwareKey } from '@stele/device';
import { encodeFrame, MockSerialLine } from '@stele/hardware';
import { runGateway } from './cli.ts';
import { toBase64Url } from '@stele/core';
import { collect, startBroker, startFakeIngest, TEST_INGEST, waitFor, type FakeIngest, type TestBroker } from './test-helpers.ts';


const frame = (i: number) =>
  encodeFrame({
    header: { QN: `20240101120000${String(i).padStart(3, '0')}`, ST: '31', CN: '2011', PW: '123456', MN: '010000A8900016F000169DC0', Flag: 4 },
    cp: { params: { DataTime: '20240101120000' }, items: { a21026: { Rtd: `${i}.00`, Flag: 'N' } } },
  });

describe('stele gateway', () => {
  it('prints usage, and help for each command', async () => {
    for (const sub of ['run', 'doctor', 'status']) {
      const c = collect();
      expect(await runGateway([sub, '--help'], c.io)).toBe(0);
      expect(c.out()).toContain(`stele gateway ${sub}`);
    }
    const c = collect();
    expect(await runGateway([], c.io)).toBe(2);
    expect(await runGateway(['frobnicate'], c.io)).toBe(2);
    expect(await runGateway(['doctor', '--bogus'], c.io)).toBe(2);
    expect(await runGateway(['doctor', '--listen', 'x'], c.io)).toBe(2);
  });

  it('dispatches provision to @stele/device (its own --help)', async () => {
    const c = collect();
    const code = await runGateway(['provision', '--help'], c.io);
    expect(code === 0 || code === 1).toBe(true);
    expect(c.out() + c.err()).toMatch(/provision/);
  });

  it('run: a broken config exits 1 naming the file, line and field', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stele-cli-'));
    try {
      const file = join(dir, 'g.yaml');
      await writeFile(file, 'gateway:\n  id: gw\n  dataDir: d\nkey:\n  software:\n    path: k.pem\nbroker:\n  url: mqtt://127.0.0.1:1\n  mode: fast\n');
      const c = collect();
      expect(await runGateway(['run', '--config', file], c.io)).toBe(1);
      expect(c.err()).toContain('CONFIG_INVALID');
      expect(c.err()).toContain(`${file}:9:9 broker.mode`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('run: a missing key exits 1 with the fix', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stele-cli-'));
    try {
      const file = join(dir, 'g.yaml');
      await writeFile(file, `gateway:\n  id: gw\n  dataDir: ${dir}/data\nkey:\n  software:\n    path: ${dir}/none.pem\nbroker:\n  url: mqtt://127.0.0.1:1\nhealth:\n  port: 0\n`);
      const c = collect();
      expect(await runGateway(['run', '--config', file], c.io)).toBe(1);
      expect(c.err()).toContain('KEY_FILE_MISSING');
      expect(c.err()).toContain('stele gateway provision');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  describe('run end to end (aedes in process, a fake ingest, an HJ 212 logger on a mock serial line)', () => {
    let dir: string;
    let broker: TestBroker;
    let ingest: FakeIngest;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'stele-cli-run-'));
      await createSoftwareKey(join(dir, 'key.pem'));
      broker = await startBroker();
      ingest = await startFakeIngest(broker.url, 'gw-cli');
    });
    afterAll(async () => {
      await ingest.stop();
      await broker.close();
      SerialPortMock.binding.reset();
      await rm(dir, { recursive: true, force: true });
    });

    it('logs JSON, publishes readings, answers status, and stops cleanly on the signal', async () => {
      const file = join(dir, 'g.yaml');
      await writeFile(
        file,
        `gateway:\n  id: gw-cli\n  dataDir: ${dir}/data\n  logLevel: info\nkey:\n  software:\n    path: ${dir}/key.pem\nbroker:\n  url: ${broker.url}\ningest:\n  publicKey: ${toBase64Url(TEST_INGEST.publicKey)}\ninstruments:\n  - id: cems-1\n    driver: hj212\n    port: /dev/ttySTELE-CLI0\nhealth:\n  port: 0\n`,
      );
      const line = new MockSerialLine('/dev/ttySTELE-CLI0');
      const c = collect();
      const stop = new AbortController();
      let opsUrl = '';
      const run = runGateway(['run', '--config', file], c.io, {
        signal: stop.signal,
        env: {},
        gateway: { bindingFor: () => line.binding, statfs: async () => ({ bavail: 1e7, bsize: 4096 }), clock: { probe: async () => ({ synced: true, via: 'test' }) } },
        onStarted: (i) => (opsUrl = i.opsUrl),
      });
      await waitFor(() => opsUrl !== '', 10_000, 'started');
      await waitFor(() => line.isOpen, 5000, 'port open');
      for (let i = 1; i <= 5; i++) line.device.write(frame(i));
      await waitFor(() => ingest.committed() >= 5, 10_000, 'ingest committed 5');

      const s = collect();
      expect(await runGateway(['status', '--url', opsUrl], s.io)).toBe(0);
      expect(s.out()).toMatch(/outbox\s+depth \d+ \(head seq 5/);
      expect(s.out()).toContain('cems-1');
      expect(s.out()).toMatch(/last reading \d+ s ago, 5 reading/);
      expect((await fetch(`${opsUrl}/healthz`)).status).toBe(200);

      stop.abort();
      expect(await run).toBe(0);
      const logs = c
        .out()
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { msg: string; level: number; device: string });
      expect(logs.every((l) => l.device === 'gw-cli')).toBe(true);
      expect(logs.map((l) => l.msg)).toEqual(expect.arrayContaining(['gateway running', 'gateway stopping', 'gateway stopped']));
      // the ops endpoint is gone: status says the agent does not answer
      const gone = collect();
      expect(await runGateway(['status', '--url', opsUrl], gone.io)).toBe(1);
      expect(gone.err()).toContain('does not answer');
    });
  });
});
