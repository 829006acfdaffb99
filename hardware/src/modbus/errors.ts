import { SteleError } from '@stele/core';

/** Codes for Modbus RTU input that fails a check, and for exchanges that fail on the bus. */
export type ModbusErrorCode =
  /** The 2 CRC bytes are not the CRC-16/MODBUS of the frame (Modbus over Serial Line v1.02 §2.5.1.2). */
  | 'MODBUS_BAD_CRC'
  /** Too short for a frame, or a byte count that disagrees with the frame length or the request. */
  | 'MODBUS_BAD_LENGTH'
  /** A well-formed frame that does not answer the request: another slave, another function code. */
  | 'MODBUS_UNEXPECTED'
  /** The slave answered with an exception (function | 0x80, exception code): see `exceptionCode`. */
  | 'MODBUS_EXCEPTION'
  /** A function code this codec does not decode. */
  | 'MODBUS_UNSUPPORTED'
  /** Nothing came back within the request timeout. */
  | 'MODBUS_TIMEOUT'
  /** Part of a response came back, then nothing until the timeout. */
  | 'MODBUS_TRUNCATED';

/** Exception codes, Modbus Application Protocol v1.1b3 §7. */
export const MODBUS_EXCEPTIONS: Readonly<Record<number, string>> = {
  0x01: 'ILLEGAL FUNCTION',
  0x02: 'ILLEGAL DATA ADDRESS',
  0x03: 'ILLEGAL DATA VALUE',
  0x04: 'SERVER DEVICE FAILURE',
  0x05: 'ACKNOWLEDGE',
  0x06: 'SERVER DEVICE BUSY',
  0x08: 'MEMORY PARITY ERROR',
  0x0a: 'GATEWAY PATH UNAVAILABLE',
  0x0b: 'GATEWAY TARGET DEVICE FAILED TO RESPOND',
};

export class ModbusError extends SteleError<ModbusErrorCode> {
  /** Exception code for MODBUS_EXCEPTION (1 = illegal function, 2 = illegal data address, …). */
  readonly exceptionCode: number | undefined;
  /** Its meaning (MODBUS_EXCEPTIONS), `UNKNOWN EXCEPTION` when not in the table. */
  readonly exceptionMeaning: string | undefined;
  /** The bytes the error is about (the received frame or partial frame), when there are any. */
  readonly raw: Uint8Array | undefined;
  /** Modbus errors are never a broken link (see SerialError for that). */
  readonly disconnected = false;

  constructor(
    code: ModbusErrorCode,
    message: string,
    options: { raw?: Uint8Array; exceptionCode?: number; slave?: number; functionCode?: number; cause?: unknown } = {},
  ) {
    const where: Record<string, unknown> = {};
    if (options.slave !== undefined) where.slave = options.slave;
    if (options.functionCode !== undefined) where.functionCode = options.functionCode;
    if (options.exceptionCode !== undefined) where.exceptionCode = options.exceptionCode;
    super(code, message, { cause: options.cause, where });
    this.raw = options.raw;
    this.exceptionCode = options.exceptionCode;
    this.exceptionMeaning =
      options.exceptionCode === undefined ? undefined : (MODBUS_EXCEPTIONS[options.exceptionCode] ?? 'UNKNOWN EXCEPTION');
  }
}
