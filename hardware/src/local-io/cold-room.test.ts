import { describe, expect, it } from 'vitest';
import { ColdRoomAlarm, ColdRoomController, GSP_COLD_ROOM_RULE, type ColdRoomInput } from './cold-room.ts';
import { crc8Dallas, parseW1Slave, type Ds18b20Result } from './ds18b20.ts';
import type { DoorState } from './gpio.ts';

// Fixtures: sequences of (minute, probe values, door states) written here; time is fed explicitly, no clock.
const MIN = 60_000;
const rule = { lowC: 2, highC: 8, hysteresisC: 0.5, outOfRangeMinutes: 10, doorOpenMinutes: 5 };
const at = (minute: number, temps: (number | undefined)[], doors: boolean[] = []): ColdRoomInput => ({
  timeMs: minute * MIN,
  probes: temps.map((c, i) => ({ id: `p${i}`, celsius: c })),
  doors: doors.map((open, i) => ({ id: `d${i}`, open })),
});

describe('ColdRoomAlarm', () => {
  it('raises the alarm only after N minutes out of range, and clears it only inside the hysteresis band', () => {
    const a = new ColdRoomAlarm(rule);
    expect(a.update(at(0, [5, 5])).alarm).toBe(false);
    expect(a.update(at(1, [5, 8.3])).alarm).toBe(false);
    expect(a.update(at(10, [5, 8.6])).alarm).toBe(false); // 9 minutes
    const on = a.update(at(11, [5, 8.6]));
    expect(on).toMatchObject({ alarm: true, changed: true, reasons: ['temperature'], outOfRangeSinceMs: 1 * MIN });
    expect(a.update(at(12, [5, 7.8]))).toMatchObject({ alarm: true, changed: false }); // in range but not in the inner band
    expect(a.update(at(13, [5, 7.4]))).toMatchObject({ alarm: false, changed: true, reasons: [] });
  });
  it('restarts the timer when the temperature comes back in range before N minutes', () => {
    const a = new ColdRoomAlarm(rule);
    a.update(at(0, [9]));
    a.update(at(8, [7.9])); // back in range: timer reset
    a.update(at(9, [9]));
    expect(a.update(at(18, [9])).alarm).toBe(false);
    expect(a.update(at(19, [9])).alarm).toBe(true);
  });
  it('raises the door alarm after M minutes open and clears it when the door closes', () => {
    const a = new ColdRoomAlarm({ ...rule, doorClosedMinutes: 1 });
    a.update(at(0, [5], [true]));
    expect(a.update(at(4, [5], [true])).alarm).toBe(false);
    expect(a.update(at(5, [5], [true]))).toMatchObject({ alarm: true, reasons: ['door'] });
    expect(a.update(at(6, [5], [false])).alarm).toBe(true); // closed less than doorClosedMinutes
    expect(a.update(at(7, [5], [false])).alarm).toBe(false);
  });
  it('treats a probe without valid readings for long enough as a fault alarm', () => {
    const a = new ColdRoomAlarm({ ...rule, probeFaultMinutes: 3 });
    a.update(at(0, [5, undefined]));
    expect(a.update(at(2, [5, undefined])).alarm).toBe(false);
    expect(a.update(at(3, [5, undefined]))).toMatchObject({ alarm: true, reasons: ['probe_fault'] });
    expect(a.update(at(4, [5, 5])).alarm).toBe(false);
  });
  it('refuses misuse: time going backwards, an empty band', () => {
    const a = new ColdRoomAlarm(GSP_COLD_ROOM_RULE);
    a.update(at(5, [5]));
    expect(() => a.update(at(4, [5]))).toThrow(RangeError);
    expect(() => new ColdRoomAlarm({ ...rule, hysteresisC: 3 })).toThrow(RangeError);
    expect(() => new ColdRoomAlarm({ ...rule, lowC: 9 })).toThrow(RangeError);
  });
});

describe('ColdRoomController', () => {
  it('reads probes and doors, drives the output on the first tick and on change, and returns measurements and digests', async () => {
    const w1 = (milli: number) => {
      const raw = Math.round((milli * 16) / 1000) & 0xffff;
      const pad = [raw & 0xff, raw >> 8, 0x4b, 0x46, 0x7f, 0xff, 0x0c, 0x10];
      const crc = crc8Dallas(Uint8Array.from(pad)); // crc8Dallas itself is checked against Maxim's vectors in ds18b20.test.ts
      const hex = [...pad, crc].map((x) => x.toString(16).padStart(2, '0')).join(' ');
      return new TextEncoder().encode(`${hex} : crc=${crc.toString(16).padStart(2, '0')} YES\n${hex} t=${milli}\n`);
    };
    let minute = 0;
    let milli = 5000;
    let door = false;
    const sets: boolean[] = [];
    const c = new ColdRoomController({
      room: 'cold-1',
      rule,
      readProbes: async (): Promise<Ds18b20Result[]> => [parseW1Slave('28-aa', w1(milli))],
      readDoors: async (): Promise<DoorState[]> => [{ id: 'door-1', open: door, level: door ? 1 : 0 }],
      output: { set: async (on) => void sets.push(on) },
      now: () => minute * MIN,
    });
    const t0 = await c.tick();
    expect(t0.meas).toEqual([
      { code: '28-aa', kind: 'temperature', value: '5.000', unit: '°C' },
      { code: 'door-1', kind: 'door', value: 'closed' },
      { code: 'cold-1', kind: 'alarm', value: 'off' },
    ]);
    expect(t0.raw).toHaveLength(1);
    door = true;
    minute = 1;
    await c.tick();
    minute = 6;
    const t2 = await c.tick();
    expect(t2.meas.slice(-2)).toEqual([
      { code: 'cold-1', kind: 'alarm', value: 'on' },
      { code: 'cold-1', kind: 'alarm-reason', value: 'door' },
    ]);
    door = false;
    minute = 7;
    await c.tick();
    expect(sets).toEqual([false, true, false]);
  });
});
