/**
 * Issue #15: the release is reproducible. A second build of the linux-x64 archive, in other folders (its own build
 * folder, so pkcs11js is compiled again under another path), gives the same bytes as dist/release's.
 *
 * Run by `npm run test:release` (after `npm run release`); skipped by `npm test`.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../chaos/processes.ts';
import { gatewayArchive, RELEASE_DIR, RELEASE_TESTS, runCmd } from './release-files.ts';

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

describe.runIf(RELEASE_TESTS)('npm run release', () => {
  const dir = mkdtempSync(join(tmpdir(), 'stele-repro-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('builds the same linux-x64 archive, byte for byte, in another place; SHA256SUMS holds its hash', () => {
    const first = gatewayArchive('linux-x64');
    const out = join(dir, 'out');
    const r = runCmd(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'release', 'build-release.ts'), '--arch', 'linux-x64', '--no-verify-package', '--no-web', '--out', out, '--work', join(dir, 'work')], { timeoutMs: 400_000 });
    expect(r.status, r.stderr).toBe(0);
    const second = join(out, basename(first));
    expect(sha256(second)).toBe(sha256(first));
    expect(r.stdout).toContain(`${sha256(first)}  ${basename(first)}`); // the hash is printed
    expect(readFileSync(join(RELEASE_DIR, 'SHA256SUMS'), 'utf8')).toContain(`${sha256(first)}  ${basename(first)}`);
  }, 420_000);
});
