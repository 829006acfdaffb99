import { once } from 'node:events';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { TcpProxy } from './faults.ts';

/** A TCP server on 127.0.0.1 that keeps what each connection sent and echoes it back. */
async function echoServer(): Promise<{ server: net.Server; port: number; got: () => string }> {
  let got = '';
  const server = net.createServer((s) => {
    s.on('data', (d) => {
      got += d.toString();
      s.write(d);
    });
    s.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as net.AddressInfo).port, got: () => got };
}

async function connect(port: number): Promise<{ socket: net.Socket; echoed: () => string; until: (text: string) => Promise<void> }> {
  const socket = net.connect({ host: '127.0.0.1', port });
  await once(socket, 'connect');
  let echoed = '';
  const waiters: (() => void)[] = [];
  socket.on('data', (d) => {
    echoed += d.toString();
    for (const w of waiters.splice(0)) w();
  });
  const until = async (text: string): Promise<void> => {
    while (!echoed.includes(text)) await new Promise<void>((r) => waiters.push(r));
  };
  return { socket, echoed: () => echoed, until };
}

/** The socket's close, whether or not an error came first (events.once would reject on the reset's error). */
const closeOf = (s: net.Socket) => new Promise<void>((r) => s.once('close', () => r()));

/** How long a held link is watched for leaks: any byte that crossed it in this time is a failure. */
const WATCH_MS = 400;
const watch = () => new Promise((r) => setTimeout(r, WATCH_MS));

describe('TcpProxy (the network partition of stele sim)', () => {
  const closers: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c();
  });

  async function setup() {
    const echo = await echoServer();
    closers.push(() => new Promise<void>((r) => echo.server.close(() => r())));
    const probe = net.createServer();
    probe.listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const proxy = new TcpProxy(port, { host: '127.0.0.1', port: echo.port });
    await proxy.start();
    closers.push(() => proxy.close());
    return { echo, proxy };
  }

  it('stall: holds every byte of a link made before it and of one made during it, and delivers them all, in order, once healed', async () => {
    const { echo, proxy } = await setup();
    const before = await connect(proxy.port);
    closers.push(() => void before.socket.destroy());
    before.socket.write('a1;');
    await before.until('a1;');

    proxy.partition('stall');
    before.socket.write('a2;');
    // a link made during the stall (a gateway reconnecting after its keepalive ran out) is held as well
    const during = await connect(proxy.port);
    closers.push(() => void during.socket.destroy());
    during.socket.write('b1;');
    await watch();
    expect(echo.got()).toBe('a1;');
    expect(before.echoed()).toBe('a1;');
    expect(during.echoed()).toBe('');

    proxy.heal();
    await before.until('a2;');
    await during.until('b1;');
    expect(before.echoed()).toBe('a1;a2;');
    expect(during.echoed()).toBe('b1;');
    expect(echo.got().length).toBe('a1;a2;b1;'.length);
    expect(proxy.reset).toBe(0);
  });

  it('stall: a link in the middle of a large write stays held, and after healing delivers the write whole', async () => {
    const { echo, proxy } = await setup();
    const link = await connect(proxy.port);
    closers.push(() => void link.socket.destroy());
    // more than the socket buffers take at once, so the proxy's pipe waits on a drain while the stall begins
    const big = 'x'.repeat(8 << 20);
    link.socket.write(big);
    proxy.partition('stall');
    link.socket.write('tail;');
    await watch();
    expect(echo.got().includes('tail;')).toBe(false);
    expect(echo.got().length).toBeLessThan(big.length);

    proxy.heal();
    await link.until('tail;');
    expect(link.echoed()).toBe(`${big}tail;`);
  });

  it('drop: resets the links it finds and refuses new ones until healed', async () => {
    const { proxy } = await setup();
    const link = await connect(proxy.port);
    link.socket.on('error', () => {});
    link.socket.write('a;');
    await link.until('a;');
    const closed = closeOf(link.socket);
    proxy.partition('drop');
    await closed;
    expect(proxy.reset).toBe(1);

    const refused = net.connect({ host: '127.0.0.1', port: proxy.port });
    refused.on('error', () => {});
    await closeOf(refused);
    expect(proxy.reset).toBe(2);

    proxy.heal();
    const back = await connect(proxy.port);
    closers.push(() => void back.socket.destroy());
    back.socket.write('c;');
    await back.until('c;');
  });
});
