/**
 * Alert notification (issue #12 item 7) on real parts: ingest on an aedes broker with anvil, a real HTTP receiver
 * (node:http) that checks each request's HMAC, a real MQTT subscriber on stele/v1/alerts that checks each notice's
 * MAC. A receiver that is down gets the alert once it is up (retries, each attempt recorded); a restart of ingest
 * sends what was pending and nothing that was delivered.
 */
import http from 'node:http';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { parseRuleSet } from '@stele/core/alerts';
import { freePort } from '@stele/testkit';
import { toBase64Url } from '@stele/core';
import { readAnchor } from '@stele/core/anchor';
import { verifyBundleBytes } from '@stele/core/verify';
import { policyTrustingBundle } from '@stele/core/testing';
import { AlertBook } from '../alerts.ts';
import type { EvidenceBundleJson, IngestService } from '../service.ts';
import { makeChain, tempDir, useIngestStack, waitFor, enrolmentOf, testSigner } from '../test-helpers.ts';
import { mqttChannel, webhookChannel } from './channels.ts';
import { checkMqttNotice, checkWebhookRequest, readNoticeSecret } from './notice.ts';
import { Notifier } from './notifier.ts';

const stack = useIngestStack('notify-chain');
const SECRET = new TextEncoder().encode('0123456789abcdef0123456789abcdef-webhook');
const MQTT_SECRET = new TextEncoder().encode('0123456789abcdef0123456789abcdef-mqtt!!');
const RULES = parseRuleSet({
  format: 'stele-rules/1',
  rules: [{ id: 'integrity', type: 'integrity', standard: 'test', version: '1', params: { unsyncedClock: true } }],
});

