/**
 * An alert over two devices exported as an evidence set (FORMAT.md §7.2) through the API (GET /alerts/<id>/bundle)
 * on real parts: ingest on an aedes broker with anvil, two gateways (the sampling yard's and the lab's) publishing
 * signed custody events. The set verifies with core's verifier against the chain; each device's bundle covers the
 * alert's window.
 */
import { describe, expect, it } from 'vitest';
import { GENESIS_PREV, type Measurement, type Reading } from '@stele/core';
import { readAnchor } from '@stele/core/anchor';
import { parseRuleSet } from '@stele/core/alerts';
import { verifyBundleBytes } from '@stele/core/verify';
import { policyTrustingBundle } from '@stele/core/testing';
import { AlertBook } from './alerts.ts';
import { startIngestHttp } from './http/server.ts';
import { enrolmentOf, signedReading, TestGateway, testSigner, useIngestStack, waitFor, type SignedReading } from './test-helpers.ts';
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
});
