/**
 * The client-side packet limit: whatever the chunking of the byte stream, packets under
 * the limit reach mqtt.js byte for byte, an oversize PUBLISH arrives as the same PUBLISH with an empty payload, and
 * an oversize packet of another type closes the connection.
 */
import { EventEmitter, once } from 'node:events';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { concatBytes, mulberry32 } from '@stele/core';
import { limitedClientStream } from './packet-limit.ts';

/** A PUBLISH (QoS 1) with the given topic, packet id and payload; remaining length over 1..3 bytes as needed. */
function publish(topic: string, id: number, payload: Uint8Array): Uint8Array {
  const t = new TextEncoder().encode(topic);
  const body = new Uint8Array([t.length >> 8, t.length & 0xff, ...t, id >> 8, id & 0xff, ...payload]);
  const len: number[] = [];
  let n = body.length;
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    len.push(b);
  } while (n > 0);
  return new Uint8Array([0x32, ...len, ...body]);
}

const concat = (parts: Uint8Array[]) => concatBytes(...parts);

/**
 * Feeds `stream` to the limit as the socket's 'data' chunks cut at `cuts`, exactly (a socket stand-in: the chunk
 * boundaries are the point of the test, and TCP would merge them at will), and collects what mqtt.js would read.
 */
async function through(stream: Uint8Array, cuts: number[], maxBytes: number): Promise<{ got: Uint8Array; oversize: number[]; destroyed: boolean }> {
  const socket = Object.assign(new EventEmitter(), { destroyed: false, pause() {}, resume() {}, setNoDelay() {}, write: () => true, end() {}, destroy() {
    socket.destroyed = true;
  } });
  const oversize: number[] = [];
  const duplex = limitedClientStream(socket as unknown as Socket, maxBytes, (n) => oversize.push(n));
  const parts: Uint8Array[] = [];
  duplex.on('data', (c: Buffer) => parts.push(new Uint8Array(c)));
  let at = 0;
  for (const cut of [...cuts, stream.length]) {
    if (cut <= at) continue;
    socket.emit('data', Buffer.from(stream.subarray(at, cut)));
    at = cut;
  }
  const done = new Promise((resolve) => {
    duplex.on('end', resolve);
    duplex.on('close', resolve);
  });
  if (!socket.destroyed) socket.emit('end');
  else socket.emit('close');
  await done;
  return { got: concat(parts), oversize, destroyed: socket.destroyed };
}

describe('limitedClientStream', () => {
  it('passes packets under the limit byte for byte, however the stream is cut', async () => {
    const packets = [publish('stele/v1/gw-1/statements', 1, new Uint8Array(10).fill(1)), publish('stele/v1/gw-2/statements', 2, new Uint8Array(300).fill(2)), new Uint8Array([0x40, 0x02, 0x00, 0x07]), publish('t', 3, new Uint8Array(20_000).fill(3))];
    const stream = concat([...packets, ...packets]);
    const rand = mulberry32(7); // the same chunking on every run
    for (const cuts of [[], [1], [2, 3], Array.from({ length: 400 }, (_, i) => i), Array.from({ length: 40 }, () => Math.floor(rand() * stream.length)).sort((a, b) => a - b)]) {
      const { got, oversize } = await through(stream, cuts, 64 * 1024);
      expect(oversize).toEqual([]);
      expect(Buffer.from(got).equals(Buffer.from(stream))).toBe(true);
    }
  });

  it('cuts an oversize PUBLISH to its topic and packet id, and keeps the packets around it whole', async () => {
    const small = publish('stele/v1/gw-1/statements', 1, new Uint8Array(50).fill(1));
    const big = publish('stele/v1/gw-1/statements', 9, new Uint8Array(5000).fill(9));
    const stream = concat([small, big, small]);
    const { got, oversize } = await through(stream, [small.length + 3, small.length + 40, small.length + 2000], 1024);
    expect(oversize).toEqual([big.length]);
    expect(Buffer.from(got).equals(Buffer.from(concat([small, publish('stele/v1/gw-1/statements', 9, new Uint8Array(0)), small])))).toBe(true);
  });

  it('closes the connection at the fixed header of an oversize packet of another type', async () => {
    const small = publish('t', 1, new Uint8Array(10));
    const bigSubscribe = new Uint8Array([0x82, 0x80, 0x10, ...new Uint8Array(2048)]);
    expect((await through(concat([small, bigSubscribe]), [], 1024)).destroyed).toBe(true);
    expect((await through(concat([small, small]), [], 1024)).destroyed).toBe(false);
  });
});

/** A real TCP connection on loopback: the client socket wrapped by the limit, and every byte the server side reads. */
async function connected(): Promise<{ socket: Socket; duplex: ReturnType<typeof limitedClientStream>; writes: () => number; received: () => Promise<Buffer>; close: () => void }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
  await once(socket, 'connect');
  const [peer] = await accepted;
  const chunks: Buffer[] = [];
  peer.on('data', (c: Buffer) => chunks.push(c));
  const ended = once(peer, 'end').then(() => Buffer.concat(chunks));
  // counts the writes the limit hands to the real socket (the syscalls the broker's side sees, at most)
  let writes = 0;
  const write = socket.write.bind(socket) as (...a: unknown[]) => boolean;
  (socket as unknown as { write: (...a: unknown[]) => boolean }).write = (...a) => {
    writes++;
    return write(...a);
  };
  const duplex = limitedClientStream(socket, 1024, () => {});
  return {
    socket,
    duplex,
    writes: () => writes,
    received: () => ended,
    close: () => {
      peer.destroy();
      server.close();
    },
  };
}

describe('limitedClientStream writes', () => {
  it('sends the packets written on separate ticks of one turn as one socket write, in order, and all before the end', async () => {
    const c = await connected();
    try {
      // as mqtt.js: one PUBACK per received PUBLISH, each on a tick of its own
      const acks = Array.from({ length: 200 }, (_, i) => Buffer.from([0x40, 0x02, i >> 8, i & 0xff]));
      await new Promise<void>((resolve) => {
        let i = 0;
        const next = () => {
          c.duplex.write(acks[i++]!);
          if (i < acks.length) process.nextTick(next);
          else resolve();
        };
        next();
      });
      c.duplex.end();
      expect(await c.received()).toEqual(Buffer.concat(acks));
      expect(c.writes()).toBe(1);
    } finally {
      c.close();
    }
  });

  it('keeps every byte of writes beyond what it gathers at once (64 KiB), and makes the writer wait for the socket', async () => {
    const c = await connected();
    try {
      const rnd = mulberry32(7);
      const parts = Array.from({ length: 64 }, () => Buffer.from(Array.from({ length: 4096 }, () => Math.floor(rnd() * 256))));
      let called = 0;
      for (const p of parts) c.duplex.write(p, () => called++);
      // a few ticks, before the turn's gathered bytes go to the socket: writes past 64 KiB are not taken yet
      for (let i = 0; i < 5; i++) await new Promise((r) => process.nextTick(r));
      expect(called).toBeLessThan(parts.length);
      c.duplex.end();
      expect(await c.received()).toEqual(Buffer.concat(parts));
      expect(called).toBe(parts.length);
    } finally {
      c.close();
    }
  });
});
