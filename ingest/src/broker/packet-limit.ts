/**
 * MQTT packet size limits applied to a byte stream before any MQTT parser sees it (issue #8: ingest copied a
 * 250 MB message, 857 MB RSS, before its 64 KiB check). The scanner reads only fixed headers (MQTT 3.1.1 §2.2,
 * MQTT 5 §2.1.1: one type byte and a 1..4 byte variable-length "remaining length"), so no packet body is ever
 * buffered here.
 *
 * - {@link limitServerSocket}: for a broker (the embedded aedes): a client that sends a larger packet is
 *   disconnected at its fixed header, before its body is read.
 * - {@link limitedClientStream}: for ingest's MQTT client (3.1.1): a larger PUBLISH from the broker is cut down
 *   to its topic and packet id with an empty payload, which mqtt.js parses and acknowledges as usual (so QoS 1
 *   flow goes on) and ingest rejects as oversize; its body bytes are dropped as they stream past.
 */
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';

/** Default limit: a statement message is at most 64 KiB (FORMAT.md §11) plus topic and headers. */
export const DEFAULT_MAX_PACKET_BYTES = 64 * 1024 + 1024;

/** Splits a byte stream into packet pieces; calls back on every fixed header whose packet is over `maxBytes`. */
class HeaderScanner {
  #header: number[] = [];
  /** Bytes of the current packet body still to pass (or to drop). */
  #left = 0;
  #dropping = false;
  /** Where the fixed header being read began in the current chunk; -1 when it began in an earlier one. */
  #headerStart = -1;
  /** Collecting the topic and packet id of an oversize PUBLISH (client side). */
  #collect: { need: number; got: number[]; flags: number; qos: number } | undefined;

  constructor(
    private readonly maxBytes: number,
    private readonly onOversize: (info: { type: number; sizeBytes: number }) => 'rewrite' | 'close',
  ) {}

