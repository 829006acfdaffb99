import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { equalBytes, utf8, sha256, decodeReading } from '@stele/core';
import { createSoftwareKey, type SoftwareSigner } from '@stele/device';
import { encodeFrame, encodeRequestAnswer } from '@stele/hardware';
import { GatewayAgent } from '../agent.ts';
import { Outbox } from '../outbox.ts';
import { Publisher } from '../publisher.ts';
import { startBroker, startFakeIngest, TEST_INGEST, waitFor } from '../test-helpers.ts';
import { Hj212Relay, type Hj212RelayOptions } from './hj212-relay.ts';
import { findReadingsByFrame } from './lookup.ts';
import { connectLogger, startPlatform, upload, type Platform } from './test-platform.ts';

const DEVICE = 'gw-relay-1';
let dir: string;
let signer: SoftwareSigner;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  const keyDir = await mkdtemp(join(tmpdir(), 'stele-relay-key-'));
  signer = await createSoftwareKey(join(keyDir, 'k.pem'));
  await rm(keyDir, { recursive: true, force: true });
});
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stele-relay-'));
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await rm(dir, { recursive: true, force: true });
});

async function relay(platform: Platform, options: Partial<Hj212RelayOptions> = {}): Promise<Hj212Relay> {
  const r = new Hj212Relay({ listen: { port: 0 }, upstream: { host: '127.0.0.1', port: platform.port }, reconnectPeriodMs: 50, maxReconnectPeriodMs: 200, ...options });
  cleanups.push(() => r.stop());
  await r.start();
  return r;
}

async function platform(options: { answer?: boolean } = {}): Promise<Platform> {
  const p = await startPlatform(options);
  cleanups.push(() => p.close());
  return p;
}

const qnOf = (f: Uint8Array) => /QN=(\d+)/.exec(new TextDecoder().decode(f))![1];

