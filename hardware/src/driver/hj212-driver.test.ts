import { SerialPortMock } from 'serialport';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeAll } from '../hj212/decoder.ts';
import { encodeFrame } from '../hj212/encoder.ts';
import { MockSerialLine } from '../transport/mock-line.ts';
import { SerialTransport } from '../transport/serial-transport.ts';
import { type DriverHarness, driverSuite } from './driver-suite.ts';
import { mockLineHarness } from './mock-line-harness.ts';
import { type Hj212DriverOptions, hj212Driver } from './hj212-driver.ts';
import type { DriverIssue, SensorReading } from './types.ts';

const MN = '010000A8900016F000169DC0';
let n = 0;
const frame = () =>
  encodeFrame({
    header: { QN: `20240101120000${String(n++ % 1000).padStart(3, '0')}`, ST: '31', CN: '2011', PW: '123456', MN, Flag: 4 },
    cp: { params: { DataTime: '20240101120000' }, items: { a21026: { Rtd: '12.5', Flag: 'N' }, a19001: { Rtd: '6.8', Flag: 'N' } } },
  });

/** A data logger that pushes a frame (or the chosen fault) every 10 ms onto a mock line. */
const mockHarness = (): Promise<DriverHarness<Hj212DriverOptions>> =>
  mockLineHarness({
    path: `/dev/ttyMOCK-hj212-${n}`,
    driver: hj212Driver,
    options: { silenceTimeoutMs: 100 },
    // half a frame once; the next good frame's `##` shows the cut
    codes: { garbage: ['HJ212_NOISE'], truncated: ['HJ212_TRUNCATED'], timeout: ['DRIVER_TIMEOUT'] },
    message: frame,
    garbage: new TextEncoder().encode('\x01\x02garbage that is not a frame\xff\r\n'),
  });

afterEach(() => SerialPortMock.binding.reset());

driverSuite('hj212 over the serialport mock binding', mockHarness);

