import { describe, expect, it } from 'vitest';
import { SHARED_SKIP_REASON } from '@stele/testkit';
import { concatBytes, toHex, sha256 } from '@stele/core';
import { crcText } from './crc.ts';
import { HJ212_MAX_FRAME_BYTES, HJ212_RUN_RAW_BYTES, Hj212StreamDecoder, decodeAll, decodeFrame } from './decoder.ts';
import { frameDataSegment } from './encoder.ts';
import { Hj212Error } from './errors.ts';
import { hj212FixtureDir, loadHj212Fixture, wire } from './fixtures.ts';
import type { Hj212DecodeResult, Hj212Frame, Hj212Rejection } from './types.ts';

const enc = (s: string) => new TextEncoder().encode(s);
const concat = concatBytes;
/** A plain-object copy (the decoder builds prototype-less records). */
const plain = (x: unknown) => JSON.parse(JSON.stringify(x)) as unknown;
const frames = (rs: Hj212DecodeResult[]) => rs.filter((r): r is Hj212Frame => r.ok);
const codes = (rs: Hj212DecodeResult[]) => rs.filter((r): r is Hj212Rejection => !r.ok).map((r) => r.error.code);

const SEG_A = 'QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&';
const FRAME_A = '##0101' + SEG_A + '1C80'; // HJ 212-2017 Appendix A
const SEG_B =
  'QN=20231008123340461;ST=22;CN=2011;PW=123456;MN=010000A8900016F000169DC0;Flag=5;CP=&&DataTime=20231008123340;w01008-SampleTime=20231008123340,w01008-Rtd=123.456&&';
const FRAME_B = '##0162' + SEG_B + 'F441';
const FRAME_C = '##0094QN=20231008125115215;ST=22;CN=9011;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&QnRtn=1&&CC01';

const dir = hj212FixtureDir();

describe.skipIf(!dir)(`shared fixtures (${SHARED_SKIP_REASON})`, () => {
  const valid = dir ? loadHj212Fixture(dir, 'packets_valid.jsonl') : [];
  const invalid = dir ? loadHj212Fixture(dir, 'packets_invalid.jsonl') : [];
  const standard = dir ? loadHj212Fixture(dir, 'standard_examples.jsonl') : [];

  it('has the fixtures', () => {
    expect(valid.length).toBeGreaterThanOrEqual(17);
    expect(invalid.length).toBeGreaterThanOrEqual(5);
    expect(standard.length).toBeGreaterThanOrEqual(14);
  });

  describe('packets_valid.jsonl in strict mode', () => {
    for (const rec of valid) {
      it(`${rec.id}: decodes to expected`, () => {
        const r = decodeFrame(wire(rec.packet));
        expect(r.ok).toBe(true);
        if (!r.ok) return;
        expect(r.parsed).toEqual(rec.expected);
        expect(plain(r.parsed)).toStrictEqual(rec.expected);
        expect(r.raw).toEqual(wire(rec.packet));
        expect(toHex(r.sha256)).toBe(toHex(sha256(wire(rec.packet))));
        expect(r.offset).toBe(0);
      });
    }
  });

  describe('packets_invalid.jsonl', () => {
    for (const rec of invalid) {
      it(`${rec.id}: strict rejects with HJ212_BAD_CRC and still shows what it claimed`, () => {
        expect(rec.expected_strict_verdict).toBe('reject');
        const r = decodeFrame(wire(rec.packet));
        expect(r.ok).toBe(false);
        if (r.ok) return;
        expect(r.error).toBeInstanceOf(Hj212Error);
        expect(r.error.code).toBe('HJ212_BAD_CRC');
        expect(r.error.offset).toBe(0);
        expect(plain(r.parsed)).toStrictEqual(rec.expected);
      });
      it(`${rec.id}: lenient rejects it too (a wrong CRC is never an anomaly)`, () => {
        const r = decodeFrame(wire(rec.packet), { mode: 'lenient' });
        expect(!r.ok && r.error.code).toBe('HJ212_BAD_CRC');
      });
    }
  });

  describe('standard_examples.jsonl (HJ 212-2017 appendices A and C)', () => {
    for (const rec of standard) {
      it(`${rec.id}: decodes to expected`, () => {
        const r = decodeFrame(wire(rec.packet));
        expect(r.ok && plain(r.parsed)).toStrictEqual(rec.expected);
      });
    }
  });

  it('decodes every fixture frame glued into one stream, fed one byte at a time', () => {
    const all = [...valid, ...standard];
    const d = new Hj212StreamDecoder();
    const out: Hj212DecodeResult[] = [];
    const stream = concat(...all.map((r) => wire(r.packet)));
    for (const b of stream) out.push(...d.push(Uint8Array.of(b)));
    out.push(...d.end());
    expect(out.every((r) => r.ok)).toBe(true);
    expect(frames(out).map((f) => plain(f.parsed))).toStrictEqual(all.map((r) => r.expected));
  });
});

