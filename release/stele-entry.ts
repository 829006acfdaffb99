/**
 * Entry point of the gateway release's `stele` (lib/stele.mjs, bundled by release/build-release.ts with the same
 * bundler as `npm run build:gateway`): the commands a gateway needs, without tsx and without the rest of the CLI
 * (ingest, the demo, the verifier ship elsewhere).
 *
 *   stele gateway run|doctor|status|provision ...   the agent and the installer's tools (edge-agent/src/cli.ts)
 *   stele hj212 decode ...                           check an HJ 212 line before writing the config
 */
import { runHj212Decode } from '@stele/hardware/cli';
import { runGateway } from '@stele/edge-agent/cli';

declare const STELE_RELEASE_VERSION: string;

const USAGE = `stele (gateway release ${STELE_RELEASE_VERSION})

usage: stele gateway <run|doctor|status|provision> [options]   (stele gateway --help)
       stele hj212 decode [--lenient] [--crc hj212|modbus-lsb-first] [--port PATH --baud N]

The officers' verifier is a separate package, stele-verify (docs/officer.md).
`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'gateway':
      return runGateway(rest, process);
    case 'hj212':
      if (rest[0] === 'decode') return runHj212Decode(rest.slice(1), process);
      process.stderr.write(USAGE);
      return 2;
    case '--version':
    case 'version':
      process.stdout.write(`stele gateway release ${STELE_RELEASE_VERSION}\n`);
      return 0;
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(USAGE);
      return 0;
    default:
      process.stderr.write(cmd === undefined ? USAGE : `stele: '${cmd}' is not part of the gateway release\n\n${USAGE}`);
      return 2;
  }
}

process.exitCode = await main(process.argv.slice(2));
