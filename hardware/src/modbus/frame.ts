/**
 * Modbus RTU frames (Modbus over Serial Line v1.02 §2.5.1; Modbus Application Protocol v1.1b3 §6.3, §6.4, §7):
 * `address(1) | function(1) | data(N) | CRC(2, low byte first)`. Pure: no I/O, no clock.
 *
 * Only what a master of T/RH loggers needs: read holding registers (0x03) and read input registers (0x04), their
 * responses and exception responses, plus the request side (decodeRequest, encodeReadResponse, encodeException)
 * that a simulated slave uses. Registers are big-endian 16-bit words.
 */
import { crc16Modbus } from '../hj212/crc.ts';
import { ModbusError } from './errors.ts';

/** Function codes this codec reads and answers. */
export type ModbusReadFunction = 0x03 | 0x04;
export const FC_READ_HOLDING_REGISTERS = 0x03;
export const FC_READ_INPUT_REGISTERS = 0x04;
/** The exception bit of a response's function code (MAP v1.1b3 §7). */
export const EXCEPTION_BIT = 0x80;
/** MAP v1.1b3 §6.3/§6.4: 1..125 registers per read. */
export const MAX_READ_REGISTERS = 125;
/** Serial Line v1.02 §2.5.1: the largest RTU frame. */
export const MAX_RTU_FRAME_BYTES = 256;

export interface ReadRequest {
  /** Slave address 1..247 (0 is broadcast, which reads never use). */
  slave: number;
  functionCode: ModbusReadFunction;
  /** First register, 0..65535 (protocol address, as on the wire). */
  address: number;
  /** Number of registers, 1..125. */
  quantity: number;
}

export interface ReadResponse {
  slave: number;
  functionCode: ModbusReadFunction;
  /** Register values as unsigned 16-bit words, in wire order. */
  registers: number[];
  /** The exact frame bytes, CRC included. */
  raw: Uint8Array;
}

/** CRC-16/MODBUS (init 0xFFFF, reflected 0x8005, no final XOR); check("123456789") = 0x4B37. */
export function crcModbus(bytes: Uint8Array, start = 0, end = bytes.length): number {
  return crc16Modbus(bytes, start, end);
}

/** `body` followed by its CRC, low byte first (Serial Line v1.02 §2.5.1.2). */
export function appendCrc(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(body.length + 2);
  out.set(body);
  const crc = crc16Modbus(body);
  out[body.length] = crc & 0xff;
  out[body.length + 1] = crc >>> 8;
  return out;
}

/** True when the last 2 bytes of `frame` are the CRC of the bytes before them. */
export function checkCrc(frame: Uint8Array): boolean {
  if (frame.length < 3) return false;
  const crc = crc16Modbus(frame, 0, frame.length - 2);
  return frame[frame.length - 2] === (crc & 0xff) && frame[frame.length - 1] === crc >>> 8;
}

function assertRequest(r: ReadRequest): void {
  if (r === null || typeof r !== 'object') throw new TypeError('request must be an object');
  if (!Number.isInteger(r.slave) || r.slave < 1 || r.slave > 247) throw new RangeError('request.slave must be an integer 1..247');
  if (r.functionCode !== 0x03 && r.functionCode !== 0x04) throw new RangeError('request.functionCode must be 0x03 or 0x04');
  if (!Number.isInteger(r.address) || r.address < 0 || r.address > 0xffff) throw new RangeError('request.address must be an integer 0..65535');
  if (!Number.isInteger(r.quantity) || r.quantity < 1 || r.quantity > MAX_READ_REGISTERS) {
    throw new RangeError(`request.quantity must be an integer 1..${MAX_READ_REGISTERS}`);
  }
  if (r.address + r.quantity > 0x10000) throw new RangeError('request.address + request.quantity must not pass 65536');
}

/** `slave fc addrHi addrLo qtyHi qtyLo crcLo crcHi`, e.g. slave 1, FC 4, 0x0001, 2 -> `01 04 00 01 00 02 20 0B`. */
export function encodeReadRequest(request: ReadRequest): Uint8Array {
  assertRequest(request);
  const { slave, functionCode, address, quantity } = request;
  return appendCrc(Uint8Array.of(slave, functionCode, address >>> 8, address & 0xff, quantity >>> 8, quantity & 0xff));
}

