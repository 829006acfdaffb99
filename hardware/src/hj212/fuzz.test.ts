/**
 * Bounded fuzz: >= 100,000 random and mutated frames through the streaming decoder, fixed seed. The decoder must
 * only ever yield good frames (that re-decode alone to the same thing) or its own Hj212Error rejections, keep
 * its buffer bounded, and finish. The elapsed time is printed, never asserted.
 */
import { describe, expect, it } from 'vitest';
import { concatBytes, toHex, sha256, mulberry32 } from '@stele/core';
import { HJ212_MAX_FRAME_BYTES, type Hj212DecoderOptions, Hj212StreamDecoder, decodeFrame } from './decoder.ts';
import { encodeFrame, frameDataSegment } from './encoder.ts';
import { Hj212Error, type Hj212ErrorCode } from './errors.ts';
import type { Hj212DecodeResult } from './types.ts';

const FRAMES = 100_000;
const SEED = 0x5715;

const OUR_CODES = new Set<Hj212ErrorCode>([
  'HJ212_NOISE',
  'HJ212_BAD_LENGTH',
  'HJ212_BAD_CRC',
  'HJ212_BAD_FIELD',
  'HJ212_BAD_TRAILER',
  'HJ212_TRUNCATED',
  'HJ212_OVERSIZE',
]);


const enc = (s: string) => new TextEncoder().encode(s);
const concat = (parts: Uint8Array[]) => concatBytes(...parts);

