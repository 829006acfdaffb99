/**
 * Ingest's local HTTP endpoint (127.0.0.1 by default): health, Prometheus metrics, enrolment while the service
 * holds the store, evidence export, and the proof API by frame hash (issue #5 item 8).
 *
 *   GET  /health                          200 {status:"ok", ...stats}
 *   GET  /metrics                         Prometheus text format 0.0.4
 *   POST /enrol          body: enrolment record JSON        200 {enrolled: deviceId} | 400/409 {code, error}
 *   GET  /devices/<id>/head               {deviceId, seq, digest (hex)}
 *   GET  /devices/<id>/forks              {deviceId, forks: [{seq, receivedAt}]}
 *   GET  /bundle?device=ID&first=N&last=M FORMAT.md §7 evidence bundle | 404/409 {code, error}
 *   GET  /frames/<sha256 hex>             {frameSha256, readings: [{deviceId, seq}], bundles: [...]}
 *   POST /frames         body: the raw frame bytes           same, for SHA-256(body)
 *   POST /flush                           cuts and anchors every pending leaf now; {batches, anchored}
 *   GET  /verify                          the officer's verifier page (dist/stele-verify.html, npm run build:web)
 *
 * No authentication: it binds to 127.0.0.1 and is for the operator on the same host (as a LevelDB store can be
 * opened by one process only, this is how other local tools reach a running ingest). Bodies are capped at 64 KiB.
 */
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromHex, toHex } from '@stele/core/bytes.ts';
import { SteleError } from '@stele/core/errors.ts';
import { sha256 } from '@stele/core/hash.ts';
import type { EnrolmentRecord } from '@stele/device';
import { toLogFn, type Logger } from '../log.ts';
import type { IngestService } from '../service.ts';

export interface IngestHttpOptions {
  service: IngestService;
  /** Default 0 (a free port). */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  log?: Logger;
  /** The verifier page served at GET /verify. Default: dist/stele-verify.html of this checkout. */
  verifierPagePath?: string;
}

/** Where `npm run build:web` writes the verifier page. */
export const DEFAULT_VERIFIER_PAGE = resolve(dirname(fileURLToPath(import.meta.url)), '../../../dist/stele-verify.html');

