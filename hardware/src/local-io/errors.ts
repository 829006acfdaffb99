import { SteleError } from '@stele/core';

/** Codes for local I/O (1-Wire probes, GPIO through libgpiod's tools) that fails a check. */
export type LocalIoErrorCode =
  /** No such 1-Wire device (or no w1_slave file): probe unplugged or w1-gpio overlay not loaded. */
  | 'W1_NOT_FOUND'
  /** The w1_slave file could not be read (I/O error, permission). */
  | 'W1_READ_FAILED'
  /** The w1_slave text is not the kernel's two-line format. */
  | 'W1_BAD_FORMAT'
  /** The kernel reported `crc=.. NO`, or the scratchpad bytes fail the Dallas CRC-8. */
  | 'W1_BAD_CRC'
  /** `t=85000`: the DS18B20 power-on reset value, i.e. no conversion happened (brown-out, parasite power). */
  | 'W1_POWER_ON_RESET'
  /** An all-zero scratchpad (passes CRC-8 and reads 0 °C): a shorted or floating data line. */
  | 'W1_ZERO_SCRATCHPAD'
  /** A libgpiod command is not installed (ENOENT) or could not be started. */
  | 'GPIO_COMMAND_MISSING'
  /** A libgpiod command exited non-zero or timed out. */
  | 'GPIO_COMMAND_FAILED'
  /** A libgpiod command printed something that is not a line level / event. */
  | 'GPIO_BAD_OUTPUT'
  /** A held output (gpioset) or a monitor (gpiomon) exited while it should be running. */
  | 'GPIO_EXITED';

export class LocalIoError extends SteleError<LocalIoErrorCode> {}
