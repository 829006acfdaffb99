/**
 * Evidence sets (FORMAT.md §7.2): one alert whose readings span two devices (a custody hand-over recorded on the
 * sampling yard's gateway, the preparation on the lab's), one bundle per device. Verified through
 * verifyBundleBytes, the door the CLI and the page use.
 */
import { describe, expect, it } from 'vitest';
import { evalReading, evaluateRuleSet } from '../alerts/engine.ts';
import { parseRuleSet } from '../alerts/rules.ts';
import { bundleToJson, EVIDENCE_SET_FORMAT, MAX_SET_BUNDLES, type EvidenceBundle } from '../bundle.ts';
import { encodeReading, type Measurement } from '../reading.ts';
import { buildTestBundle, cloneBundle, testSigner, type TestBundle } from './test-bundle.ts';
import type { Verdict } from './verdict.ts';
import { verifyBundleBytes, type AnchorReader } from './verify.ts';

const T0 = Date.UTC(2026, 10, 20, 0, 0, 0); // 08:00 +08:00
const H = 3_600_000;
const at = (h: number): string => `2026-11-20T${String(8 + h).padStart(2, '0')}:00:00+08:00`;
const events = (f: Record<string, string>): Measurement[] =>
  Object.entries(f).map(([code, value]) => ({ code, kind: 'custody', value, ...(code === 'weight' ? { unit: 'g' } : {}) }));
const rules = parseRuleSet({ format: 'stele-rules/1', rules: [{ id: 'coal', type: 'coal-lab', standard: 'GB/T 474', version: '1', params: {} }] });

interface Fixture {
  yard: TestBundle;
  lab: TestBundle;
  alert: Record<string, unknown>;
  reader: AnchorReader;
}

/** Sampling and hand-over to wang on the yard gateway; preparation by sun (not the holder) on the lab gateway. */
async function fixture(): Promise<Fixture> {
  const yard = await buildTestBundle({
    deviceId: 'gw-yard',
    deviceSigner: testSigner('yard'),
    count: 3,
    startTimeMs: T0,
    intervalMs: H,
    contentOf: (s) =>
      s === 1
        ? { sensor: 'custody', meas: events({ step: 'sampling', at: at(0), by: 'li', code: 'S1', batch: 'B1', weight: '1000' }) }
        : s === 2
          ? { sensor: 'custody', meas: events({ step: 'handover', at: at(1), by: 'li', to: 'wang', code: 'S1', weight: '995' }) }
          : undefined,
  });
  const lab = await buildTestBundle({
    deviceId: 'gw-lab',
    deviceSigner: testSigner('lab'),
    firstBatchId: 10,
    count: 3,
    startTimeMs: T0 + 2 * H,
    intervalMs: H,
    contentOf: (s) => (s === 1 ? { sensor: 'custody', meas: events({ step: 'preparation', at: at(2), by: 'sun', code: 'P1', fromCode: 'S1', weight: '100' }) } : undefined),
  });
  const all = [...yard.readings, ...lab.readings].map((r) => evalReading(r));
  const alert = evaluateRuleSet(rules, all).alerts.find((a) => a.subject === 'P1');
  if (alert === undefined) throw new Error('the events should give a custody break at P1');
  const reader: AnchorReader = (ref, batchId, url) => (batchId >= 10 ? lab : yard).anchorReader(ref, batchId, url);
  return { yard, lab, alert: JSON.parse(JSON.stringify(alert)) as Record<string, unknown>, reader };
}

const setBytes = (members: readonly (EvidenceBundle | Record<string, unknown>)[], alert: unknown, extra: Record<string, unknown> = {}): Uint8Array =>
  new TextEncoder().encode(
    JSON.stringify({
      format: EVIDENCE_SET_FORMAT,
      createdAt: '2026-11-21T00:00:00.000Z',
      alert,
      bundles: members.map((m) => ('entries' in m && Array.isArray(m.entries) && m.entries[0] !== undefined && m.entries[0].statement instanceof Uint8Array ? bundleToJson(m as EvidenceBundle) : m)),
      ...extra,
    }),
  );