describe('chunked input', () => {
  for (const [name, packet] of [
    ['Appendix A example', FRAME_A],
    ['2011 with SampleTime', FRAME_B],
    ['9011 answer', FRAME_C],
  ] as const) {
    it(`${name}: the same frame at every split point into two chunks`, () => {
      const bytes = wire(packet);
      const whole = decodeFrame(bytes);
      expect(whole.ok).toBe(true);
      for (let cut = 0; cut <= bytes.length; cut++) {
        const d = new Hj212StreamDecoder();
        const out = [...d.push(bytes.subarray(0, cut)), ...d.push(bytes.subarray(cut)), ...d.end()];
        expect(out).toHaveLength(1);
        expect(out[0]).toEqual(whole);
      }
    });
  }

  it('every split point into three chunks (Appendix A example)', () => {
    const bytes = wire(FRAME_A);
    for (let i = 0; i <= bytes.length; i += 3) {
      for (let j = i; j <= bytes.length; j += 5) {
        const d = new Hj212StreamDecoder();
        const out = [...d.push(bytes.subarray(0, i)), ...d.push(bytes.subarray(i, j)), ...d.push(bytes.subarray(j)), ...d.end()];
        expect(out.map((r) => r.ok)).toEqual([true]);
      }
    }
  });

  it('nothing comes out before the CR LF, and the frame comes out as soon as it arrives', () => {
    const bytes = wire(FRAME_A);
    const d = new Hj212StreamDecoder();
    expect(d.push(bytes.subarray(0, bytes.length - 1))).toEqual([]);
    expect(d.push(bytes.subarray(bytes.length - 1)).map((r) => r.ok)).toEqual([true]);
    expect(d.bufferedBytes).toBe(0);
  });
});

describe('glued frames', () => {
  it('splits frames that arrive in one chunk and reports their stream offsets', () => {
    const a = wire(FRAME_A);
    const b = wire(FRAME_B);
    const c = wire(FRAME_C);
    const out = decodeAll(concat(a, b, c, a));
    expect(out.map((r) => r.ok)).toEqual([true, true, true, true]);
    expect(frames(out).map((f) => f.offset)).toEqual([0, a.length, a.length + b.length, a.length + b.length + c.length]);
    expect(frames(out)[1]!.raw).toEqual(b);
  });

  it('offsets keep counting across pushes', () => {
    const d = new Hj212StreamDecoder();
    const a = wire(FRAME_A);
    d.push(a);
    d.push(enc('xyz'));
    const out = d.push(a);
    expect(out.map((r) => (r.ok ? r.offset : r.error.offset))).toEqual([a.length, a.length + 3]);
    expect(codes(out)).toEqual(['HJ212_NOISE']);
  });
});

