/**
 * A USB Firmata board (Arduino with StandardFirmata) as a source of readings, built on johnny-five. Kept in this
 * optional package so the core gateway does not carry johnny-five (unmaintained since 2021) and its serialport 8
 * (DEPENDENCIES.md §1). The IO object is passed in: firmata-io's `Firmata` over a serialport 13 port in
 * production (DEPENDENCIES.md snippet 1b), mock-firmata in tests (snippet 1a).
 *
 * Each configured pin gets a johnny-five `Sensor` (analog or digital). Every `intervalMs` the board yields the
 * latest raw value of each pin that has reported: analog pins as ADC counts (`kind: 'adc'`, unit `count`: the raw
 * sample, not johnny-five's median-filtered `value`), digital pins as `0`/`1` (`kind: 'digital'`). johnny-five does
 * not expose the Firmata wire bytes, so the reading's `raw` digest is SHA-256 of the canonical sample text
 * (`A0=512;D2=1`), which is what the values were taken from.
 */
import five from 'johnny-five';
import type { Board, FirmataLikeIo, Sensor } from 'johnny-five';
import { sha256 } from '@stele/core';
import type { Measurement } from '@stele/core';
import { FirmataError } from './errors.ts';

export interface FirmataPin {
  /** `A0`…`A5` (analog channel) or a digital pin number. */
  pin: string | number;
  mode: 'analog' | 'digital';
  /** Measurement code. Default: `A0`, `D2`… */
  code?: string;
  /** Digital inputs: enable the internal pull-up (Firmata 2.5 PULLUP mode). Default false. */
  pullup?: boolean;
}

export interface FirmataBoardOptions {
  /** A Firmata-compatible IO object (firmata-io Firmata, mock-firmata). */
  io: unknown;
  pins: readonly FirmataPin[];
  /** Time between yielded samples, ms. Default 1000. */
  intervalMs?: number;
  /** How long to wait for the board to become ready, ms. Default 10 000. */
  readyTimeoutMs?: number;
}

export interface FirmataSample {
  /** Gateway clock, ms. */
  time: number;
  meas: Measurement[];
  /** SHA-256 of the canonical sample text. */
  raw: Uint8Array[];
  /** The canonical sample text itself. */
  text: string;
}

function defaultCode(p: FirmataPin): string {
  if (p.code !== undefined) return p.code;
  if (typeof p.pin === 'string') return p.pin.toUpperCase();
  return p.mode === 'analog' ? `A${p.pin}` : `D${p.pin}`;
}

export class FirmataBoard {
  private readonly sensors: Sensor[] = [];
  private readonly latest: (number | null)[];
  private readonly codes: string[];
  private failure: FirmataError | undefined;
  private closed = false;
  private wake: (() => void) | undefined;
  private readonly io: FirmataLikeIo;
  private readonly onClose = () => this.fail(new FirmataError('FIRMATA_DISCONNECTED', 'the board link closed'));
  private readonly onError = (e: unknown) => this.fail(new FirmataError('FIRMATA_DISCONNECTED', 'the board link failed', { cause: e }));

  private constructor(
    readonly board: Board,
    private readonly options: FirmataBoardOptions,
  ) {
    this.io = board.io;
    this.codes = options.pins.map(defaultCode);
    this.latest = options.pins.map(() => null);
    const freq = options.intervalMs ?? 1000;
    options.pins.forEach((p, i) => {
      const sensor = new five.Sensor({ pin: p.pin, type: p.mode, freq, board });
      if (p.pullup) {
        const pullup = board.io.MODES.PULLUP;
        if (pullup === undefined) throw new RangeError('this IO has no PULLUP mode');
        board.io.pinMode(typeof p.pin === 'number' ? p.pin : Number(p.pin), pullup);
      }
      sensor.on('data', () => {
        this.latest[i] = sensor.raw;
      });
      this.sensors.push(sensor);
    });
    this.io.on('close', this.onClose);
    this.io.on('disconnect', this.onClose);
    this.io.on('error', this.onError);
  }

