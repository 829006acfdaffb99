import { describe, expect, it } from 'vitest';
import { encodeReading, decodeReading, GENESIS_PREV } from '@stele/core';
import { type CustodyEvent, checkCustodyChain, custodyEventFromMeasurements, custodyMeasurements } from './custody.ts';

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
const issueCodes = (events: CustodyEvent[], o = {}) => checkCustodyChain(events, o).issues.map((i) => i.code);

describe('custody events as readings', () => {
  it('round-trips an event through measurements and a reading', () => {
    for (const e of CHAIN) {
      const meas = custodyMeasurements(e);
      expect(meas.every((m) => m.kind === 'custody')).toBe(true);
      const bytes = encodeReading({ v: 1, device: 'gw-1', sensor: 'custody', seq: 1, prev: GENESIS_PREV, time: Date.parse(e.at), clock: { synced: true, source: 'ntp' }, meas, raw: [] });
      const back = custodyEventFromMeasurements(decodeReading(bytes).meas);
      expect(back).toEqual(e.weight !== undefined ? { ...e, weightUnit: e.weightUnit ?? 'g' } : e);
    }
    expect(custodyMeasurements(CHAIN[0]!)).toContainEqual({ code: 'weight', kind: 'custody', value: '10.20', unit: 'kg' });
  });

  it('refuses malformed events with CUSTODY_BAD_EVENT', () => {
    const bad = (e: Partial<CustodyEvent>) => {
      try {
        custodyMeasurements({ ...CHAIN[2]!, ...e } as CustodyEvent);
      } catch (err) {
        return (err as { code?: string; where?: { field?: string } }).code + ':' + (err as { where?: { field?: string } }).where?.field;
      }
      return 'ok';
    };
    expect(bad({ at: '2024-03-01 08:55' })).toBe('CUSTODY_BAD_EVENT:at');
    expect(bad({ fromCode: '' })).toBe('CUSTODY_BAD_EVENT:fromCode');
    expect(bad({ weight: '12,5' })).toBe('CUSTODY_BAD_EVENT:weight');
    expect(bad({ step: 'teleport' as never })).toBe('CUSTODY_BAD_EVENT:step');
    expect(() => custodyEventFromMeasurements([{ code: 'colour', kind: 'custody', value: 'red' }])).toThrow(expect.objectContaining({ code: 'CUSTODY_BAD_EVENT' }));
  });
});

describe('checkCustodyChain', () => {
  it('accepts a complete chain and re-links the assay code to its batch', () => {
    const r = checkCustodyChain(CHAIN);
    expect(r.issues).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.links).toEqual([
      { assayCode: 'HY400004', preparationCode: 'ZY200002', samplingCode: 'CY100001', batch: 'RC20240301-01', events: [0, 1, 2, 3, 4, 5, 6] },
    ]);
  });

  it('finds a missing preparation step (CUSTODY_MISSING_STEP) and the dangling link (CUSTODY_BROKEN_LINK)', () => {
    const events = CHAIN.filter((e) => e.step !== 'preparation');
    const r = checkCustodyChain(events);
    expect(r.ok).toBe(false);
    expect(r.issues.map((i) => i.code)).toContain('CUSTODY_MISSING_STEP');
    expect(r.issues.map((i) => i.code)).toContain('CUSTODY_BROKEN_LINK');
    // Without the preparation event the assay cannot be walked back to its sampling either.
    expect(r.issues.filter((i) => i.code === 'CUSTODY_MISSING_STEP').map((i) => [i.assayCode, i.detail?.step])).toEqual([
      ['HY400004', 'sampling'],
      ['HY400004', 'preparation'],
    ]);
    expect(issueCodes(CHAIN, { requiredSteps: ['sampling', 'preparation', 'storage'] })).toEqual([]);
    // Dropping storage and retrieval also shows the courier handing over a sample prep-02 still held.
    expect(issueCodes(CHAIN.filter((e) => e.step !== 'storage' && e.step !== 'retrieval'), { requiredSteps: ['storage'] })).toEqual([
      'CUSTODY_HOLDER_MISMATCH',
      'CUSTODY_MISSING_STEP',
    ]);
  });

  it('flags weight loss beyond tolerance between events that must not change the sample, not at re-labelling', () => {
    const lossy = CHAIN.map((e, i) => (i === 4 ? { ...e, weight: '110.0' } : i === 5 ? { ...e, weight: '110.0' } : e));
    expect(issueCodes(lossy)).toEqual(['CUSTODY_WEIGHT_LOSS']);
    expect(issueCodes(lossy, { weightTolerance: 0.1 })).toEqual([]);
    const gain = CHAIN.map((e, i) => (i === 1 ? { ...e, weight: '10900', weightUnit: 'g' as const } : e));
    expect(issueCodes(gain)).toEqual(['CUSTODY_WEIGHT_GAIN']);
  });

  it('flags time going backwards along the chain', () => {
    const back = CHAIN.map((e, i) => (i === 6 ? { ...e, at: '2024-03-01T10:00:00+08:00' } : e));
    expect(checkCustodyChain(back).issues).toMatchObject([{ code: 'CUSTODY_TIME_BACKWARDS', index: 6, assayCode: 'HY400004' }]);
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
