import { describe, expect, it } from 'vitest';
import { deviceTopic, everyDeviceFilter, gatewayClientId, parseDeviceTopic } from './index.ts';

describe('the MQTT topics (FORMAT.md §11)', () => {
  it('names each kind of a device and every device', () => {
    expect(deviceTopic('gw-1', 'statements')).toBe('stele/v1/gw-1/statements');
    expect(deviceTopic('gw-1', 'health')).toBe('stele/v1/gw-1/health');
    expect(everyDeviceFilter('statements')).toBe('stele/v1/+/statements');
    expect(gatewayClientId('gw-1')).toBe('stele-gw-gw-1');
  });

  it('reads the device and kind back from a topic', () => {
    expect(parseDeviceTopic(deviceTopic('gw-1', 'acks'))).toEqual({ device: 'gw-1', kind: 'acks' });
  });

  it.each(['stele/v1/gw-1', 'stele/v1/gw-1/statements/x', 'stele/v2/gw-1/statements', 'stele/v1//statements', 'stele/v1/gw-1/other', 'x/stele/v1/gw-1/acks'])(
    'ignores %s',
    (topic) => {
      expect(parseDeviceTopic(topic)).toBeUndefined();
    },
  );
});
