/**
 * Ingest's side of the broker: the connection (TLS, credentials read from files, the packet limit applied before
 * mqtt.js buffers a packet) and the subscription to every device's statements. What arrives is untrusted; the
 * service queues it per device (service.ts onMessage) and verify/ and commit/ judge it.
 */
import { everyDeviceFilter } from '@stele/core/wire';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import tls from 'node:tls';
import mqtt, { MqttClient, type IClientOptions } from 'mqtt';
import { toHex } from '@stele/core';
import { limitedClientStream } from '../broker/packet-limit.ts';
import { IngestError } from '../errors.ts';
import type { LogFn } from '../log.ts';

/** Every device's statements (FORMAT.md §11). */
export const STATEMENTS_TOPIC_FILTER = everyDeviceFilter('statements');

/**
 * Ingest's own broker credentials (docs/broker.md): files, read at start, never in the URL, never logged.
 * `passwordFile` holds the password (one trailing newline is dropped); `ca`, `cert`, `key` are PEM files for TLS
 * (`mqtts://`), `cert` + `key` a client certificate.
 */
export interface IngestBrokerCredentials {
  username?: string;
  passwordFile?: string;
  ca?: string;
  cert?: string;
  key?: string;
  /** Default true. */
  rejectUnauthorized?: boolean;
}

export interface BrokerConnectOptions {
  /** `mqtt://host:port` or `mqtts://host:port`, without credentials. */
  mqttUrl: string;
  broker: IngestBrokerCredentials;
  /** When given, a persistent session (clean: false); else a random id with a clean session. */
  clientId?: string;
  maxPacketBytes: number;
  /** A PUBLISH over maxPacketBytes: its body was dropped unread. */
  onOversize: (sizeBytes: number) => void;
  onMessage: (topic: string, payload: Uint8Array) => void;
  log: LogFn;
}

/** Connects to the broker and subscribes to every device's statements (QoS 1). */
export async function connectBroker(o: BrokerConnectOptions): Promise<MqttClient> {
  const clientId = o.clientId ?? `stele-ingest-${toHex(crypto.getRandomValues(new Uint8Array(6)))}`;
  const url = parseBrokerUrl(o.mqttUrl);
  const creds = await readBrokerCredentials(o.broker);
  const opts: IClientOptions = {
    ...creds.auth,
    clientId,
    clean: o.clientId === undefined,
    reconnectPeriod: 1000,
    connectTimeout: 10_000,
    protocolVersion: 4,
  };
  let client: MqttClient;
  if (url.protocol === 'mqtt:' || url.protocol === 'mqtts:') {
    // Our own stream: the packet limit applies before mqtt.js's parser buffers a packet body (packet-limit.ts).
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const port = Number(url.port || (url.protocol === 'mqtts:' ? 8883 : 1883));
    client = new MqttClient(() => {
      const socket = url.protocol === 'mqtts:' ? tls.connect({ host, port, ...(net.isIP(host) === 0 ? { servername: host } : {}), ...creds.tls }) : net.connect({ host, port });
      return limitedClientStream(socket, o.maxPacketBytes, o.onOversize);
    }, opts);
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error) => {
        client.end(true);
        reject(e);
      };
      client.once('connect', () => {
        client.off('error', onError);
        resolve();
      });
      client.once('error', onError);
    });
  } else {
    client = await mqtt.connectAsync(o.mqttUrl, { ...opts, ...(creds.tls as IClientOptions) });
  }
  // Small QoS 1 packets both ways: without TCP_NODELAY, delayed ACKs stall each gateway's window refill
  // (~40 ms); see the measurement in edge-agent/src/publisher.ts.
  const noDelay = () => (client.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true);
  noDelay();
  client.on('connect', noDelay);
  client.on('message', (topic, payload) => o.onMessage(topic, payload));
  client.on('error', (e) => o.log('warn', 'mqtt error', { err: e.message }));
  client.on('offline', () => o.log('warn', 'mqtt offline', {}));
  try {
    await client.subscribeAsync(STATEMENTS_TOPIC_FILTER, { qos: 1 });
  } catch (e) {
    await client.endAsync(true).catch(() => {});
    throw e;
  }
  return client;
}

/** The broker URL, refusing credentials in it (they would end up in logs and process lists). */
export function parseBrokerUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch (cause) {
    throw new RangeError('mqttUrl is not a URL', { cause });
  }
  if (url.username !== '' || url.password !== '') throw new RangeError('mqttUrl must not carry credentials: use the broker password file option');
  if (!['mqtt:', 'mqtts:', 'ws:', 'wss:'].includes(url.protocol)) throw new RangeError('mqttUrl must be mqtt://, mqtts://, ws:// or wss://');
  return url;
}

export async function readBrokerCredentials(b: IngestBrokerCredentials): Promise<{ auth: IClientOptions; tls: tls.ConnectionOptions }> {
  const read = async (path: string, what: string) => {
    try {
      return await readFile(path);
    } catch (cause) {
      throw new IngestError('INGEST_BROKER_SECRET', `cannot read the broker ${what} ${path}`, { cause, where: { what, path } });
    }
  };
  const auth: IClientOptions = {};
  if (b.username !== undefined) auth.username = b.username;
  if (b.passwordFile !== undefined) auth.password = (await read(b.passwordFile, 'password file')).toString('utf8').replace(/\r?\n$/, '');
  const t: tls.ConnectionOptions = { rejectUnauthorized: b.rejectUnauthorized ?? true };
  if (b.ca !== undefined) t.ca = await read(b.ca, 'CA file');
  if (b.cert !== undefined) t.cert = await read(b.cert, 'client certificate');
  if (b.key !== undefined) t.key = await read(b.key, 'client key');
  return { auth, tls: t };
}

