import { SerialPortMock } from 'serialport';
import { afterEach, describe, expect, it } from 'vitest';
import { type ModbusError } from '../modbus/errors.ts';
import { decodeRequest, encodeException, encodeReadResponse } from '../modbus/frame.ts';
import { ModbusRtuMaster } from '../modbus/master.ts';
import { MD02, XY_MD02 } from '../modbus/profile.ts';
import { MockSerialLine, type DeviceEnd } from '../transport/mock-line.ts';
import { SerialTransport } from '../transport/serial-transport.ts';
import { type DriverHarness, type InstrumentBehaviour, driverSuite } from './driver-suite.ts';
import { type ModbusDriverOptions, modbusDriver } from './modbus-driver.ts';
import type { DriverIssue, SensorReading } from './types.ts';

/** A minimal T/RH slave for the unit tests (the full one is simulator/src/instruments/modbus-th.ts). */
function attachSlave(
  device: DeviceEnd,
  slave: number,
  registers: Record<number, number>,
  state: { behaviour: InstrumentBehaviour | 'exception' | 'late'; answers: number },
) {
  const onData = (bytes: Uint8Array) => {
    let req;
    try {
      req = decodeRequest(bytes);
    } catch {
      return;
    }
    if (req.slave !== slave) return;
    const words: number[] = [];
    for (let a = req.address; a < req.address + req.quantity; a++) words.push(a === 0x0010 ? state.answers : (registers[a] ?? 0));
    const good = encodeReadResponse(slave, req.functionCode as 3 | 4, words);
    switch (state.behaviour) {
      case 'good':
        state.answers++;
        device.write(good);
        break;
      case 'garbage':
        device.write(Uint8Array.of(0xaa, 0x55, 0x00, 0x13, 0x37, 0x42, 0x99));
        break;
      case 'truncated':
        device.write(good.subarray(0, 4));
        break;
      case 'exception':
        device.write(encodeException(slave, req.functionCode, 0x02));
        break;
      case 'late':
        setTimeout(() => device.write(good), 60);
        break;
      case 'silent':
        break;
    }
  };
  device.on('data', onData);
}

let count = 0;
async function mockHarness(): Promise<DriverHarness<ModbusDriverOptions>> {
  const line = new MockSerialLine(`/dev/ttyMOCK-modbus-${count++}`);
  const transport = new SerialTransport({ path: line.path, baudRate: 9600, binding: line.binding, reconnect: { initialDelayMs: 10, maxDelayMs: 50 } });
  const state = { behaviour: 'good' as InstrumentBehaviour | 'exception' | 'late', answers: 0 };
  attachSlave(line.device, 1, { 1: 215, 2: 456 }, state);
  return {
    driver: modbusDriver,
    options: { timeoutMs: 50, frameGapMs: 10, devices: [{ sensor: 'cold-1', slave: 1, profile: XY_MD02, intervalMs: 10 }] },
    transport,
    behave: (b) => (state.behaviour = b),
    codes: { garbage: ['MODBUS_UNEXPECTED', 'MODBUS_BAD_CRC'], truncated: ['MODBUS_TRUNCATED'], timeout: ['MODBUS_TIMEOUT'] },
    cut: async () => line.unplug(),
    restore: async () => line.plug(),
    cleanup: () => transport.close(),
  };
}

afterEach(() => SerialPortMock.binding.reset());

driverSuite('modbus-rtu over the serialport mock binding', mockHarness);

function setup(path: string) {
  const line = new MockSerialLine(path);
  const transport = new SerialTransport({ path: line.path, baudRate: 9600, binding: line.binding, reconnect: false });
  return { line, transport };
}

