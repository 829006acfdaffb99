/**
 * The public surface of @stele/hardware (issue 10 item 1): every name each entry point in package.json `exports`
 * offers, values and types. An export added or removed fails here until SURFACE says so: a change to the API is a
 * deliberate edit to this list, not a side effect of moving a file. Entry points and their run-time exports are
 * loaded too, so an entry that does not load (or exports at run time what TypeScript calls a type) fails.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { surfaceOf, type EntrySurface } from '@stele/testkit/surface';

const SURFACE: Record<string, string[]> = {
  '.': [
    'BackoffPolicy', 'CAL3K_EXAMPLE_FINAL_STATUSES', 'CAL3K_HEADER', 'COAL_ASSAY_CODE', 'COAL_PARAMETERS',
    'CUSTODY_KIND', 'Cal3kDriverOptions', 'Cal3kEvent', 'Cal3kOptions', 'Cal3kStreamDecoder', 'CoalAcquired',
    'CoalBasis', 'CoalError', 'CoalErrorCode', 'CoalKind', 'CoalParameter', 'CoalResult', 'CoalTextEncoding',
    'ColdRoomAlarm', 'ColdRoomAlarmReason', 'ColdRoomController', 'ColdRoomInput', 'ColdRoomRule', 'ColdRoomStatus',
    'ColdRoomTick', 'CommandResult', 'CommandRunner', 'CsvRow', 'CustodyEvent', 
    'CustodyStep', 'DEFAULT_BACKOFF', 'DS18B20_POWER_ON_MILLI',
    'DatabasePoller', 'DbPollReport', 'DbPollerOptions', 'DbRow', 'DbRowEvent', 'DecodedRequest', 'DeviceEnd',
    'DoorContact', 'DoorState', 'DriverCommonOptions', 'DriverError', 'DriverErrorCode', 'DriverIssue',
    'Ds18b20Failure', 'Ds18b20Reading', 'Ds18b20Result', 'EXCEPTION_BIT', 'EXCEPTION_RESPONSE_LENGTH', 'ExeRtn',
    'ExportFile', 'ExportFolderPoller', 'FC_READ_HOLDING_REGISTERS', 'FC_READ_INPUT_REGISTERS', 'FolderPollReport',
    'FolderPollerOptions', 'GSP_COLD_ROOM_RULE', 'GpioAlarmOutput', 'GpioEdge', 'GpioLine', 'GpiodDialect',
    'HJ212_2005_TO_2017', 'HJ212_CEMS_CODES', 'HJ212_CRC_VARIANTS', 'HJ212_MAX_DATA_LENGTH', 'HJ212_MAX_FRAME_BYTES',
    'HJ212_RUN_RAW_BYTES', 'Hj212Anomaly', 'Hj212AnomalyCode', 'Hj212AnswerInput', 'Hj212Cp', 'Hj212CpInput',
    'Hj212CrcVariant', 'Hj212DecodeResult', 'Hj212DecoderOptions', 'Hj212DriverOptions', 'Hj212EncodeInput',
    'Hj212Error', 'Hj212ErrorCode', 'Hj212FlagDecoded', 'Hj212Frame', 'Hj212Framing', 'Hj212HeaderInput',
    'Hj212Message', 'Hj212MessageKey', 'Hj212Mode', 'Hj212Parsed', 'Hj212Reassembler', 'Hj212ReassemblerOptions',
    'Hj212ReassemblyEvent', 'Hj212Rejection',
    'Hj212StreamDecoder', 'KAIYUAN_5E_CALORIMETER_COLUMNS', 'LocalIoError', 'LocalIoErrorCode', 'MAX_READ_REGISTERS',
    'MAX_RTU_FRAME_BYTES', 'MD02', 'MODBUS_EXCEPTIONS', 'MockSerialLine', 'ModbusDeviceConfig', 'ModbusDriverOptions',
    'ModbusError', 'ModbusErrorCode', 'ModbusMasterOptions', 'ModbusMasterStats', 'ModbusReadFunction',
    'ModbusRtuMaster', 'PARR_6X00_PROFILE', 'Parity', 'QnRtn', 'REGISTER_PROFILES', 'ReadRequest', 'ReadResponse',
    'RegisterChannel', 'RegisterProfile', 'RunCsvColumn', 'RunCsvFile', 'RunCsvOptions', 'RunCsvProfile',
    'RunCsvRejection', 'RunCsvTimeFormat', 'SensorDriver', 'SensorReading', 'SensorSession',
    'SerialError', 'SerialErrorCode', 'SerialLogLevel', 'SerialSettings', 'SerialStatus', 'SerialTransport',
    'SerialTransportOptions', 'SerialTransportStats', 'SessionStats', 'SpawnedCommand', 'TransportLogger',
    'TransportState', 'W1_DEVICES_ROOT', 'W1_THERM_FAMILIES', 'XY_MD02', 'XY_MD02_X100', 'alarmMeasurements',
    'appendCrc', 'assertProfile', 'backoffDelayMs', 'basisOf', 'bitsPerCharacter', 'cal3kDriver', 'canonicalRowBytes',
    'channelRaw', 'checkCrc', 'checkModbusCrc', 'coalReading', 'coalResultFromRow', 'crc16Hj212',
    'crc16Modbus', 'crc8Dallas', 'crcModbus', 'crcText', 'createCommandRunner', 'custodyEventFromMeasurements',
    'custodyMeasurements', 'decodeAll', 'decodeCal3k', 'decodeFrame', 'decodeReadResponse', 'decodeRequest',
    'decodeText', 'doorMeasurement', 'encodeDataAnswer', 'encodeException', 'encodeExecutionAnswer', 'encodeFrame',
    'encodeReadRequest', 'encodeReadResponse', 'encodeRequestAnswer', 'formatCp', 'formatDataSegment',
    'formatHj212Time', 'formatScaled', 'frameDataSegment', 'gpiomonArgs', 'hj212Driver', 'interCharTimeoutMs',
    'listW1Thermometers', 'measurementsFromCp', 'measurementsFromFrame', 'measurementsFromRegisters',
    'measurementsFromRow', 'milliToDecimalText', 'modbusDriver', 'normaliseHeader', 'openFailureCode', 'parseCsv',
    'parseGpiomonLine', 'parseRunCsv', 'parseW1Slave', 'profileRequest', 'readAllDs18b20', 'readDoor', 'readDs18b20',
    'readGpio', 'recordFieldsOf', 'requestLength', 'resolveBackoff', 'responseLength', 'silentIntervalMs',
    'transmitTimeMs', 'unitOf', 'validateCustodyEvent', 'watchGpio',
  ],
  './cli': [
    'HJ212_DECODE_HELP', 'Hj212CliDeps', 'Hj212CliIo', 'SerialDuplex', 'resultToJson', 'runHj212Decode',
  ],
  './testing': [
    'DriverHarness', 'DriverSuiteOptions', 'InstrumentBehaviour', 'driverSuite',
  ],
};

const LOAD: Record<string, () => Promise<Record<string, unknown>>> = {
  '.': () => import('@stele/hardware'),
  './cli': () => import('@stele/hardware/cli'),
  './testing': () => import('@stele/hardware/testing'),
};

describe('the public surface of @stele/hardware', () => {
  let surface: Record<string, EntrySurface>;
  beforeAll(() => {
    surface = surfaceOf(new URL('../package.json', import.meta.url));
  }, 120_000); // the TypeScript program of the package: seconds, more on a loaded 2-core machine

  it('exports exactly the pinned names from each entry point', () => {
    expect(Object.fromEntries(Object.entries(surface).map(([key, s]) => [key, s.names]))).toEqual(SURFACE);
  });

  it.each(Object.keys(LOAD))('entry point %s loads, with the pinned values at run time', async (key) => {
    const mod = await LOAD[key]!();
    expect(Object.keys(mod).sort()).toEqual(surface[key]!.values);
  });
});
