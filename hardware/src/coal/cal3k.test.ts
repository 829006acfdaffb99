import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SHARED_SKIP_REASON, sharedDir } from '@stele/testkit';
import { toHex, sha256 } from '@stele/core';
import { CAL3K_HEADER, type Cal3kEvent, Cal3kStreamDecoder, decodeCal3k } from './cal3k.ts';
import { CoalError } from './errors.ts';
import { coalReading, type CoalResult } from './result.ts';

// Fixtures: records written here by hand in the shape of the vendor's example (PROTOCOLS.md §3.1): 19 fields,
// trailing ';', space-padded numbers, DD/MM/YY dates.
const REC_A = '01/03/24;08:03:17;4;COAL;HY240001; 25.555500; 0.666600;;3KAP;00/00/00;;;; 0.111111; 0.222222;;;1.11; 3.000006;';
const REC_B = '01/03/24;08:15:40;1;COAL;HY240002; 21.004000; 1.002000;;3KAP;00/00/00;;;; 0.101000; 0.021000;;;1.10; 2.500000;';
const enc = (s: string) => new TextEncoder().encode(s);
const OPTS = { finalStatuses: ['4'] };
const results = (evs: Cal3kEvent[]) => evs.flatMap((e) => (e.type === 'result' ? [e.result] : []));
const codes = (evs: Cal3kEvent[]) => evs.flatMap((e) => (e.type === 'rejected' ? [e.error.code] : []));

