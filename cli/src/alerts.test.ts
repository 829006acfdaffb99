/** `stele alerts eval` through the `stele` command: rule files (shipped and local), readings as JSON lines. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readingJsonView, type EvalResult } from '@stele/core/alerts';
import { chain, minuteRecord, MIN, T0, tempSample } from '@stele/core/testing';
import { main } from './main.ts';

let dir: string;
const run = async (...argv: string[]) => {
  let out = '';
  let err = '';
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  const code = await main(argv, { stdin: new PassThrough(), stdout, stderr });
  return { code, out, err };
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stele-alerts-cli-'));
  // one hour of SO2 at 40 mg/m³ with 10 % O2 (54.5455 at 6 %) on gw-1, a cold room with a 10-minute excursion on gw-2
  const cems = chain(Array.from({ length: 50 }, (_, i) => minuteRecord(i, '40', '10')));
  const room = chain(['5', '5', '8.6', '9.1', '5'].map((v, i) => tempSample(T0 + i * 5 * MIN, v)), 'gw-2');
  const lines = [...cems, ...room].map((e) => JSON.stringify(readingJsonView(e.reading)));
  await writeFile(join(dir, 'readings.jsonl'), `${lines.join('\n')}\n`);
  await writeFile(join(dir, 'bad.jsonl'), `${lines[0]}\n{"v":1,"device":"gw-1"}\n`);
  await writeFile(
    join(dir, 'local.json'),
    JSON.stringify({ format: 'stele-rules/1', name: 'local', rules: [{ id: 'room', type: 'cold-chain', standard: 'site SOP 7', version: '3', params: { profile: '2-8 C', low: '2', high: '8', maxContinuousMs: 5 * MIN } }] }),
  );
  await writeFile(join(dir, 'broken.json'), JSON.stringify({ format: 'stele-rules/1', rules: [{ id: 'x', type: 'emission-hourly', standard: 's', version: '1', params: { pollutants: [{ code: 'a21026', limit: 35 }] } }] }));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('stele alerts eval', () => {
  it('prints every aggregate and alert with its computed values (shipped ultra-low rules and a local rule file)', async () => {
    const r = await run('alerts', 'eval', '--rules', 'ultra-low-coal', '--rules', join(dir, 'local.json'), '--readings', join(dir, 'readings.jsonl'), '--json');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const result = JSON.parse(r.out) as EvalResult;
    expect(result.alerts.map((a) => [a.kind, a.subject, a.rule.id, a.rule.version])).toEqual([
      ['emission-exceedance', 'gw-1/MN1/a21026', 'ultra-low-coal', '2015-12-11'],
      ['cold-chain-excursion', 'gw-2/room-1/p1', 'room', '3'],
    ]);
    expect(result.alerts[0]!.values).toMatchObject({ mean: '54.5455', limit: '35', validMinutes: 50, referenceO2: '6' });
    expect(result.alerts[1]!.values).toMatchObject({ continuousMs: 10 * MIN, peak: '9.1' });
    expect(result.aggregates.map((a) => a.kind)).toEqual(['emission-hour', 'emission-day', 'cold-chain-probe']);

    const text = await run('alerts', 'eval', '--rules', 'ultra-low-coal', '--readings', join(dir, 'readings.jsonl'));
    expect(text.code).toBe(0);
    expect(text.out).toMatch(/ALERT emission-exceedance gw-1\/MN1\/a21026/);
    expect(text.out).toMatch(/mean=54\.5455 limit=35/);
    expect(text.out).toMatch(/window {2}2026-11-20T14:00:00\+08:00 \.\. 2026-11-20T15:00:00\+08:00 \(instrument time\)/);
  });

  it('lists the shipped rule sets', async () => {
    const r = await run('alerts', 'standards');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^gb13223-2011-coal-new /m);
    expect(r.out).toMatch(/^ultra-low-coal /m);
  });

  it('refuses bad input with a code and where it came from', async () => {
    const bad = await run('alerts', 'eval', '--rules', 'ultra-low-coal', '--readings', join(dir, 'bad.jsonl'));
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/READINGS_FORMAT_ERROR: .*bad\.jsonl: line 2:/);
    const rules = await run('alerts', 'eval', '--rules', join(dir, 'broken.json'), '--readings', join(dir, 'readings.jsonl'));
    expect(rules.code).toBe(2);
    expect(rules.err).toMatch(/RULES_FORMAT_ERROR: .*broken\.json: \$\.rules\[0\]\.params\.pollutants\[0\]\.limit/);
    const usage = await run('alerts', 'eval', '--readings', join(dir, 'readings.jsonl'));
    expect(usage.code).toBe(2);
    expect(usage.err).toMatch(/--rules is required/);
    const missing = await run('alerts', 'eval', '--rules', 'no-such-standard', '--readings', join(dir, 'readings.jsonl'));
    expect(missing.code).toBe(2);
  });
});
