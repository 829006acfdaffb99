import { SerialPortMock } from 'serialport';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeAll } from './decoder.ts';
import { encodeFrame } from './encoder.ts';
import { Hj212Error } from './errors.ts';
import { Hj212SerialSession } from './session.ts';
import type { Hj212Frame, Hj212Rejection } from './types.ts';

let n = 0;
async function openMock(): Promise<SerialPortMock> {
  const path = `/dev/ttyHJ212TEST${n++}`;
  SerialPortMock.binding.createPort(path, { echo: false, record: true });
  const port = new SerialPortMock({ path, baudRate: 9600 });
  await new Promise<void>((resolve, reject) => port.on('open', resolve).on('error', reject));
  return port;
}

const frame = (i: number, flag: 4 | 5 = 4) =>
  encodeFrame({
    header: { QN: `2024010112000000${i}`, ST: '31', CN: '2011', PW: '123456', MN: '010000A8900016F000169DC0', Flag: flag },
    cp: { params: { DataTime: '20240101120000' }, items: { a21026: { Rtd: `${i}.00`, Flag: 'N' } } },
  });

afterEach(() => SerialPortMock.binding.reset());

describe('Hj212SerialSession', () => {
  it('yields decoded frames from split and glued chunks, counts and reports rejections', async () => {
    const port = await openMock();
    const rejections: Hj212Rejection[] = [];
    const session = new Hj212SerialSession(port, { onRejection: (r) => rejections.push(r) });
    const f1 = frame(1);
    const f2 = frame(2);
    const bad = frame(3).slice();
    bad[bad.length - 3] = bad[bad.length - 3] === 0x30 ? 0x31 : 0x30;
    port.port!.emitData(Buffer.from(f1.subarray(0, 20)));
    port.port!.emitData(Buffer.concat([f1.subarray(20), Buffer.from('noise'), f2, bad]));
    port.port!.emitData(Buffer.from(frame(4)));

    const ac = new AbortController();
    const got: Hj212Frame[] = [];
    for await (const f of session.readings(ac.signal)) {
      got.push(f);
      if (got.length === 3) ac.abort();
    }
    expect(got.map((f) => f.parsed.cp.items.a21026?.Rtd)).toEqual(['1.00', '2.00', '4.00']);
    expect(rejections.map((r) => r.error.code)).toEqual(['HJ212_NOISE', 'HJ212_BAD_CRC']);
    expect(session.stats()).toMatchObject({ frames: 3, rejections: { HJ212_NOISE: 1, HJ212_BAD_CRC: 1 }, dropped: 0 });
    await session.close();
    expect(port.isOpen).toBe(false);
  });

  it('waits for frames that arrive later', async () => {
    const port = await openMock();
    const session = new Hj212SerialSession(port);
    setTimeout(() => port.port!.emitData(Buffer.from(frame(7))), 20);
    const it = session.readings()[Symbol.asyncIterator]();
    const first = await it.next();
    expect(!first.done && first.value.parsed.cp.items.a21026?.Rtd).toBe('7.00');
    await session.close();
    expect(await it.next()).toEqual({ done: true, value: undefined });
  });

  it('rejects with HJ212_LINK_CLOSED (disconnected) when the port closes by itself, after the queued frames', async () => {
    const port = await openMock();
    const session = new Hj212SerialSession(port);
    port.port!.emitData(Buffer.from(frame(1)));
    await new Promise((r) => setTimeout(r, 10));
    await new Promise<void>((r) => port.close(() => r()));
    const got: string[] = [];
    let error: unknown;
    try {
      for await (const f of session.readings()) got.push(f.parsed.header.QN ?? '');
    } catch (e) {
      error = e;
    }
    expect(got).toHaveLength(1);
    expect(error).toBeInstanceOf(Hj212Error);
    expect((error as Hj212Error).code).toBe('HJ212_LINK_CLOSED');
    expect((error as Hj212Error).disconnected).toBe(true);
  });

  it('answers uploads that ask for it with CN=9014 when acknowledge is on', async () => {
    const port = await openMock();
    const session = new Hj212SerialSession(port, { acknowledge: true });
    port.port!.emitData(Buffer.concat([frame(1, 5), frame(2, 4)]));
    const ac = new AbortController();
    for await (const _ of session.readings(ac.signal)) if (session.stats().frames === 2) ac.abort();
    await new Promise<void>((r) => port.drain(() => r()));
    const written = decodeAll(port.port!.recording);
    expect(written.map((r) => r.ok && [r.parsed.header.CN, r.parsed.header.QN])).toEqual([['9014', '20240101120000001']]);
    await session.close();
  });

  it('drops the oldest frames beyond maxQueuedFrames and counts them', async () => {
    const port = await openMock();
    const session = new Hj212SerialSession(port, { maxQueuedFrames: 2 });
    port.port!.emitData(Buffer.concat([frame(1), frame(2), frame(3)]));
    await new Promise((r) => setTimeout(r, 10));
    const ac = new AbortController();
    const got: string[] = [];
    for await (const f of session.readings(ac.signal)) {
      got.push(f.parsed.cp.items.a21026?.Rtd ?? '');
      if (got.length === 2) ac.abort();
    }
    expect(got).toEqual(['2.00', '3.00']);
    expect(session.stats().dropped).toBe(1);
    await session.close();
  });
});
