import { describe, expect, it } from 'vitest';
import { concatBytes, fromHex } from './bytes.ts';
import { decodeCbor, encodeCbor } from './cbor.ts';
import { sha256 } from './hash.ts';
import { digestOf as d, sampleReading } from './cose/test-helpers.ts';
import { decodeReading, encodeReading, GENESIS_PREV, readingDigest, type Reading } from './reading.ts';

/** A CBOR map with its entries in the given order (to build non-deterministic encodings on purpose). */
function mapInOrder(entries: [string, unknown][]): Uint8Array {
  if (entries.length > 23) throw new RangeError('test helper: small maps only');
  return concatBytes(new Uint8Array([0xa0 + entries.length]), ...entries.map(([k, v]) => concatBytes(encodeCbor(k), encodeCbor(v))));
}

/** The reading's CBOR model as [key, value] pairs, sorted the deterministic way. */
function entriesOf(reading: Reading): [string, unknown][] {
  const m = decodeCbor(encodeReading(reading)) as Map<string, unknown>;
  return [...m.entries()];
}

/** Re-encodes a reading after editing its decoded model (keys sorted by encodeCbor). */
function edited(edit: (m: Map<string, unknown>) => void, base: Reading = sampleReading()): Uint8Array {
  const m = decodeCbor(encodeReading(base)) as Map<string, unknown>;
  edit(m);
  return encodeCbor(m);
}

const expectReject = (bytes: Uint8Array, field?: string): void => {
  let error: unknown;
  try {
    decodeReading(bytes);
  } catch (e) {
    error = e;
  }
  expect(error).toMatchObject({ code: 'READING_FORMAT_ERROR' });
  if (field !== undefined) expect((error as { where: { field: string } }).where.field).toBe(field);
};

describe('encodeReading / decodeReading', () => {
  it('round-trips a reading with every optional key', () => {
    const r = sampleReading({ anchor: d(0x11), seq: 7, prev: d(0x22), itime: '20261120140100', rtype: '2051' });
    expect(decodeReading(encodeReading(r))).toEqual(r);
  });

  it('keeps a reading without itime and rtype byte-identical to the encoding before they existed (FORMAT.md §2.3)', () => {
    const r = sampleReading();
    expect(entriesOf(r).map(([k]) => k)).not.toContain('itime');
    const withTime = entriesOf(sampleReading({ itime: '20261120140100123', rtype: '2011' })).map(([k]) => k);
    expect(withTime).toEqual(['v', 'raw', 'seq', 'meas', 'prev', 'time', 'clock', 'itime', 'rtype', 'device', 'sensor']);
  });

  it('round-trips a reading without optional keys, leaving them out rather than null', () => {
    const r = sampleReading({ meas: [{ code: 'a01012', kind: 'Rtd', value: '25.1' }], raw: [] });
    const bytes = encodeReading(r);
    const back = decodeReading(bytes);
    expect(back).toEqual(r);
    expect('anchor' in back).toBe(false);
    expect('unit' in back.meas[0]!).toBe(false);
  });

  it('ignores undefined optional fields and extra JavaScript properties when encoding', () => {
    const base = sampleReading();
    const withJunk = { ...base, extra: 1, meas: [{ ...base.meas[0]!, unit: undefined, note: 'x' }] } as unknown as Reading;
    const plain = sampleReading({ meas: [{ code: 'a21026', kind: 'Rtd', value: '12.30', flag: 'N' }] });
    expect(encodeReading(withJunk)).toEqual(encodeReading(plain));
  });

  it('sorts keys bytewise by their encoded form (RFC 8949 §4.2.1): shorter keys first', () => {
    expect(entriesOf(sampleReading({ anchor: d(1) })).map(([k]) => k)).toEqual([
      'v', 'raw', 'seq', 'meas', 'prev', 'time', 'clock', 'anchor', 'device', 'sensor',
    ]);
  });

  it('keeps the measured value text exactly as given', () => {
    const r = sampleReading({ meas: [{ code: 'a21026', kind: 'Rtd', value: '012.300E+0' }] });
    expect(decodeReading(encodeReading(r)).meas[0]!.value).toBe('012.300E+0');
  });

  it('readingDigest is SHA-256 of the bytes', () => {
    const bytes = encodeReading(sampleReading());
    expect(readingDigest(bytes)).toEqual(sha256(bytes));
    expect(GENESIS_PREV).toEqual(new Uint8Array(32));
  });

  it('encodeReading throws TypeError for a reading that would not decode', () => {
    const bad: Partial<Reading>[] = [
      { seq: 0 },
      { seq: 1.5 },
      { seq: Number.MAX_SAFE_INTEGER + 1 },
      { prev: new Uint8Array(31) },
      { raw: [new Uint8Array(33)] },
      { time: -1 },
      { device: 7 as unknown as string },
      { anchor: new Uint8Array(0) },
      { v: 2 as 1 },
    ];
    for (const b of bad) expect(() => encodeReading(sampleReading(b))).toThrow(TypeError);
  });
});

