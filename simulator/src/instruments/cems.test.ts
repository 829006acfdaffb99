import { SerialPortMock } from 'serialport';
import { afterEach, describe, expect, it } from 'vitest';
import { Hj212StreamDecoder, MockSerialLine, SerialTransport, decodeFrame, hj212Driver, measurementsFromFrame, type DriverIssue, type Hj212DecodeResult, type Hj212Frame, type SensorReading } from '@stele/hardware';
import { CemsSimulator } from './cems.ts';

const MN = '010000A8900016F000169DC0';
const T0 = Date.UTC(2024, 0, 1, 4, 0, 0); // 12:00 Beijing time

afterEach(() => SerialPortMock.binding.reset());

describe('CemsSimulator', () => {
  it('produces CN=2011 real-time frames that decode in strict mode', () => {
    const sim = new CemsSimulator({ mn: MN });
    const r = decodeFrame(sim.nextFrame(T0));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.parsed.header).toMatchObject({ QN: '20240101120000000', ST: '31', CN: '2011', PW: '123456', MN, Flag: '4' });
    expect(r.parsed.cp.params.DataTime).toBe('20240101120000');
    expect(r.parsed.cp.item_order).toEqual(['a21026', 'a21002', 'a34013', 'a19001', 'a01012', 'a01011', 'a01013', 'a01014', 'a00000']);
    for (const code of r.parsed.cp.item_order) {
      expect(r.parsed.cp.items[code]?.Flag).toBe('N');
      expect(r.parsed.cp.items[code]?.Rtd).toMatch(/^-?\d+(\.\d+)?$/);
    }
    expect(r.anomalies).toEqual([]);
    const m = measurementsFromFrame(r);
    expect(m.find((x) => x.code === 'a21026' && x.kind === 'ZsRtd')).toMatchObject({ unit: 'mg/m³', flag: 'N' });
  });

  it('episodes: setScale multiplies the sent value of one channel, setFlag flags every item, both undone', () => {
    const a = new CemsSimulator({ mn: MN, seed: 9 });
    const b = new CemsSimulator({ mn: MN, seed: 9 });
    b.setScale('a21026', 3);
    b.setFlag('C');
    const fa = decodeFrame(a.nextFrame(T0)) as Hj212Frame;
    const fb = decodeFrame(b.nextFrame(T0)) as Hj212Frame;
    expect(Number(fb.parsed.cp.items.a21026!.Rtd)).toBeCloseTo(Number(fa.parsed.cp.items.a21026!.Rtd) * 3, 1);
    expect(fb.parsed.cp.items.a21002!.Rtd).toBe(fa.parsed.cp.items.a21002!.Rtd);
    expect(Object.values(fb.parsed.cp.items).every((i) => i.Flag === 'C')).toBe(true);
    b.setScale('a21026', 1);
    b.setFlag(undefined);
    const na = decodeFrame(a.nextFrame(T0 + 1000)) as Hj212Frame;
    const nb = decodeFrame(b.nextFrame(T0 + 1000)) as Hj212Frame;
    expect(nb.parsed.cp.items).toEqual(na.parsed.cp.items);
    expect(() => b.setScale('x99999', 2)).toThrow(RangeError);
    expect(() => b.setFlag('c')).toThrow(RangeError);
  });

  it('Flag=5 asks for an answer', () => {
    const r = decodeFrame(new CemsSimulator({ mn: MN, flag: 5 }).nextFrame(T0));
    expect(r.ok && r.parsed.flag_decoded?.A_ack_required).toBe(1);
  });

  it('is deterministic for a seed and values drift plausibly', () => {
    const run = (seed: number) => {
      const sim = new CemsSimulator({ mn: MN, seed });
      return Array.from({ length: 600 }, (_, i) => {
        const r = decodeFrame(sim.nextFrame(T0 + i * 1000)) as Hj212Frame;
        return r.parsed.cp.items;
      });
    };
    const a = run(7);
    expect(JSON.stringify(run(7))).toBe(JSON.stringify(a));
    expect(JSON.stringify(run(8))).not.toBe(JSON.stringify(a));
    const series = (code: string, sub = 'Rtd') => a.map((items) => Number(items[code]?.[sub]));
    const so2 = series('a21026');
    expect(new Set(so2).size).toBeGreaterThan(100); // it moves
    expect(Math.min(...so2)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...so2)).toBeLessThan(60);
    const step = Math.max(...so2.slice(1).map((v, i) => Math.abs(v - so2[i]!)));
    expect(step).toBeLessThan(3); // no jumps between 1 s frames
    const o2 = series('a19001');
    expect(Math.min(...o2)).toBeGreaterThan(3);
    expect(Math.max(...o2)).toBeLessThan(11);
    // ZsRtd = Rtd × (21 − 6) / (21 − O2) (HJ 212-2017 App. D eq. 28), to the sent precision.
    for (const items of a.slice(0, 50)) {
      const rtd = Number(items.a21026?.Rtd);
      const zs = Number(items.a21026?.ZsRtd);
      expect(Math.abs(zs - (rtd * 15) / (21 - Number(items.a19001?.Rtd)))).toBeLessThan(0.006);
    }
    // flow = velocity × duct area
    expect(Number(a[0]!.a00000?.Rtd)).toBeCloseTo(Number(a[0]!.a01011?.Rtd) * 18.1, 0);
  });

  it('injects faults: bad CRC frames, noise and split delivery; the decoder recovers every good frame', () => {
    const sim = new CemsSimulator({ mn: MN, seed: 3, faults: { badCrc: 0.1, garbage: 0.3, split: 0.5 } });
    const d = new Hj212StreamDecoder();
    const out: Hj212DecodeResult[] = [];
    let chunks = 0;
    for (let i = 0; i < 500; i++) {
      for (const c of sim.nextChunks(T0 + i * 1000)) {
        chunks++;
        out.push(...d.push(c));
      }
    }
    out.push(...d.end());
    const s = sim.stats();
    expect(s.frames).toBe(500);
    expect(s.badCrc).toBeGreaterThan(20);
    expect(s.garbage).toBeGreaterThan(100);
    expect(s.split).toBeGreaterThan(200);
    expect(chunks).toBeGreaterThan(500 + s.split);
    expect(out.filter((r) => r.ok)).toHaveLength(500 - s.badCrc);
    const codes = out.filter((r) => !r.ok).map((r) => (r.ok ? '' : r.error.code));
    expect(codes.filter((c) => c === 'HJ212_BAD_CRC')).toHaveLength(s.badCrc);
    expect(codes.every((c) => c === 'HJ212_BAD_CRC' || c === 'HJ212_NOISE')).toBe(true);
  });

  it('can send the Modbus-style CRC', () => {
    const frame = new CemsSimulator({ mn: MN, crc: 'modbus-lsb-first' }).nextFrame(T0);
    expect(decodeFrame(frame).ok).toBe(false);
    expect(decodeFrame(frame, { crc: 'modbus-lsb-first' }).ok).toBe(true);
  });

  it('writes frames to a serial line every interval (attachToPort), read back by the gateway\'s hj212 driver', async () => {
    const line = new MockSerialLine('/dev/ttyCEMSTEST0');
    const transport = new SerialTransport({ path: line.path, baudRate: 9600, binding: line.binding, reconnect: false });
    const issues: DriverIssue[] = [];
    const session = await hj212Driver.open({ onIssue: (i) => issues.push(i) }, transport);
    const sim = new CemsSimulator({ mn: MN, faults: { split: 1 } });
    const link = sim.attachToPort(line.device, 5);
    const got: SensorReading[] = [];
    for await (const r of session.readings()) {
      got.push(r);
      if (got.length === 3) break;
    }
    link.stop();
    await session.close();
    await transport.close();
    expect(got.map((r) => r.rtype)).toEqual(['2011', '2011', '2011']);
    expect(got.every((r) => r.sensor === MN && r.meas.length > 0)).toBe(true);
    expect(issues).toEqual([]);
  });

  it('refuses misuse', () => {
    expect(() => new CemsSimulator({ mn: '' })).toThrow(TypeError);
    expect(() => new CemsSimulator({ mn: MN, faults: { badCrc: 2 } })).toThrow(RangeError);
    expect(() => new CemsSimulator({ mn: MN }).attachToPort({ write: () => true }, 0)).toThrow(RangeError);
  });
});
