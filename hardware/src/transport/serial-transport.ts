/**
 * One serial port that survives the field: opened by a stable name (/dev/serial/by-id/…, resolved and logged at
 * every open because a replugged adapter may come back as another ttyUSBn), per-port line settings, and
 * reconnection with bounded, jittered exponential backoff when the port goes away. Each transport owns its own
 * timers and port: one failing instrument never stalls another.
 *
 * Bytes in arrive through onData(); drivers write with write(). Status changes (open, closed, reconnecting,
 * error with a SerialError naming the path) go to onStatus() listeners and to the log.
 */
import { realpath } from 'node:fs/promises';
import { SerialPort, SerialPortMock } from 'serialport';
import { type BackoffPolicy, backoffDelayMs, resolveBackoff } from './backoff.ts';
import { SerialError, openFailureCode } from './errors.ts';

type MockBindingInterface = typeof SerialPortMock.binding;

export type Parity = 'none' | 'even' | 'odd' | 'mark' | 'space';

/** Line settings of one port. */
export interface SerialSettings {
  /** Device path; prefer /dev/serial/by-id/… (stable across replugging and reboots). */
  path: string;
  baudRate: number;
  /** Default 8. */
  dataBits?: 5 | 6 | 7 | 8;
  /** Default 'none'. */
  parity?: Parity;
  /** Default 1. */
  stopBits?: 1 | 1.5 | 2;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
/** A plain function or a pino-like logger (same shape as edge-agent's Logger). */
export type TransportLogger =
  | ((level: LogLevel, msg: string, fields: Record<string, unknown>) => void)
  | { [L in LogLevel]: (obj: object, msg?: string) => void };

export interface SerialTransportOptions extends SerialSettings {
  /** Reconnect policy after the port goes away; `false` to stay closed. Default: enabled, DEFAULT_BACKOFF. */
  reconnect?: BackoffPolicy | false;
  /** Keep retrying (with the reconnect policy) when the first open() fails, e.g. the adapter is not plugged in yet. Default false: open() rejects. */
  retryInitialOpen?: boolean;
  /** Use serialport's mock stream with this binding (tests, demos). Default: the native binding. */
  binding?: MockBindingInterface;
  /** Resolves the configured path to the device. Default fs.realpath (identity with `binding`). */
  resolvePath?: (path: string) => Promise<string>;
  log?: TransportLogger;
  /** Randomness for jitter. Default Math.random. */
  random?: () => number;
  /**
   * While open, check this often that the path still resolves to the device that was opened; when it does not
   * (udev removed the by-id link of an unplugged adapter, socat's link went with socat), treat the port as
   * disconnected. Needed because @serialport/bindings-cpp 13 on Linux re-reads forever when a hung-up tty
   * returns EOF, so such a disconnect never surfaces on its own. Default 500 ms (0 = off; off with `binding`).
   */
  presenceCheckMs?: number;
}

export type TransportState = 'idle' | 'opening' | 'open' | 'reconnecting' | 'closed';

export type SerialStatus =
  | { type: 'open'; path: string; realPath: string; baudRate: number; parity: Parity; dataBits: number; stopBits: number }
  | { type: 'closed'; path: string; reason: 'requested' | 'disconnected' | 'gave-up'; willReconnect: boolean }
  | { type: 'reconnecting'; path: string; attempt: number; delayMs: number }
  | { type: 'error'; path: string; error: SerialError };

export interface SerialTransportStats {
  opens: number;
  disconnects: number;
  failedOpens: number;
  bytesIn: number;
  bytesOut: number;
}

type Port = SerialPort | SerialPortMock;

export class SerialTransport {
  readonly path: string;
  readonly settings: Readonly<Required<SerialSettings>>;
  private readonly backoff: Required<BackoffPolicy> | undefined;
  private readonly options: SerialTransportOptions;
  private port: Port | undefined;
  private current: TransportState = 'idle';
  private resolved: string | undefined;
  private attempt = 0;
  private timer: NodeJS.Timeout | undefined;
  private presenceTimer: NodeJS.Timeout | undefined;
  private readonly pendingWrites = new Set<(err: unknown) => void>();
  private readonly dataListeners = new Set<(chunk: Uint8Array) => void>();
  private readonly statusListeners = new Set<(status: SerialStatus) => void>();
  private waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private readonly counts: SerialTransportStats = { opens: 0, disconnects: 0, failedOpens: 0, bytesIn: 0, bytesOut: 0 };

