/**
 * A simulated RS-485 temperature/humidity logger (Modbus RTU slave) of the XY-MD02/SHT20 or MD02 families
 * (PROTOCOLS.md §4.2): answers FC 03/04 reads of its register map on a serial link, ignores frames for other
 * addresses and frames with a bad CRC (as real slaves do), answers unknown registers with exception 02 and
 * unknown functions with exception 01. Values drift as a seeded random walk around a cold-room set point.
 *
 * For tests: `behaviour` makes it answer with noise, half a frame, a bad CRC, an exception, or not at all; an
 * optional sequence register returns a counter of normal answers, so a test can tell every answer apart.
 */
import {
  type DecodedRequest,
  ModbusError,
  decodeRequest,
  encodeException,
  encodeReadResponse,
  requestLength,
} from '@stele/hardware';
import { mulberry32 } from '@stele/core';

export type ModbusThFamily = 'xy-md02' | 'xy-md02-x100' | 'md02';
export type ModbusSlaveBehaviour = 'normal' | 'garbage' | 'bad-crc' | 'truncated' | 'silent' | 'exception';

export interface ModbusThSlaveOptions {
  /** Slave address 1..247. */
  slave: number;
  /** Default 'xy-md02'. */
  family?: ModbusThFamily;
  /** PRNG seed. Default 1. */
  seed?: number;
  /** Set point of the walk. Default 4 °C (a 2–8 °C cold room). */
  meanTemperatureC?: number;
  /** Default 55 %RH. */
  meanHumidityPct?: number;
  /**
   * A register, read with the family's data function code, that returns the number of normal answers sent
   * before this one (mod 65536). Default none. E.g. 0x0003 for XY-MD02 (after T and RH).
   */
  sequenceRegister?: number;
}

export interface ModbusSlaveStats {
  requests: number;
  /** Normal answers (the next sequence number). */
  answers: number;
  exceptions: number;
  ignored: number;
  badCrc: number;
}

/** Both SerialTransport (onData) and MockSerialLine.device / streams (on/off) work as the slave's link. */
export type SlaveLink =
  | { write(bytes: Uint8Array): unknown; onData(listener: (b: Uint8Array) => void): () => void }
  | { write(bytes: Uint8Array): unknown; on(event: 'data', l: (b: Uint8Array) => void): unknown; off(event: 'data', l: (b: Uint8Array) => void): unknown };

export interface AnswerInfo {
  /** Sequence number of a normal answer (undefined for exceptions and faults). */
  seq: number | undefined;
  request: DecodedRequest;
}

export interface AttachOptions {
  /** Sends the answer (default `link.write`); replace to pace it at line speed or to watch it. */
  send?: (bytes: Uint8Array, info: AnswerInfo) => unknown;
  /** Silence after which a partial request is dropped. Default 20 ms (t3.5 is 4 ms at 9600 baud, but pty/USB deliver in bursts). */
  frameGapMs?: number;
}

interface Map {
  dataFc: 0x03 | 0x04;
  scale: number;
  /** register -> channel of the data function */
  data: Record<number, 'temperature' | 'humidity'>;
  /** holding registers (FC 03) for configuration */
  config: Record<number, number>;
}

function mapOf(family: ModbusThFamily, slave: number): Map {
  if (family === 'md02') {
    return { dataFc: 0x03, scale: 10, data: { 0x0000: 'humidity', 0x0001: 'temperature' }, config: { 0x0100: slave, 0x0101: 9600 } };
  }
  return {
    dataFc: 0x04,
    scale: family === 'xy-md02-x100' ? 100 : 10,
    data: { 0x0001: 'temperature', 0x0002: 'humidity' },
    config: { 0x0101: slave, 0x0102: 9600, 0x0103: 0, 0x0104: 0 },
  };
}

export class ModbusThSlave {
  readonly slave: number;
  readonly family: ModbusThFamily;
  behaviour: ModbusSlaveBehaviour = 'normal';
  /**
   * An episode (`stele sim` timelines): the probe reads this temperature (°C) instead of its walk, e.g. a cold room
   * with its door open; undefined again when the episode ends.
   */
  temperatureOverrideC: number | undefined;
  private readonly map: Map;
  private readonly rand: () => number;
  private readonly meanT: number;
  private readonly meanH: number;
  private t: number;
  private h: number;
  private readonly seqRegister: number | undefined;
  private readonly counts: ModbusSlaveStats = { requests: 0, answers: 0, exceptions: 0, ignored: 0, badCrc: 0 };

  constructor(options: ModbusThSlaveOptions) {
    if (!Number.isInteger(options?.slave) || options.slave < 1 || options.slave > 247) throw new RangeError('options.slave must be 1..247');
    this.slave = options.slave;
    this.family = options.family ?? 'xy-md02';
    if (!['xy-md02', 'xy-md02-x100', 'md02'].includes(this.family)) throw new RangeError('options.family must be xy-md02, xy-md02-x100 or md02');
    this.map = mapOf(this.family, this.slave);
    this.rand = mulberry32(options.seed ?? 1);
    this.meanT = options.meanTemperatureC ?? 4;
    this.meanH = options.meanHumidityPct ?? 55;
    this.t = this.meanT;
    this.h = this.meanH;
    this.seqRegister = options.sequenceRegister;
  }