  /** Creates the johnny-five Board on `options.io` and resolves when it is ready (FIRMATA_NOT_READY otherwise). */
  static async open(options: FirmataBoardOptions): Promise<FirmataBoard> {
    if (options === null || typeof options !== 'object' || options.io === null || typeof options.io !== 'object') throw new TypeError('options.io must be a Firmata IO object');
    if (!Array.isArray(options.pins) || options.pins.length === 0) throw new TypeError('options.pins must list at least one pin');
    for (const p of options.pins) {
      if (p.mode !== 'analog' && p.mode !== 'digital') throw new RangeError(`pin ${String(p.pin)}: mode must be analog or digital`);
      if (p.mode === 'analog' && typeof p.pin === 'string' && !/^A\d+$/i.test(p.pin)) throw new RangeError(`pin ${p.pin}: analog pins are A0, A1…`);
      if (p.mode === 'digital' && (typeof p.pin !== 'number' || !Number.isInteger(p.pin) || p.pin < 0)) throw new RangeError(`pin ${String(p.pin)}: digital pins are numbers`);
    }
    const interval = options.intervalMs ?? 1000;
    if (!(interval > 0)) throw new RangeError('options.intervalMs must be > 0');
    const timeoutMs = options.readyTimeoutMs ?? 10_000;
    const board = new five.Board({ io: options.io, repl: false, debug: false, sigint: false, timeout: timeoutMs });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => done(new FirmataError('FIRMATA_NOT_READY', `board not ready within ${timeoutMs} ms`)), timeoutMs);
      const onReady = () => done();
      const onError = (e: unknown) => done(new FirmataError('FIRMATA_NOT_READY', 'board failed before ready', { cause: e }));
      function done(err?: FirmataError) {
        clearTimeout(timer);
        board.off('ready', onReady);
        board.off('error', onError);
        if (err) reject(err);
        else resolve();
      }
      board.once('ready', onReady);
      board.once('error', onError);
    });
    return new FirmataBoard(board, options);
  }

  /** The latest value of every pin that has reported, with its canonical text and digest. */
  snapshot(): FirmataSample | undefined {
    const meas: Measurement[] = [];
    const parts: string[] = [];
    this.options.pins.forEach((p, i) => {
      const v = this.latest[i];
      if (v === null || v === undefined) return;
      const value = String(v);
      const code = this.codes[i]!;
      parts.push(`${code}=${value}`);
      meas.push(p.mode === 'analog' ? { code, kind: 'adc', value, unit: 'count' } : { code, kind: 'digital', value });
    });
    if (meas.length === 0) return undefined;
    const text = parts.join(';');
    return { time: Date.now(), meas, raw: [sha256(new TextEncoder().encode(text))], text };
  }

  /**
   * A sample every `intervalMs` (once at least one pin has reported) until the signal aborts or close() is
   * called. If the link closes or fails, it throws FirmataError FIRMATA_DISCONNECTED (`disconnected: true`).
   */
  async *readings(signal?: AbortSignal): AsyncGenerator<FirmataSample, void, undefined> {
    const interval = this.options.intervalMs ?? 1000;
    const onAbort = () => this.wake?.();
    signal?.addEventListener('abort', onAbort);
    try {
      for (;;) {
        if (signal?.aborted || this.closed) return;
        if (this.failure !== undefined) throw this.failure;
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => {
            this.wake = undefined;
            resolve();
          }, interval);
          this.wake = () => {
            clearTimeout(t);
            this.wake = undefined;
            resolve();
          };
        });
        if (signal?.aborted || this.closed) return;
        if (this.failure !== undefined) throw this.failure;
        const s = this.snapshot();
        if (s !== undefined) yield s;
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  private fail(err: FirmataError): void {
    if (this.closed || this.failure !== undefined) return;
    this.failure = err;
    for (const s of this.sensors) s.disable();
    this.wake?.();
  }

  /** Stops the sensors' timers and closes the IO's transport when it has one. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.sensors) s.disable();
    this.io.off('close', this.onClose);
    this.io.off('disconnect', this.onClose);
    this.io.off('error', this.onError);
    this.wake?.();
    const t = this.io.transport;
    if (t?.isOpen && typeof t.close === 'function') {
      await new Promise<void>((resolve) => t.close!(() => resolve()));
    }
  }
}
