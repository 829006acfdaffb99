/**
 * Broker reachability and authentication, as the agent would connect (same URL, credentials, TLS), under its
 * own client id so a running agent's session is not taken over. CONNACK codes and socket errors are mapped to
 * plain causes with the fix to try.
 */
import mqtt, { type IClientOptions } from 'mqtt';

export type BrokerCause =
  | 'ok'
  | 'bad-credentials'
  | 'not-authorised'
  | 'refused'
  | 'unreachable'
  | 'dns'
  | 'timeout'
  | 'tls'
  | 'protocol'
  | 'subscribe-denied'
  | 'error';

export interface BrokerCheck {
  cause: BrokerCause;
  message: string;
  fix?: string;
  /** CONNACK return code (3.1.1) or reason code (5), when the broker answered with one. */
  returnCode?: number;
}

/** MQTT 3.1.1 §3.2.2.3 connect return codes; MQTT 5 §3.2.2.2 reason codes. */
const CONNACK: Record<number, [BrokerCause, string]> = {
  1: ['protocol', 'the broker does not speak this MQTT version'],
  2: ['refused', 'the broker refused the client id'],
  3: ['refused', 'the broker service is unavailable'],
  4: ['bad-credentials', 'bad username or password'],
  5: ['not-authorised', 'not authorised to connect'],
  128: ['refused', 'unspecified error'],
  129: ['protocol', 'malformed packet'],
  130: ['protocol', 'protocol error'],
  132: ['protocol', 'unsupported protocol version'],
  133: ['refused', 'client identifier not valid'],
  134: ['bad-credentials', 'bad username or password'],
  135: ['not-authorised', 'not authorised'],
  136: ['refused', 'server unavailable'],
  137: ['refused', 'server busy'],
  138: ['not-authorised', 'banned'],
  140: ['bad-credentials', 'bad authentication method'],
};

export function explainBrokerError(err: unknown, url: string, username: string | undefined): BrokerCheck {
  const e = err as { code?: unknown; message?: unknown; reasonCode?: unknown };
  const rc = typeof e.code === 'number' ? e.code : typeof e.reasonCode === 'number' ? e.reasonCode : undefined;
  const msg = String(e.message ?? err);
  const host = safeHost(url);
  if (rc !== undefined && CONNACK[rc] !== undefined) {
    let [cause, text] = CONNACK[rc];
    // mosquitto 2 answers a wrong password with "not authorised" (5 / 135), not "bad username or password"
    // (measured: mosquitto 2.0.11, password_file, MQTT 3.1.1 and 5): with credentials given, that is the likely cause.
    if (cause === 'not-authorised' && username !== undefined && (rc === 5 || rc === 135)) {
      cause = 'bad-credentials';
      text = 'not authorised: wrong username or password (or the user is not allowed to connect)';
    }
    const fix =
      cause === 'bad-credentials'
        ? `the broker refused the credentials of ${username === undefined ? 'an anonymous client' : `user ${JSON.stringify(username)}`}: check broker.username and the password in broker.passwordFile (no extra spaces; one trailing newline is ignored), or ask the broker operator`
        : cause === 'not-authorised'
          ? `the broker knows ${username === undefined ? 'this client' : `user ${JSON.stringify(username)}`} but does not let it connect: ask the broker operator to allow it (ACL), or check the client certificate`
          : cause === 'protocol'
            ? 'set broker.protocolVersion to the version the broker speaks (4 = MQTT 3.1.1, 5)'
            : 'ask the broker operator; try again later';
    return { cause, message: `broker ${host} refused the connection: ${text} (CONNACK ${rc})`, fix, returnCode: rc };
  }
  const code = String(e.code ?? '');
  if (code === 'ECONNREFUSED') return { cause: 'unreachable', message: `nothing listens at ${host}`, fix: 'check broker.url (host and port) and that the broker runs; a firewall may reject the port' };
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return { cause: 'dns', message: `cannot resolve ${host}`, fix: 'check the host name in broker.url and the gateway DNS (`resolvectl status`)' };
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return { cause: 'unreachable', message: `no route to ${host}`, fix: 'check the gateway network (cable, SIM/APN, Wi-Fi) and `ip route`' };
  if (code === 'ECONNRESET') return { cause: 'refused', message: `${host} closed the connection`, fix: 'a TLS port spoken to without TLS (mqtt:// vs mqtts://), or a broker limit; check broker.url' };
  if (/CERT|SSL|TLS|self[- ]signed|certificate/i.test(`${code} ${msg}`)) {
    return { cause: 'tls', message: `TLS with ${host} failed: ${msg}`, fix: 'check broker.tls.ca (the CA that signed the broker), the gateway clock (certificates have dates), and the host name in broker.url' };
  }
  if (/timeout|timed out/i.test(msg)) return { cause: 'timeout', message: `no answer from ${host}`, fix: 'a firewall may drop the traffic, or the port is wrong; check broker.url' };
  return { cause: 'error', message: `cannot connect to ${host}: ${msg}`, fix: 'check broker.url' };
}

function safeHost(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`; // never print credentials embedded in a URL
  } catch {
    return url;
  }
}

export interface CheckBrokerOptions {
  url: string;
  mqttOptions: IClientOptions;
  clientId: string;
  protocolVersion: 4 | 5;
  /** Topic to subscribe to, to check authorisation (the agent's acks topic). */
  subscribeTopic?: string;
  timeoutMs?: number;
}

export async function checkBroker(o: CheckBrokerOptions): Promise<BrokerCheck> {
  const timeoutMs = o.timeoutMs ?? 5000;
  const username = o.mqttOptions.username;
  const client = mqtt.connect(o.url, {
    ...o.mqttOptions,
    clientId: o.clientId,
    protocolVersion: o.protocolVersion,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: timeoutMs,
  });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('connect timeout')), timeoutMs + 500);
      client.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
      client.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      client.once('close', () => {
        clearTimeout(timer);
        reject(new Error('connection closed before CONNACK (timeout)'));
      });
    });
  } catch (err) {
    client.end(true);
    return explainBrokerError(err, o.url, username);
  }
  try {
    if (o.subscribeTopic !== undefined) {
      const granted = await Promise.race([
        client.subscribeAsync(o.subscribeTopic, { qos: 1 }),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('subscribe timeout')), timeoutMs).unref()),
      ]);
      const qos = granted[0]?.qos;
      if (qos === undefined || qos >= 128) {
        return {
          cause: 'subscribe-denied',
          message: `connected, but the broker does not let ${username === undefined ? 'this client' : `user ${JSON.stringify(username)}`} subscribe to ${o.subscribeTopic}`,
          fix: 'ask the broker operator to allow the gateway its topics: publish stele/v1/<id>/statements and /health, subscribe stele/v1/<id>/acks and /rejects',
        };
      }
    }
    return { cause: 'ok', message: `connected to ${safeHost(o.url)}${username === undefined ? '' : ` as ${username}`}` };
  } catch (err) {
    return explainBrokerError(err, o.url, username);
  } finally {
    await Promise.race([client.endAsync(false).catch(() => undefined), new Promise((r) => setTimeout(r, 1000).unref())]);
    client.end(true);
  }
}
