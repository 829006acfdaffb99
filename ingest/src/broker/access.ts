/**
 * Who may do what on the broker (issue #8; docs/broker.md). One policy, stated once, enforced by the embedded
 * aedes through its hooks ({@link aedesAccessHooks}) and shipped for mosquitto as a password file + ACL template
 * (ingest/broker/mosquitto/) with the same rules:
 *
 *   gateway <device>  publish   stele/v1/<device>/statements, stele/v1/<device>/health
 *                     subscribe stele/v1/<device>/acks, stele/v1/<device>/rejects
 *   ingest            publish   stele/v1/+/acks, stele/v1/+/rejects, stele/v1/alerts (its alert client)
 *                     subscribe stele/v1/+/statements, stele/v1/+/health
 *   operator          subscribe stele/v1/+/health, stele/v1/alerts (dashboards, SMS and e-mail gateways)
 *   anyone else       refused at CONNECT (no anonymous clients)
 *
 * So a gateway cannot speak for another device, cannot read statements (its own or others'), cannot forge
 * confirmations or rejects; only ingest reads statements. A gateway's client id must be `stele-gw-<device>` or
 * start with `stele-gw-<device>-` (its health client), so one gateway cannot take over another's session.
 *
 * Passwords are compared as scrypt hashes in constant time; they are never logged.
 */
import { randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import { ALERTS_TOPIC, deviceTopic, everyDeviceFilter, gatewayClientId, GATEWAY_CLIENT_ID_PREFIX, parseDeviceTopic, type TopicKind } from '@stele/core/wire';

export type BrokerRole = { kind: 'gateway'; device: string } | { kind: 'ingest' } | { kind: 'operator' };

export interface BrokerUser {
  username: string;
  /** The password in clear (hashed at once, not kept). */
  password: string;
  role: BrokerRole;
}

/** One topic level that is a usable device id (FORMAT.md §2.2): no wildcard, no separator, no control character. */
function deviceLevel(topic: string, kind: TopicKind): string | undefined {
  const t = parseDeviceTopic(topic);
  return t !== undefined && t.kind === kind && !/[+#\u0000-\u001f\u007f]/.test(t.device) ? t.device : undefined;
}

/** May `role` publish on `topic`? (Exact topics only: a publish never carries a wildcard.) */
export function mayPublish(role: BrokerRole, topic: string): boolean {
  switch (role.kind) {
    case 'gateway':
      return topic === deviceTopic(role.device, 'statements') || topic === deviceTopic(role.device, 'health');
    case 'ingest':
      return topic === ALERTS_TOPIC || deviceLevel(topic, 'acks') !== undefined || deviceLevel(topic, 'rejects') !== undefined;
    case 'operator':
      return false;
  }
}

/** May `role` subscribe to `filter`? Filters are compared as text: a wider filter than allowed is refused. */
export function maySubscribe(role: BrokerRole, filter: string): boolean {
  switch (role.kind) {
    case 'gateway':
      return filter === deviceTopic(role.device, 'acks') || filter === deviceTopic(role.device, 'rejects');
    case 'ingest':
      return filter === everyDeviceFilter('statements') || filter === everyDeviceFilter('health') || deviceLevel(filter, 'statements') !== undefined || deviceLevel(filter, 'health') !== undefined;
    case 'operator':
      return filter === ALERTS_TOPIC || filter === everyDeviceFilter('health') || deviceLevel(filter, 'health') !== undefined;
  }
}

/** May a client of `role` use this client id? */
export function mayUseClientId(role: BrokerRole, clientId: string): boolean {
  if (role.kind !== 'gateway') return !clientId.startsWith(GATEWAY_CLIENT_ID_PREFIX);
  const own = gatewayClientId(role.device);
  return clientId === own || clientId.startsWith(`${own}-`);
}

interface HashedUser {
  salt: Buffer;
  hash: Buffer;
  role: BrokerRole;
}

const SCRYPT_KEYLEN = 32;

/** The users of one broker, passwords held as scrypt hashes. */
export class BrokerAccess {
  readonly #users = new Map<string, HashedUser>();
  /** Refusals by kind, for tests and metrics. */
  readonly refused = { connect: 0, publish: 0, subscribe: 0 };

  constructor(users: readonly BrokerUser[]) {
    for (const u of users) {
      if (typeof u.username !== 'string' || u.username === '') throw new TypeError('username must be a non-empty string');
      if (typeof u.password !== 'string' || u.password.length < 16) throw new RangeError(`password of ${u.username} must have at least 16 characters`);
      if (this.#users.has(u.username)) throw new RangeError(`duplicate broker user ${u.username}`);
      if (u.role.kind === 'gateway' && deviceLevel(deviceTopic(u.role.device, 'acks'), 'acks') !== u.role.device) throw new RangeError(`not a usable device id: ${u.role.device}`);
      const salt = randomBytes(16);
      this.#users.set(u.username, { salt, hash: scryptSync(u.password, salt, SCRYPT_KEYLEN), role: u.role });
    }
  }

  /** The role of a client presenting these credentials, or undefined (unknown user, wrong password, none). */
  authenticate(username: string | undefined, password: Uint8Array | undefined): BrokerRole | undefined {
    if (username === undefined || password === undefined) return undefined;
    const u = this.#users.get(username);
    // hash even for an unknown user, so timing does not tell which usernames exist
    const salt = u?.salt ?? Buffer.alloc(16);
    const got = scryptSync(Buffer.from(password.buffer, password.byteOffset, password.byteLength), salt, SCRYPT_KEYLEN);
    if (u === undefined || !timingSafeEqual(got, u.hash)) return undefined;
    return u.role;
  }
}

/** Error aedes sends as CONNACK return code 5 (not authorised) or 4 (bad user name or password). */
function authError(returnCode: 4 | 5, message: string): Error & { returnCode: number } {
  return Object.assign(new Error(message), { returnCode });
}

/** The part of an aedes client the hooks read (structural: ingest does not depend on aedes). */
interface AedesClientLike {
  id: string;
}

const ROLE = Symbol('stele.brokerRole');
type WithRole = AedesClientLike & { [ROLE]?: BrokerRole };

/**
 * aedes `authenticate`, `authorizePublish` and `authorizeSubscribe` hooks enforcing the policy above:
 * `Aedes.createBroker({ ...aedesAccessHooks(access) })`. A refused publish is dropped (MQTT 3.1.1 has no
 * negative PUBACK; aedes closes the connection of a client whose publish it refuses); a refused subscription
 * is answered with the failure return code 0x80.
 */
export function aedesAccessHooks(access: BrokerAccess, log?: (event: string, fields: Record<string, unknown>) => void) {
  return {
    authenticate(client: AedesClientLike, username: string | undefined, password: Buffer | undefined, done: (err: (Error & { returnCode: number }) | null, ok: boolean | null) => void): void {
      const role = access.authenticate(username, password);
      if (role === undefined) {
        access.refused.connect++;
        log?.('broker refused a connection', { clientId: client.id, username: username ?? null, reason: 'credentials' });
        done(authError(4, 'bad user name or password'), false);
        return;
      }
      if (!mayUseClientId(role, client.id)) {
        access.refused.connect++;
        log?.('broker refused a connection', { clientId: client.id, username, reason: 'client id' });
        done(authError(5, 'client id not allowed for this user'), false);
        return;
      }
      (client as WithRole)[ROLE] = role;
      done(null, true);
    },
    authorizePublish(client: AedesClientLike | null, packet: { topic: string }, done: (err?: Error | null) => void): void {
      // client null: a message the broker itself publishes ($SYS); allowed
      const role = client === null ? undefined : (client as WithRole)[ROLE];
      if (client !== null && (role === undefined || !mayPublish(role, packet.topic))) {
        access.refused.publish++;
        log?.('broker refused a publish', { clientId: client.id, topic: packet.topic });
        done(new Error('publish not allowed'));
        return;
      }
      done(null);
    },
    authorizeSubscribe<S extends { topic: string }>(client: AedesClientLike, sub: S, done: (err: Error | null, sub?: S | null) => void): void {
      const role = (client as WithRole)[ROLE];
      if (role === undefined || !maySubscribe(role, sub.topic)) {
        access.refused.subscribe++;
        log?.('broker refused a subscription', { clientId: client.id, topic: sub.topic });
        done(null, null); // SUBACK failure (0x80) for this filter
        return;
      }
      done(null, sub);
    },
  };
}
