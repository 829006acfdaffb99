/**
 * The driver conformance suite (like abstract-level's): every SensorDriver runs the same cases over whatever
 * line its harness builds: serialport's mock binding, a socat pty pair, a real adapter.
 *
 *   driverSuite('hj212 over mock', async () => ({ driver: hj212Driver, options, transport, behave, codes, cut, restore, cleanup }));
 *
 * Cases: open, read, garbage frame, truncated frame, timeout, disconnect (rejects with `disconnected: true`
 * under onDisconnect 'reject'; recovers after the line comes back under 'resume'), close, abort.
 * Waits are bounded (`waitMs`, default 5000 ms); nothing asserts on durations.
 */
import { sha256 } from '@stele/core';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '@stele/testkit';
import type { SerialStatus, SerialTransport } from '../transport/serial-transport.ts';
import type { DriverCommonOptions, DriverIssue, SensorDriver, SensorReading, SensorSession } from './types.ts';

/** What the instrument does from now on: send/answer good frames, noise, half frames, or nothing. */
export type InstrumentBehaviour = 'good' | 'garbage' | 'truncated' | 'silent';

export interface DriverHarness<O extends DriverCommonOptions> {
  driver: SensorDriver<O>;
  /** Driver options with short timeouts; the suite adds onIssue and onDisconnect. */
  options: O;
  /** Not opened yet; its reconnect policy should be quick (tens of ms). */
  transport: SerialTransport;
  behave(behaviour: InstrumentBehaviour): void;
  /** Issue codes the driver may report for each fault (at least one of them must come). */
  codes: { garbage: readonly string[]; truncated: readonly string[]; timeout: readonly string[] };
  /** Takes the line away (unplug the adapter, kill socat). */
  cut(): Promise<void>;
  /** Brings it back (plug in, new socat on the same paths). */
  restore(): Promise<void>;
  /** Stops the instrument, closes the transport, removes what the harness made. */
  cleanup(): Promise<void>;
}

export interface DriverSuiteOptions {
  /** A reason to skip (e.g. socat is not installed); the suite reports itself skipped with it. */
  skip?: string | false;
  /** Bound of every wait. Default 5000 ms. */
  waitMs?: number;
  /** How long a fault is held at most before the instrument recovers. Default 300 ms. */
  faultMs?: number;
}

