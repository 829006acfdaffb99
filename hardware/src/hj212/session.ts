/**
 * An HJ 212 data logger on a serial line: bytes from a serialport-like Duplex (SerialPort, SerialPortMock, a
 * socket) through Hj212StreamDecoder, decoded frames out as an async iterable. Rejected bytes are counted and
 * handed to `onRejection`, never silently dropped.
 */
import type { Duplex } from 'node:stream';
import { type Hj212DecoderOptions, Hj212StreamDecoder } from './decoder.ts';
import { encodeDataAnswer } from './encoder.ts';
import { Hj212Error } from './errors.ts';
import type { Hj212DecodeResult, Hj212Frame, Hj212Rejection } from './types.ts';
import { ReadingQueue } from '../driver/reading-queue.ts';

export interface Hj212SessionOptions extends Hj212DecoderOptions {
  /** Called for every rejection (bad CRC, noise, …) in stream order. */
  onRejection?: (rejection: Hj212Rejection) => void;
  /** Answer uploads that ask for it (Flag A=1) with CN=9014, as a platform would. Default false (listen only). */
  acknowledge?: boolean;
  /** Frames kept while nobody reads; beyond, the oldest are dropped and counted. Default 1000. */
  maxQueuedFrames?: number;
}

export interface Hj212SessionStats {
  frames: number;
  rejections: Record<string, number>;
  dropped: number;
  bytes: number;
}

/** The part of a serial port the session uses. */
export type SerialDuplex = Duplex & { close?: (cb?: (err?: Error | null) => void) => void; isOpen?: boolean };

export class Hj212SerialSession {
  private readonly decoder: Hj212StreamDecoder;
  private readonly queue = new ReadingQueue<Hj212Frame>();
  private readonly counts: Hj212SessionStats = { frames: 0, rejections: {}, dropped: 0, bytes: 0 };
  private readonly maxQueued: number;
  private readonly onData = (chunk: Uint8Array | string) => this.feed(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  private readonly onClose = () => this.finish(new Hj212Error('HJ212_LINK_CLOSED', 'the serial port closed'));
  private readonly onError = (err: Error) => this.finish(new Hj212Error('HJ212_LINK_CLOSED', `serial port error: ${err.message}`, { cause: err }));

  constructor(
    private readonly port: SerialDuplex,
    private readonly options: Hj212SessionOptions = {},
  ) {
    this.decoder = new Hj212StreamDecoder(options);
    const max = options.maxQueuedFrames ?? 1000;
    if (!Number.isInteger(max) || max < 1) throw new RangeError('options.maxQueuedFrames must be a positive integer');
    this.maxQueued = max;
    port.on('data', this.onData);
    port.on('close', this.onClose);
    port.on('error', this.onError);
  }

  stats(): Hj212SessionStats {
    return { ...this.counts, rejections: { ...this.counts.rejections } };
  }

  /**
   * Decoded frames until the signal aborts or close() is called (then it simply ends). If the port closes or
   * fails on its own, it throws Hj212Error HJ212_LINK_CLOSED (`disconnected: true`) after the queued frames.
   */
  readings(signal?: AbortSignal): AsyncGenerator<Hj212Frame, void, undefined> {
    return this.queue.drain(signal);
  }

  /** Stops reading and closes the port. */
  async close(): Promise<void> {
    if (!this.queue.ended) this.finish(undefined);
    const port = this.port;
    if (port.isOpen === false) return;
    await new Promise<void>((resolve) => {
      if (typeof port.close === 'function') port.close(() => resolve());
      else {
        port.destroy();
        resolve();
      }
    });
  }

  private feed(chunk: Uint8Array): void {
    if (this.queue.ended) return;
    this.counts.bytes += chunk.length;
    this.deliver(this.decoder.push(chunk));
  }

  private deliver(results: Hj212DecodeResult[]): void {
    for (const r of results) {
      if (r.ok) {
        this.counts.frames++;
        if (this.queue.length >= this.maxQueued) {
          this.queue.shift();
          this.counts.dropped++;
        }
        this.queue.push(r);
        if (this.options.acknowledge === true) this.acknowledge(r);
      } else {
        this.counts.rejections[r.error.code] = (this.counts.rejections[r.error.code] ?? 0) + r.error.candidates; // a folded run counts each
        this.options.onRejection?.(r);
      }
    }
    if (results.length > 0) this.queue.wake();
  }

  private acknowledge(frame: Hj212Frame): void {
    const h = frame.parsed.header;
    if (frame.parsed.flag_decoded?.A_ack_required !== 1 || h.QN === undefined || h.MN === undefined || h.PW === undefined) return;
    if (h.CN === undefined || h.CN.startsWith('9')) return; // answers are not answered
    this.port.write(encodeDataAnswer({ qn: h.QN, mn: h.MN, pw: h.PW, crc: this.decoder.crc }));
  }

  private finish(failure: Hj212Error | undefined): void {
    if (this.queue.ended) return;
    this.deliver(this.decoder.end());
    this.queue.end(failure);
    this.port.off('data', this.onData);
    this.port.off('close', this.onClose);
    // The error listener stays: a late error on a closed port must not become an unhandled 'error' event.
    this.queue.wake();
  }
}
