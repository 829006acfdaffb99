/**
 * The driver conformance suite for the HJ 212 and Modbus drivers, fed by the simulator's instruments, over
 * socat pseudo-terminal pairs (native serialport) at 9600 and 115200 baud, and over the mock binding.
 * The socat suites skip with the reason when socat is missing (never under CI=true: there it is a failure).
 */
import { SerialPortMock } from 'serialport';
import { afterEach, describe, expect, it } from 'vitest';
import { driverSuite } from '@stele/hardware/testing';
import { SOCAT_SKIP_REASON, socatAvailable } from '@stele/simulator';
import { hj212Harness, modbusHarness } from './harnesses.ts';

const socat = socatAvailable();
const skip = socat ? false : SOCAT_SKIP_REASON;

describe('socat under CI', () => {
  it.runIf(process.env.CI === 'true')('is installed (CI must run the pty suites)', () => expect(socat).toBe(true));
});

afterEach(() => SerialPortMock.binding.reset());

for (const baud of [9600, 115200]) {
  driverSuite(`hj212 over a socat pty pair at ${baud} baud`, () => hj212Harness('pty', baud), { skip });
  driverSuite(`modbus-rtu over a socat pty pair at ${baud} baud`, () => modbusHarness('pty', baud), { skip });
}
driverSuite('hj212 (CEMS simulator) over the mock binding', () => hj212Harness('mock'));
driverSuite('modbus-rtu (T/RH slave simulator) over the mock binding', () => modbusHarness('mock'));
