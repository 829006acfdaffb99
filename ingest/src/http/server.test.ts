/**
 * Ingest's HTTP API under attack (issue #8 item 7): admin token, Host and Origin checks, JSON content type,
 * coded 400s for malformed input, bounded windows.
 */
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrolmentOf, testSigner, useIngestStack, type IngestSetup } from '../test-helpers.ts';
import { loadOrCreateAdminToken, readAdminToken } from './admin-token.ts';
import { startIngestHttp, type IngestHttp } from './server.ts';

const stack = useIngestStack('ingest-http');
let dir: string;
let s: IngestSetup;
let api: IngestHttp;
let token: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stele-http-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function start(): Promise<void> {
  s = await stack.setup({ deviceId: `gw-http-${Math.random().toString(16).slice(2, 8)}`, dirPrefix: 'ingest-http' });
  token = await loadOrCreateAdminToken(join(dir, `token-${Math.random()}`));
  api = await startIngestHttp({ service: s.ingest, adminToken: token });
  stack.cleanups.push(() => api.close());
}

/** A raw request (fetch cannot send a forged Host header). */
function request(method: string, path: string, headers: Record<string, string>, body?: string): Promise<{ status: number; json: { code?: string } & Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: api.port, method, path, headers: { host: `127.0.0.1:${api.port}`, ...headers } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const admin = () => ({ authorization: `Bearer ${token}`, 'content-type': 'application/json' });

describe('the admin token file', () => {
  it('is made with mode 0600 when missing, and a world-readable one is refused with INGEST_ADMIN_TOKEN_ERROR', async () => {
    const f = join(dir, 'admin-token');
    const t = await loadOrCreateAdminToken(f);
    expect(t.length).toBeGreaterThanOrEqual(32);
    expect((await stat(f)).mode & 0o777).toBe(0o600);
    expect(await loadOrCreateAdminToken(f)).toBe(t);
    await chmod(f, 0o644);
    await expect(readAdminToken(f)).rejects.toMatchObject({ code: 'INGEST_ADMIN_TOKEN_ERROR' });
    await writeFile(join(dir, 'short'), 'abc\n', { mode: 0o600 });
    await expect(readAdminToken(join(dir, 'short'))).rejects.toMatchObject({ code: 'INGEST_ADMIN_TOKEN_ERROR' });
  });
});

describe('ingest HTTP API', () => {
  it('refuses a cross-origin text/plain POST /enrol (the browser attack) and enrols nothing', async () => {
    await start();
    const record = enrolmentOf(testSigner(), 'gw-evil');
    const r = await request('POST', '/enrol', { origin: 'http://evil.example', 'content-type': 'text/plain' }, JSON.stringify(record));
    expect(r.status).toBe(403);
    expect(r.json.code).toBe('HTTP_ORIGIN_REFUSED');
    // the same without Origin (a local process): no token, so still refused
    expect((await request('POST', '/enrol', { 'content-type': 'text/plain' }, JSON.stringify(record))).json.code).toBe('HTTP_UNAUTHORIZED');
    // with the token but text/plain: refused for its type
    expect((await request('POST', '/enrol', { ...admin(), 'content-type': 'text/plain' }, JSON.stringify(record))).json.code).toBe('HTTP_UNSUPPORTED_MEDIA_TYPE');
    // with the token, from a foreign origin: refused
    expect((await request('POST', '/enrol', { ...admin(), origin: 'http://evil.example' }, JSON.stringify(record))).status).toBe(403);
    // a DNS-rebinding Host
    expect((await request('POST', '/enrol', { ...admin(), host: 'evil.example' }, JSON.stringify(record))).json.code).toBe('HTTP_HOST_REFUSED');
    expect(s.ingest.keys('gw-evil')).toBeUndefined();
    // and the operator's own request goes through
    const ok = await request('POST', '/enrol', admin(), JSON.stringify(record));
    expect(ok).toMatchObject({ status: 200, json: { enrolled: 'gw-evil' } });
    expect((await request('POST', '/flush', { origin: `http://127.0.0.1:${api.port}` })).json.code).toBe('HTTP_UNAUTHORIZED');
  });

  it('answers malformed input with 400 and a code, never 500', async () => {
    await start();
    const cases: [string, string, string | undefined, string][] = [
      ['POST', '/enrol', '{not json', 'HTTP_BAD_JSON'],
      ['POST', '/enrol', '[1,2]', 'HTTP_BAD_REQUEST'],
      ['POST', '/enrol', '{"deviceId": 5}', 'HTTP_BAD_REQUEST'],
      ['POST', '/enrol', JSON.stringify({ ...enrolmentOf(testSigner(), 'gw-x'), publicKey: 'AAAA' }), 'INGEST_ENROL_ERROR'],
      ['POST', '/enrol', JSON.stringify({ ...enrolmentOf(testSigner(), 'gw/+#'), keyBackend: 'software' }), 'INGEST_ENROL_ERROR'],
      ['GET', `/bundle?device=${s.deviceId}&first=abc`, undefined, 'HTTP_BAD_REQUEST'],
      ['GET', `/bundle?device=${s.deviceId}&first=1e3&last=2`, undefined, 'HTTP_BAD_REQUEST'],
      ['GET', `/bundle?device=${s.deviceId}&first=5&last=2`, undefined, 'HTTP_BAD_REQUEST'],
      ['GET', `/bundle?device=${s.deviceId}&first=1&last=99999999999999999`, undefined, 'HTTP_BAD_REQUEST'],
      ['GET', '/devices/%E0%A4%A/head', undefined, 'HTTP_BAD_REQUEST'],
    ];
    for (const [method, path, body, code] of cases) {
      const r = await request(method, path, method === 'POST' ? admin() : {}, body);
      expect({ path, body, status: r.status, code: r.json.code }).toEqual({ path, body, status: 400, code });
    }
  });

  it('refuses a huge /bundle window with 413 within 100 ms, without growing memory', async () => {
    await start();
    const rss = process.memoryUsage().rss;
    const t0 = performance.now();
    const r = await request('GET', `/bundle?device=${s.deviceId}&first=1&last=9007199254740991`, {});
    const ms = performance.now() - t0;
    expect(r.status).toBe(413);
    expect(r.json.code).toBe('HTTP_WINDOW_TOO_LARGE');
    expect(ms).toBeLessThan(100);
    expect(process.memoryUsage().rss - rss).toBeLessThan(20 * 1024 * 1024);
    // the service refuses it too, whoever calls it
    await expect(s.ingest.exportBundle(s.deviceId, 1, 2 ** 53 - 1)).rejects.toMatchObject({ code: 'INGEST_WINDOW_TOO_LARGE' });
    // a window within the bound but with nothing stored is 404, read with one bounded iterator
    await s.ingest.flush(); // the enrolment statement anchored, so only the missing readings speak
    expect((await request('GET', `/bundle?device=${s.deviceId}&first=1&last=10000`, {})).json.code).toBe('INGEST_NOT_FOUND');
  });

  it('publishes the ingest public key on /health (what gateways pin)', async () => {
    await start();
    const r = await request('GET', '/health', {});
    expect(r.json['ingestKey']).toMatchObject({ publicKey: Buffer.from(s.ingestKey.publicKey).toString('base64url') });
  });
});
