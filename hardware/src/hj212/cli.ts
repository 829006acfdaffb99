/**
 * `stele hj212 decode`: HJ 212 frames from stdin or a serial port -> one JSON object per line.
 * Good frame: `{"ok":true,"offset":…,"sha256":…,<the fixtures' expected shape>,"anomalies":[…]}`;
 * rejected bytes: `{"ok":false,"error":{"code","offset","message"}}`. It keeps going after a bad frame.
 * Exit status: 0 every frame was good, 1 something was rejected (or the port failed), 2 usage error.
 */
import type { Duplex } from 'node:stream';
import { parseCommand, usageError } from '@stele/command';
import { toHex } from '@stele/core';
import { HJ212_CRC_VARIANTS, type Hj212CrcVariant } from './crc.ts';
import { type Hj212DecoderOptions, Hj212StreamDecoder } from './decoder.ts';
import type { Hj212DecodeResult } from './types.ts';

/** The part of a serial port `stele hj212 listen` uses (SerialPort, SerialPortMock, a socket). */
export type SerialDuplex = Duplex & { close?: (cb?: (err?: Error | null) => void) => void; isOpen?: boolean };

export interface Hj212CliIo {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/** Test seams: how a port is opened, and what stops a port session (default: SIGINT/SIGTERM). */
export interface Hj212CliDeps {
  openPort?: (path: string, baudRate: number) => Promise<SerialDuplex>;
  signal?: AbortSignal;
}

export const HJ212_DECODE_HELP = `usage: stele hj212 decode [--lenient] [--crc hj212|modbus-lsb-first] [--port PATH --baud N]

Reads HJ 212 (HJ 212-2017 / HJ/T 212-2005) frames from stdin, or from a serial port with --port, and prints
one JSON object per line:
  {"ok":true,"offset":N,"sha256":"…","framing":{…},"header_order":[…],"header":{…},"flag_decoded":{…},"cp":{…},"anomalies":[…]}
  {"ok":false,"error":{"code":"HJ212_BAD_CRC","offset":N,"message":"…"}}
and keeps going after a bad frame.

  --lenient        also accept frames that bend the standard (data segment over 1024 bytes, length counted in
                   characters, the other CRC variant, missing CR, loose fields); "anomalies" lists what was off
  --crc VARIANT    the CRC the logger sends: hj212 (HJ 212-2017 Appendix A, default) or modbus-lsb-first
                   (Modbus CRC16 written low byte first, used by some loggers)
  --port PATH      read a serial port instead of stdin (until Ctrl-C)
  --baud N         baud rate for --port (default 9600)
  -h, --help       this text

Exit status: 0 all frames good, 1 something rejected or the port failed, 2 usage error.
Error codes: HJ212_NOISE HJ212_BAD_LENGTH HJ212_BAD_CRC HJ212_BAD_FIELD HJ212_BAD_TRAILER HJ212_TRUNCATED HJ212_OVERSIZE
`;

const HJ212_DECODE_SPEC = {
  name: 'stele hj212 decode',
  usage: HJ212_DECODE_HELP,
  options: { lenient: { type: 'boolean' }, crc: { type: 'string' }, port: { type: 'string' }, baud: { type: 'string' } },
} as const;

/** The JSON object printed for one result. */
export function resultToJson(r: Hj212DecodeResult): Record<string, unknown> {
  if (r.ok) return { ok: true, offset: r.offset, sha256: toHex(r.sha256), ...r.parsed, anomalies: r.anomalies };
  return { ok: false, error: r.error.toJSON() };
}

export async function runHj212Decode(argv: string[], io: Hj212CliIo, deps: Hj212CliDeps = {}): Promise<number> {
  const parsed = parseCommand(argv, HJ212_DECODE_SPEC, io);
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  const crc = values.crc ?? 'hj212';
  if (!HJ212_CRC_VARIANTS.includes(crc as Hj212CrcVariant)) {
    return usageError(io, HJ212_DECODE_SPEC, `--crc must be one of ${HJ212_CRC_VARIANTS.join(', ')}`);
  }
  const baud = values.baud === undefined ? 9600 : Number(values.baud);
  if (!Number.isInteger(baud) || baud <= 0) {
    return usageError(io, HJ212_DECODE_SPEC, '--baud must be a positive integer');
  }
  if (values.baud !== undefined && values.port === undefined) {
    return usageError(io, HJ212_DECODE_SPEC, '--baud needs --port');
  }
  const options: Hj212DecoderOptions = { mode: values.lenient === true ? 'lenient' : 'strict', crc: crc as Hj212CrcVariant };
  const decoder = new Hj212StreamDecoder(options);
  let rejected = 0;
  const print = (results: Hj212DecodeResult[]): void => {
    for (const r of results) {
      if (!r.ok) rejected++;
      io.stdout.write(`${JSON.stringify(resultToJson(r))}\n`);
    }
  };

  if (values.port === undefined) {
    for await (const chunk of io.stdin) print(decoder.push(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk));
    print(decoder.end());
    return rejected === 0 ? 0 : 1;
  }

  const path = values.port;
  let port: SerialDuplex;
  try {
    port = await (deps.openPort ?? openSerialPort)(path, baud);
  } catch (e) {
    io.stderr.write(`stele hj212 decode: cannot open ${path}: ${(e as Error).message}\n`);
    return 1;
  }
  const failed = await new Promise<boolean>((resolve) => {
    const stopSignals = deps.signal === undefined;
    const ac = new AbortController();
    const signal = deps.signal ?? ac.signal;
    const onSig = () => ac.abort();
    if (stopSignals) {
      process.once('SIGINT', onSig);
      process.once('SIGTERM', onSig);
    }
    let finished = false;
    const done = (err: boolean) => {
      if (finished) return;
      finished = true;
      port.off('data', onData);
      port.off('close', onClose);
      signal.removeEventListener('abort', onAbort);
      if (stopSignals) {
        process.off('SIGINT', onSig);
        process.off('SIGTERM', onSig);
      }
      print(decoder.end());
      resolve(err);
    };
    const onData = (chunk: Uint8Array) => print(decoder.push(chunk));
    const onClose = () => done(false);
    const onAbort = () => {
      port.off('close', onClose);
      if (typeof port.close === 'function' && port.isOpen !== false) port.close(() => done(false));
      else done(false);
    };
    port.on('data', onData);
    port.on('close', onClose);
    port.on('error', (err: Error) => {
      io.stderr.write(`stele hj212 decode: ${path}: ${err.message}\n`);
      port.off('close', onClose);
      done(true);
    });
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  return failed || rejected > 0 ? 1 : 0;
}

async function openSerialPort(path: string, baudRate: number): Promise<SerialDuplex> {
  const { SerialPort } = await import('serialport');
  return await new Promise<SerialDuplex>((resolve, reject) => {
    const port = new SerialPort({ path, baudRate }, (err) => (err ? reject(err) : resolve(port)));
  });
}
