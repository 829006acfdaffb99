/**
 * Modbus RTU master on one bus (one SerialTransport, RS-485 two-wire: one master, many slaves). Requests are
 * serialised per bus: a request goes out only after the previous exchange ended and the line has been silent for
 * t3.5 (Serial Line v1.02 §2.5.1.1).
 *
 * Framing a response: its length follows from the request and its first 3 bytes (exception: 5 bytes; read: 5 +
 * byte count), so a response split across reads, or glued to noise after it, is cut exactly. Timing is used only
 * where the length cannot be known (a header that does not answer the request): the exchange ends after
 * `frameGapMs` of silence. Why not inter-byte timing alone: on a USB adapter or a pty, bytes arrive in bursts
 * 1–16 ms apart (USB latency timer), longer than t1.5/t3.5 at 9600 baud (1.7 ms / 4.0 ms), so gaps inside a
 * frame cannot be told from gaps between frames from Node's side.
 *
 * Bytes that arrive while no request is pending (a late answer to a timed-out request, line noise) are
 * discarded and counted, so a late answer can never be taken for the answer to the next request.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { SerialError } from '../transport/errors.ts';
import type { SerialTransport } from '../transport/serial-transport.ts';
import { ModbusError } from './errors.ts';
import {
  EXCEPTION_BIT,
  EXCEPTION_RESPONSE_LENGTH,
  MAX_RTU_FRAME_BYTES,
  type ReadRequest,
  type ReadResponse,
  bitsPerCharacter,
  decodeReadResponse,
  encodeReadRequest,
  silentIntervalMs,
} from './frame.ts';

export interface ModbusMasterOptions {
  /** Per-request timeout from the end of sending the request. Default 1000 ms. */
  timeoutMs?: number;
  /** Silence before a request. Default t3.5 of the transport's baud rate and character format. */
  silentIntervalMs?: number;
  /** Silence that ends a response of unknown length (a header that does not answer the request). Default max(t3.5, 20 ms). */
  frameGapMs?: number;
}

export interface ModbusMasterStats {
  requests: number;
  responses: number;
  errors: Record<string, number>;
  /** Bytes received while no request was pending, or after the end of a response. */
  staleBytes: number;
}

interface Pending {
  request: ReadRequest;
  buf: Uint8Array;
  len: number;
  resolve: (r: ReadResponse) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout | undefined;
  gapTimer: NodeJS.Timeout | undefined;
}


export class ModbusRtuMaster {
  private chain: Promise<unknown> = Promise.resolve();
  private pending: Pending | undefined;
  private lastByteAt = 0;
  private readonly counts: ModbusMasterStats = { requests: 0, responses: 0, errors: {}, staleBytes: 0 };
  private readonly t35: number;
  private readonly gapMs: number;
  private readonly timeoutMs: number;
  private readonly unsubscribe: (() => void)[];
  private closed = false;

  constructor(
    private readonly transport: SerialTransport,
    options: ModbusMasterOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 1000;
    if (!(this.timeoutMs > 0)) throw new RangeError('options.timeoutMs must be > 0');
    this.t35 = options.silentIntervalMs ?? silentIntervalMs(transport.settings.baudRate, bitsPerCharacter(transport.settings));
    this.gapMs = options.frameGapMs ?? Math.max(this.t35, 20);
    this.unsubscribe = [
      transport.onData((chunk) => this.data(chunk)),
      transport.onStatus((s) => {
        if (s.type === 'error' && s.error.code === 'SERIAL_DISCONNECTED') this.fail(s.error);
        if (s.type === 'closed') this.fail(new SerialError('SERIAL_DISCONNECTED', `${transport.path} closed (${s.reason})`, { path: transport.path }));
      }),
    ];
  }

  /** The t3.5 silence this master keeps between frames, in ms. */
  get silentIntervalMs(): number {
    return this.t35;
  }

  stats(): ModbusMasterStats {
    return { ...this.counts, errors: { ...this.counts.errors } };
  }

  /**
   * Reads registers (FC 03/04). Queued behind earlier requests on this bus. Rejects with ModbusError
   * (MODBUS_TIMEOUT, MODBUS_TRUNCATED, MODBUS_BAD_CRC, MODBUS_EXCEPTION, MODBUS_UNEXPECTED, MODBUS_BAD_LENGTH) or
   * SerialError SERIAL_DISCONNECTED.
   */
  read(request: ReadRequest, options: { timeoutMs?: number } = {}): Promise<ReadResponse> {
    const frame = encodeReadRequest(request); // misuse throws here, synchronously
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    if (!(timeoutMs > 0)) throw new RangeError('options.timeoutMs must be > 0');
    const run = this.chain.then(() => this.exchange(request, frame, timeoutMs));
    this.chain = run.catch(() => {});
    return run;
  }

