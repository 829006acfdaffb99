import { describe, expect, it } from 'vitest';
import { evaluateRuleSet } from './engine.ts';
import { parseRuleSet } from './rules.ts';
import { chain, minuteRecord, T0, MIN } from './test-helpers.ts';
import type { Reading } from '../reading.ts';

const ruleSet = (params: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) =>
  parseRuleSet({
    format: 'stele-rules/1',
    rules: [{ id: 'so2', type: 'emission-hourly', standard: 'ultra-low', version: '1', params: { pollutants: [{ code: 'a21026', limit: '35' }], referenceO2: '6', ...params } }],
    ...extra,
  });

type Rec = Omit<Reading, 'v' | 'device' | 'seq' | 'prev'>;
const hour = (n: number, so2: string, o2: string, from = 0): Rec[] => Array.from({ length: n }, (_, i) => minuteRecord(from + i, so2, o2));

describe('emission-hourly', () => {
  it('corrects to reference O2 with the same minute (40 at 10 % -> 54.5455 at 6 %) and alerts on a valid hour above the limit', () => {
    const r = evaluateRuleSet(ruleSet(), chain(hour(45, '40', '10')));
    expect(r.aggregates[0]).toMatchObject({ kind: 'emission-hour', values: { validMinutes: 45, valid: true, mean: '54.5455', exceeded: true } });
    expect(r.alerts).toHaveLength(1);
    const a = r.alerts[0]!;
    expect(a).toMatchObject({ kind: 'emission-exceedance', subject: 'gw-1/MN1/a21026', rule: { id: 'so2', version: '1' }, values: { mean: '54.5455', limit: '35', validMinutes: 45, referenceO2: '6' } });
    expect(a.window).toEqual({ from: '2026-11-20T14:00:00+08:00', to: '2026-11-20T15:00:00+08:00', basis: 'itime' });
    expect(a.inputs[0]).toEqual({ device: 'gw-1', seq: 1, itime: '20261120140000', value: '40', o2: '10', o2Used: '10', corrected: '54.545455' });
    expect(a.readings).toHaveLength(45);
    expect(a.id).toMatch(/^[0-9a-f]{64}$/);
  });

  it('35 at 8.5 % is exactly 42 at 6 %', () => {
    const r = evaluateRuleSet(ruleSet(), chain(hour(60, '35', '8.5')));
    expect(r.alerts[0]!.values.mean).toBe('42.0000');
  });

  it('44 valid minutes: the hour is not valid and nothing is an exceedance; 45: valid', () => {
    const flagged = Array.from({ length: 16 }, (_, i) => minuteRecord(44 + i, '99', '6', 'C'));
    const r44 = evaluateRuleSet(ruleSet(), chain([...hour(44, '99', '6'), ...flagged]));
    expect(r44.aggregates[0]!.values).toMatchObject({ validMinutes: 44, excludedMinutes: 16, valid: false, mean: '99.0000', exceeded: false });
    expect(r44.alerts).toEqual([]);
    const r45 = evaluateRuleSet(ruleSet(), chain([...hour(45, '99', '6'), ...flagged.slice(1)]));
    expect(r45.aggregates[0]!.values).toMatchObject({ validMinutes: 45, valid: true, exceeded: true });
    expect(r45.alerts[0]!.excluded!.map((e) => e.reason)).toEqual(Array(15).fill('FLAG_C'));
  });

  it('a mean exactly at the limit is not an exceedance (strictly above)', () => {
    const r = evaluateRuleSet(ruleSet(), chain(hour(60, '35', '6')));
    expect(r.aggregates[0]!.values).toMatchObject({ mean: '35.0000', exceeded: false });
    expect(r.alerts).toEqual([]);
  });

  it('O2 at the policy limit is corrected; above it the minute is excluded (or clamped)', () => {
    // 10 at O2 19 (= maxO2): 10 × 15 / 2 = 75
    const at = evaluateRuleSet(ruleSet({ o2Policy: { maxO2: '19', action: 'exclude' } }), chain(hour(45, '10', '19')));
    expect(at.alerts[0]!.values.mean).toBe('75.0000');
    const above = evaluateRuleSet(ruleSet({ o2Policy: { maxO2: '19', action: 'exclude' } }), chain(hour(45, '10', '19.1')));
    expect(above.aggregates[0]!.values).toMatchObject({ validMinutes: 0, excludedMinutes: 45, valid: false });
    const clamp = evaluateRuleSet(ruleSet({ o2Policy: { maxO2: '19', action: 'clamp' } }), chain(hour(45, '10', '20.9')));
    expect(clamp.alerts[0]!.values.mean).toBe('75.0000');
    expect(clamp.alerts[0]!.inputs[0]).toMatchObject({ o2: '20.9', o2Used: '19' });
  });

  it('excludes and lists minutes without O2, with a non-N O2 flag, with another unit, bad text, duplicates and plant-marked periods', () => {
    const recs: Rec[] = hour(50, '50', '6');
    recs[0] = { ...recs[0]!, meas: [recs[0]!.meas[0]!] }; // no O2
    recs[1] = minuteRecord(1, '50', '6', 'N', 'D');
    recs[2] = { ...recs[2]!, meas: [{ ...recs[2]!.meas[0]!, unit: 'ppm' }, recs[2]!.meas[1]!] };
    recs[3] = minuteRecord(3, '5O', '6');
    recs.push(minuteRecord(4, '50', '6')); // the same minute again
    const set = ruleSet({}, { invalidPeriods: [{ from: '20261120144500', to: '20261120150000', reason: 'startup' }] });
    const r = evaluateRuleSet(set, chain(recs));
    const reasons = r.aggregates[0]!.values;
    expect(reasons).toMatchObject({ validMinutes: 41, excludedMinutes: 10, valid: false });
    const all = evaluateRuleSet(ruleSet(), chain(recs)).alerts[0]!.excluded!;
    expect(all.map((e) => e.reason)).toEqual(['NO_O2', 'O2_FLAG_D', 'UNIT_MISMATCH', 'BAD_VALUE', 'DUPLICATE_MINUTE_OF_SEQ_5']);
  });

  it('a day is valid with 20 valid hours, not with 19; a day limit alerts on the valid daily mean', () => {
    const day = (hours: number) => Array.from({ length: hours }, (_, h) => hour(45, h % 2 === 0 ? '30' : '40', '6', (h + 10) * 60)).flat(); // from 00:00 of the 21st
    const set = parseRuleSet({ format: 'stele-rules/1', rules: [{ id: 'd', type: 'emission-hourly', standard: 's', version: '1', params: { pollutants: [{ code: 'a21026', limit: '100', dayLimit: '34.9' }], referenceO2: '6' } }] });
    const r19 = evaluateRuleSet(set, chain(day(19)));
    expect(r19.aggregates.find((a) => a.kind === 'emission-day')!.values).toMatchObject({ validHours: 19, valid: false, exceeded: false });
    const r20 = evaluateRuleSet(set, chain(day(20)));
    expect(r20.aggregates.find((a) => a.kind === 'emission-day')!.values).toMatchObject({ validHours: 20, valid: true, mean: '35.0000', exceeded: true });
    expect(r20.alerts.map((a) => a.kind)).toEqual(['emission-day-exceedance']);
  });

  it('early warning on corrected real-time values above warnAt, one alert per clock hour with the peak', () => {
    const rt = (m: number, v: string): Rec => ({ sensor: 'MN1', time: T0 + m * MIN, clock: { synced: true, source: 'ntp' }, raw: [], itime: minuteRecord(m, '0', '0').itime!, rtype: '2011', meas: [{ code: 'a21026', kind: 'Rtd', value: v, flag: 'N' }, { code: 'a19001', kind: 'Rtd', value: '6', flag: 'N' }] });
    const set = parseRuleSet({ format: 'stele-rules/1', rules: [{ id: 'w', type: 'emission-hourly', standard: 's', version: '1', params: { pollutants: [{ code: 'a21026', limit: '35', warnAt: '30' }], referenceO2: '6' } }] });
    const r = evaluateRuleSet(set, chain([rt(1, '30'), rt(2, '31.5'), rt(3, '33'), rt(70, '29')]));
    expect(r.alerts).toHaveLength(1);
    expect(r.alerts[0]).toMatchObject({ kind: 'emission-early-warning', values: { count: 2, peak: '33.0000', warnAt: '30' } });
  });
});
