/**
 * `stele`: one command, subcommands per user. Each subcommand lives in the package that owns it and is loaded
 * on demand, so `stele verify` does not start loading serial or chain code.
 */
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
    run: async (argv, io) => (await import('@stele/simulator/demo.ts')).runDemo(argv, io),
  },
  verify: {
    summary: 'verify an evidence bundle offline and, where a chain endpoint answers, its on-chain anchor',
    run: async (argv, io) => (await import('@stele/verifier/cli.ts')).runVerify(argv, io),
  },
  alerts: {
    summary: 'evaluate alert rules over readings: `stele alerts eval --rules FILE --readings FILE.jsonl [--json]`',
    run: async (argv, io) => (await import('@stele/verifier/alerts-cli.ts')).runAlerts(argv, io),
  },
  trust: {
    summary: 'the authority\'s trust policy: `stele trust keygen | fingerprint | sign | show`',
    run: async (argv, io) => (await import('@stele/verifier/trust-cli.ts')).runTrust(argv, io),
  },
  gateway: {
    summary: 'the gateway: `stele gateway run | doctor | status | provision`',
    run: async (argv, io) => (await import('@stele/edge-agent/cli.ts')).runGateway(argv, io),
  },
  ingest: {
    summary: 'the ingest service: `stele ingest run | enrol | trust export`',
    run: async (argv, io) => (await import('@stele/ingest/cli.ts')).runIngest(argv, io),
  },
  hj212: {
    summary: 'HJ 212 tools: `stele hj212 decode` reads frames from stdin or a serial port and prints JSON',
    run: async (argv, io) => {
      const [sub, ...rest] = argv;
      if (sub === 'decode') return (await import('@stele/hardware/hj212/cli.ts')).runHj212Decode(rest, io);
      io.stderr.write('usage: stele hj212 decode [--lenient] [--crc hj212|modbus-lsb-first] [--port PATH --baud N]\n');
      return sub === '--help' || sub === '-h' ? 0 : 2;
    },
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return [
    'stele: signed, anchored evidence from industrial instruments',
    '',
    'usage: stele <command> [options]   (stele <command> --help for its options)',
    '',
    'commands:',
    ...lines,
    '',
  ].join('\n');
}

export async function main(argv: string[], io: Io = process): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (command === undefined) {
    io.stderr.write(`stele: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  try {
    return await command.run(rest, io);
  } catch (err) {
    const e = err as { code?: string; message?: string };
    io.stderr.write(`stele ${name}: ${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}\n`);
    return 2;
  }
}
