/**
 * Picks the store from where it is: a `postgres://` or `postgresql://` URL opens the PostgreSQL store (several
 * workers may share it); anything else is a directory for the embedded LevelDB store (the default).
 */
import { LevelStore } from './leveldb/level-store.ts';
import { PostgresStore } from './postgres/postgres-store.ts';
import type { IngestStore } from './types.ts';

export function isPostgresUrl(location: string): boolean {
  return /^postgres(ql)?:\/\//i.test(location);
}

export async function openStore(location: string): Promise<IngestStore> {
  if (typeof location !== 'string' || location === '') throw new TypeError('store location must be a directory or a postgres:// URL');
  return isPostgresUrl(location) ? PostgresStore.open(location) : LevelStore.open(location);
}
