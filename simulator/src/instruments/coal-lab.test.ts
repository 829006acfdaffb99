import { describe, expect, it } from 'vitest';
import { toHex, sha256 } from '@stele/core';
import { checkCustodyEvents } from '@stele/core/alerts';
import { Cal3kStreamDecoder, parseRunCsv, type Cal3kEvent } from '@stele/hardware';
import { CAL3K_SIM_FINAL_STATUS, Cal3kSimulator, ParrCsvSimulator, encodeGb18030, simulateCustodyChain } from './coal-lab.ts';

describe('Cal3kSimulator', () => {
  it('prints records the CAL3K decoder takes, final and not, deterministic for a seed', () => {
    const sim = new Cal3kSimulator({ seed: 5 });
    const recs = [sim.next(), sim.next({ final: false }), sim.next({ sampleId: 'HY-X' })];
    const d = new Cal3kStreamDecoder({ finalStatuses: [CAL3K_SIM_FINAL_STATUS] });
    const evs: Cal3kEvent[] = [];
    for (const r of recs) evs.push(...d.push(r.bytes));
    const results = evs.flatMap((e) => (e.type === 'result' ? [e.result] : []));
    expect(evs.filter((e) => e.type === 'rejected')).toEqual([]);
    expect(results.map((r) => [r.sampleId, r.final])).toEqual([
      [recs[0]!.sampleId, true],
      [recs[1]!.sampleId, false],
      ['HY-X', true],
    ]);
    results.forEach((r, i) => {
      expect(toHex(r.raw)).toBe(toHex(sha256(recs[i]!.record)));
      expect(r.time).toBe(recs[i]!.timeMs);
      expect(r.meas.find((m) => m.code === 'Qgr,v,ad')?.value).toBe(recs[i]!.result);
    });
    expect(new Cal3kSimulator({ seed: 5 }).next().bytes).toEqual(recs[0]!.bytes);
    const bad = new Cal3kStreamDecoder({ finalStatuses: ['4'] }).push(sim.nextBadField());
    expect(bad.map((e) => (e.type === 'rejected' ? e.error.code : e.type))).toEqual(['COAL_BAD_FIELD']);
  });
});

describe('ParrCsvSimulator', () => {
  it('writes run files (UTF-8 and GB18030) that the Parr profile decodes', () => {
    const sim = new ParrCsvSimulator({ seed: 9 });
    const utf = sim.runFile({ rows: 3 });
    const f1 = parseRunCsv(utf.bytes, undefined, { file: utf.name });
    expect(f1.rejected).toEqual([]);
    expect(f1.results.map((r) => r.meas.find((m) => m.code === 'Qgr,v,ad')?.value)).toEqual(utf.hoc);
    expect(utf.name).toMatch(/\.det\.finl\.csv$/);

    const gb = sim.runFile({ sampleId: '煤样-甲', encoding: 'gb18030', units: 2 });
    const f2 = parseRunCsv(gb.bytes);
    expect(f2.encoding).toBe('gb18030');
    expect(f2.results[0]!.sampleId).toBe('煤样-甲');
    expect(f2.results[0]!.meas.find((m) => m.code === 'Qgr,v,ad')?.unit).toBe('cal/g');

    const prel = sim.runFile({ state: 1 });
    expect(parseRunCsv(prel.bytes).results[0]!.final).toBe(false);
  });

  it('encodes GB18030 as glibc iconv 2.36 does (煤样 -> c3 ba d1 f9)', () => {
    expect(toHex(encodeGb18030('煤样,A'))).toBe('c3bad1f92c41');
    expect(() => encodeGb18030('😀')).toThrow(RangeError);
  });
});

describe('simulateCustodyChain', () => {
  it('produces a chain that checks clean and re-links assay -> batch', () => {
    const c = simulateCustodyChain({ seed: 2, batch: 'RC-1' });
    const r = checkCustodyEvents(c.events);
    expect(r.issues).toEqual([]);
    expect(r.links[0]).toMatchObject({ assayCode: c.assayCode, preparationCode: c.preparationCode, samplingCode: c.samplingCode, batch: 'RC-1' });
  });
});
