/**
 * ingest/systemd/stele-ingest.service (issue #11 item 6): `systemd-analyze verify` finds nothing to say about it
 * (an unknown key or a bad value is only a warning there, so any line naming the file fails the test), and it runs
 * `stele ingest run` with what an operator relies on: a worker id for /metrics and the logs, the HTTP endpoint,
 * restart on failure, a clean stop on SIGTERM. Without systemd-analyze it is skipped, except under CI=true.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { unitNodeFlags } from '../../edge-agent/scripts/unit-flags.ts';

const UNIT = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'systemd', 'stele-ingest.service');
const hasAnalyze = spawnSync('systemd-analyze', ['--version']).error === undefined;

/** What systemd-analyze verify says about `file` (lines naming it), or its failure. */
function verify(file: string): string[] {
  const r = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
  const out = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => l.includes(file.split('/').pop()!));
  return r.status === 0 ? out : [`exit ${r.status}`, ...out];
}

describe.skipIf(!hasAnalyze && process.env['CI'] !== 'true')('the ingest systemd unit', () => {
  it('passes systemd-analyze verify with nothing to say, and a broken copy does not', async () => {
    expect(verify(UNIT)).toEqual([]);
    // the check can fail: the same unit with a misspelt key and a bad value
    const dir = await mkdtemp(join(tmpdir(), 'stele-unit-'));
    try {
      const bad = join(dir, 'stele-ingest.service');
      await writeFile(bad, (await readFile(UNIT, 'utf8')).replace('Type=exec', 'Tpye=exec').replace('Restart=always', 'Restart=sometimes'));
      expect(verify(bad).join('\n')).toMatch(/Tpye[\s\S]*sometimes/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('runs stele ingest run with a worker id and the HTTP endpoint, restarts, stops on SIGTERM', async () => {
    const text = await readFile(UNIT, 'utf8');
    // ExecStart with its continuation lines (each ending in a backslash) joined
    const lines = text.split('\n');
    let i = lines.findIndex((l) => l.startsWith('ExecStart='));
    let exec = lines[i]!.slice('ExecStart='.length);
    while (exec.endsWith('\\')) exec = `${exec.slice(0, -1)} ${lines[++i]!.trim()}`;
    expect(exec).toMatch(/stele\.mjs ingest run /);
    expect(exec).toMatch(/--worker-id \S+/);
    expect(exec).toMatch(/--health-port \d+/);
    expect(text).toMatch(/^Restart=always$/m);
    expect(text).toMatch(/^KillSignal=SIGTERM$/m);
    expect(text).toMatch(/^User=stele$/m);
  });

  it('starts node with flags this node takes (a misspelt one stops node before ingest runs)', () => {
    const flags = unitNodeFlags(readFileSync(UNIT, 'utf8'), 'stele-ingest.service');
    expect(flags).toContain('--single-threaded-gc');
    const ok = spawnSync(process.execPath, [...flags, '-e', 'process.exit(0)'], { encoding: 'utf8' });
    expect(ok.status, ok.stderr).toBe(0);
    const bad = spawnSync(process.execPath, [...flags, '--single-threaded-gcc', '-e', 'process.exit(0)'], { encoding: 'utf8' });
    expect(bad.status).not.toBe(0);
  });
});
