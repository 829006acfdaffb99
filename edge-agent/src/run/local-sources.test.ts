/**
 * The lab and cold-room instruments through the gateway config: parseConfig -> InstrumentRunner -> readings.
 * The instrument PC's export folder and the custody terminal's folder are temp folders; the 1-Wire sysfs tree is a
 * temp folder of w1_slave files; libgpiod's gpioget/gpioset are fake scripts first on PATH (as in gpio.test.ts).
 */
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SerialPortMock } from 'serialport';
import { createCommandRunner, crc8Dallas, MockSerialLine } from '@stele/hardware';
import { parseConfig, type GatewayConfig } from '../config/config.ts';
import { checkLocalSource } from '../doctor/doctor.ts';
import type { Acquired } from '../outbox.ts';
import { InstrumentRunner } from './instrument.ts';

let dir: string;
let config: GatewayConfig;
const NOW = Date.UTC(2026, 10, 20, 6, 0, 0);

/** The kernel's w1_slave text for a temperature of raw16/16 °C, with a correct Dallas CRC-8. */
function w1Slave(raw16: number): string {
  const b = [raw16 & 0xff, (raw16 >> 8) & 0xff, 0x4b, 0x46, 0x7f, 0xff, 0x0c, 0x10];
  const crc = crc8Dallas(new Uint8Array(b));
  const hex = [...b, crc].map((x) => x.toString(16).padStart(2, '0')).join(' ');
  return `${hex} : crc=${crc.toString(16).padStart(2, '0')} YES\n${hex} t=${(raw16 * 1000) / 16}\n`;
}

