/**
 * The gateway in the path to the authority's platform (issue #5 item 8): an HJ 212 TCP relay.
 *
 *   data logger --TCP--> [listen] relay [one upstream TCP] --> authority's platform
 *               <-- 9014/9011/9012 answers and platform commands, relayed back by MN
 *
 * Forwarding: every frame the logger sends is written upstream byte for byte (the exact `##…\r\n` bytes the
 * decoder delimited: frames that fail a check, e.g. a bad CRC, are forwarded too, since judging them is the
 * platform's business). Only two things are not forwarded, and both are counted: noise between frames (bytes
 * that are no frame) and a frame cut off by the logger's disconnect (HJ212_TRUNCATED). Forwarding whole frames,
 * never partial chunks, means a reconnect upstream never splices half a frame onto another.
 *
 * Replies: frames from the platform go to the logger connection that last sent a frame with the same MN; with one
 * logger connected they go to it whatever the MN; otherwise to every logger (counted as `broadcast`).
 *
 * Independence from Stele: forwarding runs on its own sockets and never waits for the agent, the outbox or the
 * broker. Each valid upload (a frame with measurements, CN not 9xxx) is also offered to the agent as an
 * `Acquired` whose `raw` digest is SHA-256 of the exact frame bytes, through `readings()`; if the agent is slow,
 * those wait in a bounded queue (`maxQueuedReadings`, oldest dropped and counted), never in the forwarding path.
 *
 * Buffering while the platform is down: frames wait in MEMORY, up to `maxBufferedBytes` (default 1 MiB, about
 * 2000 CEMS frames). At the limit the relay stops reading from the loggers (TCP backpressure: the data logger
 * keeps the data and retries, as HJ 212 loggers do when no 9014 comes) and resumes below half. Nothing buffered
 * survives a gateway restart: the logger's own retry of unanswered uploads covers that, and every frame already
 * read was signed into the outbox. Bytes handed to the upstream socket are not resent after a reconnect: whether
 * the platform got an upload is what its 9014 answer to the logger says.
 *
 * Limits (the LAN is untrusted; gateway config `relays[].maxConnections`, `maxBytesPerSecond`,
 * `maxTotalBytesPerSecond`): connections beyond the maximum are closed at accept (RELAY_TOO_MANY_CONNECTIONS); a
 * connection over its byte rate, or all of them together over the relay's, is paused until the next second
 * (RELAY_CONNECTION_RATE, RELAY_RATE: TCP backpressure, nothing dropped). Each is counted in `status().limited`
 * (metric `stele_relay_limited_total{relay,reason}`) and logged at most once per 10 s. Input is decoded in slices
 * of at most 16 KiB, one per turn of the event loop.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { ClockState } from '@stele/core';
import { toHex, sha256 } from '@stele/core';
import { Hj212StreamDecoder, measurementsFromFrame, recordFieldsOf, type Hj212DecoderOptions, type Hj212DecodeResult, type Hj212Frame } from '@stele/hardware';
import { toLogFn, type LogFn, type Logger } from '../log.ts';
import type { Acquired } from '../outbox.ts';

export interface Hj212RelayOptions {
  /** Where data loggers connect. Host default 127.0.0.1; port 0 picks a free one. */
  listen: { host?: string; port: number };
  /** The authority's platform. */
  upstream: { host: string; port: number };
  /** Decoder used to delimit and check frames. Default `{ mode: 'lenient' }` (forward what a platform would take). */
  decoder?: Hj212DecoderOptions;
  /** First upstream reconnect delay, doubling per failure (±20 % jitter). Default 1000. */
  reconnectPeriodMs?: number;
  /** Default 30 000. */
  maxReconnectPeriodMs?: number;
  /** Default 10 000. */
  connectTimeoutMs?: number;
  /** Frames held in memory while the platform is unreachable. Default 1 MiB. */
  maxBufferedBytes?: number;
  /** Readings waiting for the agent. Default 10 000 (oldest dropped and counted beyond). */
  maxQueuedReadings?: number;
  /** Clock state recorded in each reading. Default `{ synced: false, source: 'none' }`. */
  clock?: () => ClockState;
  /** Sensor name of a reading. Default `hj212:<MN>`. */
  sensorOf?: (frame: Hj212Frame) => string;
  /** Recently seen frames remembered for `lookupFrame`. Default 10 000. */
  recentFrames?: number;
  /** Data logger connections at once (the LAN is untrusted); more are closed at accept and counted. Default 16. */
  maxConnections?: number;
  /**
   * Bytes per second read from one logger connection (a logger sends a few KiB a minute); beyond, its socket is
   * paused until the next second (TCP backpressure: nothing is dropped, the sender waits), counted as
   * RELAY_CONNECTION_RATE. Input is decoded in slices of at most 16 KiB with a turn of the event loop between
   * them, so a burst never holds the loop. Default 64 KiB/s.
   */
  maxBytesPerSecond?: number;
  /** Bytes per second read from all logger connections together; beyond, they wait likewise (RELAY_RATE). Default 256 KiB/s. */
  maxTotalBytesPerSecond?: number;
  log?: Logger;
}

