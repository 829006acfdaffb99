/**
 * What the chart and the data table draw (VERIFIER.md §4.6), computed in the worker from the bundle's readings:
 * per measurement code, buckets of mean/min/max with the valid count, non-N flags and failed readings as markers,
 * and the missing seq ranges as gaps. Device time is untrusted (FORMAT.md §8): it places points on the time axis
 * only; gaps are found by seq.
 */
import type { BundleEntry, EvidenceBundle } from '@stele/core';
import { toHex, decodeReading, type Reading } from '@stele/core';
import type { Verdict } from '@stele/core/verify';
import type { Bucket, BundleInfo, Gap, Marker, Series } from './protocol.ts';

/** Bucket widths tried in order; the first giving at most MAX_BUCKETS buckets is used. */
const BUCKET_LADDER_MS = [1_000, 10_000, 60_000, 300_000, 600_000, 1_800_000, 3_600_000, 21_600_000, 86_400_000];
export const MAX_BUCKETS = 150;
/** Markers drawn per series at most (the table still counts every flag). */
export const MAX_MARKERS = 400;

interface Point {
  seq: number;
  timeMs: number;
  value: number;
  flag: string;
}

/**
 * The bucket width: the smallest of the ladder giving at most MAX_BUCKETS buckets and no narrower than the usual
 * reading interval (`stepMs`, the median), so that consecutive readings fall in adjacent buckets and the line
 * breaks only at real gaps.
 */
export function chooseBucketMs(spanMs: number, stepMs = 0): number {
  for (const w of BUCKET_LADDER_MS) if (spanMs / w <= MAX_BUCKETS && w >= stepMs) return w;
  return Math.max(Math.ceil(spanMs / MAX_BUCKETS), stepMs);
}

/** Median difference between consecutive distinct times (0 for fewer than two). */
function medianStepMs(times: number[]): number {
  const sorted = [...new Set(times)].sort((a, b) => a - b);
  const steps = sorted.slice(1).map((t, i) => t - sorted[i]!);
  if (steps.length === 0) return 0;
  steps.sort((a, b) => a - b);
  return steps[Math.floor(steps.length / 2)]!;
}

/** The bundle facts the page shows, with the chart's series. */
export function describeBundle(bundle: EvidenceBundle, verdict: Verdict, decoded?: ReadonlyMap<BundleEntry, Reading>): BundleInfo {
  const failedSeqs = new Set<number>();
  for (const c of verdict.checks) for (const f of c.failures) if (f.seq !== undefined && c.status === 'fail') failedSeqs.add(f.seq);

  const byCode = new Map<string, { unit: string; kind: string; points: Point[] }>();
  const timeOfSeq = new Map<number, number>();
  for (const entry of bundle.entries) {
    if (entry.reading === undefined) continue;
    let reading;
    try {
      reading = decoded?.get(entry) ?? decodeReading(entry.reading); // the verifier's decode when it made one
    } catch {
      continue; // reported by check 1; nothing to draw
    }
    if (!Number.isFinite(reading.time)) continue;
    timeOfSeq.set(entry.seq, reading.time);
    for (const m of reading.meas) {
      const value = Number(m.value);
      if (!Number.isFinite(value)) continue;
      let s = byCode.get(m.code);
      if (s === undefined) byCode.set(m.code, (s = { unit: m.unit ?? '', kind: m.kind, points: [] }));
      s.points.push({ seq: entry.seq, timeMs: reading.time, value, flag: m.flag ?? 'N' });
    }
  }

  const times = [...timeOfSeq.values()];
  let fromMs = Infinity;
  let toMs = -Infinity;
  for (const t of times) {
    if (t < fromMs) fromMs = t;
    if (t > toMs) toMs = t;
  }
  const hasTime = times.length > 0;
  const series: Series[] = [];
  if (hasTime) {
    const bucketMs = chooseBucketMs(Math.max(1, toMs - fromMs + 1), medianStepMs(times));
    const origin = Math.floor(fromMs / bucketMs) * bucketMs;
    for (const [code, s] of byCode) {
      const buckets = new Map<number, Bucket & { sum: number }>();
      const markers: Marker[] = [];
      let omitted = 0;
      for (const p of s.points) {
        const k = Math.floor((p.timeMs - origin) / bucketMs);
        let b = buckets.get(k);
        if (b === undefined) {
          const startMs = origin + k * bucketMs;
          buckets.set(k, (b = { startMs, endMs: startMs + bucketMs, count: 0, sum: 0, mean: 0, min: Infinity, max: -Infinity, flags: {}, failed: 0 }));
        }
        b.count++;
        b.sum += p.value;
        if (p.value < b.min) b.min = p.value;
        if (p.value > b.max) b.max = p.value;
        if (p.flag !== 'N') b.flags[p.flag] = (b.flags[p.flag] ?? 0) + 1;
        const failed = failedSeqs.has(p.seq);
        if (failed) b.failed++;
        if (failed || p.flag !== 'N') {
          if (markers.length < MAX_MARKERS) markers.push({ seq: p.seq, timeMs: p.timeMs, value: p.value, kind: failed ? 'FAIL' : p.flag });
          else omitted++;
        }
      }
      const list = [...buckets.values()]
        .sort((a, b) => a.startMs - b.startMs)
        .map(({ sum, ...b }) => ({ ...b, mean: sum / b.count }));
      series.push({ code, unit: s.unit, kind: s.kind, bucketMs, buckets: list, markers, markersOmitted: omitted });
    }
  }

  // Missing seqs of the claimed window (the completeness check names them too; here they become bands).
  const present = [...new Set(bundle.entries.map((e) => e.seq))].sort((a, b) => a - b);
  const gaps: Gap[] = [];
  let expect = bundle.window.firstSeq;
  for (const seq of [...present.filter((s) => s >= bundle.window.firstSeq && s <= bundle.window.lastSeq), bundle.window.lastSeq + 1]) {
    if (seq > expect) {
      const gap: Gap = { firstSeq: expect, lastSeq: seq - 1 };
      const before = timeOfSeq.get(expect - 1);
      const after = timeOfSeq.get(seq);
      if (before !== undefined) gap.fromMs = before;
      if (after !== undefined) gap.toMs = after;
      gaps.push(gap);
    }
    expect = seq + 1;
  }

  const info: BundleInfo = {
    createdAt: bundle.createdAt,
    device: {
      deviceId: bundle.device.deviceId,
      kidHex: toHex(bundle.device.kid),
      keyBackend: bundle.device.keyBackend,
      enrolledAt: bundle.device.enrolledAt,
      ...(bundle.device.site !== undefined ? { site: bundle.device.site } : {}),
    },
    ingest: { issuer: bundle.ingest.issuer, kidHex: toHex(bundle.ingest.kid) },
    window: { ...bundle.window },
    series,
    gaps,
  };
  const limit = alertLimit(bundle.alert);
  if (limit !== undefined) info.limit = limit;
  if (hasTime) info.timeRange = { fromMs, toMs };
  return info;
}

/** A numeric limit of the bundle's alert: `values.limit` (FORMAT.md §15.7: emission alerts), else a top-level `limit`. */
function alertLimit(alert: unknown): number | undefined {
  if (typeof alert !== 'object' || alert === null) return undefined;
  const values = (alert as Record<string, unknown>).values;
  const fromValues = typeof values === 'object' && values !== null ? (values as Record<string, unknown>).limit ?? (values as Record<string, unknown>).high : undefined;
  const v = fromValues ?? (alert as Record<string, unknown>).limit;
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : Number.NaN;
  return Number.isFinite(n) ? n : undefined;
}
