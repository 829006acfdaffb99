import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { IngestService } from '../service.ts';
import { startIngestHttp, type IngestHttp } from './server.ts';

// GET /verify never touches the service: a bare object stands in for it.
const noService = {} as IngestService;

describe('GET /verify', () => {
  let server: IngestHttp | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await server?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    server = undefined;
    dir = undefined;
  });

  it('serves the verifier page file as HTML', async () => {
    dir = await mkdtemp(join(tmpdir(), 'stele-verify-page-'));
    const page = join(dir, 'stele-verify.html');
    const html = '<!doctype html><title>Stele 证据核验</title>';
    await writeFile(page, html);
    server = await startIngestHttp({ service: noService, verifierPagePath: page });
    const res = await fetch(`${server.url}/verify`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(await res.text()).toBe(html);
  });

  it('answers 404 HTTP_NOT_FOUND naming the build command when the page is not built', async () => {
    server = await startIngestHttp({ service: noService, verifierPagePath: join(tmpdir(), 'stele-no-such-page.html') });
    const res = await fetch(`${server.url}/verify`);
    expect(res.status).toBe(404);
    const body = (await res.json()) as { code: string; error: string };
    expect(body.code).toBe('HTTP_NOT_FOUND');
    expect(body.error).toContain('npm run build:web');
  });
});
