import { describe, expect, it } from 'vitest';
import { toHex, utf8, sha256 } from '@stele/core';
import { comparePolicy, loadStoredPolicy, MAX_POLICY_BYTES, policyVerifyOptions, readPolicy, storePolicy } from './policy.ts';

const KID = 'ab'.repeat(32);

describe('readPolicy', () => {
  it('fingerprints the exact bytes and reads version, dates, keys, anchors and endpoints', () => {
    const bytes = utf8(
      JSON.stringify({
        policy: {
          version: 7,
          issuedAt: '2026-11-01T00:00:00Z',
          expiresAt: '2027-11-01T00:00:00Z',
          ingestKeys: [{ kid: `0x${KID}` }, { kid: Buffer.from(KID, 'hex').toString('base64url') }],
          anchors: [{ chainId: 31337, contract: '0xABCDEF0000000000000000000000000000000001' }],
          rpcUrls: ['https://rpc.example', 'ftp://nope'],
        },
        signature: 'x',
      }),
    );
    const p = readPolicy(bytes);
    expect(p.sha256).toBe(toHex(sha256(bytes)));
    expect(p.version).toBe('7');
    expect(p.expiresAt).toBe('2027-11-01T00:00:00Z');
    expect(p.ingestKeyIds).toEqual([KID, KID]);
    expect(p.anchors).toEqual([{ chainId: 31337, contract: '0xabcdef0000000000000000000000000000000001' }]);
    expect(p.rpcUrls).toEqual(['https://rpc.example']);
    expect(p.problem).toBeUndefined();
  });

  it('reports a problem, never throws, for bad or oversized input', () => {
    expect(readPolicy(utf8('{nope')).problem).toMatch(/JSON/);
    expect(readPolicy(utf8('[1]')).problem).toBe('not a JSON object');
    expect(readPolicy(new Uint8Array(MAX_POLICY_BYTES + 1)).problem).toMatch(/larger/);
  });
});

describe('comparePolicy', () => {
  const p = readPolicy(utf8(JSON.stringify({ ingestKeys: [{ kid: KID }], anchors: [{ chainId: 1, contract: '0x' + '11'.repeat(20) }] })));
  it('matches a listed key and anchor, case-insensitively', () => {
    expect(comparePolicy(p, { ingestKidHex: KID.toUpperCase(), anchors: [{ chainId: 1, contract: '0x' + '11'.repeat(20) }] })).toEqual({ ingestKey: 'match', anchors: 'match' });
  });
  it('flags a key or anchor the policy does not list', () => {
    expect(comparePolicy(p, { ingestKidHex: 'cd'.repeat(32), anchors: [{ chainId: 2, contract: '0x' + '11'.repeat(20) }] })).toEqual({ ingestKey: 'mismatch', anchors: 'mismatch' });
  });
});

describe('the remembered policy', () => {
  it('round-trips through storage and is forgotten on request', () => {
    const store = new Map<string, string>();
    const storage = { getItem: (k: string) => store.get(k) ?? null, setItem: (k: string, v: string) => void store.set(k, v), removeItem: (k: string) => void store.delete(k) };
    const bytes = utf8('{"version":1}');
    storePolicy(storage, bytes);
    expect(loadStoredPolicy(storage)).toEqual(bytes);
    storePolicy(storage, undefined);
    expect(loadStoredPolicy(storage)).toBeUndefined();
  });

  it('gives core no policy option without a policy or a pinned authority, and rejects an unsigned file', async () => {
    expect(await policyVerifyOptions(undefined, 'ab'.repeat(32))).toEqual({});
    expect(await policyVerifyOptions(utf8('{}'), undefined)).toEqual({});
    await expect(policyVerifyOptions(utf8('{}'), 'ab'.repeat(32))).rejects.toMatchObject({ code: 'POLICY_FORMAT_ERROR' });
  });
});