export function driverSuite<O extends DriverCommonOptions>(
  name: string,
  makeDriverHarness: () => Promise<DriverHarness<O>>,
  suiteOptions: DriverSuiteOptions = {},
): void {
  const skip = typeof suiteOptions.skip === 'string' ? suiteOptions.skip : undefined;
  const waitMs = suiteOptions.waitMs ?? 5000;
  const faultMs = suiteOptions.faultMs ?? 300;
  const title = skip === undefined ? `driver conformance: ${name}` : `driver conformance: ${name} (${skip})`;

  describe.skipIf(skip !== undefined)(title, () => {
    let harness: DriverHarness<O> | undefined;
    let session: SensorSession | undefined;
    const issues: DriverIssue[] = [];
    const statuses: SerialStatus[] = [];

    async function start(behaviour: InstrumentBehaviour, onDisconnect: 'resume' | 'reject' = 'resume') {
      issues.length = 0;
      statuses.length = 0;
      const h = await makeDriverHarness();
      harness = h;
      h.transport.onStatus((s) => statuses.push(s));
      h.behave(behaviour);
      const baseline = h.transport.listenerCount();
      const s = await h.driver.open({ ...h.options, onIssue: (i: DriverIssue) => issues.push(i), onDisconnect }, h.transport);
      session = s;
      const it = s.readings()[Symbol.asyncIterator]();
      return { h, s, it, baseline };
    }

    afterEach(async () => {
      await session?.close();
      session = undefined;
      await harness?.cleanup();
      harness = undefined;
    });

    async function next(it: AsyncIterator<SensorReading>, what = 'a reading'): Promise<SensorReading> {
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), waitMs);
      });
      try {
        const r = await Promise.race([it.next(), bound]);
        if (r.done === true) throw new Error(`readings ended while waiting for ${what}`);
        return r.value;
      } finally {
        clearTimeout(timer);
      }
    }

    /** Readings after the fault: skip what was queued before it, then one must come. */
    async function readingAfter(it: AsyncIterator<SensorReading>, since: number): Promise<SensorReading> {
      for (;;) {
        const r = await next(it, 'a reading after the fault');
        if (r.time >= since) return r;
      }
    }

    function expectWellFormed(r: SensorReading): void {
      expect(typeof r.sensor).toBe('string');
      expect(r.sensor.length).toBeGreaterThan(0);
      expect(Number.isFinite(r.time)).toBe(true);
      expect(r.meas.length).toBeGreaterThan(0);
      for (const m of r.meas) {
        expect(typeof m.code).toBe('string');
        expect(typeof m.kind).toBe('string');
        expect(typeof m.value).toBe('string');
      }
      expect(r.frames.length).toBeGreaterThan(0);
      expect(r.raw.length).toBe(r.frames.length);
      r.frames.forEach((f, i) => expect(r.raw[i]).toEqual(sha256(f)));
    }

    async function faultThenRecover(fault: InstrumentBehaviour, which: 'garbage' | 'truncated' | 'timeout') {
      const { h, it } = await start(fault);
      const codes = h.codes[which];
      const seen = () => issues.some((i) => codes.includes(i.code));
      // A push protocol may only notice a fault when good bytes follow it (a truncated frame ends at the next
      // frame start): hold the fault until it is reported or for faultMs, then let the instrument recover.
      const holdUntil = Date.now() + faultMs;
      while (!seen() && Date.now() < holdUntil) await new Promise((r) => setTimeout(r, 5));
      const since = Date.now();
      h.behave('good');
      expectWellFormed(await readingAfter(it, since));
      await waitFor(seen, `an issue with one of ${codes.join(', ')}`, waitMs);
      const issue = issues.find((i) => codes.includes(i.code))!;
      expect(issue.error.code).toBe(issue.code);
      expect(session!.stats().issues[issue.code]).toBeGreaterThanOrEqual(1);
    }

    it('open: opens the transport and starts a session', async () => {
      const { h, s } = await start('good');
      expect(h.transport.state).toBe('open');
      expect(s.stats()).toMatchObject({ disconnects: 0 });
    });

    it('read: yields readings with measurements, the exact frames and their SHA-256', async () => {
      const { it } = await start('good');
      const first = await next(it);
      expectWellFormed(first);
      expectWellFormed(await next(it, 'a second reading'));
      expect(session!.stats().readings).toBeGreaterThanOrEqual(2);
    });

    it('garbage frame: reports an issue with a code and keeps reading', async () => {
      await faultThenRecover('garbage', 'garbage');
    });

    it('truncated frame: reports an issue with a code and keeps reading', async () => {
      await faultThenRecover('truncated', 'truncated');
    });

    it('timeout: reports an issue when the instrument is silent, and reads again when it speaks', async () => {
      await faultThenRecover('silent', 'timeout');
    });

    it("disconnect, onDisconnect 'reject': readings() rejects with disconnected: true", async () => {
      const { h, it } = await start('good', 'reject');
      await next(it);
      await h.cut();
      let error: unknown;
      try {
        for (let i = 0; i < 100_000; i++) await next(it, 'the disconnect');
      } catch (e) {
        error = e;
      }
      expect(error).toBeDefined();
      expect((error as { disconnected?: unknown }).disconnected).toBe(true);
      expect((error as { code?: unknown }).code).toBe('SERIAL_DISCONNECTED');
    });

    it("disconnect, onDisconnect 'resume': waits while the transport reconnects, then reads again", async () => {
      const { h, it } = await start('good', 'resume');
      await next(it);
      await h.cut();
      await waitFor(() => statuses.some((s) => s.type === 'closed' && s.reason === 'disconnected'), 'the transport to report the disconnect', waitMs);
      await waitFor(() => statuses.some((s) => s.type === 'reconnecting'), 'a reconnect attempt', waitMs);
      await h.restore();
      await waitFor(() => h.transport.state === 'open', 'the transport to reopen', waitMs);
      const since = Date.now();
      expectWellFormed(await readingAfter(it, since));
      expect(session!.stats().disconnects).toBeGreaterThanOrEqual(1);
      const errors = statuses.filter((s) => s.type === 'error');
      expect(errors.map((s) => s.type === 'error' && s.error.code)).toContain('SERIAL_DISCONNECTED');
      for (const s of errors) if (s.type === 'error') expect(s.error.path).toBe(h.transport.path);
    });

    it('close: readings end without error, close is idempotent, the session detaches', async () => {
      const { h, s, it, baseline } = await start('good');
      await next(it);
      await s.close();
      for (let i = 0; i < 100_000; i++) {
        const r = await it.next();
        if (r.done === true) break;
      }
      expect((await it.next()).done).toBe(true);
      await s.close();
      expect(h.transport.listenerCount()).toEqual(baseline);
      const after = s.stats().readings;
      await new Promise((r) => setTimeout(r, 50));
      expect(s.stats().readings).toBe(after);
    });

    it('abort: an aborted signal ends that iteration only', async () => {
      const { s } = await start('good');
      const ac = new AbortController();
      const it = s.readings(ac.signal)[Symbol.asyncIterator]();
      await next(it);
      ac.abort();
      expect((await it.next()).done).toBe(true);
      expectWellFormed(await next(s.readings()[Symbol.asyncIterator](), 'a reading on a new iteration'));
    });
  });
}
