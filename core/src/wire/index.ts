/**
 * The MQTT wire contract (FORMAT.md §11), once for the gateway, ingest and the broker policy: the topic of each
 * message kind per device, the filters ingest and operators subscribe to, the gateways' client ids, and the payload
 * codecs (messages.ts: the statement message and the reject; the acks payload is the signed confirmation of
 * `@stele/core/cose`). `@stele/core/wire`.
 */
export * from './messages.ts';

/** Every Stele topic starts with this (FORMAT.md §11: `stele/v1/<device>/<kind>`). */
export const TOPIC_PREFIX = 'stele/v1/';

/** The message kinds, the last topic level (FORMAT.md §11 table). */
export const TOPIC_KINDS = ['statements', 'acks', 'rejects', 'health'] as const;
export type TopicKind = (typeof TOPIC_KINDS)[number];

/** `stele/v1/<device>/<kind>`. `device` is one topic level: a device id that passed `checkDeviceId` (§2.2). */
export function deviceTopic(device: string, kind: TopicKind): string {
  return `${TOPIC_PREFIX}${device}/${kind}`;
}

/** `stele/v1/+/<kind>`: one kind from every device (ingest: statements; operators: health). */
export function everyDeviceFilter(kind: TopicKind): string {
  return `${TOPIC_PREFIX}+/${kind}`;
}

/**
 * The device level and kind of a Stele topic: exactly four levels, the prefix, a non-empty device level and a known
 * kind (FORMAT.md §11: any other topic is ignored). Topic text is untrusted (it comes from the broker); undefined
 * for anything else. The device level is not checked further: that is the receiver's (ingest rejects by code).
 */
export function parseDeviceTopic(topic: string): { device: string; kind: TopicKind } | undefined {
  if (!topic.startsWith(TOPIC_PREFIX)) return undefined;
  const parts = topic.slice(TOPIC_PREFIX.length).split('/');
  if (parts.length !== 2) return undefined;
  const [device, kind] = parts as [string, string];
  if (device === '') return undefined;
  return (TOPIC_KINDS as readonly string[]).includes(kind) ? { device, kind: kind as TopicKind } : undefined;
}

/** Client ids of this prefix belong to gateways (FORMAT.md §11; the broker policy keeps them for gateways). */
export const GATEWAY_CLIENT_ID_PREFIX = 'stele-gw-';

/** A gateway's default client id, `stele-gw-<device>`. */
export function gatewayClientId(device: string): string {
  return `${GATEWAY_CLIENT_ID_PREFIX}${device}`;
}

/**
 * The alert notices topic (FORMAT.md §15.9): ingest alone publishes there (QoS 1, not retained), operators'
 * dashboards and SMS/e-mail gateways subscribe. Three levels, so it never parses as a device topic.
 */
export const ALERTS_TOPIC = `${TOPIC_PREFIX}alerts`;