describe('Cal3kStreamDecoder', () => {
  it('decodes a record into measurements with the digest of its exact bytes', () => {
    const [r] = results(decodeCal3k(enc(`${REC_A}\r\n`), OPTS)) as [CoalResult];
    expect(r.sampleId).toBe('HY240001');
    expect(r.status).toBe('4');
    expect(r.final).toBe(true);
    expect(r.time).toBe(Date.parse('2024-03-01T08:03:17+08:00'));
    expect(toHex(r.raw)).toBe(toHex(sha256(enc(REC_A))));
    expect(r.meas).toContainEqual({ code: 'Qgr,v,ad', kind: 'ad', value: '25.555500', unit: 'MJ/kg' });
    expect(r.meas).toContainEqual({ code: 'AssayCode', kind: 'id', value: 'HY240001' });
    expect(r.meas).toContainEqual({ code: 'SampleMass', kind: 'run', value: '0.666600', unit: 'g' });
    expect(r.meas.find((m) => m.code === 'Rise3')?.value).toBe('3.000006');
    expect(r.meas.some((m) => m.code === 'Version')).toBe(false); // empty fields are not measurements
    expect(r.source.offset).toBe(0);
  });

  it('gives the same results for byte-by-byte chunks, glued records and any line ending', () => {
    const stream = enc(`${REC_A}\r\n${REC_B}\n${REC_A}\r${REC_B}\r\n`);
    const whole = results(decodeCal3k(stream, OPTS));
    const d = new Cal3kStreamDecoder(OPTS);
    const bytewise: Cal3kEvent[] = [];
    for (const b of stream) bytewise.push(...d.push(Uint8Array.of(b)));
    bytewise.push(...d.end());
    expect(whole).toHaveLength(4);
    expect(results(bytewise)).toEqual(whole);
    expect(toHex(whole[0]!.raw)).toBe(toHex(whole[2]!.raw));
    expect(whole.map((r) => r.source.offset)).toEqual([0, REC_A.length + 2, REC_A.length + 2 + REC_B.length + 1, 2 * REC_A.length + REC_B.length + 4]);
  });

  it('marks a status outside finalStatuses as not final, and coalReading refuses it with COAL_NOT_FINAL', () => {
    const [r] = results(decodeCal3k(enc(`${REC_B}\n`), OPTS)) as [CoalResult];
    expect(r.final).toBe(false);
    const clock = { synced: true, source: 'ntp' };
    expect(() => coalReading(r, { sensor: 'cal3k-1', clock })).toThrow(expect.objectContaining({ code: 'COAL_NOT_FINAL' }));
    const [a] = results(decodeCal3k(enc(`${REC_A}\n`), OPTS)) as [CoalResult];
    const acq = coalReading(a, { sensor: 'cal3k-1', clock });
    expect(acq.raw).toEqual([a.raw]);
    expect(acq.time).toBe(a.time);
  });

  describe('when a record fails its checks', () => {
    it('rejects a non-numeric Result with COAL_BAD_FIELD naming the field, then decodes the next record', () => {
      const evs = decodeCal3k(enc(`${REC_A.replace(' 25.555500', ' 25.5x')}\n${REC_A}\n`), OPTS);
      expect(codes(evs)).toEqual(['COAL_BAD_FIELD']);
      const rej = evs[0]!;
      expect(rej.type === 'rejected' && rej.error.where?.field).toBe('Result');
      expect(results(evs)).toHaveLength(1);
    });
    it('rejects a wrong field count with COAL_BAD_FIELD_COUNT', () => {
      expect(codes(decodeCal3k(enc(`${REC_A.slice(0, REC_A.lastIndexOf(' 3.000006;'))}\n`), OPTS))).toEqual(['COAL_BAD_FIELD_COUNT']);
      expect(codes(decodeCal3k(enc(`${REC_A}x;\n`), OPTS))).toEqual(['COAL_BAD_FIELD_COUNT']);
    });
    it('rejects an impossible date with COAL_BAD_FIELD', () => {
      expect(codes(decodeCal3k(enc(`${REC_A.replace('01/03/24', '31/02/24')}\n`), OPTS))).toEqual(['COAL_BAD_FIELD']);
    });
    it('rejects an empty Sample ID with COAL_BAD_FIELD', () => {
      expect(codes(decodeCal3k(enc(`${REC_A.replace('HY240001', ' ')}\n`), OPTS))).toEqual(['COAL_BAD_FIELD']);
    });
    it('rejects control bytes (COAL_BAD_RECORD) and invalid UTF-8 (COAL_BAD_ENCODING)', () => {
      const ctl = enc(`${REC_A}\n`);
      ctl[10] = 0x07;
      expect(codes(decodeCal3k(ctl, OPTS))).toEqual(['COAL_BAD_RECORD']);
      const bad = enc(`${REC_A}\n`);
      bad[20] = 0xff;
      expect(codes(decodeCal3k(bad, OPTS))).toEqual(['COAL_BAD_ENCODING']);
    });
    it('rejects an over-long line with COAL_OVERSIZE once and recovers at the next line', () => {
      const evs = decodeCal3k(enc(`${'9'.repeat(5000)}\n${REC_A}\n`), { ...OPTS, maxLineBytes: 256 });
      expect(codes(evs)).toEqual(['COAL_OVERSIZE']);
      expect(results(evs)).toHaveLength(1);
    });
    it('rejects a record cut off by the end of the stream with COAL_BAD_RECORD', () => {
      expect(codes(decodeCal3k(enc(`${REC_A}\n${REC_B}`), OPTS))).toEqual(['COAL_BAD_RECORD']);
    });
  });

  it('adopts a header line that changes the column order', () => {
    const header = ['Sample ID', 'Date', 'Time', 'Status', 'Result'].join(' ;') + ' ;';
    const evs = decodeCal3k(enc(`${header}\r\nHY9;02/03/24;10:00:00;4; 19.9;\r\n`), OPTS);
    expect(evs[0]).toMatchObject({ type: 'header', columns: ['Sample ID', 'Date', 'Time', 'Status', 'Result'] });
    const [r] = results(evs) as [CoalResult];
    expect(r.sampleId).toBe('HY9');
    expect(r.meas.map((m) => m.code)).toEqual(['AssayCode', 'Date', 'Time', 'Status', 'Qgr,v,ad']);
    expect(codes(decodeCal3k(enc('Date ;Time ;Sample ID ;\n'), OPTS))).toEqual(['COAL_BAD_HEADER']);
  });

  it('refuses misuse: no finalStatuses (TypeError), an unknown result symbol or missing columns (RangeError)', () => {
    expect(() => new Cal3kStreamDecoder({} as never)).toThrow(TypeError);
    expect(() => new Cal3kStreamDecoder({ ...OPTS, resultCode: 'Qfoo' })).toThrow(RangeError);
    expect(() => new Cal3kStreamDecoder({ ...OPTS, columns: CAL3K_HEADER.filter((c) => c !== 'Result') })).toThrow(RangeError);
  });

  it('never throws on 20,000 random and mutated lines (bounded fuzz, seeded)', () => {
    let seed = 12345;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const base = enc(`${REC_A}\n`);
    const d = new Cal3kStreamDecoder({ ...OPTS, maxLineBytes: 512 });
    let events = 0;
    for (let i = 0; i < 20_000; i++) {
      let chunk: Uint8Array;
      if (i % 2 === 0) {
        chunk = base.slice();
        for (let k = 0; k < 1 + Math.floor(rnd() * 4); k++) chunk[Math.floor(rnd() * chunk.length)] = Math.floor(rnd() * 256);
      } else {
        chunk = new Uint8Array(Math.floor(rnd() * 80));
        for (let k = 0; k < chunk.length; k++) chunk[k] = rnd() < 0.2 ? 0x3b : Math.floor(rnd() * 256);
      }
      for (const e of d.push(chunk)) {
        events++;
        if (e.type === 'rejected') expect(e.error).toBeInstanceOf(CoalError);
      }
    }
    d.end();
    expect(events).toBeGreaterThan(1000);
  });
});

const dir = sharedDir();
describe.skipIf(!dir)(`the vendor example record in PROTOCOLS.md §3.1 (${SHARED_SKIP_REASON})`, () => {
  it('decodes (read in place from ../shared)', () => {
    const text = readFileSync(join(dir!, 'domain', 'PROTOCOLS.md'), 'utf8');
    const line = /`(15\/05\/11;[^`]+)`/.exec(text)?.[1];
    expect(line).toBeDefined();
    const [r] = results(decodeCal3k(enc(`${line}\r\n`), { finalStatuses: ['4'], utcOffsetMinutes: 0 })) as [CoalResult];
    expect(r.sampleId).toBe('SIMULATED SMPLID');
    expect(r.final).toBe(true);
    expect(r.time).toBe(Date.UTC(2011, 4, 15, 8, 3, 17));
    expect(r.meas).toContainEqual({ code: 'Qgr,v,ad', kind: 'ad', value: '25.555500', unit: 'MJ/kg' });
  });
});
