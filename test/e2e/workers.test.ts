/**
 * Several ingest workers (issue #11 acceptance): two `stele ingest run --share` processes on one MQTT 5 shared
 * subscription on the Debian mosquitto (started here on a free port) with one PostgreSQL store and one anvil chain;
 * ten gateways (the gateway library: outbox, publisher with resend, real software keys) publishing. One worker is
 * SIGKILLed mid-batch and the broker is restarted while readings flow. Checked outside ingest at the end: every
 * reading stored once (the database), every batch anchored once (the contract's Anchored logs on the chain, and one
 * transaction per batch from the anchoring account), each gateway's bundle verifies.
 *
 * `npm run test:workers` (about 1 to 2 minutes on the 2-core CI machine; .ci/run runs it with a time budget).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { createPublicClient, http, type Address } from 'viem';
import { afterAll, describe, expect, it } from 'vitest';
import { parseBundle, readAnchor, sha256, utf8, verifyBundle } from '@stele/core';
import { policyTrustingBundle } from '@stele/core/testing';
import { createSoftwareKey, loadSoftwareSigner, makeEnrolmentRecord } from '@stele/device';
import { GatewayAgent, Outbox, Publisher, type Acquired } from '@stele/edge-agent';
import { IngestService } from '@stele/ingest';
import { ANVIL_DEV_PRIVATE_KEY, STELE_ANCHOR_ABI, startAnvil, type AnvilNode } from '@stele/ingest/anchor';
import { runIngest } from '@stele/ingest/cli';
import { createTestDatabase, hasMosquitto, postgresAvailable, startRestartableMosquitto, type RestartableMosquitto } from '@stele/ingest/testing';
import { captureIo, repoRoot, waitFor } from '@stele/testkit';

const GATEWAYS = 10;
const READINGS = 80;
const pg = await postgresAvailable();
const skip = !pg.ok ? `no PostgreSQL: ${pg.reason}` : !hasMosquitto() ? 'no mosquitto' : undefined;

interface Worker {
  proc: ChildProcess;
  out: string;
  exited: Promise<number | null>;
}

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

async function* readings(pauseMs: number): AsyncIterable<Acquired> {
  for (let n = 1; n <= READINGS; n++) {
    await new Promise((r) => setTimeout(r, pauseMs)); // the instrument's pace
    yield { sensor: 's', time: Date.now(), clock: { synced: true, source: 'ntp' }, meas: [{ code: 'a21026', kind: 'Rtd', value: `${n}` }], raw: [sha256(utf8(`f${n}`))] };
  }
}

describe.skipIf(skip !== undefined)(`two ingest workers on a $share subscription, PostgreSQL, mosquitto${skip === undefined ? '' : ` (skipped: ${skip})`}`, () => {
  it(
    'stores every reading once and anchors every batch once through a worker SIGKILL and a broker restart; bundles verify',
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'stele-workers-'));
      cleanups.push(() => rm(dir, { recursive: true, force: true }));
      const db = await createTestDatabase();
      cleanups.push(() => db.drop());
      const url = new URL(db.url);
      const password = decodeURIComponent(url.password);
      url.password = '';
      await writeFile(join(dir, 'pg-password'), `${password}\n`, { mode: 0o600 });
      const sql = postgres(db.url, { max: 2, onnotice: () => {} });
      cleanups.push(() => sql.end({ timeout: 1 }));
      const broker: RestartableMosquitto = await startRestartableMosquitto(await mkdtemp(join(dir, 'mosq-')));
      cleanups.push(() => broker.close());
      const anvil: AnvilNode = await startAnvil({ stateDir: join(dir, 'anvil') });
      cleanups.push(() => anvil.stop());

      // One ingest key for both workers; the contract deployed once, its address given to each worker's data dir.
      const dirs = [join(dir, 'w1'), join(dir, 'w2')];
      const io = () => captureIo();
      const init = io();
      expect(await runIngest(['init', '--data', dirs[0]!, '--key', join(dir, 'ingest.pem')], init), init.stderr.text).toBe(0);
      await writeFile(join(dir, 'anchor.key'), `${ANVIL_DEV_PRIVATE_KEY}\n`, { mode: 0o600 });
      const deploy = io();
      expect(await runIngest(['deploy-contract', '--rpc', anvil.rpcUrl, '--anchor-key-file', join(dir, 'anchor.key'), '--data', dirs[0]!], deploy), deploy.stderr.text).toBe(0);
      const init2 = io();
      expect(await runIngest(['init', '--data', dirs[1]!, '--key', join(dir, 'ingest-unused.pem')], init2), init2.stderr.text).toBe(0);
      await copyFile(join(dirs[0]!, 'anchor-contract.json'), join(dirs[1]!, 'anchor-contract.json'));
      const contract = (JSON.parse(await readFile(join(dirs[0]!, 'anchor-contract.json'), 'utf8')) as { contract: Address }).contract;
      const ingestKey = await loadSoftwareSigner(join(dir, 'ingest.pem'));

      // Ten gateways, enrolled in the shared store.
      const devices = await Promise.all(Array.from({ length: GATEWAYS }, (_, i) => createSoftwareKey(join(dir, `gw-${i}.pem`))));
      const enroller = await IngestService.openOffline({ dataDir: join(dir, 'unused-store'), store: db.url, signer: ingestKey, issuer: 'stele-ingest' });
      for (const [i, d] of devices.entries()) await enroller.enrol(makeEnrolmentRecord(d, `gw-${i}`, `stack ${i}`));
      await enroller.stop();

      const startWorker = (i: number): Worker => {
        const args = ['ingest', 'run', '--mqtt', broker.url, '--data', dirs[i]!, '--key', join(dir, 'ingest.pem'), '--rpc', anvil.rpcUrl, '--anchor-key-file', join(dir, 'anchor.key')];
        args.push('--store', url.toString(), '--store-password-file', join(dir, 'pg-password'), '--share', 'stele-workers', '--batch-ms', '400', '--health-port', '0', '--anchor-lease-ms', '2000');
        const proc = spawn(process.execPath, [join(repoRoot, 'cli', 'bin', 'stele.mjs'), ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
        const w: Worker = { proc, out: '', exited: new Promise((r) => proc.once('exit', (code) => r(code))) };
        proc.stdout!.on('data', (d: Buffer) => (w.out += d.toString()));
        proc.stderr!.on('data', (d: Buffer) => (w.out += d.toString()));
        cleanups.push(async () => {
          if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
          await w.exited;
        });
        return w;
      };
      const workers = [startWorker(0), startWorker(1)];
      for (const w of workers) await waitFor(() => w.out.includes('"msg":"ingest running"') || w.proc.exitCode !== null, 'worker running', 90_000);
      for (const w of workers) expect(w.proc.exitCode, w.out).toBeNull();

      const outboxes: Outbox[] = [];
      for (const [i, d] of devices.entries()) {
        const outbox = await Outbox.open(join(dir, `outbox-${i}`));
        const publisher = new Publisher({ mqttUrl: broker.url, deviceId: `gw-${i}`, outbox, ingestKey: ingestKey.publicKey, reconnectPeriodMs: 200, resendAfterMs: 1500 });
        const agent = new GatewayAgent({ deviceId: `gw-${i}`, signer: d, outbox, publisher });
        cleanups.push(async () => {
          await agent.stop();
          await outbox.close();
        });
        outboxes.push(outbox);
        await publisher.start();
        agent.addSource('s', readings(60));
      }
      const stored = async () => Number((await sql`select count(*) as n from entries where device_id not like ${'\u0001%'}`)[0]!['n']);

      // SIGKILL one worker while readings flow and a batch is being cut, then restart the broker.
      await waitFor(async () => (await stored()) >= (GATEWAYS * READINGS) / 4, 'a quarter of the readings stored', 60_000, 50);
      workers[0]!.proc.kill('SIGKILL');
      await workers[0]!.exited;
      await waitFor(async () => (await stored()) >= (GATEWAYS * READINGS) / 2, 'half of the readings stored', 60_000, 50);
      await broker.restart();

      // Every gateway confirmed up to its last reading (the gateways resend what the dead worker held).
      await waitFor(() => outboxes.every((o) => o.ackedUpTo() === READINGS), 'every reading confirmed', 120_000, 100);
      // Everything sealed and anchored (final) by the surviving worker, the dead worker's leased jobs included.
      await waitFor(
        async () => Number((await sql`select (select count(*) from pending) + (select count(*) from batches where anchor is null) as n`)[0]!['n']) === 0,
        'every batch sealed and anchored',
        120_000,
        200,
      );

      // Database: every reading once, contiguous per device.
      const perDevice = await sql`select device_id, count(*) as n, count(distinct seq) as d, min(seq) as lo, max(seq) as hi from entries
        where device_id not like ${'\u0001%'} group by device_id order by device_id`;
      expect(perDevice.map((r) => [r['device_id'], Number(r['n']), Number(r['d']), Number(r['lo']), Number(r['hi'])])).toEqual(
        Array.from({ length: GATEWAYS }, (_, i) => [`gw-${i}`, READINGS, READINGS, 1, READINGS]).sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
      );
      expect(Number((await sql`select count(*) as n from entries where batch_id is null`)[0]!['n'])).toBe(0);
      const batches = await sql`select batch_id, root, size from batches order by batch_id`;
      expect(batches.length).toBeGreaterThan(1);

      // Chain: one Anchored log per batch, with its root and size, and one transaction per batch from the account.
      const client = createPublicClient({ transport: http(anvil.rpcUrl) });
      const logs = await client.getContractEvents({ address: contract, abi: STELE_ANCHOR_ABI, eventName: 'Anchored', fromBlock: 0n, toBlock: 'latest' });
      expect(logs.map((l) => Number(l.args.batchId)).sort((a, b) => a - b)).toEqual(batches.map((b) => Number(b['batch_id'])));
      for (const b of batches) {
        const log = logs.find((l) => Number(l.args.batchId) === Number(b['batch_id']))!;
        expect(log.args.root).toBe(`0x${Buffer.from(b['root'] as Uint8Array).toString('hex')}`);
        expect(Number(log.args.size)).toBe(Number(b['size']));
      }
      const account = ingestAccount();
      const sent = await client.getTransactionCount({ address: account, blockTag: 'latest' });
      expect(sent).toBe(1 + batches.length); // the deployment, then exactly one anchor transaction per batch

      // Evidence: each gateway's whole window from the surviving worker verifies against the chain.
      const { url: api } = JSON.parse(await readFile(join(dirs[1]!, 'ingest-http.json'), 'utf8')) as { url: string };
      for (let i = 0; i < GATEWAYS; i++) {
        const res = await fetch(`${api}/bundle?device=gw-${i}&first=1&last=${READINGS}`);
        expect(res.status).toBe(200);
        const bundle = parseBundle(await res.json());
        const verdict = await verifyBundle(bundle, { anchorReader: (ref, batchId, rpc) => readAnchor(rpc ?? ref.rpc!, ref, batchId), trust: await policyTrustingBundle(bundle) });
        expect(verdict.checks.filter((c) => c.status === 'fail').flatMap((c) => c.failures.map((f) => f.code))).toEqual([]);
        expect(verdict.state).toBe('verified');
      }
      expect(workers[1]!.proc.exitCode, workers[1]!.out.slice(-2000)).toBeNull();
      expect(workers[1]!.out).toContain('subscribed again after reconnect');
    },
    420_000,
  );
});

/** The anvil dev account's address (the anchoring key here). */
function ingestAccount(): Address {
  return '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266';
}