const FAKE_GPIOGET = `#!/bin/bash
chip="\${@: -2:1}"; off="\${@: -1}"
cat "$FAKE_GPIO_DIR/in-$chip-$off"
`;
const FAKE_GPIOSET = `#!/bin/bash
chip="\${@: -2:1}"; assign="\${@: -1}"
echo "\${assign#*=}" > "$FAKE_GPIO_DIR/out-$chip-\${assign%%=*}"
exec sleep 600
`;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stele-local-sources-'));
  for (const d of ['parr', 'custody', 'w1/28-000000000001', 'w1/28-000000000002', 'bin']) await mkdir(join(dir, d), { recursive: true });
  for (const [name, text] of Object.entries({ gpioget: FAKE_GPIOGET, gpioset: FAKE_GPIOSET })) {
    await writeFile(join(dir, 'bin', name), text);
    await chmod(join(dir, 'bin', name), 0o755);
  }
  const text = `gateway:
  id: gw-lab
  dataDir: ${join(dir, 'data')}
key:
  software:
    path: keys/gw.pem
broker:
  url: mqtt://127.0.0.1:1883
instruments:
  - id: bomb-1
    driver: cal3k
    port: /dev/serial/by-id/usb-FTDI_CAL3K-if00-port0
    baud: 9600
    options:
      finalStatuses: ["4"]
  - id: parr-1
    driver: parr-csv
    options:
      dir: ${join(dir, 'parr')}
      interval: 100ms
      settle: 0
      writerRenames: true
  - id: custody-lab
    driver: custody-folder
    options:
      dir: ${join(dir, 'custody')}
      interval: 100ms
      writerRenames: true
  - id: cold-1
    driver: cold-room
    options:
      root: ${join(dir, 'w1')}
      probes: [28-000000000001, 28-000000000002]
      interval: 1s
      doors:
        - { id: door-1, chip: gpiochip0, line: 17 }
      alarm: { chip: gpiochip0, line: 27 }
      rule: { low: 2, high: 8, outOfRange: 0s, doorOpen: 5m }
`;
  config = parseConfig(text, join(dir, 'gateway.yaml'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function firstReading(index: number, env: NodeJS.ProcessEnv = process.env): Promise<{ reading: Acquired; runner: InstrumentRunner }> {
  const runner = new InstrumentRunner(config.instruments[index]!, {
    clock: () => ({ synced: true, source: 'test' }),
    log: () => undefined,
    now: () => NOW,
    stateDir: join(dir, 'data', 'instruments'),
    commands: createCommandRunner({ env }),
  });
  const it = runner.source()[Symbol.asyncIterator]();
  const r = await it.next();
  return { reading: r.value as Acquired, runner };
}

describe('lab and cold-room instruments in the gateway config', () => {
  it('parses every driver; folder and cold-room instruments have their source where a port would be', () => {
    expect(config.instruments.map((i) => [i.id, i.driver, i.port])).toEqual([
      ['bomb-1', 'cal3k', '/dev/serial/by-id/usb-FTDI_CAL3K-if00-port0'],
      ['parr-1', 'parr-csv', join(dir, 'parr')],
      ['custody-lab', 'custody-folder', join(dir, 'custody')],
      ['cold-1', 'cold-room', join(dir, 'w1')],
    ]);
    expect(config.instruments[0]!.options).toMatchObject({ finalStatuses: ['4'] });
    expect(config.instruments[3]!.options).toMatchObject({ interval: 1000, gpio: 'v1', rule: { low: 2, high: 8, hysteresis: 0.5, outOfRange: 0, doorOpen: 300_000 } });
  });

  it('refuses what an installer gets wrong, with the field path', () => {
    const base = (ins: string) => `gateway: { id: g, dataDir: ./d }\nkey: { software: { path: k.pem } }\nbroker: { url: mqtt://127.0.0.1:1883 }\ninstruments:\n${ins}`;
    const issues = (ins: string) => {
      try {
        parseConfig(base(ins), '/etc/stele/gateway.yaml');
      } catch (err) {
        return (err as { where: { issues?: unknown }; message: string }).message;
      }
      return '';
    };
    expect(issues('  - { id: b, driver: cal3k, port: /dev/ttyUSB0 }\n')).toMatch(/instruments\[0\]\.options\.finalStatuses: required field is missing/);
    expect(issues('  - { id: c, driver: custody-folder, port: /dev/ttyUSB0, options: { dir: /srv/custody } }\n')).toMatch(/instruments\[0\]\.port: not used by driver custody-folder/);
    expect(issues('  - { id: c, driver: parr-csv }\n')).toMatch(/instruments\[0\]\.options\.dir: required field is missing/);
    expect(issues('  - { id: r, driver: cold-room, options: { alarm: { chip: gpiochip0, line: 4 } } }\n')).toMatch(/instruments\[0\]\.options\.rule: required when alarm is set/);
    expect(issues('  - { id: h, driver: hj212 }\n')).toMatch(/instruments\[0\]\.port: required field is missing/);
  });

  it('cal3k: a final record on the serial line becomes a reading; a record that is not final is counted', async () => {
    const line = new MockSerialLine(config.instruments[0]!.port);
    const runner = new InstrumentRunner(config.instruments[0]!, { clock: () => ({ synced: true, source: 'test' }), log: () => undefined, now: () => NOW, binding: line.binding });
    const it = runner.source()[Symbol.asyncIterator]();
    const next = it.next();
    for (let i = 0; i < 200 && runner.status().state !== 'open'; i++) await new Promise((r) => setTimeout(r, 10));
    const rec = (status: string, id: string) => `01/03/24;08:00:17;${status};COAL;${id}; 25.555500; 0.666600;;3KAP;00/00/00;;;; 0.111111; 0.222222;;;1.11; 3.000006;\r\n`;
    line.device.write(new TextEncoder().encode(rec('1', 'A0') + rec('4', 'A1')));
    const reading = (await next).value as Acquired;
    expect(reading.sensor).toBe('bomb-1');
    expect(reading.meas).toContainEqual(expect.objectContaining({ value: 'A1' }));
    expect(runner.status().rejections).toMatchObject({ COAL_NOT_FINAL: 1 });
    await runner.stop();
    SerialPortMock.binding.reset();
  });

  it('parr-csv: a final run file becomes a reading; a result that is not final is counted, not signed', async () => {
    await writeFile(join(dir, 'parr', 'HY0501.det.finl.csv'), 'SampleID,Timestamp,State,Units,HOC\r\nHY0501,03/01/24 09:00:00,2,0,24.1234\r\nHY0502,03/01/24 09:10:00,1,0,20.0\r\n');
    const { reading, runner } = await firstReading(1);
    expect(reading.sensor).toBe('parr-1');
    expect(reading.meas).toContainEqual(expect.objectContaining({ value: '24.1234' }));
    expect(reading.raw).toHaveLength(1);
    await runner.stop();
    expect(runner.status().rejections).toMatchObject({ COAL_NOT_FINAL: 1 });
  });

  it('custody-folder: a JSON event file becomes a custody reading; a bad one is rejected with CUSTODY_BAD_EVENT', async () => {
    await writeFile(join(dir, 'custody', 'a-bad.json'), '{"step":"assay","at":"2026-11-20T10:00:00+08:00","by":"wang","code":"A1"}');
    await writeFile(join(dir, 'custody', 'b-sampling.json'), JSON.stringify({ step: 'sampling', at: '2026-11-20T08:00:00+08:00', by: 'li', code: 'S1', batch: 'B1', weight: '1000' }));
    const { reading, runner } = await firstReading(2);
    expect(reading.meas).toEqual([
      { code: 'step', kind: 'custody', value: 'sampling' },
      { code: 'at', kind: 'custody', value: '2026-11-20T08:00:00+08:00' },
      { code: 'by', kind: 'custody', value: 'li' },
      { code: 'code', kind: 'custody', value: 'S1' },
      { code: 'weight', kind: 'custody', value: '1000', unit: 'g' },
      { code: 'batch', kind: 'custody', value: 'B1' },
    ]);
    await runner.stop();
    expect(runner.status().rejections).toMatchObject({ CUSTODY_BAD_EVENT: 1 });
  });

  it('cold-room: probes, door and alarm state in one reading; the alarm output switches on out of range', async () => {
    await writeFile(join(dir, 'w1', '28-000000000001', 'w1_slave'), w1Slave(80)); // 5 °C
    await writeFile(join(dir, 'w1', '28-000000000002', 'w1_slave'), w1Slave(144)); // 9 °C: out of 2-8
    await writeFile(join(dir, 'in-gpiochip0-17'), '0\n'); // door closed
    const env = { ...process.env, PATH: `${join(dir, 'bin')}:${process.env.PATH ?? ''}`, FAKE_GPIO_DIR: dir };
    const { reading, runner } = await firstReading(3, env);
    expect(reading.meas).toEqual([
      { code: '28-000000000001', kind: 'temperature', value: '5.000', unit: '°C' },
      { code: '28-000000000002', kind: 'temperature', value: '9.000', unit: '°C' },
      { code: 'door-1', kind: 'door', value: 'closed' },
      { code: 'cold-1', kind: 'alarm', value: 'on' },
      { code: 'cold-1', kind: 'alarm-reason', value: 'temperature' },
    ]);
    expect(reading.raw).toHaveLength(2);
    for (let i = 0; i < 100; i++) {
      if ((await readFile(join(dir, 'out-gpiochip0-27'), 'utf8').catch(() => '')).trim() === '1') break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect((await readFile(join(dir, 'out-gpiochip0-27'), 'utf8')).trim()).toBe('1');
    await runner.stop();
  });

  it('doctor checks each source: folder present, probes present, libgpiod tools installed', async () => {
    expect((await checkLocalSource(config.instruments[1]!))[0]).toMatchObject({ status: 'ok' });
    expect((await checkLocalSource(config.instruments[3]!, join(dir, 'bin'))).map((c) => c.status)).toEqual(['ok', 'ok']);
    const noTools = await checkLocalSource(config.instruments[3]!, join(dir, 'nothing'));
    expect(noTools[1]).toMatchObject({ status: 'fail', code: 'GPIO_COMMAND_MISSING', fix: 'sudo apt-get install gpiod' });
    const missing = await checkLocalSource({ ...config.instruments[2]!, options: { ...config.instruments[2]!.options, dir: join(dir, 'no-such') } });
    expect(missing[0]).toMatchObject({ status: 'fail', code: 'INSTRUMENT_SOURCE_MISSING' });
    const noProbe = await checkLocalSource({ ...config.instruments[3]!, options: { ...config.instruments[3]!.options, probes: ['28-00000000000f'] } }, join(dir, 'bin'));
    expect(noProbe[0]).toMatchObject({ status: 'fail', code: 'INSTRUMENT_SOURCE_MISSING' });
  });
});
