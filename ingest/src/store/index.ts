export type * from './types.ts';
export { LevelStore } from './leveldb/level-store.ts';
export { PostgresStore, type PostgresStoreOptions } from './postgres/postgres-store.ts';
export { isPostgresUrl, openStore } from './open-store.ts';
