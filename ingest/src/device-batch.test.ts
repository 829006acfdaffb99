/**
 * Ingest and device-level batches (FORMAT.md §3.1): each reading of a batch is its own statement, leaf and link;
 * hash-only, a reading past the batch's first links by its place in the signed tree.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { decodeSign1, encodeSign1, signBatchedStatements } from '@stele/core/cose';
import { encodeReading, GENESIS_PREV, readingDigest } from '@stele/core';
import type { Signer } from '@stele/core';
import { verifyBundle } from '@stele/core/verify';
import type { Anchorer } from './anchor/index.ts';
import { IngestService } from './service.ts';
import { enrolmentOf, readingAt, startBroker, tempDir, testSigner, TestGateway, waitFor, type TestBroker } from './test-helpers.ts';

let broker: TestBroker;
const cleanups: (() => Promise<unknown>)[] = [];
beforeAll(async () => {
  broker = await startBroker();
});
afterAll(async () => {
  await broker?.close();
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Records roots without a chain: enough for receipts and offline verification. */
function fakeAnchorer(): Anchorer {
  return {
    chainId: 31337,
    contract: '0x5fbdb2315678afecb367f032d93f642f64180aa3',
    rpcUrl: 'http://127.0.0.1:1',
    anchor: async (batchId) => ({
      chainId: 31337,
      contract: '0x5fbdb2315678afecb367f032d93f642f64180aa3',
      txHash: `0x${'ab'.repeat(32)}`,
      blockNumber: batchId,
      blockTime: 1_700_000_000 + batchId,
    }),
  };
}

interface Item {
  seq: number;
  reading: Uint8Array;
  statement: Uint8Array;
}

/** Readings 1..n of one chain signed in device-level batches of the given sizes (1 = a single statement). */
async function batchedChain(signer: Signer, deviceId: string, sizes: number[]): Promise<Item[]> {
  const out: Item[] = [];
  let prev: Uint8Array = GENESIS_PREV;
  let seq = 1;
  for (const size of sizes) {
    const bytes: Uint8Array[] = [];
    for (let i = 0; i < size; i++, seq++) {
      const b = encodeReading(readingAt(deviceId, seq, prev));
      bytes.push(b);
      prev = readingDigest(b);
    }
    const statements = await signBatchedStatements(bytes, signer);
    bytes.forEach((reading, i) => out.push({ seq: seq - size + i, reading, statement: statements[i]! }));
  }
  return out;
}

let devices = 0;
async function start(dataDir?: string): Promise<{ ingest: IngestService; dir: string; ingestKey: Signer }> {
  const dir = dataDir ?? (await tempDir('ingest-dbatch')).path;
  if (dataDir === undefined) cleanups.push(() => import('node:fs/promises').then((fs) => fs.rm(dir, { recursive: true, force: true })));
  const ingestKey = testSigner();
  const ingest = await IngestService.start({ mqttUrl: broker.url, dataDir: dir, signer: ingestKey, issuer: 'stele-ingest-test', anchorer: fakeAnchorer(), batchIntervalMs: 60_000 });
  cleanups.push(() => ingest.stop());
  return { ingest, dir, ingestKey };
}

async function device(ingest: IngestService): Promise<{ gw: TestGateway; signer: Signer; deviceId: string }> {
  const deviceId = `gw-db-${++devices}`;
  const signer = testSigner();
  await ingest.enrol(enrolmentOf(signer, deviceId));
  const gw = await TestGateway.connect(broker.url, deviceId);
  cleanups.push(() => gw.close());
  return { gw, signer, deviceId };
}

