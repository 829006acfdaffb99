/** Readings and bundles by time window over HTTP (issue #11 item 4), on the embedded (LevelDB) store. */
import { describe, expect, it } from 'vitest';
import { parseBundle } from '@stele/core';
import { makeChain, useIngestStack, waitFor } from '../test-helpers.ts';
import { startIngestHttp } from './server.ts';

const stack = useIngestStack('ingest-time');
/** readingAt's device time: T0 + seq s. */
const T0 = 1_700_000_000_000;

describe('GET /devices/<id>/readings and /bundle by time window', () => {
  it('finds a device hour by device time (readings in full) or receive time (every statement), and exports its bundle', async () => {
    const s = await stack.setup({ deviceId: 'gw-time-1', dirPrefix: 'ingest-time' });
    const api = await startIngestHttp({ service: s.ingest });
    stack.cleanups.push(() => api.close());
    const before = Date.now();
    const chain = await makeChain(s.device, s.deviceId, 10);
    for (const r of chain.slice(0, 7)) await s.gw.publish(r);
    for (const r of chain.slice(7)) await s.gw.publish(r, 'hash-only');
    await waitFor(() => s.gw.ackedUpTo === 10, 'ack 10');
    await s.ingest.flush();
    const after = Date.now() + 1;
    const get = async (path: string) => {
      const res = await fetch(`${api.url}${path}`);
      return { status: res.status, json: (await res.json()) as Record<string, unknown> & { readings?: { seq: number; deviceTime?: string; receivedAt: string }[]; code?: string } };
    };

    const hour = await get(`/devices/gw-time-1/readings?by=device&from=${T0 + 3000}&to=${T0 + 6000}`);
    expect(hour.status).toBe(200);
    expect(hour.json.readings!.map((r) => [r.seq, r.deviceTime])).toEqual([3, 4, 5].map((seq) => [seq, new Date(T0 + seq * 1000).toISOString()]));
    expect(hour.json).toMatchObject({ deviceId: 'gw-time-1', by: 'device', truncated: false });
    // ISO 8601 with an offset means the same instant
    const iso = (ms: number) => new Date(ms + 8 * 3600_000).toISOString().replace('Z', '+08:00');
    const same = await get(`/devices/gw-time-1/readings?by=device&from=${encodeURIComponent(iso(T0 + 3000))}&to=${encodeURIComponent(iso(T0 + 6000))}`);
    expect(same.json.readings).toEqual(hour.json.readings);
    // the hash-only readings 8..10 have no device time: found by receive time only
    expect((await get(`/devices/gw-time-1/readings?by=device&from=${T0}&to=${T0 + 100_000}`)).json.readings!.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    const received = await get(`/devices/gw-time-1/readings?by=received&from=${before}&to=${after}`);
    expect(received.json.readings!.map((r) => r.seq).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(received.json.readings!.filter((r) => r.deviceTime === undefined).map((r) => r.seq)).toEqual([8, 9, 10]);
    const limited = await get(`/devices/gw-time-1/readings?by=received&from=${before}&to=${after}&limit=4`);
    expect(limited.json).toMatchObject({ truncated: true });
    expect(limited.json.readings).toHaveLength(4);

    const bundle = await get(`/bundle?device=gw-time-1&by=device&from=${T0 + 3000}&to=${T0 + 6000}`);
    expect(bundle.status).toBe(200);
    const parsed = parseBundle(bundle.json);
    expect(parsed.window).toEqual({ firstSeq: 3, lastSeq: 5 });
    expect(parsed.entries.map((e) => e.seq)).toEqual([3, 4, 5]);
    const byReceive = parseBundle((await get(`/bundle?device=gw-time-1&by=received&from=${before}&to=${after}`)).json);
    expect(byReceive.window).toEqual({ firstSeq: 1, lastSeq: 10 });

    // the compact form by default (FORMAT.md §7.1), v1 on request: the same statements and receipts
    expect(bundle.json.format).toBe('stele-evidence/2');
    const v1 = await get(`/bundle?device=gw-time-1&by=device&from=${T0 + 3000}&to=${T0 + 6000}&form=v1`);
    expect(v1.json.format).toBe('stele-evidence/1');
    expect(parseBundle(v1.json).entries).toEqual(parsed.entries);
    const bySeq = await get('/bundle?device=gw-time-1&first=1&last=10');
    const bySeqV1 = await get('/bundle?device=gw-time-1&first=1&last=10&form=v1');
    expect([bySeq.json.format, bySeqV1.json.format]).toEqual(['stele-evidence/2', 'stele-evidence/1']);
    expect(JSON.stringify(bySeq.json).length).toBeLessThan(JSON.stringify(bySeqV1.json).length);
    expect(parseBundle(bySeq.json).entries).toEqual(parseBundle(bySeqV1.json).entries);
    expect(await get('/bundle?device=gw-time-1&first=1&last=10&form=v3')).toMatchObject({ status: 400, json: { code: 'HTTP_BAD_REQUEST' } });

    // coded refusals
    expect(await get(`/devices/gw-time-1/readings?by=device&from=2026-12-03T14:00:00&to=2026-12-03T15:00:00Z`)).toMatchObject({ status: 400, json: { code: 'HTTP_BAD_REQUEST' } });
    expect(await get(`/devices/gw-time-1/readings?by=device&from=${T0 + 10}&to=${T0}`)).toMatchObject({ status: 400, json: { code: 'HTTP_BAD_REQUEST' } });
    expect(await get(`/devices/gw-time-1/readings?by=clock&from=${T0}&to=${T0 + 1}`)).toMatchObject({ status: 400, json: { code: 'HTTP_BAD_REQUEST' } });
    expect(await get(`/devices/gw-time-1/readings?from=0&to=${40 * 24 * 3600_000}`)).toMatchObject({ status: 400, json: { code: 'HTTP_BAD_REQUEST' } });
    expect(await get(`/devices/gw-time-1/readings?from=${T0}&to=${T0 + 1}&limit=20000`)).toMatchObject({ status: 400, json: { code: 'HTTP_BAD_REQUEST' } });
    expect(await get(`/devices/nobody/readings?from=${T0}&to=${T0 + 1}`)).toMatchObject({ status: 404, json: { code: 'INGEST_UNKNOWN_DEVICE' } });
    expect(await get(`/bundle?device=gw-time-1&by=device&from=${T0 + 50_000}&to=${T0 + 60_000}`)).toMatchObject({ status: 404, json: { code: 'INGEST_NOT_FOUND' } });
    expect(await get(`/bundle?device=gw-time-1&first=1&from=${T0}&to=${T0 + 1}`)).toMatchObject({ status: 400, json: { code: 'HTTP_BAD_REQUEST' } });
  }, 60_000);
});
