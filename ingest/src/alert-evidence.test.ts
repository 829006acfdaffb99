/**
 * Alert evidence beyond one device's logged readings, on real parts (ingest on an aedes broker with anvil): an alert
 * over two gateways (the sampling yard's and the lab's custody events) exported as an evidence set (FORMAT.md §7.2)
 * through the API, and a gap ingest caught (a reading held ahead of missing seqs) exported with the held statement
 * in `caught` (§7). Each verifies with core's verifier against the chain.
 */
import { describe, expect, it } from 'vitest';
import { GENESIS_PREV, toBase64Url, type Measurement, type Reading } from '@stele/core';
import { readAnchor } from '@stele/core/anchor';
import { parseRuleSet } from '@stele/core/alerts';
import { verifyBundleBytes } from '@stele/core/verify';
import { policyTrustingBundle } from '@stele/core/testing';
import { AlertBook } from './alerts.ts';
import { startIngestHttp } from './http/server.ts';
import { enrolmentOf, makeChain, signedReading, TestGateway, testSigner, useIngestStack, waitFor, type SignedReading } from './test-helpers.ts';
import type { EvidenceBundleJson } from './service.ts';
import type { Signer } from '@stele/core';

const stack = useIngestStack('evidence-set-chain');
const RULES = parseRuleSet({ format: 'stele-rules/1', rules: [{ id: 'coal', type: 'coal-lab', standard: 'GB/T 474', version: '1', params: {} }] });
const T0 = Date.UTC(2026, 10, 20, 0, 0, 0); // 08:00 +08:00
const H = 3_600_000;
const at = (h: number): string => `2026-11-20T${String(8 + h).padStart(2, '0')}:00:00+08:00`;
const custody = (f: Record<string, string>): Measurement[] => Object.entries(f).map(([code, value]) => ({ code, kind: 'custody', value, ...(code === 'weight' ? { unit: 'g' } : {}) }));

/** A device's readings: custody events, then a plain reading an hour after the last (closes the alert window). */
async function chainOf(signer: Signer, device: string, start: number, metas: Measurement[][]): Promise<SignedReading[]> {
  const out: SignedReading[] = [];
  let prev = GENESIS_PREV;
  const all = [...metas, [{ code: 'temp', kind: 'Rtd', value: '20.0', unit: '°C', flag: 'N' }]];
  for (const [i, meas] of all.entries()) {
    const reading: Reading = { v: 1, device, sensor: i < metas.length ? 'custody' : 't1', seq: i + 1, prev, time: start + i * H, clock: { synced: true, source: 'ntp' }, meas, raw: [] };
    const r = await signedReading(signer, reading);
    out.push(r);
    prev = r.digest;
  }
  return out;
}