export interface RelayStatus {
  listening: number | undefined;
  upstreamConnected: boolean;
  upstreamConnects: number;
  loggers: number;
  /** Frames read from loggers (valid or not). */
  framesIn: number;
  /** Frames written to the platform. */
  framesUp: number;
  /** Frames relayed from the platform to loggers. */
  framesDown: number;
  /** Replies sent to every logger because their MN was unknown. */
  broadcast: number;
  /** Replies dropped because no logger was connected. */
  repliesDropped: number;
  bufferedFrames: number;
  bufferedBytes: number;
  /** Times the loggers were paused because the buffer was full. */
  pauses: number;
  /** Bytes from loggers that were no frame (not forwarded). */
  noiseBytes: number;
  /**
   * Frame starts cut off by a logger disconnect or by the next `##LLLL` (not forwarded); a run of them the decoder
   * folded into one rejection counts each.
   */
  truncated: number;
  /** Bytes of those cut-off frames (not forwarded). */
  truncatedBytes: number;
  /** Frames that failed a check, by code (still forwarded). */
  rejected: Record<string, number>;
  /** Readings offered to the agent / dropped because the agent did not keep up. */
  readings: number;
  readingsDropped: number;
  /** Logger connections closed at accept because maxConnections were open. */
  refusedConnections: number;
  /** Times a logger connection was paused for going over maxBytesPerSecond or maxTotalBytesPerSecond. */
  throttled: number;
  /** The same, by reason: RELAY_TOO_MANY_CONNECTIONS (refused), RELAY_CONNECTION_RATE, RELAY_RATE (paused). */
  limited: Record<RelayLimitCode, number>;
}

/** Why the relay refused a connection or paused one. */
export type RelayLimitCode = 'RELAY_TOO_MANY_CONNECTIONS' | 'RELAY_CONNECTION_RATE' | 'RELAY_RATE';

/** A limit that is hit over and over is logged at most once per this period (with the count since). */
const LIMIT_LOG_PERIOD_MS = 10_000;

export interface RecentFrame {
  /** SHA-256 (hex) of the exact frame bytes. */
  sha256: string;
  mn: string | undefined;
  cn: string | undefined;
  qn: string | undefined;
  /** Gateway clock when it arrived (ms). */
  at: number;
  /** Whether it was written to the platform yet. */
  forwarded: boolean;
  /** Whether it was offered to the agent as a reading. */
  acquired: boolean;
}

interface LoggerConn {
  socket: net.Socket;
  decoder: Hj212StreamDecoder;
  mns: Set<string>;
  /** Chunks read and not decoded yet; decoding drains them slice by slice. */
  pending: Buffer[];
  draining: boolean;
  closed: boolean;
  /** The current second and the bytes decoded in it (rate limit). */
  second: number;
  bytesThisSecond: number;
}

/** Largest slice decoded in one turn of the event loop. */
const DECODE_SLICE_BYTES = 16 * 1024;

const DEFAULTS = {
  reconnectPeriodMs: 1000,
  maxReconnectPeriodMs: 30_000,
  connectTimeoutMs: 10_000,
  maxBufferedBytes: 1 << 20,
  maxQueuedReadings: 10_000,
  recentFrames: 10_000,
  maxConnections: 16,
  maxBytesPerSecond: 64 * 1024,
  maxTotalBytesPerSecond: 256 * 1024,
} as const;