describe('hj212Driver', () => {
  it('turns frames into readings named after the MN, with units', async () => {
    const line = new MockSerialLine('/dev/ttyMOCK-hj212-x');
    const transport = new SerialTransport({ path: line.path, baudRate: 9600, binding: line.binding, reconnect: false });
    const session = await hj212Driver.open({ now: () => 1234 }, transport);
    const f = frame();
    line.device.write(f.subarray(0, 10));
    line.device.write(f.subarray(10));
    const it = session.readings()[Symbol.asyncIterator]();
    const r = (await it.next()).value as SensorReading;
    expect(r.sensor).toBe(MN);
    expect(r.time).toBe(1234);
    expect(r.itime).toBe('20240101120000');
    expect(r.rtype).toBe('2011');
    expect(r.frames[0]).toEqual(f);
    expect(r.meas).toEqual([
      { code: 'a21026', kind: 'Rtd', value: '12.5', unit: 'mg/m³', flag: 'N' },
      { code: 'a19001', kind: 'Rtd', value: '6.8', unit: '%', flag: 'N' },
    ]);
    await session.close();
    await transport.close();
  });

  it('answers uploads that ask for it (Flag A=1) with CN=9014 when acknowledge is on, and only those', async () => {
    const line = new MockSerialLine('/dev/ttyMOCK-hj212-ack');
    const transport = new SerialTransport({ path: line.path, baudRate: 9600, binding: line.binding, reconnect: false });
    const session = await hj212Driver.open({ acknowledge: true }, transport);
    const heard: Uint8Array[] = [];
    const answered = new Promise<void>((resolve) => line.device.on('data', (b) => (heard.push(b), resolve())));
    const asks = encodeFrame({ header: { QN: '20240101120000001', ST: '31', CN: '2011', PW: '123456', MN, Flag: 5 }, cp: { params: { DataTime: '20240101120000' }, items: { a21026: { Rtd: '1.0', Flag: 'N' } } } });
    const quiet = encodeFrame({ header: { QN: '20240101120000002', ST: '31', CN: '2011', PW: '123456', MN, Flag: 4 }, cp: { params: { DataTime: '20240101120000' }, items: { a21026: { Rtd: '2.0', Flag: 'N' } } } });
    line.device.write(quiet);
    line.device.write(asks);
    const it = session.readings()[Symbol.asyncIterator]();
    await it.next();
    await it.next();
    await answered;
    const written = decodeAll(Uint8Array.from(heard.flatMap((b) => [...b])));
    expect(written.map((r) => r.ok && [r.parsed.header.CN, r.parsed.header.QN])).toEqual([['9014', '20240101120000001']]);
    await session.close();
    await transport.close();
  });

  it('keeps at most maxQueuedReadings while nobody reads: the oldest go, each as a DRIVER_OVERFLOW issue', async () => {
    const line = new MockSerialLine('/dev/ttyMOCK-hj212-full');
    const transport = new SerialTransport({ path: line.path, baudRate: 9600, binding: line.binding, reconnect: false });
    const issues: DriverIssue[] = [];
    let third: () => void = () => {};
    const allIn = new Promise<void>((r) => (third = r));
    let taken = 0;
    const session = await hj212Driver.open({ maxQueuedReadings: 2, onIssue: (i) => issues.push(i), now: () => (++taken === 3 ? (third(), 3) : taken) }, transport);
    for (let i = 0; i < 3; i++) line.device.write(frame());
    await allIn;
    await new Promise((r) => setImmediate(r));
    const got: number[] = [];
    for await (const r of session.readings()) {
      got.push(r.time);
      if (got.length === 2) break;
    }
    expect(got).toEqual([2, 3]);
    expect(issues.map((i) => i.code)).toEqual(['DRIVER_OVERFLOW']);
    await session.close();
    await transport.close();
  });

  it('never glues half a frame from before a disconnect to bytes after it', async () => {
    const line = new MockSerialLine('/dev/ttyMOCK-hj212-y');
    const transport = new SerialTransport({ path: line.path, baudRate: 9600, binding: line.binding, reconnect: { initialDelayMs: 5, maxDelayMs: 20 } });
    const issues: DriverIssue[] = [];
    const session = await hj212Driver.open({ onIssue: (i) => issues.push(i) }, transport);
    const f = frame();
    line.device.write(f.subarray(0, 40));
    await new Promise((r) => setTimeout(r, 20));
    line.unplug();
    for (let i = 0; i < 200 && transport.state === 'open'; i++) await new Promise((r) => setTimeout(r, 5));
    line.plug();
    for (let i = 0; i < 200 && transport.state !== 'open'; i++) await new Promise((r) => setTimeout(r, 5));
    line.device.write(f.subarray(40)); // the rest of the old frame: noise now
    const g = frame();
    line.device.write(g);
    const it = session.readings()[Symbol.asyncIterator]();
    const r = (await it.next()).value as SensorReading;
    expect(r.frames[0]).toEqual(g);
    expect(issues.map((i) => i.code)).toContain('HJ212_TRUNCATED');
    expect(session.stats().readings).toBe(1);
    await session.close();
    await transport.close();
  });

  it('reassembles a split upload (PNUM/PNO) into one reading carrying every part', async () => {
    const line = new MockSerialLine('/dev/ttyMOCK-hj212-split');
    const transport = new SerialTransport({ path: line.path, baudRate: 9600, binding: line.binding, reconnect: false });
    const session = await hj212Driver.open({ now: () => 5 }, transport);
    const part = (pno: number, items: Record<string, Record<string, string>>) =>
      encodeFrame({
        header: { QN: '20240101120000000', ST: '31', CN: '2051', PW: '123456', MN, Flag: 7, PNUM: '2', PNO: String(pno) },
        cp: { params: { DataTime: '20240101120000' }, items },
      });
    const p2 = part(2, { a19001: { Avg: '6.8', Flag: 'N' } });
    const p1 = part(1, { a21026: { Avg: '12.5', Flag: 'N' } });
    line.device.write(p2); // parts may come out of order
    line.device.write(p1);
    const it = session.readings()[Symbol.asyncIterator]();
    const r = (await it.next()).value as SensorReading;
    expect(r.frames).toEqual([p1, p2]);
    expect([r.itime, r.rtype]).toEqual(['20240101120000', '2051']);
    expect(r.raw).toHaveLength(2);
    expect(r.meas.map((m) => `${m.code}-${m.kind}=${m.value}`)).toEqual(['a21026-Avg=12.5', 'a19001-Avg=6.8']);
    expect(session.stats().readings).toBe(1);
    await session.close();
    await transport.close();
  });

  it('leaves itime out and reports BAD_DATATIME when the DataTime is not a valid instrument time', async () => {
    const line = new MockSerialLine('/dev/ttyMOCK-hj212-dt');
    const transport = new SerialTransport({ path: line.path, baudRate: 9600, binding: line.binding, reconnect: false });
    const session = await hj212Driver.open({ now: () => 5 }, transport);
    line.device.write(
      encodeFrame({
        header: { QN: '20240101120000000', ST: '31', CN: '2061', PW: '123456', MN, Flag: 4 },
        cp: { params: { DataTime: '20241301120000' }, items: { a21026: { Avg: '12.5', Flag: 'N' } } },
      }),
    );
    const it = session.readings()[Symbol.asyncIterator]();
    const r = (await it.next()).value as SensorReading;
    expect(r.itime).toBeUndefined();
    expect(r.rtype).toBe('2061');
    expect(r.anomalies?.map((a) => a.code)).toContain('BAD_DATATIME');
    await session.close();
    await transport.close();
  });
});
