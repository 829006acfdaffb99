/**
 * Anchoring across workers (issue #11 item 3) on one PostgreSQL store and a real anvil: a worker that dies after
 * saving its signed transaction and before (or while) broadcasting it leaves the job leased; once the lease ends
 * another worker takes it over and sends the saved bytes again, byte for byte: one transaction for the batch, the
 * nonce from the store, the anchor final under the saved hash. Two live workers driving the same batches never
 * sign a batch twice.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { utf8, sha256 } from '@stele/core';
import { createPublicClient, http, type Address } from 'viem';
import { PostgresStore } from '../store/postgres/postgres-store.ts';
import { createTestDatabase, postgresAvailable } from '../store/postgres/test-database.ts';
import type { IngestStore, SealedBatch } from '../store/index.ts';
import { startAnvil, type AnvilNode } from './anvil.ts';
import { AnchorDriver } from './driver.ts';
import { ANVIL_DEV_PRIVATE_KEY, connectEvmAnchorer, type EvmAnchorer } from './evm-anchorer.ts';
import type { AnchorJob } from './machine.ts';

const pg = await postgresAvailable();
const ACCOUNT: Address = '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266';

const build = async (batchId: number, leaves: readonly { leafHash: Uint8Array }[]): Promise<SealedBatch> => ({
  batchId,
  size: leaves.length,
  root: sha256(utf8(`root ${batchId}`)),
  leafHashes: leaves.map((l) => l.leafHash),
  protectedBytes: utf8(`protected ${batchId}`),
  signature: new Uint8Array(64).fill(1),
  createdAt: Date.now(),
});

describe.skipIf(!pg.ok)(`anchoring across workers on PostgreSQL and anvil${pg.ok ? '' : ` (skipped: ${pg.reason})`}`, () => {
  let dir: string;
  let node: AnvilNode;
  let anchorer: EvmAnchorer;
  const stores: IngestStore[] = [];
  let dropDb: () => Promise<void>;
  let url: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stele-anchor-workers-'));
    node = await startAnvil({ stateDir: join(dir, 'chain') });
    anchorer = await connectEvmAnchorer({ rpcUrl: node.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY, stateFile: join(dir, 'anchorer.json') });
    const db = await createTestDatabase();
    dropDb = () => db.drop();
    url = db.url;
  }, 90_000);

  afterAll(async () => {
    for (const s of stores) await s.close().catch(() => {});
    await dropDb?.();
    await node?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const open = async () => {
    const s = await PostgresStore.open(url);
    stores.push(s);
    return s;
  };
  const driver = (store: IngestStore, worker: string, a: EvmAnchorer = anchorer, finals: number[] = []) =>
    new AnchorDriver({ store, anchorer: a, confirmations: 1, stuckMs: 60_000, log: () => {}, onFinal: async (row) => void finals.push(row.batchId), worker, leaseMs: 1000 });

  it('a worker killed after saving its signed transaction: another sends the same bytes once the lease ends', async () => {
    const [s1, s2] = [await open(), await open()];
    await s1.commit('gw-1', [{ seq: 1, entry: { statement: utf8('s1'), receivedAt: 1 }, leafHash: sha256(utf8('s1')) }], { seq: 1, digest: new Uint8Array(32) });
    const batch = (await s1.sealBatch(10, build))!;
    const client = createPublicClient({ transport: http(node.rpcUrl) });
    const before = await client.getTransactionCount({ address: ACCOUNT, blockTag: 'pending' });

    // Worker 1 dies the moment it would broadcast: the job is saved as signed, with its raw bytes and nonce.
    const dying: EvmAnchorer = {
      ...anchorer,
      staged: {
        ...anchorer.staged!,
        broadcast: () => Promise.reject(new Error('SIGKILL')),
      },
    };
    await driver(s1, 'worker-1', dying).drive();
    const saved = (await s2.getAnchorJob<AnchorJob>(batch.batchId))!;
    expect(saved).toMatchObject({ state: 'signed', nonce: before });
    expect(saved.raw).toMatch(/^0x/);
    expect(await s2.getLastAnchorNonce(ACCOUNT)).toBe(before);

    // Worker 2 cannot take it while worker 1's lease holds, then does, and sends the saved bytes.
    const sentRaw: string[] = [];
    const watching: EvmAnchorer = {
      ...anchorer,
      staged: {
        ...anchorer.staged!,
        broadcast: (raw, ...rest) => (sentRaw.push(raw), anchorer.staged!.broadcast(raw, ...rest)),
        prepare: () => Promise.reject(new Error('worker 2 must not sign again')),
      },
    };
    const finals: number[] = [];
    const d2 = driver(s2, 'worker-2', watching, finals);
    await d2.drive();
    expect(sentRaw).toEqual([]); // still worker 1's
    const deadline = Date.now() + 20_000;
    while (finals.length === 0 && Date.now() < deadline) await d2.drive();
    expect(finals).toEqual([batch.batchId]);
    expect(sentRaw[0]).toBe(saved.raw); // byte for byte
    const row = (await s1.getBatch(batch.batchId))!;
    expect(row.anchor?.txHash).toBe(saved.txHash);
    expect(await client.getTransactionCount({ address: ACCOUNT, blockTag: 'latest' })).toBe(before + 1);
  }, 60_000);

  it('two live workers driving the same batches anchor each once, one transaction each', async () => {
    const [s1, s2] = [await open(), await open()];
    const client = createPublicClient({ transport: http(node.rpcUrl) });
    const before = await client.getTransactionCount({ address: ACCOUNT, blockTag: 'latest' });
    for (let i = 0; i < 6; i++) {
      await s1.commit(`gw-x${i}`, [{ seq: 1, entry: { statement: utf8(`x${i}`), receivedAt: 1 }, leafHash: sha256(utf8(`x${i}`)) }], { seq: 1, digest: new Uint8Array(32) });
      await s1.sealBatch(1, build);
    }
    const finals: number[] = [];
    const [d1, d2] = [driver(s1, 'worker-a', anchorer, finals), driver(s2, 'worker-b', anchorer, finals)];
    const deadline = Date.now() + 30_000;
    while ((await s1.listUnanchoredIds()).length > 0 && Date.now() < deadline) await Promise.all([d1.drive(), d2.drive()]);
    expect(await s1.listUnanchoredIds()).toEqual([]);
    expect(new Set(finals).size).toBe(finals.length);
    expect(await client.getTransactionCount({ address: ACCOUNT, blockTag: 'latest' })).toBe(before + 6);
  }, 90_000);
});
