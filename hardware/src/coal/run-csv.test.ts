import { describe, expect, it } from 'vitest';
import { fromHex, toHex, sha256 } from '@stele/core';
import { decodeText, parseCsv } from './csv.ts';
import { CoalError } from './errors.ts';
import { PARR_6X00_PROFILE, type RunCsvProfile, parseRunCsv } from './run-csv.ts';

const enc = (s: string) => new TextEncoder().encode(s);
const catchCode = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return e instanceof CoalError ? e.code : `not CoalError: ${String(e)}`;
  }
  return 'no error';
};

// Fixture: a Parr run file written here by hand with the appendix D column names (PROTOCOLS.md §3.1).
const PARR_HEADER =
  'SampleID,Timestamp,Mode,Method,State,Units,BombID,BombEE,SampleWt,SpikeWt,Fuse,Acid,Sulfur,Hydrogen,MAD,JacketTemp,InitTemp,DeltaT,HOC,NetHOC,DryHOC,DryNetHOC';
const PARR_FINAL = `${PARR_HEADER}\r\nHY0501,03/01/24 09:00:00,Determination,Equilibrium,2,0,1,2410.5,1.0012,0.0000,50.0,8.2,0.62,3.91,2.15,30.00,27.512,2.6011,24.1234,23.3180,24.6534,23.8303\r\n`;

// Fixtures in GB18030, made with glibc iconv 2.36 (`iconv -f utf-8 -t gb18030`) from the UTF-8 text in the comment.
// 'SampleID,Timestamp,State,Units,HOC\r\n煤样-甲01,03/01/24 09:00:00,2,0,24.1234\r\n'
const GB_PARR = fromHex(
  '53616d706c6549442c54696d657374616d702c53746174652c556e6974732c484f430d0ac3bad1f92dbcd730312c30332f30312f32342030393a30303a30302c322c302c32342e313233340d0a',
);
// '化验编码,审核状态,化验时间,高位发热量,全硫\r\nHY0001,已审核,2024-03-01 10:20:00,23.456,0.82\r\nHY0002,未审核,2024-03-01 10:40:00,22.001,0.91\r\n'
const GB_CN = fromHex(
  'bbafd1e9b1e0c2eb2cc9f3bacbd7b4ccac2cbbafd1e9cab1bce42cb8dfcebbb7a2c8c8c1bf2cc8abc1f20d0a4859303030312cd2d1c9f3bacb2c323032342d30332d30312031303a32303a30302c32332e3435362c302e38320d0a4859303030322cceb4c9f3bacb2c323032342d30332d30312031303a34303a30302c32322e3030312c302e39310d0a',
);
/** A site profile for a Chinese LIMS export with an audit column: only 已审核 (approved) is final. */
const CN_PROFILE: RunCsvProfile = {
  instrument: 'lims-export',
  columns: {
    化验编码: { code: 'AssayCode', kind: 'id' },
    审核状态: { code: 'AuditState', kind: 'run' },
    化验时间: { code: 'AssayTime', kind: 'run' },
    高位发热量: { code: 'Qgr,v,ad', kind: 'ad', unit: 'MJ/kg', check: 'decimal' },
    全硫: { code: 'St,ad', kind: 'ad', unit: '%', check: 'decimal' },
  },
  sampleIdColumn: '化验编码',
  statusColumn: '审核状态',
  finalStatuses: ['已审核'],
  timeColumn: '化验时间',
  timeFormat: 'YYYY-MM-DD HH:mm:ss',
};

describe('parseCsv (RFC 4180)', () => {
  it('handles quotes, doubled quotes, embedded line breaks and every line ending', () => {
    const rows = parseCsv('a,"b,1","c ""q"""\r\n"x\ny",2,\n\nlast,1,2\r');
    expect(rows).toEqual([
      { line: 1, fields: ['a', 'b,1', 'c "q"'] },
      { line: 2, fields: ['x\ny', '2', ''] },
      { line: 5, fields: ['last', '1', '2'] },
    ]);
  });
  it('rejects broken quoting with COAL_BAD_CSV', () => {
    expect(catchCode(() => parseCsv('a,"open\n'))).toBe('COAL_BAD_CSV');
    expect(catchCode(() => parseCsv('a,b"c\n'))).toBe('COAL_BAD_CSV');
    expect(catchCode(() => parseCsv('"a"x,b\n'))).toBe('COAL_BAD_CSV');
  });
});

describe('decodeText', () => {
  it('detects UTF-8 (with or without BOM) and GB18030, and refuses bytes that are neither', () => {
    expect(decodeText(Uint8Array.of(0xef, 0xbb, 0xbf, 0x61))).toEqual({ text: 'a', encoding: 'utf-8' });
    expect(decodeText(GB_PARR).encoding).toBe('gb18030');
    expect(decodeText(GB_PARR).text).toContain('煤样-甲01');
    expect(decodeText(GB_PARR, 'gbk').text).toContain('煤样-甲01');
    expect(catchCode(() => decodeText(GB_PARR, 'utf-8'))).toBe('COAL_BAD_ENCODING');
    expect(catchCode(() => decodeText(Uint8Array.of(0x61, 0x81)))).toBe('COAL_BAD_ENCODING'); // lone GB lead byte at end
  });
});

