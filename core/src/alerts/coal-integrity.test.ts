import { describe, expect, it } from 'vitest';
import { fromHex } from '../bytes.ts';
import type { Measurement, Reading } from '../reading.ts';
import { evalReading, evaluateRuleSet } from './engine.ts';
import { parseRuleSet } from './rules.ts';
import { chain, MIN, T0 } from './test-helpers.ts';

type Rec = Omit<Reading, 'v' | 'device' | 'seq' | 'prev'>;
const base = (time: number, meas: Measurement[]): Rec => ({ sensor: 'lab', time, clock: { synced: true, source: 'ntp' }, meas, raw: [] });
const custody = (i: number, f: Record<string, string>, unit = 'g'): Rec =>
  base(T0 + i * MIN, Object.entries(f).map(([code, value]) => ({ code, kind: 'custody', value, ...(code === 'weight' ? { unit } : {}) })));
const at = (h: number) => `2026-11-20T${String(8 + h).padStart(2, '0')}:00:00+08:00`;
const result = (i: number, assay: string, values: Record<string, string>, det?: string): Rec =>
  base(T0 + i * MIN, [{ code: 'AssayCode', kind: 'id', value: assay }, ...(det === undefined ? [] : [{ code: 'Number', kind: 'run', value: det }]), ...Object.entries(values).map(([code, value]) => ({ code, kind: 'ad', value, unit: '%' }))]);

const coal = (params: Record<string, unknown> = {}) =>
  parseRuleSet({ format: 'stele-rules/1', rules: [{ id: 'coal', type: 'coal-lab', standard: 'GB/T 212-2008, GB/T 474', version: '1', params }] });

const goodChain = [
  custody(0, { step: 'sampling', at: at(0), by: 'li', code: 'S1', batch: 'B1', weight: '1000' }),
  custody(1, { step: 'handover', at: at(1), by: 'li', to: 'wang', code: 'S1', weight: '995' }),
  custody(2, { step: 'preparation', at: at(2), by: 'wang', code: 'P1', fromCode: 'S1', weight: '100' }),
  custody(3, { step: 'assay', at: at(3), by: 'wang', to: 'zhao', code: 'A1', fromCode: 'P1' }),
];

describe('coal-lab', () => {
  it('a complete chain with the weight within 1 % (exactly 1 % included) raises nothing', () => {
    const c = [...goodChain];
    c[1] = custody(1, { step: 'handover', at: at(1), by: 'li', to: 'wang', code: 'S1', weight: '990' });
    expect(evaluateRuleSet(coal(), chain(c)).alerts).toEqual([]);
  });

  it('a weight discrepancy above the tolerance (kg and g compared exactly)', () => {
    const c = [...goodChain];
    c[1] = custody(1, { step: 'handover', at: at(1), by: 'li', to: 'wang', code: 'S1', weight: '0.9899' }, 'kg');
    const a = evaluateRuleSet(coal(), chain(c)).alerts;
    expect(a.map((x) => x.values.issue)).toEqual(['CUSTODY_WEIGHT_DISCREPANCY']);
    expect(a[0]!.values).toMatchObject({ fromGrams: '1000.0000', toGrams: '989.9000', change: '-0.0101', tolerance: '0.01' });
    expect(a[0]!.readings).toEqual([{ device: 'gw-1', seq: 1 }, { device: 'gw-1', seq: 2 }]);
  });

  it('an assay without preparation: the code hand-over does not match (broken link) and the step is missing', () => {
    const c = [goodChain[0]!, goodChain[1]!, custody(3, { step: 'assay', at: at(3), by: 'wang', code: 'A1', fromCode: 'P9' })];
    const a = evaluateRuleSet(coal(), chain(c)).alerts;
    expect(a.map((x) => x.values.issue)).toEqual(['CUSTODY_BROKEN_LINK', 'CUSTODY_MISSING_STEP']);
    expect(a[1]!.values).toMatchObject({ missing: 'sampling,preparation' });
    expect(a[1]!.subject).toBe('A1');
  });

  it('a hand-over by someone who was not holding the sample', () => {
    const c = [...goodChain];
    c[2] = custody(2, { step: 'preparation', at: at(2), by: 'sun', code: 'P1', fromCode: 'S1', weight: '100' });
    expect(evaluateRuleSet(coal(), chain(c)).alerts.map((x) => [x.values.issue, x.values.holder])).toEqual([
      ['CUSTODY_HOLDER_MISMATCH', 'wang'],
      ['CUSTODY_HOLDER_MISMATCH', 'sun'], // and the assay by wang, while sun holds P1
    ]);
  });

  it('duplicate determinations: a difference at the repeatability limit is inside, above it outside (tier by mean)', () => {
    const rules = coal({ repeatability: { Mad: [{ upTo: '5', limit: '0.20' }, { upTo: '10', limit: '0.30' }, { limit: '0.40' }] } });
    const at0 = evaluateRuleSet(rules, chain([result(0, 'A1', { Mad: '4.80' }), result(1, 'A1', { Mad: '5.00' })]));
    expect(at0.aggregates[0]!.values).toMatchObject({ difference: '0.2000', mean: '4.9000', limit: '0.20', outside: false });
    expect(at0.alerts).toEqual([]);
    const out = evaluateRuleSet(rules, chain([result(0, 'A1', { Mad: '4.79' }), result(1, 'A1', { Mad: '5.00' })]));
    expect(out.alerts[0]).toMatchObject({ kind: 'coal-repeatability', subject: 'A1/Mad', values: { difference: '0.2100', mean: '4.8950', outside: true } });
    const tier2 = evaluateRuleSet(rules, chain([result(0, 'A1', { Mad: '4.90' }), result(1, 'A1', { Mad: '5.12' })]));
    expect(tier2.aggregates[0]!.values).toMatchObject({ mean: '5.0100', limit: '0.30', outside: false });
  });

  it('a result changed after approval (same determination, other value), and a result without custody', () => {
    const r = evaluateRuleSet(coal({ determinationCode: 'Number' }), chain([...goodChain, result(10, 'A1', { Mad: '4.80', Aad: '12.1' }, '17'), result(11, 'A1', { Mad: '4.60', Aad: '12.1' }, '17'), result(12, 'A7', { Mad: '4' }, '18')]));
    expect(r.alerts.map((a) => a.kind)).toEqual(['coal-custody-break', 'coal-result-changed']);
    expect(r.alerts[0]!.values.issue).toBe('CUSTODY_NO_ASSAY_EVENT');
    expect(r.alerts[1]!.values).toEqual({ changed: 'Mad', 'Mad before': '4.80', 'Mad after': '4.60' });
  });
});

