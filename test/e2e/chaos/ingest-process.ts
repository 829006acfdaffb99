/**
 * `stele ingest` as a child process for the chaos test and the gateway benches, until the lead wires
 * `runIngest` into cli/src/main.ts (then `node cli/bin/stele.mjs ingest ...` does the same).
 *
 *   node --import tsx test/e2e/chaos/ingest-process.ts run --mqtt URL --data DIR --embedded-chain --health-port N
 */
import { runIngest } from '@stele/ingest/cli';

process.exitCode = await runIngest(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr });
// a handle left by a library must not keep a stopped ingest alive
setTimeout(() => process.exit(), 3000).unref();
