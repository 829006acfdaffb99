import { describe, expect, it } from 'vitest';
import { DiskMonitor, type DiskLevel } from './disk.ts';

function monitor(freeRef: { free: number | Error }) {
  const changes: [DiskLevel, DiskLevel][] = [];
  const m = new DiskMonitor({
    dir: '/data',
    warnAtFreeBytes: 1000_000,
    stopAtFreeBytes: 100_000,
    statfs: async () => {
      if (freeRef.free instanceof Error) throw freeRef.free;
      return { bavail: BigInt(freeRef.free / 1000), bsize: 1000n };
    },
    onChange: (s, prev) => changes.push([prev, s.level]),
  });
  return { m, changes };
}

describe('DiskMonitor', () => {
  it('goes ok -> warn -> stop and back, admitting readings except at stop (refuse-new)', async () => {
    const ref = { free: 5_000_000 as number | Error };
    const { m, changes } = monitor(ref);
    await m.check();
    expect(m.status()).toMatchObject({ level: 'ok', freeBytes: 5_000_000 });
    expect(m.admits()).toBe(true);
    ref.free = 900_000;
    await m.check();
    expect(m.status().level).toBe('warn');
    expect(m.admits()).toBe(true);
    ref.free = 50_000;
    await m.check();
    expect(m.status().level).toBe('stop');
    expect(m.admits()).toBe(false);
    m.refuse();
    m.refuse();
    expect(m.status().refused).toBe(2);
    ref.free = 101_000; // just above the line: stays at stop (hysteresis)
    await m.check();
    expect(m.status().level).toBe('stop');
    ref.free = 200_000;
    await m.check();
    expect(m.status().level).toBe('warn');
    ref.free = 2_000_000;
    await m.check();
    expect(changes).toEqual([
      ['unknown', 'ok'],
      ['ok', 'warn'],
      ['warn', 'stop'],
      ['stop', 'warn'],
      ['warn', 'ok'],
    ]);
  });

  it('a failing statfs is "unknown" and keeps admitting (a monitoring fault does not stop evidence)', async () => {
    const ref = { free: new Error('EIO') as number | Error };
    const { m } = monitor(ref);
    await m.check();
    expect(m.status()).toMatchObject({ level: 'unknown', freeBytes: undefined, error: 'EIO' });
    expect(m.admits()).toBe(true);
  });

  it('refuses thresholds in the wrong order', () => {
    expect(() => new DiskMonitor({ dir: '/d', warnAtFreeBytes: 1, stopAtFreeBytes: 2 })).toThrow(RangeError);
  });
});
