/**
 * Driver-suite harnesses with the simulator's instruments (CEMS data logger, Modbus T/RH slave), over a socat
 * pty pair (native serialport on both ends) or over serialport's mock binding.
 */
import { type DriverHarness, type InstrumentBehaviour } from '@stele/hardware/testing';
import {
  type Hj212DriverOptions,
  MockSerialLine,
  type ModbusDriverOptions,
  SerialTransport,
  XY_MD02,
  hj212Driver,
  modbusDriver,
} from '@stele/hardware';
import { CemsSimulator, ModbusThSlave, type ModbusSlaveBehaviour, PtyPair } from '@stele/simulator';

const MN = '010000A8900016F000169DC0';
const T0 = Date.UTC(2024, 0, 1, 4, 0, 0);
const QUICK = { initialDelayMs: 20, maxDelayMs: 200 } as const;
const PRESENCE_MS = 25;

/** The line a harness runs over: both ends, and how to cut and restore it. */
interface Line {
  gateway: SerialTransport;
  /** The instrument's end: write bytes, hear bytes. */
  write(bytes: Uint8Array): void;
  onData(listener: (b: Uint8Array) => void): () => void;
  cut(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

let mockCount = 0;
async function mockLine(baudRate: number): Promise<Line> {
  const line = new MockSerialLine(`/dev/ttyMOCK-int-${mockCount++}`);
  const gateway = new SerialTransport({ path: line.path, baudRate, binding: line.binding, reconnect: QUICK });
  return {
    gateway,
    write: (b) => void line.device.write(b),
    onData: (l) => {
      line.device.on('data', l);
      return () => void line.device.off('data', l);
    },
    cut: async () => line.unplug(),
    restore: async () => line.plug(),
    close: () => gateway.close(),
  };
}

async function ptyLine(baudRate: number): Promise<Line> {
  const pair = await PtyPair.start();
  const gateway = new SerialTransport({ path: pair.pathA, baudRate, reconnect: QUICK, presenceCheckMs: PRESENCE_MS });
  const instrument = new SerialTransport({ path: pair.pathB, baudRate, reconnect: QUICK, presenceCheckMs: PRESENCE_MS });
  await instrument.open();
  return {
    gateway,
    write: (b) => void instrument.write(b).catch(() => {}), // a dead line swallows what the instrument says
    onData: (l) => instrument.onData(l),
    cut: () => pair.cut(),
    restore: () => pair.restore(),
    close: async () => {
      await Promise.all([gateway.close(), instrument.close()]);
      await pair.stop();
    },
  };
}

export type LineKind = 'mock' | 'pty';
const makeLine = (kind: LineKind, baudRate: number) => (kind === 'pty' ? ptyLine(baudRate) : mockLine(baudRate));

/** The CEMS simulator pushing a CN=2011 frame every 20 ms (or noise / half a frame / nothing). */
export async function hj212Harness(kind: LineKind, baudRate = 9600): Promise<DriverHarness<Hj212DriverOptions>> {
  const line = await makeLine(kind, baudRate);
  const sim = new CemsSimulator({ mn: MN, seed: 3 });
  let k = 0;
  let behaviour: InstrumentBehaviour = 'good';
  const timer = setInterval(() => {
    if (behaviour === 'good') line.write(sim.nextFrame(T0 + 1000 * k++));
    else if (behaviour === 'garbage') line.write(new TextEncoder().encode('\x00\x07 line noise, no frame here \xfe\r\n'));
    else if (behaviour === 'truncated') {
      const f = sim.nextFrame(T0 + 1000 * k++);
      line.write(f.subarray(0, f.length >> 1));
      behaviour = 'silent';
    }
  }, 20);
  return {
    driver: hj212Driver,
    options: { silenceTimeoutMs: 150 },
    transport: line.gateway,
    behave: (b) => (behaviour = b),
    codes: { garbage: ['HJ212_NOISE'], truncated: ['HJ212_TRUNCATED'], timeout: ['DRIVER_TIMEOUT'] },
    cut: () => line.cut(),
    restore: () => line.restore(),
    cleanup: async () => {
      clearInterval(timer);
      await line.close();
    },
  };
}

const SLAVE_BEHAVIOUR: Record<InstrumentBehaviour, ModbusSlaveBehaviour> = { good: 'normal', garbage: 'garbage', truncated: 'truncated', silent: 'silent' };

/** The Modbus T/RH slave (XY-MD02, address 1) answering a master that polls every 20 ms. */
export async function modbusHarness(kind: LineKind, baudRate = 9600): Promise<DriverHarness<ModbusDriverOptions>> {
  const line = await makeLine(kind, baudRate);
  const slave = new ModbusThSlave({ slave: 1, family: 'xy-md02', seed: 5 });
  const attached = slave.attach({ write: (b) => line.write(b), onData: (l) => line.onData(l) });
  return {
    driver: modbusDriver,
    options: { timeoutMs: 100, devices: [{ sensor: 'cold-room-1', slave: 1, profile: XY_MD02, intervalMs: 20 }] },
    transport: line.gateway,
    behave: (b) => (slave.behaviour = SLAVE_BEHAVIOUR[b]),
    codes: { garbage: ['MODBUS_UNEXPECTED', 'MODBUS_BAD_CRC'], truncated: ['MODBUS_TRUNCATED'], timeout: ['MODBUS_TIMEOUT'] },
    cut: () => line.cut(),
    restore: () => line.restore(),
    cleanup: async () => {
      attached.detach();
      await line.close();
    },
  };
}
