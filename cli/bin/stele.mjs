#!/usr/bin/env node
// Entry point for the `stele` command. The workspace ships TypeScript sources (no build step),
// so the CLI registers tsx's ESM loader before importing them.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/main.ts');
process.exitCode = await main(process.argv.slice(2));