  /** Returns the bytes to forward for this chunk, or 'close'. */
  feed(chunk: Uint8Array): Uint8Array[] | 'close' {
    const out: Uint8Array[] = [];
    let i = 0;
    if (this.#header.length > 0) this.#headerStart = -1; // a header cut by the end of the last chunk
    while (i < chunk.length) {
      if (this.#collect !== undefined) {
        const c = this.#collect;
        while (i < chunk.length && c.got.length < c.need && this.#left > 0) {
          c.got.push(chunk[i]!);
          i++;
          this.#left--;
          if (c.got.length === 2) c.need = 2 + ((c.got[0]! << 8) | c.got[1]!) + (c.qos > 0 ? 2 : 0);
        }
        if (c.got.length < c.need && this.#left > 0) break;
        if (c.got.length < c.need) return 'close'; // a topic longer than the packet: malformed
        // a PUBLISH of the same topic and id, with an empty payload
        const body = Uint8Array.from(c.got);
        out.push(Uint8Array.from([0x30 | c.flags, ...encodeLength(body.length)]), body);
        this.#collect = undefined;
        this.#dropping = true;
        continue;
      }
      if (this.#left > 0) {
        const n = Math.min(this.#left, chunk.length - i);
        if (!this.#dropping) {
          // joined to the piece before when it ends right here in the same chunk: whole packets pass as one piece
          const last = out[out.length - 1];
          if (last !== undefined && last.buffer === chunk.buffer && last.byteOffset + last.byteLength === chunk.byteOffset + i) {
            out[out.length - 1] = chunk.subarray(last.byteOffset - chunk.byteOffset, i + n);
          } else out.push(chunk.subarray(i, i + n));
        }
        this.#left -= n;
        i += n;
        continue;
      }
      this.#dropping = false;
      // fixed header: type byte, then remaining length (7 bits per byte, continuation bit 0x80, at most 4 bytes)
      if (this.#header.length === 0) this.#headerStart = i;
      this.#header.push(chunk[i]!);
      i++;
      const h = this.#header;
      if (h.length === 1) continue;
      const last = h[h.length - 1]!;
      if ((last & 0x80) !== 0) {
        if (h.length === 5) return 'close'; // a fifth length byte: malformed (MQTT §2.2.3)
        continue;
      }
      let remaining = 0;
      for (let k = h.length - 1; k >= 1; k--) remaining = remaining * 128 + (h[k]! & 0x7f);
      // the header as bytes of this chunk when it began in it (so that whole packets pass as one piece), else a copy
      const headerBytes = this.#headerStart >= 0 ? chunk.subarray(this.#headerStart, i) : Uint8Array.from(h);
      this.#header = [];
      this.#headerStart = -1;
      const type = headerBytes[0]! >> 4;
      if (headerBytes.length + remaining <= this.maxBytes) {
        const last = out[out.length - 1];
        if (last !== undefined && last.buffer === chunk.buffer && headerBytes.buffer === chunk.buffer && last.byteOffset + last.byteLength === headerBytes.byteOffset) {
          out[out.length - 1] = chunk.subarray(last.byteOffset - chunk.byteOffset, i);
        } else out.push(headerBytes);
        this.#left = remaining;
        continue;
      }
      const action = this.onOversize({ type, sizeBytes: headerBytes.length + remaining });
      if (action === 'close' || (action === 'rewrite' && type !== 3)) return 'close';
      this.#left = remaining;
      const flags = headerBytes[0]! & 0x0f;
      this.#collect = { need: 2, got: [], flags, qos: (flags >> 1) & 3 };
    }
    return out;
  }
}

function encodeLength(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

/**
 * Broker side: disconnects a client at the fixed header of a packet larger than `maxBytes`. Call before handing
 * the socket to the broker (`net.createServer((s) => { limitServerSocket(s, max); broker.handle(s) })`).
 * The broker still reads from the socket itself; this listener only watches the same bytes.
 */
export function limitServerSocket(socket: Socket, maxBytes = DEFAULT_MAX_PACKET_BYTES, onOversize?: (sizeBytes: number) => void): void {
  const scanner = new HeaderScanner(maxBytes, ({ sizeBytes }) => {
    onOversize?.(sizeBytes);
    return 'close';
  });
  socket.on('data', (chunk: Buffer) => {
    if (socket.destroyed) return;
    if (scanner.feed(chunk) === 'close') socket.destroy();
  });
}

/** Bytes written to the client stream and not yet handed to the socket beyond which a write waits for the socket. */
const COALESCE_BYTES = 64 * 1024;

/**
 * The packets mqtt.js writes in one turn of the event loop go to the socket as one write. mqtt.js handles each
 * received packet on a tick of its own and answers a QoS 1 PUBLISH with its PUBACK right away, so written through,
 * every 4-byte PUBACK was a syscall of its own (measured: 7,758 4-byte writes to the broker's socket in 2 s at about
 * 6,000 statements/s). Writes are gathered until `setImmediate` (after the ticks and I/O callbacks of this turn)
 * and then written together. A write is accepted at once while what is gathered and what the socket still buffers
 * stay under 64 KiB; beyond that its callback waits for the socket's write, so a slow broker still slows mqtt.js.
 */
class CoalescedWrites {
  #chunks: Buffer[] = [];
  #bytes = 0;
  #waiting: ((e?: Error | null) => void)[] = [];
  #scheduled: NodeJS.Immediate | undefined;

  constructor(private readonly socket: Socket) {}

  add(chunk: Buffer, cb: (e?: Error | null) => void): void {
    this.#chunks.push(chunk);
    this.#bytes += chunk.length;
    if (this.#bytes + this.socket.writableLength >= COALESCE_BYTES) this.#waiting.push(cb);
    else cb();
    this.#scheduled ??= setImmediate(() => this.flush());
  }

  /** Writes what is gathered now. */
  flush(): void {
    if (this.#scheduled !== undefined) clearImmediate(this.#scheduled);
    this.#scheduled = undefined;
    if (this.#chunks.length === 0) return;
    if (this.socket.destroyed) {
      this.drop();
      return;
    }
    const data = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks);
    const waiting = this.#waiting;
    this.#chunks = [];
    this.#bytes = 0;
    this.#waiting = [];
    this.socket.write(data, (e) => {
      for (const cb of waiting) cb(e);
    });
  }

  /** The stream or the socket is destroyed: what is gathered is not written, and the writes waiting are told. */
  drop(): void {
    if (this.#scheduled !== undefined) clearImmediate(this.#scheduled);
    this.#scheduled = undefined;
    const waiting = this.#waiting;
    this.#chunks = [];
    this.#bytes = 0;
    this.#waiting = [];
    if (waiting.length > 0) process.nextTick(() => {
      for (const cb of waiting) cb(new Error('the connection to the broker is closed'));
    });
  }
}

/**
 * Client side: wraps a connected socket as the duplex mqtt.js reads (its `streamBuilder`). Incoming PUBLISH
 * packets over `maxBytes` reach mqtt.js as the same PUBLISH with an empty payload (`onOversize` is told the topic
 * is coming and the size); any other oversize packet closes the connection.
 */
export function limitedClientStream(socket: Socket, maxBytes: number, onOversize: (sizeBytes: number) => void): Duplex {
  const scanner = new HeaderScanner(maxBytes, ({ sizeBytes }) => {
    onOversize(sizeBytes);
    return 'rewrite';
  });
  const out = new CoalescedWrites(socket);
  const duplex = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      out.add(chunk, cb);
    },
    writev(chunks: { chunk: Buffer }[], cb) {
      out.add(chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((c) => c.chunk)), cb);
    },
    final(cb) {
      out.flush();
      socket.end();
      cb();
    },
    destroy(err, cb) {
      out.drop();
      socket.destroy(err ?? undefined);
      cb(err);
    },
  });
  socket.on('data', (chunk: Buffer) => {
    const parts = scanner.feed(chunk);
    if (parts === 'close') {
      socket.destroy();
      return;
    }
    let more = true;
    for (const p of parts) more = duplex.push(Buffer.from(p.buffer, p.byteOffset, p.byteLength)) && more;
    if (!more) socket.pause();
  });
  socket.on('end', () => duplex.push(null));
  socket.on('error', (e) => duplex.destroy(e));
  socket.on('close', () => duplex.destroy());
  socket.on('connect', () => duplex.emit('connect'));
  socket.on('secureConnect', () => duplex.emit('secureConnect'));
  (duplex as Duplex & { setNoDelay: (on?: boolean) => void }).setNoDelay = (on?: boolean) => void socket.setNoDelay(on);
  return duplex;
}

