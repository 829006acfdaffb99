import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { utf8, verifyEs256 } from '@stele/core';
import { loadOrCreateSoftwareSigner } from '@stele/device';
import { openSigner } from './signer.ts';

describe('openSigner: the sim-only latency hook (STELE_SIM_SIGN_LATENCY_FILE)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stele-signer-latency-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('waits the milliseconds in the file before each signature, signs with the same key, and not at all without the variable', async () => {
    const path = join(dir, 'gw.pem');
    const key = await loadOrCreateSoftwareSigner(path);
    const latency = join(dir, 'latency');
    await writeFile(latency, '300\n');
    const slow = await openSigner({ backend: 'software', path }, { env: { STELE_SIM_SIGN_LATENCY_FILE: latency } });
    expect(slow.keyId).toEqual(key.keyId);
    let t = performance.now();
    const sig = await slow.sign(utf8('reading'));
    expect(performance.now() - t).toBeGreaterThanOrEqual(290);
    expect(await verifyEs256(key.publicKey, utf8('reading'), sig)).toBe(true);
    const plain = await openSigner({ backend: 'software', path }, { env: {} });
    t = performance.now();
    await plain.sign(utf8('reading'));
    expect(performance.now() - t).toBeLessThan(250);
  });
});
