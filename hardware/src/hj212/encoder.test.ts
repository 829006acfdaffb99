import { describe, expect, it } from 'vitest';
import { SHARED_SKIP_REASON } from '@stele/testkit';
import { decodeFrame } from './decoder.ts';
import {
  encodeDataAnswer,
  encodeExecutionAnswer,
  encodeFrame,
  encodeRequestAnswer,
  formatDataSegment,
  formatHj212Time,
  frameDataSegment,
} from './encoder.ts';
import { hj212FixtureDir, loadHj212Fixture, wire } from './fixtures.ts';

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const plain = (x: unknown) => JSON.parse(JSON.stringify(x)) as unknown;
const dir = hj212FixtureDir();

describe('encodeFrame', () => {
  it('writes the Appendix A example byte for byte', () => {
    const bytes = encodeFrame({
      header: { QN: '20160801085857223', ST: '32', CN: '1062', PW: '100000', MN: '010000A8900016F000169DC0', Flag: 5 },
      cp: { params: { RtdInterval: '30' } },
    });
    expect(text(bytes)).toBe('##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80\r\n');
  });

  it('round-trips header, params and items through the decoder', () => {
    const input = {
      header: { QN: '20240101120000000', ST: '31', CN: '2011', PW: '123456', MN: '010000A8900016F000169DC0', Flag: 6, PNUM: 2, PNO: 1 },
      cp: {
        params: { DataTime: '20240101120000' },
        items: { a21026: { Rtd: '12.50', ZsRtd: '13.10', Flag: 'N' }, a19001: { Rtd: '6.8', Flag: 'N' }, 'vendor-x': { Info: '维护' } },
      },
    };
    for (const crc of ['hj212', 'modbus-lsb-first'] as const) {
      const r = decodeFrame(encodeFrame({ ...input, crc }), { crc });
      expect(r.ok).toBe(true);
      if (!r.ok) return;
      expect(r.anomalies).toEqual([]);
      expect(plain(r.parsed.header)).toEqual({ QN: '20240101120000000', ST: '31', CN: '2011', PW: '123456', MN: '010000A8900016F000169DC0', Flag: '6', PNUM: '2', PNO: '1' });
      expect(r.parsed.header_order).toEqual(['QN', 'ST', 'CN', 'PW', 'MN', 'Flag', 'PNUM', 'PNO']);
      expect(plain(r.parsed.cp)).toEqual({ ...input.cp, item_order: ['a21026', 'a19001', 'vendor-x'] });
      expect(r.parsed.framing.length_ok).toBe(true);
    }
  });

  it('writes an empty CP as CP=&&&&', () => {
    expect(formatDataSegment({ ST: '32', CN: '2011', PW: '1', MN: 'X' }, {})).toBe('ST=32;CN=2011;PW=1;MN=X;CP=&&&&');
  });

  it('counts the length in UTF-8 bytes', () => {
    const b = frameDataSegment('CP=&&i11001-Info=中&&');
    expect(text(b).slice(0, 6)).toBe('##0022');
  });

  it.each([
    ['a value with ;', { params: { DataTime: '1;2' } }],
    ['a value with ,', { items: { a: { Rtd: '1,2' } } }],
    ['a sub-field with -', { items: { a: { 'R-td': '1' } } }],
    ['a param name with -', { params: { 'Data-Time': '1' } }],
    ['a value with &', { params: { X: 'a&&b' } }],
  ])('refuses %s (RangeError)', (_n, cp) => {
    expect(() => encodeFrame({ header: { ST: '31', CN: '2011', PW: '1', MN: 'X' }, cp })).toThrow(RangeError);
  });

  it('refuses a data segment over 1024 bytes unless allowed', () => {
    const cp = { params: { X: 'y'.repeat(1100) } };
    const header = { ST: '31', CN: '2011', PW: '1', MN: 'X' };
    expect(() => encodeFrame({ header, cp })).toThrow(RangeError);
    expect(decodeFrame(encodeFrame({ header, cp, allowOversize: true }), { mode: 'lenient' }).ok).toBe(true);
  });
});

describe('answers of the data logger (HJ 212-2017 App. C)', () => {
  const who = { qn: '20160801085857223', mn: '010000A8900016F000169DC0', pw: '123456' };
  it('9011 request answer', () => {
    expect(text(encodeRequestAnswer(who))).toBe(
      '##0094QN=20160801085857223;ST=91;CN=9011;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&QnRtn=1&&1B00\r\n',
    );
    expect(text(encodeRequestAnswer({ ...who, qnRtn: 9 }))).toContain('QnRtn=9');
  });
  it('9012 execution answer', () => {
    expect(text(encodeExecutionAnswer(who))).toBe(
      '##0095QN=20160801085857223;ST=91;CN=9012;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&ExeRtn=1&&6240\r\n',
    );
  });
  it('9014 data answer', () => {
    expect(text(encodeDataAnswer({ ...who, qn: '20160801085000001' }))).toBe(
      '##0087QN=20160801085000001;ST=91;CN=9014;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&&&C241\r\n',
    );
  });
});

describe('formatHj212Time', () => {
  it('formats QN and DataTime in site time (default UTC+8)', () => {
    const t = Date.UTC(2016, 7, 1, 0, 58, 57, 223);
    expect(formatHj212Time(t, true)).toBe('20160801085857223');
    expect(formatHj212Time(t, false)).toBe('20160801085857');
    expect(formatHj212Time(t, false, 0)).toBe('20160801005857');
  });
});

describe.skipIf(!dir)(`standard examples re-encoded (${SHARED_SKIP_REASON})`, () => {
  const standard = dir ? loadHj212Fixture(dir, 'standard_examples.jsonl') : [];
  for (const rec of standard) {
    it(`${rec.id}: decode -> encode gives the same bytes`, () => {
      const r = decodeFrame(wire(rec.packet));
      expect(r.ok).toBe(true);
      if (!r.ok) return;
      const h = r.parsed.header;
      const bytes = encodeFrame({
        header: { QN: h.QN, ST: h.ST!, CN: h.CN!, PW: h.PW!, MN: h.MN!, Flag: h.Flag } as never,
        cp: { params: r.parsed.cp.params, items: r.parsed.cp.items },
      });
      expect(text(bytes)).toBe(`${rec.packet}\r\n`);
    });
  }
});