describe('fuzz: random and mutated frames', () => {
  it(`${FRAMES} frames, seed ${SEED.toString(16)}: only frames or our own errors, bounded buffer, no hang`, () => {
    const rnd = mulberry32(SEED);
    const int = (n: number) => Math.floor(rnd() * n);
    const pick = <T>(a: readonly T[]): T => a[int(a.length)]!;

    // Base frames: standard examples, real-world shapes, and random well-formed ones.
    const base: Uint8Array[] = [
      enc('##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80\r\n'),
      enc('##0139ST=32;CN=2011;PW=123456;MN=LD130133000015;CP=&&DataTime=20160824003817000;B01-Rtd=36.91;011-Rtd=231.0,011-Flag=N;060-Rtd=1.803,060-Flag=N&&4980\r\n'),
      frameDataSegment('ST=31;CN=3020;PW=123456;MN=X;CP=&&i11001-Info=仪器维护&&'),
    ];
    const codes = ['a21026', 'a21002', 'a34013', 'a19001', 'a01012', 'a01011', 'a00000', 'B02', 'S08', '02', 'lng'];
    const subs = ['Rtd', 'ZsRtd', 'Avg', 'Min', 'Max', 'Cou', 'Flag', 'EFlag'];
    for (let i = 0; i < 60; i++) {
      const items: Record<string, Record<string, string>> = {};
      for (let k = 0, n = 1 + int(12); k < n; k++) {
        const item: Record<string, string> = {};
        for (let j = 0, m = 1 + int(4); j < m; j++) item[pick(subs)] = (rnd() * 1000).toFixed(int(4));
        items[pick(codes)] = item;
      }
      base.push(
        encodeFrame({
          header: { QN: String(20240101000000000 + i), ST: '31', CN: pick(['2011', '2051', '2061']), PW: '123456', MN: '010000A8900016F000169DC0', Flag: pick([4, 5]) },
          cp: { params: { DataTime: '20240101000000' }, items },
          crc: i % 10 === 0 ? 'modbus-lsb-first' : 'hj212',
        }),
      );
    }

    const mutate = (f: Uint8Array): Uint8Array => {
      const m = f.slice();
      switch (int(11)) {
        case 0:
        case 1:
          return f; // intact
        case 2: // flip bytes
          for (let k = 0, n = 1 + int(3); k < n; k++) m[int(m.length)] = int(256);
          return m;
        case 3: {
          const at = int(f.length);
          return concat([f.subarray(0, at), Uint8Array.from({ length: 1 + int(4) }, () => int(256)), f.subarray(at)]);
        }
        case 4: {
          const at = int(f.length);
          return concat([f.subarray(0, at), f.subarray(Math.min(f.length, at + 1 + int(8)))]);
        }
        case 5:
          return f.subarray(0, int(f.length));
        case 6: // a length digit
          m[2 + int(4)] = 0x30 + int(10);
          return m;
        case 7: // random garbage, sometimes posing as a frame start
          return concat([rnd() < 0.5 ? enc(`##${String(int(10000)).padStart(4, '0')}`) : new Uint8Array(), Uint8Array.from({ length: int(400) }, () => int(256))]);
        case 8: {
          const g = pick(base);
          return concat([f.subarray(0, int(f.length)), g.subarray(int(g.length))]);
        }
        case 9: // CR LF -> LF, or dropped
          return rnd() < 0.5 ? concat([f.subarray(0, f.length - 2), enc('\n')]) : f.subarray(0, f.length - 2);
        default: // duplicated run of `#` and digits
          return concat([enc('###'), f]);
      }
    };

    const problems: string[] = [];
    let ok = 0;
    let rejected = 0;
    let maxBuffered = 0;
    let bytes = 0;
    let intact = 0;
    let recovered = 0;
    const variantOf = new Map(base.map((f) => [f, decodeFrame(f).ok ? 'hj212' : 'modbus-lsb-first'] as const));
    const byCode: Record<string, number> = {};
    const started = performance.now();

    const check = (r: Hj212DecodeResult, options: Hj212DecoderOptions) => {
      if (r.ok) {
        ok++;
        if (r.raw[0] !== 0x23 || r.raw[1] !== 0x23) problems.push(`frame at ${r.offset} does not start with ##`);
        if (toHex(r.sha256) !== toHex(sha256(r.raw))) problems.push(`frame at ${r.offset}: sha256 mismatch`);
        const again = decodeFrame(r.raw, options);
        if (!again.ok || JSON.stringify(again.parsed) !== JSON.stringify(r.parsed)) problems.push(`frame at ${r.offset} does not re-decode alone`);
      } else {
        rejected++;
        byCode[r.error.code] = (byCode[r.error.code] ?? 0) + 1;
        if (!(r.error instanceof Hj212Error) || !OUR_CODES.has(r.error.code)) problems.push(`foreign error ${String(r.error)}`);
        if (r.error.length <= 0) problems.push(`error ${r.error.code} at ${r.error.offset} covers no bytes`);
      }
    };

    const BATCH = 1000;
    for (let b = 0; b < FRAMES / BATCH; b++) {
      const options: Hj212DecoderOptions = b % 2 === 0 ? { mode: 'strict' } : { mode: 'lenient', crc: b % 4 === 1 ? 'modbus-lsb-first' : 'hj212' };
      const parts: Uint8Array[] = [];
      const intactAt = new Set<number>();
      let pos = 0;
      for (let k = 0; k < BATCH; k++) {
        const f = pick(base);
        const m = mutate(f);
        if (m === f && (options.mode === 'lenient' || variantOf.get(f) === (options.crc ?? 'hj212'))) intactAt.add(pos);
        parts.push(m);
        pos += m.length;
      }
      const stream = concat(parts);
      intact += intactAt.size;
      bytes += stream.length;
      const d = new Hj212StreamDecoder(options);
      let lastOffset = -1;
      for (let at = 0; at < stream.length; ) {
        const n = 1 + int(rnd() < 0.2 ? 16 : 4096);
        for (const r of d.push(stream.subarray(at, at + n))) {
          const off = r.ok ? r.offset : r.error.offset;
          if (off < lastOffset) problems.push(`results out of order at ${off}`);
          lastOffset = off;
          check(r, options);
          if (r.ok && intactAt.has(r.offset)) recovered++;
        }
        maxBuffered = Math.max(maxBuffered, d.bufferedBytes);
        at += n;
      }
      for (const r of d.end()) {
        check(r, options);
        if (r.ok && intactAt.has(r.offset)) recovered++;
      }
      if (problems.length > 20) break;
    }
    const elapsedMs = performance.now() - started;
    console.log(
      `fuzz: ${FRAMES} frames, ${(bytes / 1e6).toFixed(1)} MB in ${elapsedMs.toFixed(0)} ms; ${ok} frames accepted, ${rejected} rejections ${JSON.stringify(byCode)}; max buffered ${maxBuffered} bytes; intact frames recovered ${recovered}/${intact}`,
    );
    expect(problems.slice(0, 20)).toEqual([]);
    expect(maxBuffered).toBeLessThanOrEqual(HJ212_MAX_FRAME_BYTES + 64 + 16);
    expect(ok).toBeGreaterThan(FRAMES / 10);
    // An intact frame is lost only when the mutated bytes before it pose as a frame that ends exactly at its end.
    expect(recovered / intact).toBeGreaterThan(0.97);
  }, 120_000);
});
