/**
 * Test fixture for anvil.test.ts: starts anvil in this (child) process, prints its pid, then either exits without
 * stopping it (`exit`) or waits to be killed (`wait`). The test checks anvil does not outlive this process.
 */
import { startAnvil } from './anvil.ts';

const [stateDir, mode] = process.argv.slice(2);
if (stateDir === undefined || (mode !== 'exit' && mode !== 'wait')) {
  process.stderr.write('usage: anvil-child-fixture.ts <stateDir> exit|wait\n');
  process.exit(2);
}
const node = await startAnvil({ stateDir });
process.stdout.write(`${JSON.stringify({ pid: node.pid, rpcUrl: node.rpcUrl })}\n`);
if (mode === 'exit') process.exit(0);
