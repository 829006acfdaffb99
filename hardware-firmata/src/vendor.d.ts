/**
 * The few parts of johnny-five 2.1, firmata-io 2.3 and mock-firmata 0.2 this package uses (none ships types).
 * Kept minimal on purpose: everything here is exercised by firmata-board.test.ts.
 */
declare module 'johnny-five' {
  import type { EventEmitter } from 'node:events';
  export interface BoardOptions {
    io: unknown;
    repl?: boolean;
    debug?: boolean;
    sigint?: boolean;
    timeout?: number;
  }
  export class Board extends EventEmitter {
    constructor(options: BoardOptions);
    isReady: boolean;
    io: FirmataLikeIo;
    MODES: Record<string, number>;
    pinMode(pin: number | string, mode: number): this;
  }
  export interface SensorOptions {
    pin: number | string;
    type?: 'analog' | 'digital';
    freq?: number;
    board?: Board;
  }
  export class Sensor extends EventEmitter {
    constructor(options: SensorOptions);
    readonly raw: number | null;
    disable(): this;
  }
  export interface FirmataLikeIo extends EventEmitter {
    MODES: Record<string, number>;
    isReady?: boolean;
    name?: string;
    transport?: { isOpen?: boolean; close?: (cb?: (err?: Error | null) => void) => void } & EventEmitter;
    pinMode(pin: number, mode: number): void;
    analogRead(pin: number, cb: (value: number) => void): void;
    digitalRead(pin: number, cb: (value: number) => void): void;
  }
  const five: { Board: typeof Board; Sensor: typeof Sensor };
  export default five;
}

declare module 'mock-firmata' {
  import type { FirmataLikeIo } from 'johnny-five';
  export interface MockFirmataIo extends FirmataLikeIo {
    analogPins: number[];
  }
  const mock: { Firmata: new (options?: Record<string, unknown>) => MockFirmataIo };
  export default mock;
}

declare module 'firmata-io' {
  import type { FirmataLikeIo } from 'johnny-five';
  export interface FirmataOptions {
    skipCapabilities?: boolean;
    analogPins?: number[];
    pinCount?: number;
    reportVersionTimeout?: number;
    samplingInterval?: number;
  }
  const firmata: { Firmata: new (transport: unknown, options?: FirmataOptions) => FirmataLikeIo };
  export default firmata;
}
