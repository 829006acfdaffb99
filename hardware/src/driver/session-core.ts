/**
 * The part every driver session shares: a bounded queue of readings with one async reader, issue counting, and
 * the disconnect policy against the transport's status. Drivers feed it; it never does I/O itself.
 */
import { SteleError } from '@stele/core';
import { SerialError } from '../transport/errors.ts';
import type { SerialStatus, SerialTransport } from '../transport/serial-transport.ts';
import { ReadingQueue } from './reading-queue.ts';
import type { DriverCommonOptions, DriverIssue, SensorReading, SessionStats } from './types.ts';

export type DriverErrorCode =
  /** No frame arrived within the driver's silence/poll timeout. */
  | 'DRIVER_TIMEOUT'
  /** The reader fell behind by maxQueuedReadings; the oldest reading was dropped. */
  | 'DRIVER_OVERFLOW';

export class DriverError extends SteleError<DriverErrorCode> {
  readonly disconnected = false;
}

export class SessionCore {
  private readonly queue = new ReadingQueue<SensorReading>();
  private readonly counts: SessionStats = { readings: 0, issues: {}, disconnects: 0 };
  private readonly maxQueued: number;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly transport: SerialTransport,
    private readonly options: DriverCommonOptions,
    /** Told about link changes: `down` (bytes in flight are lost), `up` (a fresh connection). */
    private readonly onLink: (event: 'down' | 'up') => void,
    /** Told once when the session ends (closed, or the link is gone per the policy): stop timers and polls. */
    private readonly onEnd: () => void = () => {},
  ) {
    const max = options.maxQueuedReadings ?? 1000;
    if (!Number.isInteger(max) || max < 1) throw new RangeError('options.maxQueuedReadings must be a positive integer');
    this.maxQueued = max;
    this.unsubscribe = transport.onStatus((s) => this.status(s));
  }

  get closed(): boolean {
    return this.queue.ended;
  }

  now(): number {
    return (this.options.now ?? Date.now)();
  }

  stats(): SessionStats {
    return { ...this.counts, issues: { ...this.counts.issues } };
  }

  push(reading: SensorReading): void {
    if (this.queue.ended) return;
    this.counts.readings++;
    if (this.queue.length >= this.maxQueued) {
      const dropped = this.queue.shift();
      this.issue({
        code: 'DRIVER_OVERFLOW',
        error: new DriverError('DRIVER_OVERFLOW', `reader fell behind by ${this.maxQueued} readings; oldest dropped`),
        ...(dropped === undefined ? {} : { sensor: dropped.sensor }),
      });
    }
    this.queue.push(reading);
    this.queue.wake();
  }

  issue(issue: DriverIssue): void {
    if (this.queue.ended) return;
    this.counts.issues[issue.code] = (this.counts.issues[issue.code] ?? 0) + 1;
    this.options.onIssue?.(issue);
  }

  readings(signal?: AbortSignal): AsyncGenerator<SensorReading, void, undefined> {
    return this.queue.drain(signal);
  }

  /** Ends the session: readings() drains the queue, then ends (or throws `failure`). */
  finish(failure?: Error): void {
    if (this.queue.ended) return;
    this.queue.end(failure);
    this.unsubscribe();
    this.onEnd();
    this.queue.wake();
  }

  private status(s: SerialStatus): void {
    if (this.queue.ended) return;
    if (s.type === 'open') {
      this.onLink('up');
      return;
    }
    if (s.type === 'error' && s.error.code === 'SERIAL_DISCONNECTED') {
      this.counts.disconnects++;
      this.onLink('down');
      if (this.options.onDisconnect === 'reject') this.finish(s.error);
      else this.lastDisconnect = s.error;
      return;
    }
    if (s.type === 'closed' && !s.willReconnect) {
      this.onLink('down');
      this.finish(this.lastDisconnect ?? disconnectedError(this.transport, s.reason));
    }
  }

  private lastDisconnect: SerialError | undefined;
}

function disconnectedError(transport: SerialTransport, reason: string): SerialError {
  const where = transport.realPath === undefined ? { path: transport.path } : { path: transport.path, realPath: transport.realPath };
  return new SerialError('SERIAL_DISCONNECTED', `${transport.path} closed (${reason})`, where);
}