const verify = async (f: Fixture, bytes: Uint8Array): Promise<Verdict> =>
  (await verifyBundleBytes(bytes, { anchorReader: f.reader, trust: f.yard.trust, now: Date.UTC(2026, 11, 1) })).verdict;
const codes = (v: Verdict): string[] => [...new Set(v.checks.flatMap((c) => c.failures.map((f) => f.code)))].sort();
const check = (v: Verdict, id: string) => v.checks.find((c) => c.id === id)!;

describe('an evidence set: one custody alert across two gateways', () => {
  it('verifies: each bundle by §9, the alert recomputed from the readings of both devices, both windows covered', async () => {
    const f = await fixture();
    expect((f.alert.readings as { device: string }[]).map((r) => r.device)).toEqual(['gw-yard', 'gw-lab']);
    const r = await verifyBundleBytes(setBytes([f.yard.bundle, f.lab.bundle], f.alert), { anchorReader: f.reader, trust: f.yard.trust, now: Date.UTC(2026, 11, 1) });
    const v = r.verdict;
    expect(codes(v)).toEqual([]);
    expect(v.state).toBe('verified');
    expect(check(v, 'alert').status).toBe('pass');
    expect(check(v, 'alert').sentence.en).toMatch(/Recomputed coal-custody-break \(P1\) from the verified readings of every device: issue CUSTODY_HOLDER_MISMATCH.*gw-yard seq 1–3, gw-lab seq 1–3 cover the whole alert window/);
    expect(v.summary.members).toEqual([
      { deviceId: 'gw-yard', firstSeq: 1, lastSeq: 3, readings: 3, bodies: 3, state: 'verified' },
      { deviceId: 'gw-lab', firstSeq: 1, lastSeq: 3, readings: 3, bodies: 3, state: 'verified' },
    ]);
    expect(v.summary.devices).toEqual(['gw-yard', 'gw-lab']);
    expect(v.summary.readings).toBe(6);
    expect(v.summary.anchors.map((a) => a.batchId).sort((a, b) => a - b)).toEqual([1, 2, 10, 11]);
    expect(r.members?.map((m) => m.state)).toEqual(['verified', 'verified']);
    expect(r.set?.bundles.length).toBe(2);
  });

  it('one reading removed from the lab bundle: SEQUENCE_GAP_ERROR named by device, with its path in the set', async () => {
    const f = await fixture();
    const lab = cloneBundle(f.lab.bundle);
    lab.entries = lab.entries.filter((e) => e.seq !== 2);
    const v = await verify(f, setBytes([f.yard.bundle, lab], f.alert));
    expect(v.state).toBe('failed');
    expect(codes(v)).toContain('SEQUENCE_GAP_ERROR');
    const gap = check(v, 'completeness').failures.find((x) => x.code === 'SEQUENCE_GAP_ERROR')!;
    expect(gap).toMatchObject({ device: 'gw-lab', seq: 2 });
    expect(check(v, 'completeness').sentence.en).toMatch(/^gw-lab: /);
    expect(v.summary.members?.map((m) => m.state)).toEqual(['verified', 'failed']);
  });

  it('the hand-over reading altered: DIGEST_MISMATCH_ERROR, and check 9 cannot recompute from it', async () => {
    const f = await fixture();
    const yard = cloneBundle(f.yard.bundle);
    const e = yard.entries.find((x) => x.seq === 2)!;
    const r = f.yard.readings[1]!;
    e.reading = encodeReading({ ...r, meas: r.meas.map((m) => (m.code === 'to' ? { ...m, value: 'sun' } : m)) });
    const v = await verify(f, setBytes([yard, f.lab.bundle], f.alert));
    expect(codes(v)).toContain('DIGEST_MISMATCH_ERROR');
    expect(check(v, 'signatures').failures[0]).toMatchObject({ device: 'gw-yard', seq: 2 });
    expect(check(v, 'alert').status).not.toBe('pass');
  });

  it("the alert's value edited: ALERT_MISMATCH_ERROR; the lab's bundle left out: check 9 unchecked", async () => {
    const f = await fixture();
    const edited = structuredClone(f.alert) as { values: Record<string, string> };
    edited.values.by = 'wang';
    const v = await verify(f, setBytes([f.yard.bundle, f.lab.bundle], edited));
    expect(codes(v)).toEqual(['ALERT_MISMATCH_ERROR']);
    expect(check(v, 'alert').failures[0]).toMatchObject({ path: '$.alert.values.by', expected: '"sun"', actual: '"wang"' });

    const alone = await verify(f, setBytes([f.yard.bundle], f.alert));
    expect(codes(alone)).toEqual([]);
    expect(check(alone, 'alert').status).toBe('unchecked');
    expect(alone.state).toBe('partial');
  });

  it("a bundle that starts inside the alert's window: ALERT_WINDOW_ERROR at its path in the set", async () => {
    const f = await fixture();
    const yard = cloneBundle(f.yard.bundle);
    yard.window = { firstSeq: 2, lastSeq: 3 };
    yard.entries = yard.entries.filter((e) => e.seq >= 2);
    const v = await verify(f, setBytes([yard, f.lab.bundle], f.alert));
    expect(codes(v)).toEqual(['ALERT_WINDOW_ERROR']);
    expect(check(v, 'alert').failures[0]).toMatchObject({ seq: 2, path: '$.bundles[0].window.firstSeq' });
    expect(check(v, 'alert').sentence.en).toMatch(/^gw-yard: The bundle starts at reading 2/);
  });

  it('a bundle from another ingest key fails check 11 under the policy, named by device', async () => {
    const f = await fixture();
    const rogue = await buildTestBundle({ deviceId: 'gw-lab', deviceSigner: testSigner('lab'), ingestSigner: testSigner('rogue'), firstBatchId: 10, count: 3, startTimeMs: T0 + 2 * H, intervalMs: H });
    const v = await verifyBundleBytes(setBytes([f.yard.bundle, rogue.bundle], f.alert), {
      anchorReader: (ref, b, u) => (b >= 10 ? rogue : f.yard).anchorReader(ref, b, u),
      trust: f.yard.trust,
      now: Date.UTC(2026, 11, 1),
    });
    expect(codes(v.verdict)).toContain('UNTRUSTED_INGEST_KEY_ERROR');
    expect(check(v.verdict, 'trust').failures.every((x) => x.device === 'gw-lab')).toBe(true);
  });

  it('shape: a bundle with its own alert, one device twice, no bundles, too many bundles, an unknown key', async () => {
    const f = await fixture();
    const withAlert = { ...bundleToJson(f.yard.bundle), alert: f.alert };
    const cases: [Uint8Array, string, string][] = [
      [setBytes([withAlert, f.lab.bundle], f.alert), 'BUNDLE_FORMAT_ERROR', '$.bundles[0].alert'],
      [setBytes([f.yard.bundle, f.yard.bundle], f.alert), 'BUNDLE_FORMAT_ERROR', '$.bundles[1].device.deviceId'],
      [setBytes([], f.alert), 'BUNDLE_FORMAT_ERROR', '$.bundles'],
      [setBytes(Array.from({ length: MAX_SET_BUNDLES + 1 }, () => ({})), f.alert), 'BUNDLE_LIMIT_ERROR', '$.bundles'],
      [setBytes([f.yard.bundle], f.alert, { note: 'x' }), 'BUNDLE_FORMAT_ERROR', '$.note'],
      [setBytes([{ ...bundleToJson(f.yard.bundle), window: { firstSeq: 3, lastSeq: 1 } }], f.alert), 'BUNDLE_FORMAT_ERROR', '$.bundles[0].window'],
    ];
    for (const [bytes, code, path] of cases) {
      const v = await verify(f, bytes);
      expect(v.state).toBe('failed');
      expect(check(v, 'format').failures[0]).toMatchObject({ code, path });
    }
  });
});