/** A webhook receiver on `port` that records each request it verified (and refuses the others with 401). */
async function startReceiver(port: number, secret: Uint8Array) {
  const got: { alertId: string; headerId: string | undefined }[] = [];
  const refused: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = new Uint8Array(Buffer.concat(chunks));
      const check = checkWebhookRequest(secret, req.headers, body, Date.now());
      if (!check.ok) {
        refused.push(check.reason);
        res.writeHead(401).end();
        return;
      }
      got.push({ alertId: check.notice.alert.id, headerId: req.headers['stele-alert-id'] as string | undefined });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return { got, refused, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** A subscriber on stele/v1/alerts keeping the alert ids of the notices whose MAC checks. */
async function subscribe(url: string, secret: Uint8Array) {
  const client = await mqtt.connectAsync(url, { clientId: `ops-${Math.random().toString(16).slice(2)}`, reconnectPeriod: 0 });
  const got: string[] = [];
  const bad: string[] = [];
  client.on('message', (_t, payload) => {
    const c = checkMqttNotice(secret, new Uint8Array(payload), Date.now());
    if (c.ok) got.push(c.notice.alert.id);
    else bad.push(c.reason);
  });
  await client.subscribeAsync('stele/v1/alerts', { qos: 1 });
  return { got, bad, close: () => client.endAsync() };
}

function notifierFor(service: IngestService, webhookUrl: string): Notifier {
  const book = new AlertBook(service, RULES);
  return new Notifier({
    alerts: () => book.alerts(),
    store: service.alertDeliveryStore(),
    issuer: 'stele-ingest-test',
    scanMs: 50,
    retry: { firstMs: 50, maxMs: 200 },
    channels: [webhookChannel({ url: webhookUrl, secret: SECRET, timeoutMs: 2000 })],
  });
}

describe('alert notification', () => {
  it('delivers each new alert once per channel: retries a receiver that is down, records every delivery, and a restart resends only what was pending', async () => {
    const s = await stack.setup({ deviceId: 'gw-n1', dirPrefix: 'notify' });
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/hook`;
    const ops = await subscribe(stack.broker.url, MQTT_SECRET);
    stack.cleanups.push(() => ops.close());
    const mqttCh = await mqttChannel({ mqttUrl: stack.broker.url, broker: {}, secret: MQTT_SECRET });
    const book = new AlertBook(s.ingest, RULES);
    let notifier = new Notifier({
      alerts: () => book.alerts(),
      store: s.ingest.alertDeliveryStore(),
      issuer: 'stele-ingest-test',
      scanMs: 50,
      retry: { firstMs: 50, maxMs: 200 },
      channels: [webhookChannel({ url, secret: SECRET, timeoutMs: 2000 }), mqttCh],
    });
    notifier.start();
    let stopped = false;
    stack.cleanups.push(async () => {
      if (!stopped) await notifier.stop();
    });

    // an alert while the receiver is down: attempts are recorded with the error, the MQTT channel delivers
    for (const r of await makeChain(s.device, 'gw-n1', 3)) await s.gw.publish(r);
    await waitFor(() => s.gw.ackedUpTo === 3, 'acks');
    const [a] = await book.alerts();
    expect(a?.kind).toBe('integrity-clock-unsynced');
    const store = s.ingest.alertDeliveryStore();
    await waitFor(async () => ((await store.getAlertDelivery(a!.id, 'webhook'))?.attempts ?? 0) >= 2, 'two failed webhook attempts');
    const failing = await store.getAlertDelivery(a!.id, 'webhook');
    expect(failing).toMatchObject({ state: 'pending' });
    expect(failing!.lastError).toMatch(/ECONNREFUSED/);
    await waitFor(() => ops.got.length === 1, 'the MQTT notice');
    expect(ops.got).toEqual([a!.id]);

    // the receiver comes up: the next retry delivers
    let receiver = await startReceiver(port, SECRET);
    await waitFor(() => receiver.got.length === 1, 'the webhook delivery');
    expect(receiver.got[0]).toEqual({ alertId: a!.id, headerId: a!.id });
    await waitFor(async () => (await store.getAlertDelivery(a!.id, 'webhook'))?.state === 'delivered', 'delivered record');
    const delivered = await store.getAlertDelivery(a!.id, 'webhook');
    expect(delivered!.attempts).toBeGreaterThanOrEqual(3);
    expect(delivered!.deliveredAt).toBeGreaterThanOrEqual(delivered!.queuedAt);

    // the receiver goes down again; a second device's alert stays pending on the webhook
    await receiver.close();
    const dev2 = testSigner();
    await s.ingest.enrol(enrolmentOf(dev2, 'gw-n2'));
    const { TestGateway } = await import('../test-helpers.ts');
    const gw2 = await TestGateway.connect(stack.broker.url, 'gw-n2');
    stack.cleanups.push(() => gw2.close());
    for (const r of await makeChain(dev2, 'gw-n2', 2)) await gw2.publish(r);
    await waitFor(() => gw2.ackedUpTo === 2, 'acks of gw-n2');
    const b = (await book.alerts()).find((x) => x.subject.startsWith('gw-n2'));
    expect(b).toBeDefined();
    await waitFor(async () => ((await store.getAlertDelivery(b!.id, 'webhook'))?.attempts ?? 0) >= 1, 'a failed attempt for the second alert');
    await waitFor(() => ops.got.length === 2, 'the second MQTT notice');

    // restart: stop the notifier and ingest, start both again on the same store, then the receiver
    await notifier.stop();
    stopped = true;
    await s.ingest.stop();
    const again = await stack.startIngest(s.dataDir, s.ingestKey, s.anchorer);
    const store2 = again.alertDeliveryStore();
    expect((await store2.getAlertDelivery(b!.id, 'webhook'))?.state).toBe('pending');
    expect((await store2.getAlertDelivery(a!.id, 'webhook'))?.state).toBe('delivered');
    const mqtt2 = await mqttChannel({ mqttUrl: stack.broker.url, broker: {}, secret: MQTT_SECRET });
    const book2 = new AlertBook(again, RULES);
    notifier = new Notifier({
      alerts: () => book2.alerts(),
      store: store2,
      issuer: 'stele-ingest-test',
      scanMs: 50,
      retry: { firstMs: 50, maxMs: 200 },
      channels: [webhookChannel({ url, secret: SECRET, timeoutMs: 2000 }), mqtt2],
    });
    stopped = false;
    notifier.start();
    receiver = await startReceiver(port, SECRET);
    stack.cleanups.push(() => receiver.close());
    await waitFor(() => receiver.got.length === 1, 'the pending webhook delivery after the restart');
    expect(receiver.got.map((x) => x.alertId)).toEqual([b!.id]);
    await waitFor(async () => (await store2.getAlertDelivery(b!.id, 'webhook'))?.state === 'delivered', 'the record after the restart');
    // scans after the restart found both alerts recorded: nothing sent again on either channel
    await notifier.scanNow();
    await notifier.scanNow();
    expect(await store2.countPendingAlertDeliveries('webhook')).toBe(0);
    expect(await store2.countPendingAlertDeliveries('mqtt')).toBe(0);
    expect(notifier.stats()).toMatchObject({ webhook: { delivered: 1 }, mqtt: { delivered: 0 } });
    expect(receiver.got.map((x) => x.alertId)).toEqual([b!.id]);
    expect(ops.got).toEqual([a!.id, b!.id]);
    expect([...ops.bad, ...receiver.refused]).toEqual([]);
  }, 60_000);

  it('a receiver refuses a notice under another secret, a stale one and an edited body', async () => {
    const s = await stack.setup({ deviceId: 'gw-n3', dirPrefix: 'notify' });
    const port = await freePort();
    const wrong = await startReceiver(port, new TextEncoder().encode('another-secret-another-secret-0123456789'));
    stack.cleanups.push(() => wrong.close());
    const notifier = notifierFor(s.ingest, `http://127.0.0.1:${port}/`);
    notifier.start();
    stack.cleanups.push(() => notifier.stop());
    for (const r of await makeChain(s.device, 'gw-n3', 2)) await s.gw.publish(r);
    await waitFor(() => wrong.refused.length >= 2, 'refused attempts');
    expect(wrong.refused.every((x) => x === 'mac')).toBe(true);
    expect(wrong.got).toEqual([]);
    // the receiver's checks, byte by byte
    const { webhookHeaders, noticeBody } = await import('./notice.ts');
    const [alert] = await new AlertBook(s.ingest, RULES).alerts();
    const body = noticeBody(alert!, 'x');
    const h = webhookHeaders(SECRET, 1_000_000, body, alert!.id);
    expect(checkWebhookRequest(SECRET, h, body, 1_000_000).ok).toBe(true);
    expect(checkWebhookRequest(SECRET, h, body, 1_000_000 + 301_000)).toEqual({ ok: false, reason: 'stale' });
    const edited = body.slice();
    edited[edited.length - 2]! ^= 1;
    expect(checkWebhookRequest(SECRET, h, edited, 1_000_000)).toEqual({ ok: false, reason: 'mac' });
  }, 60_000);

  it('a fork ingest caught is an integrity-fork alert and is notified; its bundle carries the caught statement and proves the fork', async () => {
    const s = await stack.setup({ deviceId: 'gw-n4', dirPrefix: 'notify' });
    const ops = await subscribe(stack.broker.url, MQTT_SECRET);
    stack.cleanups.push(() => ops.close());
    const chain = await makeChain(s.device, 'gw-n4', 3);
    for (const r of chain) await s.gw.publish(r);
    await waitFor(() => s.gw.ackedUpTo === 3, 'acks');
    const { readingAt, signedReading } = await import('../test-helpers.ts');
    const twin = await signedReading(s.device, readingAt('gw-n4', 2, chain[0]!.digest, '99.99'));
    await s.gw.publish(twin);
    await waitFor(() => s.gw.rejects.some((r) => r.code === 'FORK_ERROR'), 'FORK_ERROR');
    const book = new AlertBook(s.ingest, RULES);
    const fork = (await book.alerts()).find((a) => a.kind === 'integrity-fork');
    expect(fork).toMatchObject({ subject: 'gw-n4/2', values: { seq: 2, readings: 2 } });
    const notifier = new Notifier({ alerts: () => book.alerts(), store: s.ingest.alertDeliveryStore(), issuer: 'stele-ingest-test', scanMs: 50, channels: [await mqttChannel({ mqttUrl: stack.broker.url, broker: {}, secret: MQTT_SECRET })] });
    notifier.start();
    stack.cleanups.push(() => notifier.stop());
    await waitFor(() => ops.got.includes(fork!.id), 'the fork notice');
    await s.ingest.flush();
    const bundle = (await book.bundle(fork!.id)) as EvidenceBundleJson;
    expect(bundle.window).toEqual({ firstSeq: 1, lastSeq: 3 });
    expect(bundle.caught).toEqual([{ statement: toBase64Url(twin.statement), reading: toBase64Url(twin.reading) }]);
    const { verdict } = await verifyBundleBytes(new TextEncoder().encode(JSON.stringify(bundle)), {
      anchorReader: (ref, batchId, rpc) => readAnchor(rpc ?? ref.rpc!, ref, batchId),
      trust: await policyTrustingBundle(bundle as unknown as Record<string, unknown>),
    });
    // The device signed two readings for seq 2: the verdict fails on exactly that, and the alert is recomputed.
    expect(verdict.state).toBe('failed');
    expect(verdict.checks.flatMap((c) => c.failures.map((f) => f.code))).toEqual(['FORK_ERROR']);
    expect(verdict.checks.find((c) => c.id === 'alert')!.status).toBe('pass');
  }, 60_000);

  it('refuses a secret file others can read or one that is too short', async () => {
    const dir = await tempDir('notify-secret');
    stack.cleanups.push(() => dir.remove());
    const loose = join(dir.path, 'loose');
    await writeFile(loose, 'x'.repeat(40), { mode: 0o644 });
    await expect(readNoticeSecret(loose, 'the webhook secret file')).rejects.toMatchObject({ code: 'INGEST_FILE_MODE' });
    const short = join(dir.path, 'short');
    await writeFile(short, 'short\n', { mode: 0o600 });
    await expect(readNoticeSecret(short, 'the webhook secret file')).rejects.toMatchObject({ code: 'INGEST_NOTIFY_SECRET' });
    const ok = join(dir.path, 'ok');
    await writeFile(ok, `${'k'.repeat(32)}\n`, { mode: 0o600 });
    expect((await readNoticeSecret(ok, 'the webhook secret file')).length).toBe(32);
  });
});
