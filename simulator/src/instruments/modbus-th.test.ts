import { SerialPortMock } from 'serialport';
import { afterEach, describe, expect, it } from 'vitest';
import {
  MD02,
  MockSerialLine,
  ModbusRtuMaster,
  SerialTransport,
  XY_MD02,
  XY_MD02_X100,
  decodeReadResponse,
  encodeReadRequest,
  measurementsFromRegisters,
  profileRequest,
} from '@stele/hardware';
import { ModbusThSlave } from './modbus-th.ts';

afterEach(() => SerialPortMock.binding.reset());

const hex = (s: string) => Uint8Array.from(s.split(' ').map((h) => parseInt(h, 16)));

describe('ModbusThSlave', () => {
  it('answers its profile read with plausible cold-room values, as each family encodes them', () => {
    for (const [family, profile] of [['xy-md02', XY_MD02], ['xy-md02-x100', XY_MD02_X100], ['md02', MD02]] as const) {
      const slave = new ModbusThSlave({ slave: 3, family, meanTemperatureC: -18 });
      const req = profileRequest(profile, 3);
      const out = slave.answer(encodeReadRequest(req));
      const m = measurementsFromRegisters(profile, decodeReadResponse(out!.bytes, req).registers, req.address);
      const t = Number(m.find((x) => x.code === 'temperature')?.value);
      const h = Number(m.find((x) => x.code === 'humidity')?.value);
      expect(t).toBeGreaterThan(-19);
      expect(t).toBeLessThan(-17);
      expect(h).toBeGreaterThan(50);
      expect(h).toBeLessThan(60);
      expect(out!.info.seq).toBe(0);
    }
  });

  it('episodes: temperatureOverrideC is what the probe reads until it is cleared', () => {
    const slave = new ModbusThSlave({ slave: 1, family: 'xy-md02', meanTemperatureC: 4 });
    const req = profileRequest(XY_MD02, 1);
    const read = () => Number(measurementsFromRegisters(XY_MD02, decodeReadResponse(slave.answer(encodeReadRequest(req))!.bytes, req).registers, req.address).find((x) => x.code === 'temperature')?.value);
    slave.temperatureOverrideC = 12;
    expect(read()).toBe(12);
    slave.temperatureOverrideC = undefined;
    expect(Math.abs(read() - 4)).toBeLessThan(1);
  });

  it('answers the configuration registers the manuals list, and exceptions for the rest', () => {
    const slave = new ModbusThSlave({ slave: 1 });
    expect(decodeReadResponse(slave.answer(hex('01 03 01 01 00 01 D4 36'))!.bytes).registers).toEqual([1]); // fixture sht20-read-addr-req
    const bad = slave.answer(encodeReadRequest({ slave: 1, functionCode: 4, address: 0x50, quantity: 1 }));
    expect(() => decodeReadResponse(bad!.bytes)).toThrow(expect.objectContaining({ code: 'MODBUS_EXCEPTION', exceptionCode: 2 }));
    const fc6 = slave.answer(hex('01 06 01 01 00 08 D8 30'));
    expect(() => decodeReadResponse(fc6!.bytes)).toThrow(expect.objectContaining({ code: 'MODBUS_EXCEPTION', exceptionCode: 1 }));
  });

  it('stays silent for other addresses and bad CRCs, and numbers its answers', () => {
    const slave = new ModbusThSlave({ slave: 1, sequenceRegister: 3 });
    expect(slave.answer(encodeReadRequest({ slave: 2, functionCode: 4, address: 1, quantity: 2 }))).toBeUndefined();
    expect(slave.answer(hex('01 04 00 01 00 02 20 0C'))).toBeUndefined();
    const seqs = [0, 1, 2].map(() => decodeReadResponse(slave.answer(encodeReadRequest({ slave: 1, functionCode: 4, address: 1, quantity: 3 }))!.bytes).registers[2]);
    expect(seqs).toEqual([0, 1, 2]);
    expect(slave.stats()).toMatchObject({ answers: 3, ignored: 1, badCrc: 1 });
  });

  it('shares a bus with other slaves: a master reads each through a mock line', async () => {
    const line = new MockSerialLine('/dev/ttyMOCK-sim-bus');
    new ModbusThSlave({ slave: 1 }).attach(line.device);
    new ModbusThSlave({ slave: 2, family: 'md02', meanTemperatureC: -20 }).attach(line.device);
    const transport = new SerialTransport({ path: line.path, baudRate: 9600, binding: line.binding, reconnect: false });
    await transport.open();
    const master = new ModbusRtuMaster(transport, { timeoutMs: 200 });
    const a = await master.read(profileRequest(XY_MD02, 1));
    const b = await master.read(profileRequest(MD02, 2));
    expect(Number(measurementsFromRegisters(XY_MD02, a.registers)[0]?.value)).toBeCloseTo(4, 0);
    expect(Number(measurementsFromRegisters(MD02, b.registers)[1]?.value)).toBeCloseTo(-20, 0);
    master.close();
    await transport.close();
  });
});
