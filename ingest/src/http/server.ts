/**
 * Ingest's local HTTP endpoint (127.0.0.1 by default): health, Prometheus metrics, enrolment while the service
 * holds the store, evidence export, and the proof API by frame hash (issue #5 item 8).
 *
 *   GET  /health                          200 {status:"ok", ...stats}
 *   GET  /metrics                         Prometheus text format 0.0.4
 *   POST /enrol  [admin] body: the installer's X.enrol.cose (Content-Type application/cose), or an operator's plain
 *                        enrolment record (application/json; the readable X.enrol.json copy is refused)
 *                                                          200 {enrolled, kid, installerKid?} | 400/409 {code, error}
 *   POST /devices/<id>/revoke [admin] body: {reason, kid?}   200 {deviceId, kid, after}
 *   GET  /devices/<id>/head-proof         {deviceId, seq, digest, statement?, receipt?} (base64url): the signed head a
 *                                         reinstalled gateway resumes from (docs/keys.md); 409 until it is in a batch
 *   GET  /devices/<id>/head               {deviceId, seq, digest (hex)}
 *   GET  /devices/<id>/forks              {deviceId, forks: [{seq, receivedAt}]}
 *   GET  /devices/<id>/keys               {deviceId, keys: [{kid (base64url), backend, from, until?, revokedAfter?}]} | 404
 *                                         (read-only: which keys may sign for the device; `stele gateway doctor` asks)
 *   Every bundle route answers the compact form `stele-evidence/2` (FORMAT.md §7.1); `&form=v1` gives the v1
 *   form (§7) for tools from before it; any other form is 400 HTTP_BAD_REQUEST.
 *   GET  /bundle?device=ID&first=N&last=M FORMAT.md §7 evidence bundle | 404/409 {code, error}; at most
 *                                         MAX_BUNDLE_WINDOW (10 000) seqs, 413 HTTP_WINDOW_TOO_LARGE beyond
 *   GET  /devices/<id>/readings?by=device|received&from=T&to=T   statements in a time window (time-window.ts)
 *   GET  /bundle?device=ID&by=device|received&from=T&to=T      the bundle of a time window (a clock hour, a day)
 *   GET  /frames/<sha256 hex>             {frameSha256, readings: [{deviceId, seq}], bundles: [...]}
 *   POST /frames         body: the raw frame bytes           same, for SHA-256(body)
 *   GET  /alerts                          {alerts: [{id, kind, subject, rule, standard, window, values, devices, readings}]}:
 *                                         what the configured rules (`run --rules`) give over the stored readings
 *   GET  /alerts/<id>                     the alert (FORMAT.md §15.7) | 404 INGEST_ALERT_NOT_FOUND / INGEST_NO_RULES
 *   GET  /alerts/<id>/bundle              its evidence bundle (FORMAT.md §15.8), or for an alert over several devices
 *                                         an evidence set (§7.2) | 409 INGEST_NOT_ANCHORED (not yet)
 *   GET  /alerts/<id>/deliveries [admin]  {alertId, deliveries: [{channel, state, attempts, queuedAt, lastAttemptAt?,
 *                                         lastError?, deliveredAt?}]}: its notifications (`run --alert-webhook`, FORMAT.md §15.9)
 *   POST /flush  [admin]                  cuts and anchors every pending leaf now; {batches, anchored}
 *   GET  /verify                          the officer's verifier page (dist/stele-verify.html, npm run build:web)
 *   GET  /openapi.json                    the OpenAPI 3.1 document of every route (openapi.ts: the route table)
 *   GET  /devices, /devices/<id>          enrolled devices; one device with its head and key timeline
 *   GET  /devices/<id>/readings?first=N&last=M   readings by seq window (at most 10 000)
 *   GET  /devices/<id>/readings/<seq>[/proof]     one reading; its proof (a single-entry evidence bundle)
 *   GET  /batches[?before=N&limit=M], /batches/<id>, /anchors   sealed batches and where anchoring stands
 *
 * Only the routes of openapi.ts's ROUTES are answered (404 HTTP_NOT_FOUND "no route" otherwise); their `admin`
 * flag is what needs the admin token.
 *
 * Trust boundary: loopback is not trusted. Any local process, and any web page the operator's browser opens, can
 * send requests to 127.0.0.1 (a DNS-rebinding page even with its own Host name). So:
 *  - the `Host` header must name this endpoint (127.0.0.1, localhost or [::1] with its port, or `allowedHosts`):
 *    421 HTTP_HOST_REFUSED otherwise;
 *  - a request with an `Origin` header (a browser) must come from this endpoint's own origin, and one marked
 *    `Sec-Fetch-Site: cross-site` is refused: 403 HTTP_ORIGIN_REFUSED;
 *  - [admin] endpoints (every state-changing one) need `Authorization: Bearer <admin token>` (a 0600 file,
 *    admin-token.ts): 401 HTTP_UNAUTHORIZED; without a token configured they are disabled (403 HTTP_ADMIN_DISABLED);
 *  - JSON bodies need `Content-Type: application/json`: 415 HTTP_UNSUPPORTED_MEDIA_TYPE (a cross-origin form or
 *    `text/plain` POST cannot be one without a CORS preflight, which this server never grants);
 *  - malformed input is 400 with a code (HTTP_BAD_JSON, HTTP_BAD_REQUEST), never 500; bodies are capped at 64 KiB
 *    (413 HTTP_TOO_LARGE) and every window is bounded (413 HTTP_WINDOW_TOO_LARGE).
 */
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleToJson, evidenceSetToJson, fromBase64Url, fromHex, isEvidenceSetJson, parseBundle, parseEvidenceSet, toBase64Url, toHex, SteleError, sha256 } from '@stele/core';
import type { EnrolmentRecord } from '@stele/core/enrolment';
import { toLogFn, type Logger } from '../log.ts';
import { MAX_BUNDLE_WINDOW, type IngestService } from '../service.ts';
import { checkBearer } from './admin-token.ts';
import { listItem, type AlertBook } from '../alerts.ts';
import { timeWindowRoute } from './time-window.ts';
import { matchRoute, openApiDocument } from './openapi.ts';
import { metricsText } from './metrics.ts';

