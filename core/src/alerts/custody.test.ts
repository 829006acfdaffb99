import { describe, expect, it } from 'vitest';
import { checkCustody, checkCustodyEvents, type CustodyEvent, type CustodyParams } from './custody.ts';

// Fixture: one batch's custody events written here by hand after the entity chain of PROTOCOLS.md §3.3
// (采样 sampling code CY…, 制样 preparation code ZY…, 存样 cabinet, 化验 assay code HY…).
const CHAIN: CustodyEvent[] = [
  { step: 'sampling', at: '2024-03-01T07:00:00+08:00', by: 'sampler-01', code: 'CY100001', batch: 'RC20240301-01', weight: '10.20', weightUnit: 'kg', method: 'auto-train' },
  { step: 'handover', at: '2024-03-01T07:25:00+08:00', by: 'sampler-01', to: 'prep-02', code: 'CY100001', weight: '10.18', weightUnit: 'kg' },
  { step: 'preparation', at: '2024-03-01T08:55:00+08:00', by: 'prep-02', code: 'ZY200002', fromCode: 'CY100001', weight: '120.5', backupCode: 'BY300003' },
  { step: 'storage', at: '2024-03-01T09:05:00+08:00', by: 'prep-02', code: 'ZY200002', place: 'cabinet-A/door-07', weight: '120.5' },
  { step: 'retrieval', at: '2024-03-01T10:05:00+08:00', by: 'courier-03', code: 'ZY200002', place: 'cabinet-A/door-07', weight: '120.4' },
  { step: 'handover', at: '2024-03-01T10:20:00+08:00', by: 'courier-03', to: 'analyst-04', code: 'ZY200002', weight: '120.4' },
  { step: 'assay', at: '2024-03-01T10:40:00+08:00', by: 'analyst-04', code: 'HY400004', fromCode: 'ZY200002' },
];
const issueCodes = (events: CustodyEvent[], o: CustodyParams = {}) => checkCustodyEvents(events, o).issues.map((i) => i.code);

describe('checkCustodyEvents (the custody rule of FORMAT §15.5)', () => {
  it('accepts a complete chain and re-links the assay code to its batch', () => {
    const r = checkCustodyEvents(CHAIN);
    expect(r.issues).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.links).toEqual([
      { assayCode: 'HY400004', preparationCode: 'ZY200002', samplingCode: 'CY100001', batch: 'RC20240301-01', events: [0, 1, 2, 3, 4, 5, 6] },
    ]);
  });

  it('finds a missing preparation step (CUSTODY_MISSING_STEP) and the dangling link (CUSTODY_BROKEN_LINK)', () => {
    const events = CHAIN.filter((e) => e.step !== 'preparation');
    const r = checkCustodyEvents(events);
    expect(r.ok).toBe(false);
    expect(r.issues.map((i) => i.code)).toContain('CUSTODY_MISSING_STEP');
    expect(r.issues.map((i) => i.code)).toContain('CUSTODY_BROKEN_LINK');
    // Without the preparation event the assay cannot be walked back to its sampling either.
    expect(r.issues.filter((i) => i.code === 'CUSTODY_MISSING_STEP').map((i) => [i.subject, i.values.missing])).toEqual([['HY400004', 'sampling,preparation']]);
    expect(issueCodes(CHAIN, { requiredSteps: ['sampling', 'preparation', 'storage'] })).toEqual([]);
    // Dropping storage and retrieval also shows the courier handing over a sample prep-02 still held.
    expect(issueCodes(CHAIN.filter((e) => e.step !== 'storage' && e.step !== 'retrieval'), { requiredSteps: ['storage'] })).toEqual([
      'CUSTODY_HOLDER_MISMATCH',
      'CUSTODY_MISSING_STEP',
    ]);
  });

  it('flags a weight change beyond tolerance between events that must not change the sample, not at re-labelling', () => {
    const lossy = CHAIN.map((e, i) => (i === 4 ? { ...e, weight: '110.0' } : i === 5 ? { ...e, weight: '110.0' } : e));
    const r = checkCustodyEvents(lossy);
    expect(r.issues).toMatchObject([{ code: 'CUSTODY_WEIGHT_DISCREPANCY', index: 4, values: { fromGrams: '120.5000', toGrams: '110.0000', change: '-0.0871', tolerance: '0.01' } }]);
    expect(issueCodes(lossy, { weightTolerance: '0.1' })).toEqual([]);
    const gain = CHAIN.map((e, i) => (i === 1 ? { ...e, weight: '10900', weightUnit: 'g' as const } : e));
    expect(checkCustodyEvents(gain).issues).toMatchObject([{ code: 'CUSTODY_WEIGHT_DISCREPANCY', index: 1, values: { fromGrams: '10200.0000', toGrams: '10900.0000' } }]);
    // Exactly at the tolerance is not a discrepancy (|w1 - w0| / w0 > tolerance, exact decimals).
    const edge = CHAIN.map((e, i) => (i === 1 ? { ...e, weight: '10.098' } : e));
    expect(issueCodes(edge)).toEqual([]);
  });

  it('flags time going backwards in one device\'s recording order, not across devices', () => {
    const back = CHAIN.map((e, i) => (i === 6 ? { ...e, at: '2024-03-01T10:00:00+08:00' } : e));
    expect(checkCustodyEvents(back).issues).toMatchObject([{ code: 'CUSTODY_TIME_BACKWARDS', index: 6, subject: 'HY400004' }]);
    // The same events from two gateways (the assay recorded at the lab): no common seq, only `at` orders them.
    const inputs = (list: CustodyEvent[]) =>
      list.map((e, i) => ({ device: i === 6 ? 'lab' : 'yard', seq: i, fields: Object.fromEntries(Object.entries(e).filter(([k]) => k !== 'weightUnit')) as Record<string, string>, ...(e.weightUnit === undefined ? {} : { weightUnit: e.weightUnit }) }));
    expect(checkCustody(inputs(back)).issues).toEqual([]);
    expect(checkCustody(inputs(CHAIN)).issues).toEqual([]);
  });

  it('flags a hand-over by someone not holding the sample and a duplicate code', () => {
    const wrong = CHAIN.map((e, i) => (i === 5 ? { ...e, by: 'stranger' } : e));
    expect(issueCodes(wrong)).toEqual(['CUSTODY_HOLDER_MISMATCH']);
    const dup = [...CHAIN, { ...CHAIN[6]!, at: '2024-03-01T11:00:00+08:00' }];
    expect(issueCodes(dup)).toContain('CUSTODY_DUPLICATE_CODE');
  });

  it('reports a malformed event as CUSTODY_BAD_EVENT instead of throwing', () => {
    const bad = CHAIN.map((e, i) => (i === 3 ? ({ ...e, at: 'yesterday' } as CustodyEvent) : e));
    expect(issueCodes(bad)).toContain('CUSTODY_BAD_EVENT');
  });
});
