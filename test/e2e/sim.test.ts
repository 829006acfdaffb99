/**
 * Issue #14: `stele sim` through the CLI door, as a developer runs it: the command is spawned (node
 * cli/bin/stele.mjs sim ...), and its exit status and printed report are checked. Two short shipped scenarios run
 * here: quick-check (episodes on a CEMS and a Modbus probe, every frame at ingest, evidence verified) and
 * outbox-tamper (a value altered in an outbox; the assertions check that Stele detected it). The others run with
 * `npx stele sim --scenario NAME`.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '@stele/testkit';
import { SOCAT_SKIP_REASON, socatAvailable } from '@stele/simulator';

function stele(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(repoRoot, 'cli', 'bin', 'stele.mjs'), ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('stele sim: usage', () => {
  it('prints its help on stdout (exit 0) and lists the shipped scenarios', async () => {
    const help = await stele(['sim', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage: stele sim --list/);
    const list = await stele(['sim', '--list']);
    expect(list.code).toBe(0);
    for (const name of ['quick-check', 'gateway-power-cut', 'outbox-tamper', 'forged-confirmation', 'cold-chain-fleet']) expect(list.stdout).toMatch(new RegExp(`^${name} `, 'm'));
  }, 60_000);

  it('exits 2 on a usage error, an unknown scenario and a bad scenario file (code, file, line and key path)', async () => {
    const none = await stele(['sim']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/give --list or --scenario/);
    const unknown = await stele(['sim', '--scenario', 'no-such-scenario']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/SCENARIO_UNKNOWN/);
    const dir = await mkdtemp(join(tmpdir(), 'stele-sim-cli-'));
    try {
      const file = join(dir, 'bad.yaml');
      await writeFile(file, 'name: bad\ndescription: x\ngateways:\n  - id: gw\n    instruments:\n      - id: a\n        kind: cems\n        intervall: 1s\nassertions: [bundles-verify]\n');
      const bad = await stele(['sim', '--scenario', file]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('SCENARIO_INVALID');
      expect(bad.stderr).toContain(`${file}:8:9 gateways[0].instruments[0].intervall: unknown field (did you mean interval?)`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe.skipIf(!socatAvailable())(`stele sim: shipped scenarios ${socatAvailable() ? '' : SOCAT_SKIP_REASON}`, () => {
  it('quick-check: every frame reaches ingest, the episodes are in the verified evidence (exit 0)', async () => {
    const r = await stele(['sim', '--scenario', 'quick-check']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/PASS {2}frames-reach-ingest: (\d+) of \1 frames/);
    expect(r.stdout).toMatch(/PASS {2}exceedance-in-evidence/);
    expect(r.stdout).toMatch(/PASS {2}door-open-in-evidence/);
    expect(r.stdout).toMatch(/PASS {2}bundles-verify: gw-sim-stack2 seq 1\.\.\d+: verified/);
    expect(r.stdout).toMatch(/result {3}PASS/);
    expect(r.code).toBe(0);
  }, 240_000);

  it('outbox-tamper: the altered reading is detected and never reaches ingest (exit 0)', async () => {
    const r = await stele(['sim', '--scenario', 'outbox-tamper']);
    expect(r.stdout).toMatch(/PASS {2}tamper-detected: gw-sim-tamper seq \d+: gateway refused its outbox \(OUTBOX_CORRUPT\)/);
    expect(r.stdout).toMatch(/the altered reading never reached ingest/);
    expect(r.stdout).toMatch(/PASS {2}bundles-verify/);
    expect(r.code).toBe(0);
  }, 240_000);

  it('exits 1 with FAIL in the report when an assertion does not hold (tamper-detected, with nothing tampered)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stele-sim-fail-'));
    try {
      const file = join(dir, 'nothing-tampered.yaml');
      await writeFile(file, 'name: nothing-tampered\ndescription: asserts a detection without injecting anything\nseconds: 5\ngateways:\n  - id: gw-sim-none\n    instruments:\n      - id: stack\n        kind: cems\nassertions: [tamper-detected]\n');
      const r = await stele(['sim', '--scenario', file]);
      expect(r.stdout).toMatch(/FAIL {2}tamper-detected: no value was altered/);
      expect(r.stdout).toMatch(/result {3}FAIL: 1 of 1 assertions failed/);
      expect(r.code).toBe(1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 240_000);
});
