import { SteleError } from '@stele/core';

export type SerialErrorCode =
  /** The port could not be opened: missing device or symlink, busy/locked, bad settings. */
  | 'SERIAL_OPEN_FAILED'
  /** The user may not open the device (add it to the `dialout` group, or fix the udev rule). */
  | 'SERIAL_PERMISSION_DENIED'
  /** An open port went away (USB adapter unplugged, pty peer gone) or was closed while in use. */
  | 'SERIAL_DISCONNECTED';

export class SerialError extends SteleError<SerialErrorCode> {
  /** The configured path (e.g. /dev/serial/by-id/usb-FTDI_…). */
  readonly path: string;
  /** What it resolved to (e.g. /dev/ttyUSB0), when resolution got that far. */
  readonly realPath: string | undefined;
  /** True for SERIAL_DISCONNECTED, as the driver contract asks (`disconnected: true`). */
  readonly disconnected: boolean;

  constructor(code: SerialErrorCode, message: string, options: { path: string; realPath?: string; cause?: unknown }) {
    const where: Record<string, unknown> = { path: options.path };
    if (options.realPath !== undefined) where.realPath = options.realPath;
    super(code, message, { cause: options.cause, where });
    this.path = options.path;
    this.realPath = options.realPath;
    this.disconnected = code === 'SERIAL_DISCONNECTED';
  }
}

/**
 * Maps an open failure to a code. Node fs errors carry `code` (EACCES, ENOENT); @serialport/bindings-cpp 13
 * errors carry only text ("Error: Permission denied, cannot open /dev/ttyUSB0").
 */
export function openFailureCode(err: unknown): 'SERIAL_PERMISSION_DENIED' | 'SERIAL_OPEN_FAILED' {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'EACCES' || code === 'EPERM') return 'SERIAL_PERMISSION_DENIED';
  const message = err instanceof Error ? err.message : String(err);
  return /permission denied|EACCES|operation not permitted/i.test(message) ? 'SERIAL_PERMISSION_DENIED' : 'SERIAL_OPEN_FAILED';
}
