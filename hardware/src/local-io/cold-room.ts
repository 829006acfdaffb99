/**
 * The cold-room alarm rule (PROTOCOLS.md §4.3: GSP requires a local audible/visual alarm on limit excursion
 * and on failure). A pure state machine: the caller gives monotonic time and the latest probe and door states.
 *
 * - Temperature: when any probe is outside [lowC, highC] continuously for `outOfRangeMinutes`, the alarm comes on.
 *   It goes off only when every probe is back inside [lowC + hysteresisC, highC - hysteresisC], so a probe
 *   hovering at the limit does not make the sounder chatter. A single reading back inside [lowC, highC]
 *   (but not the inner band) while the alarm is off restarts the timer.
 * - Door: when a door is open continuously for `doorOpenMinutes`, the alarm comes on; it goes off when that door
 *   has been closed for `doorClosedMinutes` (default 0: at once).
 * - Probe fault: a probe with no valid reading (CRC, power-on value, unplugged) for `probeFaultMinutes`
 *   (default: outOfRangeMinutes) raises the alarm too: GSP asks for an alarm on monitoring failure.
 * Defaults for a pharmaceutical cold store (2–8 °C) are in {@link GSP_COLD_ROOM_RULE}; N and M are site settings.
 */
import type { Measurement } from '@stele/core';
import type { Ds18b20Result } from './ds18b20.ts';
import { type DoorState, doorMeasurement } from './gpio.ts';

export interface ColdRoomRule {
  lowC: number;
  highC: number;
  /** Default 0.5 °C (the GSP sensor tolerance, §4.3). */
  hysteresisC?: number;
  /** N: minutes out of range before the alarm. */
  outOfRangeMinutes: number;
  /** M: minutes a door may stay open. */
  doorOpenMinutes: number;
  /** Minutes a door must stay closed before its alarm clears. Default 0. */
  doorClosedMinutes?: number;
  /** Minutes without a valid reading from a probe before the alarm. Default outOfRangeMinutes. */
  probeFaultMinutes?: number;
}

/** 2–8 °C (GSP cold storage, §4.3); N = 10 min and M = 5 min are example site settings, not values from GSP. */
export const GSP_COLD_ROOM_RULE: Readonly<ColdRoomRule> = { lowC: 2, highC: 8, hysteresisC: 0.5, outOfRangeMinutes: 10, doorOpenMinutes: 5 };

export type ColdRoomAlarmReason = 'temperature' | 'door' | 'probe_fault';

export interface ColdRoomInput {
  /** Monotonic time, ms (never going backwards). */
  timeMs: number;
  /** Latest value per probe; undefined = no valid reading this time. */
  probes: readonly { id: string; celsius: number | undefined }[];
  doors: readonly { id: string; open: boolean }[];
}

export interface ColdRoomStatus {
  alarm: boolean;
  /** True when `alarm` differs from the previous update. */
  changed: boolean;
  reasons: ColdRoomAlarmReason[];
  /** Since when the temperature has been out of range (undefined when in range). */
  outOfRangeSinceMs?: number;
}

const MIN = 60_000;

export class ColdRoomAlarm {
  private readonly rule: Required<ColdRoomRule>;
  private lastTime: number | undefined;
  private outSince: number | undefined;
  private tempAlarm = false;
  private readonly doorOpenSince = new Map<string, number>();
  private readonly doorClosedSince = new Map<string, number>();
  private readonly doorAlarm = new Set<string>();
  private readonly faultSince = new Map<string, number>();
  private alarm = false;

  constructor(rule: ColdRoomRule) {
    const r: Required<ColdRoomRule> = {
      hysteresisC: 0.5,
      doorClosedMinutes: 0,
      probeFaultMinutes: rule.outOfRangeMinutes,
      ...rule,
    };
    for (const [k, v] of Object.entries(r)) if (typeof v !== 'number' || !Number.isFinite(v)) throw new TypeError(`rule.${k} must be a finite number`);
    if (r.lowC >= r.highC) throw new RangeError('rule.lowC must be below rule.highC');
    if (r.hysteresisC < 0 || 2 * r.hysteresisC >= r.highC - r.lowC) throw new RangeError('rule.hysteresisC must be >= 0 and leave an inner band');
    if (r.outOfRangeMinutes < 0 || r.doorOpenMinutes < 0 || r.doorClosedMinutes < 0 || r.probeFaultMinutes < 0) throw new RangeError('durations must be >= 0');
    this.rule = r;
  }

