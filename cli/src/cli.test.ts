/**
 * Every `stele` command through the real bin (cli/bin/stele.mjs, as a user runs it): `--help` prints its usage on
 * stdout and exits 0; an unknown flag prints `stele <command>: …` and the usage on stderr and exits 2.
 */
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { EXIT_INTERNAL, EXIT_OK, EXIT_USAGE } from '@stele/command';
import pkg from '../package.json' with { type: 'json' };
import { main } from './main.ts';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'stele.mjs');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function stele(...args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 60_000, env: { ...process.env, LANG: 'C' } }, (err, stdout, stderr) => {
      if (err !== null && typeof err.code !== 'number') return reject(err);
      resolve({ code: err === null ? 0 : (err.code as number), stdout, stderr });
    });
  });
}

/** Every command and subcommand, as typed after `stele`. */
const COMMANDS: string[][] = [
  [],
  ['verify'],
  ['demo'],
  ['gateway'],
  ['gateway', 'run'],
  ['gateway', 'doctor'],
  ['gateway', 'status'],
  ['gateway', 'provision'],
  ['ingest'],
  ['ingest', 'run'],
  ['ingest', 'enrol'],
  ['hj212'],
  ['hj212', 'decode'],
  ['alerts'],
  ['alerts', 'eval'],
];

const title = (cmd: string[]) => ['stele', ...cmd].join(' ');

describe.concurrent.each(COMMANDS.map((cmd) => ({ cmd, name: title(cmd) })))('$name', ({ cmd, name }) => {
  it('--help prints the usage on stdout and exits 0', async () => {
    const r = await stele(...cmd, '--help');
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(new RegExp(`^(usage: ${name}\\b|stele: )`));
    expect(r.code).toBe(EXIT_OK);
  });

  it('an unknown flag is a usage error on stderr, exit 2', async () => {
    const r = await stele(...cmd, '--no-such-flag');
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(new RegExp(`^${name}: .*\\n\\n(usage: ${name}\\b|stele: )`, 's'));
    expect(r.code).toBe(EXIT_USAGE);
  });
});

describe.concurrent('stele', () => {
  it('--version prints the version, exit 0', async () => {
    const r = await stele('--version');
    expect(r).toEqual({ code: EXIT_OK, stdout: `stele ${pkg.version}\n`, stderr: '' });
  });

  it('without a command prints the usage on stderr, exit 2', async () => {
    const r = await stele();
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^stele: signed, anchored evidence/);
    expect(r.code).toBe(EXIT_USAGE);
  });

  it.each([['gateway', 'nope'], ['ingest', 'nope'], ['hj212', 'nope']])('stele %s %s: an unknown subcommand exits 2', async (...cmd) => {
    const r = await stele(...cmd);
    expect(r.stdout).toBe('');
    expect(r.code).toBe(EXIT_USAGE);
  });

  it('a bundle that cannot be read exits 2, not a verdict', async () => {
    const r = await stele('verify', join(dirname(BIN), 'no-such-bundle.cbor'));
    expect(r.stderr).toMatch(/^stele verify: cannot read /);
    expect(r.code).toBe(EXIT_USAGE);
  });
});

describe('when a command throws an exception it did not expect', () => {
  it('exits 70 (internal error), never a verdict code, with the error on stderr', async () => {
    const err: string[] = [];
    const io = {
      stdin: process.stdin,
      stdout: {
        write: () => {
          throw Object.assign(new Error('stdout is gone'), { code: 'EPIPE' });
        },
      },
      stderr: { write: (s: string) => err.push(s) },
    } as unknown as Parameters<typeof main>[1];
    expect(await main(['verify', '--help'], io)).toBe(EXIT_INTERNAL);
    expect(err[0]).toBe('stele verify: internal error: EPIPE: stdout is gone\n');
  });
});