describe('Hj212Relay', () => {
  it('forwards every frame byte for byte and relays the 9014 answers, also while the Stele broker is stopped', async () => {
    const broker = await startBroker();
    cleanups.push(() => broker.close());
    const fake = await startFakeIngest(broker.url, DEVICE);
    cleanups.push(() => fake.stop());
    const outbox = await Outbox.open(join(dir, 'outbox'));
    cleanups.push(() => outbox.close());
    const publisher = new Publisher({ mqttUrl: broker.url, deviceId: DEVICE, outbox, reconnectPeriodMs: 100, maxReconnectPeriodMs: 200, ingestKey: TEST_INGEST.publicKey });
    const agent = new GatewayAgent({ deviceId: DEVICE, signer, outbox, publisher });
    cleanups.push(() => agent.stop());
    await publisher.start();

    const plat = await platform();
    const r = await relay(plat, { clock: () => ({ synced: true, source: 'ntp' }) });
    agent.addSource('hj212-relay', r.readings());
    await waitFor(() => r.status().upstreamConnected, 10_000, 'upstream');
    const logger = await connectLogger(r.port!);
    cleanups.push(() => logger.close());

    const frames = Array.from({ length: 40 }, (_, i) => upload(i + 1));
    const send = async (from: number, to: number) => {
      for (let i = from; i < to; i++) {
        const f = frames[i]!;
        if (i % 3 === 0) {
          // split across TCP writes, with noise before it: the relay must reassemble, not splice
          logger.write(utf8('\r\n\x00junk'));
          logger.write(f.subarray(0, 17));
          await new Promise((res) => setTimeout(res, 2));
          logger.write(f.subarray(17));
        } else logger.write(f);
      }
    };
    await send(0, 15);
    await waitFor(() => outbox.ackedUpTo() >= 15, 10_000, 'first 15 signed and acknowledged');
    await broker.close(); // Stele's broker goes down: the platform path must not notice
    await send(15, 40);
    await waitFor(() => plat.frames.length === 40 && logger.received.length === 40, 10_000, 'all frames upstream and answered');

    // byte-identical, in order
    expect(plat.frames.map((f) => Buffer.from(f).toString('latin1'))).toEqual(frames.map((f) => Buffer.from(f).toString('latin1')));
    // every upload acknowledged with a 9014 carrying its QN
    expect(logger.received.map((a) => a.parsed.header.CN)).toEqual(Array(40).fill('9014'));
    expect(logger.received.map((a) => a.parsed.header.QN)).toEqual(frames.map(qnOf));

    // the agent took one reading per frame, whose raw digest is the SHA-256 of the exact frame bytes
    await waitFor(() => outbox.head().seq === 40, 10_000, '40 readings taken');
    const entries = await outbox.pendingFrom(1, 100);
    entries.forEach((e, i) => {
      const reading = decodeReading(e.reading);
      expect(reading.raw).toHaveLength(1);
      expect(equalBytes(reading.raw[0]!, sha256(frames[i]!))).toBe(true);
      expect(reading.sensor).toBe('hj212:010000A8900016F000169DC0');
      expect(reading.clock).toEqual({ synced: true, source: 'ntp' });
    });
    // lookup by frame: in the outbox and in the relay's recent frames
    const [match] = await findReadingsByFrame(outbox, { frame: frames[27]! });
    expect(match?.entry.seq).toBe(28);
    expect(r.lookupFrame(sha256(frames[27]!))).toMatchObject({ forwarded: true, acquired: true, cn: '2011', qn: qnOf(frames[27]!) });
    expect(await findReadingsByFrame(outbox, { digest: sha256(utf8('not a frame')) })).toEqual([]);

    const s = r.status();
    expect(s).toMatchObject({ framesIn: 40, framesUp: 40, framesDown: 40, readings: 40, truncated: 0, bufferedFrames: 0 });
    expect(s.noiseBytes).toBeGreaterThan(0);

    // the broker comes back: the readings taken meanwhile reach ingest
    await broker.restart();
    await waitFor(() => outbox.ackedUpTo() === 40, 20_000, 'readings taken during the outage acknowledged');
  });

  it('buffers frames while the platform is down and delivers them, then the answers, once it is back', async () => {
    const plat = await platform();
    await plat.close();
    const r = await relay(plat);
    const logger = await connectLogger(r.port!);
    cleanups.push(() => logger.close());
    const frames = Array.from({ length: 10 }, (_, i) => upload(i + 100));
    for (const f of frames) logger.write(f);
    await waitFor(() => r.status().bufferedFrames === 10, 10_000, 'ten buffered');
    expect(r.status().upstreamConnected).toBe(false);
    await plat.restart();
    await waitFor(() => logger.received.length === 10, 10_000, 'answers after the platform came back');
    expect(plat.frames.map((f) => Buffer.from(f).toString('latin1'))).toEqual(frames.map((f) => Buffer.from(f).toString('latin1')));
    expect(r.status()).toMatchObject({ bufferedFrames: 0, bufferedBytes: 0 });
  });

  it('reconnects upstream after the platform drops it, and never splices half a frame', async () => {
    const plat = await platform();
    const r = await relay(plat);
    const logger = await connectLogger(r.port!);
    cleanups.push(() => logger.close());
    logger.write(upload(1));
    await waitFor(() => plat.frames.length === 1, 10_000, 'first frame');
    await plat.close();
    const second = upload(2);
    logger.write(second.subarray(0, 30)); // half a frame while the platform is gone...
    await waitFor(() => !r.status().upstreamConnected, 10_000, 'upstream lost');
    await plat.restart();
    await waitFor(() => r.status().upstreamConnected, 10_000, 'upstream back');
    logger.write(second.subarray(30)); // ...and the rest after it came back
    await waitFor(() => plat.frames.length === 2, 10_000, 'second frame');
    expect(Buffer.from(plat.frames[1]!).equals(Buffer.from(second))).toBe(true);
    expect(r.status().upstreamConnects).toBe(2);
  });

  it('routes platform commands to the logger with the same MN', async () => {
    const plat = await platform();
    const r = await relay(plat);
    const a = await connectLogger(r.port!);
    const b = await connectLogger(r.port!);
    cleanups.push(() => a.close(), () => b.close());
    a.write(upload(1, 'AAAA0000000000000000000A'));
    b.write(upload(2, 'BBBB0000000000000000000B'));
    await waitFor(() => a.received.length === 1 && b.received.length === 1, 10_000, 'answers routed');
    expect(a.received[0]!.parsed.header.MN).toBe('AAAA0000000000000000000A');
    expect(b.received[0]!.parsed.header.MN).toBe('BBBB0000000000000000000B');
    // a platform request (CN=1011, read the logger's time) for B only
    plat.send(encodeFrame({ header: { QN: '20260101000000001', ST: '31', CN: '1011', PW: '123456', MN: 'BBBB0000000000000000000B', Flag: 5 }, cp: {} }));
    await waitFor(() => b.received.length === 2, 10_000, 'command to B');
    expect(b.received[1]!.parsed.header.CN).toBe('1011');
    expect(a.received).toHaveLength(1);
    // B's answer (9011) goes upstream but is not a reading
    b.write(encodeRequestAnswer({ qn: '20260101000000001', mn: 'BBBB0000000000000000000B', pw: '123456' }));
    await waitFor(() => plat.frames.length === 3, 10_000, 'answer upstream');
    expect(r.status()).toMatchObject({ readings: 2, framesUp: 3, broadcast: 0 });
  });

  it('pauses the loggers when its buffer is full and loses nothing', async () => {
    const plat = await platform();
    await plat.close();
    const r = await relay(plat, { maxBufferedBytes: 2000 });
    const logger = await connectLogger(r.port!);
    cleanups.push(() => logger.close());
    const frames = Array.from({ length: 60 }, (_, i) => upload(i + 1));
    for (const f of frames) logger.write(f);
    await waitFor(() => r.status().pauses >= 1, 10_000, 'paused');
    await plat.restart();
    await waitFor(() => plat.frames.length === 60, 15_000, 'all 60 upstream');
    expect(plat.frames.map((f) => Buffer.from(f).toString('latin1'))).toEqual(frames.map((f) => Buffer.from(f).toString('latin1')));
    await waitFor(() => logger.received.length === 60, 10_000, 'all answered');
  });

  it('forwards a frame with a bad CRC (the platform judges it) but does not take it as a reading', async () => {
    const plat = await platform();
    const r = await relay(plat);
    const logger = await connectLogger(r.port!);
    cleanups.push(() => logger.close());
    const bad = upload(5);
    bad[bad.length - 3] = bad[bad.length - 3] === 0x30 ? 0x31 : 0x30; // one CRC digit changed
    logger.write(bad);
    logger.write(upload(6));
    await waitFor(() => plat.frames.length === 2, 10_000, 'both forwarded');
    expect(Buffer.from(plat.frames[0]!).equals(Buffer.from(bad))).toBe(true);
    expect(r.status()).toMatchObject({ readings: 1, rejected: { HJ212_BAD_CRC: 1 } });
  });
});