describe('decodeReading rejects with READING_FORMAT_ERROR', () => {
  it('when the bytes are not CBOR, or have trailing bytes', () => {
    expectReject(new Uint8Array([0xff]));
    expectReject(concatBytes(encodeReading(sampleReading()), new Uint8Array([0x00])));
    expectReject(new Uint8Array(0));
  });

  it('when the top level is not a map', () => {
    expectReject(encodeCbor([1, 2]), 'reading');
    expectReject(encodeCbor('reading'), 'reading');
  });

  it.each(['v', 'device', 'sensor', 'seq', 'prev', 'time', 'clock', 'meas', 'raw'])('when "%s" is missing', (key) => {
    expectReject(edited((m) => m.delete(key)), `reading.${key}`);
  });

  it('when there is an unknown key, at the top, in clock or in a measurement', () => {
    expectReject(edited((m) => m.set('x', 1)), 'reading');
    expectReject(edited((m) => (m.get('clock') as Map<string, unknown>).set('tz', 'UTC')), 'reading.clock');
    expectReject(edited((m) => ((m.get('meas') as Map<string, unknown>[])[0]!).set('quality', 'ok')), 'reading.meas[0]');
    expectReject(edited((m) => m.set(1 as unknown as string, 1)), 'reading');
  });

  it('when a key is missing in clock or a measurement', () => {
    expectReject(edited((m) => (m.get('clock') as Map<string, unknown>).delete('source')), 'reading.clock.source');
    expectReject(edited((m) => ((m.get('meas') as Map<string, unknown>[])[1]!).delete('value')), 'reading.meas[1].value');
  });

  it.each([
    ['v', 2, 'reading.v'],
    ['v', '1', 'reading.v'],
    ['device', 1, 'reading.device'],
    ['sensor', new Uint8Array(1), 'reading.sensor'],
    ['seq', 0, 'reading.seq'],
    ['seq', -1, 'reading.seq'],
    ['seq', '1', 'reading.seq'],
    ['seq', 2n ** 53n, 'reading.seq'],
    ['seq', 2n ** 64n - 1n, 'reading.seq'],
    ['prev', new Uint8Array(31), 'reading.prev'],
    ['prev', new Uint8Array(33), 'reading.prev'],
    ['prev', '00', 'reading.prev'],
    ['time', -5, 'reading.time'],
    ['time', null, 'reading.time'],
    ['clock', true, 'reading.clock'],
    ['meas', new Map(), 'reading.meas'],
    ['meas', [1], 'reading.meas[0]'],
    ['raw', [new Uint8Array(32), new Uint8Array(16)], 'reading.raw[1]'],
    ['raw', new Uint8Array(32), 'reading.raw'],
    ['anchor', new Uint8Array(31), 'reading.anchor'],
    ['anchor', null, 'reading.anchor'],
    ['itime', 20261120140100, 'reading.itime'],
    ['itime', '2026112014010', 'reading.itime'],
    ['itime', '202611201401001', 'reading.itime'],
    ['itime', '20261320140100', 'reading.itime'],
    ['itime', '20260230140100', 'reading.itime'],
    ['itime', '20261120240100', 'reading.itime'],
    ['itime', '20261120146000', 'reading.itime'],
    ['itime', '20261120140160', 'reading.itime'],
    ['itime', '2026-11-20T14:01', 'reading.itime'],
    ['rtype', '', 'reading.rtype'],
    ['rtype', '20-51', 'reading.rtype'],
    ['rtype', 'x'.repeat(17), 'reading.rtype'],
    ['rtype', 2051, 'reading.rtype'],
  ] as [string, unknown, string][])('when "%s" is %o', (key, value, field) => {
    expectReject(edited((m) => m.set(key, value)), field);
  });

  it('when clock.synced is not a boolean, or a measurement field is not text (null included)', () => {
    expectReject(edited((m) => (m.get('clock') as Map<string, unknown>).set('synced', 1)), 'reading.clock.synced');
    expectReject(edited((m) => ((m.get('meas') as Map<string, unknown>[])[0]!).set('value', 12.3)), 'reading.meas[0].value');
    expectReject(edited((m) => ((m.get('meas') as Map<string, unknown>[])[0]!).set('unit', null)), 'reading.meas[0].unit');
    expectReject(edited((m) => ((m.get('meas') as Map<string, unknown>[])[1]!).set('flag', 78)), 'reading.meas[1].flag');
  });

  it('when the encoding is not deterministic: keys out of order', () => {
    const entries = entriesOf(sampleReading());
    expectReject(mapInOrder([...entries].reverse()), 'reading');
  });

  it('when the encoding is not deterministic: an integer as a float, or a long head', () => {
    // seq = 1 encoded as half-float 1.0 (f9 3c00): the decoder yields 1, the re-encoding differs.
    const entries = entriesOf(sampleReading());
    const idx = entries.findIndex(([k]) => k === 'seq');
    const parts = entries.map(([k, v], i) => concatBytes(encodeCbor(k), i === idx ? fromHex('f93c00') : encodeCbor(v)));
    expectReject(concatBytes(new Uint8Array([0xa0 + entries.length]), ...parts), 'reading');
    // seq = 1 as 18 01 (one-byte argument where the immediate form is shortest)
    const long = entries.map(([k, v], i) => concatBytes(encodeCbor(k), i === idx ? fromHex('1801') : encodeCbor(v)));
    expectReject(concatBytes(new Uint8Array([0xa0 + entries.length]), ...long));
  });

  it('when a map is encoded with indefinite length', () => {
    const entries = entriesOf(sampleReading());
    const parts = entries.map(([k, v]) => concatBytes(encodeCbor(k), encodeCbor(v)));
    expectReject(concatBytes(new Uint8Array([0xbf]), ...parts, new Uint8Array([0xff])));
  });

  it('when a key is duplicated', () => {
    const entries = entriesOf(sampleReading());
    expectReject(mapInOrder([...entries, ['v', 1]]));
  });
});
