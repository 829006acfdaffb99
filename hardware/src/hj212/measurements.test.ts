import { describe, expect, it } from 'vitest';
import { decodeFrame } from './decoder.ts';
import { encodeFrame, frameDataSegment } from './encoder.ts';
import { measurementsFromFrame, unitOf } from './measurements.ts';
import type { Hj212Frame } from './types.ts';

const frameOf = (bytes: Uint8Array): Hj212Frame => {
  const r = decodeFrame(bytes);
  if (!r.ok) throw r.error;
  return r;
};

describe('measurementsFromFrame', () => {
  it('gives one measurement per sub-field in received order, exact value text, flag and unit', () => {
    const f = frameOf(
      encodeFrame({
        header: { QN: '20240101120000000', ST: '31', CN: '2011', PW: '123456', MN: 'X', Flag: 4 },
        cp: {
          params: { DataTime: '20240101120000' },
          items: {
            a21026: { Rtd: '012.50', ZsRtd: '13.10', Flag: 'N' },
            a19001: { Flag: 'C', Rtd: '6.8' },
            a00000: { Rtd: '210.3', Cou: '757080' },
            x99: { Rtd: '1' },
          },
        },
      }),
    );
    expect(measurementsFromFrame(f)).toEqual([
      { code: 'a21026', kind: 'Rtd', value: '012.50', unit: 'mg/m³', flag: 'N' },
      { code: 'a21026', kind: 'ZsRtd', value: '13.10', unit: 'mg/m³', flag: 'N' },
      { code: 'a19001', kind: 'Rtd', value: '6.8', unit: '%', flag: 'C' },
      { code: 'a00000', kind: 'Rtd', value: '210.3', unit: 'm³/s' },
      { code: 'a00000', kind: 'Cou', value: '757080', unit: 'm³' },
      { code: 'x99', kind: 'Rtd', value: '1' },
    ]);
  });

  it('keeps non-value sub-fields (SampleTime, EFlag) as measurements without a unit', () => {
    const f = frameOf(frameDataSegment('ST=31;CN=2011;PW=1;MN=X;CP=&&a21026-SampleTime=20240101120000,a21026-Rtd=5,a21026-EFlag=A01&&'));
    expect(measurementsFromFrame(f).map((m) => [m.kind, m.unit])).toEqual([
      ['SampleTime', undefined],
      ['Rtd', 'mg/m³'],
      ['EFlag', undefined],
    ]);
  });

  it('knows HJ/T 212-2005 codes through the 2005 -> 2017 mapping', () => {
    expect(unitOf('02', 'Rtd')).toBe('mg/m³');
    expect(unitOf('02', 'Cou')).toBe('kg');
    expect(unitOf('S01', 'Avg')).toBe('%');
    expect(unitOf('S03', 'Rtd')).toBe('°C');
    expect(unitOf('B02', 'Rtd')).toBe('m³/s');
    expect(unitOf('S08', 'Rtd')).toBe('MPa');
    expect(unitOf('a01013', 'Rtd')).toBe('kPa');
    expect(unitOf('a21001', 'Rtd')).toBeUndefined();
    expect(unitOf('a21026', 'Flag')).toBeUndefined();
  });

  it('takes a message (merged cp) as well as a frame', () => {
    expect(measurementsFromFrame({ cp: { params: {}, items: { a34013: { Avg: '3.2' } }, item_order: ['a34013'] } })).toEqual([
      { code: 'a34013', kind: 'Avg', value: '3.2', unit: 'mg/m³' },
    ]);
  });
});
