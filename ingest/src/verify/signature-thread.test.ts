import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { verifyEs256 } from '@stele/core';
import { testSigner } from '../test-helpers.ts';
import { SignatureThread } from './signature-thread.ts';

interface Logged {
  level: string;
  msg: string;
}

async function cases(n: number) {
  const signers = [testSigner(), testSigner(), testSigner()];
  const out: { publicKey: Uint8Array; message: Uint8Array; signature: Uint8Array }[] = [];
  for (let i = 0; i < n; i++) {
    const s = signers[i % signers.length]!;
    const message = new TextEncoder().encode(`statement ${i} `.repeat(1 + (i % 7)));
    const signature = await s.sign(message);
    // every third one altered: a flipped bit in the message, the signature or a signature by another key
    if (i % 3 === 1) message[0] = message[0]! ^ 1;
    if (i % 9 === 2) signature[10] = signature[10]! ^ 0x40;
    out.push({ publicKey: i % 11 === 5 ? signers[(i + 1) % signers.length]!.publicKey : s.publicKey, message, signature });
  }
  return out;
}

describe('SignatureThread', () => {
  it('answers as core verifyEs256 does, for checks asked together and one by one', async () => {
    const logged: Logged[] = [];
    const t = SignatureThread.create(4, (level, msg) => logged.push({ level, msg }));
    try {
      const jobs = await cases(300);
      const expected = await Promise.all(jobs.map((j) => verifyEs256(j.publicKey, j.message, j.signature)));
      expect(expected.filter((x) => x).length).toBeGreaterThan(100);
      expect(expected.filter((x) => !x).length).toBeGreaterThan(100);
      expect(await Promise.all(jobs.map((j) => t.verify(j.publicKey, j.message, j.signature)))).toEqual(expected);
      for (const [i, j] of jobs.slice(0, 20).entries()) expect(await t.verify(j.publicKey, j.message, j.signature)).toBe(expected[i]);
      // a signature that is not 64 bytes: false, as core says (checked here, not on the thread)
      expect(await t.verify(jobs[0]!.publicKey, jobs[0]!.message, jobs[0]!.signature.subarray(0, 63))).toBe(false);
      expect(logged).toEqual([]);
    } finally {
      await t.close();
    }
  });

  it('answers checks of large messages asked together (sent over in several buffers of at most 1 MiB)', async () => {
    const t = SignatureThread.create(8, () => {});
    try {
      const signer = testSigner();
      const jobs = await Promise.all(
        Array.from({ length: 40 }, async (_, i) => {
          const message = new Uint8Array(60_000).fill(i);
          const signature = await signer.sign(message);
          if (i % 4 === 3) message[59_999] = 0xff;
          return { publicKey: signer.publicKey, message, signature };
        }),
      );
      const answers = await Promise.all(jobs.map((j) => t.verify(j.publicKey, j.message, j.signature)));
      expect(answers).toEqual(jobs.map((_, i) => i % 4 !== 3));
    } finally {
      await t.close();
    }
  });

  it('checks on the calling thread once closed, with the same answers', async () => {
    const t = SignatureThread.create(2, () => {});
    const jobs = await cases(30);
    const expected = await Promise.all(jobs.map((j) => verifyEs256(j.publicKey, j.message, j.signature)));
    const during = jobs.map((j) => t.verify(j.publicKey, j.message, j.signature));
    await t.close(); // while those are on the thread: they are checked here instead
    expect(await Promise.all(during)).toEqual(expected);
    expect(await Promise.all(jobs.map((j) => t.verify(j.publicKey, j.message, j.signature)))).toEqual(expected);
  });

  it('checks on the calling thread when the thread fails, and says so once', async () => {
    for (const code of ['throw new Error("the thread broke")', 'process.exit(3)']) {
      const logged: Logged[] = [];
      const dir = await mkdtemp(join(tmpdir(), 'stele-sigthread-'));
      try {
        const script = join(dir, 'broken.mjs');
        await writeFile(script, `${code};\n`);
        const t = SignatureThread.create(2, (level, msg) => logged.push({ level, msg }), pathToFileURL(script));
        const jobs = await cases(20);
        const expected = await Promise.all(jobs.map((j) => verifyEs256(j.publicKey, j.message, j.signature)));
        expect(await Promise.all(jobs.map((j) => t.verify(j.publicKey, j.message, j.signature)))).toEqual(expected);
        expect(await Promise.all(jobs.map((j) => t.verify(j.publicKey, j.message, j.signature)))).toEqual(expected);
        expect(logged).toEqual([{ level: 'error', msg: 'the signature thread failed: checking signatures on the main thread' }]);
        await t.close();
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
  });
});
