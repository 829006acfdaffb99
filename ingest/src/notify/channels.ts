/**
 * The notification channels (FORMAT.md §15.9): an HTTP webhook and the MQTT alerts topic. A channel makes one
 * attempt per call and throws INGEST_NOTIFY_FAILED when the receiver did not take the notice; the notifier retries.
 */
import { ALERTS_TOPIC } from '@stele/core/wire';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { toHex } from '@stele/core';
import { IngestError } from '../errors.ts';
import { parseBrokerUrl, readBrokerCredentials, type IngestBrokerCredentials } from '../receive/broker-client.ts';
import type { AlertDeliveryRow } from '../store/index.ts';
import { mqttNotice, webhookHeaders } from './notice.ts';

export interface AlertChannel {
  /** The channel's name in delivery records: `webhook`, `mqtt`. */
  readonly name: string;
  /** One attempt; resolves when the receiver took the notice (2xx, PUBACK), else INGEST_NOTIFY_FAILED. */
  deliver(row: AlertDeliveryRow, signal: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

const failed = (channel: string, message: string, cause?: unknown): IngestError =>
  new IngestError('INGEST_NOTIFY_FAILED', `${channel}: ${message}`, { ...(cause === undefined ? {} : { cause }), where: { channel } });

export interface WebhookOptions {
  url: string;
  secret: Uint8Array;
  /** One attempt's limit (connect, send, response headers). Default 10 000. */
  timeoutMs?: number;
  now?: () => number;
}

/** POSTs the notice body with `Stele-Timestamp` and `Stele-Signature` (HMAC, notice.ts); only a 2xx counts. */
export function webhookChannel(o: WebhookOptions): AlertChannel {
  let url: URL;
  try {
    url = new URL(o.url);
  } catch (cause) {
    throw new RangeError('--alert-webhook is not a URL', { cause });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new RangeError('--alert-webhook must be an http:// or https:// URL');
  if (url.username !== '' || url.password !== '') throw new RangeError('--alert-webhook must not carry credentials (the HMAC secret authenticates ingest)');
  const timeoutMs = o.timeoutMs ?? 10_000;
  const now = o.now ?? Date.now;
  return {
    name: 'webhook',
    async deliver(row, signal) {
      let res: Response;
      try {
        res = await fetch(url, {
          method: 'POST',
          headers: webhookHeaders(o.secret, now(), row.body, row.alertId),
          body: Buffer.from(row.body),
          redirect: 'manual', // a redirect is not delivery (and would carry the notice elsewhere)
          signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]),
        });
      } catch (cause) {
        const c = (cause as { cause?: { code?: string } }).cause;
        throw failed('webhook', `${c?.code ?? (cause as Error).name}: ${(cause as Error).message}`, cause);
      }
      await res.body?.cancel().catch(() => undefined); // the answer's body is not read (bounded: nothing buffered)
      if (res.status < 200 || res.status > 299) throw failed('webhook', `HTTP ${res.status}`);
    },
    close: async () => {},
  };
}

export interface MqttChannelOptions {
  mqttUrl: string;
  broker: IngestBrokerCredentials;
  secret: Uint8Array;
  /** One attempt's limit (until PUBACK). Default 10 000. */
  timeoutMs?: number;
  now?: () => number;
  log?: (level: 'info' | 'warn', msg: string, fields: Record<string, unknown>) => void;
}

/**
 * Publishes notices on `stele/v1/alerts` (QoS 1, not retained) from ingest's own alert client
 * (`stele-ingest-alerts-<hex>`, ingest's broker user: the broker policy lets only ingest publish there). The client
 * connects in the background and reconnects by itself; an attempt while it is offline fails (and is retried).
 */
export async function mqttChannel(o: MqttChannelOptions): Promise<AlertChannel> {
  parseBrokerUrl(o.mqttUrl);
  const creds = await readBrokerCredentials(o.broker);
  const timeoutMs = o.timeoutMs ?? 10_000;
  const now = o.now ?? Date.now;
  const opts: IClientOptions = {
    ...creds.auth,
    ...(creds.tls as IClientOptions),
    clientId: `stele-ingest-alerts-${toHex(crypto.getRandomValues(new Uint8Array(6)))}`,
    clean: true,
    reconnectPeriod: 1000,
    connectTimeout: 10_000,
    protocolVersion: 4,
    queueQoSZero: false,
  };
  const client: MqttClient = mqtt.connect(o.mqttUrl, opts);
  client.on('error', (e) => o.log?.('warn', 'alert mqtt client error', { err: e.message }));
  return {
    name: 'mqtt',
    async deliver(row, signal) {
      if (!client.connected) throw failed('mqtt', 'not connected to the broker');
      const payload = Buffer.from(mqttNotice(o.secret, now(), row.body));
      let timer: NodeJS.Timeout | undefined;
      let onAbort: (() => void) | undefined;
      try {
        await Promise.race([
          client.publishAsync(ALERTS_TOPIC, payload, { qos: 1, retain: false }),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(failed('mqtt', `no PUBACK within ${timeoutMs} ms`)), timeoutMs);
            onAbort = () => reject(failed('mqtt', 'stopped'));
            signal.addEventListener('abort', onAbort, { once: true });
          }),
        ]);
      } catch (cause) {
        throw cause instanceof IngestError ? cause : failed('mqtt', (cause as Error).message, cause);
      } finally {
        clearTimeout(timer);
        if (onAbort !== undefined) signal.removeEventListener('abort', onAbort);
      }
    },
    close: () => client.endAsync(true).then(() => undefined, () => undefined),
  };
}
