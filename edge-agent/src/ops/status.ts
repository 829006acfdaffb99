/**
 * What the running agent reports on /status (JSON) and /metrics (Prometheus text exposition format 0.0.4), and
 * what `stele gateway status` prints. Only one process can open the LevelDB outbox, so every other tool asks
 * the running agent through this.
 */
import type { AgentStatus } from '../agent.ts';
import type { RetentionStatus } from '../retention/retention.ts';
import type { RelayStatus } from '../forward/hj212-relay.ts';
import type { ClockStatus } from './clock.ts';
import type { DiskStatus } from './disk.ts';

export type InstrumentState = 'connecting' | 'open' | 'waiting' | 'stopped' | 'unavailable';

export interface InstrumentStatus {
  id: string;
  driver: string;
  port: string;
  state: InstrumentState;
  /** Why it is not open: the last error, with a code (`INSTRUMENT_PORT_MISSING`, ...). */
  lastError: { code: string; message: string; at: number } | undefined;
  /** Port (re)opened successfully. */
  opens: number;
  frames: number;
  /** Rejected frames by code (bad CRC, noise, ...). */
  rejections: Record<string, number>;
  /** Readings refused under the full-disk policy. */
  refused: number;
  /** Gateway clock when the last reading from it was acquired. */
  lastReadingAt: number | undefined;
  /** Per sensor of the instrument (a Modbus bus has one per probe): readings and when the last came. */
  sensors?: Record<string, { readings: number; lastReadingAt: number }>;
}

export interface GatewayStatus {
  deviceId: string;
  pid: number;
  startedAt: number;
  now: number;
  /** `refused`: the agent would not open its outbox (see `refusal`); it takes and publishes nothing. */
  state: 'starting' | 'running' | 'stopping' | 'refused';
  /** Why the agent refused to run, with the fix (state `refused`). */
  refusal?: { code: string; message: string; fix: string };
  outbox: { head: number; acked: number; depth: number };
  lastAck: { upTo: number; at: number } | undefined;
  taken: number;
  failed: number;
  refused: number;
  signingRatePerSec: number;
  takeMsAvg: number;
  /** The signing stage (slow keys, FORMAT.md §3.1): backlog, the key's measured rate, device-level batches. */
  signing?: { unsigned: number; maxUnsigned: number; signatures: number; signMsAvg: number; keyRatePerSec: number; batching: boolean; lastError?: string };
  broker: {
    url: string;
    connected: boolean;
    mode: 'full' | 'hash-only';
    sent: number;
    resends: number;
    rejected: Record<string, number>;
    stalled: string | undefined;
    /** Why publishing stopped, with the fix. */
    stalledDetail?: string;
    /** Ingest keeps rejecting the oldest unacknowledged seq. */
    rejectStreak?: { seq: number; code: string; streak: number };
    /** Times ingest acknowledged a seq above this outbox's head (a replaced or rolled-back outbox). */
    ackBeyondHead?: number;
    /** Connected with readings waiting, and no ack for this long (ms); 0 otherwise. */
    noAckForMs?: number;
    /** Confirmations not acted on, by code (forged, another device, a head not held: FORMAT.md §11.1). */
    ignored?: Record<string, number>;
    /** False when the config pins no ingest key: nothing is ever acknowledged. */
    ingestKeyPinned?: boolean;
  };
  /** The last take that failed (a reading lost), and how many failed since start. */
  lastFailedTake?: { code: string; message: string; at: number };
  instruments: InstrumentStatus[];
  /** HJ 212 relays to the authority's platform, by id. */
  relays: Record<string, RelayStatus>;
  disk: DiskStatus;
  clock: ClockStatus;
  /** Local retention of acknowledged readings (evidence hand-over). */
  retention: RetentionStatus;
  /** Problems an operator should see now, one line each (empty when all is well). */
  problems: string[];
  agent: AgentStatus;
}

/** Reject codes that say this gateway's chain or key is not what ingest accepts: one is enough to be unhealthy. */
export const FATAL_REJECTS = new Set(['FORK_ERROR', 'CHAIN_LINK_ERROR', 'UNKNOWN_KEY_ERROR', 'KEY_REVOKED_ERROR', 'SIGNATURE_ERROR']);
/** Rejections of the same oldest seq in a row that make the gateway unhealthy whatever the code (reorder full, ...). */
export const REJECT_STREAK_UNHEALTHY = 3;
/** Connected with readings waiting and no ack for this long: publishing is stalled. */
export const NO_ACK_STALL_MS = 120_000;
/** A failed take within this window keeps the gateway unhealthy (a reading was lost). */
export const FAILED_TAKE_WINDOW_MS = 300_000;

/**
 * What stops evidence now: a refused outbox, failed takes, a publisher stopped or stalled, ingest rejecting this
 * chain, a full disk. Each a line for /healthz, `stele gateway status` and `doctor`. Empty: healthy.
 */
