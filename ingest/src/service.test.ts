import { describe, expect, it } from 'vitest';
import { readAnchor } from '@stele/core/anchor';
import { parseBundle, equalBytes, fromBase64Url, fromHex, toHex, encodeCbor, GENESIS_PREV } from '@stele/core';
import { verifyBundle } from '@stele/core/verify';
import { policyTrustingBundle } from '@stele/core/testing';
import { parseReceipt, verifyReceipt } from '@stele/core/cose';
import { hashLeaf } from '@stele/core/rfc9162';
import type { Signer } from '@stele/core';
import type { Anchorer } from './anchor/index.ts';
import { IngestService, type IngestOptions } from './service.ts';
import {
  enrolmentOf,
  makeChain,
  readingAt,
  signedReading,
  tempDir,
  testSigner,
  TestGateway,
  waitFor,
  useIngestStack,
  type IngestSetup,
} from './test-helpers.ts';

const stack = useIngestStack('ingest-chain');
const { cleanups, newAnchorer } = stack;

type Setup = IngestSetup;

let devices = 0;
async function setup(options: Partial<IngestOptions> = {}, dataDir?: string): Promise<Setup> {
  return stack.setup({ deviceId: `gw-${String(++devices).padStart(4, '0')}`, dirPrefix: 'ingest', options, ...(dataDir === undefined ? {} : { dataDir }) });
}

async function expectReject(s: Setup, code: string): Promise<void> {
  await waitFor(() => s.gw.rejects.some((r) => r.code === code), `reject ${code}`);
  expect(s.ingest.stats().rejected[code]).toBe(1);
}