  update(input: ColdRoomInput): ColdRoomStatus {
    const t = input.timeMs;
    if (!Number.isFinite(t)) throw new TypeError('input.timeMs must be a finite number');
    if (this.lastTime !== undefined && t < this.lastTime) throw new RangeError('input.timeMs went backwards: feed a monotonic clock');
    this.lastTime = t;
    const { lowC, highC, hysteresisC } = this.rule;

    // Temperature with hysteresis.
    const values = input.probes.flatMap((p) => (p.celsius === undefined ? [] : [p.celsius]));
    const anyOut = values.some((c) => c < lowC || c > highC);
    const allInner = values.length > 0 && values.every((c) => c >= lowC + hysteresisC && c <= highC - hysteresisC);
    if (this.tempAlarm) {
      if (allInner) {
        this.tempAlarm = false;
        this.outSince = undefined;
      }
    } else if (anyOut) {
      this.outSince ??= t;
      if (t - this.outSince >= this.rule.outOfRangeMinutes * MIN) this.tempAlarm = true;
    } else if (values.length > 0) {
      this.outSince = undefined;
    }

    // Probe faults.
    let fault = false;
    for (const p of input.probes) {
      if (p.celsius === undefined) {
        if (!this.faultSince.has(p.id)) this.faultSince.set(p.id, t);
        if (t - this.faultSince.get(p.id)! >= this.rule.probeFaultMinutes * MIN) fault = true;
      } else {
        this.faultSince.delete(p.id);
      }
    }

    // Doors.
    for (const d of input.doors) {
      if (d.open) {
        this.doorClosedSince.delete(d.id);
        if (!this.doorOpenSince.has(d.id)) this.doorOpenSince.set(d.id, t);
        if (t - this.doorOpenSince.get(d.id)! >= this.rule.doorOpenMinutes * MIN) this.doorAlarm.add(d.id);
      } else {
        this.doorOpenSince.delete(d.id);
        if (!this.doorClosedSince.has(d.id)) this.doorClosedSince.set(d.id, t);
        if (t - this.doorClosedSince.get(d.id)! >= this.rule.doorClosedMinutes * MIN) this.doorAlarm.delete(d.id);
      }
    }

    const reasons: ColdRoomAlarmReason[] = [];
    if (this.tempAlarm) reasons.push('temperature');
    if (this.doorAlarm.size > 0) reasons.push('door');
    if (fault) reasons.push('probe_fault');
    const alarm = reasons.length > 0;
    const changed = alarm !== this.alarm;
    this.alarm = alarm;
    const status: ColdRoomStatus = { alarm, changed, reasons };
    if (this.outSince !== undefined) status.outOfRangeSinceMs = this.outSince;
    return status;
  }
}

/** `{code: room, kind: 'alarm', value: 'on'|'off'}` plus one `alarm-reason` measurement per reason. */
export function alarmMeasurements(room: string, status: ColdRoomStatus): Measurement[] {
  return [
    { code: room, kind: 'alarm', value: status.alarm ? 'on' : 'off' },
    ...status.reasons.map((r): Measurement => ({ code: room, kind: 'alarm-reason', value: r })),
  ];
}

export interface ColdRoomTick {
  status: ColdRoomStatus;
  /** Probe temperatures, door states, alarm state. */
  meas: Measurement[];
  /** SHA-256 of each w1_slave read. */
  raw: Uint8Array[];
  /** Probe failures this tick (also counted as faults by the rule). */
  failures: Ds18b20Result[];
}

/**
 * Wires probes, door contacts, the rule and the alarm output. `tick()` reads everything once, updates the rule,
 * switches the output when the alarm changes (and on the first tick), and returns what to record.
 */
export class ColdRoomController {
  private readonly alarm: ColdRoomAlarm;
  private first = true;

  constructor(
    private readonly o: {
      room: string;
      rule: ColdRoomRule;
      readProbes: () => Promise<readonly Ds18b20Result[]>;
      readDoors: () => Promise<readonly DoorState[]>;
      output?: { set(on: boolean): Promise<void> };
      /** Monotonic clock, ms. Default performance.now-based. */
      now?: () => number;
    },
  ) {
    this.alarm = new ColdRoomAlarm(o.rule);
  }

  async tick(): Promise<ColdRoomTick> {
    const probes = await this.o.readProbes();
    const doors = await this.o.readDoors();
    const now = (this.o.now ?? (() => performance.now()))();
    const status = this.alarm.update({
      timeMs: now,
      probes: probes.map((p) => ({ id: p.id, celsius: p.ok ? p.millicelsius / 1000 : undefined })),
      doors: doors.map((d) => ({ id: d.id, open: d.open })),
    });
    if ((status.changed || this.first) && this.o.output !== undefined) await this.o.output.set(status.alarm);
    this.first = false;
    const meas: Measurement[] = [];
    const raw: Uint8Array[] = [];
    for (const p of probes) {
      if (p.raw !== undefined) raw.push(p.raw);
      if (p.ok) meas.push(p.meas);
    }
    meas.push(...doors.map(doorMeasurement), ...alarmMeasurements(this.o.room, status));
    return { status, meas, raw, failures: probes.filter((p) => !p.ok) };
  }
}
