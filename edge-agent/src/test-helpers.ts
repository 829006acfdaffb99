/**
 * Test helpers for edge-agent suites: acquired items, an in-process aedes broker that can be restarted on the
 * same port, and a fake ingest (a plain MQTT client that acknowledges contiguous seqs). Not exported from index.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { waitFor as waitForCondition } from '@stele/testkit';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import { sha256, utf8 } from '@stele/core';
import { decodeStatementMessage, encodeReject } from '@stele/core/wire';
import { parseStatement, signConfirmation, type ConfirmationType } from '@stele/core/cose';
import { createTestSigner } from '@stele/core/testing';
import type { Signer } from '@stele/core';
import { createSoftwareKey, type SoftwareSigner } from '@stele/device';
import { afterEach, beforeEach } from 'vitest';
import { Outbox, type Acquired } from './outbox.ts';

export function acquired(i: number, sensor = 'sensor-a'): Acquired {
  return {
    sensor,
    time: 1_790_000_000_000 + i * 1000,
    clock: { synced: true, source: 'ntp' },
    meas: [{ code: 'a21026', kind: 'Rtd', value: `${(i % 100) + 0.5}`, unit: 'mg/m3', flag: 'N' }],
    raw: [sha256(utf8(`frame ${i}`))],
  };
}

export interface TestBroker {
  url: string;
  port: number;
  /** Closes the broker and its listener (clients see the connection drop). */
  close(): Promise<void>;
  /** Starts a fresh broker on the same port (no sessions survive, as after a real broker restart). */
  restart(): Promise<void>;
}

