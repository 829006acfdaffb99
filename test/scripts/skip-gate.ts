/**
 * The skip gate (issue 10 item 6): after `npm test`, CI reads vitest's JSON report, prints how many tests were
 * skipped and fails when a skipped test is not in the documented list (docs/developer.md, "Skips"). Tests that do
 * not apply are not registered at all (vectors of other algorithms, checks a key store cannot do, suites that are
 * their own CI step), so a skip is news: a missing tool, a missing ../shared, a forgotten `.skip`.
 *
 *   npx tsx test/scripts/skip-gate.ts [.tmp/vitest-report.json] [docs/developer.md]
 *
 * Exit 0 when every skip is documented, 1 when one is not (or the report is missing or empty).
 */
import { readFileSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface SkippedTest {
  /** the test file, relative to the repository */
  file: string;
  /** describe titles and the test title, joined by spaces (vitest's fullName) */
  name: string;
}

interface VitestJsonReport {
  numTotalTests?: number;
  testResults?: { name: string; assertionResults?: { fullName?: string; title: string; status: string }[] }[];
}

const MARK_BEGIN = '<!-- skips:begin -->';
const MARK_END = '<!-- skips:end -->';

/** The skipped and todo tests of a vitest JSON report. */
export function skippedTests(report: VitestJsonReport, root: string): SkippedTest[] {
  const out: SkippedTest[] = [];
  for (const file of report.testResults ?? []) {
    for (const t of file.assertionResults ?? []) {
      if (t.status === 'passed' || t.status === 'failed') continue;
      out.push({ file: relative(root, file.name), name: t.fullName ?? t.title });
    }
  }
  return out;
}

/**
 * The documented skips: the lines between `<!-- skips:begin -->` and `<!-- skips:end -->`, each
 * `- file :: start of the test's full name` (a prefix, so a parametrised title is one line).
 */
export function documentedSkips(markdown: string): { file: string; prefix: string }[] {
  const begin = markdown.indexOf(MARK_BEGIN);
  const end = markdown.indexOf(MARK_END);
  if (begin < 0 || end < begin) throw new Error(`no ${MARK_BEGIN} … ${MARK_END} list`);
  return markdown
    .slice(begin + MARK_BEGIN.length, end)
    .split('\n')
    .map((line) => /^\s*-\s+`?([^`\s]+)`?\s+::\s+(.+?)\s*$/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ file: m[1]!, prefix: m[2]! }));
}

/** The skips the list does not account for. */
export function undocumented(skipped: SkippedTest[], documented: { file: string; prefix: string }[]): SkippedTest[] {
  return skipped.filter((s) => !documented.some((d) => d.file === s.file && s.name.startsWith(d.prefix)));
}

function main(argv: string[]): number {
  const root = resolve(fileURLToPath(new URL('../..', import.meta.url)));
  const reportPath = resolve(root, argv[0] ?? '.tmp/vitest-report.json');
  const docPath = resolve(root, argv[1] ?? 'docs/developer.md');
  let report: VitestJsonReport;
  try {
    report = JSON.parse(readFileSync(reportPath, 'utf8')) as VitestJsonReport;
  } catch (err) {
    process.stderr.write(`skip gate: cannot read ${relative(root, reportPath)}: ${(err as Error).message}\n`);
    return 1;
  }
  if (!report.numTotalTests) {
    process.stderr.write('skip gate: the report holds no test\n');
    return 1;
  }
  const skipped = skippedTests(report, root);
  const documented = documentedSkips(readFileSync(docPath, 'utf8'));
  const extra = undocumented(skipped, documented);
  process.stdout.write(`skip gate: ${skipped.length} skipped of ${report.numTotalTests} (${documented.length} documented in ${relative(root, docPath)})\n`);
  for (const s of skipped) process.stdout.write(`  skipped: ${s.file} :: ${s.name}\n`);
  if (extra.length > 0) {
    process.stderr.write(`skip gate: ${extra.length} skipped test(s) not in the documented list (docs/developer.md, "Skips"): make them run, or document why they may not\n`);
    for (const s of extra) process.stderr.write(`  - ${s.file} :: ${s.name}\n`);
    return 1;
  }
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exitCode = main(process.argv.slice(2));
