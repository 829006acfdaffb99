import { describe, expect, it } from 'vitest';
import { InFlightLimit } from './limit.ts';

describe('InFlightLimit', () => {
  it('never runs more than max at once, runs every one, in the order given', async () => {
    const limit = new InFlightLimit(3);
    let now = 0;
    let most = 0;
    const order: number[] = [];
    const gates: (() => void)[] = [];
    const runs = Array.from({ length: 2000 }, (_, i) =>
      limit.run(async () => {
        now++;
        most = Math.max(most, now);
        order.push(i);
        await new Promise<void>((r) => gates.push(r));
        now--;
        return i;
      }),
    );
    // release the running ones as they start, until all have run
    while (order.length < 2000 || gates.length > 0) {
      await Promise.resolve();
      const g = gates.shift();
      if (g !== undefined) g();
      else await new Promise((r) => setImmediate(r));
    }
    expect(await Promise.all(runs)).toEqual(Array.from({ length: 2000 }, (_, i) => i));
    expect(most).toBe(3);
    expect(order).toEqual(Array.from({ length: 2000 }, (_, i) => i));
    expect(limit.running).toBe(0);
    expect(limit.waiting).toBe(0);
  });

  it('frees the slot of a check that throws', async () => {
    const limit = new InFlightLimit(1);
    await expect(limit.run(async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await limit.run(async () => 7)).toBe(7);
    expect(limit.running).toBe(0);
  });

  it('refuses a bound that is not a positive integer', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) expect(() => new InFlightLimit(bad)).toThrow(RangeError);
  });
});