describe('IngestService', () => {
  describe('when a gateway publishes N readings', () => {
    it('checks signatures at most maxVerifyInFlight at once and still stores every reading once', async () => {
      const s = await setup({ maxVerifyInFlight: 1 });
      const n = 40;
      const chain = await makeChain(s.device, s.deviceId, n);
      // all at once: the whole window waits on the one verification slot
      await Promise.all(chain.map((r) => s.gw.publish(r)));
      await waitFor(() => s.gw.ackedUpTo === n, `ack upTo ${n}`);
      expect(s.ingest.stats()).toMatchObject({ readings: n, verified: n, duplicates: 0 });
      expect((await s.ingest.storedReadings(s.deviceId, 1, n)).map((r) => r.seq)).toEqual(chain.map((_, i) => i + 1));
    });

    it('acks up to N, anchors the batch, and exports a bundle whose receipts verify to the anchored root', async () => {
      const s = await setup();
      const n = 25;
      const chain = await makeChain(s.device, s.deviceId, n);
      for (const r of chain) await s.gw.publish(r);
      await waitFor(() => s.gw.ackedUpTo === n, `ack upTo ${n}`);
      expect(s.ingest.stats().readings).toBe(n);
      expect(s.ingest.head(s.deviceId).seq).toBe(n);
      // the kept head owns its digest (a view into the message's buffer would keep that buffer alive per device)
      expect(s.ingest.head(s.deviceId).digest.buffer.byteLength).toBe(32);
      await expect(s.ingest.exportBundle(s.deviceId, 1, n)).rejects.toMatchObject({ code: 'INGEST_NOT_ANCHORED' });

      await s.ingest.flush();
      const stats = s.ingest.stats();
      expect(stats).toMatchObject({ readings: n, batches: 1, anchored: 1, pending: 0 });

      const json = await s.ingest.exportBundle(s.deviceId, 1, n);
      expect(json.format).toBe('stele-evidence/1');
      expect(json.entries).toHaveLength(n);
      expect(json.batches).toHaveLength(1);
      // The enrolment statement ingest logged (FORMAT.md §13.2) is the first leaf of the batch.
      expect(json.lifecycle).toHaveLength(1);
      const batch = json.batches[0]!;
      expect(batch.size).toBe(n + 1);
      expect(batch.anchor.rpc).toBe(stack.anvil.rpcUrl);
      const facts = await readAnchor(stack.anvil.rpcUrl, batch.anchor, batch.batchId);
      expect(facts.root).toBe(batch.root);
      expect(facts.size).toBe(n + 1);

      for (const [i, e] of json.entries.entries()) {
        expect(e.seq).toBe(i + 1);
        expect(equalBytes(fromBase64Url(e.statement), chain[i]!.statement)).toBe(true);
        expect(equalBytes(fromBase64Url(e.reading!), chain[i]!.reading)).toBe(true);
        const receipt = parseReceipt(fromBase64Url(e.receipt));
        expect(receipt).toMatchObject({ batchId: 1, issuer: 'stele-ingest-test' });
        const { root, signatureValid } = await verifyReceipt(receipt, hashLeaf(chain[i]!.statement), s.ingestKey.publicKey);
        expect(signatureValid).toBe(true);
        expect(`0x${toHex(root)}`).toBe(batch.root);
      }
      // The JSON object is what core's parseBundle reads (FORMAT.md §7).
      const parsed = parseBundle(JSON.parse(JSON.stringify(json)));
      expect(parsed.entries).toHaveLength(n);
      expect(equalBytes(parsed.batches[0]!.root, fromHex(batch.root))).toBe(true);

      // And the verifier the officer runs accepts it, chain look-up included.
      const evidence = await s.ingest.exportEvidence(s.deviceId, 1, n);
      const verdict = await verifyBundle(evidence, {
        anchorReader: (ref, batchId) => readAnchor(stack.anvil.rpcUrl, ref, batchId),
        trust: await policyTrustingBundle(evidence),
      });
      expect(verdict.checks.filter((c) => c.status === 'fail').flatMap((c) => c.failures.map((f) => f.code))).toEqual([]);
      expect(verdict.state).toBe('verified');
    });

    it('cuts a batch as soon as maxBatchSize leaves are pending, and several batches verify in one bundle', async () => {
      const s = await setup({ maxBatchSize: 8 });
      const chain = await makeChain(s.device, s.deviceId, 20);
      for (const r of chain) await s.gw.publish(r);
      await waitFor(() => s.gw.ackedUpTo === 20, 'ack upTo 20');
      await waitFor(() => s.ingest.stats().anchored === 2, 'two full batches anchored');
      // 21 leaves: the enrolment statement, then readings 1..20.
      expect(s.ingest.stats().pending).toBe(5);
      await s.ingest.flush();
      const json = await s.ingest.exportBundle(s.deviceId, 3, 20);
      expect(json.batches.map((b) => [b.batchId, b.size])).toEqual([
        [1, 8],
        [2, 8],
        [3, 5],
      ]);
      for (const e of json.entries) {
        const receipt = parseReceipt(fromBase64Url(e.receipt));
        const { root, signatureValid } = await verifyReceipt(receipt, hashLeaf(fromBase64Url(e.statement)), s.ingestKey.publicKey);
        expect(signatureValid).toBe(true);
        expect(`0x${toHex(root)}`).toBe(json.batches.find((b) => b.batchId === e.batchId)!.root);
      }
    });

    it('commits statements sent without their reading (hash-only mode) and exports them without a body', async () => {
      const s = await setup();
      const chain = await makeChain(s.device, s.deviceId, 3);
      for (const r of chain) await s.gw.publish(r, 'hash-only');
      await waitFor(() => s.gw.ackedUpTo === 3, 'ack upTo 3');
      await s.ingest.flush();
      const json = await s.ingest.exportBundle(s.deviceId, 1, 3);
      expect(json.entries.every((e) => e.reading === undefined)).toBe(true);
    });
  });

  describe('when a statement fails a check', () => {
    it('rejects a kid that is not enrolled with UNKNOWN_KEY_ERROR', async () => {
      const s = await setup();
      const stranger = testSigner();
      const [r] = await makeChain(stranger, s.deviceId, 1);
      await s.gw.publish(r!);
      await expectReject(s, 'UNKNOWN_KEY_ERROR');
      expect(s.gw.rejects[0]).toEqual({ seq: 1, code: 'UNKNOWN_KEY_ERROR' });
      expect(s.ingest.head(s.deviceId).seq).toBe(0);
    });

    it('rejects an enrolled key used for another device id with UNKNOWN_KEY_ERROR', async () => {
      const s = await setup();
      const [r] = await makeChain(s.device, 'gw-other', 1);
      await s.gw.publish(r!);
      await expectReject(s, 'UNKNOWN_KEY_ERROR');
    });

    it('rejects a signature that does not verify with SIGNATURE_ERROR', async () => {
      const s = await setup();
      const forger = testSigner();
      // Claims the enrolled kid but signs with another key.
      const impostor: Signer = { ...s.device, sign: (m: Uint8Array) => forger.sign(m) };
      const r = await signedReading(impostor, readingAt(s.deviceId, 1, GENESIS_PREV));
      await s.gw.publish(r);
      await expectReject(s, 'SIGNATURE_ERROR');
      expect(s.ingest.head(s.deviceId).seq).toBe(0);
    });

    it('rejects a reading body that is not the signed one with DIGEST_MISMATCH_ERROR', async () => {
      const s = await setup();
      const signed = await signedReading(s.device, readingAt(s.deviceId, 1, GENESIS_PREV, '12.5'));
      const altered = await signedReading(s.device, readingAt(s.deviceId, 1, GENESIS_PREV, '2.5'));
      await s.gw.publish({ statement: signed.statement, reading: altered.reading });
      await expectReject(s, 'DIGEST_MISMATCH_ERROR');
      expect(s.ingest.head(s.deviceId).seq).toBe(0);
    });

    it('rejects a prev that is not the head digest with CHAIN_LINK_ERROR', async () => {
      const s = await setup();
      const [first] = await makeChain(s.device, s.deviceId, 1);
      const bad = await signedReading(s.device, readingAt(s.deviceId, 2, new Uint8Array(32).fill(7)));
      await s.gw.publish(first!);
      await s.gw.publish(bad);
      await expectReject(s, 'CHAIN_LINK_ERROR');
      expect(s.ingest.head(s.deviceId).seq).toBe(1);
    });

    it('rejects a payload larger than maxMessageBytes with INGEST_OVERSIZE', async () => {
      const s = await setup({ maxMessageBytes: 1024 });
      await s.gw.publishRaw(encodeCbor({ statement: new Uint8Array(2000) }));
      await expectReject(s, 'INGEST_OVERSIZE');
      expect(s.gw.rejects[0]).toEqual({ seq: 0, code: 'INGEST_OVERSIZE' });
    });

    it('rejects bytes that are not CBOR with INGEST_MALFORMED', async () => {
      const s = await setup();
      await s.gw.publishRaw(Uint8Array.of(0xff, 0x00, 0x13));
      await expectReject(s, 'INGEST_MALFORMED');
    });

    it('rejects a CBOR envelope of the wrong shape with INGEST_MALFORMED', async () => {
      const s = await setup();
      await s.gw.publishRaw(encodeCbor({ statement: 'not bytes' }));
      await expectReject(s, 'INGEST_MALFORMED');
    });

    it('rejects a statement that is not a COSE_Sign1 with STATEMENT_FORMAT_ERROR', async () => {
      const s = await setup();
      await s.gw.publishRaw(encodeCbor({ statement: Uint8Array.of(1, 2, 3) }));
      await expectReject(s, 'STATEMENT_FORMAT_ERROR');
    });
  });

  describe('when QoS 1 redelivers or reorders', () => {
    it('re-acks a replayed statement without committing it twice', async () => {
      const s = await setup();
      const chain = await makeChain(s.device, s.deviceId, 3);
      for (const r of chain) await s.gw.publish(r);
      await waitFor(() => s.gw.ackedUpTo === 3, 'ack upTo 3');
      const acksBefore = s.gw.acks.length;
      await s.gw.publish(chain[1]!);
      await waitFor(() => s.gw.acks.length > acksBefore, 're-ack');
      expect(s.gw.acks.at(-1)).toBe(3);
      expect(s.ingest.stats()).toMatchObject({ readings: 3, duplicates: 1, rejected: {} });
      expect(s.gw.rejects).toEqual([]);
    });

    it('records a second, different statement for a committed seq as FORK_ERROR and keeps the first', async () => {
      const s = await setup();
      const chain = await makeChain(s.device, s.deviceId, 2);
      for (const r of chain) await s.gw.publish(r);
      await waitFor(() => s.gw.ackedUpTo === 2, 'ack upTo 2');
      const other = await signedReading(s.device, readingAt(s.deviceId, 2, chain[0]!.digest, '999'));
      await s.gw.publish(other);
      await expectReject(s, 'FORK_ERROR');
      expect(s.gw.rejects[0]).toEqual({ seq: 2, code: 'FORK_ERROR' });
      const forks = await s.ingest.forks(s.deviceId);
      expect(forks.map((f) => [f.seq, equalBytes(f.statement, other.statement)])).toEqual([[2, true]]);
      await s.ingest.flush();
      const json = await s.ingest.exportBundle(s.deviceId, 1, 2);
      expect(equalBytes(fromBase64Url(json.entries[1]!.statement), chain[1]!.statement)).toBe(true);
    });

    it('holds statements after a gap and commits them once the gap fills', async () => {
      const s = await setup();
      const chain = await makeChain(s.device, s.deviceId, 5);
      await s.gw.publish(chain[0]!);
      await s.gw.publish(chain[2]!);
      await s.gw.publish(chain[4]!);
      await s.gw.publish(chain[3]!);
      await waitFor(() => s.gw.ackedUpTo === 1 && s.ingest.stats().buffered === 3, 'ack 1 and three held');
      expect(s.ingest.head(s.deviceId).seq).toBe(1);
      await s.gw.publish(chain[1]!);
      await waitFor(() => s.gw.ackedUpTo === 5, 'ack upTo 5');
      expect(s.ingest.stats()).toMatchObject({ readings: 5, buffered: 0, rejected: {} });
    });

    it('rejects with INGEST_REORDER_FULL when the reorder buffer is full', async () => {
      const s = await setup({ reorderLimit: 2 });
      const chain = await makeChain(s.device, s.deviceId, 5);
      for (const r of chain.slice(1, 4)) await s.gw.publish(r); // seq 2, 3 held; 4 refused
      await expectReject(s, 'INGEST_REORDER_FULL');
      expect(s.gw.rejects).toEqual([{ seq: 4, code: 'INGEST_REORDER_FULL' }]);
      await s.gw.publish(chain[0]!);
      await waitFor(() => s.gw.ackedUpTo === 3, 'ack upTo 3');
    });
  });

  describe('when anchoring fails', () => {
    it('keeps the batch and anchors it on a later attempt, once', async () => {
      const real = await newAnchorer();
      let failuresLeft = 2;
      const calls: number[] = [];
      const flaky: Anchorer = {
        chainId: real.chainId,
        contract: real.contract,
        rpcUrl: real.rpcUrl,
        anchor: async (batchId, root, size) => {
          calls.push(batchId);
          if (failuresLeft-- > 0) throw new Error('rpc down');
          return real.anchor(batchId, root, size);
        },
      };
      const s = await setup({ anchorer: flaky });
      const chain = await makeChain(s.device, s.deviceId, 4);
      for (const r of chain) await s.gw.publish(r);
      await waitFor(() => s.gw.ackedUpTo === 4, 'ack upTo 4');
      await expect(s.ingest.flush()).rejects.toThrow('rpc down');
      await expect(s.ingest.flush()).rejects.toThrow('rpc down');
      expect(s.ingest.stats()).toMatchObject({ batches: 1, anchored: 0, anchorFailures: 2 });
      // The chain is down: the batch waits in the store, and health says so.
      expect(s.ingest.anchoring()).toMatchObject({ unanchored: 1, lastError: 'rpc down' });
      expect(s.ingest.anchoring().chainDownSinceMs).toBeGreaterThanOrEqual(0);
      await s.ingest.flush();
      expect(s.ingest.anchoring().chainDownSinceMs).toBeUndefined();
      expect(s.ingest.stats()).toMatchObject({ batches: 1, anchored: 1 });
      expect(calls).toEqual([1, 1, 1]);
      await s.ingest.exportBundle(s.deviceId, 1, 4);
    });
  });

  describe('when ingest restarts', () => {
    it('resumes heads, pending leaves and unanchored batches from the store', async () => {
      const dir = await tempDir('ingest-restart');
      cleanups.push(() => dir.remove());
      const real = await newAnchorer();
      const down: Anchorer = { chainId: real.chainId, contract: real.contract, rpcUrl: real.rpcUrl, anchor: () => Promise.reject(new Error('chain down')) };
      const ingestKey = testSigner();
      const device = testSigner();
      const deviceId = 'gw-restart';

      // First life: seq 1..6 committed; the enrolment statement and 1..3 cut into batch 1 that cannot be anchored;
      // 4..6 left pending.
      const first = await IngestService.start({ mqttUrl: stack.broker.url, dataDir: dir.path, signer: ingestKey, issuer: 'stele-ingest-test', anchorer: down, batchIntervalMs: 60_000, maxBatchSize: 4 });
      cleanups.push(() => first.stop());
      await first.enrol(enrolmentOf(device, deviceId));
      const gw = await TestGateway.connect(stack.broker.url, deviceId);
      cleanups.push(() => gw.close());
      const chain = await makeChain(device, deviceId, 9);
      for (const r of chain.slice(0, 6)) await gw.publish(r);
      await waitFor(() => gw.ackedUpTo === 6, 'ack upTo 6');
      await waitFor(() => first.stats().batches === 1 && first.stats().anchorFailures >= 1, 'batch 1 cut, anchoring failed');
      expect(first.stats()).toMatchObject({ readings: 6, batches: 1, anchored: 0, pending: 3 });
      await first.stop();

      // Second life, chain reachable: the chain continues at seq 7, batch 1 is anchored, 4..9 batched after it.
      const second = await IngestService.start({ mqttUrl: stack.broker.url, dataDir: dir.path, signer: ingestKey, issuer: 'stele-ingest-test', anchorer: real, batchIntervalMs: 60_000, maxBatchSize: 4 });
      cleanups.push(() => second.stop());
      expect(second.stats()).toMatchObject({ readings: 6, batches: 1, anchored: 0, pending: 3 });
      expect(second.head(deviceId)).toEqual({ seq: 6, digest: chain[5]!.digest });
      await gw.publish(chain[2]!); // a redelivery from before the restart: duplicate, re-acked
      for (const r of chain.slice(6)) await gw.publish(r);
      await waitFor(() => gw.ackedUpTo === 9, 'ack upTo 9');
      await second.flush();
      expect(second.stats()).toMatchObject({ readings: 9, batches: 3, anchored: 3, pending: 0, duplicates: 1 });
      const json = await second.exportBundle(deviceId, 1, 9);
      expect(json.batches.map((b) => [b.batchId, b.size])).toEqual([
        [1, 4],
        [2, 4],
        [3, 2],
      ]);
      for (const [i, e] of json.entries.entries()) {
        const { root, signatureValid } = await verifyReceipt(parseReceipt(fromBase64Url(e.receipt)), hashLeaf(chain[i]!.statement), ingestKey.publicKey);
        expect(signatureValid).toBe(true);
        expect(`0x${toHex(root)}`).toBe(json.batches.find((b) => b.batchId === e.batchId)!.root);
      }
    });
  });

  describe('enrol', () => {
    it('is idempotent for the same record and refuses a second key for the same device', async () => {
      const s = await setup();
      await s.ingest.enrol(enrolmentOf(s.device, s.deviceId));
      await expect(s.ingest.enrol(enrolmentOf(testSigner(), s.deviceId))).rejects.toMatchObject({ code: 'INGEST_ENROL_CONFLICT' });
      await expect(s.ingest.enrol({ ...enrolmentOf(testSigner(), 'gw-x'), kid: enrolmentOf(testSigner(), 'gw-x').kid })).rejects.toMatchObject({ code: 'INGEST_ENROL_ERROR' });
    });
  });
});
