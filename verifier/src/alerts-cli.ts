/**
 * `stele alerts eval --rules FILE|NAME [--rules …] --readings FILE.jsonl [--at ISO] [--json]`
 * `stele alerts standards`
 *
 * Evaluates rule sets (docs/FORMAT.md §15) over decoded readings (JSON lines in the reading shape of FORMAT.md §2)
 * and prints every aggregate and alert with its computed values: for officers checking a what-if, and for tests.
 * Exit codes: 0 evaluated (whether or not there are alerts), 2 usage error or bad input (with its code and where).
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AlertError, evaluateRuleSet, parseReadingLines, parseRuleSet, type Alert, type EvalResult, type RuleSet } from '@stele/core/alerts';

export interface AlertsIo {
  stdout: { write(chunk: string): unknown };
  stderr: { write(chunk: string): unknown };
}

/** The rule sets that ship with Stele (GB 13223-2011, ultra-low, GSP, coal lab, integrity). */
export const STANDARDS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'core', 'standards');
/** Largest readings file read (the whole file is parsed in memory). */
export const MAX_READINGS_FILE_BYTES = 512 * 1024 * 1024;
const MAX_RULES_FILE_BYTES = 4 * 1024 * 1024;

const USAGE = `usage: stele alerts eval --rules FILE|NAME [--rules …] --readings FILE.jsonl [--at ISO] [--json]
       stele alerts standards

Evaluates rule sets (docs/FORMAT.md §15) over readings (JSON lines, the reading shape of FORMAT.md §2 with
digests as hex; optional "rejected": CODE and "receivedAt": ms per line) and prints every aggregate and alert.

  --rules FILE|NAME  a rule set file, or the name of one that ships with Stele (\`stele alerts standards\`);
                     repeat to evaluate several (rule ids must differ)
  --readings FILE    the readings, one JSON object per line
  --at ISO           evaluation time for quiet probes, silent devices and open gaps
                     (default: the latest gateway time in the readings)
  --json             print {aggregates, alerts} as JSON

exit: 0 evaluated, 2 usage error or bad input
`;

class UsageError extends Error {}