/** Events: `upstream-connect`, `upstream-close`, `frame` (RecentFrame), `reply` (Uint8Array). Never `error`. */
export class Hj212Relay extends EventEmitter {
  readonly #o: typeof DEFAULTS & Pick<Hj212RelayOptions, 'listen' | 'upstream'> & { decoder: Hj212DecoderOptions };
  readonly #log: LogFn;
  readonly #clock: () => ClockState;
  readonly #sensorOf: (frame: Hj212Frame) => string;
  #server: net.Server | undefined;
  #upstream: net.Socket | undefined;
  #upstreamReady = false;
  #upstreamDecoder: Hj212StreamDecoder;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #reconnectDelayMs: number;
  #stopped = false;
  readonly #loggers = new Set<LoggerConn>();
  /** Frames waiting for the platform, oldest first. */
  readonly #queue: { bytes: Uint8Array; digest: string }[] = [];
  #queuedBytes = 0;
  #paused = false;
  #writing = false;
  readonly #recent = new Map<string, RecentFrame>();
  readonly #readings: Acquired[] = [];
  #wake: (() => void) | undefined;
  readonly #limits = { refusedConnections: 0, throttled: 0 };
  readonly #limited: Record<RelayLimitCode, number> = { RELAY_TOO_MANY_CONNECTIONS: 0, RELAY_CONNECTION_RATE: 0, RELAY_RATE: 0 };
  readonly #limitLog = new Map<RelayLimitCode, { at: number; since: number }>();
  /** The current second and the bytes decoded in it, all connections together (maxTotalBytesPerSecond). */
  #rate = { second: 0, bytes: 0 };
  readonly #stats = {
    upstreamConnects: 0,
    framesIn: 0,
    framesUp: 0,
    framesDown: 0,
    broadcast: 0,
    repliesDropped: 0,
    pauses: 0,
    noiseBytes: 0,
    truncated: 0,
    truncatedBytes: 0,
    readings: 0,
    readingsDropped: 0,
  };
  readonly #rejected: Record<string, number> = {};

  constructor(options: Hj212RelayOptions) {
    super();
    if (options?.listen === undefined || !Number.isInteger(options.listen.port)) throw new TypeError('listen.port is required');
    if (options.upstream === undefined || typeof options.upstream.host !== 'string' || !Number.isInteger(options.upstream.port)) {
      throw new TypeError('upstream.host and upstream.port are required');
    }
    const o = { ...DEFAULTS };
    for (const k of Object.keys(DEFAULTS) as (keyof typeof DEFAULTS)[]) {
      const v = options[k];
      if (v === undefined) continue;
      if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${k} must be a positive integer`);
      (o as Record<string, number>)[k] = v;
    }
    this.#o = { ...o, listen: options.listen, upstream: options.upstream, decoder: options.decoder ?? { mode: 'lenient' } };
    this.#upstreamDecoder = new Hj212StreamDecoder(this.#o.decoder); // checks the decoder options early
    this.#reconnectDelayMs = o.reconnectPeriodMs;
    this.#log = toLogFn(options.log);
    this.#clock = options.clock ?? (() => ({ synced: false, source: 'none' }));
    this.#sensorOf = options.sensorOf ?? ((f) => `hj212:${f.parsed.header.MN ?? 'unknown'}`);
  }

  /** Listens for loggers and starts connecting upstream (a platform that is down is retried, never fatal). */
  async start(): Promise<void> {
    if (this.#server !== undefined) return;
    const server = net.createServer({ noDelay: true }, (socket) => this.#onLogger(socket));
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#o.listen.port, this.#o.listen.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.#log('error', 'relay listener error', { err: err.message }));
    this.#log('info', 'hj212 relay listening', { port: this.port, upstream: `${this.#o.upstream.host}:${this.#o.upstream.port}` });
    this.#connectUpstream();
  }

  /** The port loggers connect to (after start). */
  get port(): number | undefined {
    const a = this.#server?.address();
    return a !== null && typeof a === 'object' ? a.port : undefined;
  }

  /** Readings for `GatewayAgent.addSource`: one per valid upload frame, until stop(). */
  async *readings(): AsyncGenerator<Acquired, void, undefined> {
    for (;;) {
      const next = this.#readings.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (this.#stopped) return;
      await new Promise<void>((r) => (this.#wake = r));
      this.#wake = undefined;
    }
  }

  /** A frame seen recently, by the SHA-256 of its exact bytes (32 bytes or 64 hex digits). */
  lookupFrame(digest: Uint8Array | string): RecentFrame | undefined {
    const hex = typeof digest === 'string' ? digest.toLowerCase() : toHex(digest);
    const r = this.#recent.get(hex);
    return r === undefined ? undefined : { ...r };
  }

  status(): RelayStatus {
    return {
      listening: this.port,
      upstreamConnected: this.#upstreamReady,
      loggers: this.#loggers.size,
      ...this.#limits,
      limited: { ...this.#limited },
      bufferedFrames: this.#queue.length,
      bufferedBytes: this.#queuedBytes,
      ...this.#stats,
      rejected: { ...this.#rejected },
    };
  }

  /** Closes the listener, the logger connections and the upstream connection. Frames still buffered are dropped (logged). */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#reconnectTimer);
    if (this.#queue.length > 0) this.#log('warn', 'relay stopped with frames not yet forwarded', { frames: this.#queue.length, bytes: this.#queuedBytes });
    for (const l of this.#loggers) l.socket.destroy();
    this.#loggers.clear();
    this.#upstream?.destroy();
    this.#wake?.();
    const server = this.#server;
    if (server !== undefined) await new Promise<void>((r) => server.close(() => r()));
  }

  // ---------------------------------------------------------------- loggers

  #onLogger(socket: net.Socket): void {
    if (this.#stopped) {
      socket.destroy();
      return;
    }
    if (this.#loggers.size >= this.#o.maxConnections) {
      this.#limits.refusedConnections++;
      this.#limit('RELAY_TOO_MANY_CONNECTIONS', 'data logger connection refused: too many open', { remote: `${socket.remoteAddress}:${socket.remotePort}`, max: this.#o.maxConnections });
      socket.destroy();
      return;
    }
    const conn: LoggerConn = { socket, decoder: new Hj212StreamDecoder(this.#o.decoder), mns: new Set(), pending: [], draining: false, closed: false, second: 0, bytesThisSecond: 0 };
    this.#loggers.add(conn);
    if (this.#paused) socket.pause();
    this.#log('info', 'data logger connected', { remote: `${socket.remoteAddress}:${socket.remotePort}` });
    socket.on('data', (chunk: Buffer) => {
      conn.pending.push(chunk);
      if (conn.draining) socket.pause(); // (resumed for backpressure elsewhere: hold it while this drains)
      else void this.#drainLogger(conn);
    });
    socket.on('error', (err) => this.#log('warn', 'data logger connection error', { err: err.message }));
    socket.on('close', () => {
      this.#loggers.delete(conn);
      conn.closed = true;
      // what it sent before closing is still decoded (and forwarded); the end comes after it
      if (!conn.draining) this.#onLoggerResults(conn, conn.decoder.end());
      this.#log('info', 'data logger disconnected', {});
    });
  }

  /** Decodes what a logger sent, a slice per turn of the event loop, within its byte rate. */
  async #drainLogger(conn: LoggerConn): Promise<void> {
    conn.draining = true;
    conn.socket.pause();
    try {
      while (conn.pending.length > 0 && !this.#stopped) {
        const now = Date.now();
        const second = Math.floor(now / 1000);
        if (second !== conn.second) {
          conn.second = second;
          conn.bytesThisSecond = 0;
        }
        if (second !== this.#rate.second) this.#rate = { second, bytes: 0 };
        const connRoom = this.#o.maxBytesPerSecond - conn.bytesThisSecond;
        const relayRoom = this.#o.maxTotalBytesPerSecond - this.#rate.bytes;
        if (connRoom <= 0 || relayRoom <= 0) {
          // paused until the next second: the socket stays paused, so TCP backpressure holds the sender
          this.#limits.throttled++;
          if (connRoom <= 0) this.#limit('RELAY_CONNECTION_RATE', 'data logger over maxBytesPerSecond: paused', { remote: conn.socket.remoteAddress, max: this.#o.maxBytesPerSecond });
          else this.#limit('RELAY_RATE', 'data loggers together over maxTotalBytesPerSecond: paused', { max: this.#o.maxTotalBytesPerSecond });
          await new Promise((r) => setTimeout(r, (second + 1) * 1000 - now));
          continue;
        }
        const head = conn.pending[0]!;
        const n = Math.min(head.length, DECODE_SLICE_BYTES, connRoom, relayRoom);
        if (n === head.length) conn.pending.shift();
        else conn.pending[0] = head.subarray(n);
        conn.bytesThisSecond += n;
        this.#rate.bytes += n;
        this.#onLoggerResults(conn, conn.decoder.push(head.subarray(0, n)));
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      conn.draining = false;
      if (conn.closed) this.#onLoggerResults(conn, conn.decoder.end());
      else if (!this.#paused && !conn.socket.destroyed) conn.socket.resume();
    }
  }

  /** Counts a limit hit and logs it, at most once per LIMIT_LOG_PERIOD_MS per code (a flood is not a log flood). */
  #limit(code: RelayLimitCode, message: string, fields: Record<string, unknown>): void {
    this.#limited[code]++;
    const now = Date.now();
    const last = this.#limitLog.get(code);
    if (last !== undefined && now - last.at < LIMIT_LOG_PERIOD_MS) return;
    this.#log('warn', message, { code, ...fields, count: this.#limited[code], sinceLastLog: this.#limited[code] - (last?.since ?? 0) });
    this.#limitLog.set(code, { at: now, since: this.#limited[code] });
  }

  #onLoggerResults(conn: LoggerConn, results: Hj212DecodeResult[]): void {
    for (const r of results) {
      if (!r.ok) {
        const code = r.error.code;
        if (code === 'HJ212_NOISE' || r.raw === undefined) {
          this.#stats.noiseBytes += r.error.length;
          continue;
        }
        if (code === 'HJ212_TRUNCATED') {
          this.#stats.truncated += r.error.candidates; // a folded run of cut-off frame starts counts each one
          this.#stats.truncatedBytes += r.error.length;
          continue;
        }
        this.#rejected[code] = (this.#rejected[code] ?? 0) + 1;
        this.#stats.framesIn++;
        const mn = r.parsed?.header.MN;
        if (mn !== undefined) conn.mns.add(mn);
        this.#enqueue(r.raw, undefined, r.parsed?.header);
        continue;
      }
      this.#stats.framesIn++;
      const h = r.parsed.header;
      if (h.MN !== undefined) conn.mns.add(h.MN);
      const acquired = h.CN !== undefined && !h.CN.startsWith('9') && this.#offer(r);
      this.#enqueue(r.raw, r.sha256, h, acquired);
    }
  }

  /** Offers an upload to the agent; false when it carries no measurement (a command answer, a heartbeat). */
  #offer(frame: Hj212Frame): boolean {
    const meas = measurementsFromFrame(frame);
    if (meas.length === 0) return false;
    if (this.#readings.length >= this.#o.maxQueuedReadings) {
      this.#readings.shift();
      this.#stats.readingsDropped++;
      this.#log('error', 'agent does not keep up with the relay; oldest reading dropped', { queued: this.#readings.length });
    }
    const { itime, rtype } = recordFieldsOf(frame.parsed.cp, frame.parsed.header.CN);
    this.#readings.push({
      sensor: this.#sensorOf(frame),
      time: Date.now(),
      clock: this.#clock(),
      meas,
      raw: [frame.sha256],
      ...(itime === undefined ? {} : { itime }),
      ...(rtype === undefined ? {} : { rtype }),
    });
    this.#stats.readings++;
    this.#wake?.();
    return true;
  }

  #enqueue(bytes: Uint8Array, digest: Uint8Array | undefined, header: Record<string, string> | undefined, acquired = false): void {
    const hex = toHex(digest ?? sha256(bytes));
    const rec: RecentFrame = { sha256: hex, mn: header?.MN, cn: header?.CN, qn: header?.QN, at: Date.now(), forwarded: false, acquired };
    this.#recent.delete(hex);
    this.#recent.set(hex, rec);
    if (this.#recent.size > this.#o.recentFrames) this.#recent.delete(this.#recent.keys().next().value!);
    this.emit('frame', { ...rec });
    this.#queue.push({ bytes, digest: hex });
    this.#queuedBytes += bytes.length;
    if (!this.#paused && this.#queuedBytes >= this.#o.maxBufferedBytes) {
      this.#paused = true;
      this.#stats.pauses++;
      for (const l of this.#loggers) l.socket.pause();
      this.#log('warn', 'relay buffer full: pausing the data loggers until the platform takes frames', { bytes: this.#queuedBytes });
    }
    this.#flush();
  }

  // ---------------------------------------------------------------- upstream

  #flush(): void {
    const up = this.#upstream;
    if (!this.#upstreamReady || up === undefined || this.#writing) return;
    while (this.#queue.length > 0) {
      const f = this.#queue.shift()!;
      this.#queuedBytes -= f.bytes.length;
      this.#stats.framesUp++;
      const rec = this.#recent.get(f.digest);
      if (rec !== undefined) rec.forwarded = true;
      if (!up.write(f.bytes)) {
        this.#writing = true;
        up.once('drain', () => {
          this.#writing = false;
          this.#flush();
        });
        break;
      }
    }
    if (this.#paused && this.#queuedBytes <= this.#o.maxBufferedBytes / 2) {
      this.#paused = false;
      for (const l of this.#loggers) l.socket.resume();
      this.#log('info', 'relay buffer drained: data loggers resumed', { bytes: this.#queuedBytes });
    }
  }

  #connectUpstream(): void {
    if (this.#stopped) return;
    const { host, port } = this.#o.upstream;
    const socket = net.connect({ host, port, noDelay: true, timeout: this.#o.connectTimeoutMs });
    this.#upstream = socket;
    this.#upstreamDecoder = new Hj212StreamDecoder(this.#o.decoder);
    const decoder = this.#upstreamDecoder;
    socket.once('connect', () => {
      socket.setTimeout(0);
      this.#upstreamReady = true;
      this.#writing = false;
      this.#stats.upstreamConnects++;
      this.#reconnectDelayMs = this.#o.reconnectPeriodMs;
      this.#log('info', 'connected to the platform', { host, port, buffered: this.#queue.length });
      this.emit('upstream-connect');
      this.#flush();
    });
    socket.on('timeout', () => socket.destroy(new Error('connect timeout')));
    socket.on('data', (chunk: Buffer) => this.#onReplies(decoder.push(chunk)));
    socket.on('error', (err) => this.#log('debug', 'platform connection error', { err: err.message }));
    socket.on('close', () => {
      if (this.#upstream !== socket) return;
      const was = this.#upstreamReady;
      this.#upstreamReady = false;
      this.#upstream = undefined;
      if (was) {
        this.#log('warn', 'lost the platform; buffering frames and reconnecting', { host, port });
        this.emit('upstream-close');
      }
      if (this.#stopped) return;
      const delay = Math.round(this.#reconnectDelayMs * (0.8 + 0.4 * Math.random()));
      this.#reconnectDelayMs = Math.min(this.#reconnectDelayMs * 2, this.#o.maxReconnectPeriodMs);
      this.#reconnectTimer = setTimeout(() => this.#connectUpstream(), delay);
    });
  }

  #onReplies(results: Hj212DecodeResult[]): void {
    for (const r of results) {
      if (r.raw === undefined || (!r.ok && r.error.code === 'HJ212_TRUNCATED')) continue;
      const mn = r.ok ? r.parsed.header.MN : r.parsed?.header.MN;
      const loggers = [...this.#loggers];
      let targets = mn === undefined ? [] : loggers.filter((l) => l.mns.has(mn));
      if (targets.length === 0 && loggers.length === 1) targets = loggers;
      if (targets.length === 0 && loggers.length > 1) {
        targets = loggers;
        this.#stats.broadcast++;
      }
      if (targets.length === 0) {
        this.#stats.repliesDropped++;
        this.#log('warn', 'reply from the platform with no data logger connected; dropped', { mn, cn: r.ok ? r.parsed.header.CN : undefined });
        continue;
      }
      for (const t of targets) t.socket.write(r.raw);
      this.#stats.framesDown++;
      this.emit('reply', r.raw);
    }
  }
}
