/**
 * Readings by time (issue #11 item 4), for an officer who asks for a clock hour or a day of one device:
 *
 *   GET /devices/<id>/readings?by=device|received&from=T&to=T[&limit=N]
 *       {deviceId, by, from, to, readings: [{seq, receivedAt, deviceTime?}], truncated}
 *   GET /bundle?device=ID&by=device|received&from=T&to=T
 *       FORMAT.md §7 evidence bundle of the seqs from the first to the last statement in the window
 *
 * T is an ISO 8601 time with its offset (2026-12-03T14:00:00+08:00) or ms since the epoch; the window is
 * [from, to), at most 31 days. `by=device` is the reading's own `time` (the gateway clock): only readings sent in
 * full carry one; a hash-only device's readings are found by `by=received` (ingest's clock) only. Both clocks are
 * untrusted for ordering: the bundle is the contiguous seq range, so nothing between its ends is left out.
 */
import type { IngestService } from '../service.ts';
import type { TimeAxis } from '../store/index.ts';

const MAX_WINDOW_MS = 31 * 24 * 3600 * 1000;

export interface TimeWindow {
  by: TimeAxis;
  fromMs: number;
  toMs: number;
}

/** Parses by/from/to; RangeError (400 HTTP_BAD_REQUEST) naming the parameter at fault. */
export function parseTimeWindow(params: URLSearchParams): TimeWindow {
  const by = params.get('by') ?? 'received';
  if (by !== 'device' && by !== 'received') throw new RangeError("by must be 'device' or 'received'");
  const fromMs = timeParam(params.get('from'), 'from');
  const toMs = timeParam(params.get('to'), 'to');
  if (toMs <= fromMs) throw new RangeError('to must be after from');
  if (toMs - fromMs > MAX_WINDOW_MS) throw new RangeError('a time window is at most 31 days; ask for several');
  return { by, fromMs, toMs };
}

function timeParam(text: string | null, name: string): number {
  if (text === null || text === '') throw new RangeError(`${name} is required (ISO 8601 with an offset, or ms since the epoch)`);
  if (/^[0-9]{1,16}$/.test(text)) {
    const n = Number(text);
    if (Number.isSafeInteger(n)) return n;
  }
  // An offset is required: a time without one would silently be the server's zone.
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/.test(text)) {
    const n = Date.parse(text);
    if (Number.isSafeInteger(n) && n >= 0) return n;
  }
  throw new RangeError(`${name} must be an ISO 8601 time with its offset (e.g. 2026-12-03T14:00:00+08:00) or ms since the epoch`);
}

/** The time-window routes; undefined when the request is not one of them. */
export async function timeWindowRoute(service: IngestService, method: string, parts: string[], url: URL): Promise<{ status: number; body: unknown } | undefined> {
  if (method === 'GET' && parts[0] === 'devices' && parts.length === 3 && parts[2] === 'readings') {
    const w = parseTimeWindow(url.searchParams);
    const limitText = url.searchParams.get('limit');
    const limit = limitText === null ? 1000 : Number(limitText);
    if (!/^[1-9][0-9]{0,4}$/.test(limitText ?? '1') || limit > 10_000) throw new RangeError('limit must be an integer in 1..10000');
    const refs = await service.readingsByTime(parts[1]!, w.by, w.fromMs, w.toMs, Math.min(limit + 1, 10_000));
    const truncated = refs.length > limit;
    return {
      status: 200,
      body: {
        deviceId: parts[1],
        by: w.by,
        from: new Date(w.fromMs).toISOString(),
        to: new Date(w.toMs).toISOString(),
        readings: refs.slice(0, limit).map((r) => ({
          seq: r.seq,
          receivedAt: new Date(r.receivedAt).toISOString(),
          ...(r.deviceTime === undefined ? {} : { deviceTime: new Date(r.deviceTime).toISOString() }),
        })),
        truncated,
      },
    };
  }
  if (method === 'GET' && url.pathname === '/bundle' && (url.searchParams.has('from') || url.searchParams.has('to'))) {
    const device = url.searchParams.get('device');
    if (device === null || device === '') throw new RangeError('device is required');
    if (url.searchParams.has('first') || url.searchParams.has('last')) throw new RangeError('give a seq window (first, last) or a time window (from, to), not both');
    const w = parseTimeWindow(url.searchParams);
    return { status: 200, body: await service.exportBundleByTime(device, w.by, w.fromMs, w.toMs) };
  }
  return undefined;
}
