import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { documentedSkips, skippedTests, undocumented } from '../scripts/skip-gate.ts';

const root = join(import.meta.dirname, '..', '..');
const report = (statuses: Record<string, string>) => ({
  numTotalTests: Object.keys(statuses).length,
  testResults: [{ name: join(root, 'core/src/a.test.ts'), assertionResults: Object.entries(statuses).map(([fullName, status]) => ({ fullName, title: fullName, status })) }],
});

describe('the skip gate', () => {
  it('counts skipped and todo tests, not passed or failed ones', () => {
    const s = skippedTests(report({ one: 'passed', two: 'failed', three: 'skipped', four: 'pending', five: 'todo' }), root);
    expect(s).toEqual([
      { file: 'core/src/a.test.ts', name: 'three' },
      { file: 'core/src/a.test.ts', name: 'four' },
      { file: 'core/src/a.test.ts', name: 'five' },
    ]);
  });

  it('accounts for a skip by file and name prefix; anything else is undocumented', () => {
    const documented = documentedSkips('x\n<!-- skips:begin -->\n- `core/src/a.test.ts` :: when the token\n<!-- skips:end -->\n- `core/src/a.test.ts` :: other\n');
    expect(documented).toEqual([{ file: 'core/src/a.test.ts', prefix: 'when the token' }]);
    const skipped = [
      { file: 'core/src/a.test.ts', name: 'when the token is gone' },
      { file: 'core/src/a.test.ts', name: 'other' },
      { file: 'core/src/b.test.ts', name: 'when the token is gone' },
    ];
    expect(undocumented(skipped, documented)).toEqual([skipped[1], skipped[2]]);
  });

  it('reads the list in docs/developer.md', async () => {
    expect(() => documentedSkips('no list here')).toThrow();
    expect(Array.isArray(documentedSkips(await readFile(join(root, 'docs/developer.md'), 'utf8')))).toBe(true);
  });

  describe('as CI runs it', () => {
    let dir = '';
    afterAll(async () => {
      if (dir) await rm(dir, { recursive: true, force: true });
    });
    const run = async (statuses: Record<string, string>) => {
      dir ||= await mkdtemp(join(tmpdir(), 'stele-skip-gate-'));
      const file = join(dir, `report-${Object.keys(statuses).length}.json`);
      await writeFile(file, JSON.stringify(report(statuses)));
      const tsx = join(root, 'node_modules', '.bin', 'tsx');
      return promisify(execFile)(tsx, [join(root, 'test/scripts/skip-gate.ts'), file]).then(
        ({ stdout }) => ({ code: 0, stdout }),
        (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
      );
    };

    it('exits 0 and prints the count when nothing undocumented is skipped', async () => {
      const r = await run({ one: 'passed' });
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^skip gate: 0 skipped of 1 /);
    });

    it('exits 1 on a skip the list does not hold', async () => {
      const r = await run({ one: 'passed', 'a new skip': 'skipped' });
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/^skip gate: 1 skipped of 2 /);
    });
  });
});
