import { PassThrough, Readable } from 'node:stream';
import { SerialPortMock } from 'serialport';
import { afterEach, describe, expect, it } from 'vitest';
import { HJ212_DECODE_HELP, runHj212Decode } from './cli.ts';
import { encodeFrame, frameDataSegment } from './encoder.ts';

const FRAME_A = '##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80\r\n';

function capture() {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (c: Buffer) => (stdout += c.toString()));
  err.on('data', (c: Buffer) => (stderr += c.toString()));
  return { out, err, text: () => ({ stdout, stderr }) };
}

async function run(argv: string[], input: Uint8Array | string = '') {
  const c = capture();
  const stdin = Readable.from([Buffer.from(input)]);
  const code = await runHj212Decode(argv, { stdin, stdout: c.out, stderr: c.err });
  const { stdout, stderr } = c.text();
  const lines = () => stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, any>);
  return { code, stdout, stderr, get lines() { return lines(); } };
}

afterEach(() => SerialPortMock.binding.reset());

describe('stele hj212 decode', () => {
  it('prints one JSON line per frame in the fixtures shape and exits 0', async () => {
    const r = await run([], FRAME_A + FRAME_A);
    expect(r.code).toBe(0);
    expect(r.lines).toHaveLength(2);
    expect(r.lines[0]).toMatchObject({
      ok: true,
      offset: 0,
      header: { QN: '20160801085857223', CN: '1062' },
      flag_decoded: { value: 5, A_ack_required: 1 },
      cp: { params: { RtdInterval: '30' }, items: {}, item_order: [] },
      framing: { crc_ok: true, crc_hj212: '1C80' },
      anomalies: [],
    });
    expect(r.lines[0]!.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(r.lines[1]!.offset).toBe(FRAME_A.length);
  });

  it('keeps going after a bad frame and exits 1', async () => {
    const bad = FRAME_A.replace('1C80', '1C81');
    const r = await run([], bad + 'junk' + FRAME_A);
    expect(r.code).toBe(1);
    expect(r.lines.map((l) => (l.ok ? 'ok' : l.error.code))).toEqual(['HJ212_BAD_CRC', 'HJ212_NOISE', 'ok']);
    expect(Object.keys(r.lines[0]!.error)).toEqual(['code', 'offset', 'message']);
  });

  it('--crc modbus-lsb-first and --lenient', async () => {
    const seg = 'ST=31;CN=2011;PW=123456;MN=MP1;CP=&&S08-Rtd=53.796&&';
    const modbus = Buffer.from(frameDataSegment(seg, 'modbus-lsb-first'));
    expect((await run([], modbus)).lines[0]!.error.code).toBe('HJ212_BAD_CRC');
    expect((await run(['--crc', 'modbus-lsb-first'], modbus)).lines[0]!.ok).toBe(true);
    const lenient = await run(['--lenient'], modbus);
    expect(lenient.code).toBe(0);
    expect(lenient.lines[0]!.anomalies.map((a: { code: string }) => a.code)).toEqual(['CRC_VARIANT']);
  });

  it('--help prints usage and exits 0; bad options exit 2', async () => {
    const h = await run(['--help']);
    expect(h.code).toBe(0);
    expect(h.stdout).toBe(HJ212_DECODE_HELP);
    expect((await run(['--crc', 'crc32'])).code).toBe(2);
    expect((await run(['--bogus'])).code).toBe(2);
    expect((await run(['--port', '/dev/x', '--baud', 'fast'])).code).toBe(2);
    expect((await run(['--baud', '9600'])).code).toBe(2);
  });

  it('--port reads a serial port until stopped', async () => {
    const path = '/dev/ttyHJ212CLI0';
    SerialPortMock.binding.createPort(path, { echo: false, record: false });
    const port = new SerialPortMock({ path, baudRate: 19200 });
    await new Promise<void>((resolve) => port.on('open', resolve));
    const c = capture();
    const ac = new AbortController();
    const opened: [string, number][] = [];
    const done = runHj212Decode(['--port', path, '--baud', '19200'], { stdin: Readable.from([]), stdout: c.out, stderr: c.err }, {
      openPort: async (p, baud) => {
        opened.push([p, baud]);
        return port;
      },
      signal: ac.signal,
    });
    await new Promise((r) => setTimeout(r, 5));
    const frame = encodeFrame({ header: { ST: '31', CN: '2011', PW: '1', MN: 'X', Flag: 4 }, cp: { items: { a21026: { Rtd: '1.5' } } } });
    port.port!.emitData(Buffer.from(frame.subarray(0, 10)));
    port.port!.emitData(Buffer.from(frame.subarray(10)));
    await new Promise((r) => setTimeout(r, 20));
    ac.abort();
    expect(await done).toBe(0);
    expect(opened).toEqual([[path, 19200]]);
    const lines = c.text().stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
    expect(lines.map((l) => l.cp.items.a21026.Rtd)).toEqual(['1.5']);
    expect(port.isOpen).toBe(false);
  });

  it('--port that cannot be opened exits 1 with a message', async () => {
    const c = capture();
    const code = await runHj212Decode(['--port', '/dev/none'], { stdin: Readable.from([]), stdout: c.out, stderr: c.err }, {
      openPort: async () => {
        throw new Error('no such port');
      },
    });
    expect(code).toBe(1);
    expect(c.text().stderr).toContain('/dev/none');
  });
});
