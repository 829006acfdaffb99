import { describe, expect, it } from 'vitest';
import { buildTestBundle } from '@stele/core/testing';
import { verifyBundle } from '@stele/core/verify';
import { chooseBucketMs, describeBundle, MAX_BUCKETS } from './series.ts';

describe('chooseBucketMs', () => {
  it('picks the smallest width giving at most MAX_BUCKETS buckets', () => {
    expect(chooseBucketMs(60_000)).toBe(1_000);
    expect(chooseBucketMs(3_600_000)).toBe(60_000);
    expect(chooseBucketMs(86_400_000)).toBe(600_000);
    expect(86_400_000 / chooseBucketMs(86_400_000)).toBeLessThanOrEqual(MAX_BUCKETS);
    // Never narrower than the reading interval: a reading a minute over 20 minutes gets minute buckets.
    expect(chooseBucketMs(20 * 60_000, 60_000)).toBe(60_000);
  });
});

describe('describeBundle', () => {
  it('buckets the values, marks flags and failed readings, and finds gaps by seq', async () => {
    const built = await buildTestBundle({ count: 30, intervalMs: 60_000, flagOf: (s) => (s === 4 ? 'M' : undefined) });
    const bundle = built.bundle;
    bundle.entries = bundle.entries.filter((e) => e.seq !== 10 && e.seq !== 11);
    const verdict = await verifyBundle(bundle);
    const info = describeBundle(bundle, verdict);
    expect(info.gaps).toEqual([{ firstSeq: 10, lastSeq: 11, fromMs: expect.any(Number), toMs: expect.any(Number) }]);
    const series = info.series[0]!;
    expect(series.bucketMs).toBe(60_000);
    expect(series.buckets.reduce((n, b) => n + b.count, 0)).toBe(28);
    expect(series.markers).toContainEqual(expect.objectContaining({ seq: 4, kind: 'M' }));
    // The line breaks at the gap: exactly one bucket before the end is not followed by an adjacent one.
    const starts = new Set(series.buckets.map((b) => b.startMs));
    expect(series.buckets.slice(0, -1).filter((b) => !starts.has(b.endMs))).toHaveLength(1);
  });

  it('keeps the device text as data (the page renders it as text)', async () => {
    const built = await buildTestBundle({ count: 3, deviceId: '<img src=x onerror=alert(1)>' });
    const info = describeBundle(built.bundle, await verifyBundle(built.bundle));
    expect(info.device.deviceId).toBe('<img src=x onerror=alert(1)>');
  });
});
