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
  /**
   * Several workers on one MQTT 5 shared subscription (`$share/GROUP/stele/v1/+/statements`): the broker hands each
   * message to one member of the group. Needs an MQTT 5 broker with shared subscriptions (mosquitto >= 1.6, EMQX);
   * aedes, the embedded broker, has neither: INGEST_SHARE_UNSUPPORTED. The subscription is made again on every
   * connect: mosquitto 2.0.11 does not restore a saved shared subscription after a restart (issue #11).
   */
  shareGroup?: string;
}

/** An MQTT 5 share name (§4.8.2: no '/', '+' or '#'); bounded and plain so that it is safe in logs and ACLs. */
export const SHARE_GROUP_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** The filter ingest subscribes to: every device's statements, through `$share/GROUP/` when sharing. */
export function statementsSubscription(shareGroup?: string): string {
  if (shareGroup === undefined) return STATEMENTS_TOPIC_FILTER;
  if (!SHARE_GROUP_PATTERN.test(shareGroup)) throw new RangeError('shareGroup must be 1 to 64 of A-Z a-z 0-9 _ -');
  return `$share/${shareGroup}/${STATEMENTS_TOPIC_FILTER}`;
}

/** MQTT 5 reason codes a broker without shared subscriptions answers (§3.2.2.2, §3.9.3). */
const SHARED_NOT_SUPPORTED = 0x9e;
const UNSUPPORTED_PROTOCOL_VERSION = [1, 0x84];

function shareUnsupported(mqttUrl: string, why: string, cause?: unknown): IngestError {
  return new IngestError(
    'INGEST_SHARE_UNSUPPORTED',
    `the broker at ${mqttUrl} ${why}: --share needs an MQTT 5 broker with shared subscriptions (mosquitto, EMQX); aedes, the embedded broker, has no $share: run one worker without --share`,
    { ...(cause === undefined ? {} : { cause }), where: { mqttUrl } },
  );
}

/** Connects to the broker and subscribes to every device's statements (QoS 1). */
export async function connectBroker(o: BrokerConnectOptions): Promise<MqttClient> {
  const clientId = o.clientId ?? `stele-ingest-${toHex(crypto.getRandomValues(new Uint8Array(6)))}`;
  const url = parseBrokerUrl(o.mqttUrl);
  const share = o.shareGroup !== undefined;
  const filter = statementsSubscription(o.shareGroup);
  const creds = await readBrokerCredentials(o.broker);
  const opts: IClientOptions = {
    ...creds.auth,
    clientId,
    clean: o.clientId === undefined,
    reconnectPeriod: 1000,
    connectTimeout: 10_000,
    protocolVersion: share ? 5 : 4,
    // mqtt.js logs each packet through `debug` (a hundred calls on the receive path, each building its arguments
    // even when off); ours are the structured lines. DEBUG=mqttjs* still turns its own on.
    ...(/mqttjs/.test(process.env.DEBUG ?? '') ? {} : { log: () => {} }),
    // Sharing: we subscribe ourselves on every connect (below), whatever mqtt.js or the broker remembered.
    ...(share ? { resubscribe: false } : {}),
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
        const code = (e as { code?: unknown }).code;
        reject(share && typeof code === 'number' && UNSUPPORTED_PROTOCOL_VERSION.includes(code) ? shareUnsupported(o.mqttUrl, 'refused MQTT 5', e) : e);
      };
      client.once('connect', (connack) => {
        client.off('error', onError);
        if (share && connack.properties?.sharedSubscriptionAvailable === false) {
          client.end(true);
          reject(shareUnsupported(o.mqttUrl, 'says shared subscriptions are not available (CONNACK)'));
          return;
        }
        resolve();
      });
      client.once('error', onError);
    });
  } else {
    client = await mqtt.connectAsync(o.mqttUrl, { ...opts, ...(creds.tls as IClientOptions) }).catch((e: unknown) => {
      const code = (e as { code?: unknown }).code;
      throw share && typeof code === 'number' && UNSUPPORTED_PROTOCOL_VERSION.includes(code) ? shareUnsupported(o.mqttUrl, 'refused MQTT 5', e) : e;
    });
  }
  // Small QoS 1 packets both ways: without TCP_NODELAY, delayed ACKs stall each gateway's window refill
  // (~40 ms); see the measurement in edge-agent/src/publisher.ts.
  const noDelay = () => (client.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true);
  noDelay();
  client.on('connect', noDelay);
  client.on('message', (topic, payload) => o.onMessage(topic, payload));
  client.on('error', (e) => o.log('warn', 'mqtt error', { err: e.message }));
  client.on('offline', () => o.log('warn', 'mqtt offline', {}));
  const subscribe = async () => {
    const granted = await client.subscribeAsync(filter, { qos: 1 });
    const code = granted[0]?.qos as number | undefined; // MQTT 5: a reason code, 0-2 when granted
    if (share && code === SHARED_NOT_SUPPORTED) throw shareUnsupported(o.mqttUrl, 'refused the shared subscription (0x9E)');
    if (code === undefined || code > 2) throw new IngestError('INGEST_BROKER_REFUSED', `the broker refused the subscription to ${filter} (reason ${code})`, { where: { mqttUrl: o.mqttUrl, filter, reason: code } });
  };
  try {
    await subscribe();
  } catch (e) {
    await client.endAsync(true).catch(() => {});
    throw e;
  }
  if (share) {
    // Every reconnect, broker restart or not: mosquitto 2.0.11 forgets a saved shared subscription on restart.
    client.on('connect', () => {
      subscribe().then(
        () => o.log('info', 'subscribed again after reconnect', { filter }),
        (e: unknown) => o.log('error', 'subscribing again after reconnect failed', { filter, err: (e as Error).message, code: (e as { code?: string }).code }),
      );
    });
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

