/**
 * The gateway's MQTT clients do not make mqtt-packet's number cache: 65,536 two-byte Buffers built at the first
 * packet written in the process (about 6 MB of JS heap, measured in the soak bench's heap snapshot; the gateway's
 * RSS budget is 100 MB, docs/BENCHMARKS.md "Soak"). A file of its own: the cache is module state of the process,
 * and another client (a fake ingest) would build it.
 */
import { createRequire } from 'node:module';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialPortMock } from 'serialport';
import { afterAll, expect, it } from 'vitest';
import { createSoftwareKey } from '@stele/device';
import { encodeFrame, MockSerialLine } from '@stele/hardware';
import { parseConfig } from '../config/config.ts';
import { startBroker, waitFor } from '../test-helpers.ts';
import { startGateway } from './gateway.ts';

/** mqtt-packet as mqtt.js loads it (aedes, the test broker, shares it). */
const requireFromMqtt = createRequire(createRequire(import.meta.url).resolve('mqtt'));
const numbers = requireFromMqtt('mqtt-packet/numbers.js') as { cache: Record<number, Buffer> };

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

it("publishes readings and health without building mqtt-packet's 65,536-Buffer number cache", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'stele-mqtt-memory-'));
  dirs.push(dir);
  await createSoftwareKey(join(dir, 'key.pem'));
  const broker = await startBroker();
  const line = new MockSerialLine('/dev/ttySTELE-MQTTMEM0');
  const config = `gateway:
  id: gw-mqtt-memory
  dataDir: ${dir}/data
key:
  software:
    path: ${dir}/key.pem
broker:
  url: ${broker.url}
instruments:
  - id: cems-1
    driver: hj212
    port: ${line.path}
health:
  port: 0
  publishEvery: 1s
`;
  const gw = await startGateway(parseConfig(config, join(dir, 'gateway.yaml')), {
    log: () => undefined,
    bindingFor: (i) => (i.port === line.path ? line.binding : undefined),
    statfs: async () => ({ bavail: 50e9 / 4096, bsize: 4096 }),
    clock: { probe: async () => ({ synced: true, via: 'test' }) },
  });
  try {
    await waitFor(() => gw.status().broker.connected && gw.status().instruments[0]!.state === 'open', 5000, 'connected, port open');
    for (let i = 1; i <= 3; i++) {
      line.device.write(
        encodeFrame({
          header: { QN: `2024010112000000${i}`, ST: '31', CN: '2011', PW: '123456', MN: '010000A8900016F000169DC0', Flag: 4 },
          cp: { params: { DataTime: '20240101120000' }, items: { a21026: { Rtd: `${i}.00`, Flag: 'N' } } },
        }),
      );
    }
    await waitFor(() => gw.status().broker.sent >= 3, 5000, '3 readings published');
    expect(Object.keys(numbers.cache)).toHaveLength(0);
  } finally {
    await gw.stop('test');
    SerialPortMock.binding.reset();
    await broker.close();
  }
});
