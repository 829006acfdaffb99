/**
 * A simulated CEMS data logger for one stack (HJ 212-2017, ST=31 air pollution source): real-time uploads
 * (CN=2011) of SO2, NOx, particulate, O2, flue-gas temperature, velocity, static pressure, humidity and flow,
 * values drifting as mean-reverting random walks, pollutants also converted to 6 % reference O2 (ZsRtd,
 * HJ 212-2017 App. D eq. 28; GB 13223 §5.2 for coal-fired boilers). Deterministic for a seed.
 * Optional faults for tests and demos: a frame with a bad CRC, noise bytes before a frame, a frame delivered in
 * several chunks.
 */
import { concatBytes, mulberry32 } from '@stele/core';
import { encodeFrame, formatHj212Time, type Hj212CrcVariant } from '@stele/hardware';

interface Channel {
  code: string;
  /** Long-run mean and spread of the walk. */
  mean: number;
  sd: number;
  decimals: number;
  min: number;
  max: number;
  /** Also send the value converted to reference O2. */
  zs?: boolean;
}

/** Typical values at an ultra-low-emission coal unit (limits SO2 35, NOx 50, dust 10 mg/m³ at 6 % O2). */
const CHANNELS: readonly Channel[] = [
  { code: 'a21026', mean: 18, sd: 4, decimals: 2, min: 0, max: 500, zs: true }, // SO2 mg/m³, N5.2
  { code: 'a21002', mean: 32, sd: 5, decimals: 1, min: 0, max: 500, zs: true }, // NOx mg/m³, N5.1
  { code: 'a34013', mean: 3.2, sd: 0.6, decimals: 2, min: 0, max: 100, zs: true }, // particulate mg/m³
  { code: 'a19001', mean: 6.8, sd: 0.4, decimals: 1, min: 2, max: 20 }, // O2 %, N3.1
  { code: 'a01012', mean: 48.5, sd: 1.2, decimals: 1, min: 20, max: 180 }, // flue gas temperature °C, N3.1
  { code: 'a01011', mean: 11.5, sd: 0.8, decimals: 2, min: 0.5, max: 40 }, // velocity m/s, N5.2
  { code: 'a01013', mean: -0.25, sd: 0.05, decimals: 3, min: -5, max: 5 }, // static pressure kPa, N5.3
  { code: 'a01014', mean: 9.5, sd: 0.5, decimals: 1, min: 0, max: 40 }, // humidity %, N3.1
];
/** Duct cross-section (m²) for flow = velocity × area (a00000, m³/s, N6.1). */
const DUCT_AREA_M2 = 18.1;
/** Reference O2 for coal-fired boilers, GB 13223-2011 §5.2. */
const O2_REF = 6;
/** Relaxation time of the walks. */
const TAU_S = 300;

export interface CemsFaults {
  /** Probability per frame that its CRC is wrong. Default 0. */
  badCrc?: number;
  /** Probability per frame that 1–24 noise bytes precede it. Default 0. */
  garbage?: number;
  /** Probability per frame that nextChunks() splits it into 2–4 chunks. Default 0. */
  split?: number;
}

export interface CemsSimulatorOptions {
  /** Data logger id (24 hex chars in HJ 212-2017). */
  mn: string;
  /** Default '123456'. */
  pw?: string;
  /** Default '31' (air pollution source). */
  st?: string;
  /** 4 (2017, no answer asked) or 5 (2017, answer with 9014). Default 4. */
  flag?: 4 | 5;
  /** PRNG seed. Default 1. */
  seed?: number;
  /** Site time zone for QN and DataTime. Default 480 (Beijing time). */
  utcOffsetMinutes?: number;
  /** Default 'hj212'; 'modbus-lsb-first' imitates loggers that send the Modbus CRC. */
  crc?: Hj212CrcVariant;
  faults?: CemsFaults;
}

export interface CemsStats {
  frames: number;
  badCrc: number;
  garbage: number;
  split: number;
}