describe('integrity', () => {
  const rec = (i: number, extra: Partial<Rec> = {}): Rec => ({ sensor: 's', time: T0 + i * MIN, clock: { synced: true, source: 'ntp' }, meas: [], raw: [], ...extra });
  const integrity = (params: Record<string, unknown>) => parseRuleSet({ format: 'stele-rules/1', rules: [{ id: 'i', type: 'integrity', standard: 'Stele', version: '1', params }] });

  it('a seq gap still open after the grace period; within it, nothing', () => {
    const r = chain([rec(0), rec(1), rec(2), rec(3)]);
    const gap = [r[0]!, r[3]!];
    expect(evaluateRuleSet(integrity({ gapGraceMs: 10 * MIN }), gap, { at: T0 + 13 * MIN }).alerts).toEqual([]);
    const a = evaluateRuleSet(integrity({ gapGraceMs: 10 * MIN }), gap, { at: T0 + 13 * MIN + 1 }).alerts;
    expect(a.map((x) => [x.kind, x.values.firstMissing, x.values.lastMissing])).toEqual([['integrity-seq-gap', 2, 3]]);
  });

  it('a fork, a broken chain, an unsynchronised clock, a silent device, a skewed clock and a rejected reading', () => {
    const r = chain([rec(0), rec(1), rec(2, { clock: { synced: false, source: 'none' } }), rec(3, { clock: { synced: false, source: 'none' } }), rec(30)]);
    const other = evalReading({ ...r[1]!.reading, meas: [{ code: 'x', kind: 'Rtd', value: '1' }] });
    const broken = evalReading({ ...r[4]!.reading, seq: 6, prev: fromHex('00'.repeat(31) + '01') });
    const after = evalReading({ ...r[4]!.reading, seq: 7, prev: fromHex(broken.digest), time: T0 + 31 * MIN, itime: '20261120143100', rtype: '2011' });
    const skewed = evalReading({ ...r[4]!.reading, seq: 8, prev: fromHex(after.digest), time: T0 + 40 * MIN, itime: '20261120143000', rtype: '2011' });
    const rejected = { ...evalReading({ ...r[4]!.reading, seq: 9, prev: fromHex(skewed.digest) }), rejected: 'SIGNATURE_ERROR' };
    const res = evaluateRuleSet(integrity({ maxSilenceMs: 15 * MIN, maxClockSkewMs: 5 * MIN }), [...r, other, broken, after, skewed, rejected], { at: T0 + 41 * MIN });
    expect(res.alerts.map((a) => `${a.kind} ${a.subject}`)).toEqual([
      'integrity-rejected gw-1/9',
      'integrity-fork gw-1/2',
      'integrity-chain-break gw-1/6',
      'integrity-silent gw-1',
      'integrity-clock-unsynced gw-1/3',
      'integrity-clock-skew gw-1/8',
    ]);
    expect(res.alerts.find((a) => a.kind === 'integrity-clock-skew')!.values).toMatchObject({ worstSkewMs: 10 * MIN });
  });
});