export interface IngestHttpOptions {
  service: IngestService;
  /** Default 0 (a free port). */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** The admin token (from a 0600 file, loadOrCreateAdminToken). Without it, admin endpoints are disabled. */
  adminToken?: string;
  /** More `Host` header values accepted besides 127.0.0.1:PORT, localhost:PORT and [::1]:PORT (e.g. `ingest.lan:9100`). */
  allowedHosts?: readonly string[];
  log?: Logger;
  /** The verifier page served at GET /verify. Default: dist/stele-verify.html of this checkout. */
  verifierPagePath?: string;
  /** The alert rules' results (`run --rules`); without it the /alerts routes answer 404 INGEST_NO_RULES. */
  alerts?: AlertBook;
  /** This worker's name: the `worker` label of every /metrics series and a field of /health. Default `ingest`. */
  workerId?: string;
}

/**
 * Where `npm run build:web` writes the verifier page: dist/ at the project root, three levels above this module in the
 * sources (ingest/src/http) and two above the `stele` bundle's chunks (cli/dist). Looked for at each request, in this
 * order, so a page built after ingest started is served.
 */
const DEFAULT_VERIFIER_PAGES = ['../../../dist/stele-verify.html', '../../dist/stele-verify.html'].map((p) => resolve(dirname(fileURLToPath(import.meta.url)), p));

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
  INGEST_REVOKE_ERROR: 409,
  INGEST_STOPPED: 503,
  INGEST_WINDOW_TOO_LARGE: 413,
  INGEST_NO_RULES: 404,
  INGEST_ALERT_NOT_FOUND: 404,
  INGEST_ALERT_TOO_WIDE: 409,
  INGEST_ALERT_NOT_REPRODUCIBLE: 409,
  INGEST_STORE_CONFLICT: 409,
  INGEST_STORE_UNAVAILABLE: 503,
};


