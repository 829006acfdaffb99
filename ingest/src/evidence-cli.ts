/**
 * `stele evidence [ALERT_ID] [--url URL | --data DIR] [--out FILE] [--form v1|v2] [--json]`
 *
 * The officer's or operator's way to an alert's evidence (issue #12 item 5): without an id, lists the alerts the
 * running ingest's rules give (GET /alerts); with one, writes the alert's evidence bundle (GET /alerts/ID/bundle,
 * FORMAT.md §15.8; an evidence set, §7.2, for an alert over several devices) to FILE (default
 * ./alert-<first 12 hex of the id>.bundle.json), to check with `stele verify --trust POLICY FILE`. Read-only routes: no admin token.
 * Exit: 0 done, 1 ingest refused (its code and message on stderr), 2 usage error.
 */
import { writeFile } from 'node:fs/promises';
import { parseCommand, usageError } from '@stele/command';
import { ingestUrl } from './cli.ts';

export interface EvidenceIo {
  stdout: { write(chunk: string): unknown };
  stderr: { write(chunk: string): unknown };
}

const USAGE = `usage: stele evidence [ALERT_ID] [--url URL | --data DIR] [--out FILE] [--form v1|v2] [--json]

Without ALERT_ID: lists the alerts the running ingest's rules give (\`stele ingest run --rules\`).
With it: writes that alert's evidence bundle (its whole time window, FORMAT.md §15.8) for \`stele verify\`; for an
alert over several devices (a custody chain across gateways) an evidence set, one bundle per device (§7.2).

  --url URL    the running ingest's HTTP endpoint (its --health-port)
  --data DIR   the ingest data directory: the endpoint is read from DIR/ingest-http.json
  --out FILE   where the bundle goes (default ./alert-<id prefix>.bundle.json)
  --form F     v2 (default): the compact bundle (FORMAT.md §7.1); v1: one receipt per reading, for older tools
  --json       print the list (or the written bundle's summary) as JSON

exit: 0 done, 1 ingest refused, 2 usage error
`;

const SPEC = {
  name: 'stele evidence',
  usage: USAGE,
  positionals: true,
  options: { url: { type: 'string' }, data: { type: 'string' }, out: { type: 'string' }, form: { type: 'string', default: 'v2' }, json: { type: 'boolean', default: false } },
} as const;

interface Listed {
  id: string;
  kind: string;
  subject: string;
  rule: string;
  standard: string;
  window: { from: string; to: string; basis: string };
  values: Record<string, unknown>;
}

export async function runEvidence(argv: string[], io: EvidenceIo): Promise<number> {
  const args = parseCommand(argv, SPEC, io);
  if (typeof args === 'number') return args;
  const [id, ...extra] = args.positionals;
  if (extra.length > 0) return usageError(io, SPEC, `one alert id at most (got ${args.positionals.length})`);
  if (id !== undefined && !/^[0-9a-f]{64}$/.test(id)) return usageError(io, SPEC, 'an alert id is 64 lowercase hex digits (`stele evidence` lists them)');
  const form = args.values.form;
  if (form !== 'v1' && form !== 'v2') return usageError(io, SPEC, `--form is v1 or v2 (got ${form})`);
  const url = await ingestUrl(args.values.data, args.values.url);
  if (url === undefined) return usageError(io, SPEC, 'give --url URL (or --data DIR of a running ingest)');
  const get = async (path: string): Promise<{ ok: boolean; body: Record<string, unknown>; text: string }> => {
    let res: Response;
    try {
      res = await fetch(`${url}${path}`);
    } catch (err) {
      throw new Error(`cannot reach ingest at ${url}: ${(err as Error).message}`);
    }
    const text = await res.text();
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      // reported below with the status
    }
    return { ok: res.ok, body, text };
  };
  try {
    if (id === undefined) {
      const r = await get('/alerts');
      if (!r.ok) return refused(io, r.body);
      const alerts = (r.body.alerts ?? []) as Listed[];
      if (args.values.json) io.stdout.write(`${JSON.stringify(alerts, null, 2)}\n`);
      else {
        io.stdout.write(`${alerts.length} alert(s)\n`);
        for (const a of alerts) {
          const vals = Object.entries(a.values).slice(0, 6).map(([k, v]) => `${k}=${String(v)}`).join(' ');
          io.stdout.write(`${a.id}  ${a.kind}  ${a.subject}  ${a.window.from} .. ${a.window.to}  ${a.rule} (${a.standard})  ${vals}\n`);
        }
      }
      return 0;
    }
    const r = await get(`/alerts/${id}/bundle?form=${form}`);
    if (!r.ok) return refused(io, r.body);
    const out = args.values.out ?? `alert-${id.slice(0, 12)}.bundle.json`;
    await writeFile(out, `${JSON.stringify(r.body, null, 2)}\n`);
    const alert = r.body.alert as Listed;
    // One device: a bundle; an alert over several (a custody chain across gateways): an evidence set (FORMAT.md §7.2).
    const bundles = (Array.isArray(r.body.bundles) ? r.body.bundles : [r.body]) as { device: { deviceId: string }; window: { firstSeq: number; lastSeq: number } }[];
    const windows = bundles.map((b) => ({ device: b.device.deviceId, firstSeq: b.window.firstSeq, lastSeq: b.window.lastSeq }));
    if (args.values.json) {
      io.stdout.write(`${JSON.stringify(windows.length === 1 ? { file: out, id, kind: alert.kind, ...windows[0]! } : { file: out, id, kind: alert.kind, devices: windows })}\n`);
    } else {
      const where = windows.map((w) => `${w.device} seq ${w.firstSeq}..${w.lastSeq}`).join(', ');
      io.stdout.write(`wrote ${out}: ${alert.kind} ${alert.subject}, ${where}\ncheck it  stele verify --trust POLICY ${out}\n`);
    }
    return 0;
  } catch (err) {
    io.stderr.write(`stele evidence: ${(err as Error).message}\n`);
    return 1;
  }
}

function refused(io: EvidenceIo, body: Record<string, unknown>): number {
  io.stderr.write(`stele evidence: ${typeof body.code === 'string' ? `${body.code}: ` : ''}${typeof body.error === 'string' ? body.error : 'ingest refused'}\n`);
  return 1;
}
