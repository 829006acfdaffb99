/**
 * The agent's local HTTP endpoint, on a loopback address only: `/healthz` (200 when running and nothing is
 * wrong that stops evidence, else 503, JSON either way), `/metrics` (Prometheus), `/status` (JSON).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { evidenceProblems, renderMetrics, type GatewayStatus } from './status.ts';

export interface OpsServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/** What makes /healthz fail: evidence is being lost or cannot be produced or shipped. */
export function isUnhealthy(s: GatewayStatus): string[] {
  const bad: string[] = [];
  if (s.state !== 'running') bad.push(`agent ${s.state}`);
  bad.push(...evidenceProblems(s));
  return bad;
}

export async function startOpsServer(options: { host: string; port: number; status: () => GatewayStatus }): Promise<OpsServer> {
  if (!LOOPBACK.has(options.host)) throw new RangeError('the ops endpoint listens on a loopback address only');
  const server = http.createServer((req, res) => {
    const send = (code: number, type: string, body: string) => {
      res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'method not allowed\n');
    const path = (req.url ?? '/').split('?')[0];
    try {
      const s = options.status();
      if (path === '/healthz') {
        const bad = isUnhealthy(s);
        return send(bad.length === 0 ? 200 : 503, 'application/json', `${JSON.stringify({ ok: bad.length === 0, state: s.state, failing: bad, problems: s.problems })}\n`);
      }
      if (path === '/metrics') return send(200, 'text/plain; version=0.0.4; charset=utf-8', renderMetrics(s));
      if (path === '/status') return send(200, 'application/json', `${JSON.stringify(s)}\n`);
      return send(404, 'text/plain', 'not found: try /healthz, /metrics, /status\n');
    } catch (err) {
      return send(500, 'text/plain', `status failed: ${(err as Error).message}\n`);
    }
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `http://${host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
