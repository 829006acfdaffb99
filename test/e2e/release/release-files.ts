/**
 * The files `npm run release` writes (dist/release/), for the release tests. These tests run from
 * `npm run test:release` (STELE_RELEASE=1), which builds the release first; `npm test` skips them.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../chaos/processes.ts';

export const RELEASE_TESTS = process.env.STELE_RELEASE === '1';
export const RELEASE_DIR = join(REPO_ROOT, 'dist', 'release');
export const VERSION = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** A release file by name; a clear failure when `npm run release` has not run. */
export function releaseFile(name: string): string {
  const file = join(RELEASE_DIR, name);
  if (!existsSync(file)) {
    const have = existsSync(RELEASE_DIR) ? readdirSync(RELEASE_DIR).join(', ') : 'no dist/release/';
    throw new Error(`${name} is missing (have: ${have}): run \`npm run release\` first (npm run test:release does)`);
  }
  return file;
}

export const gatewayArchive = (arch: 'linux-arm64' | 'linux-x64') => releaseFile(`stele-gateway-${VERSION}-${arch}.tar.gz`);
export const verifyPackage = () => releaseFile(`stele-verify-${VERSION}.tgz`);

/** Runs a command to its end; returns its output and status (never throws for a non-zero exit). */
export function runCmd(cmd: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { cwd: options.cwd ?? REPO_ROOT, env: options.env ?? process.env, encoding: 'utf8', timeout: options.timeoutMs ?? 120_000, maxBuffer: 32 << 20 });
  if (r.error !== undefined) throw new Error(`${cmd}: ${r.error.message}`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Unpacks a release archive into dir; returns the release's top folder. */
export function unpack(archive: string, dir: string): string {
  const r = runCmd('tar', ['-xzf', archive, '-C', dir]);
  if (r.status !== 0) throw new Error(`tar: ${r.stderr}`);
  const top = readdirSync(dir).find((n) => n.startsWith('stele-gateway-'));
  if (top === undefined) throw new Error(`${archive}: no stele-gateway-* folder inside`);
  return join(dir, top);
}

/** Installs the verifier package globally into an empty prefix, from the file alone (npm --offline). */
export function installVerifyPackage(prefix: string): string {
  const r = runCmd('npm', ['install', '-g', '--prefix', prefix, '--offline', '--no-audit', '--no-fund', verifyPackage()], { cwd: prefix });
  if (r.status !== 0) throw new Error(`npm install -g ${verifyPackage()}: ${r.stderr}`);
  return join(prefix, 'bin', 'stele-verify');
}
