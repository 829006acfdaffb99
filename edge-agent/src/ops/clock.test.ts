import { describe, expect, it } from 'vitest';
import { ClockMonitor, type ClockProbeResult } from './clock.ts';

function fakeClocks(start = Date.UTC(2026, 5, 1)) {
  const c = { wall: start, mono: 1000 };
  return {
    c,
    /** Both clocks advance together (no jump). */
    tick(ms: number) {
      c.wall += ms;
      c.mono += ms;
    },
    options: { now: () => c.wall, monotonic: () => c.mono },
  };
}

describe('ClockMonitor', () => {
  it('reports synced when the probe says so, and records it in the state', async () => {
    const f = fakeClocks();
    const m = new ClockMonitor({ ...f.options, probe: async () => ({ synced: true, via: 'test' }) });
    await m.check();
    expect(m.state()).toEqual({ synced: true, source: 'ntp' });
    expect(m.status().reason).toBe('ntp');
  });

  it('reports not synchronised, or unknown when nothing can tell', async () => {
    const f = fakeClocks();
    let probe: ClockProbeResult = { synced: false, via: 'test' };
    const m = new ClockMonitor({ ...f.options, probe: async () => probe });
    await m.check();
    expect(m.state()).toEqual({ synced: false, source: 'none' });
    expect(m.status().reason).toBe('not-synchronised');
    probe = { synced: undefined, via: 'none' };
    await m.check();
    expect(m.status()).toMatchObject({ synced: false, reason: 'unknown' });
  });

  it('a date before 2024 means no RTC, whatever the probe says', async () => {
    const f = fakeClocks(Date.UTC(1970, 0, 1, 0, 0, 42));
    const m = new ClockMonitor({ ...f.options, probe: async () => ({ synced: true, via: 'test' }) });
    await m.check();
    expect(m.status()).toMatchObject({ synced: false, reason: 'no-rtc' });
  });

  describe('when the wall clock jumps against the monotonic clock', () => {
    it('marks the clock unsynced at once (the next reading records it) until a later check confirms sync', async () => {
      const f = fakeClocks();
      const m = new ClockMonitor({ ...f.options, probe: async () => ({ synced: true, via: 'test' }), jumpThresholdMs: 2000 });
      await m.check();
      f.tick(1000);
      expect(m.state().synced).toBe(true);
      f.c.wall += 1500; // drift under the threshold: not a jump
      expect(m.state().synced).toBe(true);
      f.c.wall -= 3_600_000; // someone set the clock back an hour
      expect(m.state()).toEqual({ synced: false, source: 'none' });
      expect(m.status()).toMatchObject({ reason: 'jump', jumps: 1, lastJumpMs: -3_600_000 });
      f.tick(10_000);
      expect(m.state().synced).toBe(false); // still: no check since
      await m.check(); // a probe after the jump says synced, and no new jump
      expect(m.state().synced).toBe(true);
    });

    it('stays unsynced while the probe says not synchronised', async () => {
      const f = fakeClocks();
      let synced = false;
      const m = new ClockMonitor({ ...f.options, probe: async () => ({ synced, via: 'test' }) });
      await m.check();
      f.c.wall += 5000;
      await m.check();
      expect(m.status().reason).toBe('jump');
      f.tick(1000);
      await m.check();
      expect(m.status().reason).toBe('jump');
      synced = true;
      await m.check();
      expect(m.status().reason).toBe('ntp');
    });

    it('a forward jump counts too; nothing else depends on wall-clock time', async () => {
      const f = fakeClocks();
      const changes: string[] = [];
      const m = new ClockMonitor({ ...f.options, probe: async () => ({ synced: true, via: 'test' }), onChange: (s) => changes.push(s.reason) });
      await m.check();
      f.c.wall += 86_400_000;
      expect(m.status().lastJumpMs).toBe(86_400_000);
      await m.check();
      expect(changes).toEqual(['ntp', 'jump', 'ntp']);
    });
  });
});
