/**
 * Test fixtures for ingest's suites (not exported from index.ts): an in-process aedes broker on 127.0.0.1, a
 * software P-256 signer, signed reading chains, and a gateway-side MQTT client that records acks and rejects.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { p256 } from '@noble/curves/nist.js';
import { Aedes } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import { keyIdOf, encodeReading, GENESIS_PREV, readingDigest, type Reading, toBase64Url } from '@stele/core';
import { parseConfirmation, signStatement, type ParsedConfirmation } from '@stele/core/cose';
import { decodeReject, encodeStatementMessage } from '@stele/core/wire';
import type { Signer } from '@stele/core';
import type { EnrolmentRecord } from '@stele/device';
import { ANVIL_DEV_PRIVATE_KEY, connectEvmAnchorer, startAnvil, type Anchorer, type AnvilNode } from './anchor/index.ts';
import { IngestService, type IngestOptions } from './service.ts';

export interface TestBroker {
  url: string;
  close(): Promise<void>;
}

export async function startBroker(): Promise<TestBroker> {
  const broker = await Aedes.createBroker();
  const server = net.createServer(broker.handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return {
    url,
    close: async () => {
      await new Promise<void>((r) => broker.close(() => r()));
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export async function tempDir(prefix: string): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `stele-${prefix}-`));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/** ES256 software signer over @noble (what device/src's SoftwareSigner does, without a key file). */
export function testSigner(secretKey: Uint8Array = p256.utils.randomSecretKey()): Signer & { secretKey: Uint8Array } {
  const publicKey = p256.getPublicKey(secretKey, false);
  return {
    algorithm: 'ES256',
    backend: 'software',
    keyId: keyIdOf(publicKey),
    publicKey,
    secretKey,
    sign: async (message: Uint8Array) => p256.sign(message, secretKey, { prehash: true, lowS: false }),
  };
}

export function enrolmentOf(signer: Signer, deviceId: string): EnrolmentRecord {
  return {
    deviceId,
    publicKey: toBase64Url(signer.publicKey),
    kid: toBase64Url(signer.keyId),
    keyBackend: signer.backend,
    enrolledAt: new Date(0).toISOString(),
    site: 'test stack',
  };
}

export interface SignedReading {
  seq: number;
  reading: Uint8Array;
  statement: Uint8Array;
  digest: Uint8Array;
}

export function readingAt(deviceId: string, seq: number, prev: Uint8Array, value = `${(seq * 1.7).toFixed(2)}`): Reading {
  return {
    v: 1,
    device: deviceId,
    sensor: 'cems-1',
    seq,
    prev,
    time: 1_700_000_000_000 + seq * 1000,
    clock: { synced: false, source: 'sim' },
    meas: [{ code: 'a21026', kind: 'Rtd', value, unit: 'mg/m3', flag: 'N' }],
    raw: [new Uint8Array(32).fill(seq & 0xff)],
  };
}

export async function signedReading(signer: Signer, reading: Reading): Promise<SignedReading> {
  const bytes = encodeReading(reading);
  return { seq: reading.seq, reading: bytes, statement: await signStatement(bytes, signer), digest: readingDigest(bytes) };
}

/** Readings seq from..from+n-1 of one device, chained from `prev`. */
export async function makeChain(signer: Signer, deviceId: string, n: number, from = 1, prev: Uint8Array = GENESIS_PREV): Promise<SignedReading[]> {
  const out: SignedReading[] = [];
  for (let seq = from; seq < from + n; seq++) {
    const r = await signedReading(signer, readingAt(deviceId, seq, prev));
    out.push(r);
    prev = r.digest;
  }
  return out;
}

export function envelope(r: { statement: Uint8Array; reading?: Uint8Array }, mode: 'full' | 'hash-only' = 'full'): Uint8Array {
  return encodeStatementMessage(mode === 'full' && r.reading !== undefined ? { statement: r.statement, reading: r.reading } : { statement: r.statement });
}

/** A gateway's side of the MQTT wire: publishes statements, records confirmations (parsed, not verified) and rejects. */
export class TestGateway {
  /** upTo of every `stored` confirmation. */
  acks: number[] = [];
  /** Every confirmation received, stored and anchored. */
  confirmations: ParsedConfirmation[] = [];
  /** Messages on the acks topic that are not confirmations (FORMAT.md §11.1). */
  badAcks = 0;
  rejects: { seq: number; code: string }[] = [];

  private constructor(
    readonly deviceId: string,
    private readonly client: MqttClient,
  ) {}

  static async connect(url: string, deviceId: string): Promise<TestGateway> {
    const client = await mqtt.connectAsync(url, { clientId: `gw-test-${deviceId}-${Math.random().toString(16).slice(2)}`, reconnectPeriod: 0 });
    const gw = new TestGateway(deviceId, client);
    client.on('message', (topic, payload) => {
      if (topic.endsWith('/acks')) {
        try {
          const c = parseConfirmation(new Uint8Array(payload));
          gw.confirmations.push(c);
          if (c.type === 'stored') gw.acks.push(c.upTo);
        } catch {
          gw.badAcks++;
        }
        return;
      }
      if (topic.endsWith('/rejects')) gw.rejects.push(decodeReject(new Uint8Array(payload)));
    });
    await client.subscribeAsync([`stele/v1/${deviceId}/acks`, `stele/v1/${deviceId}/rejects`], { qos: 1 });
    return gw;
  }

