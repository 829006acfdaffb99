import { SerialPortMock } from 'serialport';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_BACKOFF, backoffDelayMs, resolveBackoff } from './backoff.ts';
import { SerialError, openFailureCode } from './errors.ts';
import { MockSerialLine } from './mock-line.ts';
import { type SerialStatus, SerialTransport } from './serial-transport.ts';

afterEach(() => SerialPortMock.binding.reset());

const until = async (what: string, done: () => boolean) => {
  for (let i = 0; i < 1000; i++) {
    if (done()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
};

describe('backoffDelayMs', () => {
  const p = resolveBackoff({ initialDelayMs: 100, maxDelayMs: 1000, factor: 2, jitter: 0.2 });
  it('grows exponentially and is bounded', () => {
    const mid = () => 0.5; // no jitter
    expect([1, 2, 3, 4, 5, 6, 50].map((a) => backoffDelayMs(a, p, mid))).toEqual([100, 200, 400, 800, 1000, 1000, 1000]);
  });
  it('jitters within ±jitter and never above maxDelayMs', () => {
    expect(backoffDelayMs(1, p, () => 0)).toBe(80);
    expect(backoffDelayMs(1, p, () => 0.999999)).toBe(120);
    for (let a = 1; a < 20; a++) for (const r of [0, 0.3, 0.9999]) expect(backoffDelayMs(a, p, () => r)).toBeLessThanOrEqual(1000);
  });
  it('has documented defaults and rejects nonsense', () => {
    expect(DEFAULT_BACKOFF).toMatchObject({ initialDelayMs: 500, maxDelayMs: 30_000, factor: 2, jitter: 0.2, maxAttempts: Infinity });
    expect(() => resolveBackoff({ jitter: 2 })).toThrow(RangeError);
    expect(() => resolveBackoff({ initialDelayMs: 10, maxDelayMs: 5 })).toThrow(RangeError);
    expect(() => backoffDelayMs(0, p)).toThrow(RangeError);
  });
});

describe('openFailureCode', () => {
  it('maps errno codes and bindings-cpp messages', () => {
    expect(openFailureCode(Object.assign(new Error('x'), { code: 'EACCES' }))).toBe('SERIAL_PERMISSION_DENIED');
    expect(openFailureCode(new Error('Error: Permission denied, cannot open /dev/ttyUSB0'))).toBe('SERIAL_PERMISSION_DENIED');
    expect(openFailureCode(new Error('Error: No such file or directory, cannot open /dev/ttyUSB0'))).toBe('SERIAL_OPEN_FAILED');
    expect(openFailureCode(Object.assign(new Error('x'), { code: 'ENOENT' }))).toBe('SERIAL_OPEN_FAILED');
  });
});

describe('SerialTransport', () => {
  it('validates its settings (misuse)', () => {
    expect(() => new SerialTransport({ path: '', baudRate: 9600 })).toThrow(TypeError);
    expect(() => new SerialTransport({ path: '/dev/x', baudRate: 0 })).toThrow(RangeError);
    expect(() => new SerialTransport({ path: '/dev/x', baudRate: 9600, parity: 'sometimes' as 'none' })).toThrow(RangeError);
    expect(() => new SerialTransport({ path: '/dev/x', baudRate: 9600, stopBits: 3 as 1 })).toThrow(RangeError);
  });

  it('opens with the per-port line settings and reports them, logging the real path', async () => {
    const line = new MockSerialLine('/dev/serial/by-id/usb-FTDI_FT232R-if00-port0');
    const logs: [string, string, Record<string, unknown>][] = [];
    const t = new SerialTransport({
      path: line.path,
      baudRate: 19200,
      parity: 'even',
      stopBits: 1,
      dataBits: 8,
      binding: line.binding,
      resolvePath: async () => '/dev/ttyUSB3',
      log: (level, msg, fields) => logs.push([level, msg, fields]),
    });
    const statuses: SerialStatus[] = [];
    t.onStatus((s) => statuses.push(s));
    await t.open().catch((e) => e);
    // The mock binding only knows the by-id name; opening '/dev/ttyUSB3' fails: the error names both.
    expect(statuses[0]).toMatchObject({ type: 'error', path: line.path, error: { code: 'SERIAL_OPEN_FAILED', realPath: '/dev/ttyUSB3' } });
    const t2 = new SerialTransport({ path: line.path, baudRate: 19200, parity: 'even', binding: line.binding, log: (level, msg, fields) => logs.push([level, msg, fields]) });
    t2.onStatus((s) => statuses.push(s));
    await t2.open();
    expect(statuses.at(-1)).toEqual({ type: 'open', path: line.path, realPath: line.path, baudRate: 19200, parity: 'even', dataBits: 8, stopBits: 1 });
    expect(logs.find(([, msg]) => msg === 'serial port open')?.[2]).toMatchObject({ path: line.path, realPath: line.path, baudRate: 19200, parity: 'even' });
    await t2.close();
    await t2.close();
    expect(statuses.at(-1)).toMatchObject({ type: 'closed', reason: 'requested', willReconnect: false });
  });

  it('rejects open with SERIAL_PERMISSION_DENIED naming the path', async () => {
    const line = new MockSerialLine('/dev/ttyMOCK-perm');
    line.denyPermission();
    const t = new SerialTransport({ path: line.path, baudRate: 9600, binding: line.binding });
    const e = await t.open().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SerialError);
    expect(e).toMatchObject({ code: 'SERIAL_PERMISSION_DENIED', path: line.path, disconnected: false });
    expect(t.state).toBe('closed');
  });

  it('resolves a real by-id style symlink to its device', async () => {
    const { mkdtemp, symlink, rm } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(join(tmpdir(), 'stele-byid-'));
    try {
      const link = join(dir, 'usb-Prolific_PL2303-if00-port0');
      await symlink('/dev/null', link);
      const statuses: SerialStatus[] = [];
      const t = new SerialTransport({ path: link, baudRate: 9600, reconnect: false });
      t.onStatus((s) => statuses.push(s));
      await t.open().catch(() => {}); // /dev/null is not a tty: the native open fails, after resolving
      expect(t.realPath).toBe('/dev/null');
      expect(statuses[0]).toMatchObject({ type: 'error', path: link, error: { code: 'SERIAL_OPEN_FAILED', realPath: '/dev/null' } });
      const missing = new SerialTransport({ path: join(dir, 'gone'), baudRate: 9600, reconnect: false });
      await expect(missing.open()).rejects.toMatchObject({ code: 'SERIAL_OPEN_FAILED', path: join(dir, 'gone') });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reconnects with backoff when the adapter is unplugged and replugged, reporting each step', async () => {
    const line = new MockSerialLine('/dev/ttyMOCK-replug');
    const t = new SerialTransport({ path: line.path, baudRate: 9600, binding: line.binding, reconnect: { initialDelayMs: 5, maxDelayMs: 40, jitter: 0 } });
    const statuses: SerialStatus[] = [];
    t.onStatus((s) => statuses.push(s));
    const got: number[] = [];
    t.onData((b) => got.push(...b));
    await t.open();
    line.device.write(Uint8Array.of(1));
    await until('data', () => got.length === 1);
    line.unplug();
    await until('three failed attempts', () => statuses.filter((s) => s.type === 'reconnecting').length >= 4);
    expect(t.state).toBe('reconnecting');
    await expect(t.write(Uint8Array.of(9))).rejects.toMatchObject({ code: 'SERIAL_DISCONNECTED', disconnected: true });
    line.plug();
    await t.whenOpen();
    line.device.write(Uint8Array.of(2));
    await until('data after replug', () => got.length === 2);
    const types = statuses.map((s) => (s.type === 'error' ? `error:${s.error.code}` : s.type));
    expect(types.slice(0, 5)).toEqual(['open', 'error:SERIAL_DISCONNECTED', 'closed', 'reconnecting', 'error:SERIAL_OPEN_FAILED']);
    expect(types.at(-1)).toBe('open');
    const delays = statuses.flatMap((s) => (s.type === 'reconnecting' ? [s.delayMs] : []));
    expect(delays.slice(0, 4)).toEqual([5, 10, 20, 40]);
    expect(t.stats()).toMatchObject({ opens: 2, disconnects: 1 });
    await t.close();
  });

  it('gives up after maxAttempts and says so', async () => {
    const line = new MockSerialLine('/dev/ttyMOCK-giveup');
    const t = new SerialTransport({ path: line.path, baudRate: 9600, binding: line.binding, reconnect: { initialDelayMs: 1, maxDelayMs: 2, maxAttempts: 3 } });
    const statuses: SerialStatus[] = [];
    t.onStatus((s) => statuses.push(s));
    await t.open();
    const waiting = t.whenOpen();
    line.unplug();
    await until('giving up', () => statuses.some((s) => s.type === 'closed' && s.reason === 'gave-up'));
    expect(statuses.filter((s) => s.type === 'reconnecting')).toHaveLength(3);
    expect(t.state).toBe('closed');
    await expect(t.whenOpen()).rejects.toMatchObject({ code: 'SERIAL_DISCONNECTED' });
    await waiting; // it was open when asked
  });

  it('one failing port never stalls another', async () => {
    const good = new MockSerialLine('/dev/ttyMOCK-good');
    const bad = new MockSerialLine('/dev/ttyMOCK-bad');
    bad.unplug();
    const tb = new SerialTransport({ path: bad.path, baudRate: 9600, binding: bad.binding, retryInitialOpen: true, reconnect: { initialDelayMs: 1, maxDelayMs: 5 } });
    const tg = new SerialTransport({ path: good.path, baudRate: 9600, binding: good.binding });
    const badOpen = tb.open();
    await tg.open();
    const got: number[] = [];
    tg.onData((b) => got.push(...b));
    for (let i = 0; i < 20; i++) good.device.write(Uint8Array.of(i));
    await until('all bytes on the good port', () => got.length === 20);
    expect(tb.state).toBe('reconnecting');
    expect(tb.stats().failedOpens).toBeGreaterThan(0);
    bad.plug();
    await badOpen;
    expect(tb.state).toBe('open');
    await Promise.all([tb.close(), tg.close()]);
  });
});
