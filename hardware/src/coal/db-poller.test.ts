import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { toHex, sha256 } from '@stele/core';
import { DatabasePoller, type DbRowEvent, KAIYUAN_5E_CALORIMETER_COLUMNS, canonicalRowBytes, coalResultFromRow, measurementsFromRow } from './db-poller.ts';

// Fixture: an in-memory table shaped like the Kaiyuan 5E calorimeter table `win5emdb` (PROTOCOLS.md §3.1 field
// names), with an `Audited` column standing in for the site's approval state. query() mimics
// `SELECT * FROM win5emdb WHERE Testtime >= ?`.
interface Row extends Record<string, unknown> {
  Number: string;
  Mancoding: string;
  Testtime: string;
  Qgrad: number;
  St: number;
  Mad: number;
  Weight: number;
  Testman: string;
  Audited: boolean;
  Aborted?: boolean;
}
let table: Row[];
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stele-db-'));
  table = [
    { Number: '1', Mancoding: 'HY1', Testtime: '2024-03-01T08:00:00', Qgrad: 23456, St: 0.82, Mad: 1.9, Weight: 1.0012, Testman: '张三', Audited: true },
    { Number: '2', Mancoding: 'HY2', Testtime: '2024-03-01T08:10:00', Qgrad: 22001, St: 0.91, Mad: 2.1, Weight: 0.9987, Testman: '张三', Audited: false },
    { Number: '3', Mancoding: 'HY3', Testtime: '2024-03-01T08:20:00', Qgrad: 24510, St: 0.7, Mad: 1.5, Weight: 1.0101, Testman: '李四', Audited: true },
  ];
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function makePoller() {
  const queries: (string | undefined)[] = [];
  const p = new DatabasePoller<Row>({
    query: async (since) => {
      queries.push(since);
      return table.filter((r) => since === undefined || r.Testtime >= since).map((r) => ({ ...r }));
    },
    key: (r) => r.Number,
    cursor: (r) => r.Testtime,
    isFinal: (r) => r.Audited,
    isAbandoned: (r) => r.Aborted === true,
    stateFile: join(dir, 'db-state.json'),
  });
  return { p, queries };
}

describe('DatabasePoller', () => {
  it('hands over only final rows, holds the cursor at the oldest non-final row, and picks it up once approved', async () => {
    const { p, queries } = makePoller();
    const seen: DbRowEvent<Row>[] = [];
    const h = (e: DbRowEvent<Row>) => {
      seen.push(e);
    };
    const r1 = await p.pollOnce(h);
    expect(r1.processed).toEqual(['1', '3']);
    expect(r1.waiting).toEqual(['2']);
    expect(r1.cursor).toBe('2024-03-01T08:10:00');
    expect((await p.pollOnce(h)).processed).toEqual([]); // 3 is remembered at/after the cursor
    table[1]!.Audited = true; // approval does not change Testtime
    const r3 = await p.pollOnce(h);
    expect(r3.processed).toEqual(['2']);
    expect(r3.cursor).toBe('2024-03-01T08:20:00');
    expect(queries).toEqual([undefined, '2024-03-01T08:10:00', '2024-03-01T08:10:00']);
    expect(seen.map((e) => e.key)).toEqual(['1', '3', '2']);
    expect(toHex(seen[0]!.sha256)).toBe(toHex(sha256(canonicalRowBytes(table[0]!))));
  });

  it('does not re-emit after a restart, and re-emits a final row whose content changed', async () => {
    const h = () => undefined;
    await makePoller().p.pollOnce(h);
    const { p } = makePoller();
    expect((await p.pollOnce(h)).processed).toEqual([]);
    table[2]!.Qgrad = 24520; // corrected and re-approved
    expect((await p.pollOnce(h)).processed).toEqual(['3']);
  });

  it('lets an abandoned row release the cursor', async () => {
    table[1]!.Aborted = true;
    const { p } = makePoller();
    expect((await p.pollOnce(() => undefined)).cursor).toBe('2024-03-01T08:20:00');
  });

  it('retries a row whose handler failed', async () => {
    const { p } = makePoller();
    const r = await p.pollOnce((e) => {
      if (e.key === '3') throw new Error('down');
    });
    expect(r.processed).toEqual(['1']);
    expect(r.failed.map((f) => f.key)).toEqual(['3']);
    expect((await p.pollOnce(() => undefined)).processed).toEqual(['3']);
  });

  it('maps a win5emdb row to measurements and a final CoalResult', () => {
    const row = table[0]!;
    expect(measurementsFromRow(row, KAIYUAN_5E_CALORIMETER_COLUMNS, { calorificUnit: 'J/g' })).toEqual([
      { code: 'AssayCode', kind: 'id', value: 'HY1' },
      { code: 'TestNumber', kind: 'run', value: '1' },
      { code: 'TestTime', kind: 'run', value: '2024-03-01T08:00:00' },
      { code: 'SampleMass', kind: 'run', value: '1.0012', unit: 'g' },
      { code: 'Qgr,v,ad', kind: 'ad', value: '23456', unit: 'J/g' },
      { code: 'St,ad', kind: 'ad', value: '0.82', unit: '%' },
      { code: 'Mad', kind: 'ad', value: '1.9', unit: '%' },
      { code: 'Operator', kind: 'run', value: '张三' },
    ]);
    const bytes = canonicalRowBytes(row);
    const r = coalResultFromRow({ row, key: '1', bytes, sha256: sha256(bytes) }, { instrument: '5e-c5500', columns: KAIYUAN_5E_CALORIMETER_COLUMNS, sampleIdColumn: 'Mancoding', calorificUnit: 'J/g' });
    expect(r).toMatchObject({ sampleId: 'HY1', final: true, source: { key: '1' } });
  });

  it('encodes rows canonically (key order does not matter)', () => {
    expect(canonicalRowBytes({ b: 1, a: new Date(0), c: Uint8Array.of(1, 2) })).toEqual(canonicalRowBytes({ c: Uint8Array.of(1, 2), a: new Date(0), b: 1 }));
    expect(new TextDecoder().decode(canonicalRowBytes({ b: 1, a: new Date(0) }))).toBe('{"a":"1970-01-01T00:00:00.000Z","b":1}');
  });
});
