/**
 * `stele verify` of an evidence set (FORMAT.md §7.2): a custody alert over the sampling yard's and the lab's
 * gateways, one bundle each, checked with the authority's policy against a chain endpoint (a JSON-RPC server on
 * 127.0.0.1 answering the bundles' genuine anchors).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleToJson, EVIDENCE_SET_FORMAT, type Measurement } from '@stele/core';
import { evalReading, evaluateRuleSet, parseRuleSet } from '@stele/core/alerts';
import { answerJsonRpc, buildTestBundle, buildTestPolicy, testSigner, type TestBundle } from '@stele/core/testing';
import type { Verdict } from '@stele/core/verify';
import { runVerify } from './cli.ts';

const T0 = Date.UTC(2026, 10, 20, 0, 0, 0);
const H = 3_600_000;
const at = (h: number): string => `2026-11-20T${String(8 + h).padStart(2, '0')}:00:00+08:00`;
const events = (f: Record<string, string>): Measurement[] => Object.entries(f).map(([code, value]) => ({ code, kind: 'custody', value, ...(code === 'weight' ? { unit: 'g' } : {}) }));

let dir: string;
let server: Server;
let rpcUrl: string;
let yard: TestBundle;
let lab: TestBundle;
let alert: Record<string, unknown>;
let policyArgs: string[];

async function write(name: string, value: unknown): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, value instanceof Uint8Array ? value : `${JSON.stringify(value, null, 2)}\n`);
  return file;
}

const setOf = (a: unknown, members = [yard, lab], form: 1 | 2 = 2) => ({ format: EVIDENCE_SET_FORMAT, createdAt: '2026-11-21T00:00:00.000Z', alert: a, bundles: members.map((m) => bundleToJson(m.bundle, { form })) });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stele-verify-set-'));
  yard = await buildTestBundle({
    deviceId: 'gw-yard',
    deviceSigner: testSigner('yard'),
    lifecycle: true,
    count: 3,
    startTimeMs: T0,
    intervalMs: H,
    contentOf: (s) =>
      s === 1
        ? { sensor: 'custody', meas: events({ step: 'sampling', at: at(0), by: 'li', code: 'S1', weight: '1000' }) }
        : s === 2
          ? { sensor: 'custody', meas: events({ step: 'handover', at: at(1), by: 'li', to: 'wang', code: 'S1', weight: '995' }) }
          : undefined,
  });
  lab = await buildTestBundle({
    deviceId: 'gw-lab',
    deviceSigner: testSigner('lab'),
    lifecycle: true,
    firstBatchId: 10,
    count: 3,
    startTimeMs: T0 + 2 * H,
    intervalMs: H,
    contentOf: (s) => (s === 1 ? { sensor: 'custody', meas: events({ step: 'preparation', at: at(2), by: 'sun', code: 'P1', fromCode: 'S1', weight: '100' }) } : undefined),
  });
  const rules = parseRuleSet({ format: 'stele-rules/1', rules: [{ id: 'coal', type: 'coal-lab', standard: 'GB/T 474', version: '1', params: {} }] });
  alert = JSON.parse(JSON.stringify(evaluateRuleSet(rules, [...yard.readings, ...lab.readings].map((r) => evalReading(r))).alerts.find((a) => a.subject === 'P1'))) as Record<string, unknown>;
  // One chain holds both devices' batches (one ingest, one contract).
  const chain = { bundle: { ...yard.bundle, batches: [...yard.bundle.batches, ...lab.bundle.batches] }, chain: new Map([...yard.chain, ...lab.chain]) };
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(answerJsonRpc(chain, JSON.parse(body))));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  rpcUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const policy = await buildTestPolicy(yard.ingest, 'stele-ingest-test');
  policyArgs = ['--trust', await write('policy.json', policy.bytes), '--authority', policy.fingerprint, '--rpc', rpcUrl];
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
  await rm(dir, { recursive: true, force: true });
});

async function run(...argv: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const code = await runVerify(argv, { stdout: { write: (s: string) => (out += s) }, stderr: { write: () => true } });
  return { code, out };
}

describe('stele verify of an evidence set', () => {
  it('exits 0 and lists each device with its seq window and verdict', async () => {
    const r = await run(await write('set.json', setOf(alert)), ...policyArgs, '--lang', 'en');
    expect(r.code).toBe(0);
    expect(r.out).toContain('Verdict: VERIFIED');
    expect(r.out).toContain('Devices (one bundle each):');
    expect(r.out).toMatch(/gw-yard {2}seq 1\.\.3 {2}3 readings {2}\[VERIFIED\]/);
    expect(r.out).toMatch(/gw-lab {2}seq 1\.\.3 {2}3 readings {2}\[VERIFIED\]/);
    expect(r.out).toMatch(/\[pass\] 9\. .*gw-yard seq 1–3, gw-lab seq 1–3 cover the whole alert window/);
  });

  it("exits 1 with ALERT_MISMATCH_ERROR for an edited value, and names the device of a removed reading", async () => {
    const edited = structuredClone(alert) as { values: Record<string, string> };
    edited.values.holder = 'li';
    const r = await run(await write('edited.json', setOf(edited)), ...policyArgs, '--json');
    expect(r.code).toBe(1);
    expect((JSON.parse(r.out) as Verdict).checks.find((c) => c.id === 'alert')!.failures[0]).toMatchObject({ code: 'ALERT_MISMATCH_ERROR', path: '$.alert.values.holder' });

    const set = setOf(alert, [yard, lab], 1);
    const labJson = set.bundles[1] as { entries: { seq: number }[] };
    labJson.entries = labJson.entries.filter((e) => e.seq !== 2);
    const gap = await run(await write('gap.json', set), ...policyArgs, '--lang', 'en');
    expect(gap.code).toBe(1);
    expect(gap.out).toMatch(/gw-lab {2}seq 1\.\.3 .*\[FAILED\]/);
    expect(gap.out).toMatch(/SEQUENCE_GAP_ERROR \(gw-lab, seq 2\)/);
  });

  it('exits 3 without a policy, and 3 when the lab bundle is left out (the alert cannot be recomputed)', async () => {
    const none = await run(await write('set2.json', setOf(alert)), '--rpc', rpcUrl);
    expect(none.code).toBe(3);
    const alone = await run(await write('alone.json', setOf(alert, [yard])), ...policyArgs, '--json');
    expect(alone.code).toBe(3);
    expect((JSON.parse(alone.out) as Verdict).checks.find((c) => c.id === 'alert')!.status).toBe('unchecked');
  });
});
