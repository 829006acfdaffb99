/**
 * The `lab-db` driver (issue #12 item 2) against a real PostgreSQL (STELE_TEST_POSTGRES; a database with a random
 * name, dropped afterwards): the gateway config an installer writes -> InstrumentRunner -> one reading per final
 * row, rows not final held back and counted, the cursor persisted across a restart (no row signed twice), a
 * corrected row signed again; `stele gateway doctor`'s check names a missing column.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type InstrumentConfig } from '../config/config.ts';
import { checkLocalSource } from '../doctor/doctor.ts';
import type { Acquired } from '../outbox.ts';
import { InstrumentRunner } from './instrument.ts';

const ADMIN_URL = process.env['STELE_TEST_POSTGRES'] ?? 'postgres://stele:stele@127.0.0.1:5432/postgres';
const NOW = Date.UTC(2026, 10, 20, 6, 0, 0);

async function reachable(): Promise<string | undefined> {
  const sql = postgres(ADMIN_URL, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await sql`select 1`;
    return undefined;
  } catch (e) {
    const reason = `PostgreSQL not reachable (${(e as Error).message})`;
    if (process.env['CI'] === 'true') throw new Error(`${reason}; .ci/run must install and start it`);
    return reason;
  } finally {
    await sql.end({ timeout: 1 }).catch(() => undefined);
  }
}
const skip = await reachable();

describe.skipIf(skip !== undefined)(`lab-db driver on PostgreSQL${skip === undefined ? '' : ` (skipped: ${skip})`}`, () => {
  const name = `stele_labdb_${crypto.randomUUID().replaceAll('-', '').slice(0, 12)}`;
  let dir: string;
  let db: postgres.Sql;
  let ins: InstrumentConfig;
  let bad: InstrumentConfig;

  beforeAll(async () => {
    const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database ${name}`);
    await admin.end({ timeout: 1 });
    const u = new URL(ADMIN_URL);
    u.pathname = `/${name}`;
    db = postgres(u.toString(), { max: 1, onnotice: () => {} });
    await db`create table assay (id text primary key, sample text not null, qnet numeric, st numeric, approved boolean not null default false, updated_at timestamptz not null)`;
    dir = await mkdtemp(join(tmpdir(), 'stele-labdb-'));
    await writeFile(join(dir, 'db.password'), `${u.password}\n`, { mode: 0o600 });
    const user = decodeURIComponent(u.username);
    const yaml = (table: string, extra = '') => `gateway: { id: gw-lab, dataDir: ${join(dir, 'data')} }
key: { software: { path: k.pem } }
broker: { url: mqtt://127.0.0.1:1883 }
instruments:
  - id: lims-1
    driver: lab-db
    options:
      url: postgres://${user}@${u.host}/${name}
      passwordFile: ${join(dir, 'db.password')}
      table: ${table}
      key: id
      cursor: updated_at
      final: approved
      interval: 1s
      columns:
        - { column: sample, code: AssayCode, kind: id }
        - { column: qnet, code: "Qnet,v,ar", kind: ar, unit: MJ/kg }
        - { column: st, code: "St,ad", kind: ad, unit: "%" }${extra}
`;
    ins = parseConfig(yaml('public.assay'), join(dir, 'gateway.yaml')).instruments[0]!;
    bad = parseConfig(yaml('assay', '\n        - { column: mad, code: Mad, kind: ad }'), join(dir, 'gateway.yaml')).instruments[0]!;
  });
  afterAll(async () => {
    await db?.end({ timeout: 1 });
    const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
    await admin.unsafe(`drop database if exists ${name} with (force)`).catch(() => undefined);
    await admin.end({ timeout: 1 });
    await rm(dir, { recursive: true, force: true });
  });

  function runner() {
    return new InstrumentRunner(ins, { clock: () => ({ synced: true, source: 'test' }), log: () => undefined, now: () => NOW, stateDir: join(dir, 'data', 'instruments') });
  }

  it('the config puts the database where a port would be, without a password; an URL with one is refused', () => {
    expect(ins.driver).toBe('lab-db');
    expect(ins.port).toMatch(/^postgres:\/\/[^:]+@[^/]+\/stele_labdb_\w+#public\.assay$/);
    expect(() => parseConfig(`gateway: { id: g, dataDir: ./d }\nkey: { software: { path: k.pem } }\nbroker: { url: mqtt://127.0.0.1:1883 }\ninstruments:\n  - { id: l, driver: lab-db, options: { url: "postgres://u:secret@h:5432/d", table: t, key: id, cursor: c, columns: [{ column: a, code: A, kind: ad }] } }\n`, '/etc/stele/gateway.yaml')).toThrow(/instruments\[0\]\.options\.url/);
  });

  it('signs one reading per final row; a row not final is held and counted; after a restart only new or corrected rows come', async () => {
    await db`insert into assay values ('r1', 'A1', 24.1234, 0.52, true, '2026-11-20T08:00:00Z'), ('r2', 'A2', 20.5, 0.40, false, '2026-11-20T08:10:00Z')`;
    let r = runner();
    let it = r.source()[Symbol.asyncIterator]();
    const first = (await it.next()).value as Acquired;
    expect(first.sensor).toBe('lims-1');
    expect(first.meas).toEqual([
      { code: 'AssayCode', kind: 'id', value: 'A1' },
      { code: 'Qnet,v,ar', kind: 'ar', value: '24.1234', unit: 'MJ/kg' },
      { code: 'St,ad', kind: 'ad', value: '0.52', unit: '%' },
    ]);
    expect(first.raw).toHaveLength(1);
    expect(r.status().rejections).toMatchObject({ COAL_NOT_FINAL: 1 });
    // approval of r2 while running: the next poll signs it
    await db`update assay set approved = true where id = 'r2'`;
    const second = (await it.next()).value as Acquired;
    expect(second.meas[0]).toEqual({ code: 'AssayCode', kind: 'id', value: 'A2' });
    await r.stop();

    // restart on the same state folder: r1 and r2 are not signed again; a corrected r1 (new digest) and a new r3 are
    await db`update assay set qnet = 24.2000, updated_at = '2026-11-20T09:00:00Z' where id = 'r1'`;
    await db`insert into assay values ('r3', 'A3', 19.9, 0.61, true, '2026-11-20T09:05:00Z')`;
    r = runner();
    it = r.source()[Symbol.asyncIterator]();
    const a = (await it.next()).value as Acquired;
    const b = (await it.next()).value as Acquired;
    expect([a, b].map((x) => [x.meas[0]!.value, x.meas[1]!.value])).toEqual([['A1', '24.2000'], ['A3', '19.9']]);
    expect(a.raw[0]).not.toEqual(first.raw[0]);
    await r.stop();
  }, 60_000);

  it('doctor: the table and columns readable is ok; a missing column or an unreachable database fails with the fix', async () => {
    expect(await checkLocalSource(ins)).toEqual([expect.objectContaining({ status: 'ok' })]);
    const missing = await checkLocalSource(bad);
    expect(missing).toEqual([expect.objectContaining({ status: 'fail', code: 'INSTRUMENT_SOURCE_MISSING' })]);
    expect(missing[0]!.message).toMatch(/no column mad/);
    const o = ins.options as { url: string };
    const wrong = await checkLocalSource({ ...ins, options: { ...o, url: o.url.replace(/\/[^/]+$/, `/${name}_gone`) } });
    expect(wrong).toEqual([expect.objectContaining({ status: 'fail', code: 'INSTRUMENT_SOURCE_DENIED' })]);
  }, 30_000);
});