/** Bytes of the normal response to `request`: address, function, byte count, 2 per register, CRC. */
export function responseLength(request: Pick<ReadRequest, 'quantity'>): number {
  return 5 + 2 * request.quantity;
}

/** Length of the exception response: address, function | 0x80, exception code, CRC. */
export const EXCEPTION_RESPONSE_LENGTH = 5;

/**
 * Decodes a read response frame. With `request`, also checks it answers that request (slave, function, count).
 * Throws ModbusError: MODBUS_BAD_LENGTH, MODBUS_BAD_CRC, MODBUS_EXCEPTION (with exceptionCode and meaning),
 * MODBUS_UNEXPECTED, MODBUS_UNSUPPORTED.
 */
export function decodeReadResponse(frame: Uint8Array, request?: ReadRequest): ReadResponse {
  if (!(frame instanceof Uint8Array)) throw new TypeError('frame must be a Uint8Array');
  if (request !== undefined) assertRequest(request);
  const raw = frame.slice();
  if (frame.length < EXCEPTION_RESPONSE_LENGTH) {
    throw new ModbusError('MODBUS_BAD_LENGTH', `a response has at least 5 bytes, got ${frame.length}`, { raw });
  }
  if (!checkCrc(frame)) throw new ModbusError('MODBUS_BAD_CRC', 'CRC-16/MODBUS does not match', { raw });
  const slave = frame[0]!;
  const fc = frame[1]!;
  if (request !== undefined && slave !== request.slave) {
    throw new ModbusError('MODBUS_UNEXPECTED', `response from slave ${slave}, asked slave ${request.slave}`, { raw, slave });
  }
  if ((fc & EXCEPTION_BIT) !== 0) {
    const base = fc & 0x7f;
    if (request !== undefined && base !== request.functionCode) {
      throw new ModbusError('MODBUS_UNEXPECTED', `exception for function ${base}, asked ${request.functionCode}`, { raw, slave });
    }
    if (frame.length !== EXCEPTION_RESPONSE_LENGTH) {
      throw new ModbusError('MODBUS_BAD_LENGTH', `an exception response has 5 bytes, got ${frame.length}`, { raw, slave });
    }
    const exceptionCode = frame[2]!;
    throw new ModbusError('MODBUS_EXCEPTION', `slave ${slave} answered function ${base} with exception ${exceptionCode}`, {
      raw,
      slave,
      functionCode: base,
      exceptionCode,
    });
  }
  if (fc !== 0x03 && fc !== 0x04) throw new ModbusError('MODBUS_UNSUPPORTED', `function code ${fc} is not decoded`, { raw, slave });
  if (request !== undefined && fc !== request.functionCode) {
    throw new ModbusError('MODBUS_UNEXPECTED', `response to function ${fc}, asked ${request.functionCode}`, { raw, slave });
  }
  const count = frame[2]!;
  if (count % 2 !== 0 || frame.length !== 5 + count) {
    throw new ModbusError('MODBUS_BAD_LENGTH', `byte count ${count} disagrees with a frame of ${frame.length} bytes`, { raw, slave });
  }
  if (request !== undefined && count !== 2 * request.quantity) {
    throw new ModbusError('MODBUS_BAD_LENGTH', `${count / 2} registers returned, asked ${request.quantity}`, { raw, slave });
  }
  const registers: number[] = [];
  for (let i = 0; i < count; i += 2) registers.push((frame[3 + i]! << 8) | frame[4 + i]!);
  return { slave, functionCode: fc, registers, raw };
}

/** A request as a slave sees it (FC 03/04 read, 06 write single, 16 write multiple). */
export interface DecodedRequest {
  slave: number;
  functionCode: number;
  address: number;
  /** Registers to read (03/04) or written (06: 1, 16: the count). */
  quantity: number;
  /** Values written (06, 16). */
  values?: number[];
  raw: Uint8Array;
}

/**
 * Length of the request that starts `bytes`, when its first bytes say (`undefined` while too few bytes are known,
 * -1 for a function code whose length this codec does not know).
 */
export function requestLength(bytes: Uint8Array): number | undefined {
  if (bytes.length < 2) return undefined;
  const fc = bytes[1]!;
  if (fc === 0x03 || fc === 0x04 || fc === 0x06) return 8;
  if (fc === 0x10) return bytes.length < 7 ? undefined : 9 + bytes[6]!;
  return -1;
}

