/**
 * Issue #15: the officers' verifier package (@stele/verify, dist/release/stele-verify-VERSION.tgz) installs with
 * `npm install -g ./stele-verify-VERSION.tgz` into an empty prefix with npm offline (no registry, no runtime
 * dependency), is compiled JavaScript (no tsx, no TypeScript), and `stele-verify` gives the same verdict, output
 * and exit code as the repository's `stele verify` on every evidence bundle of test/vectors/bundles/.
 * (A verified bundle with its anchor checked on chain: emulation.test.ts compares the two on the arm64 gateways'
 * bundles.)
 *
 * Run by `npm run test:release` (after `npm run release`); skipped by `npm test`.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runVerify } from '@stele/verifier/cli';
import { REPO_ROOT } from '../chaos/processes.ts';
import { installVerifyPackage, RELEASE_TESTS, runCmd, VERSION } from './release-files.ts';

const BUNDLES = join(REPO_ROOT, 'test', 'vectors', 'bundles');

async function repoVerify(argv: string[]): Promise<{ code: number; stdout: string }> {
  let stdout = '';
  const code = await runVerify(argv, { stdout: { write: (c: string) => (stdout += c) }, stderr: { write: () => true } });
  return { code, stdout };
}

describe.runIf(RELEASE_TESTS)('the verifier package', () => {
  let prefix = '';
  let bin = '';
  beforeAll(() => {
    prefix = mkdtempSync(join(tmpdir(), 'stele-verify-pkg-'));
    bin = installVerifyPackage(prefix);
  });
  afterAll(() => rmSync(prefix, { recursive: true, force: true }));

  it('installs from the file alone and holds compiled JavaScript with no dependency', () => {
    const pkgDir = join(prefix, 'lib', 'node_modules', '@stele', 'verify');
    const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as Record<string, unknown>;
    expect(pkg.name).toBe('@stele/verify');
    expect(pkg.version).toBe(VERSION);
    expect(pkg.dependencies).toBeUndefined();
    expect(pkg.bin).toEqual({ 'stele-verify': 'bin/stele-verify.mjs' });
    expect(readdirSync(pkgDir).sort()).toEqual(['LICENSE', 'README.md', 'bin', 'package.json']);
    const code = readFileSync(join(pkgDir, 'bin', 'stele-verify.mjs'), 'utf8');
    expect(code.startsWith('#!/usr/bin/env node\n')).toBe(true);
    expect(code).not.toMatch(/from ['"]tsx|\.ts['"]\)|register\(\)/);
    const v = runCmd(bin, ['--version']);
    expect(v.stdout.trim()).toBe(`stele-verify ${VERSION}`);
  });

  const files = readdirSync(BUNDLES).filter((f) => f.endsWith('.bundle.json')).sort();
  it.each(files)('gives the same verdict and exit code as `stele verify` on %s', async (name) => {
    const file = join(BUNDLES, name);
    for (const args of [['--offline', '--json'], ['--offline', '--lang', 'en']]) {
      const want = await repoVerify([file, ...args]);
      const got = runCmd(bin, [file, ...args], { env: { ...process.env, LANG: 'C' } });
      expect(got.status, got.stderr).toBe(want.code);
      expect(got.stdout).toBe(want.stdout);
    }
  });

  // The authority's trust policy (FORMAT.md §14), when this build of `stele verify` takes one: each signed policy
  // of test/vectors/trust.json with valid.bundle.json, offline; both verifiers must give the same verdict.
  const trustVectors = JSON.parse(readFileSync(join(REPO_ROOT, 'test', 'vectors', 'trust.json'), 'utf8')) as {
    authority: { fingerprint: string };
    cases: { name: string; policy: string }[];
  };
  it.each(trustVectors.cases.map((c) => [c.name, c.policy] as const))('agrees with `stele verify --trust` under the %s policy', async (name, hex) => {
    const policy = join(prefix, `${name}.trust-policy.cose`);
    writeFileSync(policy, Buffer.from(hex, 'hex'));
    const args = [join(BUNDLES, 'valid.bundle.json'), '--trust', policy, '--authority', trustVectors.authority.fingerprint, '--offline', '--json'];
    const want = await repoVerify(args);
    const got = runCmd(bin, args);
    expect(got.status, got.stderr).toBe(want.code);
    expect(got.stdout).toBe(want.stdout);
  });

  it('answers a usage error like `stele verify` (exit 2)', async () => {
    const want = await repoVerify(['--no-such-option']);
    expect(runCmd(bin, ['--no-such-option']).status).toBe(want.code);
    expect(want.code).toBe(2);
  });

  it('agrees with the `stele` command itself, spawned (tsx), on a tampered bundle', () => {
    const file = join(BUNDLES, 'device-batch-tampered-signature.bundle.json');
    const cli = runCmd(process.execPath, [join(REPO_ROOT, 'cli', 'bin', 'stele.mjs'), 'verify', file, '--offline', '--json']);
    const pkg = runCmd(bin, [file, '--offline', '--json']);
    expect(cli.status).toBe(1);
    expect(pkg.status).toBe(cli.status);
    expect(JSON.parse(pkg.stdout)).toEqual(JSON.parse(cli.stdout));
  });
});
