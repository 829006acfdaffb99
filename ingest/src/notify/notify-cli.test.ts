/**
 * The user's door to alert notification: `stele ingest run --rules F --alert-webhook URL
 * --alert-webhook-secret-file F --alert-mqtt-secret-file F`, with a real HTTP receiver and a real subscriber on
 * stele/v1/alerts, and GET /alerts/ID/deliveries behind the admin token.
 */
import http from 'node:http';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { loadSoftwareSigner, provisionGateway } from '@stele/device';
import { captureIo, freePort } from '@stele/testkit';
import { runIngest, type IngestIo } from '../cli.ts';
import { makeChain, startBroker, tempDir, TestGateway, waitFor } from '../test-helpers.ts';
import { checkMqttNotice, checkWebhookRequest } from './notice.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('stele ingest run --alert-webhook / --alert-mqtt-secret-file', () => {
  it('refuses a webhook without its secret, and notification without rules (exit 2)', async () => {
    const a = captureIo();
    expect(await runIngest(['run', '--mqtt', 'mqtt://127.0.0.1:1', '--data', '/tmp/x', '--embedded-chain', '--alert-webhook', 'http://127.0.0.1:1/'], a)).toBe(2);
    expect(a.stderr.text).toMatch(/--alert-webhook-secret-file/);
    const b = captureIo();
    expect(await runIngest(['run', '--mqtt', 'mqtt://127.0.0.1:1', '--data', '/tmp/x', '--embedded-chain', '--alert-mqtt-secret-file', '/tmp/s'], b)).toBe(2);
    expect(b.stderr.text).toMatch(/--rules/);
  });

  it('sends each new alert to the webhook and the MQTT alerts topic, signed, and records both deliveries', async () => {
    const dir = await tempDir('notify-cli');
    cleanups.push(() => dir.remove());
    const broker = await startBroker();
    cleanups.push(() => broker.close());
    expect(await runIngest(['init', '--data', dir.path], captureIo())).toBe(0);
    const p = await provisionGateway({
      backend: { kind: 'software', keyFile: join(dir.path, 'gw-cli-n.pem') },
      deviceId: 'gw-cli-n',
      site: 'stack 2',
      instruments: [{ id: 'cems-1' }],
      installerKeyFile: join(dir.path, 'installer.pem'),
      createInstallerKey: true,
      outDir: join(dir.path, 'usb'),
    });
    await writeFile(join(dir.path, 'installer-keys.txt'), `${p.request.installer.publicKey}\n`);
    const rules = join(dir.path, 'rules.json');
    await writeFile(rules, JSON.stringify({ format: 'stele-rules/1', rules: [{ id: 'integrity', type: 'integrity', standard: 'test', version: '1', params: { unsyncedClock: true } }] }));
    const hookSecret = 'webhook-secret-0123456789abcdef0123456789';
    const mqttSecret = 'mqtt-alert-secret-0123456789abcdef012345';
    await writeFile(join(dir.path, 'hook.secret'), `${hookSecret}\n`, { mode: 0o600 });
    await writeFile(join(dir.path, 'mqtt.secret'), `${mqttSecret}\n`, { mode: 0o600 });

    const got: string[] = [];
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const c = checkWebhookRequest(new TextEncoder().encode(hookSecret), req.headers, new Uint8Array(Buffer.concat(chunks)), Date.now());
        if (c.ok) got.push(c.notice.alert.id);
        res.writeHead(c.ok ? 200 : 401).end();
      });
    });
    const port = await freePort();
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const ops = await mqtt.connectAsync(broker.url, { clientId: `ops-${Math.random().toString(16).slice(2)}`, reconnectPeriod: 0 });
    cleanups.push(() => ops.endAsync());
    const notices: string[] = [];
    ops.on('message', (_t, payload) => {
      const c = checkMqttNotice(new TextEncoder().encode(mqttSecret), new Uint8Array(payload), Date.now());
      if (c.ok) notices.push(c.notice.alert.id);
    });
    await ops.subscribeAsync('stele/v1/alerts', { qos: 1 });

    const out = captureIo();
    const abort = new AbortController();
    const running = runIngest(
      ['run', '--mqtt', broker.url, '--data', dir.path, '--embedded-chain', '--health-port', '0', '--rules', rules,
        '--alert-webhook', `http://127.0.0.1:${port}/stele`, '--alert-webhook-secret-file', join(dir.path, 'hook.secret'),
        '--alert-mqtt-secret-file', join(dir.path, 'mqtt.secret'), '--queue-bytes', '1048576'],
      { ...out, signal: abort.signal } satisfies IngestIo,
    );
    cleanups.push(async () => {
      abort.abort();
      await running;
    });
    await waitFor(() => out.stdout.lines().some((l) => l['msg'] === 'ingest running'), 'ingest running', 60_000);
    expect(out.stdout.lines().find((l) => l['msg'] === 'alert notification on')).toMatchObject({ channels: ['webhook', 'mqtt'] });
    expect(await runIngest(['enrol', p.requestFile, '--data', dir.path], captureIo())).toBe(0);
    const gw = await TestGateway.connect(broker.url, 'gw-cli-n');
    cleanups.push(() => gw.close());
    const device = await loadSoftwareSigner(join(dir.path, 'gw-cli-n.pem'));
    for (const r of await makeChain(device, 'gw-cli-n', 3)) await gw.publish(r);
    await waitFor(() => gw.ackedUpTo === 3, 'acks');

    await waitFor(() => got.length === 1 && notices.length === 1, 'webhook and MQTT notices', 30_000);
    const { url } = JSON.parse(await readFile(join(dir.path, 'ingest-http.json'), 'utf8')) as { url: string };
    const alerts = ((await (await fetch(`${url}/alerts`)).json()) as { alerts: { id: string }[] }).alerts;
    expect(alerts.map((a) => a.id)).toEqual(got);
    // the run's receive bound reached the service
    expect(await (await fetch(`${url}/metrics`)).text()).toMatch(/^stele_ingest_queued_bytes_limit(\{[^}]*\})? 1048576$/m);
    expect(notices).toEqual(got);
    const id = got[0]!;
    expect((await fetch(`${url}/alerts/${id}/deliveries`)).status).toBe(401);
    const token = (await readFile(join(dir.path, 'admin-token'), 'utf8')).trim();
    const deliveries = async () => ((await (await fetch(`${url}/alerts/${id}/deliveries`, { headers: { authorization: `Bearer ${token}` } })).json()) as { deliveries: { channel: string; state: string; attempts: number }[] }).deliveries;
    await waitFor(async () => (await deliveries()).every((d) => d.state === 'delivered'), 'both records delivered');
    expect((await deliveries()).map((d) => [d.channel, d.state, d.attempts])).toEqual([['mqtt', 'delivered', 1], ['webhook', 'delivered', 1]]);

    abort.abort();
    expect(await running).toBe(0);
  }, 120_000);
});
