/**
 * Real ingest on the PostgreSQL store, end to end, through the command a user runs: `stele ingest run --store
 * postgres://... --store-password-file F`. Readings come in over MQTT out of order (held in the store until the
 * gap fills), signed confirmations come back, a batch is sealed and anchored on the embedded chain, the bundle
 * verifies; after a restart on the same database the device's head, its registry and the batch counter come from
 * the store. Needs the PostgreSQL server .ci/run starts (skipped with the reason when it is not reachable here).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import postgres from 'postgres';
import { afterEach, describe, expect, it } from 'vitest';
import { readAnchor, parseBundle, verifyBundle } from '@stele/core';
import { policyTrustingBundle } from '@stele/core/testing';
import { provisionGateway, loadSoftwareSigner } from '@stele/device';
import { captureIo, freePort } from '@stele/testkit';
import { runIngest, type IngestIo } from '../../cli.ts';
import { makeChain, startBroker, tempDir, TestGateway, waitFor } from '../../test-helpers.ts';
import { createTestDatabase, postgresAvailable } from './test-database.ts';

const io = captureIo;

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const pg = await postgresAvailable();

describe.skipIf(!pg.ok)(`stele ingest run --store postgres://${pg.ok ? '' : ` (skipped: ${pg.reason})`}`, () => {
  it(
    'takes readings over MQTT in any order, confirms them, seals and anchors a batch whose bundle verifies, and resumes from the database',
    async () => {
      const db = await createTestDatabase();
      cleanups.push(() => db.drop());
      const dir = await tempDir('ingest-pg');
      cleanups.push(() => dir.remove());
      const broker = await startBroker();
      cleanups.push(() => broker.close());

      // The URL names the user; the password is in a 0600 file, never on the command line.
      const url = new URL(db.url);
      const password = decodeURIComponent(url.password);
      url.password = '';
      await writeFile(join(dir.path, 'pg-password'), `${password}\n`, { mode: 0o600 });
      const storeArgs = ['--store', url.toString(), '--store-password-file', join(dir.path, 'pg-password')];
      const refused = io();
      expect(await runIngest(['run', '--mqtt', broker.url, '--data', dir.path, '--embedded-chain', '--store', db.url], refused)).toBe(2);
      expect(refused.stderr.text).toMatch(/--store must not carry a password/);

      expect(await runIngest(['init', '--data', dir.path], io())).toBe(0);
      const p = await provisionGateway({
        backend: { kind: 'software', keyFile: join(dir.path, 'gw-pg-1.pem') },
        deviceId: 'gw-pg-1',
        site: 'stack 2',
        instruments: [{ id: 'cems-1' }],
        installerKeyFile: join(dir.path, 'installer.pem'),
        createInstallerKey: true,
        outDir: join(dir.path, 'usb'),
      });
      await writeFile(join(dir.path, 'installer-keys.txt'), `${p.request.installer.publicKey}\n`);
      const device = await loadSoftwareSigner(join(dir.path, 'gw-pg-1.pem'));

      // One chain port for both runs: the anchors of the first run name its RPC URL.
      const chainPort = String(await freePort());
      const start = () => {
        const out = io();
        const abort = new AbortController();
        const running = runIngest(['run', '--mqtt', broker.url, '--data', dir.path, '--embedded-chain', '--chain-port', chainPort, '--batch-ms', '200', '--health-port', '0', ...storeArgs], {
          ...out,
          signal: abort.signal,
        } satisfies IngestIo);
        const stop = async () => {
          abort.abort();
          return running;
        };
        return { out, running, stop };
      };

      let ingest = start();
      cleanups.push(() => ingest.stop());
      await waitFor(() => ingest.out.stdout.lines().some((l) => l['msg'] === 'ingest running'), 'ingest running', 60_000);
      const running = ingest.out.stdout.lines().find((l) => l['msg'] === 'ingest running')!;
      expect(running['store']).toMatch(/^postgres:\/\/stele(:\*\*\*)?@127\.0\.0\.1/); // no password in the log
      expect(ingest.out.stdout.text).not.toContain(`:${password}@`);
      expect(await runIngest(['enrol', p.requestFile, '--data', dir.path], io())).toBe(0);

      const n = 30;
      const chain = await makeChain(device, 'gw-pg-1', n + 5);
      const gw = await TestGateway.connect(broker.url, 'gw-pg-1');
      cleanups.push(() => gw.close());
      // Out of order: 2..n first (held in the store behind the gap), then 1.
      for (const r of chain.slice(1, n)) await gw.publish(r);
      const sql = postgres(url.toString(), { password, max: 1, onnotice: () => {} });
      cleanups.push(() => sql.end({ timeout: 1 }));
      await waitFor(async () => Number((await sql`select count(*) as n from held`)[0]!['n']) === n - 1, 'statements 2..n held in the store', 30_000);
      expect(gw.ackedUpTo).toBe(0);
      await gw.publish(chain[0]!);
      await waitFor(() => gw.ackedUpTo === n, `stored confirmation up to ${n}`, 30_000);
      const { url: http } = JSON.parse(await readFile(join(dir.path, 'ingest-http.json'), 'utf8')) as { url: string };
      const health = (await (await fetch(`${http}/health`)).json()) as Record<string, unknown>;
      expect(health).toMatchObject({ status: 'ok', readings: n });
      // The confirmation is signed by the ingest key over the head the store holds.
      const stored = gw.confirmations.filter((c) => c.type === 'stored').at(-1)!;
      const [head] = await sql`select seq, digest from heads where device_id = 'gw-pg-1'`;
      expect(Number(head!['seq'])).toBe(n);
      expect(Buffer.from(stored.head).equals(head!['digest'] as Buffer)).toBe(true);
      expect(Number((await sql`select count(*) as n from held`)[0]!['n'])).toBe(0);

      const token = (await readFile(join(dir.path, 'admin-token'), 'utf8')).trim();
      expect((await fetch(`${http}/flush`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
      await waitFor(() => gw.confirmations.some((c) => c.type === 'anchored' && c.upTo === n), 'anchored confirmation', 30_000);
      expect(Number((await sql`select count(*) as n from pending`)[0]!['n'])).toBe(0);
      expect((await sql`select batch_id from batches where anchor is null`).length).toBe(0);
      const res = await fetch(`${http}/bundle?device=gw-pg-1&first=1&last=${n}`);
      expect(res.status).toBe(200);
      const bundle = parseBundle(await res.json());
      const verdict = await verifyBundle(bundle, { anchorReader: (ref, batchId, rpc) => readAnchor(rpc ?? ref.rpc!, ref, batchId), trust: await policyTrustingBundle(bundle) });
      expect(verdict.checks.filter((c) => c.status === 'fail').flatMap((c) => c.failures.map((f) => f.code))).toEqual([]);
      expect(verdict.state).toBe('verified');
      // Readings by time, from the PostgreSQL indexes (device time of readings in full: T0 + seq s).
      const T0 = 1_700_000_000_000;
      const hour = (await (await fetch(`${http}/devices/gw-pg-1/readings?by=device&from=${T0 + 1000}&to=${T0 + 4000}`)).json()) as { readings: { seq: number }[] };
      expect(hour.readings.map((r) => r.seq)).toEqual([1, 2, 3]);
      const byTime = parseBundle(await (await fetch(`${http}/bundle?device=gw-pg-1&by=device&from=${T0 + 1000}&to=${T0 + 4000}`)).json());
      expect(byTime.window).toEqual({ firstSeq: 1, lastSeq: 3 });
      const batchesBefore = Number((await sql`select next_batch from stele_state`)[0]!['next_batch']);

      // Restart on the same database: the head, the key registry and the batch counter come from the store.
      expect(await ingest.stop()).toBe(0);
      ingest = start();
      await waitFor(() => ingest.out.stdout.lines().some((l) => l['msg'] === 'ingest running'), 'ingest running again', 60_000);
      for (const r of chain.slice(n)) await gw.publish(r);
      await waitFor(() => gw.ackedUpTo === n + 5, `stored confirmation up to ${n + 5}`, 30_000);
      const { url: http2 } = JSON.parse(await readFile(join(dir.path, 'ingest-http.json'), 'utf8')) as { url: string };
      expect((await fetch(`${http2}/flush`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
      expect(Number((await sql`select next_batch from stele_state`)[0]!['next_batch'])).toBeGreaterThan(batchesBefore);
      const all = parseBundle(await (await fetch(`${http2}/bundle?device=gw-pg-1&first=1&last=${n + 5}`)).json());
      const v2 = await verifyBundle(all, { anchorReader: (ref, batchId, rpc) => readAnchor(rpc ?? ref.rpc!, ref, batchId), trust: await policyTrustingBundle(all) });
      expect(v2.state).toBe('verified');
      expect(Number((await sql`select count(*) as n from entries where device_id = 'gw-pg-1'`)[0]!['n'])).toBe(n + 5);
      expect(await ingest.stop()).toBe(0);

      // With ingest stopped, `revoke` opens the store `run` used (DIR/ingest-store.json), not DIR/store.
      const revoke = io();
      expect(await runIngest(['revoke', 'gw-pg-1', '--reason', 'stolen', '--data', dir.path], revoke)).toBe(0);
      const [log] = await sql`select seq from heads where device_id = ${'\u0001gw-pg-1'}`;
      expect(Number(log!['seq'])).toBe(2); // the enrolment, then the revocation
    },
    180_000,
  );
});
