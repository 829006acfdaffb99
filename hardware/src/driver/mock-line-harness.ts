/**
 * Test-only (not exported from index.ts): a driverSuite harness over a MockSerialLine, where a fake instrument
 * writes a message (or the chosen fault) onto the line every 10 ms.
 */
import { MockSerialLine } from '../transport/mock-line.ts';
import { SerialTransport } from '../transport/serial-transport.ts';
import type { DriverHarness, InstrumentBehaviour } from './driver-suite.ts';
import type { DriverCommonOptions } from './types.ts';

export interface MockLineInstrument<O extends DriverCommonOptions> {
  /** Path of the mock line (unique per harness). */
  path: string;
  driver: DriverHarness<O>['driver'];
  options: O;
  codes: DriverHarness<O>['codes'];
  /** A fresh good message, called once per tick while the behaviour is 'good'. */
  message(): Uint8Array;
  /** What is written per tick while the behaviour is 'garbage'. */
  garbage: Uint8Array;
}

/** 'truncated' writes the first half of one message once, then the instrument falls silent. */
export async function mockLineHarness<O extends DriverCommonOptions>(instrument: MockLineInstrument<O>): Promise<DriverHarness<O>> {
  const line = new MockSerialLine(instrument.path);
  const transport = new SerialTransport({ path: line.path, baudRate: 9600, binding: line.binding, reconnect: { initialDelayMs: 10, maxDelayMs: 50 } });
  let behaviour: InstrumentBehaviour = 'good';
  const timer = setInterval(() => {
    if (behaviour === 'good') line.device.write(instrument.message());
    else if (behaviour === 'garbage') line.device.write(instrument.garbage);
    else if (behaviour === 'truncated') {
      const m = instrument.message();
      line.device.write(m.subarray(0, m.length >> 1));
      behaviour = 'silent';
    }
  }, 10);
  return {
    driver: instrument.driver,
    options: instrument.options,
    transport,
    behave: (b) => (behaviour = b),
    codes: instrument.codes,
    cut: async () => line.unplug(),
    restore: async () => line.plug(),
    cleanup: async () => {
      clearInterval(timer);
      await transport.close();
    },
  };
}
