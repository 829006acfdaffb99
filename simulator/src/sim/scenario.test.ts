import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codeOf } from '@stele/testkit';
import { shippedScenarios } from './cli.ts';
import { SimError } from './errors.ts';
import { MAX_SCENARIO_BYTES, loadScenario, parseScenario } from './scenario.ts';

const GOOD = `name: t
description: a test
seconds: 20
gateways:
  - id: gw-1
    instruments:
      - id: stack
        kind: cems
      - id: room
        kind: modbus-th
        slave: 3
timeline:
  - at: 5s
    episode: exceedance
    instrument: stack
    for: 2s
  - at: 2s
    fault: broker-outage
assertions: [frames-reach-ingest, bundles-verify]
`;

function issuesOf(text: string): { line: number; path: string; message: string }[] {
  try {
    parseScenario(text, 'x.yaml');
  } catch (e) {
    expect(e).toBeInstanceOf(SimError);
    expect((e as SimError).code).toBe('SCENARIO_INVALID');
    return (e as SimError).issues.map((i) => ({ line: i.line, path: i.path, message: i.message }));
  }
  throw new Error('parsed');
}

describe('scenario files', () => {
  it('parses a scenario with defaults, steps sorted by time and each step on the gateway of its instrument', () => {
    const s = parseScenario(GOOD, 'x.yaml');
    expect(s.gateways[0]!.instruments.map((i) => [i.id, i.kind, i.intervalMs, i.slave])).toEqual([
      ['stack', 'cems', 1000, 1],
      ['room', 'modbus-th', 1000, 3],
    ]);
    expect(s.timeline.map((t) => [t.atMs, t.fault ?? t.episode, t.gateway])).toEqual([
      [2000, 'broker-outage', 'gw-1'],
      [5000, 'exceedance', 'gw-1'],
    ]);
    expect(s.batchMs).toBe(1000);
  });

  it('parses the fault steps of faults.ts with their keys and defaults, and refuses a bad mode or jump', () => {
    const text = GOOD.replace(
      'assertions: [frames-reach-ingest, bundles-verify]',
      `  - { at: 3s, fault: network-partition, mode: stall, for: 4s }
  - { at: 4s, fault: clock-jump, by: -90 }
  - { at: 6s, fault: slow-signer, latency: 250ms }
  - { at: 7s, fault: network-partition }
assertions: [partition-survived, clock-state-recorded, signer-batched]`,
    );
    const s = parseScenario(text, 'x.yaml');
    expect(s.timeline.filter((t) => t.fault !== 'broker-outage' && t.episode === undefined).map((t) => [t.fault, t.mode, t.byMs, t.latencyMs, t.forMs])).toEqual([
      ['network-partition', 'stall', 3_600_000, 400, 4000],
      ['clock-jump', 'drop', -90_000, 400, 5000],
      ['slow-signer', 'drop', 3_600_000, 250, 5000],
      ['network-partition', 'drop', 3_600_000, 400, 5000],
    ]);
    expect(s.assertions).toEqual(['partition-survived', 'clock-state-recorded', 'signer-batched']);
    const bad = issuesOf(text.replace('mode: stall', 'mode: cut').replace('by: -90', 'by: 99999999'));
    expect(bad.map((i) => i.path)).toEqual(['timeline[2].mode', 'timeline[3].by']);
  });

  it('parses every shipped scenario', async () => {
    const all = await shippedScenarios();
    expect(all.length).toBeGreaterThanOrEqual(3);
    expect(new Set(all.map((s) => s.name)).size).toBe(all.length);
  });

  describe('when a key is wrong', () => {
    it('names the file, line and path of a misspelt key, with a suggestion', () => {
      const issues = issuesOf(GOOD.replace('    kind: modbus-th', '    knd: modbus-th'));
      expect(issues).toContainEqual(expect.objectContaining({ line: 10, path: 'gateways[0].instruments[1].knd', message: expect.stringContaining('did you mean kind?') }));
    });

    it('reports every problem at once: an unknown fault, an episode on the wrong kind, a step after the end', () => {
      const text = GOOD.replace('fault: broker-outage', 'fault: broker-outgae').replace('instrument: stack', 'instrument: room').replace('at: 5s', 'at: 25s');
      const issues = issuesOf(text);
      expect(issues.map((i) => i.path).sort()).toEqual(['timeline[1].fault']);
      const second = issuesOf(GOOD.replace('instrument: stack', 'instrument: room').replace('at: 5s', 'at: 25s'));
      expect(second.map((i) => i.path).sort()).toEqual(['timeline[0].at', 'timeline[0].episode']);
      expect(second.find((i) => i.path === 'timeline[0].episode')!.message).toMatch(/needs a cems instrument/);
    });

    it('refuses an instrument option of another kind, a duplicate id, and an unknown instrument', () => {
      const issues = issuesOf(GOOD.replace('        slave: 3', '        slave: 3\n        crc: hj212'));
      expect(issues.map((i) => i.path).sort()).toEqual(['gateways[0].instruments[1].crc']);
      const dup = issuesOf(GOOD.replace('id: room', 'id: stack'));
      expect(dup).toContainEqual(expect.objectContaining({ line: 9, path: 'gateways[0].instruments[1].id', message: 'duplicate instrument id "stack"' }));
      const unknown = issuesOf(GOOD.replace('instrument: stack', 'instrument: nowhere'));
      expect(unknown.map((i) => i.path)).toEqual(['timeline[0].instrument']);
    });

    it('reports YAML syntax errors with their line', () => {
      expect(issuesOf('name: [unclosed\n')[0]!.message).toMatch(/^YAML syntax/);
    });
  });

  describe('when the file is not readable or too large', () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'stele-scenario-'));
    });
    afterAll(() => rm(dir, { recursive: true, force: true }));

    it('rejects with SCENARIO_UNREADABLE and SCENARIO_TOO_LARGE', async () => {
      expect(await codeOf(loadScenario(join(dir, 'missing.yaml')), SimError)).toBe('SCENARIO_UNREADABLE');
      const big = join(dir, 'big.yaml');
      await writeFile(big, `# ${'x'.repeat(MAX_SCENARIO_BYTES)}\n`);
      expect(await codeOf(loadScenario(big), SimError)).toBe('SCENARIO_TOO_LARGE');
    });
  });
});
