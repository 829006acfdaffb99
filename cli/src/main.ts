/**
 * `stele`: one command, subcommands per user. Each subcommand lives in the package that owns it and is loaded
 * on demand, so `stele verify` does not start loading serial or chain code. Every subcommand parses its
 * arguments through `@stele/command`: `--help` on stdout (exit 0), usage errors on stderr (exit 2), an exception
 * no command expected exits 70, never a verdict code (0 verified, 1 failed, 3 partial).
 */
import { EXIT_OK, EXIT_USAGE, dispatch, reportInternalError } from '@stele/command';
import pkg from '../package.json' with { type: 'json' };
export interface Io {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

interface Command {
  summary: string;
  run(argv: string[], io: Io): Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  demo: {
    summary: 'run the whole chain on this machine: simulated CEMS, gateway, broker, ingest, anvil, verifier',
    run: async (argv, io) => (await import('@stele/simulator/demo')).runDemo(argv, io),
  },
  sim: {
    summary: 'run a scenario: simulated instruments, `stele gateway run`, ingest, faults, assertions: `stele sim --list | --scenario NAME`',
    run: async (argv, io) => (await import('@stele/simulator/sim')).runSim(argv, io),
  },
  verify: {
    summary: 'verify an evidence bundle offline and, where a chain endpoint answers, its on-chain anchor',
    run: async (argv, io) => (await import('@stele/verifier/cli')).runVerify(argv, io),
  },
  alerts: {
    summary: 'evaluate alert rules over readings: `stele alerts eval --rules FILE --readings FILE.jsonl [--json]`',
    run: async (argv, io) => (await import('@stele/verifier/alerts-cli')).runAlerts(argv, io),
  },
  evidence: {
    summary: 'an alert\'s evidence from a running ingest: `stele evidence` lists alerts, `stele evidence ALERT_ID` writes its bundle',
    run: async (argv, io) => (await import('@stele/ingest/cli')).runEvidence(argv, io),
  },
  trust: {
    summary: 'the authority\'s trust policy: `stele trust keygen | fingerprint | sign | show`',
    run: async (argv, io) => (await import('@stele/verifier/trust-cli')).runTrust(argv, io),
  },
  gateway: {
    summary: 'the gateway: `stele gateway run | doctor | status | provision | rotate-key | reinstall`',
    run: async (argv, io) => (await import('@stele/edge-agent/cli')).runGateway(argv, io),
  },
  ingest: {
    summary: 'the ingest service: `stele ingest init | run | enrol | revoke | deploy-contract | trust export`',
    run: async (argv, io) => (await import('@stele/ingest/cli')).runIngest(argv, io),
  },
  hj212: {
    summary: 'HJ 212 tools: `stele hj212 decode` reads frames from stdin or a serial port and prints JSON',
    run: async (argv, io) =>
      dispatch(
        argv,
        {
          name: 'stele hj212',
          usage: 'usage: stele hj212 decode [--lenient] [--crc hj212|modbus-lsb-first] [--port PATH --baud N]\n\nstele hj212 decode --help for its options.\n',
          commands: { decode: async (rest) => (await import('@stele/hardware/cli')).runHj212Decode(rest, io) },
        },
        io,
      ),
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return [
    'stele: signed, anchored evidence from industrial instruments',
    '',
    'usage: stele <command> [options]   (stele <command> --help for its options; stele --version)',
    '',
    'commands:',
    ...lines,
    '',
  ].join('\n');
}

/** The version `stele --version` prints. */
export const VERSION: string = pkg.version;

export async function main(argv: string[], io: Io = process): Promise<number> {
  const [name] = argv;
  if (name === '--version' || name === '-V' || name === 'version') {
    io.stdout.write(`stele ${VERSION}\n`);
    return EXIT_OK;
  }
  if (name === undefined) {
    io.stderr.write(usage());
    return EXIT_USAGE;
  }
  try {
    return await dispatch(
      argv,
      { name: 'stele', usage: usage(), commands: Object.fromEntries(Object.entries(COMMANDS).map(([k, c]) => [k, (a: string[]) => c.run(a, io)])) },
      io,
    );
  } catch (err) {
    return reportInternalError(`stele ${name}`, err, io, process.env);
  }
}