/** What a port needs for attachToPort: SerialPort, SerialPortMock, a socket. */
export interface WritableLink {
  write(data: Uint8Array): unknown;
}

export class CemsSimulator {
  readonly mn: string;
  private readonly pw: string;
  private readonly st: string;
  private readonly flag: 4 | 5;
  private readonly utcOffsetMinutes: number;
  private readonly crc: Hj212CrcVariant;
  private readonly faults: Required<CemsFaults>;
  private readonly rand: () => number;
  private readonly values: number[];
  private lastTimeMs: number | undefined;
  private readonly counts: CemsStats = { frames: 0, badCrc: 0, garbage: 0, split: 0 };
  /** Episodes (`stele sim` timelines): code -> factor applied to the sent value (an exceedance), and a flag for every item. */
  private readonly scales = new Map<string, number>();
  private flagOverride: string | undefined;

  constructor(options: CemsSimulatorOptions) {
    if (typeof options?.mn !== 'string' || options.mn === '') throw new TypeError('options.mn must be a non-empty string');
    this.mn = options.mn;
    this.pw = options.pw ?? '123456';
    this.st = options.st ?? '31';
    this.flag = options.flag ?? 4;
    this.utcOffsetMinutes = options.utcOffsetMinutes ?? 480;
    this.crc = options.crc ?? 'hj212';
    const f = options.faults ?? {};
    this.faults = { badCrc: f.badCrc ?? 0, garbage: f.garbage ?? 0, split: f.split ?? 0 };
    for (const [k, v] of Object.entries(this.faults)) {
      if (!(v >= 0 && v <= 1)) throw new RangeError(`options.faults.${k} must be a probability 0..1`);
    }
    this.rand = mulberry32(options.seed ?? 1);
    this.values = CHANNELS.map((c) => c.mean + c.sd * 0.5 * this.gauss());
  }

  stats(): CemsStats {
    return { ...this.counts };
  }

  /**
   * An episode: the channel `code` is sent multiplied by `factor` (an exceedance: 3 puts SO2 near 54 mg/m³, over
   * the ultra-low limit of 35) until setScale(code, 1). The walk underneath goes on unchanged.
   */
  setScale(code: string, factor: number): void {
    if (!CHANNELS.some((c) => c.code === code)) throw new RangeError(`no channel ${code}`);
    if (!(Number.isFinite(factor) && factor > 0)) throw new RangeError('factor must be a positive number');
    if (factor === 1) this.scales.delete(code);
    else this.scales.set(code, factor);
  }

  /** An episode: every item carries this data flag (HJ 212-2017 table 8, e.g. C while calibrating) until setFlag(undefined). */
  setFlag(flag: string | undefined): void {
    if (flag !== undefined && !/^[A-Z]$/.test(flag)) throw new RangeError('flag must be one capital letter');
    this.flagOverride = flag;
  }

  /** The CP of the next real-time record at `timeMs` (advances the walks). */
  nextRecord(timeMs: number): { params: Record<string, string>; items: Record<string, Record<string, string>> } {
    if (!Number.isFinite(timeMs)) throw new RangeError('timeMs must be a finite number');
    const dtS = this.lastTimeMs === undefined ? 0 : Math.min(3600, Math.max(0, (timeMs - this.lastTimeMs) / 1000));
    this.lastTimeMs = timeMs;
    // Ornstein–Uhlenbeck step: x += (mean - x)·dt/τ + sd·sqrt(2·dt/τ)·N(0,1).
    const k = dtS / TAU_S;
    CHANNELS.forEach((c, i) => {
      const x = this.values[i]!;
      const next = x + (c.mean - x) * Math.min(1, k) + c.sd * Math.sqrt(2 * Math.min(1, k)) * this.gauss();
      this.values[i] = Math.min(c.max, Math.max(c.min, next));
    });
    const text = CHANNELS.map((c, i) => Math.min(c.max, this.values[i]! * (this.scales.get(c.code) ?? 1)).toFixed(c.decimals));
    const o2 = Number(text[CHANNELS.findIndex((c) => c.code === 'a19001')]);
    const velocity = Number(text[CHANNELS.findIndex((c) => c.code === 'a01011')]);
    const items: Record<string, Record<string, string>> = {};
    CHANNELS.forEach((c, i) => {
      const rtd = text[i]!;
      const item: Record<string, string> = { Rtd: rtd };
      if (c.zs === true) item.ZsRtd = ((Number(rtd) * (21 - O2_REF)) / Math.max(0.5, 21 - o2)).toFixed(c.decimals);
      item.Flag = this.flagOverride ?? 'N';
      items[c.code] = item;
    });
    items.a00000 = { Rtd: (velocity * DUCT_AREA_M2).toFixed(1), Flag: this.flagOverride ?? 'N' };
    return { params: { DataTime: formatHj212Time(timeMs, false, this.utcOffsetMinutes) }, items };
  }

