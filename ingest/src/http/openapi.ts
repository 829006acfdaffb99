/**
 * The route table of ingest's HTTP API and its OpenAPI 3.1 document (GET /openapi.json, issue #11 item 5).
 *
 * One table serves both: server.ts answers a request only when a route here matches it (anything else is
 * 404 HTTP_NOT_FOUND "no route ..."), takes `admin` from it (Authorization: Bearer <admin token>), and the document
 * is built from the same rows. openapi.test.ts checks that every route is documented and answered, and that
 * nothing undocumented is answered.
 */

export interface Route {
  method: 'GET' | 'POST';
  /** OpenAPI path template: `{name}` is one path segment. */
  path: string;
  /** State-changing: only with the admin token. */
  admin?: boolean;
  summary: string;
  /** Query parameters (name: description); `required` ones end with ` (required)`. */
  query?: Record<string, string>;
  /** Response media type of a 200 (default application/json). */
  produces?: string;
  /** Request body media types (POST). */
  consumes?: string[];
  /** Non-200 statuses this route answers besides the common ones (400, 403, 404, 421, 500, 503). */
  statuses?: number[];
}

export const ROUTES: readonly Route[] = [
  { method: 'GET', path: '/openapi.json', summary: 'This document.' },
  {
    method: 'GET',
    path: '/health',
    summary: 'Liveness and where ingest stands: status ok|degraded, problems, stats (readings, batches, anchored, rejected by code, pending, queued, ...), anchoring, worker id.',
  },
  { method: 'GET', path: '/metrics', summary: 'Prometheus text format 0.0.4, every series labelled with this worker (`--worker-id`).', produces: 'text/plain; version=0.0.4' },
  { method: 'GET', path: '/verify', summary: "The officer's verifier page (dist/stele-verify.html, npm run build:web).", produces: 'text/html; charset=utf-8' },
  {
    method: 'POST',
    path: '/enrol',
    admin: true,
    summary: "Enrols a device: the installer's countersigned X.enrol.cose (application/cose) or an operator's plain enrolment record (application/json).",
    consumes: ['application/cose', 'application/json'],
    statuses: [401, 409, 413, 415],
  },
  { method: 'POST', path: '/flush', admin: true, summary: 'Cuts every pending leaf into batches and anchors them now: {batches, anchored}.', statuses: [401] },
  { method: 'GET', path: '/devices', summary: 'The enrolled devices: [{deviceId, kid, keyBackend, enrolledAt, site?, head}].' },
  { method: 'GET', path: '/devices/{deviceId}', summary: 'One device: its enrolment record, committed head and key timeline.' },
  {
    method: 'POST',
    path: '/devices/{deviceId}/revoke',
    admin: true,
    summary: "Revokes a device key (default the key in use) after the device's committed head. Body {reason, kid?}.",
    consumes: ['application/json'],
    statuses: [401, 409, 415],
  },
  { method: 'GET', path: '/devices/{deviceId}/head', summary: 'The committed head {deviceId, seq, digest (hex)}.' },
  {
    method: 'GET',
    path: '/devices/{deviceId}/head-proof',
    summary: 'The signed head a reinstalled gateway resumes from (statement and receipt, base64url); 409 until it is in a batch.',
    statuses: [409],
  },
  { method: 'GET', path: '/devices/{deviceId}/keys', summary: 'The key timeline (FORMAT.md §13.5): [{kid, backend, from, until?, revokedAfter?}].' },
  { method: 'GET', path: '/devices/{deviceId}/forks', summary: 'Statements recorded as forks of the device: [{seq, receivedAt}].' },
  {
    method: 'GET',
    path: '/devices/{deviceId}/readings',
    summary: 'Readings by seq window (first, last: at most 10 000) or by time window (by, from, to, limit).',
    query: {
      first: 'first seq of a seq window',
      last: 'last seq of a seq window (default first)',
      by: "time window clock: 'device' (the reading's own time, full readings only) or 'received' (ingest's clock, default)",
      from: 'time window start (ISO 8601 with offset, or ms since the epoch), inclusive',
      to: 'time window end, exclusive (at most 31 days after from)',
      limit: 'time window: most readings returned, 1..10000 (default 1000)',
    },
    statuses: [413],
  },
  { method: 'GET', path: '/devices/{deviceId}/readings/{seq}', summary: 'One committed reading: statement and reading (base64url), receivedAt, its batch when sealed.' },
  {
    method: 'GET',
    path: '/devices/{deviceId}/readings/{seq}/proof',
    summary: 'The proof of one reading: a FORMAT.md §7 evidence bundle of that seq alone (receipt with inclusion path, anchor); 409 until anchored.',
    statuses: [409],
  },
  {
    method: 'GET',
    path: '/bundle',
    summary: 'The FORMAT.md §7 evidence bundle of a seq window (device, first, last) or a time window (device, by, from, to); at most 10 000 seqs.',
    query: {
      device: 'device id (required)',
      first: 'first seq of a seq window',
      last: 'last seq of a seq window (default first)',
      by: "time window clock: 'device' or 'received' (default)",
      from: 'time window start, inclusive',
      to: 'time window end, exclusive',
    },
    statuses: [409, 413],
  },
  {
    method: 'GET',
    path: '/batches',
    summary: 'Sealed batches, newest first: [{batchId, size, root, createdAt, anchor?}].',
    query: { before: 'only batches with a lower id (paging)', limit: 'most batches returned, 1..1000 (default 100)' },
  },
  { method: 'GET', path: '/batches/{batchId}', summary: 'One batch: size, Merkle root, when it was sealed, its leaves (deviceId, seq) and its anchor when final.' },
  { method: 'GET', path: '/anchors', summary: 'Where anchoring stands: unanchored batches, chain reachability, the last alarm, failures.' },
  { method: 'GET', path: '/frames/{sha256}', summary: 'Readings naming this instrument frame (SHA-256 hex) and their evidence bundles.' },
  { method: 'POST', path: '/frames', summary: 'Same as GET /frames/{sha256} for SHA-256 of the body (the raw frame bytes).', consumes: ['application/octet-stream'], statuses: [413] },
  { method: 'GET', path: '/alerts', summary: "What the configured rules (`run --rules`) give over the stored readings: [{id, kind, subject, rule, ...}]." },
  { method: 'GET', path: '/alerts/{alertId}', summary: 'One alert (FORMAT.md §15.7).' },
  { method: 'GET', path: '/alerts/{alertId}/bundle', summary: 'The evidence bundle of an alert (FORMAT.md §15.8), or for an alert over several devices an evidence set, one bundle per device (§7.2); 409 until anchored.', statuses: [409] },
  { method: 'GET', path: '/alerts/{alertId}/deliveries', admin: true, summary: 'Its notifications (`run --alert-webhook`, `--alert-mqtt-secret-file`; FORMAT.md §15.9): {alertId, deliveries: [{channel, state, attempts, queuedAt, lastAttemptAt?, lastError?, deliveredAt?}]}.', statuses: [401, 404] },
];