/** `noDelay: false` keeps Nagle on the broker's sockets, so small packets coalesce (as on a loaded link). */
export async function startBroker(options: { noDelay?: boolean } = {}): Promise<TestBroker> {
  let broker: Aedes;
  let server: net.Server;
  let port = 0;
  const listen = async () => {
    broker = await Aedes.createBroker();
    server = net.createServer({ noDelay: options.noDelay ?? true }, broker.handle);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    port = (server.address() as net.AddressInfo).port;
  };
  let running = false;
  const close = async () => {
    if (!running) return;
    running = false;
    await new Promise<void>((r) => broker.close(() => r()));
    await new Promise<void>((r) => server.close(() => r()));
  };
  await listen();
  running = true;
  return {
    get url() {
      return `mqtt://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    close,
    async restart() {
      await close();
      await listen();
      running = true;
    },
  };
}

/**
 * The ingest key of the tests: the fake ingest signs its confirmations (FORMAT.md §11.1) with it, and test
 * publishers pin its public key (`ingestKey: TEST_INGEST.publicKey`).
 */
export const TEST_INGEST: Signer = createTestSigner();

/** A signed confirmation of `device`'s chain up to `upTo` with head digest `head` (FORMAT.md §11.1). */
export function confirmation(device: string, upTo: number, head: Uint8Array, options: { signer?: Signer; type?: ConfirmationType } = {}): Promise<Buffer> {
  return signConfirmation({ type: options.type ?? 'stored', device, upTo, head, issuedAt: Math.floor(Date.now() / 1000) }, options.signer ?? TEST_INGEST).then((b) => Buffer.from(b));
}

export interface FakeIngest {
  /** Every statement seq received, in arrival order (duplicates included). */
  received: number[];
  /** Every payload's fields received, in arrival order. */
  payloads: { seq: number; hasReading: boolean }[];
  /** Highest seq such that 1..seq were all received. */
  committed(): number;
  /** Head digest of `seq` as received (the statement payload). */
  digestOf(seq: number): Uint8Array | undefined;
  /** Publishes a reject for `seq`. */
  reject(seq: number, code: string): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A plain MQTT subscriber standing in for ingest: commits contiguous seqs and, unless `ack` is false, publishes
 * a confirmation of `upTo` signed by `signer` (default TEST_INGEST) after every statement (also for duplicates, as ingest does); statements ahead of a gap wait for it.
 * With `ackBurst: k`, acks are held until k more statements arrived (or 50 ms passed), then sent one per seq in
 * the same tick. Reconnects every 100 ms while running.
 */
export async function startFakeIngest(url: string, deviceId: string, options: { ack?: boolean; committed?: number; ackBurst?: number; signer?: Signer; mqttOptions?: mqtt.IClientOptions } = {},
): Promise<FakeIngest> {
  const ack = options.ack ?? true;
  const received: number[] = [];
  const payloads: FakeIngest['payloads'] = [];
  let committed = options.committed ?? 0; // what this ingest already has from an earlier run
  const seen = new Set<number>();
  let acksSent = committed;
  let flushTimer: NodeJS.Timeout | undefined;
  const digests = new Map<number, Uint8Array>();
  // confirmations are signed asynchronously; one chain keeps them in order
  let sending: Promise<void> = Promise.resolve();
  const sendAck = (upTo: number) => {
    const head = digests.get(upTo);
    if (head === undefined) return;
    sending = sending
      .then(() => confirmation(deviceId, upTo, head, options.signer === undefined ? {} : { signer: options.signer }))
      .then((bytes) => void client.publish(`stele/v1/${deviceId}/acks`, bytes, { qos: 1 }))
      .catch(() => undefined);
  };
  const flushAcks = () => {
    for (let upTo = acksSent + 1; upTo <= committed; upTo++) sendAck(upTo);
    acksSent = committed;
  };
  const client: MqttClient = await mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 100, clientId: `fake-ingest-${deviceId}`, ...options.mqttOptions });
  client.on('error', () => undefined);
  const noDelay = () => (client.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
  noDelay();
  client.on('connect', noDelay);
  client.on('message', (topic, payload) => {
    if (!topic.endsWith('/statements')) return;
    const message = decodeStatementMessage(new Uint8Array(payload));
    const statement = parseStatement(message.statement);
    received.push(statement.seq);
    digests.set(statement.seq, statement.payload);
    payloads.push({ seq: statement.seq, hasReading: message.reading !== undefined });
    seen.add(statement.seq);
    while (seen.has(committed + 1)) committed++;
    if (!ack || committed === 0) return;
    if (options.ackBurst === undefined) {
      sendAck(committed);
    } else {
      clearTimeout(flushTimer);
      if (received.length % options.ackBurst === 0) flushAcks();
      else flushTimer = setTimeout(flushAcks, 50); // the tail that does not fill a burst
    }
  });
  await client.subscribeAsync(`stele/v1/${deviceId}/statements`, { qos: 1 });
  return {
    received,
    payloads,
    committed: () => committed,
    digestOf: (seq) => digests.get(seq),
    async reject(seq, code) {
      await client.publishAsync(`stele/v1/${deviceId}/rejects`, Buffer.from(encodeReject({ seq, code })), { qos: 1 });
    },
    async stop() {
      clearTimeout(flushTimer);
      await sending;
      await client.endAsync(true);
    },
  };
}

/**
 * @deprecated The edge-agent suites' old argument order; new code calls `waitFor(condition, what, timeoutMs)` from
 * @stele/testkit. Kept so the ~50 call sites move in one mechanical change after the parallel branches merge.
 */
export function waitFor(condition: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  return waitForCondition(condition, what, timeoutMs);
}

export { sleep } from '@stele/core';

/** Software ES256 keys, one per file name, made in a temp dir (`prefix` + random) that is removed once they are loaded. */
async function createTestKeys(prefix: string, files: readonly string[]): Promise<SoftwareSigner[]> {
  const keyDir = await mkdtemp(join(tmpdir(), prefix));
  const keys: SoftwareSigner[] = [];
  for (const f of files) keys.push(await createSoftwareKey(join(keyDir, f)));
  await rm(keyDir, { recursive: true, force: true });
  return keys;
}

export async function createTestKey(prefix: string): Promise<SoftwareSigner> {
  const [k] = await createTestKeys(prefix, ['k.pem']);
  return k!;
}

export async function createTestKeyPair(prefix: string): Promise<[SoftwareSigner, SoftwareSigner]> {
  const [a, b] = await createTestKeys(prefix, ['k.pem', 'k2.pem']);
  return [a!, b!];
}

/** A fresh temp dir per test (`prefix` + random); outboxes opened in it are closed and the dir removed after each test. */
export interface OutboxDir {
  readonly dir: string;
  /** Outboxes still to close after the test (a test that closes one itself empties this). */
  readonly open: Outbox[];
  /** Opens (or reopens) the outbox at `<dir>/db`. */
  openOutbox(): Promise<Outbox>;
}

export function useOutboxDir(prefix: string): OutboxDir {
  let dir: string | undefined;
  const open: Outbox[] = [];
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), prefix));
  });
  afterEach(async () => {
    for (const o of open.splice(0)) await o.close();
    await rm(dir!, { recursive: true, force: true });
  });
  const env: OutboxDir = {
    get dir() {
      if (dir === undefined) throw new Error('useOutboxDir: no test is running');
      return dir;
    },
    open,
    async openOutbox() {
      const o = await Outbox.open(join(env.dir, 'db'));
      open.push(o);
      return o;
    },
  };
  return env;
}

/**
 * Per test: a temp dir (`prefix` + random), a broker and an outbox at `<dir>/outbox`. After each test the cleanups
 * run (last first), then the outbox and the current `broker` (a test may replace it) are closed and the dir removed.
 */
export interface BrokerOutbox {
  dir: string;
  broker: TestBroker;
  outbox: Outbox;
  readonly cleanups: (() => Promise<void>)[];
}

export function useBrokerOutbox(prefix: string): BrokerOutbox {
  const env = { cleanups: [] as (() => Promise<void>)[] } as BrokerOutbox;
  beforeEach(async () => {
    env.dir = await mkdtemp(join(tmpdir(), prefix));
    env.broker = await startBroker();
    env.outbox = await Outbox.open(join(env.dir, 'outbox'));
  });
  afterEach(async () => {
    for (const c of env.cleanups.splice(0).reverse()) await c();
    await env.outbox.close();
    await env.broker.close();
    await rm(env.dir, { recursive: true, force: true });
  });
  return env;
}

/** Captures a CLI's stdout and stderr (stdin is the process's). */
export function collect() {
  let out = '';
  let err = '';
  return {
    io: { stdin: process.stdin, stdout: { write: (s: string) => ((out += s), true) }, stderr: { write: (s: string) => ((err += s), true) } } as never,
    out: () => out,
    err: () => err,
  };
}
