/**
 * Two ways to run the board without hardware (DEPENDENCIES.md §1):
 * - mock-firmata as the IO (snippet 1a): its analogRead/digitalRead are no-ops, so the test captures the
 *   callbacks johnny-five registers and calls them with values it chooses;
 * - the real firmata-io protocol parser over serialport 13's SerialPortMock (snippet 1b): the test plays the
 *   firmware, answering REPORT_VERSION and QUERY_FIRMWARE and then sending ANALOG/DIGITAL messages as bytes.
 * Loops waiting for samples are bounded by a sample count, never by elapsed time.
 */
import { afterEach, describe, expect, it } from 'vitest';
import mockFirmata from 'mock-firmata';
import firmataIo from 'firmata-io';
import { SerialPortMock } from 'serialport';
import { toHex, sha256 } from '@stele/core';
import { FirmataError } from './errors.ts';
import { FirmataBoard, type FirmataSample } from './firmata-board.ts';

async function firstSample(board: FirmataBoard, want: (s: FirmataSample) => boolean, max = 500): Promise<FirmataSample | undefined> {
  let n = 0;
  for await (const s of board.readings()) {
    if (want(s)) return s;
    if (++n >= max) return undefined;
  }
  return undefined;
}

describe('FirmataBoard over mock-firmata', () => {
  it('yields analog counts and digital levels as measurements with the digest of the sample text', async () => {
    const io = new mockFirmata.Firmata();
    const callbacks = new Map<string, (v: number) => void>();
    io.analogRead = (pin, cb) => void callbacks.set(`a${pin}`, cb);
    io.digitalRead = (pin, cb) => void callbacks.set(`d${pin}`, cb);
    const opening = FirmataBoard.open({ io, intervalMs: 5, pins: [{ pin: 'A0', mode: 'analog', code: 'door-temp-adc' }, { pin: 2, mode: 'digital' }] });
    io.emit('connect');
    io.emit('ready');
    const board = await opening;
    expect([...callbacks.keys()].sort()).toEqual(['a0', 'd2']);
    callbacks.get('a0')!(512);
    callbacks.get('d2')!(1);
    const s = await firstSample(board, (x) => x.meas.length === 2);
    expect(s?.meas).toEqual([
      { code: 'door-temp-adc', kind: 'adc', value: '512', unit: 'count' },
      { code: 'D2', kind: 'digital', value: '1' },
    ]);
    expect(s?.text).toBe('door-temp-adc=512;D2=1');
    expect(toHex(s!.raw[0]!)).toBe(toHex(sha256(new TextEncoder().encode('door-temp-adc=512;D2=1'))));
    await board.close();
  });

  it('rejects with FIRMATA_NOT_READY when the board never becomes ready, and refuses bad pin specs', async () => {
    const io = new mockFirmata.Firmata();
    await expect(FirmataBoard.open({ io, pins: [{ pin: 'A0', mode: 'analog' }], readyTimeoutMs: 20 })).rejects.toMatchObject({ code: 'FIRMATA_NOT_READY' });
    await expect(FirmataBoard.open({ io, pins: [{ pin: 'D2', mode: 'digital' }] })).rejects.toThrow(RangeError);
    await expect(FirmataBoard.open({ io, pins: [] })).rejects.toThrow(TypeError);
  });
});

describe('FirmataBoard over firmata-io and SerialPortMock', () => {
  const path = '/dev/ttyFIRMATA';
  afterEach(() => {
    SerialPortMock.binding.reset();
  });

  it('reads A0 and D2 from Firmata messages and fails with FIRMATA_DISCONNECTED when the port closes', async () => {
    SerialPortMock.binding.createPort(path, { echo: false, record: true });
    const port = new SerialPortMock({ path, baudRate: 57600 });
    const io = new firmataIo.Firmata(port, { skipCapabilities: true, analogPins: [14, 15, 16, 17, 18, 19], pinCount: 20, reportVersionTimeout: 200 });
    port.on('open', () => {
      port.port!.emitData(Buffer.from([0xf9, 0x02, 0x05])); // REPORT_VERSION 2.5
      port.port!.emitData(Buffer.from([0xf0, 0x79, 0x02, 0x05, 0x53, 0, 0x69, 0, 0x6d, 0, 0xf7])); // QUERY_FIRMWARE "Sim"
    });
    const board = await FirmataBoard.open({ io, intervalMs: 5, pins: [{ pin: 'A0', mode: 'analog' }, { pin: 2, mode: 'digital' }] });
    port.port!.emitData(Buffer.from([0xe0, 700 & 0x7f, 700 >> 7])); // ANALOG_MESSAGE channel 0 = 700
    port.port!.emitData(Buffer.from([0x90, 0x04, 0x00])); // DIGITAL_MESSAGE port 0: pin 2 high
    const s = await firstSample(board, (x) => x.meas.length === 2);
    expect(s?.text).toBe('A0=700;D2=1');

    // What johnny-five asked the firmware for: pin 2 as INPUT, report analog channel 0 and digital port 0.
    const written = toHex(port.port!.recording);
    expect(written).toContain('f40200'); // SET_PIN_MODE 2 INPUT
    expect(written).toContain('c001'); // REPORT_ANALOG channel 0 on
    expect(written).toContain('d001'); // REPORT_DIGITAL port 0 on

    port.port!.emitData(Buffer.from([0xe0, 701 & 0x7f, 701 >> 7]));
    await new Promise<void>((resolve) => port.close(() => resolve()));
    const err = await (async () => {
      for await (const _ of board.readings()) {
        /* drain until the failure surfaces */
      }
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FirmataError);
    expect(err).toMatchObject({ code: 'FIRMATA_DISCONNECTED', disconnected: true });
    await board.close();
  });
});
