/**
 * `stele sim`: run a scenario (instruments, gateways, a timeline of episodes and faults, built-in assertions) on
 * this machine through the shipped path, and print a short report. Exit 0 when every assertion holds, 1 when one
 * failed (or the run could not start), 2 for a usage error or a bad scenario file.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE, parseCommand, usageError } from '@stele/command';
import { SimError, formatScenarioIssue } from './errors.ts';
import { findRepoRoot, killSpawnedGroups } from './processes.ts';
import { runScenario, type SimIo } from './run.ts';
import { loadScenario, type Scenario } from './scenario.ts';

const USAGE = `usage: stele sim --list
       stele sim --scenario NAME|FILE [--seconds N] [--seed S] [--out DIR] [--json]

Runs a scenario through the path an installation uses: simulated instruments on pseudo-terminal pairs (socat)
read by \`stele gateway run\` (its config file, drivers and serial transport), an MQTT broker, \`stele ingest run\`
with its embedded chain. The timeline injects episodes (an exceedance, a probe that goes quiet, a door opening)
and faults (broker outage, power cuts, an altered outbox, a forged confirmation, a network partition, clock
jumps and a 1970 boot, a slow signer, duplicates and replays, a deleted reading, a swapped key, a full disk); at the end the scenario's
assertions are checked, counting at the instruments, at ingest's API and with the verifier, and a report printed.

  --list           the shipped scenarios (simulator/scenarios/*.yaml), with what each shows
  --scenario NAME  a shipped scenario, or the path of a scenario file (YAML)
  --seconds N      run this long instead of the scenario's \`seconds\` (steps after the end are skipped)
  --seed S         the instruments' random seed instead of the scenario's \`seed\`
  --out DIR        keep keys, outboxes, ingest's store, the chain and report.json here (default: a temp folder, removed)
  --json           print the report as JSON after the text

Exit status: 0 every assertion holds; 1 an assertion failed or the run could not start; 2 usage or scenario error.
Needs socat (Debian: apt-get install socat).
`;

const SPEC = {
  name: 'stele sim',
  usage: USAGE,
  options: {
    list: { type: 'boolean' },
    scenario: { type: 'string' },
    seconds: { type: 'string' },
    seed: { type: 'string' },
    out: { type: 'string' },
    json: { type: 'boolean' },
  },
} as const;

/** The folder of the shipped scenarios. */
export function scenariosDir(): string {
  return join(findRepoRoot(), 'simulator', 'scenarios');
}

export async function shippedScenarios(): Promise<Scenario[]> {
  const dir = scenariosDir();
  const files = (await readdir(dir)).filter((f) => f.endsWith('.yaml')).sort();
  return Promise.all(files.map((f) => loadScenario(join(dir, f))));
}

export async function runSim(argv: string[], io: SimIo): Promise<number> {
  const args = parseCommand(argv, SPEC, io);
  if (typeof args === 'number') return args;
  const v = args.values;
  if (v.list === true) {
    if (v.scenario !== undefined) return usageError(io, SPEC, '--list takes no --scenario');
    try {
      for (const s of await shippedScenarios()) io.stdout.write(`${s.name.padEnd(24)} ${String(s.seconds).padStart(4)} s  ${firstSentence(s.description)}\n`);
    } catch (e) {
      return scenarioError(e, io);
    }
    return EXIT_OK;
  }
  if (v.scenario === undefined) return usageError(io, SPEC, 'give --list or --scenario NAME');
  const seconds = v.seconds === undefined ? undefined : Number(v.seconds);
  if (seconds !== undefined && !(Number.isInteger(seconds) && seconds >= 5 && seconds <= 3600)) return usageError(io, SPEC, '--seconds must be a whole number from 5 to 3600');
  const seed = v.seed === undefined ? undefined : Number(v.seed);
  if (seed !== undefined && !(Number.isInteger(seed) && seed >= 0 && seed < 2 ** 31)) return usageError(io, SPEC, '--seed must be a whole number from 0 to 2^31-1');
  let scenario: Scenario;
  try {
    const name = v.scenario;
    const file = /[/\\]|\.ya?ml$/.test(name) ? name : join(scenariosDir(), `${name}.yaml`);
    scenario = await loadScenario(file).catch((e: unknown) => {
      if (e instanceof SimError && e.code === 'SCENARIO_UNREADABLE' && file !== name) {
        throw new SimError('SCENARIO_UNKNOWN', `no shipped scenario named ${JSON.stringify(name)} (stele sim --list shows them)`, { cause: e });
      }
      throw e;
    });
  } catch (e) {
    return scenarioError(e, io);
  }
  // Ctrl-C or SIGTERM: the gateways and ingest run in their own process groups, so end them before exiting
  const onSignal = (sig: NodeJS.Signals) => {
    killSpawnedGroups();
    io.stderr.write(`stele sim: stopped by ${sig}\n`);
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const report = await runScenario({ scenario, ...(seconds === undefined ? {} : { seconds }), ...(seed === undefined ? {} : { seed }), ...(v.out === undefined ? {} : { out: v.out }), io });
    if (v.json === true) io.stdout.write(`${JSON.stringify(report)}\n`);
    return report.ok ? EXIT_OK : EXIT_FAILED;
  } catch (e) {
    if (e instanceof SimError) {
      io.stderr.write(`stele sim: ${e.code}: ${e.message}\n`);
      return EXIT_FAILED;
    }
    throw e;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function scenarioError(e: unknown, io: SimIo): number {
  if (!(e instanceof SimError)) throw e;
  if (e.issues.length > 0) io.stderr.write(`stele sim: ${e.code}:\n${e.issues.map((i) => `  ${formatScenarioIssue(i)}`).join('\n')}\n`);
  else io.stderr.write(`stele sim: ${e.code}: ${e.message}\n`);
  return EXIT_USAGE;
}

/** The description's first sentence, on one line. */
function firstSentence(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  const end = flat.search(/[.](\s|$)/);
  return end < 0 ? flat : flat.slice(0, end + 1);
}
