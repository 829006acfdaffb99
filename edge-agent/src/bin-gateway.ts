/**
 * Entry point of the built gateway (`npm run build:gateway` -> dist/stele-gateway.mjs): `stele gateway` without tsx.
 * On a Pi the gateway runs this bundle under plain node (see edge-agent/systemd/stele-gateway.service): tsx's loader
 * alone costs ~32 MB of RSS on Node 20 (measured, docs/BENCHMARKS.md "Soak").
 */
import { reportInternalError } from '@stele/command';
import { runGateway } from './cli.ts';

process.exitCode = await runGateway(process.argv.slice(2), process).catch((err: unknown) => reportInternalError('stele gateway', err, process, process.env));
