export {
  currentKey,
  decodeDeviceKeys,
  encodeDeviceKeys,
  isLifecycleLogId,
  KeyRegistry,
  LIFECYCLE_LOG_PREFIX,
  lifecycleLogId,
  registryKey,
  type DeviceKeys,
} from './registry.ts';