  /** Detaches from the transport; pending and queued requests reject. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const u of this.unsubscribe) u();
    this.fail(new SerialError('SERIAL_DISCONNECTED', 'the Modbus master was closed', { path: this.transport.path }));
  }

  private async exchange(request: ReadRequest, frame: Uint8Array, timeoutMs: number): Promise<ReadResponse> {
    if (this.closed) throw new SerialError('SERIAL_DISCONNECTED', 'the Modbus master was closed', { path: this.transport.path });
    // t3.5 of silence before sending; bounded, so a chattering line delays a request by at most its timeout.
    const deadline = Date.now() + timeoutMs;
    for (let quiet = Date.now() - this.lastByteAt; quiet < this.t35 && Date.now() < deadline; quiet = Date.now() - this.lastByteAt) {
      await sleep(Math.max(1, Math.ceil(this.t35 - quiet)));
    }
    this.counts.requests++;
    const result = new Promise<ReadResponse>((resolve, reject) => {
      this.pending = { request, buf: new Uint8Array(MAX_RTU_FRAME_BYTES), len: 0, resolve, reject, timer: undefined, gapTimer: undefined };
    });
    const pending = this.pending!;
    this.transport.write(frame).then(
      () => {
        if (this.pending !== pending) return;
        pending.timer = setTimeout(() => {
          const code = pending.len === 0 ? 'MODBUS_TIMEOUT' : 'MODBUS_TRUNCATED';
          const raw = pending.buf.slice(0, pending.len);
          this.settle(pending, new ModbusError(code, `slave ${request.slave}: ${pending.len === 0 ? 'no answer' : `${pending.len} bytes, then silence`} within ${timeoutMs} ms`, { raw, slave: request.slave, functionCode: request.functionCode }));
        }, timeoutMs);
      },
      (err: unknown) => this.settle(pending, err instanceof Error ? err : new Error(String(err))),
    );
    return result;
  }

  private data(chunk: Uint8Array): void {
    this.lastByteAt = Date.now();
    const p = this.pending;
    if (p === undefined) {
      this.counts.staleBytes += chunk.length;
      return;
    }
    const room = p.buf.length - p.len;
    if (chunk.length > room) this.counts.staleBytes += chunk.length - room;
    p.buf.set(chunk.subarray(0, room), p.len);
    p.len += Math.min(room, chunk.length);
    this.evaluate(p);
  }

  private evaluate(p: Pending): void {
    const { buf, len, request } = p;
    if (len < 2) return;
    let expected: number | undefined;
    if (buf[0] === request.slave && buf[1] === (request.functionCode | EXCEPTION_BIT)) expected = EXCEPTION_RESPONSE_LENGTH;
    else if (buf[0] === request.slave && buf[1] === request.functionCode) {
      if (len < 3) return;
      expected = 5 + buf[2]!;
    }
    if (expected === undefined || expected > MAX_RTU_FRAME_BYTES) {
      // Not an answer to this request: let the burst end, then report it whole.
      if (p.gapTimer !== undefined) clearTimeout(p.gapTimer);
      p.gapTimer = setTimeout(() => {
        const raw = p.buf.slice(0, p.len);
        let error: ModbusError;
        try {
          decodeReadResponse(raw, request);
          error = new ModbusError('MODBUS_UNEXPECTED', 'a frame that does not answer the request', { raw, slave: request.slave });
        } catch (e) {
          error = e instanceof ModbusError ? e : new ModbusError('MODBUS_UNEXPECTED', 'a frame that does not answer the request', { raw, cause: e });
        }
        this.settle(p, error);
      }, this.gapMs);
      return;
    }
    if (len < expected) return;
    if (len > expected) this.counts.staleBytes += len - expected;
    try {
      const response = decodeReadResponse(buf.slice(0, expected), request);
      this.counts.responses++;
      this.settle(p, undefined, response);
    } catch (e) {
      this.settle(p, e instanceof Error ? e : new Error(String(e)));
    }
  }

  private settle(p: Pending, error: Error | undefined, response?: ReadResponse): void {
    if (this.pending !== p) return;
    this.pending = undefined;
    if (p.timer !== undefined) clearTimeout(p.timer);
    if (p.gapTimer !== undefined) clearTimeout(p.gapTimer);
    if (error !== undefined) {
      const code = (error as { code?: string }).code ?? 'ERROR';
      this.counts.errors[code] = (this.counts.errors[code] ?? 0) + 1;
      p.reject(error);
    } else p.resolve(response!);
  }

  private fail(error: Error): void {
    const p = this.pending;
    if (p !== undefined) this.settle(p, error);
  }
}
