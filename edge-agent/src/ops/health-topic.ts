/**
 * The gateway's health on MQTT: `stele/v1/<device>/health`, retained, JSON (operational, not evidence, so
 * readable with mosquitto_sub): `{"state":"ok"|"warn"|"alarm"|"offline","problems":[...],"disk":{...},
 * "clock":{...},"outbox":{...},"at":ms}`. Published on every change and every `publishEveryMs`; the broker
 * publishes `{"state":"offline"}` (last will) when the gateway vanishes.
 *
 * Its own client (id `<clientId>-health`): the publisher's connection carries evidence and is not shared.
 * mqtt.js's own reconnect is fine here: only the latest health matters, nothing is queued while offline.
 */
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { toLogFn, type Logger } from '../log.ts';
import type { GatewayStatus } from './status.ts';
import { evidenceProblems } from './status.ts';
import { deviceTopic } from '@stele/core/wire';

export type HealthState = 'ok' | 'warn' | 'alarm' | 'offline';

export function healthTopic(deviceId: string): string {
  return deviceTopic(deviceId, 'health');
}

export function healthOf(s: GatewayStatus): { state: HealthState; problems: string[] } {
  // alarm exactly when /healthz is 503 for a reason other than the agent's own state
  const alarm = evidenceProblems(s).length > 0;
  return { state: alarm ? 'alarm' : s.problems.length > 0 ? 'warn' : 'ok', problems: s.problems };
}

export function healthMessage(s: GatewayStatus): Record<string, unknown> {
  return {
    ...healthOf(s),
    device: s.deviceId,
    at: s.now,
    disk: { level: s.disk.level, freeBytes: s.disk.freeBytes, refused: s.disk.refused },
    clock: { synced: s.clock.synced, reason: s.clock.reason },
    outbox: s.outbox,
    instruments: Object.fromEntries(s.instruments.map((i) => [i.id, { state: i.state, lastReadingAt: i.lastReadingAt }])),
  };
}

export interface HealthPublisherOptions {
  url: string;
  deviceId: string;
  clientId: string;
  mqttOptions: IClientOptions;
  protocolVersion: 4 | 5;
  status: () => GatewayStatus;
  publishEveryMs: number;
  log?: Logger;
}

export class HealthPublisher {
  readonly #o: HealthPublisherOptions;
  readonly #topic: string;
  readonly #log;
  #client: MqttClient | undefined;
  #timer: NodeJS.Timeout | undefined;
  #lastKey: string | undefined;

  constructor(options: HealthPublisherOptions) {
    this.#o = options;
    this.#topic = healthTopic(options.deviceId);
    this.#log = toLogFn(options.log);
  }

  start(): void {
    if (this.#client !== undefined) return;
    const client = mqtt.connect(this.#o.url, {
      ...this.#o.mqttOptions,
      clientId: this.#o.clientId,
      protocolVersion: this.#o.protocolVersion,
      clean: true,
      reconnectPeriod: 5000,
      connectTimeout: 10_000,
      queueQoSZero: false,
      writeCache: false, // as the publisher's client: no 65,536-Buffer number cache
      will: { topic: this.#topic, payload: Buffer.from(JSON.stringify({ state: 'offline', device: this.#o.deviceId })), qos: 1, retain: true },
    });
    client.on('error', (err) => this.#log('debug', 'health topic connection error', { err: err.message }));
    client.on('connect', () => this.publish(true));
    this.#client = client;
    this.#timer = setInterval(() => this.publish(true), this.#o.publishEveryMs);
    this.#timer.unref();
  }

  /** Publishes when the state or problems changed (or `force`), and only while connected. */
  publish(force = false): void {
    const client = this.#client;
    if (client === undefined || !client.connected) return;
    const s = this.#o.status();
    const msg = healthMessage(s);
    const key = JSON.stringify([msg.state, msg.problems]);
    if (!force && key === this.#lastKey) return;
    this.#lastKey = key;
    client.publish(this.#topic, JSON.stringify(msg), { qos: 1, retain: true }, (err) => {
      if (err) this.#log('debug', 'health not published', { err: err.message });
    });
  }

  /** Publishes `offline` (a clean stop does not fire the will) and disconnects, bounded. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    const client = this.#client;
    this.#client = undefined;
    if (client === undefined) return;
    if (client.connected) {
      await Promise.race([
        client.publishAsync(this.#topic, JSON.stringify({ state: 'offline', device: this.#o.deviceId, at: Date.now() }), { qos: 1, retain: true }).catch(() => undefined),
        new Promise((r) => setTimeout(r, 1000).unref()),
      ]);
      await Promise.race([client.endAsync(false).catch(() => undefined), new Promise((r) => setTimeout(r, 1000).unref())]);
    }
    client.end(true);
  }
}
