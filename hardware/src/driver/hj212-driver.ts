/**
 * HJ 212 data logger driver: a SerialTransport's bytes through Hj212StreamDecoder; each accepted frame becomes
 * a SensorReading (measurements from its CP, the frame and its SHA-256). Rejections (bad CRC, noise, truncated
 * frames) are issues with the decoder's code. A broken link ends the frame in progress: its bytes are reported
 * as HJ212_TRUNCATED and the next connection starts with a fresh decoder, so half a frame before a cut and half
 * after can never be glued into one.
 */
import { concatBytes } from '@stele/core';
import { Hj212StreamDecoder, type Hj212DecoderOptions } from '../hj212/decoder.ts';
import { encodeDataAnswer } from '../hj212/encoder.ts';
import { measurementsFromFrame, recordFieldsOf } from '../hj212/measurements.ts';
import { Hj212Reassembler } from '../hj212/reassembler.ts';
import type { Hj212DecodeResult, Hj212Frame } from '../hj212/types.ts';
import type { SerialTransport } from '../transport/serial-transport.ts';
import { StreamSession, type StreamSessionOptions, streamDriver } from './stream-session.ts';
import type { SensorDriver } from './types.ts';

export interface Hj212DriverOptions extends StreamSessionOptions, Hj212DecoderOptions {
  /** Sensor id for the readings. Default: the frame's MN (the data logger id). */
  sensor?: string;
  /** Answer uploads that ask for it (Flag A=1) with CN=9014, as a platform would. Default false (listen only). */
  acknowledge?: boolean;
  /** Report DRIVER_TIMEOUT when no frame was accepted for this long while the link is up (again every period). Default off. */
  silenceTimeoutMs?: number;
  /** Give up on a split message (PNUM/PNO) whose parts have not all arrived after this long. Default 60 000 ms. */
  splitTimeoutMs?: number;
}

class Hj212Session extends StreamSession<Hj212DecodeResult, Hj212StreamDecoder, Hj212DriverOptions> {
  /** Split uploads (PNUM/PNO, HJ 212-2017 table C.49) become one reading once every part is in. */
  private readonly reassembler = new Hj212Reassembler();

  constructor(transport: SerialTransport, options: Hj212DriverOptions) {
    super(transport, options, (o) => new Hj212StreamDecoder(o), 'HJ 212 frame');
  }

  protected override deliver(results: Hj212DecodeResult[]): void {
    for (const r of results) {
      if (r.ok) {
        this.armSilence();
        const now = this.core.now();
        const events = [...this.reassembler.add(r, now), ...this.reassembler.expire(now, this.options.splitTimeoutMs ?? 60_000)];
        for (const e of events) {
          if (e.kind === 'message') {
            const frames = e.message.frames;
            const first = frames[0]!;
            const anomalies = frames.flatMap((f) => f.anomalies.map((a) => ({ code: a.code, message: a.message })));
            // The logger's DataTime (interval start for 2051/2061/2031, sampling moment for 2011) and CN travel
            // in the signed reading (FORMAT.md §2.3) so rules can build clock hours; a DataTime that is not a
            // valid YYYYMMDDhhmmss[zzz] is left out (it stays in the signed frame) and reported as an anomaly.
            const { itime, rtype, badDataTime } = recordFieldsOf(e.message.cp, first.parsed.header.CN);
            if (badDataTime !== undefined) {
              anomalies.push({ code: 'BAD_DATATIME', message: `DataTime ${JSON.stringify(badDataTime.slice(0, 40))} is not YYYYMMDDhhmmss[zzz]; reading has no itime` });
            }
            this.core.push({
              sensor: this.options.sensor ?? first.parsed.header.MN ?? 'hj212',
              time: now,
              ...(itime === undefined ? {} : { itime }),
              ...(rtype === undefined ? {} : { rtype }),
              meas: measurementsFromFrame({ cp: e.message.cp }),
              raw: frames.map((f) => f.sha256),
              frames: frames.map((f) => f.raw),
              ...(anomalies.length > 0 ? { anomalies } : {}),
            });
          } else {
            // Never a partial reading: the parts that did arrive are reported with their bytes, not signed.
            this.core.issue({ code: e.error.code, error: e.error, raw: concatBytes(...e.frames.map((f) => f.raw)), sensor: e.key.mn });
          }
        }
        if (this.options.acknowledge === true) this.acknowledge(r);
      } else {
        this.core.issue({
          code: r.error.code,
          error: r.error,
          ...(r.raw === undefined ? {} : { raw: r.raw }),
          ...(r.parsed?.header.MN === undefined ? {} : { sensor: r.parsed.header.MN }),
        });
      }
    }
  }

  private acknowledge(frame: Hj212Frame): void {
    const h = frame.parsed.header;
    if (frame.parsed.flag_decoded?.A_ack_required !== 1 || h.QN === undefined || h.MN === undefined || h.PW === undefined) return;
    if (h.CN === undefined || h.CN.startsWith('9')) return; // answers are not answered
    this.transport.write(encodeDataAnswer({ qn: h.QN, mn: h.MN, pw: h.PW, crc: this.decoder.crc })).catch(() => {
      // a lost answer is the logger's to retry (HJ 212-2017 §6.1: it resends after its timeout)
    });
  }
}


/** The HJ 212 driver (listen-only by default). */
export const hj212Driver: SensorDriver<Hj212DriverOptions> = streamDriver('hj212', (options: Hj212DriverOptions, transport) => new Hj212Session(transport, options));
