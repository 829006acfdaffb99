/**
 * `stele ingest run --share GROUP`: several workers on one MQTT 5 shared subscription (issue #11). On the Debian
 * mosquitto started here on a free port: each message goes to one member of the group, and after a broker restart
 * (mosquitto 2.0.11 forgets saved shared subscriptions) the workers subscribe again and keep receiving. On aedes
 * (no MQTT 5, no $share) and with a LevelDB store the command refuses with a code.
 */
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { captureIo, waitFor } from '@stele/testkit';
import { SteleError } from '@stele/core';
import { runIngest } from '../cli.ts';
import { hasMosquitto, startRestartableMosquitto } from '../broker/test-brokers.ts';
import { startBroker, tempDir } from '../test-helpers.ts';
import { createTestDatabase, postgresAvailable } from '../store/postgres/test-database.ts';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connectBroker, statementsSubscription } from './broker-client.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

const log = () => {};
const pg = await postgresAvailable();
const connect = (mqttUrl: string, onMessage: (topic: string, payload: Uint8Array) => void, shareGroup = 'workers') =>
  connectBroker({ mqttUrl, broker: {}, maxPacketBytes: 70_000, onOversize: () => {}, onMessage, log, shareGroup });

describe('stele ingest run --share GROUP', () => {
  it('refuses a store that is not PostgreSQL with INGEST_SHARE_NEEDS_SHARED_STORE, and a bad group name', async () => {
    const dir = await tempDir('share-cli');
    cleanups.push(() => dir.remove());
    const io = captureIo();
    expect(await runIngest(['run', '--mqtt', 'mqtt://127.0.0.1:1', '--data', dir.path, '--embedded-chain', '--share', 'workers'], io)).toBe(2);
    expect(io.stderr.text).toMatch(/^stele ingest run: INGEST_SHARE_NEEDS_SHARED_STORE: /);
    const bad = captureIo();
    expect(await runIngest(['run', '--mqtt', 'mqtt://127.0.0.1:1', '--data', dir.path, '--embedded-chain', '--store', 'postgres://u@h/db', '--share', 'a/b'], bad)).toBe(2);
    expect(bad.stderr.text).toMatch(/shareGroup must be/);
    expect(() => statementsSubscription('#')).toThrow(RangeError);
    expect(statementsSubscription('g-1')).toBe('$share/g-1/stele/v1/+/statements');
  });

  it('refuses aedes (no MQTT 5, no $share) with INGEST_SHARE_UNSUPPORTED', async () => {
    const broker = await startBroker();
    cleanups.push(() => broker.close());
    const err = await connect(broker.url, () => {}).then(
      (c) => (c.end(true), undefined),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SteleError);
    expect((err as SteleError<string>).code).toBe('INGEST_SHARE_UNSUPPORTED');
    expect((err as Error).message).toMatch(/aedes/);
  });

  it.skipIf(!pg.ok)('stops with INGEST_SHARE_UNSUPPORTED (exit 1) when the broker is aedes, even with a PostgreSQL store', async () => {
    const dir = await tempDir('share-aedes');
    cleanups.push(() => dir.remove());
    const db = await createTestDatabase();
    cleanups.push(() => db.drop());
    const broker = await startBroker();
    cleanups.push(() => broker.close());
    const url = new URL(db.url);
    await writeFile(join(dir.path, 'pg-password'), `${decodeURIComponent(url.password)}\n`, { mode: 0o600 });
    url.password = '';
    const io = captureIo();
    expect(await runIngest(['init', '--data', dir.path], captureIo())).toBe(0);
    const args = ['run', '--mqtt', broker.url, '--data', dir.path, '--embedded-chain', '--store', url.toString(), '--store-password-file', join(dir.path, 'pg-password'), '--share', 'workers'];
    expect(await runIngest(args, io)).toBe(1);
    expect(io.stderr.text).toMatch(/^stele ingest run: INGEST_SHARE_UNSUPPORTED: .*aedes/m);
  }, 90_000);

  it.skipIf(!hasMosquitto())('on mosquitto: each message to one worker of the group, and both subscribe again after a broker restart', async () => {
    const dir = await tempDir('share-mosq');
    cleanups.push(() => dir.remove());
    const broker = await startRestartableMosquitto(dir.path);
    cleanups.push(() => broker.close());
    const got: [string, string][] = [];
    const a = await connect(broker.url, (t, p) => got.push(['a', `${t} ${Buffer.from(p).toString()}`]));
    cleanups.push(() => a.endAsync(true));
    const b = await connect(broker.url, (t, p) => got.push(['b', `${t} ${Buffer.from(p).toString()}`]));
    cleanups.push(() => b.endAsync(true));
    const pub = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 200 });
    cleanups.push(() => pub.endAsync(true));
    const send = async (from: number, n: number) => {
      for (let i = from; i < from + n; i++) await pub.publishAsync(`stele/v1/gw-${i % 3}/statements`, `m${i}`, { qos: 1 });
    };
    await send(0, 40);
    await waitFor(() => got.length >= 40, '40 messages at the group', 10_000);
    const texts = got.map(([, t]) => t);
    expect(new Set(texts).size).toBe(40); // each message once, to one of the two
    expect(got.some(([w]) => w === 'a') && got.some(([w]) => w === 'b')).toBe(true);

    await broker.restart();
    // Wait for both workers' subscriptions to be back: a probe only the group receives, until both have had one.
    await waitFor(() => a.connected && b.connected && pub.connected, 'every client reconnected', 15_000);
    got.length = 0;
    let probe = 0;
    await waitFor(
      async () => {
        await pub.publishAsync('stele/v1/probe/statements', `p${probe++}`, { qos: 1 });
        return got.some(([w]) => w === 'a') && got.some(([w]) => w === 'b');
      },
      'both workers subscribed again',
      15_000,
      200,
    );
    got.length = 0;
    await send(100, 40);
    await waitFor(() => got.length >= 40, '40 messages at the group', 10_000);
    expect(new Set(got.map(([, t]) => t)).size).toBe(40);
  }, 60_000);
});
