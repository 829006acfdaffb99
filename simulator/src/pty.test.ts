import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SerialTransport } from '@stele/hardware';
import { LinePacer, PtyPair, SOCAT_SKIP_REASON, socatAvailable } from './pty.ts';

const socat = socatAvailable();

describe('LinePacer', () => {
  it('writes every byte, in order, in chunks, reporting progress', async () => {
    const chunks: number[][] = [];
    const progress: number[] = [];
    const pacer = new LinePacer(async (b) => void chunks.push([...b]), 1_000_000, { chunkBytes: 3 });
    await pacer.send(Uint8Array.of(1, 2, 3, 4, 5, 6, 7), (w) => void progress.push(w));
    expect(chunks).toEqual([[1, 2, 3], [4, 5, 6], [7]]);
    expect(progress).toEqual([3, 6, 7]);
    expect(() => new LinePacer(async () => {}, 0)).toThrow(RangeError);
  });
});

describe.skipIf(!socat)(`PtyPair ${socat ? '' : SOCAT_SKIP_REASON}`, () => {
  it.runIf(process.env.CI === 'true')('socat is installed under CI', () => expect(socat).toBe(true));

  it('joins two ptys, cuts and restores the line on the same paths, and cleans up', async () => {
    const pair = await PtyPair.start();
    const a = new SerialTransport({ path: pair.pathA, baudRate: 115200, reconnect: { initialDelayMs: 10, maxDelayMs: 50 }, presenceCheckMs: 20 });
    const b = new SerialTransport({ path: pair.pathB, baudRate: 115200, reconnect: { initialDelayMs: 10, maxDelayMs: 50 }, presenceCheckMs: 20 });
    try {
      await Promise.all([a.open(), b.open()]);
      expect(a.realPath).toMatch(/^\/dev\/pts\/\d+$/);
      const got: number[] = [];
      a.onData((x) => got.push(...x));
      await b.write(Uint8Array.of(1, 2, 3));
      for (let i = 0; i < 200 && got.length < 3; i++) await new Promise((r) => setTimeout(r, 5));
      expect(got).toEqual([1, 2, 3]);
      const pid = pair.pid!;
      await pair.cut();
      expect(existsSync(pair.pathA)).toBe(false);
      expect(() => process.kill(pid, 0)).toThrow();
      for (let i = 0; i < 400 && (a.state === 'open' || b.state === 'open'); i++) await new Promise((r) => setTimeout(r, 5));
      expect([a.state, b.state]).toEqual(['reconnecting', 'reconnecting']);
      await pair.restore();
      expect(pair.generation).toBe(2);
      await Promise.all([a.whenOpen(), b.whenOpen()]);
      await b.write(Uint8Array.of(4));
      for (let i = 0; i < 200 && got.length < 4; i++) await new Promise((r) => setTimeout(r, 5));
      expect(got).toEqual([1, 2, 3, 4]);
    } finally {
      await Promise.all([a.close(), b.close()]);
      await pair.stop();
    }
    expect(existsSync(pair.dir)).toBe(false);
  });
});