describe('garbage and resync', () => {
  it('skips noise before, between and after frames, reporting each run once', () => {
    const out = decodeAll(concat(Uint8Array.of(0x00, 0xff), enc('junk#'), wire(FRAME_A), enc('more junk\r\n'), wire(FRAME_B), enc('tail')));
    expect(out.map((r) => (r.ok ? 'frame' : r.error.code))).toEqual(['HJ212_NOISE', 'frame', 'HJ212_NOISE', 'frame', 'HJ212_NOISE']);
    const noise = out[0] as Hj212Rejection;
    expect([noise.error.offset, noise.error.length]).toEqual([0, 7]);
  });

  it('treats CR, LF, spaces and NUL between frames as silence', () => {
    const out = decodeAll(concat(enc('\r\n\r\n  \x00'), wire(FRAME_A), enc('\r\n'), wire(FRAME_C)));
    expect(out.map((r) => r.ok)).toEqual([true, true]);
  });

  it('resumes at the next frame when a frame is cut off (bytes lost)', () => {
    const a = wire(FRAME_A);
    const cut = a.subarray(0, 60);
    const out = decodeAll(concat(cut, wire(FRAME_B)));
    expect(out.map((r) => (r.ok ? 'frame' : r.error.code))).toEqual(['HJ212_TRUNCATED', 'frame']);
    expect((out[0] as Hj212Rejection).error.length).toBe(60);
    expect((out[1] as Hj212Frame).offset).toBe(60);
  });

  it('resumes when the frame start is lost', () => {
    const out = decodeAll(concat(wire(FRAME_A).subarray(40), wire(FRAME_B)));
    expect(out.map((r) => (r.ok ? 'frame' : r.error.code))).toEqual(['HJ212_NOISE', 'frame']);
  });

  it('a `##` followed by non-digits is noise', () => {
    const out = decodeAll(concat(enc('##ab##'), wire(FRAME_A)));
    expect(out.map((r) => (r.ok ? 'frame' : r.error.code))).toEqual(['HJ212_NOISE', 'frame']);
  });

  it('a frame whose data contains `##dddd` still decodes', () => {
    const seg = 'ST=32;CN=2011;PW=123456;MN=X;CP=&&DataTime=20240101000000;i11001-Info=##1234 text&&';
    const out = decodeAll(concat(frameDataSegment(seg), wire(FRAME_A)));
    expect(out.map((r) => r.ok)).toEqual([true, true]);
    expect((out[0] as Hj212Frame).parsed.cp.items.i11001?.Info).toBe('##1234 text');
  });

  it('keeps its buffer bounded whatever it is fed', () => {
    const d = new Hj212StreamDecoder({ mode: 'lenient' });
    let seed = 42;
    const rnd = () => (seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32;
    let max = 0;
    for (let i = 0; i < 200; i++) {
      const chunk = Uint8Array.from({ length: 1 + Math.floor(rnd() * 2000) }, () => (rnd() < 0.001 ? 0x0a : 0x41 + Math.floor(rnd() * 20)));
      if (i % 10 === 0) chunk.set(enc('##9999'), 0);
      for (const r of d.push(chunk)) expect(r.ok).toBe(false);
      max = Math.max(max, d.bufferedBytes);
    }
    d.push(new Uint8Array(5_000_000).fill(0x41));
    max = Math.max(max, d.bufferedBytes);
    expect(max).toBeLessThanOrEqual(HJ212_MAX_FRAME_BYTES + 64 + 16);
  });

  it('a run of noise never held: 1 MB without a frame costs nothing but a few reports', () => {
    const d = new Hj212StreamDecoder();
    const out = d.push(new Uint8Array(1 << 20).fill(0x41));
    expect(d.bufferedBytes).toBeLessThanOrEqual(1);
    expect(new Set(codes(out))).toEqual(new Set(['HJ212_NOISE']));
    expect(out.reduce((n, r) => n + (r.ok ? 0 : r.error.length), 0)).toBe(1 << 20);
  });
});

describe('length', () => {
  it('rejects a declared length one short (HJ212_BAD_LENGTH) and goes on', () => {
    const bad = enc(`##0100${SEG_A}1C80\r\n`);
    const out = decodeAll(concat(bad, wire(FRAME_B)));
    expect(out.map((r) => (r.ok ? 'frame' : r.error.code))).toEqual(['HJ212_BAD_LENGTH', 'frame']);
    expect((out[0] as Hj212Rejection).parsed?.framing).toMatchObject({ declared_length: 100, actual_length_bytes: 101, length_ok: false });
  });

  it('rejects a declared length longer than the frame', () => {
    const out = decodeAll(concat(enc(`##0150${SEG_A}1C80\r\n`), wire(FRAME_B)));
    expect(out.map((r) => (r.ok ? 'frame' : r.error.code))).toEqual(['HJ212_BAD_LENGTH', 'frame']);
  });

  it('lenient accepts a length that counts characters (UTF-8 text) and says so; strict rejects it', () => {
    const seg = 'QN=20240101000000000;ST=31;CN=3020;PW=123456;MN=X;Flag=4;CP=&&DataTime=20240101000000;i11001-Info=仪器维护&&';
    const chars = [...seg].length;
    const bytes = enc(seg);
    const frame = concat(enc(`##${String(chars).padStart(4, '0')}`), bytes, enc(`${crcText(bytes)}\r\n`));
    const strict = decodeFrame(frame);
    expect(!strict.ok && strict.error.code).toBe('HJ212_BAD_LENGTH');
    const lenient = decodeFrame(frame, { mode: 'lenient' });
    expect(lenient.ok).toBe(true);
    if (!lenient.ok) return;
    expect(lenient.anomalies.map((a) => a.code)).toEqual(['LENGTH_CHAR_COUNT']);
    expect(lenient.parsed.cp.items.i11001?.Info).toBe('仪器维护');
    expect(lenient.parsed.framing).toMatchObject({ declared_length: chars, actual_length_bytes: bytes.length, length_ok: false, crc_ok: true });
  });

  it('counts UTF-8 bytes for non-ASCII content (the recommended way)', () => {
    const seg = 'ST=31;CN=3020;PW=123456;MN=X;CP=&&i11001-Info=仪器维护&&';
    const r = decodeFrame(frameDataSegment(seg));
    expect(r.ok && r.parsed.cp.items.i11001?.Info).toBe('仪器维护');
  });
});

describe('oversize', () => {
  const seg = `ST=31;CN=2051;PW=123456;MN=X;CP=&&DataTime=20240101000000;${Array.from({ length: 60 }, (_, i) => `a${String(i).padStart(5, '0')}-Avg=12.345`).join(';')}&&`;
  const frame = frameDataSegment(seg, 'hj212', true);

  it('strict rejects a data segment over 1024 bytes with HJ212_OVERSIZE', () => {
    expect(enc(seg).length).toBeGreaterThan(1024);
    const r = decodeFrame(frame);
    expect(!r.ok && r.error.code).toBe('HJ212_OVERSIZE');
    expect(!r.ok && r.parsed?.framing.data_segment_over_1024).toBe(true);
  });

  it('lenient accepts it with an OVERSIZE anomaly', () => {
    const r = decodeFrame(frame, { mode: 'lenient' });
    expect(r.ok && r.anomalies.map((a) => a.code)).toEqual(['OVERSIZE']);
    expect(r.ok && r.parsed.cp.item_order).toHaveLength(60);
  });

  it('lenient still enforces an explicit maxDataLength', () => {
    const r = decodeFrame(frame, { mode: 'lenient', maxDataLength: 1100 });
    expect(!r.ok && r.error.code).toBe('HJ212_OVERSIZE');
  });
});

describe('CRC', () => {
  it('accepts lowercase CRC digits in both modes without an anomaly', () => {
    const lower = wire(FRAME_A.slice(0, -4) + '1c80');
    for (const mode of ['strict', 'lenient'] as const) {
      const r = decodeFrame(lower, { mode });
      expect(r.ok && r.anomalies).toEqual([]);
      expect(r.ok && r.parsed.framing.crc_declared).toBe('1c80');
    }
  });

  it('rejects a CRC that is not hex', () => {
    const r = decodeFrame(wire(FRAME_A.slice(0, -4) + '1CXX'));
    expect(!r.ok && r.error.code).toBe('HJ212_BAD_CRC');
  });

  describe('Modbus-style variant', () => {
    const seg = 'ST=31;CN=2011;PW=123456;MN=MP1;CP=&&DataTime=20200101000000;S08-Rtd=53.796&&';
    const modbusFrame = frameDataSegment(seg, 'modbus-lsb-first');

    it('strict hj212 rejects it with HJ212_BAD_CRC', () => {
      const r = decodeFrame(modbusFrame);
      expect(!r.ok && r.error.code).toBe('HJ212_BAD_CRC');
      expect(!r.ok && r.parsed?.framing.crc_variant_detected).toBe('modbus-lsb-first');
    });

    it('is accepted when the device is configured for it, and then the HJ 212 CRC is refused', () => {
      const r = decodeFrame(modbusFrame, { crc: 'modbus-lsb-first' });
      expect(r.ok && r.parsed.framing).toMatchObject({ crc_ok: true, crc_variant_detected: 'modbus-lsb-first' });
      const hj = decodeFrame(frameDataSegment(seg), { crc: 'modbus-lsb-first' });
      expect(!hj.ok && hj.error.code).toBe('HJ212_BAD_CRC');
    });

    it('lenient accepts it with a CRC_VARIANT anomaly', () => {
      const r = decodeFrame(modbusFrame, { mode: 'lenient' });
      expect(r.ok && r.anomalies.map((a) => a.code)).toEqual(['CRC_VARIANT']);
      expect(r.ok && r.parsed.framing.crc_ok).toBe(true);
    });
  });
});

describe('trailer', () => {
  it('strict rejects a bare LF; lenient accepts it with BARE_LF', () => {
    const bare = enc(`${FRAME_A}\n`);
    const s = decodeFrame(bare);
    expect(!s.ok && s.error.code).toBe('HJ212_BAD_TRAILER');
    const l = decodeFrame(bare, { mode: 'lenient' });
    expect(l.ok && l.anomalies.map((a) => a.code)).toEqual(['BARE_LF']);
    expect(l.ok && l.parsed.framing.has_crlf).toBe(false);
  });

  it('a frame without CR LF followed by the next frame: strict rejects it, lenient accepts it, the next frame decodes', () => {
    const stream = concat(enc(FRAME_A), wire(FRAME_B));
    expect(decodeAll(stream).map((r) => (r.ok ? 'frame' : r.error.code))).toEqual(['HJ212_BAD_TRAILER', 'frame']);
    const l = decodeAll(stream, { mode: 'lenient' });
    expect(l.map((r) => r.ok)).toEqual([true, true]);
    expect((l[0] as Hj212Frame).anomalies.map((a) => a.code)).toEqual(['MISSING_CRLF']);
  });

  it('garbage instead of CR LF is a bad trailer and the next frame still decodes', () => {
    const out = decodeAll(concat(enc(`${FRAME_A}XY`), wire(FRAME_B)));
    expect(out.map((r) => (r.ok ? 'frame' : r.error.code))).toEqual(['HJ212_BAD_TRAILER', 'frame']);
  });

  it('at the end of the stream: without CR LF lenient accepts, strict rejects; a half frame is truncated', () => {
    expect(decodeAll(enc(FRAME_A), { mode: 'lenient' }).map((r) => r.ok)).toEqual([true]);
    expect(codes(decodeAll(enc(FRAME_A)))).toEqual(['HJ212_BAD_TRAILER']);
    expect(codes(decodeAll(enc(FRAME_A.slice(0, 50))))).toEqual(['HJ212_TRUNCATED']);
  });

  it('a frame with no LF within the largest frame size is given up', () => {
    const out = decodeAll(concat(enc('##0100'), new Uint8Array(HJ212_MAX_FRAME_BYTES).fill(0x41), wire(FRAME_A)));
    expect(out.map((r) => (r.ok ? 'frame' : r.error.code))).toEqual(['HJ212_BAD_TRAILER', 'HJ212_NOISE', 'frame']);
  });
});

describe('fields', () => {
  const bad = (seg: string, mode: 'strict' | 'lenient' = 'strict') => decodeFrame(frameDataSegment(seg), { mode });

  it('parses by key, not position, and keeps received order', () => {
    const r = bad('MN=X;Flag=4;CN=2011;ST=31;PW=1;QN=1;CP=&&a-Rtd=1&&');
    expect(r.ok && r.parsed.header_order).toEqual(['MN', 'Flag', 'CN', 'ST', 'PW', 'QN']);
    expect(r.ok && r.parsed.header.CN).toBe('2011');
  });

  it('decodes the Flag bits', () => {
    const r = bad('ST=31;CN=2011;PW=1;MN=X;Flag=7;PNUM=2;PNO=1;CP=&&&&');
    expect(r.ok && r.parsed.flag_decoded).toEqual({ value: 7, version_bits_V5_V0: 1, D_has_PNUM_PNO: 1, A_ack_required: 1 });
    expect(r.ok && r.anomalies).toEqual([]);
  });

  it('splits a key on its last `-` and keeps values as exact strings', () => {
    const r = bad('ST=31;CN=2011;PW=1;MN=X;CP=&&DataTime=20240101000000;aqms-1-Rtd=007.50,aqms-1-Flag=N;Flag=N&&');
    expect(r.ok && plain(r.parsed.cp)).toEqual({
      params: { DataTime: '20240101000000', Flag: 'N' },
      items: { 'aqms-1': { Rtd: '007.50', Flag: 'N' } },
      item_order: ['aqms-1'],
    });
  });

  it('a `__proto__` key from the wire is an ordinary key', () => {
    const r = bad('ST=31;CN=2011;PW=1;MN=X;CP=&&__proto__=1;__proto__-Rtd=2&&');
    expect(r.ok && r.parsed.cp.params.__proto__).toBe('1');
    expect(r.ok && r.parsed.cp.items.__proto__?.Rtd).toBe('2');
  });

  it.each([
    ['no CP', 'ST=31;CN=2011;PW=1;MN=X;'],
    ['CP not closed', 'ST=31;CN=2011;PW=1;MN=X;CP=&&a-Rtd=1'],
    ['header field without =', 'ST=31;CN2011;PW=1;MN=X;CP=&&&&'],
    ['CP pair without =', 'ST=31;CN=2011;PW=1;MN=X;CP=&&a-Rtd1&&'],
    ['Flag not a number', 'ST=31;CN=2011;PW=1;MN=X;Flag=x;CP=&&&&'],
    ['Flag over 255', 'ST=31;CN=2011;PW=1;MN=X;Flag=256;CP=&&&&'],
    ['PNO over PNUM', 'ST=31;CN=2011;PW=1;MN=X;Flag=6;PNUM=1;PNO=2;CP=&&&&'],
    ['PNUM alone', 'ST=31;CN=2011;PW=1;MN=X;PNUM=2;CP=&&&&'],
    ['duplicate header key', 'ST=31;CN=2011;CN=2011;PW=1;MN=X;CP=&&&&'],
    ['duplicate CP key with different values', 'ST=31;CN=2011;PW=1;MN=X;CP=&&a-Rtd=1;a-Rtd=2&&'],
  ])('strict rejects %s with HJ212_BAD_FIELD', (_name, seg) => {
    const r = bad(seg);
    expect(!r.ok && r.error.code).toBe('HJ212_BAD_FIELD');
  });

  it.each([
    ['header field without =', 'ST=31;CN2011;PW=1;MN=X;CP=&&&&', 'BAD_PAIR'],
    ['CP pair without =', 'ST=31;CN=2011;PW=1;MN=X;CP=&&a-Rtd1,a-Rtd=2&&', 'BAD_PAIR'],
    ['Flag not a number', 'ST=31;CN=2011;PW=1;MN=X;Flag=x;CP=&&&&', 'BAD_FLAG'],
    ['PNO over PNUM', 'ST=31;CN=2011;PW=1;MN=X;PNUM=1;PNO=2;CP=&&&&', 'BAD_PACKET_NUMBER'],
    ['duplicate CP key', 'ST=31;CN=2011;PW=1;MN=X;CP=&&a-Rtd=1;a-Rtd=2&&', 'DUPLICATE_KEY'],
  ])('lenient accepts %s and records %s', (_name, seg, anomaly) => {
    const r = bad(seg, 'lenient');
    expect(r.ok && r.anomalies.map((a) => a.code)).toEqual([anomaly]);
  });

  it('a duplicate CP key with the same value is noted, not rejected, and the Flag/PNUM disagreement too', () => {
    const r = bad('ST=31;CN=2011;PW=1;MN=X;Flag=7;CP=&&a-Rtd=1;a-Rtd=1;;&&');
    expect(r.ok && r.anomalies.map((a) => a.code)).toEqual(['DUPLICATE_KEY', 'FLAG_SPLIT_MISMATCH']);
  });

  it('strict rejects bytes that are not UTF-8; lenient records NON_UTF8', () => {
    const seg = concat(enc('ST=31;CN=2011;PW=1;MN=X;CP=&&a-Info='), Uint8Array.of(0xff, 0xfe), enc('&&'));
    const frame = frameDataSegment(seg);
    const s = decodeFrame(frame);
    expect(!s.ok && s.error.code).toBe('HJ212_BAD_FIELD');
    const l = decodeFrame(frame, { mode: 'lenient' });
    expect(l.ok && l.anomalies.map((a) => a.code)).toEqual(['NON_UTF8']);
  });
});

describe('misuse', () => {
  it('throws TypeError/RangeError for bad arguments', () => {
    expect(() => new Hj212StreamDecoder({ mode: 'loose' as never })).toThrow(RangeError);
    expect(() => new Hj212StreamDecoder({ crc: 'crc32' as never })).toThrow(RangeError);
    expect(() => new Hj212StreamDecoder({ maxDataLength: 10_000 })).toThrow(RangeError);
    expect(() => new Hj212StreamDecoder().push('##' as never)).toThrow(TypeError);
  });

  it('decodeFrame reports an empty input and a second frame', () => {
    expect(decodeFrame(new Uint8Array()).ok).toBe(false);
    const two = decodeFrame(concat(wire(FRAME_A), wire(FRAME_A)));
    expect(!two.ok && two.error.code).toBe('HJ212_NOISE');
  });
});

describe('when the input is built to make the decoder rescan (issue #8)', () => {
  const repeated = (unit: string, n: number) => {
    const u = enc(unit);
    const bytes = new Uint8Array(u.length * n);
    for (let i = 0; i < bytes.length; i += u.length) bytes.set(u, i);
    return bytes;
  };
  const pushAll = (d: Hj212StreamDecoder, bytes: Uint8Array, chunk: number) => {
    const results: Hj212DecodeResult[] = [];
    for (let off = 0; off < bytes.length; off += chunk) results.push(...d.push(bytes.subarray(off, off + chunk)));
    results.push(...d.end());
    return results as Hj212Rejection[];
  };

  // Before issue #8 this pinned one HJ212_TRUNCATED per 6-byte candidate; runs of them now fold into one rejection.
  it('decodes `##9999` repeated in time linear in its size, folding each run of truncated candidates into one HJ212_TRUNCATED', () => {
    const bytes = repeated('##9999', 20_000);
    const t0 = performance.now();
    const results = pushAll(new Hj212StreamDecoder({ mode: 'lenient' }), bytes, 4096);
    // before the fix this took ~10 KB of scanning per candidate (minutes on a loaded machine); now well under a second
    expect(performance.now() - t0).toBeLessThan(15_000);
    expect(results.every((r) => !r.ok && r.error.code === 'HJ212_TRUNCATED')).toBe(true);
    // at most one per pushed chunk (a run is reported when the push that settles it returns), never one per candidate
    expect(results.length).toBeLessThanOrEqual(Math.ceil(bytes.length / 4096) + 1);
    expect(results.reduce((n, r) => n + r.error.candidates, 0)).toBe(20_000);
    // the runs tile the input: each starts where the previous ended, and together they cover every byte
    let at = 0;
    for (const r of results) {
      expect(r.error.offset).toBe(at);
      at += r.error.length;
      expect(r.raw!.length).toBeLessThanOrEqual(HJ212_RUN_RAW_BYTES);
      expect(r.raw).toEqual(bytes.subarray(r.error.offset, r.error.offset + r.raw!.length));
      if (r.error.candidates > 1) expect(r.candidates).toBe(r.error.candidates);
    }
    expect(at).toBe(bytes.length);
  });

  it('folds `##0000` repeated the same way, whatever the chunking, and resumes at the next frame', () => {
    const bytes = concat(repeated('##0000', 1000), wire(FRAME_A));
    for (const chunk of [1, 7, 4096, bytes.length]) {
      const results = pushAll(new Hj212StreamDecoder(), bytes, chunk);
      const last = results.at(-1) as unknown as Hj212Frame;
      expect(last.ok).toBe(true);
      expect(last.offset).toBe(6000);
      const runs = results.slice(0, -1);
      expect(runs.every((r) => !r.ok && r.error.code === 'HJ212_TRUNCATED')).toBe(true);
      expect(runs.reduce((n, r) => n + r.error.candidates, 0)).toBe(1000);
      expect(runs.reduce((n, r) => n + r.error.length, 0)).toBe(6000);
      if (chunk === bytes.length) {
        expect(runs).toHaveLength(1);
        expect(runs[0]!.error.where).toEqual({ offset: 0, length: 6000, candidates: 1000 });
        expect(runs[0]!.raw).toEqual(bytes.subarray(0, HJ212_RUN_RAW_BYTES));
      }
    }
  });

  it('keeps a lone truncated candidate as it was; a frame or noise between candidates ends a run', () => {
    const lone = decodeAll(concat(enc('##0100ABC'), wire(FRAME_A)));
    expect(lone.map((r) => (r.ok ? 'frame' : r.error.code))).toEqual(['HJ212_TRUNCATED', 'frame']);
    const r = lone[0] as Hj212Rejection;
    expect([r.error.offset, r.error.length, r.error.candidates, r.candidates]).toEqual([0, 9, 1, undefined]);
    expect(r.raw).toEqual(enc('##0100ABC'));
    expect(r.error.where).toEqual({ offset: 0, length: 9 });

    const out = decodeAll(concat(enc('##0000##0000##0000'), wire(FRAME_A), enc('xyz##0000##0000'), wire(FRAME_B))) as Hj212Rejection[];
    const a = wire(FRAME_A).length;
    expect(out.map((x) => (x.ok ? 'frame' : `${x.error.code}@${x.error.offset}+${x.error.length}x${x.error.candidates}`))).toEqual([
      'HJ212_TRUNCATED@0+18x3',
      'frame',
      `HJ212_NOISE@${18 + a}+3x1`,
      `HJ212_TRUNCATED@${21 + a}+12x2`,
      'frame',
    ]);
  });
});
