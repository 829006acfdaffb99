/** @stele/hardware-firmata: optional USB Firmata boards through johnny-five (kept out of the core gateway). */
export { FirmataError, type FirmataErrorCode } from './errors.ts';
export { FirmataBoard, type FirmataBoardOptions, type FirmataPin, type FirmataSample } from './firmata-board.ts';