async function readBounded(path: string, max: number, what: string): Promise<string> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (err) {
    throw new UsageError(`${what} ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  if (size > max) throw new UsageError(`${what} ${path}: larger than ${max} bytes`);
  return readFile(path, 'utf8');
}

/** A rule set argument: a path, or the name of a shipped rule set (with or without `.json`). */
async function loadRuleSet(arg: string): Promise<{ set: RuleSet; source: string }> {
  let path = arg;
  if (!arg.includes('/') && !arg.includes('\\')) {
    const shipped = join(STANDARDS_DIR, arg.endsWith('.json') ? arg : `${arg}.json`);
    if (await stat(shipped).then(() => true, () => false)) path = shipped;
  }
  const text = await readBounded(path, MAX_RULES_FILE_BYTES, 'rules');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new AlertError('RULES_FORMAT_ERROR', `${path}: not JSON (${(cause as Error).message})`, { where: { file: path } });
  }
  try {
    return { set: parseRuleSet(json), source: path };
  } catch (err) {
    if (err instanceof AlertError) throw new AlertError(err.code, `${path}: ${err.message}`, { where: { file: path, ...err.where }, cause: err });
    throw err;
  }
}

function describeAlert(a: Alert): string {
  const vals = Object.entries(a.values).map(([k, v]) => `${k}=${String(v)}`).join(' ');
  const lines = [
    `ALERT ${a.kind} ${a.subject}`,
    `  id      ${a.id}`,
    `  rule    ${a.rule.id} v${a.rule.version} (${a.rule.standard})`,
    `  window  ${a.window.from} .. ${a.window.to} (${a.window.basis === 'itime' ? 'instrument time' : 'gateway time'})`,
    `  values  ${vals}`,
    `  readings ${a.readings.length} used${a.excluded && a.excluded.length > 0 ? `, ${a.excluded.length} excluded (${[...new Set(a.excluded.map((e) => e.reason))].join(', ')})` : ''}`,
  ];
  for (const i of a.inputs.slice(0, 100)) lines.push(`    ${Object.entries(i).map(([k, v]) => `${k}=${String(v)}`).join(' ')}`);
  if (a.inputs.length > 100) lines.push(`    … ${a.inputs.length - 100} more inputs (--json prints all)`);
  return lines.join('\n');
}

function formatText(result: EvalResult, sources: string[], readings: number): string {
  const out = [`rules: ${sources.join(', ')}`, `readings: ${readings}`, '', `aggregates (${result.aggregates.length}):`];
  for (const g of result.aggregates) {
    out.push(`  ${g.kind} ${g.subject} ${g.window.from} .. ${g.window.to}  ${Object.entries(g.values).map(([k, v]) => `${k}=${String(v)}`).join(' ')}`);
  }
  out.push('', `alerts (${result.alerts.length}):`);
  for (const a of result.alerts) out.push(describeAlert(a), '');
  return `${out.join('\n')}\n`;
}

/** Entry point of `stele alerts`. */
export async function runAlerts(argv: string[], io: AlertsIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'standards') {
    const names = (await readdir(STANDARDS_DIR)).filter((n) => n.endsWith('.json')).sort();
    for (const n of names) {
      const { set } = await loadRuleSet(join(STANDARDS_DIR, n));
      io.stdout.write(`${n.replace(/\.json$/, '').padEnd(30)} ${set.name ?? ''}\n`);
    }
    return 0;
  }
  if (sub === '--help' || sub === '-h' || sub === 'help') {
    io.stdout.write(USAGE);
    return 0;
  }
  if (sub !== 'eval') {
    io.stderr.write(`stele alerts: ${sub === undefined ? 'no command given' : `unknown command '${sub}'`}\n\n${USAGE}`);
    return 2;
  }
  try {
    const rules: string[] = [];
    let readingsFile: string | undefined;
    let at: number | undefined;
    let json = false;
    for (let i = 0; i < rest.length; i++) {
      const raw = rest[i]!;
      const eq = raw.startsWith('--') ? raw.indexOf('=') : -1;
      const name = eq > 0 ? raw.slice(0, eq) : raw;
      const value = (): string => {
        if (eq > 0) return raw.slice(eq + 1);
        const v = rest[++i];
        if (v === undefined) throw new UsageError(`${name} needs a value`);
        return v;
      };
      if (name === '--help' || name === '-h') {
        io.stdout.write(USAGE);
        return 0;
      } else if (name === '--rules') rules.push(value());
      else if (name === '--readings') readingsFile = value();
      else if (name === '--json') json = true;
      else if (name === '--at') {
        const v = value();
        at = Date.parse(v);
        if (!/^\d{4}-\d{2}-\d{2}T/.test(v) || Number.isNaN(at)) throw new UsageError(`--at: not an ISO 8601 time: ${v}`);
      } else throw new UsageError(`unknown option ${raw}`);
    }
    if (rules.length === 0) throw new UsageError('--rules is required');
    if (readingsFile === undefined) throw new UsageError('--readings is required');
    const loaded = await Promise.all(rules.map(loadRuleSet));
    const text = await readBounded(readingsFile, MAX_READINGS_FILE_BYTES, 'readings');
    let readings;
    try {
      readings = parseReadingLines(text);
    } catch (err) {
      if (err instanceof AlertError) throw new AlertError(err.code, `${readingsFile}: ${err.message}`, { where: { file: readingsFile, ...err.where }, cause: err });
      throw err;
    }
    const ids = new Set<string>();
    const result: EvalResult = { aggregates: [], alerts: [] };
    for (const { set, source } of loaded) {
      for (const r of set.rules) {
        if (ids.has(r.id)) throw new AlertError('RULES_FORMAT_ERROR', `${source}: rule id ${r.id} is also in another rule set`, { where: { file: source } });
        ids.add(r.id);
      }
      const r = evaluateRuleSet(set, readings, at === undefined ? {} : { at });
      result.aggregates.push(...r.aggregates);
      result.alerts.push(...r.alerts);
    }
    io.stdout.write(json ? `${JSON.stringify(result, null, 2)}\n` : formatText(result, loaded.map((l) => l.source), readings.length));
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`stele alerts eval: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    if (err instanceof AlertError) {
      io.stderr.write(`stele alerts: ${err.code}: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}