describe('IngestService with device-level batches', () => {
  for (const mode of ['full', 'hash-only'] as const) {
    it(`commits every reading of a batch as its own leaf (${mode}) and exports a bundle that verifies`, async () => {
      const { ingest } = await start();
      const { gw, signer, deviceId } = await device(ingest);
      const chain = await batchedChain(signer, deviceId, [1, 5, 2, 1, 8]);
      for (const r of chain) await gw.publish(r, mode);
      await waitFor(() => gw.ackedUpTo === 17, 'ack upTo 17');
      expect(gw.rejects).toEqual([]);
      await ingest.flush();
      const bundle = await ingest.exportEvidence(deviceId, 1, 17);
      expect(bundle.entries.map((e) => e.statement)).toEqual(chain.map((c) => c.statement));
      const v = await verifyBundle(bundle);
      expect(v.checks.flatMap((c) => c.failures.map((f) => f.code))).toEqual([]);
      expect(v.state).toBe('partial'); // offline: the anchor is not checked
    });
  }

  it('holds readings of a batch that arrive out of order and commits them once the gap fills', async () => {
    const { ingest } = await start();
    const { gw, signer, deviceId } = await device(ingest);
    const chain = await batchedChain(signer, deviceId, [6]);
    for (const i of [0, 3, 2, 5, 1, 4]) await gw.publish(chain[i]!, 'hash-only');
    await waitFor(() => gw.ackedUpTo === 6, 'ack upTo 6');
    expect(gw.rejects).toEqual([]);
  });

  it('goes on inside a batch after a restart (hash-only: the head statement is read back from the store)', async () => {
    const first = await start();
    const { gw, signer, deviceId } = await device(first.ingest);
    const chain = await batchedChain(signer, deviceId, [2, 6]);
    for (const r of chain.slice(0, 4)) await gw.publish(r, 'hash-only');
    await waitFor(() => gw.ackedUpTo === 4, 'ack upTo 4');
    await first.ingest.stop();
    const second = await IngestService.start({ mqttUrl: broker.url, dataDir: first.dir, signer: first.ingestKey, issuer: 'stele-ingest-test', anchorer: fakeAnchorer(), batchIntervalMs: 60_000 });
    cleanups.push(() => second.stop());
    for (const r of chain.slice(4)) await gw.publish(r, 'hash-only');
    await waitFor(() => gw.ackedUpTo === 8, 'ack upTo 8');
    expect(gw.rejects).toEqual([]);
  });

  it('rejects, hash-only, a batched reading whose seq - 1 is not the leaf before it with CHAIN_LINK_ERROR', async () => {
    const { ingest } = await start();
    const { gw, signer, deviceId } = await device(ingest);
    // seq 1..3 committed one by one; seq 4 comes from a batch 3..4 whose leaf 0 is another reading 3
    const singles = await batchedChain(signer, deviceId, [1, 1, 1]);
    for (const r of singles) await gw.publish(r, 'hash-only');
    await waitFor(() => gw.ackedUpTo === 3, 'ack upTo 3');
    const other3 = encodeReading(readingAt(deviceId, 3, readingDigest(singles[1]!.reading), '99.99'));
    const four = encodeReading(readingAt(deviceId, 4, readingDigest(other3)));
    const [, st4] = await signBatchedStatements([other3, four], signer);
    await gw.publish({ statement: st4! }, 'hash-only');
    await waitFor(() => gw.rejects.some((r) => r.code === 'CHAIN_LINK_ERROR'), 'CHAIN_LINK_ERROR');
    expect(gw.rejects).toEqual([{ seq: 4, code: 'CHAIN_LINK_ERROR' }]);
    expect(ingest.head(deviceId).seq).toBe(3);
  });

  it('rejects, with its body, a batched reading whose prev is not the committed head with CHAIN_LINK_ERROR', async () => {
    const { ingest } = await start();
    const { gw, signer, deviceId } = await device(ingest);
    const singles = await batchedChain(signer, deviceId, [1, 1, 1]);
    for (const r of singles) await gw.publish(r);
    await waitFor(() => gw.ackedUpTo === 3, 'ack upTo 3');
    const other3 = encodeReading(readingAt(deviceId, 3, readingDigest(singles[1]!.reading), '99.99'));
    const four = encodeReading(readingAt(deviceId, 4, readingDigest(other3)));
    const [, st4] = await signBatchedStatements([other3, four], signer);
    await gw.publish({ statement: st4!, reading: four });
    await waitFor(() => gw.rejects.some((r) => r.code === 'CHAIN_LINK_ERROR'), 'CHAIN_LINK_ERROR');
    expect(ingest.head(deviceId).seq).toBe(3);
  });

  it('rejects a batched statement with a changed signature (SIGNATURE_ERROR) or payload (DIGEST_MISMATCH_ERROR)', async () => {
    const { ingest } = await start();
    const { gw, signer, deviceId } = await device(ingest);
    const chain = await batchedChain(signer, deviceId, [3]);
    const p = decodeSign1(chain[0]!.statement);
    p.signature[5]! ^= 1;
    await gw.publish({ statement: encodeSign1({ protectedBytes: p.protectedBytes, unprotectedHeader: p.unprotectedHeader, payload: p.payload, signature: p.signature }) }, 'hash-only');
    await waitFor(() => gw.rejects.some((r) => r.code === 'SIGNATURE_ERROR'), 'SIGNATURE_ERROR');
    await gw.publish({ statement: chain[0]!.statement, reading: chain[1]!.reading });
    await waitFor(() => gw.rejects.some((r) => r.code === 'DIGEST_MISMATCH_ERROR'), 'DIGEST_MISMATCH_ERROR');
    expect(ingest.head(deviceId).seq).toBe(0);
    // the genuine ones still go in
    for (const r of chain) await gw.publish(r);
    await waitFor(() => gw.ackedUpTo === 3, 'ack upTo 3');
  });
});
