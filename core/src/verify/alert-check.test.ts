import { describe, expect, it } from 'vitest';
import { evaluateRuleSet } from '../alerts/engine.ts';
import { parseRuleSet } from '../alerts/rules.ts';
import { chain, minuteRecord, MIN, T0, tempSample } from '../alerts/test-helpers.ts';
import { checkAlert } from './alert-check.ts';

const set = parseRuleSet({
  format: 'stele-rules/1',
  rules: [{ id: 'so2', type: 'emission-hourly', standard: 'ultra-low', version: '1', params: { pollutants: [{ code: 'a21026', limit: '35' }], referenceO2: '6' } }],
  invalidPeriods: [{ from: '20261120145500', to: '20261120150000', reason: 'calibration' }],
});
const readings = chain(Array.from({ length: 60 }, (_, i) => minuteRecord(i, i === 7 ? '41' : '40', '10')));
/** The alert as a bundle carries it: through JSON. */
const alert = () => JSON.parse(JSON.stringify(evaluateRuleSet(set, readings).alerts[0])) as Record<string, unknown> & { values: Record<string, unknown> };

describe('checkAlert (verifier check 9)', () => {
  it('passes when the verified readings give the same alert', () => {
    const a = alert();
    expect(a.values.mean).toBe('54.5702'); // (54 × 54.545455 + 55.909091) / 55 = 54.570248…: minutes 55..59 are marked
    const r = checkAlert(a, readings.map((e) => e.reading));
    expect(r.failures).toEqual([]);
    expect(r.status).toBe('pass');
  });

  it('fails with ALERT_MISMATCH_ERROR when the alert number is edited', () => {
    const a = alert();
    a.values.mean = '41.2000';
    const r = checkAlert(a, readings.map((e) => e.reading));
    expect(r.status).toBe('fail');
    expect(r.failures).toEqual([{ code: 'ALERT_MISMATCH_ERROR', sentence: expect.any(String), path: '$.alert.values.mean', expected: '"54.5702"', actual: '"41.2000"' }]);
  });

  it('fails when the rule was edited (limit, version) or a reading changed; is unchecked without bodies', () => {
    const limit = alert();
    (limit.rule as { params: { pollutants: { limit: string }[] } }).params.pollutants[0]!.limit = '60';
    expect(checkAlert(limit, readings.map((e) => e.reading)).failures[0]!.code).toBe('ALERT_MISMATCH_ERROR');
    const version = alert();
    (version.rule as { version: string }).version = '2';
    expect(checkAlert(version, readings.map((e) => e.reading)).failures[0]!.path).toBe('$.alert.id');
    const changed = readings.map((e) => e.reading);
    changed[3] = { ...changed[3]!, meas: [{ ...changed[3]!.meas[0]!, value: '400' }, changed[3]!.meas[1]!] };
    expect(checkAlert(alert(), changed).failures.map((f) => f.path)).toContain('$.alert.values.mean');
    const noBody = readings.map((e) => e.reading).filter((r) => r.seq !== 5);
    expect(checkAlert(alert(), noBody).status).toBe('unchecked');
  });

  it('is not-applicable without an alert and unchecked for an unstructured v1 alert', () => {
    expect(checkAlert(undefined, []).status).toBe('not-applicable');
    expect(checkAlert({ note: 'free text' }, []).status).toBe('unchecked');
  });

  it('recomputes time-dependent alerts at the alert evaluation time (a quiet probe)', () => {
    const cc = parseRuleSet({ format: 'stele-rules/1', rules: [{ id: 'q', type: 'cold-chain', standard: 'GSP', version: '1', params: { profile: '2-8 C', low: '2', high: '8', quietMs: 30 * MIN } }] });
    const probe = chain([tempSample(T0, '5'), tempSample(T0 + 5 * MIN, '5')]);
    const a = JSON.parse(JSON.stringify(evaluateRuleSet(cc, probe, { at: T0 + 60 * MIN }).alerts[0]));
    expect(a.kind).toBe('cold-chain-probe-quiet');
    expect(checkAlert(a, probe.map((e) => e.reading)).status).toBe('pass');
  });
});
