/**
 * The session shape shared by listen-only drivers whose bytes go through a stream decoder (HJ 212, CAL3K): the
 * transport's bytes into the decoder, its results to the driver's `deliver`, a fresh decoder per connection, and
 * an optional silence timer that reports DRIVER_TIMEOUT. Subclasses only say what a decoded result becomes.
 */
import type { SerialTransport } from '../transport/serial-transport.ts';
import { DriverError, SessionCore } from './session-core.ts';
import type { DriverCommonOptions, SensorDriver, SensorReading, SensorSession, SessionStats } from './types.ts';

/** A push decoder over a byte stream: `end()` flushes what is in progress when the stream stops. */
export interface StreamDecoder<R> {
  push(chunk: Uint8Array): R[];
  end(): R[];
}

export interface StreamSessionOptions extends DriverCommonOptions {
  /** Report DRIVER_TIMEOUT when nothing was accepted for this long while the link is up (again every period). */
  silenceTimeoutMs?: number;
}

export abstract class StreamSession<R, D extends StreamDecoder<R>, O extends StreamSessionOptions> implements SensorSession {
  protected decoder: D;
  protected readonly core: SessionCore;
  private readonly unsubscribe: () => void;
  private silenceTimer: NodeJS.Timeout | undefined;

  /** `silenceWhat` names what did not arrive in the DRIVER_TIMEOUT message, e.g. `HJ 212 frame`. */
  constructor(
    protected readonly transport: SerialTransport,
    protected readonly options: O,
    private readonly createDecoder: (options: O) => D,
    private readonly silenceWhat: string,
  ) {
    this.decoder = createDecoder(options);
    this.core = new SessionCore(transport, options, (event) => this.link(event), () => this.stop());
    this.unsubscribe = transport.onData((chunk) => this.deliver(this.decoder.push(chunk)));
    this.armSilence();
  }

  /** Turns decoded results into readings and issues on `core`; calls armSilence() for each accepted one. */
  protected abstract deliver(results: R[]): void;

  readings(signal?: AbortSignal): AsyncIterable<SensorReading> {
    return this.core.readings(signal);
  }

  stats(): SessionStats {
    return this.core.stats();
  }

  async close(): Promise<void> {
    this.core.finish();
  }

  private stop(): void {
    this.unsubscribe();
    if (this.silenceTimer !== undefined) clearTimeout(this.silenceTimer);
    this.silenceTimer = undefined;
  }

  private link(event: 'down' | 'up'): void {
    if (event === 'down') {
      // The unit in progress is lost with the link: report it, and never glue it to bytes of the next connection.
      this.deliver(this.decoder.end());
      this.decoder = this.createDecoder(this.options);
      if (this.silenceTimer !== undefined) clearTimeout(this.silenceTimer);
      this.silenceTimer = undefined;
    } else {
      this.armSilence();
    }
  }

  /** (Re)starts the silence timer; a no-op unless `silenceTimeoutMs` is a positive number. */
  protected armSilence(): void {
    const ms = this.options.silenceTimeoutMs;
    if (ms === undefined || ms <= 0) return;
    if (this.silenceTimer !== undefined) clearTimeout(this.silenceTimer);
    this.silenceTimer = setTimeout(() => {
      this.silenceTimer = undefined;
      if (this.core.closed) return;
      this.core.issue({
        code: 'DRIVER_TIMEOUT',
        error: new DriverError('DRIVER_TIMEOUT', `no ${this.silenceWhat} from ${this.transport.path} for ${ms} ms`, { where: { path: this.transport.path } }),
      });
      this.armSilence();
    }, ms);
  }
}

/**
 * A listen-only driver's open(): checks the options, builds the session (so no status is missed), then opens
 * the transport; if that fails, the session is closed and the failure rethrown.
 */
export function streamDriver<O extends DriverCommonOptions>(kind: string, create: (options: O, transport: SerialTransport) => SensorSession): SensorDriver<O> {
  return {
    kind,
    async open(options: O, transport: SerialTransport): Promise<SensorSession> {
      if (options === null || typeof options !== 'object') throw new TypeError('options must be an object');
      const session = create(options, transport);
      try {
        await transport.open();
      } catch (err) {
        await session.close();
        throw err;
      }
      return session;
    },
  };
}
