/**
 * Two ingest services on one PostgreSQL store, both receiving every message (aedes has no shared subscriptions,
 * so each statement reaches both: the hardest case for the store's idempotence and conflicts). Statements arrive
 * out of order. Every reading is stored once, no fork is recorded, the gateway gets its confirmations, and the
 * batch one worker seals verifies in the bundle the other exports. (Two workers on an MQTT 5 `$share` group and
 * exactly-once anchoring across workers are issue #11's next steps.)
 */
import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { parseBundle, readAnchor, verifyBundle } from '@stele/core';
import { policyTrustingBundle } from '@stele/core/testing';
import { IngestService } from '../../service.ts';
import { enrolmentOf, makeChain, tempDir, testSigner, TestGateway, useIngestStack, waitFor } from '../../test-helpers.ts';
import { createTestDatabase, postgresAvailable } from './test-database.ts';

const stack = useIngestStack('ingest-two-writers');
const pg = await postgresAvailable();

describe.skipIf(!pg.ok)(`two ingest workers on one PostgreSQL store${pg.ok ? '' : ` (skipped: ${pg.reason})`}`, () => {
  it('stores every reading once when both receive every statement, out of order, and confirms up to the last', async () => {
    const db = await createTestDatabase();
    stack.cleanups.push(() => db.drop());
    const ingestKey = testSigner();
    const start = async (anchorer: Awaited<ReturnType<typeof stack.newAnchorer>>) => {
      const dir = await tempDir('ingest-two');
      stack.cleanups.push(() => dir.remove());
      const s = await IngestService.start({ mqttUrl: stack.broker.url, dataDir: dir.path, store: db.url, signer: ingestKey, issuer: 'stele-ingest-test', anchorer, batchIntervalMs: 60_000 });
      stack.cleanups.push(() => s.stop());
      return s;
    };
    const anchorer = await stack.newAnchorer();
    const a = await start(anchorer);
    const b = await start(anchorer);
    const device = testSigner();
    await a.enrol(enrolmentOf(device, 'gw-two-1'));
    const gw = await TestGateway.connect(stack.broker.url, 'gw-two-1');
    stack.cleanups.push(() => gw.close());

    const n = 60;
    const chain = await makeChain(device, 'gw-two-1', n);
    // Out of order in blocks: 11..20, 1..10, 31..40, 21..30, 51..60, 41..50.
    const order = [1, 0, 3, 2, 5, 4].flatMap((blk) => chain.slice(blk * 10, blk * 10 + 10));
    for (const r of order) await gw.publish(r);
    await waitFor(() => gw.ackedUpTo === n, `stored confirmation up to ${n}`, 60_000);

    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    stack.cleanups.push(() => sql.end({ timeout: 1 }));
    expect(Number((await sql`select count(*) as n from entries where device_id = 'gw-two-1'`)[0]!['n'])).toBe(n);
    expect(Number((await sql`select count(*) as n from pending`)[0]!['n'])).toBe(n + 1); // + the enrolment statement
    expect(Number((await sql`select count(*) as n from forks`)[0]!['n'])).toBe(0);
    for (const s of [a, b]) {
      const rejected = s.stats().rejected;
      expect(rejected['FORK_ERROR'] ?? 0).toBe(0);
      expect(rejected['CHAIN_LINK_ERROR'] ?? 0).toBe(0);
    }
    // both processed every statement: what one committed, the other saw as a duplicate or found committed
    expect(a.stats().readings + b.stats().readings).toBeGreaterThanOrEqual(n);

    await a.flush();
    expect(Number((await sql`select count(*) as n from pending`)[0]!['n'])).toBe(0);
    const bundle = parseBundle(await b.exportBundle('gw-two-1', 1, n));
    const verdict = await verifyBundle(bundle, { anchorReader: (ref, batchId) => readAnchor(stack.anvil.rpcUrl, ref, batchId), trust: await policyTrustingBundle(bundle) });
    expect(verdict.checks.filter((c) => c.status === 'fail').flatMap((c) => c.failures.map((f) => f.code))).toEqual([]);
    expect(verdict.state).toBe('verified');
  }, 120_000);
});
