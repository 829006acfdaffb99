import { SteleError } from '@stele/core';

export type FirmataErrorCode =
  /** The board did not become ready (no firmware answer, IO error, timeout). */
  | 'FIRMATA_NOT_READY'
  /** The board's link closed or failed after it was ready. */
  | 'FIRMATA_DISCONNECTED';

export class FirmataError extends SteleError<FirmataErrorCode> {
  /** True for a broken link, as the driver contract asks (STYLE.md). */
  readonly disconnected: boolean;
  constructor(code: FirmataErrorCode, message: string, options?: { cause?: unknown; where?: Record<string, unknown> }) {
    super(code, message, options);
    this.disconnected = code === 'FIRMATA_DISCONNECTED';
  }
}