/** Decodes a request frame (slave side). Throws ModbusError MODBUS_BAD_LENGTH, MODBUS_BAD_CRC, MODBUS_UNSUPPORTED. */
export function decodeRequest(frame: Uint8Array): DecodedRequest {
  const raw = frame.slice();
  const want = requestLength(frame);
  if (want === -1) throw new ModbusError('MODBUS_UNSUPPORTED', `function code ${frame[1]} is not decoded`, { raw });
  if (want === undefined || frame.length !== want) {
    throw new ModbusError('MODBUS_BAD_LENGTH', `request of ${frame.length} bytes, expected ${want ?? 'more'}`, { raw });
  }
  if (!checkCrc(frame)) throw new ModbusError('MODBUS_BAD_CRC', 'CRC-16/MODBUS does not match', { raw });
  const slave = frame[0]!;
  const functionCode = frame[1]!;
  const address = (frame[2]! << 8) | frame[3]!;
  const word = (frame[4]! << 8) | frame[5]!;
  if (functionCode === 0x06) return { slave, functionCode, address, quantity: 1, values: [word], raw };
  if (functionCode === 0x10) {
    const values: number[] = [];
    for (let i = 0; i < word; i++) values.push((frame[7 + 2 * i]! << 8) | frame[8 + 2 * i]!);
    return { slave, functionCode, address, quantity: word, values, raw };
  }
  return { slave, functionCode, address, quantity: word, raw };
}

/** The normal response to a read: `slave fc byteCount words… crc`. */
export function encodeReadResponse(slave: number, functionCode: ModbusReadFunction, registers: readonly number[]): Uint8Array {
  if (!Number.isInteger(slave) || slave < 1 || slave > 247) throw new RangeError('slave must be an integer 1..247');
  if (registers.length < 1 || registers.length > MAX_READ_REGISTERS) throw new RangeError('registers must hold 1..125 words');
  const body = new Uint8Array(3 + 2 * registers.length);
  body[0] = slave;
  body[1] = functionCode;
  body[2] = 2 * registers.length;
  registers.forEach((w, i) => {
    if (!Number.isInteger(w) || w < 0 || w > 0xffff) throw new RangeError('registers must be integers 0..65535');
    body[3 + 2 * i] = w >>> 8;
    body[4 + 2 * i] = w & 0xff;
  });
  return appendCrc(body);
}

/** An exception response: `slave fc|0x80 code crc`. */
export function encodeException(slave: number, functionCode: number, exceptionCode: number): Uint8Array {
  return appendCrc(Uint8Array.of(slave, (functionCode | EXCEPTION_BIT) & 0xff, exceptionCode & 0xff));
}

/** Bits on the line per character: start + data + parity + stop (Serial Line v1.02 §2.5.1: 11 bits in RTU). */
export function bitsPerCharacter(settings: { dataBits?: number; parity?: string; stopBits?: number } = {}): number {
  const data = settings.dataBits ?? 8;
  const parity = settings.parity === undefined || settings.parity === 'none' ? 0 : 1;
  const stop = settings.stopBits ?? 1;
  return 1 + data + parity + stop;
}

/**
 * t3.5, the silence that delimits RTU frames, in ms (Serial Line v1.02 §2.5.1.1): 3.5 character times, but a
 * fixed 1.75 ms above 19200 baud. 9600 8N1 (10 bits): 3.65 ms; 9600 8E1 (11 bits): 4.01 ms.
 */
export function silentIntervalMs(baudRate: number, bitsPerChar = 11): number {
  if (!(Number.isFinite(baudRate) && baudRate > 0)) throw new RangeError('baudRate must be a positive number');
  if (baudRate > 19200) return 1.75;
  return (3.5 * bitsPerChar * 1000) / baudRate;
}

/** t1.5, the longest gap allowed inside a frame, in ms: 1.5 character times, fixed 0.75 ms above 19200 baud. */
export function interCharTimeoutMs(baudRate: number, bitsPerChar = 11): number {
  if (!(Number.isFinite(baudRate) && baudRate > 0)) throw new RangeError('baudRate must be a positive number');
  if (baudRate > 19200) return 0.75;
  return (1.5 * bitsPerChar * 1000) / baudRate;
}

/** Time to send `bytes` characters at `baudRate`, in ms. */
export function transmitTimeMs(bytes: number, baudRate: number, bitsPerChar = 11): number {
  return (bytes * bitsPerChar * 1000) / baudRate;
}
