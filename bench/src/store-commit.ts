/**
 * The ingest store alone (issue #11): commits as ingest makes them (one device's contiguous group per atomic
 * commit, several devices in flight) and sealing (sealBatch of 4096), on LevelDB and on PostgreSQL, plus
 * PostgreSQL's bytes per committed statement (table + indexes). No signatures, no MQTT: the store's own ceiling.
 * Each statement carries a real reading with its index fields, as ingest commits it (four rows on LevelDB, and one pending row per group). For
 * LevelDB also the CPU per statement of committing and sealing: this process with LevelDB's own threads, until 4 s
 * after the last seal (the compactions the load caused, finished).
 *
 *   npx tsx bench/src/store-commit.ts [--statements 50000] [--group 64] [--in-flight 8]
 *
 * PostgreSQL: STELE_TEST_POSTGRES (default postgres://stele:stele@127.0.0.1:5432/postgres, a role with CREATEDB);
 * a database with a random name is created and dropped.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { LevelStore, PostgresStore, type IngestStore } from '@stele/ingest';
import { encodeReading, GENESIS_PREV, readingDigest, sha256, utf8 } from '@stele/core';
import { createTestDatabase, postgresAvailable, readingAt } from '@stele/ingest/testing';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const STATEMENTS = arg('statements', 50_000);
const GROUP = arg('group', 64);
const IN_FLIGHT = arg('in-flight', 8);
const DEVICES = 200;

/** The commit groups, built before the timing: (device, items, head), interleaved across devices like a fleet. */
function groups(): { deviceId: string; items: Parameters<IngestStore['commit']>[1]; head: { seq: number; digest: Uint8Array } }[] {
  const perDevice = Math.ceil(STATEMENTS / DEVICES);
  const prev = Array.from({ length: DEVICES }, () => GENESIS_PREV);
  const out: ReturnType<typeof groups> = [];
  for (let from = 1; from <= perDevice; from += GROUP) {
    for (let d = 0; d < DEVICES; d++) {
      const deviceId = `gw-${d}`;
      const items = [];
      for (let seq = from; seq <= Math.min(from + GROUP - 1, perDevice); seq++) {
        const r = readingAt(deviceId, seq, prev[d]!);
        const reading = encodeReading(r);
        prev[d] = readingDigest(reading);
        const statement = utf8(`statement ${d} ${seq} ${'x'.repeat(120)}`);
        items.push({ seq, entry: { statement, reading, receivedAt: Date.now() }, leafHash: sha256(statement), index: { raw: r.raw, deviceTime: r.time } });
      }
      out.push({ deviceId, items, head: { seq: items[items.length - 1]!.seq, digest: prev[d]! } });
    }
  }
  return out;
}

async function run(name: string, store: IngestStore): Promise<{ commitPerSec: number; sealPerSec: number; cpuUsPerStatement: number }> {
  const work = groups();
  let next = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const lanes = Array.from({ length: IN_FLIGHT }, async () => {
    // one lane per device group at a time; a device's groups are in order because its groups come in order
    // and a lane only takes a device whose previous group is done (ensured by the per-round layout and IN_FLIGHT <= DEVICES)
    for (;;) {
      const g = work[next++];
      if (g === undefined) return;
      await store.commit(g.deviceId, g.items, g.head);
    }
  });
  await Promise.all(lanes);
  const committed = work.reduce((n, g) => n + g.items.length, 0);
  const commitSec = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  let sealed = 0;
  for (;;) {
    const row = await store.sealBatch(4096, async (batchId, leaves) => ({
      batchId,
      size: leaves.length,
      root: new Uint8Array(32),
      leafHashes: leaves.map((l) => l.leafHash),
      protectedBytes: new Uint8Array(40),
      signature: new Uint8Array(64),
      createdAt: Date.now(),
    }));
    if (row === undefined) break;
    sealed += row.size;
  }
  const sealSec = (performance.now() - t1) / 1000;
  await new Promise((r) => setTimeout(r, 4000)); // LevelDB's compactions of this load
  const cpu = process.cpuUsage(cpu0);
  const r = { commitPerSec: committed / commitSec, sealPerSec: sealed / sealSec, cpuUsPerStatement: (cpu.user + cpu.system) / committed };
  console.error(
    `${name}: ${committed} statements committed in ${commitSec.toFixed(1)} s (${Math.round(r.commitPerSec)}/s), ${sealed} sealed in ${sealSec.toFixed(1)} s (${Math.round(r.sealPerSec)}/s); ` +
      `CPU of this process ${r.cpuUsPerStatement.toFixed(1)} us per statement${store.kind === 'leveldb' ? ' (LevelDB included)' : ' (the server not included)'}`,
  );
  return r;
}

const dir = await mkdtemp(join(tmpdir(), 'stele-store-bench-'));
const level = await LevelStore.open(dir);
const lv = await run('LevelDB', level);
await level.close();
await rm(dir, { recursive: true, force: true });

const pg = await postgresAvailable();
if (!pg.ok) {
  console.error(`PostgreSQL skipped: ${pg.reason}`);
} else {
  const db = await createTestDatabase();
  try {
    const store = await PostgresStore.open(db.url);
    const p = await run('PostgreSQL', store);
    await store.close();
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    const [row] = await sql`select pg_total_relation_size('entries') as entries, pg_total_relation_size('raw_index') as raw, (select count(*) from entries) as n`;
    const perRow = Number(row!['entries']) / Number(row!['n']);
    await sql.end();
    console.log(`| store | committed/s (groups of ${GROUP}, ${IN_FLIGHT} devices in flight) | sealed/s (batches of 4096) | CPU per statement, us (LevelDB: with its compactions) |`);
    console.log('|---|---|---|---|');
    console.log(`| LevelDB | ${Math.round(lv.commitPerSec)} | ${Math.round(lv.sealPerSec)} | ${lv.cpuUsPerStatement.toFixed(1)} |`);
    console.log(`| PostgreSQL 15 | ${Math.round(p.commitPerSec)} | ${Math.round(p.sealPerSec)} | - (server not counted) |`);
    console.log(`\nPostgreSQL entries table with its indexes: ${Math.round(perRow)} bytes per statement (a reading as ingest's test helper readingAt makes it, a 130-byte statement)`);
  } finally {
    await db.drop();
  }
}
