/**
 * Modbus RTU T/RH logger driver: several slaves on one bus, each polled on its own schedule through one
 * ModbusRtuMaster (requests serialised per bus). Each answer becomes a SensorReading (measurements from the
 * device's register profile, the response frame and its SHA-256); each failed poll (timeout, bad CRC, exception…)
 * is an issue naming the sensor. While the link is down, polls wait for it instead of failing in a loop.
 */
import { sha256 } from '@stele/core';
import { ModbusError } from '../modbus/errors.ts';
import { ModbusRtuMaster, type ModbusMasterOptions } from '../modbus/master.ts';
import { type RegisterProfile, assertProfile, measurementsFromRegisters, profileRequest } from '../modbus/profile.ts';
import { SerialError } from '../transport/errors.ts';
import type { SerialTransport } from '../transport/serial-transport.ts';
import { SessionCore } from './session-core.ts';
import type { DriverCommonOptions, SensorDriver, SensorReading, SensorSession, SessionStats } from './types.ts';
import { sleep } from '@stele/core';

export interface ModbusDeviceConfig {
  /** Sensor id for the readings, e.g. `coldroom-1-probe-a`. */
  sensor: string;
  /** Slave address 1..247. */
  slave: number;
  profile: RegisterProfile;
  /** Poll period (GSP: ≤ 30 min in storage, ≤ 5 min in transport, ≤ 2 min out of range, PROTOCOLS.md §4.3). */
  intervalMs: number;
  /** Delay of the first poll, to spread devices over the period. Default 0. */
  offsetMs?: number;
  /** Overrides the bus timeout for this device. */
  timeoutMs?: number;
}

export interface ModbusDriverOptions extends DriverCommonOptions, ModbusMasterOptions {
  devices: readonly ModbusDeviceConfig[];
}

class ModbusSession implements SensorSession {
  readonly master: ModbusRtuMaster;
  private readonly core: SessionCore;
  private readonly stop = new AbortController();
  private readonly loops: Promise<void>[];

  constructor(
    private readonly transport: SerialTransport,
    options: ModbusDriverOptions,
  ) {
    this.core = new SessionCore(transport, options, () => {}, () => this.halt());
    this.master = new ModbusRtuMaster(transport, options);
    this.loops = options.devices.map((d) => this.poll(d));
  }

  readings(signal?: AbortSignal): AsyncIterable<SensorReading> {
    return this.core.readings(signal);
  }

  stats(): SessionStats {
    return this.core.stats();
  }

  async close(): Promise<void> {
    this.core.finish();
    await Promise.all(this.loops);
  }

  private halt(): void {
    if (this.stop.signal.aborted) return;
    this.stop.abort();
    this.master.close();
  }

  private async poll(device: ModbusDeviceConfig): Promise<void> {
    const signal = this.stop.signal;
    const request = profileRequest(device.profile, device.slave);
    await pause(device.offsetMs ?? 0, signal);
    while (!signal.aborted) {
      const started = Date.now();
      if (this.transport.state !== 'open') {
        try {
          await this.transport.whenOpen(signal);
        } catch {
          return; // closed for good (the session core ends readings with the reason) or session closed
        }
        continue;
      }
      try {
        const response = await this.master.read(request, device.timeoutMs === undefined ? {} : { timeoutMs: device.timeoutMs });
        this.core.push({
          sensor: device.sensor,
          time: this.core.now(),
          meas: measurementsFromRegisters(device.profile, response.registers, request.address),
          raw: [sha256(response.raw)],
          frames: [response.raw],
        });
      } catch (e) {
        if (signal.aborted) return;
        if (e instanceof ModbusError) {
          this.core.issue({ code: e.code, error: e, sensor: device.sensor, ...(e.raw === undefined || e.raw.length === 0 ? {} : { raw: e.raw }) });
        } else if (!(e instanceof SerialError)) {
          throw e; // a bug, not a line condition
        }
        // SerialError: the link went down mid-exchange; the session core applies the disconnect policy.
      }
      await pause(Math.max(0, device.intervalMs - (Date.now() - started)), signal);
    }
  }
}

/** Waits `ms` (none when it is 0 or less) or until `signal` aborts: core's one abortable sleep. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return ms > 0 ? sleep(ms, signal) : Promise.resolve();
}

/** The Modbus RTU driver: one session per bus, polling every configured device. */
export const modbusDriver: SensorDriver<ModbusDriverOptions> = {
  kind: 'modbus-rtu',
  async open(options: ModbusDriverOptions, transport: SerialTransport): Promise<SensorSession> {
    if (options === null || typeof options !== 'object' || !Array.isArray(options.devices) || options.devices.length === 0) {
      throw new TypeError('options.devices must be a non-empty array');
    }
    const seen = new Set<string>();
    for (const d of options.devices) {
      if (typeof d.sensor !== 'string' || d.sensor === '') throw new TypeError('device.sensor must be a non-empty string');
      if (seen.has(d.sensor)) throw new RangeError(`device.sensor ${d.sensor} appears twice`);
      seen.add(d.sensor);
      if (!Number.isInteger(d.slave) || d.slave < 1 || d.slave > 247) throw new RangeError(`device ${d.sensor}: slave must be 1..247`);
      if (!(Number.isFinite(d.intervalMs) && d.intervalMs > 0)) throw new RangeError(`device ${d.sensor}: intervalMs must be > 0`);
      assertProfile(d.profile);
    }
    await transport.open();
    return new ModbusSession(transport, options);
  },
};