export function evidenceProblems(s: Omit<GatewayStatus, 'problems'>): string[] {
  const out: string[] = [];
  if (s.refusal !== undefined) out.push(`outbox refused: ${s.refusal.code}: ${s.refusal.message}; fix: ${s.refusal.fix}`);
  if (s.lastFailedTake !== undefined && s.now - s.lastFailedTake.at <= FAILED_TAKE_WINDOW_MS) {
    out.push(`readings not taken: ${s.failed} failed since start, the last ${Math.round((s.now - s.lastFailedTake.at) / 1000)} s ago: ${s.lastFailedTake.code}: ${s.lastFailedTake.message}`);
  }
  if (s.disk.level === 'stop') out.push('disk full: new readings refused');
  if (s.broker.stalled !== undefined) out.push(`publishing stopped: ${s.broker.stalled}${s.broker.stalledDetail === undefined ? '' : `: ${s.broker.stalledDetail}`}`);
  else if ((s.broker.noAckForMs ?? 0) >= NO_ACK_STALL_MS) out.push(`publishing stalled: connected, ${s.outbox.depth} reading(s) waiting, no ack from ingest for ${Math.round(s.broker.noAckForMs! / 1000)} s`);
  const r = s.broker.rejectStreak;
  if (r !== undefined && (FATAL_REJECTS.has(r.code) || r.streak >= REJECT_STREAK_UNHEALTHY)) {
    const why =
      r.code === 'UNKNOWN_KEY_ERROR'
        ? 'ingest does not know this key for this device: enrol it (`stele ingest enrol DEVICE.enrol.cose`)'
        : r.code === 'FORK_ERROR' || r.code === 'CHAIN_LINK_ERROR'
          ? 'this chain diverges from the one ingest holds: see the reinstall procedure (`stele gateway reinstall`, docs/keys.md)'
          : 'publishing cannot go past it';
    out.push(`ingest rejects seq ${r.seq}: ${r.code} ×${r.streak}; ${why}`);
  }
  if ((s.broker.ackBeyondHead ?? 0) > 0) out.push(`ingest acknowledged seqs above this outbox's head (${s.broker.ackBeyondHead} time(s)): the outbox was replaced or rolled back; see \`stele gateway reinstall\` (docs/keys.md)`);
  return out;
}

/** Problems derived from a status: what /healthz and the health topic say is wrong. */
export function problemsOf(s: Omit<GatewayStatus, 'problems'>): string[] {
  // the disk line below says more than evidenceProblems' one
  const out: string[] = evidenceProblems(s).filter((p) => !p.startsWith('disk full'));
  if (s.disk.level === 'stop') out.push(`disk full: ${fmtBytes(s.disk.freeBytes)} free, below ${fmtBytes(s.disk.stopAtFreeBytes)}; new readings are refused (${s.disk.refused} so far)`);
  else if (s.disk.level === 'warn') out.push(`disk low: ${fmtBytes(s.disk.freeBytes)} free, below ${fmtBytes(s.disk.warnAtFreeBytes)}`);
  if (!s.clock.synced) out.push(`clock not synchronised (${s.clock.reason})`);
  if (s.broker.ingestKeyPinned === false) out.push('no ingest key pinned (config ingest.publicKey): no reading will be acknowledged or pruned');
  if (s.broker.stalled === undefined && !s.broker.connected && s.state !== 'refused') out.push('broker not connected; readings wait in the outbox');
  for (const i of s.instruments) {
    if (i.state !== 'open') out.push(`instrument ${i.id} (${i.port}) ${i.state}${i.lastError ? `: ${i.lastError.code} ${i.lastError.message}` : ''}`);
  }
  for (const [id, r] of Object.entries(s.relays ?? {})) if (!r.upstreamConnected) out.push(`relay ${id}: the authority's platform is not connected (frames are held and forwarded when it is back)`);
  return out;
}

