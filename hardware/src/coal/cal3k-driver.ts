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
import { StreamSession, type StreamSessionOptions, streamDriver } from '../driver/stream-session.ts';
import type { SensorDriver } from '../driver/types.ts';

export interface Cal3kDriverOptions extends StreamSessionOptions, Cal3kOptions {
  /** Sensor id of the readings. Default `cal3k`. */
  sensor?: string;
  /** Report DRIVER_TIMEOUT when no record came for this long (a calorimeter is quiet for minutes: default off). */
  silenceTimeoutMs?: number;
}

class Cal3kSession extends StreamSession<Cal3kEvent, Cal3kStreamDecoder, Cal3kDriverOptions> {
  constructor(transport: SerialTransport, options: Cal3kDriverOptions) {
    super(transport, options, (o) => new Cal3kStreamDecoder({ ...o, keepBytes: true }), 'CAL3K record');
  }

  protected override deliver(events: Cal3kEvent[]): void {
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
export const cal3kDriver: SensorDriver<Cal3kDriverOptions> = streamDriver('cal3k', (options: Cal3kDriverOptions, transport) => new Cal3kSession(transport, options));
