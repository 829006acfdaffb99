import { describe, expect, it } from 'vitest';
import { decodeFrame } from './decoder.ts';
import { encodeFrame } from './encoder.ts';
import { Hj212Reassembler } from './reassembler.ts';
import type { Hj212Frame } from './types.ts';

const part = (pno: number, pnum: number, items: Record<string, Record<string, string>>, qn: string, dataTime = '20191112090000'): Hj212Frame => {
  const r = decodeFrame(
    encodeFrame({
      header: { QN: qn, ST: '31', CN: '2051', PW: '123456', MN: '14513567846884', Flag: 7, PNUM: pnum, PNO: pno },
      cp: { params: { DataTime: dataTime }, items },
    }),
  );
  if (!r.ok) throw r.error;
  return r;
};

describe('Hj212Reassembler', () => {
  it('passes an unsplit frame through as a one-frame message', () => {
    const r = decodeFrame(encodeFrame({ header: { ST: '31', CN: '2011', PW: '1', MN: 'X', Flag: 4 }, cp: { items: { a: { Rtd: '1' } } } }));
    if (!r.ok) throw r.error;
    const events = new Hj212Reassembler().add(r);
    expect(events).toHaveLength(1);
    expect(events[0]!.kind === 'message' && events[0]!.message.frames).toEqual([r]);
  });

  it('joins parts by (MN, CN, DataTime, PNUM) in PNO order, whatever their QN and arrival order', () => {
    const ra = new Hj212Reassembler();
    const p2 = part(2, 3, { a21002: { Avg: '30.1', Flag: 'N' } }, '20191112091100535');
    const p1 = part(1, 3, { a21026: { Avg: '12.0', Flag: 'N' } }, '20191112091100534');
    const p3 = part(3, 3, { a34013: { Avg: '3.1', Flag: 'N' } }, '20191112091100536');
    expect(ra.add(p2)).toEqual([]);
    expect(ra.add(p1)).toEqual([]);
    expect(ra.pending).toBe(1);
    const events = ra.add(p3);
    expect(ra.pending).toBe(0);
    const e = events[0]!;
    expect(e.kind).toBe('message');
    if (e.kind !== 'message') return;
    expect(e.message.key).toEqual({ mn: '14513567846884', cn: '2051', dataTime: '20191112090000', pnum: 3 });
    expect(e.message.frames).toEqual([p1, p2, p3]);
    expect(e.message.cp.item_order).toEqual(['a21026', 'a21002', 'a34013']);
    expect(e.message.cp.params.DataTime).toBe('20191112090000');
  });

  it('keeps groups with a different DataTime apart and ignores an exact repeat', () => {
    const ra = new Hj212Reassembler();
    const a1 = part(1, 2, { a: { Avg: '1' } }, '1');
    ra.add(a1);
    ra.add(a1);
    ra.add(part(2, 2, { b: { Avg: '2' } }, '2', '20191112100000'));
    expect(ra.pending).toBe(2);
    expect(ra.add(part(2, 2, { b: { Avg: '2' } }, '3')).map((e) => e.kind)).toEqual(['message']);
  });

  it('gives up a group when two different frames claim the same PNO', () => {
    const ra = new Hj212Reassembler();
    ra.add(part(1, 2, { a: { Avg: '1' } }, '1'));
    const events = ra.add(part(1, 2, { a: { Avg: '9' } }, '2'));
    expect(events.map((e) => (e.kind === 'incomplete' ? e.error.code : e.kind))).toEqual(['HJ212_REASSEMBLY']);
    expect(ra.pending).toBe(0);
  });

  it('evicts the oldest group beyond maxGroups and expires old groups', () => {
    const ra = new Hj212Reassembler({ maxGroups: 2 });
    ra.add(part(1, 2, { a: { Avg: '1' } }, '1', '20190101000000'), 0);
    ra.add(part(1, 2, { a: { Avg: '1' } }, '1', '20190101010000'), 10);
    const evicted = ra.add(part(1, 2, { a: { Avg: '1' } }, '1', '20190101020000'), 20);
    expect(evicted.map((e) => e.kind === 'incomplete' && e.key.dataTime)).toEqual(['20190101000000']);
    expect(ra.expire(1000, 985).map((e) => e.kind === 'incomplete' && e.key.dataTime)).toEqual(['20190101010000']);
    expect(ra.pending).toBe(1);
  });

  it('refuses misuse', () => {
    expect(() => new Hj212Reassembler({ maxGroups: 0 })).toThrow(RangeError);
  });
});
