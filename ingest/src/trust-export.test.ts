import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '@stele/core';
import { completePolicyDraft, loadTrustPolicy, signTrustPolicy } from '@stele/core/trust';
import { testSigner } from '@stele/core/testing';
import { createSoftwareKey } from '@stele/device';
import { runIngest } from './cli.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stele-trust-export-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runIngest(argv, { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) } });
  return { code, out, err };
}

describe('stele ingest trust export', () => {
  it('drafts the ingest key, issuer, chain and contract; the authority signs it; a verifier loads it', async () => {
    await mkdir(join(dir, 'keys'), { recursive: true });
    const key = await createSoftwareKey(join(dir, 'keys', 'ingest.pem'));
    await mkdir(join(dir, 'chain'), { recursive: true });
    const contract = '0x5fbdb2315678afecb367f032d93f642f64180aa3';
    await writeFile(join(dir, 'chain', 'anchor-contract.json'), JSON.stringify({ chainId: 31337, contract, deployTxHash: `0x${'00'.repeat(32)}`, owner: `0x${'11'.repeat(20)}` }));
    const out = join(dir, 'draft.json');
    const r = await run('trust', 'export', '--data', dir, '--issuer', 'city-ingest', '--rpc', 'http://127.0.0.1:8545', '--operator', 'city', '--out', out);
    expect(r.code).toBe(0);
    const draft = JSON.parse(await readFile(out, 'utf8')) as Record<string, unknown>;
    expect(draft).not.toHaveProperty('authority'); // unsigned: a request, never trust
    const authority = testSigner('authority');
    const json = completePolicyDraft(draft, { authorityName: 'EPB', authorityPublicKey: authority.publicKey, version: 1, issuedAt: '2026-01-01T00:00:00Z', expiresAt: '2099-01-01T00:00:00Z' });
    const policy = await loadTrustPolicy(await signTrustPolicy(json, authority), authority.keyId);
    expect(toHex(policy.ingestKeys[0]!.kid)).toBe(toHex(key.keyId));
    expect(policy.ingestKeys[0]!.issuer).toBe('city-ingest');
    expect(policy.anchors[0]).toMatchObject({ chainId: 31337, contract, endpoints: [{ operator: 'city', url: 'http://127.0.0.1:8545' }], quorum: 1 });
  });

  it('exits 1 when no contract was recorded yet, 2 on bad usage', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'stele-trust-export-empty-'));
    try {
      await mkdir(join(empty, 'keys'), { recursive: true });
      await createSoftwareKey(join(empty, 'keys', 'ingest.pem'));
      expect((await run('trust', 'export', '--data', empty)).code).toBe(1);
      expect((await run('trust', 'export', '--data', empty, '--rpc', 'http://x')).code).toBe(2);
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });
});
