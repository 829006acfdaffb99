/**
 * @stele/hardware: sensor protocols and drivers. HJ 212 (HJ 212-2017, with HJ/T 212-2005 tolerance): CRC,
 * streaming decoder, encoder and answers, split-packet reassembly, measurements, serial session.
 * The CLI (`stele hj212 decode`) is loaded on demand from '@stele/hardware/cli'.
 */
export { type Hj212CrcVariant, HJ212_CRC_VARIANTS, crc16Hj212, crc16Modbus, crcText, checkCrc } from './hj212/crc.ts';
export { Hj212Error, type Hj212ErrorCode } from './hj212/errors.ts';
export type {
  Hj212Anomaly,
  Hj212AnomalyCode,
  Hj212Cp,
  Hj212DecodeResult,
  Hj212FlagDecoded,
  Hj212Frame,
  Hj212Framing,
  Hj212Parsed,
  Hj212Rejection,
} from './hj212/types.ts';
export {
  HJ212_MAX_DATA_LENGTH,
  HJ212_MAX_FRAME_BYTES,
  HJ212_RUN_RAW_BYTES,
  type Hj212DecoderOptions,
  type Hj212Mode,
  Hj212StreamDecoder,
  decodeAll,
  decodeFrame,
} from './hj212/decoder.ts';
export {
  type ExeRtn,
  type Hj212AnswerInput,
  type Hj212CpInput,
  type Hj212EncodeInput,
  type Hj212HeaderInput,
  type QnRtn,
  encodeDataAnswer,
  encodeExecutionAnswer,
  encodeFrame,
  encodeRequestAnswer,
  formatCp,
  formatDataSegment,
  formatHj212Time,
  frameDataSegment,
} from './hj212/encoder.ts';
export { HJ212_2005_TO_2017, HJ212_CEMS_CODES, measurementsFromCp, measurementsFromFrame, recordFieldsOf, unitOf } from './hj212/measurements.ts';
export {
  type Hj212Message,
  type Hj212MessageKey,
  type Hj212ReassemblerOptions,
  type Hj212ReassemblyEvent,
  Hj212Reassembler,
} from './hj212/reassembler.ts';

// Modbus RTU (Modbus over Serial Line v1.02, Modbus Application Protocol v1.1b3): codec, master, register profiles.
export { MODBUS_EXCEPTIONS, ModbusError, type ModbusErrorCode } from './modbus/errors.ts';
export {
  EXCEPTION_BIT,
  EXCEPTION_RESPONSE_LENGTH,
  FC_READ_HOLDING_REGISTERS,
  FC_READ_INPUT_REGISTERS,
  MAX_READ_REGISTERS,
  MAX_RTU_FRAME_BYTES,
  type DecodedRequest,
  type ModbusReadFunction,
  type ReadRequest,
  type ReadResponse,
  appendCrc,
  bitsPerCharacter,
  checkCrc as checkModbusCrc,
  crcModbus,
  decodeReadResponse,
  decodeRequest,
  encodeException,
  encodeReadRequest,
  encodeReadResponse,
  interCharTimeoutMs,
  requestLength,
  responseLength,
  silentIntervalMs,
  transmitTimeMs,
} from './modbus/frame.ts';
export { type ModbusMasterOptions, type ModbusMasterStats, ModbusRtuMaster } from './modbus/master.ts';
export {
  MD02,
  REGISTER_PROFILES,
  type RegisterChannel,
  type RegisterProfile,
  XY_MD02,
  XY_MD02_X100,
  assertProfile,
  channelRaw,
  formatScaled,
  measurementsFromRegisters,
  profileRequest,
} from './modbus/profile.ts';

// Serial transport (serialport 13): by-id paths, line settings, reconnect with backoff, status.
export { type BackoffPolicy, DEFAULT_BACKOFF, backoffDelayMs, resolveBackoff } from './transport/backoff.ts';
export { SerialError, type SerialErrorCode, openFailureCode } from './transport/errors.ts';
export { type DeviceEnd, MockSerialLine } from './transport/mock-line.ts';
export {
  type LogLevel as SerialLogLevel,
  type Parity,
  type SerialSettings,
  type SerialStatus,
  SerialTransport,
  type SerialTransportOptions,
  type SerialTransportStats,
  type TransportLogger,
  type TransportState,
} from './transport/serial-transport.ts';

// Drivers: the plug-in shape, the HJ 212 and Modbus drivers. The conformance suite (needs vitest) is at
// '@stele/hardware/testing'.
export type { DriverCommonOptions, DriverIssue, SensorDriver, SensorReading, SensorSession, SessionStats } from './driver/types.ts';
export { DriverError, type DriverErrorCode } from './driver/session-core.ts';
export { type Hj212DriverOptions, hj212Driver } from './driver/hj212-driver.ts';
export { type ModbusDeviceConfig, type ModbusDriverOptions, modbusDriver } from './driver/modbus-driver.ts';

// Coal-quality lab (CAL3K records, run-file CSV incl. GB18030, export-folder and database polling, custody) and
// local I/O (DS18B20 via /sys/bus/w1, libgpiod door contacts and alarm output, cold-room alarm rule).
export * from './coal/index.ts';
export * from './local-io/index.ts';