export interface IngestHttp {
  port: number;
  url: string;
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 64 * 1024;

class HttpProblem extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const STATUS_OF_CODE: Record<string, number> = {
  INGEST_NOT_FOUND: 404,
  INGEST_UNKNOWN_DEVICE: 404,
  INGEST_NOT_ANCHORED: 409,
  INGEST_ENROL_ERROR: 400,
  INGEST_ENROL_CONFLICT: 409,
  INGEST_STOPPED: 503,
};

export async function startIngestHttp(options: IngestHttpOptions): Promise<IngestHttp> {
  const { service } = options;
  const log = toLogFn(options.log);
  const started = Date.now();
  const server = http.createServer((req, res) => {
    handle(req)
      .then(({ status, body, type }) => {
        // nosniff: the page is served as what it is; its own CSP meta limits it to the officer's RPC look-up.
        res.writeHead(status, { 'content-type': type ?? 'application/json', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
        res.end(typeof body === 'string' ? body : `${JSON.stringify(body)}\n`);
      })
      .catch((err: unknown) => {
        const p =
          err instanceof HttpProblem
            ? err
            : err instanceof SteleError
              ? new HttpProblem(STATUS_OF_CODE[err.code] ?? 500, err.code, err.message)
              : err instanceof RangeError || err instanceof TypeError
                ? new HttpProblem(400, 'HTTP_BAD_REQUEST', err.message)
                : new HttpProblem(500, 'HTTP_INTERNAL', (err as Error)?.message ?? String(err));
        if (p.status >= 500) log('error', 'http request failed', { url: req.url, code: p.code, err: p.message });
        res.writeHead(p.status, { 'content-type': 'application/json' });
        res.end(`${JSON.stringify({ code: p.code, error: p.message })}\n`);
      });
  });

  const pagePath = options.verifierPagePath ?? DEFAULT_VERIFIER_PAGE;
  async function verifierPage(): Promise<string> {
    try {
      return await readFile(pagePath, 'utf8');
    } catch {
      throw new HttpProblem(404, 'HTTP_NOT_FOUND', `the verifier page is not built (${pagePath}): run npm run build:web`);
    }
  }

  async function handle(req: http.IncomingMessage): Promise<{ status: number; body: unknown; type?: string }> {
    const url = new URL(req.url ?? '/', 'http://local');
    const parts = url.pathname.split('/').filter((x) => x !== '').map(decodeURIComponent);
    const method = req.method ?? 'GET';
    if (method === 'GET' && url.pathname === '/health') {
      return { status: 200, body: { status: 'ok', uptimeS: Math.round((Date.now() - started) / 1000), ...service.stats() } };
    }
    if (method === 'GET' && url.pathname === '/verify') return { status: 200, body: await verifierPage(), type: 'text/html; charset=utf-8' };
    if (method === 'GET' && url.pathname === '/metrics') return { status: 200, body: metrics(service), type: 'text/plain; version=0.0.4' };
    if (method === 'POST' && url.pathname === '/enrol') {
      const record = JSON.parse(new TextDecoder().decode(await readBody(req))) as EnrolmentRecord;
      await service.enrol(record);
      return { status: 200, body: { enrolled: record.deviceId } };
    }
    if (method === 'POST' && url.pathname === '/flush') {
      await service.flush();
      const s = service.stats();
      return { status: 200, body: { batches: s.batches, anchored: s.anchored } };
    }
    if (method === 'GET' && parts[0] === 'devices' && parts.length === 3 && parts[2] === 'head') {
      const head = service.head(parts[1]!);
      return { status: 200, body: { deviceId: parts[1], seq: head.seq, digest: toHex(head.digest) } };
    }
    if (method === 'GET' && parts[0] === 'devices' && parts.length === 3 && parts[2] === 'forks') {
      const forks = await service.forks(parts[1]!);
      return { status: 200, body: { deviceId: parts[1], forks: forks.map((f) => ({ seq: f.seq, receivedAt: f.receivedAt })) } };
    }
    if (method === 'GET' && url.pathname === '/bundle') {
      const device = url.searchParams.get('device');
      const first = Number(url.searchParams.get('first'));
      const last = Number(url.searchParams.get('last') ?? first);
      if (device === null || device === '') throw new HttpProblem(400, 'HTTP_BAD_REQUEST', 'device is required');
      return { status: 200, body: await service.exportBundle(device, first, last) };
    }
    if (parts[0] === 'frames' && ((method === 'GET' && parts.length === 2) || (method === 'POST' && parts.length === 1))) {
      let digest: Uint8Array;
      if (method === 'POST') digest = sha256(await readBody(req));
      else {
        if (!/^[0-9a-fA-F]{64}$/.test(parts[1]!)) throw new HttpProblem(400, 'HTTP_BAD_REQUEST', 'expected the SHA-256 of the frame as 64 hex digits');
        digest = fromHex(parts[1]!.toLowerCase());
      }
      const readings = await service.findByFrameDigest(digest);
      if (readings.length === 0) throw new HttpProblem(404, 'INGEST_NOT_FOUND', 'no reading names this frame');
      const bundles: unknown[] = [];
      for (const r of readings) {
        try {
          bundles.push(await service.exportBundle(r.deviceId, r.seq, r.seq));
        } catch (err) {
          if (err instanceof SteleError && err.code === 'INGEST_NOT_ANCHORED') bundles.push({ code: err.code, deviceId: r.deviceId, seq: r.seq });
          else throw err;
        }
      }
      return { status: 200, body: { frameSha256: toHex(digest), readings, bundles } };
    }
    throw new HttpProblem(404, 'HTTP_NOT_FOUND', `no route ${method} ${url.pathname}`);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `http://${options.host ?? '127.0.0.1'}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function readBody(req: http.IncomingMessage): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpProblem(413, 'HTTP_TOO_LARGE', `body over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

function metrics(service: IngestService): string {
  const s = service.stats();
  const lines = [
    '# HELP stele_ingest_readings_total Statements committed (since the store was created).',
    '# TYPE stele_ingest_readings_total counter',
    `stele_ingest_readings_total ${s.readings}`,
    '# HELP stele_ingest_batches_total Batches cut.',
    '# TYPE stele_ingest_batches_total counter',
    `stele_ingest_batches_total ${s.batches}`,
    '# HELP stele_ingest_anchored_total Batches anchored.',
    '# TYPE stele_ingest_anchored_total counter',
    `stele_ingest_anchored_total ${s.anchored}`,
    '# HELP stele_ingest_duplicates_total Redelivered statements re-acked (this process).',
    '# TYPE stele_ingest_duplicates_total counter',
    `stele_ingest_duplicates_total ${s.duplicates}`,
    '# HELP stele_ingest_pending Leaves committed but not in a batch yet.',
    '# TYPE stele_ingest_pending gauge',
    `stele_ingest_pending ${s.pending}`,
    '# HELP stele_ingest_buffered Statements held in reorder buffers.',
    '# TYPE stele_ingest_buffered gauge',
    `stele_ingest_buffered ${s.buffered}`,
    '# HELP stele_ingest_anchor_failures_total Failed anchor attempts (this process).',
    '# TYPE stele_ingest_anchor_failures_total counter',
    `stele_ingest_anchor_failures_total ${s.anchorFailures}`,
    '# HELP stele_ingest_rejected_total Rejected statements by code (this process).',
    '# TYPE stele_ingest_rejected_total counter',
    ...Object.entries(s.rejected).map(([code, n]) => `stele_ingest_rejected_total{code="${code}"} ${n}`),
  ];
  return `${lines.join('\n')}\n`;
}
