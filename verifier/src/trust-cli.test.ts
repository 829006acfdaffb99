import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { draftTrustPolicy, loadTrustPolicy } from '@stele/core/trust';
import { testSigner, TEST_CONTRACT } from '@stele/core/testing';
import { runTrust } from './trust-cli.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stele-trust-cli-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runTrust(argv, { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) } });
  return { code, out, err };
}

describe('stele trust', () => {
  it('keygen, fingerprint, sign a draft, show it against the pin', async () => {
    const key = join(dir, 'authority.pem');
    const made = await run('keygen', '--out', key);
    expect(made.code).toBe(0);
    expect(((await stat(key)).mode & 0o777).toString(8)).toBe('600');
    expect((await run('keygen', '--out', key)).code).toBe(2); // never overwrites an authority key
    const fp = (await run('fingerprint', '--key', key)).out.trim();
    expect(fp).toBe(made.out.trim());
    expect(fp.replace(/ /g, '')).toMatch(/^[0-9a-f]{64}$/);

    const draft = join(dir, 'draft.json');
    const ingest = testSigner('ingest');
    await writeFile(draft, JSON.stringify(draftTrustPolicy({ ingest: { publicKey: ingest.publicKey, issuer: 'i', validFrom: '2026-01-01T00:00:00Z' }, anchors: [{ chainId: 31337, contract: TEST_CONTRACT, startBlock: 0 }] })));
    const out = join(dir, 'policy.cose');
    const signed = await run('sign', draft, '--key', key, '--out', out, '--name', 'Test EPB', '--version', '4', '--expires-days', '30');
    expect(signed.code).toBe(0);
    const policy = await loadTrustPolicy(new Uint8Array(await readFile(out)), fp);
    expect(policy).toMatchObject({ version: 4, authority: { name: 'Test EPB' } });
    expect(policy.expiresAt - policy.issuedAt).toBe(30 * 86_400_000);

    const shown = await run('show', out, '--authority', fp);
    expect(shown.code).toBe(0);
    expect(shown.out).toContain('"format": "stele-trust-policy/1"');
    const wrong = await run('show', out, '--authority', 'ab'.repeat(32));
    expect(wrong.code).toBe(1);
    expect(wrong.err).toContain('POLICY_AUTHORITY_ERROR');
  });
});
