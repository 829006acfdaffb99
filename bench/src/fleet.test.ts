/**
 * Smoke test of the fleet harness (`npm run bench -- fleet`): two shipped gateways with two emulated HJ 212 loggers
 * each, in one gateway process, against real ingest and a real broker for a few seconds. Every frame the
 * instruments sent is at ingest (heads read back over its API) and confirmed stored and anchored at its gateway.
 * It took 50 s at load average ~20 on the 2-core machine, so it is not in `npm test`: `STELE_BENCH=1 npx vitest run
 * bench/src/fleet.test.ts` runs it (vitest.config.ts).
 */
import { describe, expect, it } from 'vitest';
import { formatFleetReport, runFleet } from './fleet.ts';

describe('npm run bench -- fleet (smoke)', () => {
  it('counts every emulated reading at ingest and times it to its stored and anchored confirmation', async () => {
    const report = await runFleet({ gateways: 2, instruments: 2, intervalMs: 1000, durationMs: 4000, processes: 1, drainMs: 30_000, say: () => {} });
    expect(report.sent).toBeGreaterThanOrEqual(8);
    expect(report.mismatched).toEqual([]);
    expect(report.atIngest).toBe(report.sent);
    expect(report.stored).toBe(report.sent);
    expect(report.anchored).toBe(report.sent);
    expect(report.anchoredMs.p50).toBeGreaterThanOrEqual(report.storedMs.p50);
    expect(report.procs.map((p) => p.name)).toEqual(expect.arrayContaining(['worker 1', 'ingest']));
    const text = formatFleetReport(report, 'npm run bench -- fleet --gateways 2', 'test');
    expect(text).toContain('Reading to final anchor');
  }, 60_000);
});
