/**
 * The one argument, usage and exit-code layer of `stele`. Every subcommand parses its arguments here, so all of
 * them behave alike:
 *
 *   --help, -h               usage on stdout, exit 0 (EXIT_OK)
 *   a usage error            `stele X: what is wrong`, a blank line and the usage on stderr, exit 2 (EXIT_USAGE)
 *   an unexpected exception  `stele X: internal error: …` on stderr, exit 70 (EXIT_INTERNAL): never 0, 1 or 3,
 *                            the codes `stele verify` gives its verdicts with
 *
 * Options are node:util `parseArgs` options (strict: an unknown option is a usage error). No dependencies, so
 * every package with a command can use it without a cycle.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** The options of node:util `parseArgs`. */
export type ParseArgsOptionsConfig = NonNullable<ParseArgsConfig['options']>;

/** The command did what was asked (`stele verify`: the bundle verified). */
export const EXIT_OK = 0;
/** The command ran and the answer is no: a verdict of failure, a check that failed, a service that stopped on an error. */
export const EXIT_FAILED = 1;
/** The arguments were wrong, or an input file could not be read: nothing was checked. */
export const EXIT_USAGE = 2;
/** `stele verify` only: the bundle was not fully checked (e.g. offline). */
export const EXIT_PARTIAL = 3;
/** A bug: an exception no command expected (EX_SOFTWARE in sysexits.h). */
export const EXIT_INTERNAL = 70;

/** The streams a command writes to. */
export interface CommandIo {
  stdout: { write(chunk: string): unknown };
  stderr: { write(chunk: string): unknown };
}

/** Thrown by a command for bad arguments found after parsing; `runCommand` turns it into EXIT_USAGE. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface CommandSpec<O extends ParseArgsOptionsConfig = ParseArgsOptionsConfig> {
  /** The command as the user types it, e.g. `stele verify`: the prefix of every message. */
  name: string;
  /** The text `--help` prints; also printed after a usage error. Ends with a newline. */
  usage: string;
  /** The options, `--help`/`-h` added. */
  options: O;
  /** Whether positional arguments are allowed (default false: one is a usage error). */
  positionals?: boolean;
}

type WithHelp<O extends ParseArgsOptionsConfig> = O & { help: { type: 'boolean'; short: 'h' } };
type ParseConfig<O extends ParseArgsOptionsConfig> = { args: string[]; options: WithHelp<O>; allowPositionals: true; strict: true };

/** What `parseCommand` returns when the command should go on: typed option values and the positionals. */
export type Parsed<O extends ParseArgsOptionsConfig> = ReturnType<typeof parseArgs<ParseConfig<O>>>;

const HELP_FLAGS = new Set(['--help', '-h']);

function asksForHelp(argv: readonly string[]): boolean {
  for (const a of argv) {
    if (a === '--') return false;
    if (HELP_FLAGS.has(a)) return true;
  }
  return false;
}

function isParseArgsError(err: unknown): err is Error {
  const code = (err as { code?: unknown } | null)?.code;
  return err instanceof Error && typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_');
}

/**
 * Parses `argv` for `spec`. Returns the parsed values, or an exit code when the command is already answered:
 * EXIT_OK after printing the usage for `--help`, EXIT_USAGE after printing a usage error.
 */
export function parseCommand<const O extends ParseArgsOptionsConfig>(argv: readonly string[], spec: CommandSpec<O>, io: CommandIo): Parsed<O> | number {
  let parsed: Parsed<O>;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: { ...spec.options, help: { type: 'boolean', short: 'h' } } as WithHelp<O>,
      allowPositionals: (spec.positionals ?? false) as true,
      strict: true,
    });
  } catch (err) {
    if (!isParseArgsError(err)) throw err;
    // `stele verify --bogus --help` still shows the help
    if (asksForHelp(argv)) return help(spec, io);
    return usageError(io, spec, err.message);
  }
  if ((parsed.values as { help?: boolean }).help === true) return help(spec, io);
  return parsed;
}

function help(spec: { usage: string }, io: CommandIo): number {
  io.stdout.write(spec.usage);
  return EXIT_OK;
}

/** Prints `NAME: message`, a blank line and the usage to stderr; returns EXIT_USAGE. */
export function usageError(io: CommandIo, spec: { name: string; usage: string }, message: string): number {
  io.stderr.write(`${spec.name}: ${message}\n\n${spec.usage}`);
  return EXIT_USAGE;
}

/** A command with subcommands (`stele gateway run|doctor|…`). */
export interface SubcommandTable {
  name: string;
  usage: string;
  /** Each subcommand gets the arguments after its name. */
  commands: Record<string, (argv: string[]) => Promise<number>>;
}

/**
 * Runs the subcommand named by `argv[0]`. `--help`, `-h` and `help` print the table's usage to stdout (exit 0);
 * no subcommand or an unknown one is a usage error (exit 2).
 */
export async function dispatch(argv: readonly string[], table: SubcommandTable, io: CommandIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined) return usageError(io, table, 'no command given');
  if (HELP_FLAGS.has(sub) || sub === 'help') return help(table, io);
  const run = Object.hasOwn(table.commands, sub) ? table.commands[sub] : undefined;
  if (run === undefined) return usageError(io, table, `unknown command '${sub}'`);
  return run(rest);
}

/**
 * The last stop for an exception a command did not expect: `NAME: internal error: CODE: message` on stderr (the
 * stack too when STELE_DEBUG is set); returns EXIT_INTERNAL. A `UsageError` is a usage error (EXIT_USAGE).
 */
export function reportInternalError(name: string, err: unknown, io: CommandIo, env: Record<string, string | undefined> = {}): number {
  if (err instanceof UsageError) {
    io.stderr.write(`${name}: ${err.message}\n`);
    return EXIT_USAGE;
  }
  const e = err as { code?: unknown; message?: unknown; stack?: unknown } | null;
  const code = typeof e?.code === 'string' ? `${e.code}: ` : '';
  const message = typeof e?.message === 'string' ? e.message : String(err);
  io.stderr.write(`${name}: internal error: ${code}${message}\n`);
  if (env.STELE_DEBUG !== undefined && typeof e?.stack === 'string') io.stderr.write(`${e.stack}\n`);
  else io.stderr.write('(this is a bug: run again with STELE_DEBUG=1 for the stack, and report it)\n');
  return EXIT_INTERNAL;
}