  stats(): ModbusSlaveStats {
    return { ...this.counts };
  }

  /** Raw register value of a channel now (two's complement for negatives). */
  private raw(channel: 'temperature' | 'humidity'): number {
    const v = Math.round((channel === 'temperature' ? (this.temperatureOverrideC ?? this.t) : this.h) * this.map.scale);
    return v < 0 ? v + 0x10000 : v & 0xffff;
  }

  private step(): void {
    // Mean-reverting walk, 0.05 °C / 0.2 %RH steps: plausible for a probe read every few seconds.
    this.t += (this.meanT - this.t) * 0.05 + (this.rand() - 0.5) * 0.1;
    this.h = Math.min(99, Math.max(1, this.h + (this.meanH - this.h) * 0.05 + (this.rand() - 0.5) * 0.4));
  }

  /**
   * The answer to one request frame (pure apart from advancing the walk and counters): the response bytes, or
   * undefined when a real slave would stay silent (another address, broadcast, bad CRC, `silent`).
   */
  answer(frame: Uint8Array): { bytes: Uint8Array; info: AnswerInfo } | undefined {
    let request: DecodedRequest;
    try {
      request = decodeRequest(frame);
    } catch (e) {
      if (e instanceof ModbusError && e.code === 'MODBUS_BAD_CRC') this.counts.badCrc++;
      else this.counts.ignored++;
      return undefined;
    }
    if (request.slave !== this.slave) {
      this.counts.ignored++;
      return undefined;
    }
    this.counts.requests++;
    const fc = request.functionCode;
    const exception = (code: number) => {
      this.counts.exceptions++;
      return { bytes: encodeException(this.slave, fc, code), info: { seq: undefined, request } };
    };
    if (this.behaviour === 'silent') return undefined;
    if (this.behaviour === 'exception') return exception(0x04);
    if (fc !== 0x03 && fc !== 0x04) return exception(0x01);
    const words: number[] = [];
    for (let a = request.address; a < request.address + request.quantity; a++) {
      let w: number | undefined;
      if (a === this.seqRegister && fc === this.map.dataFc) w = this.counts.answers & 0xffff;
      else if (fc === this.map.dataFc && this.map.data[a] !== undefined) w = this.raw(this.map.data[a]!);
      else if (fc === 0x03 && this.map.config[a] !== undefined) w = this.map.config[a];
      if (w === undefined) return exception(0x02);
      words.push(w);
    }
    let bytes = encodeReadResponse(this.slave, fc, words);
    if (this.behaviour === 'garbage') {
      // Noise of the right length that does not start with our address.
      const noise = new Uint8Array(bytes.length);
      for (let i = 0; i < noise.length; i++) noise[i] = Math.floor(this.rand() * 256);
      noise[0] = this.slave ^ 0xff;
      return { bytes: noise, info: { seq: undefined, request } };
    }
    if (this.behaviour === 'bad-crc') {
      bytes = bytes.slice();
      bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0x5a;
      return { bytes, info: { seq: undefined, request } };
    }
    if (this.behaviour === 'truncated') return { bytes: bytes.subarray(0, Math.ceil(bytes.length / 2)), info: { seq: undefined, request } };
    const seq = this.counts.answers++;
    this.step();
    return { bytes, info: { seq, request } };
  }

  /** Listens for requests on `link` and answers them. Returns detach(). */
  attach(link: SlaveLink, options: AttachOptions = {}): { detach(): void } {
    const gapMs = options.frameGapMs ?? 20;
    const send = options.send ?? ((bytes: Uint8Array) => link.write(bytes));
    let buf = new Uint8Array(0);
    let lastAt = 0;
    const onData = (chunk: Uint8Array) => {
      const now = Date.now();
      if (now - lastAt > gapMs) buf = new Uint8Array(0); // t3.5 rule: a silence ends any partial request
      lastAt = now;
      const next = new Uint8Array(buf.length + chunk.length);
      next.set(buf);
      next.set(chunk, buf.length);
      buf = next;
      for (let guard = 0; guard < 64 && buf.length > 0; guard++) {
        const want = requestLength(buf);
        if (want === undefined || (want > 0 && buf.length < want)) return;
        if (want < 0) {
          this.counts.ignored++;
          buf = new Uint8Array(0);
          return;
        }
        const frame = buf.slice(0, want);
        buf = buf.slice(want);
        const out = this.answer(frame);
        if (out !== undefined) void Promise.resolve(send(out.bytes, out.info)).catch(() => {});
      }
    };
    if ('onData' in link) {
      const off = link.onData(onData);
      return { detach: off };
    }
    link.on('data', onData);
    return { detach: () => void link.off('data', onData) };
  }
}
