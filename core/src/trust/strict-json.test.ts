import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../prng.ts';
import { parseStrictJson } from './strict-json.ts';

/** A random JSON value of integers, strings (escapes, non-ASCII), booleans, null, arrays and objects. */
function randomValue(rand: () => number, depth: number): unknown {
  const r = rand();
  if (depth >= 4 || r < 0.3) {
    const k = Math.floor(rand() * 5);
    if (k === 0) return Math.floor(rand() * 2 ** 53);
    if (k === 1) return Array.from({ length: Math.floor(rand() * 8) }, () => String.fromCharCode(Math.floor(rand() * 0x3000))).join('');
    if (k === 2) return rand() < 0.5;
    if (k === 3) return null;
    return 'plain "quoted" \\ \n\t';
  }
  if (r < 0.6) return Array.from({ length: Math.floor(rand() * 4) }, () => randomValue(rand, depth + 1));
  const o: Record<string, unknown> = {};
  for (let i = Math.floor(rand() * 4); i > 0; i--) o[`k${Math.floor(rand() * 1000)}\u00e9`] = randomValue(rand, depth + 1);
  return o;
}

describe('parseStrictJson', () => {
  it('agrees with JSON.parse on valid JSON without fractions or duplicates (500 random documents)', () => {
    const rand = mulberry32(8);
    for (let i = 0; i < 500; i++) {
      const text = JSON.stringify(randomValue(rand, 0), null, i % 2 === 0 ? 2 : undefined);
      expect(parseStrictJson(text)).toEqual(JSON.parse(text));
    }
  });

  it.each([
    ['{"a":1,"a":1}', /duplicate member name/],
    ['{"a":1.5}', /integers in plain digits/],
    ['{"a":1e3}', /integers in plain digits/],
    ['{"a":-1}', /expected a value/],
    ['{"a":01}', /trailing|expected/],
    ['9007199254740992', /above 2\^53 - 1/],
    ['[1,]', /expected a value/],
    ['{"a":1} x', /trailing characters/],
    ['"\u0001"', /control character/],
    ['[[[[[[[[[1]]]]]]]]]', /nesting deeper than 8/],
  ])('refuses %s', (text, message) => {
    expect(() => parseStrictJson(text)).toThrow(message);
  });

  it('bounds the number of values', () => {
    expect(() => parseStrictJson(`[${'1,'.repeat(200)}1]`, { maxValues: 100 })).toThrow(/more than 100 values/);
  });
});
