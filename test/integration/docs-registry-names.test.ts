/**
 * Issue #15: the unscoped name `stele` on the public npm registry is not this project's, so no page a user reads
 * may tell anyone to fetch it: every `npm install stele` (or yarn/pnpm) must be a "never", and `npx stele` appears
 * only where the reader is inside a clone of the repository: README, the developer page, a section that says it runs
 * "in a clone of the repository", or with "inside"/"never"/"clone" on the line. The installable verifier is the scoped @stele/verify, installed from its file.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../e2e/chaos/processes.ts';

const pages = ['README.md', ...readdirSync(join(REPO_ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const FETCH_UNSCOPED = /\b(npm (install|i|add)|pnpm add|yarn (global )?add)( -g| --global)* stele(?![\w@/.-])/;
const NPX_UNSCOPED = /\bnpx stele(?![\w@/.-])/;
const IN_CLONE = new Set(['README.md', 'docs/developer.md']);

describe('the docs and registry names', () => {
  it.each(pages)('%s never tells anyone to fetch the unscoped `stele`', (page) => {
    const lines = readFileSync(join(REPO_ROOT, page), 'utf8').split('\n');
    // the section (from its heading) of each line, for "this section is run inside a clone" in its prose
    const sectionOf: string[] = [];
    let section = '';
    for (const line of lines) {
      if (/^#{1,6} /.test(line)) section = '';
      section += `${line}\n`;
      sectionOf.push(section);
    }
    const inClone = (i: number) => {
      const rest = lines.slice(i).join('\n');
      const whole = sectionOf[i]! + rest.slice(0, /\n#{1,6} /.exec(rest)?.index ?? rest.length);
      return /(in|inside) a clone of (this|the) repository/i.test(whole.replace(/\s+/g, ' '));
    };
    const bad = lines
      .map((line, i) => ({ line, i, at: `${page}:${i + 1}` }))
      .filter(({ line, i }) => (FETCH_UNSCOPED.test(line) && !/never/i.test(line)) || (NPX_UNSCOPED.test(line) && !IN_CLONE.has(page) && !/inside|never|clone/i.test(line) && !inClone(i)));
    expect(bad.map((b) => `${b.at}: ${b.line}`)).toEqual([]);
  });

  it('catches an instruction to fetch it', () => {
    expect(FETCH_UNSCOPED.test('npm install -g stele')).toBe(true);
    expect(NPX_UNSCOPED.test('npx stele verify BUNDLE.json')).toBe(true);
    expect(FETCH_UNSCOPED.test('npm install -g ./stele-verify-0.1.0.tgz')).toBe(false);
    expect(FETCH_UNSCOPED.test('npm install -g @stele/verify')).toBe(false);
  });
});