  constructor(options: SerialTransportOptions) {
    if (options === null || typeof options !== 'object') throw new TypeError('options must be an object');
    if (typeof options.path !== 'string' || options.path === '') throw new TypeError('options.path must be a non-empty string');
    if (!(Number.isInteger(options.baudRate) && options.baudRate > 0)) throw new RangeError('options.baudRate must be a positive integer');
    const settings = { path: options.path, baudRate: options.baudRate, dataBits: options.dataBits ?? 8, parity: options.parity ?? 'none', stopBits: options.stopBits ?? 1 } as const;
    if (![5, 6, 7, 8].includes(settings.dataBits)) throw new RangeError('options.dataBits must be 5, 6, 7 or 8');
    if (!['none', 'even', 'odd', 'mark', 'space'].includes(settings.parity)) throw new RangeError('options.parity must be none, even, odd, mark or space');
    if (![1, 1.5, 2].includes(settings.stopBits)) throw new RangeError('options.stopBits must be 1, 1.5 or 2');
    this.path = options.path;
    this.settings = settings;
    this.options = options;
    this.backoff = options.reconnect === false ? undefined : resolveBackoff(options.reconnect ?? {});
  }

  get state(): TransportState {
    return this.current;
  }

  /** The device the path resolved to at the last open attempt. */
  get realPath(): string | undefined {
    return this.resolved;
  }

  stats(): SerialTransportStats {
    return { ...this.counts };
  }

  /** Listeners currently attached (drivers must detach on close). */
  listenerCount(): { data: number; status: number } {
    return { data: this.dataListeners.size, status: this.statusListeners.size };
  }

  /** Subscribes to received bytes; returns the unsubscribe function. */
  onData(listener: (chunk: Uint8Array) => void): () => void {
    this.dataListeners.add(listener);
    return () => this.dataListeners.delete(listener);
  }

  /** Subscribes to status changes; returns the unsubscribe function. */
  onStatus(listener: (status: SerialStatus) => void): () => void {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }

  /**
   * Opens the port. Resolves once open. A failure rejects with SerialError SERIAL_OPEN_FAILED or
   * SERIAL_PERMISSION_DENIED, unless `retryInitialOpen` is set: then it keeps trying with the reconnect policy.
   * Idempotent while open or opening.
   */
  async open(): Promise<void> {
    if (this.current === 'open') return;
    if (this.current === 'opening' || this.current === 'reconnecting') return this.whenOpen();
    this.current = 'opening';
    this.attempt = 0;
    const error = await this.tryOpen();
    if (error === undefined) return;
    if (this.options.retryInitialOpen === true && this.backoff !== undefined && this.current === 'opening') {
      const opened = this.whenOpen();
      this.scheduleReconnect();
      return opened;
    }
    if (this.current === 'opening') this.current = 'closed';
    this.rejectWaiters(error);
    throw error;
  }

