import { SerialPortMock } from 'serialport';
import { afterEach, describe, expect, it } from 'vitest';
import { toHex, sha256 } from '@stele/core';
import { MockSerialLine } from '../transport/mock-line.ts';
import { SerialTransport } from '../transport/serial-transport.ts';
import { type DriverHarness, driverSuite } from '../driver/driver-suite.ts';
import { mockLineHarness } from '../driver/mock-line-harness.ts';
import type { DriverIssue } from '../driver/types.ts';
import { type Cal3kDriverOptions, cal3kDriver } from './cal3k-driver.ts';

// Fixture: records built here in the vendor's record shape (PROTOCOLS.md §3.1), status 4 = final.
let n = 0;
const record = (status = '4') =>
  `01/03/24;08:${String(n % 60).padStart(2, '0')}:17;${status};COAL;HY${240000 + n++}; 25.555500; 0.666600;;3KAP;00/00/00;;;; 0.111111; 0.222222;;;1.11; 3.000006;`;
const enc = (s: string) => new TextEncoder().encode(s);

/** A calorimeter that sends a record (or the chosen fault) every 10 ms onto a mock line. */
const mockHarness = (): Promise<DriverHarness<Cal3kDriverOptions>> =>
  mockLineHarness({
    path: `/dev/ttyMOCK-cal3k-${n}`,
    driver: cal3kDriver,
    options: { finalStatuses: ['4'], silenceTimeoutMs: 100 },
    // half a record once: glued to the next one it fails the field count
    codes: { garbage: ['COAL_BAD_RECORD'], truncated: ['COAL_BAD_FIELD_COUNT', 'COAL_BAD_FIELD', 'COAL_BAD_RECORD'], timeout: ['DRIVER_TIMEOUT'] },
    message: () => enc(`${record()}\r\n`),
    garbage: enc('\x01\x02garbage that is not a record\r\n'),
  });

afterEach(() => SerialPortMock.binding.reset());

driverSuite('cal3k over the serialport mock binding', mockHarness);

describe('cal3kDriver', () => {
  it('turns final records into readings with the record bytes and surfaces non-final ones as COAL_NOT_FINAL issues', async () => {
    const line = new MockSerialLine('/dev/ttyMOCK-cal3k-final');
    const transport = new SerialTransport({ path: line.path, baudRate: 9600, binding: line.binding });
    const issues: DriverIssue[] = [];
    const session = await cal3kDriver.open({ finalStatuses: ['4'], sensor: 'cal3k-lab1', onIssue: (i) => issues.push(i) }, transport);
    const a = record('1');
    const b = record('4');
    line.device.write(enc(`${a}\r\n${b}\r\n`));
    const it = session.readings()[Symbol.asyncIterator]();
    const r = await it.next();
    expect(r.done).toBe(false);
    if (r.done) return;
    expect(r.value.sensor).toBe('cal3k-lab1');
    expect(new TextDecoder().decode(r.value.frames[0])).toBe(b);
    expect(toHex(r.value.raw[0]!)).toBe(toHex(sha256(enc(b))));
    expect(issues.map((i) => i.code)).toEqual(['COAL_NOT_FINAL']);
    expect(session.stats().issues).toEqual({ COAL_NOT_FINAL: 1 });
    await session.close();
    await transport.close();
  });
});
