/**
 * Issue #9 acceptance: power cuts on the ingest host. Ingest and its embedded chain (anvil) are SIGKILLed together
 * at seeded random moments, 5 times, while a gateway keeps publishing; the chain keeps only what it had dumped
 * (every 4 s here), so anchors ingest had seen mined can vanish; finality is 6 blocks (1 s each) deep. Afterwards every batch must be final on
 * chain exactly once (one Anchored log per batch id, with the stored root) and the bundle of the whole window must
 * verify against the chain. Runs ~60 s: `npm run test:power-cut` (STELE_POWER_CUT=1).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createPublicClient, http, parseAbiItem, type Address } from 'viem';
import { afterAll, describe, expect, it } from 'vitest';
import { parseBundle, mulberry32, GENESIS_PREV } from '@stele/core';
import { verifyBundle } from '@stele/core/verify';
import { policyTrustingBundle } from '@stele/core/testing';
import { makeEnrolmentRecord } from '@stele/device';
import { readAnchor } from '@stele/ingest';
import { initIngestKey } from '@stele/ingest';
import { readingAt, signedReading, startBroker, tempDir, testSigner, TestGateway, type SignedReading } from '@stele/ingest/testing';
import { freePort, INGEST_SCRIPT, sleep, spawnTs, type Child } from './chaos/processes.ts';

const SEED = Number(process.env.STELE_POWER_CUT_SEED ?? 20261202);
const CUTS = 5;
const run = process.env.STELE_POWER_CUT === '1' ? describe : describe.skip;

run('power cut: ingest and its chain SIGKILLed together', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  it(`after ${CUTS} cuts every batch is final on chain exactly once and the window verifies`, async () => {
    const rand = mulberry32(SEED);
    const dir = await tempDir('power-cut');
    cleanups.push(() => dir.remove());
    const data = join(dir.path, 'ingest');
    await initIngestKey(data);
    const broker = await startBroker();
    cleanups.push(() => broker.close());
    const chainPort = await freePort(); // fixed: anchors name this RPC URL across restarts
    const healthPort = await freePort();
    const api = `http://127.0.0.1:${healthPort}`;
    const args = ['run', '--mqtt', broker.url, '--data', data, '--embedded-chain', '--chain-port', String(chainPort), '--chain-block-time', '1', '--chain-state-interval', '4', '--confirmations', '6', '--batch-ms', '400', '--health-port', String(healthPort), '--log-level', 'info'];

    let anvilPid: number | undefined;
    const start = async (): Promise<Child> => {
      anvilPid = undefined;
      const child = spawnTs(INGEST_SCRIPT, args, {
        onLine: (l) => {
          if (l.includes('"embedded chain up"')) anvilPid = (JSON.parse(l) as { anvilPid: number }).anvilPid;
        },
      });
      const until = Date.now() + 60_000;
      while (!(await fetch(`${api}/health`).then((r) => r.ok, () => false))) {
        if (child.proc.exitCode !== null) throw new Error(`ingest exited: ${child.errTail.join(' | ')}`);
        if (Date.now() > until) throw new Error('ingest did not come up');
        await sleep(100);
      }
      return child;
    };
    let ingest = await start();
    cleanups.push(() => ingest.kill('SIGTERM'));

    const device = testSigner();
    const D = 'gw-power-cut';
    expect((await fetch(`${api}/enrol`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${(await readFile(join(data, 'admin-token'), 'utf8')).trim()}` }, body: JSON.stringify(makeEnrolmentRecord(device, D, 'power cut')) })).status).toBe(200);

    // The gateway: signs readings ahead and publishes them in order, resending from the acked mark after a restart.
    const readings: SignedReading[] = [];
    let prev = GENESIS_PREV;
    for (let seq = 1; seq <= 300; seq++) {
      const r = await signedReading(device, readingAt(D, seq, prev));
      readings.push(r);
      prev = r.digest;
    }
    let gw = await TestGateway.connect(broker.url, D);
    let sent = 0;
    let producing = true;
    const producer = (async () => {
      while (producing && sent < readings.length) {
        await gw.publish(readings[sent]!).catch(() => undefined);
        sent++;
        await sleep(40);
      }
    })();

    let lostAlarms = 0;
    for (let cut = 1; cut <= CUTS; cut++) {
      await sleep(1500 + Math.floor(rand() * 2500));
      // Power cut: both processes die at once, nothing flushed.
      lostAlarms += ingest.lines.filter((l) => l.includes('ALARM anchor')).length;
      const pid = anvilPid;
      ingest.proc.kill('SIGKILL');
      if (pid !== undefined) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await ingest.exited;
      ingest = await start();
      // What ingest did not ack is sent again (a real gateway's publisher resends from its acked mark).
      const acked = gw.ackedUpTo;
      await gw.close();
      gw = await TestGateway.connect(broker.url, D);
      for (let i = acked; i < sent; i++) await gw.publish(readings[i]!);
    }
    producing = false;
    await producer;
    const headSeq = async (): Promise<number> => ((await (await fetch(`${api}/devices/${D}/head`)).json()) as { seq: number }).seq;
    const until = Date.now() + 30_000;
    while ((await headSeq()) < sent) {
      if (Date.now() > until) {
        console.log(ingest.lines.filter((l) => !l.includes('"level":30')).slice(-30).join('\n'), ingest.errTail.join('\n'));
        const h = await (await fetch(`${api}/health`)).text();
        throw new Error(`head ${await headSeq()} of ${sent}; health ${h}`);
      }
      await sleep(100);
    }
    // Flush waits for finality; a chain that just came back may fail an attempt (the operator, too, tries again).
    let flushed = await fetch(`${api}/flush`, { method: 'POST', headers: { authorization: `Bearer ${(await readFile(join(data, 'admin-token'), 'utf8')).trim()}` } });
    for (let attempt = 1; attempt < 5 && flushed.status !== 200; attempt++) {
      console.log(`flush attempt ${attempt}: ${await flushed.text()}`);
      await sleep(1000);
      flushed = await fetch(`${api}/flush`, { method: 'POST', headers: { authorization: `Bearer ${(await readFile(join(data, 'admin-token'), 'utf8')).trim()}` } });
    }
    if (flushed.status !== 200) {
      // What the anchorer last said, to tell a stuck anchor from a slow chain.
      console.log(ingest.lines.filter((l) => !l.includes('"level":30') || l.includes('anchor')).slice(-60).join('\n'), ingest.errTail.join('\n'));
      console.log(`health: ${await (await fetch(`${api}/health`)).text()}`);
    }
    expect(flushed.status).toBe(200);
    const health = (await (await fetch(`${api}/health`)).json()) as { batches: number; anchored: number; anchorsLost: number; anchoring: { unanchored: number } };
    lostAlarms += ingest.lines.filter((l) => l.includes('ALARM anchor')).length;
    expect(health.anchoring.unanchored).toBe(0);
    expect(health.anchored).toBe(health.batches);

    const bundleJson = (await (await fetch(`${api}/bundle?device=${D}&first=1&last=${sent}`)).json()) as unknown;
    const bundle = parseBundle(bundleJson);
    const rpcUrl = `http://127.0.0.1:${chainPort}`;
    const verdict = await verifyBundle(bundle, { anchorReader: (ref, batchId) => readAnchor(rpcUrl, ref, batchId), trust: await policyTrustingBundle(bundle) });
    expect(verdict.checks.flatMap((c) => c.failures.map((f) => f.code))).toEqual([]);
    expect(verdict.state).toBe('verified');
    expect(verdict.summary.readings).toBe(sent);

    // Exactly once on chain: one Anchored log per batch id, all batches 1..n, each with the root ingest stored.
    const contract = (JSON.parse(await readFile(join(data, 'chain', 'anchor-contract.json'), 'utf8')) as { contract: Address }).contract;
    const client = createPublicClient({ transport: http(rpcUrl) });
    const logs = await client.getLogs({ address: contract, event: parseAbiItem('event Anchored(uint64 indexed batchId, bytes32 indexed root, uint64 size, uint64 timestamp)'), fromBlock: 0n });
    const perBatch = new Map<number, number>();
    for (const l of logs) perBatch.set(Number(l.args.batchId), (perBatch.get(Number(l.args.batchId)) ?? 0) + 1);
    expect([...perBatch.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: health.batches }, (_, i) => i + 1));
    expect([...perBatch.values()].every((n) => n === 1)).toBe(true);
    for (const b of bundle.batches) {
      const onChain = logs.find((l) => Number(l.args.batchId) === b.batchId);
      expect(onChain?.args.root?.toLowerCase()).toBe(`0x${Buffer.from(b.root).toString('hex')}`);
    }
    console.log(`power cut: ${CUTS} cuts, ${sent} readings, ${health.batches} batches, ${lostAlarms} anchor alarms (lost/reorged, anchored again)`);
    await ingest.kill('SIGTERM');
    await gw.close();
  }, 300_000);
});
