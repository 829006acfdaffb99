/**
 * Test helpers for the relay (not exported from index): a simulated authority platform (an HJ 212 TCP server
 * that answers 9014 to uploads with A=1, as HJ 212-2017 §6.1 asks) and a simulated data logger.
 */
import net from 'node:net';
import { encodeDataAnswer, encodeFrame, Hj212StreamDecoder, type Hj212Frame } from '@stele/hardware';

export interface Platform {
  port: number;
  /** Exact bytes of every frame received, in order. */
  frames: Uint8Array[];
  /** Writes bytes to every connected gateway (a platform command). */
  send(bytes: Uint8Array): void;
  connections(): number;
  /** Stops listening and drops the connections (the platform goes down). */
  close(): Promise<void>;
  /** Listens again on the same port. */
  restart(): Promise<void>;
}

export async function startPlatform(options: { answer?: boolean } = {}): Promise<Platform> {
  const frames: Uint8Array[] = [];
  const sockets = new Set<net.Socket>();
  let server: net.Server;
  let port = 0;
  const listen = async () => {
    server = net.createServer({ noDelay: true }, (socket) => {
      sockets.add(socket);
      const decoder = new Hj212StreamDecoder({ mode: 'lenient' });
      socket.on('data', (chunk: Buffer) => {
        for (const r of decoder.push(chunk)) {
          if (r.raw !== undefined) frames.push(r.raw);
          if (!r.ok || options.answer === false) continue;
          const h = r.parsed.header;
          if (r.parsed.flag_decoded?.A_ack_required === 1 && h.QN !== undefined && h.MN !== undefined && h.PW !== undefined && !h.CN?.startsWith('9')) {
            socket.write(encodeDataAnswer({ qn: h.QN, mn: h.MN, pw: h.PW }));
          }
        }
      });
      socket.on('error', () => undefined);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    port = (server.address() as net.AddressInfo).port;
  };
  await listen();
  let up = true;
  return {
    get port() {
      return port;
    },
    frames,
    send: (bytes) => {
      for (const s of sockets) s.write(bytes);
    },
    connections: () => sockets.size,
    async close() {
      if (!up) return;
      up = false;
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
    async restart() {
      await listen();
      up = true;
    },
  };
}

export interface Logger {
  /** Frames (answers, commands) received from the gateway. */
  received: Hj212Frame[];
  write(bytes: Uint8Array): void;
  close(): Promise<void>;
}

/** A data logger: connects to the relay, records what comes back. */
export async function connectLogger(port: number): Promise<Logger> {
  const socket = net.connect({ port, host: '127.0.0.1', noDelay: true });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const received: Hj212Frame[] = [];
  const decoder = new Hj212StreamDecoder({ mode: 'lenient' });
  socket.on('data', (chunk: Buffer) => {
    for (const r of decoder.push(chunk)) if (r.ok) received.push(r);
  });
  socket.on('error', () => undefined);
  return {
    received,
    write: (bytes) => socket.write(bytes),
    close: () => new Promise<void>((r) => socket.end(() => r())),
  };
}

/** An upload (CN=2011) with A=1, numbered `i`. */
export function upload(i: number, mn = '010000A8900016F000169DC0'): Uint8Array {
  return encodeFrame({
    header: { QN: `20260101${String(i).padStart(9, '0')}`, ST: '31', CN: '2011', PW: '123456', MN: mn, Flag: 5 },
    cp: { params: { DataTime: '20260101120000' }, items: { a21026: { Rtd: `${(i % 50) + 0.5}`, Flag: 'N' }, a19001: { Rtd: '6.8', Flag: 'N' } } },
  });
}