describe('relay limits (issue #8: the LAN is untrusted)', () => {
  it('closes connections beyond maxConnections, counts them by code, and takes a new one once a slot is free', async () => {
    const p = await platform();
    const r = await relay(p, { maxConnections: 1 });
    const net = await import('node:net');
    const a = net.connect({ host: '127.0.0.1', port: r.port! });
    cleanups.push(async () => void a.destroy());
    await waitFor(() => r.status().loggers === 1, 5000, 'first logger');
    const b = net.connect({ host: '127.0.0.1', port: r.port! });
    b.on('error', () => undefined);
    await new Promise<void>((resolve) => b.once('close', () => resolve()));
    expect(r.status().refusedConnections).toBe(1);
    expect(r.status().limited).toEqual({ RELAY_TOO_MANY_CONNECTIONS: 1, RELAY_CONNECTION_RATE: 0, RELAY_RATE: 0 });
    expect(r.status().loggers).toBe(1);
    a.destroy();
    await waitFor(() => r.status().loggers === 0, 5000, 'first logger gone');
    const c = await connectLogger(r.port!);
    cleanups.push(() => c.close());
    c.write(upload(1));
    await waitFor(() => p.frames.length === 1, 10_000, 'frame of the third connection forwarded');
    expect(r.status().limited.RELAY_TOO_MANY_CONNECTIONS).toBe(1);
  });

  it('decodes a burst in slices (the event loop keeps turning) and throttles beyond maxBytesPerSecond', async () => {
    const p = await platform();
    const r = await relay(p, { maxBytesPerSecond: 256 * 1024, maxTotalBytesPerSecond: 4 << 20 });
    const net = await import('node:net');
    const a = net.connect({ host: '127.0.0.1', port: r.port! });
    cleanups.push(async () => void a.destroy());
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    cleanups.push(async () => clearInterval(timer));
    a.write(Buffer.alloc(600_000, 'A')); // 600 KB of junk in one burst
    await waitFor(() => r.status().noiseBytes >= 600_000 - 4096, 20_000, 'all decoded');
    expect(r.status().throttled).toBeGreaterThan(0);
    expect(r.status().limited.RELAY_CONNECTION_RATE).toBeGreaterThan(0);
    expect(r.status().limited.RELAY_RATE).toBe(0);
    expect(ticks).toBeGreaterThan(10);
  });

  it('holds all loggers together to maxTotalBytesPerSecond: paused, not dropped (every frame still forwarded intact)', async () => {
    const p = await platform();
    const r = await relay(p, { maxBytesPerSecond: 4 << 20, maxTotalBytesPerSecond: 64 * 1024 });
    await waitFor(() => r.status().upstreamConnected, 10_000, 'upstream');
    const loggers = [await connectLogger(r.port!), await connectLogger(r.port!)];
    for (const l of loggers) cleanups.push(() => l.close());
    const frames = [upload(1), upload(2)];
    loggers.forEach((l, i) => {
      l.write(Buffer.alloc(60_000, 'A')); // 120 KB together: about two seconds at 64 KiB/s
      l.write(frames[i]!);
    });
    await waitFor(() => p.frames.length === 2, 20_000, 'both frames forwarded');
    expect(p.frames.map((f) => Buffer.from(f).toString('latin1')).sort()).toEqual(frames.map((f) => Buffer.from(f).toString('latin1')).sort());
    const s = r.status();
    expect(s.limited.RELAY_RATE).toBeGreaterThan(0);
    expect(s.limited.RELAY_CONNECTION_RATE).toBe(0);
    expect(s.noiseBytes).toBe(120_000);
  });

  it('gets through `##9999` repeated without holding the event loop, counts each cut-off frame start, and resynchronises', async () => {
    const p = await platform();
    const r = await relay(p, { maxBytesPerSecond: 4 << 20, maxTotalBytesPerSecond: 4 << 20 });
    await waitFor(() => r.status().upstreamConnected, 10_000, 'upstream');
    const logger = await connectLogger(r.port!);
    cleanups.push(() => logger.close());
    // The event loop turns mid-run when a callback queued beside the decoder's slices sees the run partly counted
    // (an event, not a timer count: a fast or a loaded machine gives any number of 5 ms ticks).
    let sawMidRun = false;
    let observing = true;
    const observe = () => {
      const t = r.status().truncated;
      if (t > 0 && t < 50_000) sawMidRun = true;
      if (observing && !sawMidRun) setImmediate(observe);
    };
    setImmediate(observe);
    cleanups.push(async () => void (observing = false));
    const hostile = Buffer.alloc(6 * 50_000);
    for (let i = 0; i < hostile.length; i += 6) hostile.write('##9999', i, 'latin1');
    const good = upload(7);
    logger.write(hostile);
    logger.write(good);
    await waitFor(() => p.frames.length === 1, 30_000, 'the frame after the hostile run forwarded');
    expect(Buffer.from(p.frames[0]!).equals(Buffer.from(good))).toBe(true);
    const s = r.status();
    // every candidate is counted (the decoder folds runs of them into one rejection each), none forwarded
    expect(s).toMatchObject({ truncated: 50_000, truncatedBytes: hostile.length, framesIn: 1, framesUp: 1, rejected: {} });
    expect(sawMidRun).toBe(true);
  });
});
