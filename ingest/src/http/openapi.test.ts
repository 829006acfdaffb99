/**
 * The OpenAPI document against the routes ingest answers (issue #11 item 5): GET /openapi.json is a well-formed
 * OpenAPI 3.1 document; every route it lists is answered (never "no route"), each with a real request through a
 * running ingest; nothing it does not list is answered; every state-changing route needs the admin token.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeChain, useIngestStack, waitFor, type IngestSetup } from '../test-helpers.ts';
import { loadOrCreateAdminToken } from './admin-token.ts';
import { ROUTES } from './openapi.ts';
import { startIngestHttp, type IngestHttp } from './server.ts';

const stack = useIngestStack('ingest-openapi');
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stele-openapi-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  type: string;
  text: string;
}

function request(api: IngestHttp, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: api.port, method, path, headers: { host: `127.0.0.1:${api.port}`, ...headers } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, type: String(res.headers['content-type']), text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const noRoute = (a: Answer): boolean => a.status === 404 && a.text.includes('"HTTP_NOT_FOUND"') && a.text.includes('no route');

describe('GET /openapi.json', () => {
  let s: IngestSetup;
  let api: IngestHttp;
  let token: string;
  /** The stack's per-test cleanups of this setup, run after the whole describe (it serves all three tests). */
  let mine: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    s = await stack.setup({ deviceId: 'gw-openapi', dirPrefix: 'ingest-openapi' });
    token = await loadOrCreateAdminToken(join(dir, 'admin-token'));
    api = await startIngestHttp({ service: s.ingest, adminToken: token, workerId: 'w-openapi' });
    for (const r of await makeChain(s.device, s.deviceId, 3)) await s.gw.publish(r);
    await waitFor(() => s.gw.ackedUpTo === 3, 'three readings confirmed');
    await s.ingest.flush();
    mine = stack.cleanups.splice(0);
  }, 60_000);
  afterAll(async () => {
    await api.close();
    for (const c of mine.reverse()) await c();
  });

  it('is an OpenAPI 3.1 document whose paths and methods are exactly the route table', async () => {
    const a = await request(api, 'GET', '/openapi.json');
    expect(a.status).toBe(200);
    const doc = JSON.parse(a.text) as { openapi: string; info: { title: string }; paths: Record<string, Record<string, { operationId: string; responses: Record<string, unknown>; parameters?: { name: string; in: string }[]; security?: unknown[] }>> };
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info.title).toBe('Stele ingest');
    const documented = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`));
    expect(documented.sort()).toEqual(ROUTES.map((r) => `${r.method} ${r.path}`).sort());
    const ids = new Set<string>();
    for (const [p, ops] of Object.entries(doc.paths)) {
      for (const [m, op] of Object.entries(ops)) {
        expect(ids.has(op.operationId), `${m} ${p} operationId unique`).toBe(false);
        ids.add(op.operationId);
        expect(op.responses['200']).toBeDefined();
        // every {param} of the path is declared as a path parameter
        const names = [...p.matchAll(/\{([^}]+)\}/g)].map((x) => x[1]);
        expect((op.parameters ?? []).filter((x) => x.in === 'path').map((x) => x.name)).toEqual(names);
        // a state-changing route (every POST) needs the admin token, and says so; so do an alert's delivery records
        const route = ROUTES.find((r) => r.path === p && r.method === m.toUpperCase())!;
        expect(route.admin === true, `${m} ${p} admin`).toBe((m === 'post' && p !== '/frames') || p === '/alerts/{alertId}/deliveries');
        expect(op.security !== undefined).toBe(route.admin === true);
      }
    }
  });

  it('every documented route is answered through the running server', async () => {
    const sample: Record<string, string> = { deviceId: s.deviceId, seq: '2', batchId: '1', sha256: 'ab'.repeat(32), alertId: 'cd'.repeat(32) };
    const query: Record<string, string> = { '/bundle': `?device=${s.deviceId}&first=1&last=3`, '/devices/{deviceId}/readings': '?first=1&last=3' };
    const answers: Record<string, Answer> = {};
    for (const r of ROUTES) {
      const path = r.path.replace(/\{([^}]+)\}/g, (_, n: string) => sample[n]!) + (query[r.path] ?? '');
      const headers: Record<string, string> = r.admin === true ? { authorization: `Bearer ${token}`, 'content-type': 'application/json' } : {};
      // POST bodies that change nothing: a revocation without a reason (400), an empty enrolment record (400)
      const a = await request(api, r.method, path, headers, r.method === 'POST' ? (r.path === '/frames' ? 'frame' : '{}') : undefined);
      answers[`${r.method} ${r.path}`] = a;
      expect(noRoute(a), `${r.method} ${path}: ${a.status} ${a.text.slice(0, 200)}`).toBe(false);
      expect(a.status, `${r.method} ${path}: ${a.text.slice(0, 300)}`).toBeLessThan(500);
    }
    // the new read routes answer with what the store holds
    const devices = JSON.parse(answers['GET /devices']!.text) as { devices: { deviceId: string; head: number }[] };
    expect(devices.devices).toContainEqual(expect.objectContaining({ deviceId: s.deviceId, head: 3 }));
    const one = JSON.parse(answers['GET /devices/{deviceId}']!.text) as { head: { seq: number }; keys: unknown[] };
    expect(one.head.seq).toBe(3);
    expect(one.keys).toHaveLength(1);
    const bySeq = JSON.parse(answers['GET /devices/{deviceId}/readings']!.text) as { readings: { seq: number; inBatch: boolean }[] };
    expect(bySeq.readings.map((r) => [r.seq, r.inBatch])).toEqual([[1, true], [2, true], [3, true]]);
    const reading = JSON.parse(answers['GET /devices/{deviceId}/readings/{seq}']!.text) as { seq: number; statement: string; batchId: number };
    expect(reading).toMatchObject({ seq: 2, batchId: 1 });
    const proof = JSON.parse(answers['GET /devices/{deviceId}/readings/{seq}/proof']!.text) as { format: string; window: unknown; entries: unknown[]; batches: { anchor: unknown }[] };
    expect(proof.format).toBe('stele-evidence/1');
    expect(proof.window).toEqual({ firstSeq: 2, lastSeq: 2 });
    expect(proof.entries).toHaveLength(1);
    expect(proof.batches[0]!.anchor).toBeDefined();
    const batch = JSON.parse(answers['GET /batches/{batchId}']!.text) as { batchId: number; leaves: { deviceId: string; seq: number }[]; anchor?: unknown };
    expect(batch.leaves).toContainEqual({ deviceId: s.deviceId, seq: 2 });
    expect(batch.anchor).toBeDefined();
    expect((JSON.parse(answers['GET /batches']!.text) as { total: number }).total).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(answers['GET /anchors']!.text)).toMatchObject({ unanchored: 0 });
    expect(answers['GET /metrics']!.text).toMatch(/^stele_ingest_committed_total\{worker="w-openapi"\} 3$/m);
    expect(answers['GET /metrics']!.text).toMatch(/^stele_ingest_received_total\{worker="w-openapi"\} 3$/m);
    expect(answers['GET /metrics']!.text).toMatch(/^stele_ingest_lag_seconds\{worker="w-openapi"\} 0$/m);
    expect(JSON.parse(answers['GET /health']!.text)).toMatchObject({ worker: 'w-openapi', received: 3, verified: 3, committed: 3 });
  });

  it('nothing undocumented is answered, and admin routes refuse a request without the token', async () => {
    const probes: [string, string][] = [
      ['GET', '/'],
      ['GET', '/enrol'],
      ['GET', '/flush'],
      ['PUT', '/enrol'],
      ['DELETE', `/devices/${s.deviceId}`],
      ['POST', '/health'],
      ['GET', `/devices/${s.deviceId}/revoke`],
      ['GET', `/devices/${s.deviceId}/readings/1/proof/more`],
      ['GET', '/batches/1/leaves'],
      ['GET', '/openapi.yaml'],
      ['GET', '/admin'],
    ];
    for (const [m, p] of probes) {
      const a = await request(api, m, p, { authorization: `Bearer ${token}` });
      expect(noRoute(a), `${m} ${p}: ${a.status} ${a.text}`).toBe(true);
    }
    for (const r of ROUTES.filter((x) => x.admin === true)) {
      const a = await request(api, r.method, r.path.replace('{deviceId}', s.deviceId).replace('{alertId}', 'cd'.repeat(32)), { 'content-type': 'application/json' }, r.method === 'POST' ? '{}' : undefined);
      expect(a.status, `${r.method} ${r.path}`).toBe(401);
      expect(a.text).toContain('HTTP_UNAUTHORIZED');
    }
  });
});