const compiled = ROUTES.map((r) => ({
  route: r,
  re: new RegExp(`^${r.path.replace(/\{[^}]+\}/g, '[^/]+')}$`),
}));

/** The route answering `method path` (a URL pathname, still percent-encoded), or undefined. */
export function matchRoute(method: string, pathname: string): Route | undefined {
  for (const c of compiled) if (c.route.method === method && c.re.test(pathname)) return c.route;
  return undefined;
}

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  400: 'Malformed input (HTTP_BAD_REQUEST, HTTP_BAD_JSON, an INGEST_ code)',
  401: 'Missing or wrong admin token (HTTP_UNAUTHORIZED)',
  403: 'Cross-origin request refused, or admin endpoints disabled (HTTP_ORIGIN_REFUSED, HTTP_ADMIN_DISABLED)',
  404: 'No such device, reading, batch or route',
  409: 'Not anchored yet, or a conflict (INGEST_NOT_ANCHORED, INGEST_ENROL_CONFLICT, ...)',
  413: 'Body or window too large (HTTP_TOO_LARGE, HTTP_WINDOW_TOO_LARGE)',
  415: 'Wrong Content-Type (HTTP_UNSUPPORTED_MEDIA_TYPE)',
  421: 'The Host header does not name this endpoint (HTTP_HOST_REFUSED)',
  500: 'Internal error (HTTP_INTERNAL, INGEST_STORE_ERROR)',
  503: 'Ingest stopping, store or chain unavailable',
};

/** The OpenAPI 3.1 document of ROUTES (served at GET /openapi.json). */
export function openApiDocument(version = '0.1.0'): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const error = { $ref: '#/components/schemas/Error' };
  for (const r of ROUTES) {
    const params = [...r.path.matchAll(/\{([^}]+)\}/g)].map((m) => ({
      name: m[1]!,
      in: 'path',
      required: true,
      schema: m[1] === 'seq' || m[1] === 'batchId' ? { type: 'integer', minimum: 1 } : { type: 'string' },
    }));
    for (const [name, description] of Object.entries(r.query ?? {})) {
      params.push({ name, in: 'query', required: description.endsWith('(required)'), schema: { type: 'string' }, description } as (typeof params)[number]);
    }
    const responses: Record<string, unknown> = {
      '200': { description: STATUS_TEXT[200], content: { [r.produces ?? 'application/json']: { schema: r.produces === undefined ? { type: 'object' } : { type: 'string' } } } },
    };
    for (const s of [400, 403, 404, 421, 500, 503, ...(r.statuses ?? [])].sort((a, b) => a - b)) {
      responses[String(s)] = { description: STATUS_TEXT[s], content: { 'application/json': { schema: error } } };
    }
    const op: Record<string, unknown> = {
      operationId: `${r.method.toLowerCase()}${r.path.replace(/[{}.]/g, '').replace(/(^|[/-])([a-z0-9])/gi, (_, _s: string, c: string) => c.toUpperCase())}`,
      summary: r.summary,
      responses,
    };
    if (params.length > 0) op['parameters'] = params;
    if (r.admin === true) op['security'] = [{ adminToken: [] }];
    if (r.consumes !== undefined) {
      op['requestBody'] = { required: true, content: Object.fromEntries(r.consumes.map((t) => [t, { schema: t === 'application/json' ? { type: 'object' } : { type: 'string', contentEncoding: 'binary' } }])) };
    }
    (paths[r.path] ??= {})[r.method.toLowerCase()] = op;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Stele ingest',
      version,
      description:
        "Ingest's local HTTP API (docs/operator.md). Loopback is not trusted: the Host header must name this endpoint, cross-origin requests are refused, and every state-changing route needs Authorization: Bearer <admin token> (DIR/admin-token, mode 0600). Bodies are capped at 64 KiB and every window is bounded.",
    },
    paths,
    components: {
      securitySchemes: { adminToken: { type: 'http', scheme: 'bearer', description: 'The admin token file (DIR/admin-token, mode 0600).' } },
      schemas: {
        Error: { type: 'object', required: ['code', 'error'], properties: { code: { type: 'string' }, error: { type: 'string' } } },
      },
    },
  };
}