  /** One CN=2011 frame (`##…\r\n`) at `timeMs`, with any injected garbage before it and a broken CRC if drawn. */
  nextFrame(timeMs: number): Uint8Array {
    return concatBytes(...this.nextChunks(timeMs));
  }

  /** Like nextFrame, but as the chunks a serial line would deliver when the split fault is drawn. */
  nextChunks(timeMs: number): Uint8Array[] {
    const cp = this.nextRecord(timeMs);
    let frame = encodeFrame({
      header: { QN: formatHj212Time(timeMs, true, this.utcOffsetMinutes), ST: this.st, CN: '2011', PW: this.pw, MN: this.mn, Flag: this.flag },
      cp,
      crc: this.crc,
    });
    this.counts.frames++;
    if (this.rand() < this.faults.badCrc) {
      frame = breakCrc(frame);
      this.counts.badCrc++;
    }
    if (this.rand() < this.faults.garbage) {
      const n = 1 + Math.floor(this.rand() * 24);
      const noise = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        let b = Math.floor(this.rand() * 256);
        if (b === 0x23) b = 0x24; // no '#', so noise never looks like a frame start
        noise[i] = b;
      }
      frame = concatBytes(noise, frame);
      this.counts.garbage++;
    }
    if (this.rand() < this.faults.split && frame.length > 4) {
      const parts = 2 + Math.floor(this.rand() * 3);
      const cuts = new Set<number>();
      while (cuts.size < parts - 1) cuts.add(1 + Math.floor(this.rand() * (frame.length - 1)));
      const sorted = [0, ...[...cuts].sort((a, b) => a - b), frame.length];
      this.counts.split++;
      return sorted.slice(1).map((end, i) => frame.subarray(sorted[i]!, end));
    }
    return [frame];
  }

  /**
   * Writes a frame to `port` every `intervalMs` (the first one at once) until stop(). Split frames are written
   * chunk by chunk. `now` gives the frame time (default Date.now).
   */
  attachToPort(port: WritableLink, intervalMs: number, options: { now?: () => number } = {}): { stop(): void } {
    if (!(Number.isFinite(intervalMs) && intervalMs > 0)) throw new RangeError('intervalMs must be a positive number');
    const now = options.now ?? Date.now;
    const send = () => {
      for (const chunk of this.nextChunks(now())) port.write(chunk);
    };
    send();
    const timer = setInterval(send, intervalMs);
    return { stop: () => clearInterval(timer) };
  }

  /** Standard normal deviate (Box–Muller) from the seeded PRNG. */
  private gauss(): number {
    const u = Math.max(this.rand(), 1e-12);
    const v = this.rand();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
}


/** Changes the last CRC digit so the frame fails its check. */
function breakCrc(frame: Uint8Array): Uint8Array {
  const out = frame.slice();
  const i = out.length - 3; // last CRC digit, before CR LF
  const digits = '0123456789ABCDEF';
  const d = String.fromCharCode(out[i]!).toUpperCase();
  out[i] = digits.charCodeAt((digits.indexOf(d) + 1) % 16);
  return out;
}

