/**
 * HJ 212 decoder throughput on friendly and hostile input (issue #8): how fast Hj212StreamDecoder gets through
 * valid frames, random noise, and streams built to make it rescan (`##9999` repeated: every `##LLLL` is a
 * candidate frame that declares the longest data segment, so a decoder that rescans each candidate's window costs
 * ~10 KB of scanning per 6 input bytes).
 *
 *   npm run bench -- hj212-resync [--mib 4]
 *
 * Prints a markdown table (MB/s, 3 runs, median) on stdout.
 */
import { parseArgs } from 'node:util';
import { mulberry32 } from '@stele/core';
import { encodeFrame, Hj212StreamDecoder } from '@stele/hardware';

function repeat(unit: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i += unit.length) out.set(unit.subarray(0, Math.min(unit.length, size - i)), i);
  return out;
}

function inputs(size: number): [string, Uint8Array][] {
  const frame = encodeFrame({
    header: { QN: '20240101120000001', ST: '31', CN: '2011', PW: '123456', MN: '010000A8900016F000169DC0', Flag: 4 },
    cp: { params: { DataTime: '20240101120000' }, items: { a21026: { Rtd: '12.00', Flag: 'N' }, a19001: { Rtd: '6.8', Flag: 'N' } } },
  });
  const rand = mulberry32(7);
  const noise = new Uint8Array(size).map(() => Math.floor(rand() * 256));
  const enc = new TextEncoder();
  return [
    ['valid frames', repeat(frame, size)],
    ['random noise', noise],
    ['`##9999` repeated', repeat(enc.encode('##9999'), size)],
    ['`##0000` repeated', repeat(enc.encode('##0000'), size)],
    ['`##9999` + 100 letters, repeated', repeat(enc.encode(`##9999${'A'.repeat(100)}`), size)],
    ['`##9999` + 5000 letters + LF, repeated', repeat(enc.encode(`##9999${'A'.repeat(5000)}\n`), size)],
  ];
}

function mbPerSecond(bytes: Uint8Array): number {
  const runs: number[] = [];
  for (let r = 0; r < 3; r++) {
    const d = new Hj212StreamDecoder({ mode: 'lenient' });
    const t0 = performance.now();
    for (let off = 0; off < bytes.length; off += 4096) d.push(bytes.subarray(off, off + 4096));
    d.end();
    runs.push(bytes.length / 1e6 / ((performance.now() - t0) / 1000));
  }
  return runs.sort((a, b) => a - b)[1]!;
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { mib: { type: 'string', default: '4' } } });
  const size = Math.round(Number(values.mib) * 1024 * 1024);
  const lines = ['| input (lenient decoder, 4 KiB chunks) | MB/s |', '|---|---|'];
  for (const [name, bytes] of inputs(size)) {
    const rate = mbPerSecond(bytes);
    process.stderr.write(`${name}: ${rate.toFixed(2)} MB/s\n`);
    lines.push(`| ${name} | ${rate.toFixed(rate < 1 ? 2 : 1)} |`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) await main(process.argv.slice(2));