export function fmtBytes(n: number | undefined): string {
  if (n === undefined) return '?';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v >= 100 || u === 0 ? Math.round(v) : v.toFixed(1)} ${units[u]}`;
}

/** Prometheus text format 0.0.4. Names `stele_*`; counters end in `_total`. */
export function renderMetrics(s: GatewayStatus): string {
  const lines: string[] = [];
  const metric = (name: string, type: 'gauge' | 'counter', help: string, samples: [Record<string, string>, number | undefined][]) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) {
      if (value === undefined || !Number.isFinite(value)) continue;
      const l = Object.entries(labels);
      lines.push(`${name}${l.length === 0 ? '' : `{${l.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}`} ${value}`);
    }
  };
  const one = (v: number | undefined): [Record<string, string>, number | undefined][] => [[{}, v]];
  metric('stele_outbox_depth', 'gauge', 'Readings taken but not yet acknowledged by ingest.', one(s.outbox.depth));
  metric('stele_chain_head_seq', 'gauge', 'Seq of the last reading taken.', one(s.outbox.head));
  metric('stele_acked_seq', 'gauge', 'Ingest has committed every seq up to this one.', one(s.outbox.acked));
  metric('stele_readings_taken_total', 'counter', 'Readings taken (stored in the outbox; signed by the signing stage) since start.', one(s.taken));
  metric('stele_readings_failed_total', 'counter', 'Acquired readings that could not be taken since start.', one(s.failed));
  metric(
    'stele_readings_refused_total',
    'counter',
    'Readings refused under the full-disk policy since start.',
    s.instruments.map((i) => [{ instrument: i.id }, i.refused]),
  );
  metric('stele_signing_rate', 'gauge', 'Readings signed per second over the last 10 s.', one(s.signingRatePerSec));
  metric('stele_take_duration_ms', 'gauge', 'Mean duration of a take (build and synced write; signing is separate), ms (EWMA).', one(s.takeMsAvg));
  if (s.signing !== undefined) {
    metric('stele_signing_backlog', 'gauge', 'Readings taken but not yet signed (stored, waiting for the key).', one(s.signing.unsigned));
    metric('stele_sign_duration_ms', 'gauge', 'Mean latency of one signature, ms (EWMA).', one(s.signing.signMsAvg));
    metric('stele_signatures_total', 'counter', 'Signatures made since start (each one reading or one device-level batch).', one(s.signing.signatures));
  }
  metric('stele_broker_connected', 'gauge', '1 when connected to the broker and subscribed.', one(s.broker.connected ? 1 : 0));
  metric('stele_publish_sent_total', 'counter', 'Statements published (resends included).', one(s.broker.sent));
  metric('stele_publish_resends_total', 'counter', 'Times publishing went back to the acked mark for lack of an ack.', one(s.broker.resends));
  metric(
    'stele_ingest_rejects_total',
    'counter',
    'Statements rejected by ingest, by code.',
    Object.entries(s.broker.rejected).map(([code, n]) => [{ code }, n]),
  );
  metric(
    'stele_confirmations_ignored_total',
    'counter',
    'Confirmations on the acks topic not acted on, by code (unsigned, another key, another device, a head not held).',
    Object.entries(s.broker.ignored ?? {}).map(([code, n]) => [{ code }, n]),
  );
  metric(
    'stele_instrument_up',
    'gauge',
    '1 when the instrument port is open.',
    s.instruments.map((i) => [{ instrument: i.id }, i.state === 'open' ? 1 : 0]),
  );
  metric(
    'stele_instrument_frames_total',
    'counter',
    'Frames decoded from the instrument.',
    s.instruments.map((i) => [{ instrument: i.id }, i.frames]),
  );
  metric(
    'stele_instrument_rejections_total',
    'counter',
    'Bytes or frames rejected by the decoder, by code.',
    s.instruments.flatMap((i) => Object.entries(i.rejections).map(([code, n]): [Record<string, string>, number] => [{ instrument: i.id, code }, n])),
  );
  metric(
    'stele_instrument_last_reading_age_seconds',
    'gauge',
    'Seconds since the last reading from the instrument (absent before the first).',
    s.instruments.map((i) => [{ instrument: i.id }, i.lastReadingAt === undefined ? undefined : Math.max(0, (s.now - i.lastReadingAt) / 1000)]),
  );
  metric(
    'stele_relay_upstream_connected',
    'gauge',
    "1 when the HJ 212 relay is connected to the authority's platform.",
    Object.entries(s.relays ?? {}).map(([id, r]) => [{ relay: id }, r.upstreamConnected ? 1 : 0]),
  );
  metric(
    'stele_relay_limited_total',
    'counter',
    'HJ 212 relay: logger connections refused (RELAY_TOO_MANY_CONNECTIONS) or paused for their byte rate (RELAY_CONNECTION_RATE, RELAY_RATE), by reason.',
    Object.entries(s.relays ?? {}).flatMap(([id, r]) => Object.entries(r.limited ?? {}).map(([reason, n]): [Record<string, string>, number] => [{ relay: id, reason }, n])),
  );
  metric('stele_disk_free_bytes', 'gauge', 'Free bytes on the data folder filesystem.', one(s.disk.freeBytes));
  metric('stele_disk_level', 'gauge', '0 ok, 1 below the warning level, 2 below the stop level (policy applies).', one({ ok: 0, warn: 1, stop: 2, unknown: undefined }[s.disk.level]));
  metric('stele_clock_synced', 'gauge', '1 when the clock is synchronised (recorded in each reading).', one(s.clock.synced ? 1 : 0));
  metric('stele_clock_jumps_total', 'counter', 'Wall-clock jumps against the monotonic clock since start.', one(s.clock.jumps));
  metric('stele_up_seconds', 'gauge', 'Seconds since the agent started.', one((s.now - s.startedAt) / 1000));
  return `${lines.join('\n')}\n`;
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}
