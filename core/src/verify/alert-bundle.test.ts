/**
 * Check 9 wired into verifyBundle (FORMAT.md §9 check 9, §15.7, §15.8): a bundle carrying an emission alert is
 * recomputed from the readings of its window; tampering shows as the completeness, digest or alert code.
 */
import { describe, expect, it } from 'vitest';
import { evalReading, evaluateRuleSet } from '../alerts/engine.ts';
import { parseRuleSet } from '../alerts/rules.ts';
import { itimeAt, MIN, T0 } from '../alerts/test-helpers.ts';
import { encodeReading, type Reading } from '../reading.ts';
import { buildTestBundle, cloneBundle, type TestBundle } from './test-bundle.ts';
import { verifyBundle } from './verify.ts';
import type { Verdict } from './verdict.ts';

const rules = parseRuleSet({
  format: 'stele-rules/1',
  rules: [{ id: 'so2', type: 'emission-hourly', standard: 'ultra-low', version: '1', params: { pollutants: [{ code: 'a21026', limit: '35' }], referenceO2: '6' } }],
});

/** Minute records 13:59 .. 15:00 (+08:00): seq 1 is before the hour, seq 62 after it; SO2 40 at O2 10 -> 54.5455. */
const minute = (seq: number): Partial<Reading> => ({
  sensor: 'MN1',
  time: T0 + (seq - 1) * MIN,
  itime: itimeAt(seq - 2),
  rtype: '2051',
  meas: [
    { code: 'a21026', kind: 'Avg', value: seq === 9 ? '41' : '40', unit: 'mg/m³', flag: 'N' },
    { code: 'a19001', kind: 'Avg', value: '10', unit: '%', flag: 'N' },
  ],
});

async function alertBundle(window?: { firstSeq: number; lastSeq: number }): Promise<TestBundle> {
  const built = await buildTestBundle({ count: 62, startTimeMs: T0 - MIN, contentOf: minute, batchSizes: [31], ...(window === undefined ? {} : { window }) });
  const result = evaluateRuleSet(rules, built.readings.map((r) => evalReading(r)));
  const alert = result.alerts.find((a) => a.kind === 'emission-exceedance');
  if (alert === undefined) throw new Error('the readings should give an exceedance');
  built.bundle.alert = JSON.parse(JSON.stringify(alert));
  return built;
}

const verify = (b: TestBundle, bundle = b.bundle): Promise<Verdict> => verifyBundle(bundle, { anchorReader: b.anchorReader, trust: b.trust, now: Date.UTC(2026, 11, 1) });
const codes = (v: Verdict): string[] => [...new Set(v.checks.flatMap((c) => c.failures.map((f) => f.code)))].sort();
const check9 = (v: Verdict) => v.checks.find((c) => c.id === 'alert')!;

describe('check 9: an alert bundle', () => {
  it('verifies: the alert is recomputed from the readings of its window, and the window is covered', async () => {
    const b = await alertBundle();
    const v = await verify(b);
    expect(codes(v)).toEqual([]);
    expect(check9(v).status).toBe('pass');
    expect(check9(v).sentence.en).toMatch(/Recomputed emission-exceedance .*mean 54\.\d{4}.*seq 1–62 covers the whole alert window/);
    expect(v.state).toBe('verified');
    expect(v.summary.alert).toMatchObject({ kind: 'emission-exceedance', standard: 'ultra-low', values: { limit: '35' }, recomputed: { limit: '35' } });
  });

  it('with one reading of its window removed: SEQUENCE_GAP_ERROR (completeness)', async () => {
    const b = await alertBundle();
    const bundle = cloneBundle(b.bundle);
    bundle.entries = bundle.entries.filter((e) => e.seq !== 20);
    const v = await verify(b, bundle);
    expect(v.state).toBe('failed');
    expect(codes(v)).toContain('SEQUENCE_GAP_ERROR');
    expect(codes(v)).not.toContain('ALERT_WINDOW_ERROR');
  });

  it('with one reading altered: DIGEST_MISMATCH_ERROR, and the alert is not recomputed from it', async () => {
    const b = await alertBundle();
    const bundle = cloneBundle(b.bundle);
    const i = bundle.entries.findIndex((e) => e.seq === 20);
    const r = b.readings[19]!;
    bundle.entries[i]!.reading = encodeReading({ ...r, meas: [{ ...r.meas[0]!, value: '4.0' }, r.meas[1]!] });
    const v = await verify(b, bundle);
    expect(v.state).toBe('failed');
    expect(codes(v)).toContain('DIGEST_MISMATCH_ERROR');
    expect(check9(v).status).not.toBe('pass');
  });

  it("with the alert's number edited: ALERT_MISMATCH_ERROR naming the value, in zh and en", async () => {
    const b = await alertBundle();
    const bundle = cloneBundle(b.bundle);
    const alert = bundle.alert as { values: Record<string, string> };
    const genuine = alert.values.mean!;
    alert.values.mean = '34.0000';
    const v = await verify(b, bundle);
    expect(v.state).toBe('failed');
    expect(codes(v)).toEqual(['ALERT_MISMATCH_ERROR']);
    const f = check9(v).failures[0]!;
    expect(f).toMatchObject({ path: '$.alert.values.mean', expected: JSON.stringify(genuine), actual: '"34.0000"' });
    expect(f.sentence.en).toBe(`The mean recomputed from verified readings is ${genuine}, not 34.0000.`);
    expect(f.sentence.zh).toContain('与告警值');
    expect(v.headline.en).toMatch(/^Failed/);
  });

  it('a bundle that starts inside the alert window: ALERT_WINDOW_ERROR; one that ends inside it: unchecked', async () => {
    const late = await alertBundle();
    const bundle = cloneBundle(late.bundle);
    bundle.window = { firstSeq: 5, lastSeq: 62 };
    bundle.entries = bundle.entries.filter((e) => e.seq >= 5);
    // The alert edited to what the readings left in the bundle give (an attacker dropping the hour's first minutes).
    const left = late.readings.filter((r) => r.seq >= 5).map((r) => evalReading(r));
    bundle.alert = JSON.parse(JSON.stringify(evaluateRuleSet(rules, left).alerts.find((a) => a.kind === 'emission-exceedance')));
    const v = await verify(late, bundle);
    expect(codes(v)).toEqual(['ALERT_WINDOW_ERROR']);
    expect(check9(v).failures[0]).toMatchObject({ seq: 5, path: '$.window.firstSeq' });

    const early = await alertBundle();
    const cut = cloneBundle(early.bundle);
    cut.window = { firstSeq: 1, lastSeq: 61 };
    cut.entries = cut.entries.filter((e) => e.seq <= 61);
    const v2 = await verify(early, cut);
    expect(codes(v2)).toEqual([]);
    expect(check9(v2).status).toBe('unchecked');
    expect(v2.state).toBe('partial');
  });

  it('a bundle without an alert: check 9 not applicable; an unstructured alert: unchecked', async () => {
    const b = await buildTestBundle({ count: 3 });
    expect(check9(await verify(b)).status).toBe('not-applicable');
    const bundle = cloneBundle(b.bundle);
    bundle.alert = { note: 'free text' };
    const v = await verify(b, bundle);
    expect(check9(v).status).toBe('unchecked');
    expect(v.state).toBe('partial');
  });
});