export async function startIngestHttp(options: IngestHttpOptions): Promise<IngestHttp> {
  const { service } = options;
  const log = toLogFn(options.log);
  const started = Date.now();
  const workerId = options.workerId ?? 'ingest';
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
              ? new HttpProblem(STATUS_OF_CODE[err.code] ?? (err.code === 'INGEST_STORE_ERROR' ? 500 : err.code.startsWith('ANCHOR_') ? 503 : 400), err.code, err.message)
              : err instanceof RangeError || err instanceof TypeError
                ? new HttpProblem(400, 'HTTP_BAD_REQUEST', err.message)
                : new HttpProblem(500, 'HTTP_INTERNAL', (err as Error)?.message ?? String(err));
        if (p.status >= 500) log('error', 'http request failed', { url: req.url, code: p.code, err: p.message });
        res.writeHead(p.status, { 'content-type': 'application/json' });
        res.end(`${JSON.stringify({ code: p.code, error: p.message })}\n`);
      });
  });

  const pagePaths = options.verifierPagePath !== undefined ? [options.verifierPagePath] : DEFAULT_VERIFIER_PAGES;
  async function verifierPage(): Promise<string> {
    for (const path of pagePaths) {
      try {
        return await readFile(path, 'utf8');
      } catch {
        // not there: the next place
      }
    }
    throw new HttpProblem(404, 'HTTP_NOT_FOUND', `the verifier page is not built (${pagePaths.join(' or ')}): run npm run build:web`);
  }

  let allowedHosts = new Set<string>();
  const checkRequest = (req: http.IncomingMessage, admin: boolean): void => {
    const host = req.headers.host;
    if (host === undefined || !allowedHosts.has(host.toLowerCase())) throw new HttpProblem(421, 'HTTP_HOST_REFUSED', 'the Host header does not name this endpoint');
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== `http://${host.toLowerCase()}`) throw new HttpProblem(403, 'HTTP_ORIGIN_REFUSED', 'cross-origin requests are refused');
    if (req.headers['sec-fetch-site'] === 'cross-site') throw new HttpProblem(403, 'HTTP_ORIGIN_REFUSED', 'cross-site requests are refused');
    if (admin) {
      if (options.adminToken === undefined) throw new HttpProblem(403, 'HTTP_ADMIN_DISABLED', 'no admin token is configured: state-changing endpoints are disabled');
      if (!checkBearer(req.headers.authorization, options.adminToken)) throw new HttpProblem(401, 'HTTP_UNAUTHORIZED', 'this endpoint needs Authorization: Bearer <admin token>');
    }
  };

  async function handle(req: http.IncomingMessage): Promise<{ status: number; body: unknown; type?: string }> {
    let url: URL;
    let parts: string[];
    try {
      url = new URL(req.url ?? '/', 'http://local');
      parts = url.pathname.split('/').filter((x) => x !== '').map(decodeURIComponent);
    } catch {
      throw new HttpProblem(400, 'HTTP_BAD_REQUEST', 'the request path does not decode');
    }
    const method = req.method ?? 'GET';
    const route = matchRoute(method, url.pathname);
    checkRequest(req, route?.admin === true);
    // Only what the route table (and so the OpenAPI document) holds is answered.
    if (route === undefined) throw new HttpProblem(404, 'HTTP_NOT_FOUND', `no route ${method} ${url.pathname}`);
    if (method === 'GET' && url.pathname === '/openapi.json') return { status: 200, body: openApiDocument() };
    if (method === 'GET' && url.pathname === '/health') {
      const anchoring = service.anchoring();
      // Degraded (not down: readings are still taken and kept) while the chain does not answer, or for 10 minutes
      // after an anchor was found lost or reorged on chain.
      const recentAlarm = anchoring.lastAlarm !== undefined && Date.now() - Date.parse(anchoring.lastAlarm.at) < 600_000;
      const problems = [
        ...(anchoring.chainDownSinceMs === undefined ? [] : [`chain unreachable for ${Math.round(anchoring.chainDownSinceMs / 1000)} s: ${anchoring.unanchored} batches queued`]),
        ...(recentAlarm ? [`anchor of batch ${anchoring.lastAlarm!.batchId} ${anchoring.lastAlarm!.alarm}; anchored again`] : []),
      ];
      const key = service.ingestKey();
      return {
        status: 200,
        body: {
          status: problems.length === 0 ? 'ok' : 'degraded',
          problems,
          worker: workerId,
          uptimeS: Math.round((Date.now() - started) / 1000),
          ingestKey: { publicKey: toBase64Url(key.publicKey), kid: toBase64Url(key.kid) },
          ...service.stats(),
          anchoring,
        },
      };
    }
    if (method === 'GET' && url.pathname === '/verify') return { status: 200, body: await verifierPage(), type: 'text/html; charset=utf-8' };
    if (method === 'GET' && url.pathname === '/metrics') return { status: 200, body: metricsText(service, workerId), type: 'text/plain; version=0.0.4' };
    if (method === 'POST' && url.pathname === '/enrol') {
      // The installer's countersigned request (COSE_Sign1). Only with its own media type: a cross-origin form cannot
      // send it without a preflight, which this server never grants.
      if ((req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase() === 'application/cose') {
        const r = await service.enrolRequest(await readBody(req));
        return { status: 200, body: { enrolled: r.record.deviceId, kid: r.record.kid, installerKid: r.installerKid } };
      }
      const json = await readJson(req);
      if (typeof json === 'object' && json !== null && ('installer' in json || 'version' in json)) {
        throw new HttpProblem(400, 'INGEST_ENROL_ERROR', 'this is the readable X.enrol.json copy (not signed): send the X.enrol.cose file (Content-Type application/cose)');
      }
      const record = enrolmentRecordOf(json);
      await service.enrol(record);
      return { status: 200, body: { enrolled: record.deviceId, kid: record.kid } };
    }
    if (method === 'POST' && parts[0] === 'devices' && parts.length === 3 && parts[2] === 'revoke') {
      const req0 = (await readJson(req)) as { reason?: unknown; kid?: unknown } | null;
      if (typeof req0 !== 'object' || req0 === null || typeof req0.reason !== 'string' || req0.reason.trim() === '' || req0.reason.length > 256) {
        throw new HttpProblem(400, 'HTTP_BAD_REQUEST', 'the body must be {reason: text of 1..256 characters, kid?}');
      }
      let kid: Uint8Array | undefined;
      if (req0.kid !== undefined) {
        if (typeof req0.kid !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(req0.kid)) throw new HttpProblem(400, 'HTTP_BAD_REQUEST', 'kid must be a base64url key id');
        kid = fromBase64Url(req0.kid);
      }
      const r = await service.revoke(parts[1]!, { reason: req0.reason, ...(kid === undefined ? {} : { kid }) });
      return { status: 200, body: { deviceId: parts[1], kid: toBase64Url(r.kid), after: r.after } };
    }
    if (method === 'GET' && parts[0] === 'devices' && parts.length === 3 && parts[2] === 'head-proof') {
      const p = await service.headProof(parts[1]!);
      return {
        status: 200,
        body: {
          deviceId: parts[1],
          seq: p.seq,
          digest: toBase64Url(p.digest),
          ...(p.statement === undefined ? {} : { statement: toBase64Url(p.statement) }),
          ...(p.receipt === undefined ? {} : { receipt: toBase64Url(p.receipt) }),
        },
      };
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
    if (method === 'GET' && parts[0] === 'devices' && parts.length === 3 && parts[2] === 'keys') {
      const keys = service.keys(parts[1]!);
      if (keys === undefined) throw new HttpProblem(404, 'INGEST_UNKNOWN_DEVICE', 'no such enrolled device');
      return {
        status: 200,
        body: {
          deviceId: keys.deviceId,
          keys: keys.keys.map((k) => ({
            kid: toBase64Url(k.kid),
            backend: k.backend,
            from: k.from,
            ...(k.until === undefined ? {} : { until: k.until }),
            ...(k.revokedAfter === undefined ? {} : { revokedAfter: k.revokedAfter }),
          })),
        },
      };
    }
    if (method === 'GET' && parts[0] === 'devices' && parts.length === 3 && parts[2] === 'forks') {
      const forks = await service.forks(parts[1]!);
      return { status: 200, body: { deviceId: parts[1], forks: forks.map((f) => ({ seq: f.seq, receivedAt: f.receivedAt })) } };
    }
    const more = await readRoutes(service, method, parts, url);
    if (more !== undefined) return more;
    const form = bundleForm(url);
    const byTime = await timeWindowRoute(service, method, parts, url); // readings and bundles by time (time-window.ts)
    if (byTime !== undefined) return url.pathname === '/bundle' ? { ...byTime, body: inForm(byTime.body, form) } : byTime;
    if (method === 'GET' && url.pathname === '/bundle') {
      const device = url.searchParams.get('device');
      if (device === null || device === '') throw new HttpProblem(400, 'HTTP_BAD_REQUEST', 'device is required');
      const first = seqParam(url.searchParams.get('first'), 'first');
      const last = url.searchParams.has('last') ? seqParam(url.searchParams.get('last'), 'last') : first;
      if (last < first) throw new HttpProblem(400, 'HTTP_BAD_REQUEST', 'last must be >= first');
      // refused before anything is read or allocated: the window is a number the client wrote
      if (last - first + 1 > MAX_BUNDLE_WINDOW) throw new HttpProblem(413, 'HTTP_WINDOW_TOO_LARGE', `a bundle holds at most ${MAX_BUNDLE_WINDOW} seqs; ask for several windows`);
      return { status: 200, body: inForm(await service.exportBundle(device, first, last), form) };
    }
    if (method === 'GET' && parts[0] === 'alerts' && parts.length <= 3) {
      const book = options.alerts;
      if (book === undefined) throw new HttpProblem(404, 'INGEST_NO_RULES', 'ingest runs without alert rules (stele ingest run --rules FILE)');
      if (parts.length === 1) return { status: 200, body: { alerts: (await book.alerts()).map(listItem) } };
      const id = parts[1]!;
      if (!/^[0-9a-f]{64}$/.test(id)) throw new HttpProblem(400, 'HTTP_BAD_REQUEST', 'an alert id is 64 lowercase hex digits');
      if (parts.length === 2) return { status: 200, body: await book.alert(id) };
      if (parts[2] === 'bundle') return { status: 200, body: inForm(await book.bundle(id), form) };
      if (parts[2] === 'deliveries') {
        // the records outlive the alert's view (an alert beyond maxReadingsPerDevice): read by id, 404 when none
        const rows = await service.alertDeliveryStore().listAlertDeliveries(id);
        if (rows.length === 0) throw new HttpProblem(404, 'INGEST_NOT_FOUND', 'no notification of this alert is recorded (ingest runs without --alert-webhook / --alert-mqtt, or the alert is new)');
        return { status: 200, body: { alertId: id, deliveries: rows.map(({ alertId: _a, body: _b, ...rest }) => rest) } };
      }
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
          bundles.push(inForm(await service.exportBundle(r.deviceId, r.seq, r.seq), form));
        } catch (err) {
          if (err instanceof SteleError && err.code === 'INGEST_NOT_ANCHORED') bundles.push({ code: err.code, deviceId: r.deviceId, seq: r.seq });
          else throw err;
        }
      }
      return { status: 200, body: { frameSha256: toHex(digest), readings, bundles } };
    }
    throw new HttpProblem(404, 'HTTP_NOT_FOUND', `no route ${method} ${url.pathname}`);
  }

  /** `?form=v1|v2` of a bundle route; default v2 (FORMAT.md §7.1). */
  function bundleForm(url: URL): 1 | 2 {
    const f = url.searchParams.get('form');
    if (f === null || f === 'v2') return 2;
    if (f === 'v1') return 1;
    throw new HttpProblem(400, 'HTTP_BAD_REQUEST', 'form is v1 or v2 (default v2, FORMAT.md §7.1)');
  }

  /** A bundle as the service exports it (v1 JSON, §7) in the asked form. */
  function inForm(body: unknown, form: 1 | 2): unknown {
    if (form === 1) return body;
    if (isEvidenceSetJson(body)) return evidenceSetToJson(parseEvidenceSet(body), { form: 2 });
    return bundleToJson(parseBundle(body), { form: 2 });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  allowedHosts = new Set([`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, ...(options.allowedHosts ?? []).map((h) => h.toLowerCase())]);
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

/** A seq from the query: decimal digits only, 1..2^53-1 (400 HTTP_BAD_REQUEST otherwise). */
function seqParam(text: string | null, name: string): number {
  if (text === null || !/^[1-9][0-9]{0,15}$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new HttpProblem(400, 'HTTP_BAD_REQUEST', `${name} must be an integer in 1..2^53-1`);
  }
  return Number(text);
}

/** The JSON body of a request that must be `application/json` (415 otherwise, 400 HTTP_BAD_JSON when it does not parse). */
async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') throw new HttpProblem(415, 'HTTP_UNSUPPORTED_MEDIA_TYPE', 'the body must be Content-Type: application/json');
  const text = new TextDecoder('utf-8', { fatal: true });
  try {
    return JSON.parse(text.decode(await readBody(req)));
  } catch (e) {
    if (e instanceof HttpProblem) throw e;
    throw new HttpProblem(400, 'HTTP_BAD_JSON', 'the body is not JSON (UTF-8)');
  }
}

/** The fields of an enrolment record, typed (their content is checked by ingest: INGEST_ENROL_ERROR). */
function enrolmentRecordOf(v: unknown): EnrolmentRecord {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new HttpProblem(400, 'HTTP_BAD_REQUEST', 'the body must be an enrolment record object');
  const o = v as Record<string, unknown>;
  for (const k of ['deviceId', 'publicKey', 'kid', 'keyBackend', 'enrolledAt']) {
    if (typeof o[k] !== 'string') throw new HttpProblem(400, 'HTTP_BAD_REQUEST', `enrolment record field ${k} must be a string`);
  }
  if (o['site'] !== undefined && typeof o['site'] !== 'string') throw new HttpProblem(400, 'HTTP_BAD_REQUEST', 'enrolment record field site must be a string');
  return o as unknown as EnrolmentRecord;
}

async function readBody(req: http.IncomingMessage): Promise<Uint8Array> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) throw new HttpProblem(413, 'HTTP_TOO_LARGE', `body over ${MAX_BODY_BYTES} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpProblem(413, 'HTTP_TOO_LARGE', `body over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

/**
 * Devices, readings by seq, the proof of one reading, batches and anchors (issue #11 item 5); undefined when the
 * request is not one of them.
 */
async function readRoutes(service: IngestService, method: string, parts: string[], url: URL): Promise<{ status: number; body: unknown } | undefined> {
  if (method !== 'GET') return undefined;
  if (parts[0] === 'devices' && parts.length === 1) {
    const devices = [];
    for (const id of service.deviceIds().sort()) {
      const row = await service.device(id);
      if (row === undefined) continue;
      devices.push({ ...deviceJson(row.record), head: service.head(id).seq });
    }
    return { status: 200, body: { devices } };
  }
  if (parts[0] === 'devices' && parts.length === 2) {
    const row = await service.device(parts[1]!);
    if (row === undefined) throw new HttpProblem(404, 'INGEST_UNKNOWN_DEVICE', 'no such enrolled device');
    const head = service.head(parts[1]!);
    return { status: 200, body: { ...deviceJson(row.record), head: { seq: head.seq, digest: toHex(head.digest) }, keys: keysJson(service, parts[1]!) } };
  }
  if (parts[0] === 'devices' && parts.length === 3 && parts[2] === 'readings' && (url.searchParams.has('first') || url.searchParams.has('last'))) {
    if (url.searchParams.has('from') || url.searchParams.has('to') || url.searchParams.has('by')) {
      throw new HttpProblem(400, 'HTTP_BAD_REQUEST', 'give a seq window (first, last) or a time window (by, from, to), not both');
    }
    const first = seqParam(url.searchParams.get('first'), 'first');
    const last = url.searchParams.has('last') ? seqParam(url.searchParams.get('last'), 'last') : first;
    if (last < first) throw new HttpProblem(400, 'HTTP_BAD_REQUEST', 'last must be >= first');
    if (last - first + 1 > MAX_BUNDLE_WINDOW) throw new HttpProblem(413, 'HTTP_WINDOW_TOO_LARGE', `at most ${MAX_BUNDLE_WINDOW} seqs per request`);
    if ((await service.device(parts[1]!)) === undefined) throw new HttpProblem(404, 'INGEST_UNKNOWN_DEVICE', 'no such enrolled device');
    const rows = await service.storedReadings(parts[1]!, first, last);
    return {
      status: 200,
      body: { deviceId: parts[1], first, last, readings: rows.map((r) => ({ seq: r.seq, receivedAt: new Date(r.receivedAt).toISOString(), full: r.reading !== undefined, inBatch: r.inBatch })) },
    };
  }
  if (parts[0] === 'devices' && (parts.length === 4 || (parts.length === 5 && parts[4] === 'proof')) && parts[2] === 'readings') {
    const seq = seqParam(parts[3]!, 'seq');
    if (parts.length === 5) return { status: 200, body: await service.exportBundle(parts[1]!, seq, seq) };
    const row = await service.entry(parts[1]!, seq);
    if (row === undefined) throw new HttpProblem(404, 'INGEST_NOT_FOUND', 'no such committed reading');
    return {
      status: 200,
      body: {
        deviceId: parts[1],
        seq,
        receivedAt: new Date(row.receivedAt).toISOString(),
        statement: toBase64Url(row.statement),
        ...(row.reading === undefined ? {} : { reading: toBase64Url(row.reading) }),
        ...(row.batchId === undefined ? {} : { batchId: row.batchId, leafIndex: row.leafIndex }),
      },
    };
  }
  if (parts[0] === 'batches' && parts.length === 1) {
    const total = await service.batchTotal();
    const before = url.searchParams.has('before') ? seqParam(url.searchParams.get('before'), 'before') : total + 1;
    const limitText = url.searchParams.get('limit') ?? '100';
    if (!/^[1-9][0-9]{0,3}$/.test(limitText) || Number(limitText) > 1000) throw new HttpProblem(400, 'HTTP_BAD_REQUEST', 'limit must be an integer in 1..1000');
    const batches = [];
    for (let id = Math.min(before - 1, total); id >= 1 && batches.length < Number(limitText); id--) {
      const b = await service.batch(id);
      if (b !== undefined) batches.push(batchJson(b, false));
    }
    return { status: 200, body: { total, batches } };
  }
  if (parts[0] === 'batches' && parts.length === 2) {
    const b = await service.batch(seqParam(parts[1]!, 'batchId'));
    if (b === undefined) throw new HttpProblem(404, 'INGEST_NOT_FOUND', 'no such batch');
    return { status: 200, body: batchJson(b, true) };
  }
  if (parts[0] === 'anchors' && parts.length === 1) {
    const s = service.stats();
    return { status: 200, body: { batches: s.batches, anchored: s.anchored, anchorFailures: s.anchorFailures, anchorsLost: s.anchorsLost, ...service.anchoring() } };
  }
  return undefined;
}

function deviceJson(r: EnrolmentRecord): Record<string, unknown> {
  return { deviceId: r.deviceId, kid: r.kid, publicKey: r.publicKey, keyBackend: r.keyBackend, enrolledAt: r.enrolledAt, ...(r.site === undefined ? {} : { site: r.site }) };
}

function keysJson(service: IngestService, deviceId: string): unknown[] {
  return (service.keys(deviceId)?.keys ?? []).map((k) => ({
    kid: toBase64Url(k.kid),
    backend: k.backend,
    from: k.from,
    ...(k.until === undefined ? {} : { until: k.until }),
    ...(k.revokedAfter === undefined ? {} : { revokedAfter: k.revokedAfter }),
  }));
}

function batchJson(b: NonNullable<Awaited<ReturnType<IngestService['batch']>>>, withLeaves: boolean): Record<string, unknown> {
  return {
    batchId: b.batchId,
    size: b.size,
    root: `0x${toHex(b.root)}`,
    createdAt: new Date(b.createdAt).toISOString(),
    ...(b.anchor === undefined ? {} : { anchor: b.anchor }),
    ...(withLeaves ? { leaves: b.leaves } : {}),
  };
}
