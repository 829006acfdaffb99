/**
 * A throw-away PostgreSQL database for tests: created with a random name on the server named by
 * STELE_TEST_POSTGRES (default postgres://stele:stele@127.0.0.1:5432/postgres, the role .ci/run makes) and
 * dropped afterwards. Without a reachable server, `testDatabase()` returns the reason and suites skip; under
 * CI=true a missing server fails instead (.ci/run installs and starts it).
 */
import postgres from 'postgres';

export const TEST_POSTGRES_URL = process.env['STELE_TEST_POSTGRES'] ?? 'postgres://stele:stele@127.0.0.1:5432/postgres';

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

/** Whether the server answers; the reason when it does not. */
export async function postgresAvailable(): Promise<{ ok: true } | { ok: false; reason: string }> {
  const sql = postgres(TEST_POSTGRES_URL, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await sql`select 1`;
    return { ok: true };
  } catch (e) {
    const reason = `PostgreSQL not reachable at ${TEST_POSTGRES_URL.replace(/:[^:@/]*@/, ':***@')} (${e instanceof Error ? e.message : String(e)})`;
    if (process.env['CI'] === 'true') throw new Error(`${reason}; .ci/run must install and start it`);
    return { ok: false, reason };
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `stele_test_${crypto.randomUUID().replaceAll('-', '').slice(0, 16)}`;
  const admin = postgres(TEST_POSTGRES_URL, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database ${name}`);
  } finally {
    await admin.end({ timeout: 1 });
  }
  const u = new URL(TEST_POSTGRES_URL);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    drop: async () => {
      const a = postgres(TEST_POSTGRES_URL, { max: 1, onnotice: () => {} });
      try {
        await a.unsafe(`drop database if exists ${name} with (force)`);
      } finally {
        await a.end({ timeout: 1 });
      }
    },
  };
}