describe('alert evidence across devices', () => {
  it('GET /alerts/<id>/bundle gives an evidence set of both gateways that verifies against the chain', async () => {
    const s = await stack.setup({ deviceId: 'gw-yard', dirPrefix: 'evset' });
    const lab = testSigner();
    await s.ingest.enrol(enrolmentOf(lab, 'gw-lab'));
    const labGw = await TestGateway.connect(stack.broker.url, 'gw-lab');
    stack.cleanups.push(() => labGw.close());

    const yard = await chainOf(s.device, 'gw-yard', T0, [
      custody({ step: 'sampling', at: at(0), by: 'li', code: 'S1', batch: 'B1', weight: '1000' }),
      custody({ step: 'handover', at: at(1), by: 'li', to: 'wang', code: 'S1', weight: '995' }),
    ]);
    const labChain = await chainOf(lab, 'gw-lab', T0 + 2 * H, [custody({ step: 'preparation', at: at(2), by: 'sun', code: 'P1', fromCode: 'S1', weight: '100' })]);
    for (const r of yard) await s.gw.publish(r);
    for (const r of labChain) await labGw.publish(r);
    await waitFor(() => s.gw.ackedUpTo === yard.length && labGw.ackedUpTo === labChain.length, 'both gateways acked');
    await s.ingest.flush();

    const book = new AlertBook(s.ingest, RULES);
    const http = await startIngestHttp({ service: s.ingest, alerts: book });
    stack.cleanups.push(() => http.close());
    const list = (await (await fetch(`${http.url}/alerts`)).json()) as { alerts: { id: string; subject: string; devices: string[] }[] };
    const alert = list.alerts.find((a) => a.subject === 'P1');
    expect(alert?.devices).toEqual(['gw-yard', 'gw-lab']);

    for (const form of ['v2', 'v1'] as const) {
      const res = await fetch(`${http.url}/alerts/${alert!.id}/bundle?form=${form}`);
      expect(res.status).toBe(200);
      const bytes = new Uint8Array(await res.arrayBuffer());
      const set = JSON.parse(new TextDecoder().decode(bytes)) as { format: string; alert: { id: string }; bundles: { format: string; device: { deviceId: string }; window: { firstSeq: number; lastSeq: number }; alert?: unknown }[] };
      expect(set.format).toBe('stele-evidence-set/1');
      expect(set.alert.id).toBe(alert!.id);
      expect(set.bundles.map((b) => [b.format, b.device.deviceId, b.window.firstSeq, b.window.lastSeq, b.alert])).toEqual([
        [form === 'v2' ? 'stele-evidence/2' : 'stele-evidence/1', 'gw-yard', 1, 3, undefined],
        [form === 'v2' ? 'stele-evidence/2' : 'stele-evidence/1', 'gw-lab', 1, 2, undefined],
      ]);
      const { verdict } = await verifyBundleBytes(bytes, {
        anchorReader: (ref, batchId, rpc) => readAnchor(rpc ?? ref.rpc!, ref, batchId),
        trust: await policyTrustingBundle(set.bundles[0] as unknown as Record<string, unknown>),
      });
      expect(verdict.checks.filter((c) => c.status !== 'pass' && c.status !== 'not-applicable').map((c) => c.id)).toEqual([]);
      expect(verdict.state).toBe('verified');
      expect(verdict.summary.members?.map((m) => m.deviceId)).toEqual(['gw-yard', 'gw-lab']);
    }
  }, 60_000);

  it('a gap ingest caught (a reading held ahead of missing seqs) is an alert whose bundle proves the gap', async () => {
    const s = await stack.setup({ deviceId: 'gw-gap', dirPrefix: 'evgap' });
    const chain = await makeChain(s.device, 'gw-gap', 6);
    for (const r of [...chain.slice(0, 3), chain[5]!]) await s.gw.publish(r);
    await waitFor(() => s.gw.ackedUpTo === 3 && s.ingest.stats().buffered === 1, 'seqs 1-3 stored, seq 6 held');
    await s.ingest.flush();
    const rules = parseRuleSet({ format: 'stele-rules/1', rules: [{ id: 'integrity', type: 'integrity', standard: 'test', version: '1', params: { unsyncedClock: false } }] });
    const book = new AlertBook(s.ingest, rules);
    const gap = (await book.alerts()).find((a) => a.kind === 'integrity-seq-gap');
    expect(gap?.values).toMatchObject({ firstMissing: 4, lastMissing: 5 });
    const bundle = (await book.bundle(gap!.id)) as EvidenceBundleJson;
    expect(bundle.window).toEqual({ firstSeq: 2, lastSeq: 3 }); // from the reading before the gap's window to the head
    expect(bundle.caught).toEqual([{ statement: toBase64Url(chain[5]!.statement), reading: toBase64Url(chain[5]!.reading) }]);
    const { verdict } = await verifyBundleBytes(new TextEncoder().encode(JSON.stringify(bundle)), {
      anchorReader: (ref, batchId, rpc) => readAnchor(rpc ?? ref.rpc!, ref, batchId),
      trust: await policyTrustingBundle(bundle as unknown as Record<string, unknown>),
    });
    // The device signed seq 6, so it made 4 and 5: the verdict fails on exactly that, and the alert is recomputed.
    expect(verdict.checks.flatMap((c) => c.failures.map((f) => [f.code, f.seq, f.expected]))).toEqual([['SEQUENCE_GAP_ERROR', 4, '4-5']]);
    expect(verdict.checks.find((c) => c.id === 'alert')!.status).toBe('pass');
  }, 60_000);
});
