import { describe, expect, it } from 'vitest';
import { encodeReading, decodeReading, GENESIS_PREV } from '@stele/core';
import { type CustodyEvent, custodyEventFromMeasurements, custodyMeasurements } from './custody.ts';

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
