import { describe, expect, it } from 'vitest';
import { EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, UsageError, dispatch, parseCommand, reportInternalError } from './command.ts';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => err.push(s) } }, out, err };
}

const spec = { name: 'stele x', usage: 'usage: stele x [--n N] FILE\n', options: { n: { type: 'string' }, flag: { type: 'boolean' } }, positionals: true } as const;

describe('parseCommand', () => {
  it('returns typed values and positionals', () => {
    const { io } = capture();
    const r = parseCommand(['--n', '3', 'a.json', '--flag'], spec, io);
    expect(typeof r).toBe('object');
    if (typeof r === 'number') return;
    expect(r.values.n).toBe('3');
    expect(r.values.flag).toBe(true);
    expect(r.positionals).toEqual(['a.json']);
  });

  it('prints the usage to stdout for --help and -h, exit 0', () => {
    for (const argv of [['--help'], ['-h'], ['--bogus', '--help']]) {
      const c = capture();
      expect(parseCommand(argv, spec, c.io)).toBe(EXIT_OK);
      expect(c.out.join('')).toBe(spec.usage);
      expect(c.err).toEqual([]);
    }
  });

  it('prints a usage error to stderr, exit 2', () => {
    const c = capture();
    expect(parseCommand(['--bogus'], spec, c.io)).toBe(EXIT_USAGE);
    expect(c.out).toEqual([]);
    expect(c.err.join('')).toMatch(/^stele x: .*--bogus.*\n\nusage: stele x/s);
  });

  it('refuses positionals unless the spec allows them', () => {
    const c = capture();
    expect(parseCommand(['file'], { ...spec, positionals: false }, c.io)).toBe(EXIT_USAGE);
  });
});

describe('dispatch', () => {
  const table = { name: 'stele g', usage: 'usage: stele g <a>\n', commands: { a: async (argv: string[]) => argv.length } };
  it('runs the named subcommand with the rest of argv', async () => {
    expect(await dispatch(['a', 'x', 'y'], table, capture().io)).toBe(2);
  });
  it('help to stdout (0); none or unknown to stderr (2)', async () => {
    const h = capture();
    expect(await dispatch(['help'], table, h.io)).toBe(EXIT_OK);
    expect(h.out.join('')).toBe(table.usage);
    for (const argv of [[], ['b'], ['toString']]) {
      const c = capture();
      expect(await dispatch(argv, table, c.io)).toBe(EXIT_USAGE);
      expect(c.out).toEqual([]);
    }
  });
});

describe('reportInternalError', () => {
  it('exits 70 with the code of the error, never a verdict code', () => {
    const c = capture();
    expect(reportInternalError('stele x', Object.assign(new Error('boom'), { code: 'X_BAD' }), c.io)).toBe(EXIT_INTERNAL);
    expect(c.err[0]).toBe('stele x: internal error: X_BAD: boom\n');
  });
  it('treats a UsageError as a usage error', () => {
    expect(reportInternalError('stele x', new UsageError('no'), capture().io)).toBe(EXIT_USAGE);
  });
});
