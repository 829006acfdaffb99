import { describe, expect, it } from 'vitest';
import { decimal, formatDecimal, meanKineticTemperature } from './decimal.ts';
import { evaluateRuleSet } from './engine.ts';
import { parseRuleSet } from './rules.ts';
import { chain, MIN, T0, tempSample } from './test-helpers.ts';

const set = (params: Record<string, unknown>) =>
  parseRuleSet({ format: 'stele-rules/1', rules: [{ id: 'cc', type: 'cold-chain', standard: 'GSP 2016', version: '2', params: { profile: '2-8 C', low: '2', high: '8', ...params } }] });
const series = (values: string[], stepMs = 5 * MIN) => chain(values.map((v, i) => tempSample(T0 + i * stepMs, v)));

describe('mean kinetic temperature (PROTOCOLS.md §4.3 vectors)', () => {
  it.each([
    [['2', '8'], '5.5364'],
    [['2', '5', '8'], '5.3615'],
    [[...Array(23).fill('5'), '25'], '7.7564'],
    [['5', '5', '5'], '5.0000'],
    [['-18', '-18'], '-18.0000'],
  ] as [string[], string][])('MKT of %j is %s °C', (values, mkt) => {
    expect(formatDecimal(meanKineticTemperature(values.map(decimal)), 4)).toBe(mkt);
  });
});

describe('cold-chain', () => {
  it('a temperature exactly at the limit is in range', () => {
    const r = evaluateRuleSet(set({}), series(['5', '8', '8.0', '2', '5']));
    expect(r.alerts).toEqual([]);
    expect(r.aggregates[0]).toMatchObject({ kind: 'cold-chain-probe', subject: 'gw-1/room-1/p1', values: { samples: 5, excursions: 0, min: '2', max: '8' } });
  });

  it('an excursion one sample long lasts until the next sample (one logging interval)', () => {
    const r = evaluateRuleSet(set({}), series(['5', '8.1', '5']));
    expect(r.alerts).toHaveLength(1);
    expect(r.alerts[0]).toMatchObject({ kind: 'cold-chain-excursion', values: { direction: 'above', peak: '8.1', samples: 1, continuousMs: 5 * MIN, open: false } });
    expect(r.alerts[0]!.window).toEqual({ from: '2026-11-20T14:05:00.000+08:00', to: '2026-11-20T14:10:00.000+08:00', basis: 'time' });
    expect(r.alerts[0]!.readings).toEqual([{ device: 'gw-1', seq: 2 }, { device: 'gw-1', seq: 3 }]);
    // a single-point spike is not an excursion when the profile asks for 2 samples
    expect(evaluateRuleSet(set({ minSamples: 2 }), series(['5', '8.1', '5'])).alerts).toEqual([]);
  });

  it('continuous duration: alerts above maxContinuousMs, not at it; the peak alerts whatever the duration', () => {
    const values = ['5', '9', '9.5', '5']; // excursion 10 min
    expect(evaluateRuleSet(set({ maxContinuousMs: 10 * MIN }), series(values)).alerts).toEqual([]);
    expect(evaluateRuleSet(set({ maxContinuousMs: 10 * MIN - 1 }), series(values)).alerts[0]!.values).toMatchObject({ continuousMs: 10 * MIN, peak: '9.5', byDuration: true });
    const peak = evaluateRuleSet(set({ maxContinuousMs: 60 * MIN, peakHigh: '9.4' }), series(values)).alerts;
    expect(peak[0]!.values).toMatchObject({ byDuration: false, byPeak: true });
  });

  it('cumulative duration over the window; below-range excursions; an open excursion at the end', () => {
    const r = evaluateRuleSet(set({ maxContinuousMs: 60 * MIN, maxCumulativeMs: 14 * MIN }), series(['5', '1.9', '5', '8.5', '8.6', '5', '1.5']));
    expect(r.alerts.map((a) => a.kind)).toEqual(['cold-chain-cumulative']);
    expect(r.alerts[0]!.values).toMatchObject({ cumulativeMs: 15 * MIN, excursions: 3 });
    const open = evaluateRuleSet(set({}), series(['5', '1.5', '1.0'])).alerts[0]!;
    expect(open.values).toMatchObject({ direction: 'below', peak: '1.0', open: true, continuousMs: 5 * MIN });
  });

  it('MKT over the window, with an alert above mktMax', () => {
    const r = evaluateRuleSet(set({ mktMax: '5.5', maxContinuousMs: 600 * MIN }), series(['2', '8']));
    expect(r.aggregates[0]!.values).toMatchObject({ mkt: '5.5364', mktExceeded: true });
    expect(r.alerts.map((a) => a.kind)).toEqual(['cold-chain-mkt']);
    expect(evaluateRuleSet(set({ mktMax: '5.5364' }), series(['2', '8'])).alerts).toHaveLength(1); // exact 5.53643… > 5.5364
    expect(evaluateRuleSet(set({ mktMax: '5.5365' }), series(['2', '8'])).alerts).toEqual([]);
  });

  it('logging interval (2 min while out of range, 30 in range) and a probe gone quiet', () => {
    const s = chain([tempSample(T0, '5'), tempSample(T0 + 30 * MIN, '5'), tempSample(T0 + 61 * MIN, '9'), tempSample(T0 + 64 * MIN, '5'), tempSample(T0 + 200 * MIN, '5')]);
    const r = evaluateRuleSet(set({ maxContinuousMs: 60 * MIN, maxIntervalMs: 30 * MIN, maxIntervalOutOfRangeMs: 2 * MIN, quietMs: 120 * MIN }), s, { at: T0 + 400 * MIN });
    expect(r.alerts.map((a) => [a.kind, a.values.gapMs])).toEqual([
      ['cold-chain-logging-interval', 31 * MIN],
      ['cold-chain-logging-interval', 3 * MIN],
      ['cold-chain-probe-quiet', 136 * MIN],
      ['cold-chain-probe-quiet', 200 * MIN],
    ]);
    const none = evaluateRuleSet(set({ quietMs: 10 * MIN, probes: ['gw-1/room-1/p2'] }), series(['5']), { at: T0 });
    expect(none.alerts.map((a) => [a.kind, a.subject])).toEqual([['cold-chain-probe-quiet', 'gw-1/room-1/p2']]);
  });

  it('a frozen profile with only a high limit (at most -18 °C)', () => {
    const frozen = parseRuleSet({ format: 'stele-rules/1', rules: [{ id: 'f', type: 'cold-chain', standard: 'GB 31605-2020', version: '1', params: { profile: 'frozen', high: '-18' } }] });
    const r = evaluateRuleSet(frozen, series(['-20', '-18', '-17.9', '-25']));
    expect(r.alerts.map((a) => a.values.peak)).toEqual(['-17.9']);
  });
});
