import { describe, expect, it } from 'vitest';
import { encodeCbor } from '@stele/core';
import { encRow } from './level-store.ts';

describe('encRow (the LevelDB store rows written for every reading)', () => {
  it('gives the bytes encodeCbor gives for the same map', () => {
    const ints = [0, 1, 23, 24, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, Date.UTC(2026, 11, 4), Number.MAX_SAFE_INTEGER];
    const bytes = [new Uint8Array(0), new Uint8Array(23).fill(1), new Uint8Array(24).fill(2), new Uint8Array(300).fill(3), new Uint8Array(70_000).fill(4)];
    const texts = ['gw-1', 'cems-烟囱-1', 'x'.repeat(300)];
    for (const n of ints) {
      for (const b of bytes) {
        for (const t of texts) {
          const fields = [['seq', n], ['deviceId', t], ['leafHash', b]] as const;
          expect([...encRow(fields)]).toEqual([...encodeCbor({ deviceId: t, seq: n, leafHash: b })]);
          expect([...encRow([['reading', b], ['statement', b], ['receivedAt', n]])]).toEqual([...encodeCbor({ statement: b, receivedAt: n, reading: b })]);
          expect([...encRow([['deviceTime', n], ['receivedAt', n]])]).toEqual([...encodeCbor({ receivedAt: n, deviceTime: n })]);
        }
      }
    }
  });

  it('refuses a number that is not an unsigned integer', () => {
    for (const bad of [-1, 1.5, Number.NaN, 2 ** 53]) expect(() => encRow([['seq', bad]])).toThrow(RangeError);
  });
});
