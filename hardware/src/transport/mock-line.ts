/**
 * A serial line over serialport's mock binding that can be unplugged and replugged, and whose far end (the
 * instrument) is an object that writes and hears bytes. For the driver suite and demos: the same SerialTransport
 * code runs over it as over a real port.
 *
 *   const line = new MockSerialLine('/dev/ttyMOCK0');
 *   const transport = new SerialTransport({ path: line.path, baudRate: 9600, binding: line.binding });
 *   line.device.write(bytes);              // instrument -> gateway
 *   line.device.on('data', (b) => …);      // gateway -> instrument
 *   line.unplug(); line.plug();            // USB adapter pulled and put back
 *
 * The mock binding's port table is global: call `SerialPortMock.binding.reset()` (or line.dispose()) after a test.
 */
import { EventEmitter } from 'node:events';
import { SerialPortMock } from 'serialport';

/** serialport's mock binding (from serialport itself: @serialport/binding-mock's types do not resolve under NodeNext). */
const MockBinding = SerialPortMock.binding;
export type MockBindingInterface = typeof SerialPortMock.binding;
type OpenOptions = Parameters<MockBindingInterface['open']>[0];
/** The parts of @serialport/binding-mock's MockPortBinding this line uses. */
interface MockPortBinding {
  readonly isOpen: boolean;
  emitData(data: Buffer): void;
  read(buffer: Buffer, offset: number, length: number): Promise<{ buffer: Buffer; bytesRead: number }>;
  write(buffer: Buffer): Promise<void>;
}

/** The instrument's end of a line: what a simulator writes to and listens on. */
export interface DeviceEnd {
  write(bytes: Uint8Array): boolean;
  on(event: 'data', listener: (bytes: Uint8Array) => void): unknown;
  off(event: 'data', listener: (bytes: Uint8Array) => void): unknown;
}

class MockDeviceEnd extends EventEmitter implements DeviceEnd {
  constructor(private readonly line: MockSerialLine) {
    super();
  }
  /** Bytes to the gateway; dropped (returns false) while the gateway's port is not open, as on a real line. */
  write(bytes: Uint8Array): boolean {
    return this.line.deliver(bytes);
  }
}

export class MockSerialLine {
  readonly path: string;
  /** Pass as SerialTransportOptions.binding. */
  readonly binding: MockBindingInterface;
  readonly device: DeviceEnd;
  private plugged = true;
  private denied = false;
  private active: MockPortBinding | undefined;
  private readonly deviceEnd: MockDeviceEnd;

  constructor(path = '/dev/ttyMOCK0') {
    this.path = path;
    MockBinding.createPort(path, { echo: false, record: false });
    this.deviceEnd = new MockDeviceEnd(this);
    this.device = this.deviceEnd;
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const line = this;
    this.binding = {
      ...MockBinding,
      async open(options: OpenOptions) {
        if (options?.path === line.path) {
          if (!line.plugged) throw Object.assign(new Error(`No such file or directory, cannot open ${line.path}`), { code: 'ENOENT' });
          if (line.denied) throw new Error(`Permission denied, cannot open ${line.path}`);
        }
        const port = await MockBinding.open(options);
        if (options?.path === line.path) line.attach(port as unknown as MockPortBinding);
        return port;
      },
    };
  }

  /** True while the gateway side has the port open. */
  get isOpen(): boolean {
    return this.active?.isOpen === true;
  }

  /** The adapter goes away: the open port fails with a disconnect, and opening fails until plug(). */
  unplug(): void {
    this.plugged = false;
    const port = this.active;
    this.active = undefined;
    if (port === undefined || !port.isOpen) return;
    const pending = (port as unknown as { pendingRead: ((err?: Error) => void) | null }).pendingRead;
    (port as unknown as { pendingRead: null }).pendingRead = null;
    if (pending !== null) pending(disconnectError(this.path));
  }

  plug(): void {
    this.plugged = true;
  }

  /** Makes opens fail with "Permission denied" (a missing dialout group) until called with false. */
  denyPermission(denied = true): void {
    this.denied = denied;
  }

  /** Internal: instrument -> gateway. */
  deliver(bytes: Uint8Array): boolean {
    const port = this.active;
    if (port === undefined || !port.isOpen) return false;
    port.emitData(Buffer.from(bytes));
    return true;
  }

  private attach(port: MockPortBinding): void {
    this.active = port;
    const line = this;
    const write = port.write.bind(port);
    port.write = async (buffer: Buffer) => {
      await write(buffer);
      if (line.active === port) line.deviceEnd.emit('data', new Uint8Array(buffer));
    };
    const read = port.read.bind(port);
    port.read = async (buffer: Buffer, offset: number, length: number) => {
      if (line.active !== port && port.isOpen && !line.plugged) throw disconnectError(line.path);
      return read(buffer, offset, length);
    };
  }
}

function disconnectError(path: string): Error {
  return Object.assign(new Error(`${path}: device unplugged`), { disconnected: true });
}