  get ackedUpTo(): number {
    return this.acks.length === 0 ? 0 : Math.max(...this.acks);
  }

  async publishRaw(payload: Uint8Array, topicDevice = this.deviceId): Promise<void> {
    await this.client.publishAsync(`stele/v1/${topicDevice}/statements`, Buffer.from(payload), { qos: 1 });
  }

  async publish(r: { statement: Uint8Array; reading?: Uint8Array }, mode: 'full' | 'hash-only' = 'full'): Promise<void> {
    await this.publishRaw(envelope(r, mode));
  }

  async close(): Promise<void> {
    await this.client.endAsync();
  }
}

export { waitFor } from '@stele/testkit';

/** One enrolled (or not) device talking to a running IngestService, as the service suites set it up. */
export interface IngestSetup {
  ingest: IngestService;
  gw: TestGateway;
  device: Signer;
  deviceId: string;
  ingestKey: Signer;
  dataDir: string;
  anchorer: Anchorer;
}

export interface IngestSetupOptions {
  deviceId: string;
  /** Prefix of the temp data dir made (and removed after the test) when `dataDir` is not given. */
  dirPrefix: string;
  /** Reuse this data dir (not removed). */
  dataDir?: string;
  /** Enrol the device's key at ingest. Default true. */
  enrol?: boolean;
  options?: Partial<IngestOptions>;
}

/** The broker, anvil node and per-test cleanups of a service suite; fields are set once beforeAll has run. */
export interface IngestStack {
  readonly broker: TestBroker;
  readonly anvil: AnvilNode;
  /** Run (last first) and emptied after each test. */
  readonly cleanups: (() => Promise<unknown>)[];
  /** A fresh SteleAnchor contract per call, so batch ids 1.. of each test's ingest log do not collide. */
  newAnchorer(): Promise<Anchorer>;
  /** An IngestService on the stack's broker (batches cut by flush()), stopped after the test. */
  startIngest(dataDir: string, ingestKey: Signer, anchorer: Anchorer): Promise<IngestService>;
  setup(o: IngestSetupOptions): Promise<IngestSetup>;
}

/**
 * Registers the suite hooks (call at module top level): an aedes broker and an anvil node (state under a temp dir
 * named by `chainPrefix`) for the whole file, cleanups after each test.
 */
export function useIngestStack(chainPrefix: string): IngestStack {
  let broker: TestBroker | undefined;
  let chainDir: Awaited<ReturnType<typeof tempDir>> | undefined;
  let anvil: AnvilNode | undefined;
  let contracts = 0;
  const cleanups: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    broker = await startBroker();
    chainDir = await tempDir(chainPrefix);
    anvil = await startAnvil({ stateDir: join(chainDir.path, 'anvil') });
  });

  afterAll(async () => {
    await anvil?.stop();
    await broker?.close();
    await chainDir?.remove();
  });

  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  const ready = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(`${what} not started (useIngestStack hooks have not run)`);
    return v;
  };

  const stack: IngestStack = {
    get broker() {
      return ready(broker, 'broker');
    },
    get anvil() {
      return ready(anvil, 'anvil');
    },
    cleanups,
    newAnchorer: () =>
      connectEvmAnchorer({
        rpcUrl: stack.anvil.rpcUrl,
        privateKey: ANVIL_DEV_PRIVATE_KEY,
        stateFile: join(ready(chainDir, 'chain dir').path, `contract-${++contracts}.json`),
      }),
    startIngest: (dataDir, ingestKey, anchorer) => startServiceOn(stack, { dataDir, signer: ingestKey, anchorer }),
    async setup({ deviceId, dirPrefix, dataDir, enrol = true, options = {} }) {
      let dir = dataDir;
      if (dir === undefined) {
        const made = await tempDir(dirPrefix);
        cleanups.push(() => made.remove());
        dir = made.path;
      }
      const anchorer = options.anchorer ?? (await stack.newAnchorer());
      const ingestKey = options.signer ?? testSigner();
      const ingest = await startServiceOn(stack, { ...options, dataDir: dir, signer: ingestKey, anchorer });
      const device = testSigner();
      if (enrol) await ingest.enrol(enrolmentOf(device, deviceId));
      const gw = await TestGateway.connect(stack.broker.url, deviceId);
      cleanups.push(() => gw.close());
      return { ingest, gw, device, deviceId, ingestKey, dataDir: dir, anchorer };
    },
  };
  return stack;
}

async function startServiceOn(
  stack: IngestStack,
  o: Partial<IngestOptions> & Pick<IngestOptions, 'dataDir' | 'signer' | 'anchorer'>,
): Promise<IngestService> {
  const ingest = await IngestService.start({
    mqttUrl: stack.broker.url,
    issuer: 'stele-ingest-test',
    batchIntervalMs: 60_000, // tests cut batches with flush()
    ...o,
  });
  stack.cleanups.push(() => ingest.stop());
  return ingest;
}