  /** Resolves when the port is open; rejects with SERIAL_DISCONNECTED once the transport is closed for good. */
  whenOpen(signal?: AbortSignal): Promise<void> {
    if (this.current === 'open') return Promise.resolve();
    if (this.current === 'closed' || this.current === 'idle') {
      return Promise.reject(new SerialError('SERIAL_DISCONNECTED', `${this.path} is not open`, this.where()));
    }
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (e: Error) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      };
      const onAbort = () => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(signal?.reason ?? new Error('aborted'));
      };
      if (signal?.aborted === true) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  /** Writes and drains. Rejects with SERIAL_DISCONNECTED when the port is not open or goes away meanwhile. */
  write(bytes: Uint8Array): Promise<void> {
    const port = this.port;
    if (this.current !== 'open' || port === undefined) {
      return Promise.reject(new SerialError('SERIAL_DISCONNECTED', `${this.path} is not open (${this.current})`, this.where()));
    }
    return new Promise<void>((resolve, reject) => {
      // serialport queues a write on a port that is closing until it reopens, which this port object never
      // does: such a write would hang. Every pending write is therefore also failed when the port goes away.
      let settled = false;
      const settle = (err: unknown) => {
        if (settled) return;
        settled = true;
        this.pendingWrites.delete(settle);
        if (err === undefined) {
          this.counts.bytesOut += bytes.length;
          resolve();
        } else reject(err instanceof SerialError ? err : new SerialError('SERIAL_DISCONNECTED', `write to ${this.path} failed`, { ...this.where(), cause: err }));
      };
      this.pendingWrites.add(settle);
      port.write(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), (err) => {
        if (err) return settle(err);
        port.drain((err2) => settle(err2 ?? undefined));
      });
    });
  }

  private failWrites(error: SerialError): void {
    for (const settle of [...this.pendingWrites]) settle(error);
  }

  /** Closes the port and stops reconnecting. Safe to call more than once. */
  async close(): Promise<void> {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.presenceTimer !== undefined) clearTimeout(this.presenceTimer);
    this.presenceTimer = undefined;
    const was = this.current;
    this.current = 'closed';
    const port = this.port;
    this.port = undefined;
    if (port !== undefined) {
      port.removeAllListeners('data');
      port.removeAllListeners('close');
      port.on('error', () => {}); // a late error on a closed port must not become an unhandled 'error' event
      if (port.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
    }
    const closedError = new SerialError('SERIAL_DISCONNECTED', `${this.path} was closed`, this.where());
    this.failWrites(closedError);
    this.rejectWaiters(closedError);
    if (was !== 'closed' && was !== 'idle') {
      this.emit({ type: 'closed', path: this.path, reason: 'requested', willReconnect: false });
      this.log('info', 'serial port closed', { path: this.path });
    }
  }

  private where(): { path: string; realPath?: string } {
    return this.resolved === undefined ? { path: this.path } : { path: this.path, realPath: this.resolved };
  }

  /** One open attempt; on failure emits an error status and returns the error. */
  private async tryOpen(): Promise<SerialError | undefined> {
    let real: string;
    try {
      const resolve = this.options.resolvePath ?? (this.options.binding === undefined ? (p: string) => realpath(p) : async (p: string) => p);
      real = await resolve(this.path);
      this.resolved = real;
    } catch (err) {
      return this.openFailed(err);
    }
    const { baudRate, dataBits, parity, stopBits } = this.settings;
    const common = { path: real, baudRate, dataBits, parity, stopBits, autoOpen: false } as const;
    const port: Port =
      this.options.binding === undefined ? new SerialPort(common) : new SerialPortMock({ ...common, binding: this.options.binding } as ConstructorParameters<typeof SerialPortMock>[0]);
    port.on('error', (err) => this.log('warn', 'serial port error', { path: this.path, realPath: real, error: err.message }));
    const err = await new Promise<Error | null>((resolve) => port.open((e) => resolve(e ?? null)));
    if (err !== null) return this.openFailed(err);
    if (this.current === 'closed') {
      // close() was called while opening.
      await new Promise<void>((resolve) => port.close(() => resolve()));
      return new SerialError('SERIAL_DISCONNECTED', `${this.path} was closed while opening`, this.where());
    }
    this.port = port;
    port.on('data', (chunk: Buffer) => {
      this.counts.bytesIn += chunk.length;
      const bytes = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      for (const listener of [...this.dataListeners]) listener(bytes);
    });
    port.on('close', (closeErr: Error | null) => this.portWentAway(port, closeErr ?? undefined));
    port.on('end', () => {
      if (port.isOpen) port.close();
    });
    this.current = 'open';
    this.attempt = 0;
    this.counts.opens++;
    this.watchPresence(port, real);
    this.log('info', 'serial port open', { path: this.path, realPath: real, baudRate, parity, dataBits, stopBits });
    this.emit({ type: 'open', path: this.path, realPath: real, baudRate, parity, dataBits, stopBits });
    for (const w of this.waiters.splice(0)) w.resolve();
    return undefined;
  }

  private openFailed(err: unknown): SerialError {
    this.counts.failedOpens++;
    const code = openFailureCode(err);
    const error = new SerialError(code, `cannot open ${this.path}${this.resolved !== undefined && this.resolved !== this.path ? ` (${this.resolved})` : ''}`, {
      ...this.where(),
      cause: err,
    });
    this.log('warn', 'serial port open failed', { path: this.path, realPath: this.resolved, code, error: err instanceof Error ? err.message : String(err) });
    this.emit({ type: 'error', path: this.path, error });
    return error;
  }

  private watchPresence(port: Port, real: string): void {
    const everyMs = this.options.presenceCheckMs ?? (this.options.binding === undefined ? 500 : 0);
    if (!(everyMs > 0)) return;
    const resolve = this.options.resolvePath ?? ((p: string) => realpath(p));
    const tick = () => {
      this.presenceTimer = undefined;
      if (port !== this.port || this.current !== 'open') return;
      resolve(this.path).then(
        (now) => (now === real ? undefined : new Error(`${this.path} now resolves to ${now}, not ${real}`)),
        (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
      ).then((gone) => {
        if (port !== this.port || this.current !== 'open') return;
        if (gone === undefined) {
          this.presenceTimer = setTimeout(tick, everyMs);
          return;
        }
        this.portWentAway(port, gone);
        if (port.isOpen) port.close();
      });
    };
    this.presenceTimer = setTimeout(tick, everyMs);
  }

  private portWentAway(port: Port, cause: Error | undefined): void {
    if (port !== this.port || this.current !== 'open') return;
    this.port = undefined;
    if (this.presenceTimer !== undefined) clearTimeout(this.presenceTimer);
    this.presenceTimer = undefined;
    port.removeAllListeners('close');
    port.removeAllListeners('data');
    this.counts.disconnects++;
    const error = new SerialError('SERIAL_DISCONNECTED', `${this.path} went away`, { ...this.where(), cause });
    this.failWrites(error);
    const willReconnect = this.backoff !== undefined;
    this.log('warn', 'serial port disconnected', { path: this.path, realPath: this.resolved, willReconnect });
    this.emit({ type: 'error', path: this.path, error });
    this.current = willReconnect ? 'reconnecting' : 'closed';
    this.emit({ type: 'closed', path: this.path, reason: 'disconnected', willReconnect });
    if (willReconnect) this.scheduleReconnect();
    else this.rejectWaiters(error);
  }

  private scheduleReconnect(): void {
    const policy = this.backoff;
    if (policy === undefined) return;
    this.attempt++;
    if (this.attempt > policy.maxAttempts) {
      this.current = 'closed';
      this.log('error', 'serial port: giving up reconnecting', { path: this.path, attempts: this.attempt - 1 });
      this.emit({ type: 'closed', path: this.path, reason: 'gave-up', willReconnect: false });
      this.rejectWaiters(new SerialError('SERIAL_DISCONNECTED', `${this.path}: gave up after ${this.attempt - 1} attempts`, this.where()));
      return;
    }
    this.current = 'reconnecting';
    const delayMs = backoffDelayMs(this.attempt, policy, this.options.random);
    this.emit({ type: 'reconnecting', path: this.path, attempt: this.attempt, delayMs });
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.tryOpen().then((error) => {
        if (error !== undefined && this.current === 'reconnecting') this.scheduleReconnect();
      });
    }, delayMs);
  }

  private rejectWaiters(error: Error): void {
    for (const w of this.waiters.splice(0)) w.reject(error);
  }

  private emit(status: SerialStatus): void {
    for (const listener of [...this.statusListeners]) listener(status);
  }

  private log(level: LogLevel, msg: string, fields: Record<string, unknown>): void {
    const log = this.options.log;
    if (log === undefined) return;
    if (typeof log === 'function') log(level, msg, fields);
    else log[level](fields, msg);
  }
}
