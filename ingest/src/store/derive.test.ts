import { describe, expect, it } from 'vitest';
import { nextAnchorNonce } from './derive.ts';

describe('nextAnchorNonce', () => {
  it('takes the chain count when nothing is in flight, and the next free one after transactions in flight', () => {
    expect(nextAnchorNonce(0, [])).toBe(0);
    expect(nextAnchorNonce(5, [])).toBe(5);
    expect(nextAnchorNonce(5, [5, 6])).toBe(7);
    expect(nextAnchorNonce(5, [6, 5, 7])).toBe(8);
  });

  it('fills the lowest gap first: transactions left above a gap by a chain that lost blocks do not push new ones past them', () => {
    // The chain came back at nonce 6; anchors signed before the cut hold 9..12 and can never be mined until 6..8 are.
    expect(nextAnchorNonce(6, [9, 10, 11, 12])).toBe(6);
    expect(nextAnchorNonce(6, [6, 9, 10, 11, 12])).toBe(7);
    expect(nextAnchorNonce(6, [6, 7, 8, 9, 10])).toBe(11);
    // nonces below the chain count are spent: never handed out again
    expect(nextAnchorNonce(6, [2, 3])).toBe(6);
  });

  it('refuses a chain count that is not a non-negative integer', () => {
    expect(() => nextAnchorNonce(-1, [])).toThrow(RangeError);
    expect(() => nextAnchorNonce(1.5, [])).toThrow(RangeError);
  });
});
