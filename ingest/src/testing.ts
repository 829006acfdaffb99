/**
 * @stele/ingest/testing: ingest's test fixtures for other packages' suites (an in-process broker, signed chains,
 * a gateway-side client, brokers with the access policy). Not for production code.
 */
export * from './test-helpers.ts';
export * from './broker/test-brokers.ts';
export { createTestDatabase, postgresAvailable } from './store/postgres/test-database.ts';
