/**
 * @stele/simulator: simulated instruments (HJ 212 CEMS, Modbus temperature/humidity, coal lab exports) and the pty
 * pairs that connect them to a driver. `stele demo` is loaded on demand from '@stele/simulator/demo'.
 */
export { CemsSimulator, type CemsFaults, type CemsSimulatorOptions, type CemsStats, type WritableLink } from './instruments/cems.ts';
export {
  ModbusThSlave,
  type AnswerInfo,
  type AttachOptions,
  type ModbusSlaveBehaviour,
  type ModbusSlaveStats,
  type ModbusThFamily,
  type ModbusThSlaveOptions,
  type SlaveLink,
} from './instruments/modbus-th.ts';
export {
  CAL3K_SIM_ABORTED_STATUS,
  CAL3K_SIM_FINAL_STATUS,
  Cal3kSimulator,
  PARR_SIM_HEADER,
  ParrCsvSimulator,
  encodeGb18030,
  simulateCustodyChain,
  type Cal3kSimRecord,
  type Cal3kSimulatorOptions,
  type ParrRunFile,
  type ParrRunOptions,
  type SimCustodyEvent,
} from './instruments/coal-lab.ts';
export { LinePacer, PtyPair, SOCAT_SKIP_REASON, socatAvailable, type PtyPairOptions } from './pty.ts';
export { episodeRuleFiles } from './episodes.ts';
export { hj212Instrument, softwareGatewayYaml, type SoftwareGatewayYaml } from './gateway-yaml.ts';
