/** The store conformance suite (./conformance.ts) on every implementation: LevelDB and PostgreSQL. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { storeConformance, type StoreHarness } from './conformance.ts';
import { LevelStore } from './leveldb/level-store.ts';
import { PostgresStore } from './postgres/postgres-store.ts';
import { createTestDatabase, postgresAvailable } from './postgres/test-database.ts';
import type { IngestStore } from './types.ts';

storeConformance('LevelDB', async (): Promise<StoreHarness> => {
  const dir = await mkdtemp(join(tmpdir(), 'stele-store-'));
  let current: IngestStore = await LevelStore.open(dir);
  return {
    store: current,
    reopen: async () => {
      await current.close();
      current = await LevelStore.open(dir);
      return current;
    },
    second: async () => undefined,
    cleanup: async () => {
      await current.close().catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
});

const pg = await postgresAvailable();
storeConformance(
  'PostgreSQL',
  async (): Promise<StoreHarness> => {
    const db = await createTestDatabase();
    const opened: IngestStore[] = [];
    let current: IngestStore = await PostgresStore.open(db.url);
    opened.push(current);
    return {
      store: current,
      reopen: async () => {
        await current.close();
        current = await PostgresStore.open(db.url);
        opened.push(current);
        return current;
      },
      second: async () => {
        const s = await PostgresStore.open(db.url);
        opened.push(s);
        return s;
      },
      cleanup: async () => {
        for (const s of opened) await s.close().catch(() => {});
        await db.drop();
      },
    };
  },
  pg.ok ? {} : { skip: pg.reason },
);
