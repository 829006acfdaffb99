import { describe, expect, it } from 'vitest';
import { extendsChain } from './chain-link.ts';
import { GENESIS_PREV } from './reading.ts';

const h = (b: number) => new Uint8Array(32).fill(b);

describe('extendsChain (FORMAT.md §3, §3.1)', () => {
  it('links a statement whose prev is the digest at seq - 1, and GENESIS_PREV before seq 1', () => {
    expect(extendsChain({ prev: h(1) }, { digest: h(1) })).toBe(true);
    expect(extendsChain({ prev: GENESIS_PREV }, { digest: GENESIS_PREV })).toBe(true);
  });

  it('refuses a prev that is another digest, even inside the same batch', () => {
    expect(extendsChain({ prev: h(2), batch: { root: h(9), index: 1 } }, { digest: h(1), batch: { root: h(9), index: 0 } })).toBe(false);
  });

  it('links a hash-only statement (no prev) by the leaf before it in the same signed tree', () => {
    expect(extendsChain({ prev: undefined, batch: { root: h(9), index: 3 } }, { digest: h(1), batch: { root: h(9), index: 2 } })).toBe(true);
  });

  it('refuses a hash-only statement when seq - 1 is not the leaf before it, is in another tree or in none', () => {
    expect(extendsChain({ prev: undefined, batch: { root: h(9), index: 3 } }, { digest: h(1), batch: { root: h(9), index: 1 } })).toBe(false);
    expect(extendsChain({ prev: undefined, batch: { root: h(9), index: 3 } }, { digest: h(1), batch: { root: h(8), index: 2 } })).toBe(false);
    expect(extendsChain({ prev: undefined, batch: { root: h(9), index: 0 } }, { digest: GENESIS_PREV })).toBe(false);
    expect(extendsChain({ prev: undefined }, { digest: h(1) })).toBe(false);
  });
});
