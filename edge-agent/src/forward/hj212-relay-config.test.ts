/**
 * The relay's limits reached the way an installer sets them (issue #8): gateway config keys
 * `relays[].maxConnections`, `maxBytesPerSecond`, `maxTotalBytesPerSecond`, read by the real gateway
 * (startGateway), over the relay's real TCP socket; the counts show in status and in /metrics.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { freePort } from '@stele/testkit';
import { createSoftwareKey } from '@stele/device';
import { parseConfig } from '../config/config.ts';
import { startGateway } from '../run/gateway.ts';
import { waitFor } from '../test-helpers.ts';
import { connectLogger, startPlatform, upload } from './test-platform.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

it('gateway config relays[] limits: a second logger is refused (RELAY_TOO_MANY_CONNECTIONS), input over the rate is paused (RELAY_RATE) and still forwarded', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'stele-relay-config-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  await createSoftwareKey(join(dir, 'key.pem'));
  const plat = await startPlatform();
  cleanups.push(() => plat.close());
  const port = await freePort();
  const yaml = `gateway:
  id: gw-relay-cfg
  dataDir: ${dir}/data
key:
  software:
    path: ${dir}/key.pem
broker:
  url: mqtt://127.0.0.1:1
health:
  port: 0
relays:
  - id: plat
    listen: { port: ${port} }
    upstream: { host: 127.0.0.1, port: ${plat.port} }
    maxConnections: 1
    maxBytesPerSecond: 1MiB
    maxTotalBytesPerSecond: 16KiB
`;
  const gw = await startGateway(parseConfig(yaml, join(dir, 'gateway.yaml')), {
    statfs: async () => ({ bavail: 50e9 / 4096, bsize: 4096 }),
    clock: { probe: async () => ({ synced: true, via: 'test' }) },
  });
  cleanups.push(() => gw.stop());
  const relay = () => gw.status().relays.plat!;
  await waitFor(() => relay().upstreamConnected, 10_000, 'upstream');

  const logger = await connectLogger(port);
  cleanups.push(() => logger.close());
  await waitFor(() => relay().loggers === 1, 5000, 'first logger');
  const second = net.connect({ host: '127.0.0.1', port });
  second.on('error', () => undefined);
  await new Promise<void>((resolve) => second.once('close', () => resolve()));

  const frame = upload(3);
  logger.write(Buffer.alloc(40_000, 'A')); // over 16 KiB/s: about three seconds
  logger.write(frame);
  await waitFor(() => plat.frames.length === 1, 20_000, 'frame forwarded after the pause');
  expect(Buffer.from(plat.frames[0]!).equals(Buffer.from(frame))).toBe(true);
  expect(relay().limited).toMatchObject({ RELAY_TOO_MANY_CONNECTIONS: 1, RELAY_CONNECTION_RATE: 0 });
  expect(relay().limited.RELAY_RATE).toBeGreaterThan(0);

  const metrics = await (await fetch(`${gw.opsUrl}/metrics`)).text();
  expect(metrics).toContain('stele_relay_limited_total{relay="plat",reason="RELAY_TOO_MANY_CONNECTIONS"} 1');
  expect(metrics).toMatch(/stele_relay_limited_total\{relay="plat",reason="RELAY_RATE"\} [1-9]/);
});
