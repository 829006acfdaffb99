/**
 * @stele/hardware: sensor protocols and drivers. HJ 212 (HJ 212-2017, with HJ/T 212-2005 tolerance): CRC,
 * streaming decoder, encoder and answers, split-packet reassembly, measurements, serial session.
 * The CLI (`stele hj212 decode`) is loaded on demand from '@stele/hardware/hj212/cli.ts'.
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
export { HJ212_2005_TO_2017, HJ212_CEMS_CODES, measurementsFromCp, measurementsFromFrame, unitOf } from './hj212/measurements.ts';
export {
  type Hj212Message,
  type Hj212MessageKey,
  type Hj212ReassemblerOptions,
  type Hj212ReassemblyEvent,
  Hj212Reassembler,
} from './hj212/reassembler.ts';
export { type Hj212SessionOptions, type Hj212SessionStats, Hj212SerialSession, type SerialDuplex } from './hj212/session.ts';