describe('ModbusRtuMaster', () => {
  it('reads two slaves on one bus, one request at a time, with exceptions per request', async () => {
    const { line, transport } = setup('/dev/ttyMOCK-m1');
    const s1 = { behaviour: 'good' as const, answers: 0 };
    const s2 = { behaviour: 'exception' as const, answers: 0 };
    attachSlave(line.device, 1, { 1: 305, 2: 546 }, s1);
    attachSlave(line.device, 2, { 0: 146, 1: 0xff9b }, s2);
    let inFlight = 0;
    let maxInFlight = 0;
    line.device.on('data', () => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      setTimeout(() => inFlight--, 0);
    });
    await transport.open();
    const master = new ModbusRtuMaster(transport, { timeoutMs: 200 });
    const results = await Promise.allSettled([
      master.read({ slave: 1, functionCode: 4, address: 1, quantity: 2 }),
      master.read({ slave: 2, functionCode: 3, address: 0, quantity: 2 }),
      master.read({ slave: 1, functionCode: 4, address: 1, quantity: 2 }),
    ]);
    expect(results[0]).toMatchObject({ status: 'fulfilled', value: { slave: 1, registers: [305, 546] } });
    expect(results[1].status).toBe('rejected');
    const e = (results[1] as PromiseRejectedResult).reason as ModbusError;
    expect(e.code).toBe('MODBUS_EXCEPTION');
    expect(e.exceptionCode).toBe(2);
    expect(e.exceptionMeaning).toBe('ILLEGAL DATA ADDRESS');
    expect(results[2]).toMatchObject({ status: 'fulfilled' });
    expect(maxInFlight).toBe(1);
    expect(master.stats()).toMatchObject({ requests: 3, responses: 2, errors: { MODBUS_EXCEPTION: 1 } });
    master.close();
    await transport.close();
  });

  it('never takes a late answer to a timed-out request for the answer to the next one', async () => {
    const { line, transport } = setup('/dev/ttyMOCK-m2');
    const state = { behaviour: 'late' as InstrumentBehaviour | 'late', answers: 0 };
    attachSlave(line.device, 1, { 1: 1, 2: 2 }, state);
    await transport.open();
    const master = new ModbusRtuMaster(transport, { timeoutMs: 30 });
    await expect(master.read({ slave: 1, functionCode: 4, address: 0x10, quantity: 1 })).rejects.toMatchObject({ code: 'MODBUS_TIMEOUT' });
    state.behaviour = 'silent';
    await new Promise((r) => setTimeout(r, 80)); // the late answer arrives now, with nobody waiting
    expect(master.stats().staleBytes).toBe(7);
    state.behaviour = 'good';
    const r = await master.read({ slave: 1, functionCode: 4, address: 0x10, quantity: 1 });
    expect(r.registers).toEqual([0]);
    master.close();
    await transport.close();
  });

  it('cuts a response split across reads exactly, and reports truncation and timeout', async () => {
    const { line, transport } = setup('/dev/ttyMOCK-m3');
    line.device.on('data', (b: Uint8Array) => {
      const req = decodeRequest(b);
      const resp = encodeReadResponse(1, 4, [req.address]);
      if (req.address === 1) {
        line.device.write(resp.subarray(0, 2));
        setTimeout(() => line.device.write(resp.subarray(2)), 5);
      } else if (req.address === 2) line.device.write(resp.subarray(0, 5));
    });
    await transport.open();
    const master = new ModbusRtuMaster(transport, { timeoutMs: 40 });
    expect((await master.read({ slave: 1, functionCode: 4, address: 1, quantity: 1 })).registers).toEqual([1]);
    await expect(master.read({ slave: 1, functionCode: 4, address: 2, quantity: 1 })).rejects.toMatchObject({ code: 'MODBUS_TRUNCATED' });
    await expect(master.read({ slave: 1, functionCode: 4, address: 3, quantity: 1 })).rejects.toMatchObject({ code: 'MODBUS_TIMEOUT' });
    master.close();
    await transport.close();
  });

  it('rejects pending requests with SERIAL_DISCONNECTED when the adapter is unplugged', async () => {
    const { line, transport } = setup('/dev/ttyMOCK-m4');
    await transport.open();
    const master = new ModbusRtuMaster(transport, { timeoutMs: 5000 });
    const pending = master.read({ slave: 1, functionCode: 4, address: 1, quantity: 1 });
    await new Promise((r) => setTimeout(r, 10));
    line.unplug();
    await expect(pending).rejects.toMatchObject({ code: 'SERIAL_DISCONNECTED', disconnected: true });
    master.close();
    await transport.close();
  });
});

describe('modbusDriver', () => {
  it('polls several devices of different families on one bus, each on its schedule', async () => {
    const { line, transport } = setup('/dev/ttyMOCK-d1');
    attachSlave(line.device, 1, { 1: 45, 2: 602 }, { behaviour: 'good', answers: 0 });
    attachSlave(line.device, 7, { 0: 146, 1: 0xff9b }, { behaviour: 'good', answers: 0 });
    const issues: DriverIssue[] = [];
    const session = await modbusDriver.open(
      {
        timeoutMs: 100,
        onIssue: (i) => issues.push(i),
        devices: [
          { sensor: 'room', slave: 1, profile: XY_MD02, intervalMs: 5 },
          { sensor: 'freezer', slave: 7, profile: MD02, intervalMs: 5, offsetMs: 2 },
          { sensor: 'missing', slave: 9, profile: XY_MD02, intervalMs: 5 },
        ],
      },
      transport,
    );
    const got = new Map<string, SensorReading>();
    for await (const r of session.readings()) {
      got.set(r.sensor, r);
      if (got.size === 2 && issues.length > 0) break;
    }
    expect(got.get('room')?.meas).toEqual([
      { code: 'temperature', kind: 'Rtd', unit: '°C', value: '4.5' },
      { code: 'humidity', kind: 'Rtd', unit: '%RH', value: '60.2' },
    ]);
    expect(got.get('freezer')?.meas.map((m) => m.value)).toEqual(['14.6', '-10.1']);
    expect(issues[0]).toMatchObject({ code: 'MODBUS_TIMEOUT', sensor: 'missing' });
    await session.close();
    await transport.close();
  });

  it('rejects bad configuration as misuse', async () => {
    const { transport } = setup('/dev/ttyMOCK-d2');
    await expect(modbusDriver.open({ devices: [] }, transport)).rejects.toThrow(TypeError);
    await expect(modbusDriver.open({ devices: [{ sensor: 'a', slave: 0, profile: XY_MD02, intervalMs: 1 }] }, transport)).rejects.toThrow(RangeError);
    await expect(
      modbusDriver.open({ devices: [{ sensor: 'a', slave: 1, profile: XY_MD02, intervalMs: 1 }, { sensor: 'a', slave: 2, profile: XY_MD02, intervalMs: 1 }] }, transport),
    ).rejects.toThrow(RangeError);
  });
});
