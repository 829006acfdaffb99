#!/usr/bin/env node
/**
 * `stele-verify`: the officers' verifier as an installable package (@stele/verify, built by `npm run release`).
 * The same code as the repository's `stele verify` (verifier/src/cli.ts), compiled and bundled into one file with
 * no runtime dependency: `npm install -g ./stele-verify-VERSION.tgz` needs no registry.
 */
import { runVerify } from '@stele/verifier/cli';

declare const STELE_VERIFY_VERSION: string;

const argv = process.argv.slice(2);
if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V')) {
  process.stdout.write(`stele-verify ${STELE_VERIFY_VERSION}\n`);
} else {
  process.exitCode = await runVerify(argv, process);
}
