/**
 * CAL3K calorimeter driver (SensorDriver shape, driver/types.ts): a SerialTransport's bytes (RS-232 port D1,
 * 8N1, PROTOCOLS.md §3.1) through Cal3kStreamDecoder. A final record becomes a SensorReading (measurements, the
 * record bytes and their SHA-256); a record that is not final is an issue COAL_NOT_FINAL (counted and surfaced,
 * never signed); a rejected record is an issue with the decoder's code. A broken link ends the record in
 * progress (COAL_BAD_RECORD) and the next connection starts with a fresh decoder.
 */
import { CoalError } from './errors.ts';
import { type Cal3kEvent, type Cal3kOptions, Cal3kStreamDecoder } from './cal3k.ts';
import type { SerialTransport } from '../transport/serial-transport.ts';
import { DriverError, SessionCore } from '../driver/session-core.ts';
import type { DriverCommonOptions, SensorDriver, SensorReading, SensorSession, SessionStats } from '../driver/types.ts';

export interface Cal3kDriverOptions extends DriverCommonOptions, Cal3kOptions {
  /** Sensor id of the readings. Default `cal3k`. */
  sensor?: string;
  /** Report DRIVER_TIMEOUT when no record came for this long (a calorimeter is quiet for minutes: default off). */
  silenceTimeoutMs?: number;
}

class Cal3kSession implements SensorSession {
  private decoder: Cal3kStreamDecoder;
  private readonly core: SessionCore;
  private readonly unsubscribe: () => void;
  private silenceTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly transport: SerialTransport,
    private readonly options: Cal3kDriverOptions,
  ) {
    this.decoder = new Cal3kStreamDecoder({ ...options, keepBytes: true });
    this.core = new SessionCore(transport, options, (event) => this.link(event), () => this.stop());
    this.unsubscribe = transport.onData((chunk) => this.deliver(this.decoder.push(chunk)));
    this.armSilence();
  }

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
      this.deliver(this.decoder.end());
      this.decoder = new Cal3kStreamDecoder({ ...this.options, keepBytes: true });
      if (this.silenceTimer !== undefined) clearTimeout(this.silenceTimer);
      this.silenceTimer = undefined;
    } else {
      this.armSilence();
    }
  }

  private armSilence(): void {
    const ms = this.options.silenceTimeoutMs;
    if (ms === undefined || ms <= 0) return;
    if (this.silenceTimer !== undefined) clearTimeout(this.silenceTimer);
    this.silenceTimer = setTimeout(() => {
      this.silenceTimer = undefined;
      if (this.core.closed) return;
      this.core.issue({
        code: 'DRIVER_TIMEOUT',
        error: new DriverError('DRIVER_TIMEOUT', `no CAL3K record from ${this.transport.path} for ${ms} ms`, { where: { path: this.transport.path } }),
      });
      this.armSilence();
    }, ms);
  }

  private deliver(events: Cal3kEvent[]): void {
    const sensor = this.options.sensor ?? 'cal3k';
    for (const e of events) {
      if (e.type === 'header') continue;
      if (e.type === 'rejected') {
        this.core.issue({ code: e.error.code, error: e.error, sensor });
        continue;
      }
      this.armSilence();
      const r = e.result;
      if (!r.final) {
        const error = new CoalError('COAL_NOT_FINAL', `record for ${r.sampleId} has status ${r.status}`, { where: { sampleId: r.sampleId, status: r.status } });
        this.core.issue({ code: 'COAL_NOT_FINAL', error, sensor, ...(r.bytes === undefined ? {} : { raw: r.bytes }) });
        continue;
      }
      this.core.push({ sensor, time: this.core.now(), meas: r.meas, raw: [r.raw], frames: r.bytes === undefined ? [] : [r.bytes] });
    }
  }
}

/** The CAL3K driver (listen-only: the unit sends each record unsolicited). */
export const cal3kDriver: SensorDriver<Cal3kDriverOptions> = {
  kind: 'cal3k',
  async open(options: Cal3kDriverOptions, transport: SerialTransport): Promise<SensorSession> {
    if (options === null || typeof options !== 'object') throw new TypeError('options must be an object');
    const session = new Cal3kSession(transport, options);
    try {
      await transport.open();
    } catch (err) {
      await session.close();
      throw err;
    }
    return session;
  },
};