describe('parseRunCsv with the Parr profile', () => {
  it('maps a final run to measurements with units from the Units code and the file digest', () => {
    const f = parseRunCsv(enc(PARR_FINAL), PARR_6X00_PROFILE, { file: 'HY0501.det.finl.csv' });
    expect(f.rejected).toEqual([]);
    expect(f.results).toHaveLength(1);
    const r = f.results[0]!;
    expect(r).toMatchObject({ instrument: 'parr-6x00', sampleId: 'HY0501', status: '2', final: true, source: { file: 'HY0501.det.finl.csv', line: 2 } });
    expect(r.time).toBe(Date.parse('2024-03-01T09:00:00+08:00'));
    expect(toHex(r.raw)).toBe(toHex(sha256(enc(PARR_FINAL))));
    expect(r.meas).toContainEqual({ code: 'Qgr,v,ad', kind: 'ad', value: '24.1234', unit: 'MJ/kg' });
    expect(r.meas).toContainEqual({ code: 'Qnet,v,d', kind: 'd', value: '23.8303', unit: 'MJ/kg' });
    expect(r.meas).toContainEqual({ code: 'St,ad', kind: 'ad', value: '0.62', unit: '%', flag: 'entered' });
    expect(r.meas).toContainEqual({ code: 'SampleMass', kind: 'run', value: '1.0012', unit: 'g' });
  });

  it('labels calorific values with the unit the file declares (2 = cal/g)', () => {
    const f = parseRunCsv(enc(PARR_FINAL.replace(',2,0,1,', ',2,2,1,')));
    expect(f.results[0]!.meas.find((m) => m.code === 'Qgr,v,ad')?.unit).toBe('cal/g');
  });

  it('keeps preliminary and preweigh runs as not final', () => {
    const f = parseRunCsv(enc(PARR_FINAL.replace(',2,0,1,', ',1,0,1,')));
    expect(f.results[0]!.final).toBe(false);
  });

  it('decodes a GB18030 file with a Chinese sample id (auto-detected)', () => {
    const f = parseRunCsv(GB_PARR);
    expect(f.encoding).toBe('gb18030');
    expect(f.results[0]!.sampleId).toBe('煤样-甲01');
    expect(toHex(f.sha256)).toBe(toHex(sha256(GB_PARR)));
  });

  describe('when rows or files fail their checks', () => {
    it('rejects a row with an unknown Units code (COAL_BAD_UNITS) and keeps the others', () => {
      const text = PARR_FINAL + PARR_FINAL.split('\r\n')[1]!.replace(',2,0,1,', ',2,9,1,') + '\r\n';
      const f = parseRunCsv(enc(text));
      expect(f.results).toHaveLength(1);
      expect(f.rejected.map((r) => [r.line, r.error.code])).toEqual([[3, 'COAL_BAD_UNITS']]);
    });
    it('rejects a non-decimal value (COAL_BAD_FIELD), a short row (COAL_BAD_FIELD_COUNT) and a bad timestamp (COAL_BAD_FIELD)', () => {
      const row = PARR_FINAL.split('\r\n')[1]!;
      const text = [PARR_HEADER, row.replace('24.1234', '24,1234'), row.split(',').slice(0, 5).join(','), row.replace('03/01/24', '13/01/24')].join('\n');
      const f = parseRunCsv(enc(text));
      expect(f.rejected.map((r) => r.error.code)).toEqual(['COAL_BAD_FIELD_COUNT', 'COAL_BAD_FIELD_COUNT', 'COAL_BAD_FIELD']);
      const f2 = parseRunCsv(enc([PARR_HEADER, row.replace('24.1234', '24.1x')].join('\n')));
      expect(f2.rejected.map((r) => [r.error.code, r.error.where?.field])).toEqual([['COAL_BAD_FIELD', 'HOC']]);
    });
    it('throws COAL_BAD_HEADER for a missing or repeated required column, COAL_OVERSIZE for a large file', () => {
      expect(catchCode(() => parseRunCsv(enc('Timestamp,State\n03/01/24 09:00:00,2\n')))).toBe('COAL_BAD_HEADER');
      expect(catchCode(() => parseRunCsv(enc('SampleID,Sample ID,State,Timestamp\n')))).toBe('COAL_BAD_HEADER');
      expect(catchCode(() => parseRunCsv(enc(''), PARR_6X00_PROFILE))).toBe('COAL_BAD_HEADER');
      expect(catchCode(() => parseRunCsv(enc(PARR_FINAL), PARR_6X00_PROFILE, { maxBytes: 100 }))).toBe('COAL_OVERSIZE');
    });
  });
});

describe('parseRunCsv with a site profile (Chinese headers, audit state)', () => {
  it('decodes a GB18030 export; only 已审核 rows are final', () => {
    const f = parseRunCsv(GB_CN, CN_PROFILE, { encoding: 'gb18030', file: '化验结果.csv' });
    expect(f.rejected).toEqual([]);
    expect(f.results.map((r) => [r.sampleId, r.status, r.final])).toEqual([
      ['HY0001', '已审核', true],
      ['HY0002', '未审核', false],
    ]);
    expect(f.results[0]!.meas).toEqual([
      { code: 'AssayCode', kind: 'id', value: 'HY0001' },
      { code: 'AuditState', kind: 'run', value: '已审核' },
      { code: 'AssayTime', kind: 'run', value: '2024-03-01 10:20:00' },
      { code: 'Qgr,v,ad', kind: 'ad', value: '23.456', unit: 'MJ/kg' },
      { code: 'St,ad', kind: 'ad', value: '0.82', unit: '%' },
    ]);
    expect(f.results[0]!.time).toBe(Date.parse('2024-03-01T10:20:00+08:00'));
  });
});
