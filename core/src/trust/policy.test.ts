import { describe, expect, it } from 'vitest';
import { toBase64Url, toHex, utf8 } from '../bytes.ts';
import { ALG_ES256, HEADER_ALG, HEADER_CONTENT_TYPE, HEADER_KID } from '../cose/labels.ts';
import { encodeDeterministic } from '../cose/plain-bytes.ts';
import { encodeSign1, sigStructure1 } from '../cose/sign1.ts';
import { buildTestBundle, buildTestPolicy, testSigner, TEST_CONTRACT } from '../verify/test-bundle.ts';
import type { Verdict } from '../verify/verdict.ts';
import { verifyBundle } from '../verify/verify.ts';
import { loadTrustPolicy, MAX_POLICY_BYTES, parseFingerprint, signTrustPolicy, TRUST_POLICY_CONTENT_TYPE, TrustPolicyError } from './policy.ts';
import { parseStrictJson } from './strict-json.ts';

const base = await buildTestBundle();
const authority = testSigner('authority');
const pin = toHex(authority.keyId);
const codes = (v: Verdict): string[] => [...new Set(v.checks.flatMap((c) => c.failures.map((f) => f.code)))].sort();
const trustCheck = (v: Verdict) => v.checks.find((c) => c.id === 'trust')!;

/** Signs arbitrary bytes as a policy (no payload check), as a careless or hostile authority could. */
async function signRaw(json: string, signer = authority): Promise<Uint8Array> {
  const protectedBytes = encodeDeterministic(new Map<number, unknown>([[HEADER_ALG, ALG_ES256], [HEADER_CONTENT_TYPE, TRUST_POLICY_CONTENT_TYPE], [HEADER_KID, signer.keyId]]));
  const payload = utf8(json);
  return encodeSign1({ protectedBytes, unprotectedHeader: new Map(), payload, signature: await signer.sign(sigStructure1(protectedBytes, payload)) });
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return err instanceof TrustPolicyError ? err.code : `not a TrustPolicyError: ${String(err)}`;
  }
}

describe('loading a signed policy', () => {
  it('accepts the policy of the pinned authority, with the key id recomputed', async () => {
    const { bytes } = await buildTestPolicy(base.ingest, 'stele-ingest-test');
    const policy = await loadTrustPolicy(bytes, pin);
    expect(policy.version).toBe(1);
    expect(policy.ingestKeys).toHaveLength(1);
    expect(toHex(policy.ingestKeys[0]!.kid)).toBe(toHex(base.ingest.keyId));
    expect(policy.anchors[0]).toMatchObject({ kind: 'evm', chainId: 31337, contract: TEST_CONTRACT, startBlock: 0, quorum: 1 });
    expect(policy.authorityFingerprint).toBe(pin);
    expect(policy.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('accepts the fingerprint grouped and in capitals', async () => {
    const { bytes } = await buildTestPolicy(base.ingest, 'x');
    const grouped = pin.toUpperCase().replace(/(.{4})(?=.)/g, '$1 ');
    await expect(loadTrustPolicy(bytes, grouped)).resolves.toBeDefined();
    expect(() => parseFingerprint('abc')).toThrow(TrustPolicyError);
  });

  it('refuses a policy signed by another authority (POLICY_AUTHORITY_ERROR)', async () => {
    const { bytes } = await buildTestPolicy(base.ingest, 'x', { authority: testSigner('another authority') });
    expect(await codeOf(loadTrustPolicy(bytes, pin))).toBe('POLICY_AUTHORITY_ERROR');
  });

  it('refuses a changed byte (POLICY_SIGNATURE_ERROR)', async () => {
    const { bytes } = await buildTestPolicy(base.ingest, 'x');
    const at = Buffer.from(bytes).indexOf('"version": 1') + 11;
    const changed = bytes.slice();
    changed[at] = 0x37; // "version": 7
    expect(await codeOf(loadTrustPolicy(changed, pin))).toBe('POLICY_SIGNATURE_ERROR');
  });

  it('refuses duplicate member names, even signed (POLICY_FORMAT_ERROR)', async () => {
    const { bytes } = await buildTestPolicy(base.ingest, 'x');
    const json = new TextDecoder().decode(bytes.subarray(bytes.indexOf(0x7b)));
    const payload = json.slice(0, json.lastIndexOf('}') + 1);
    const dup = payload.replace('"version": 1,', '"version": 1,\n  "version": 9,');
    expect(await codeOf(loadTrustPolicy(await signRaw(dup), pin))).toBe('POLICY_FORMAT_ERROR');
    expect(() => parseStrictJson('{"a":1,"a":2}')).toThrow(/duplicate member name/);
  });

  it('refuses an oversized file before reading it (POLICY_LIMIT_ERROR)', async () => {
    const big = new Uint8Array(MAX_POLICY_BYTES + 1024);
    expect(await codeOf(loadTrustPolicy(big, pin))).toBe('POLICY_LIMIT_ERROR');
    const long = JSON.stringify({ pad: 'x'.repeat(MAX_POLICY_BYTES) });
    expect(await codeOf(loadTrustPolicy(await signRaw(long), pin))).toBe('POLICY_LIMIT_ERROR');
  });

  it('refuses too many entries (POLICY_LIMIT_ERROR), unknown top-level members and floats (POLICY_FORMAT_ERROR)', async () => {
    const many = await codeOf(buildTestPolicy(base.ingest, 'x', { edit: (p) => (p.anchors = Array.from({ length: 300 }, () => ({ kind: 'evm', chainId: 1, contract: TEST_CONTRACT, startBlock: 0 }))) }));
    expect(many).toBe('POLICY_LIMIT_ERROR');
    expect(await codeOf(buildTestPolicy(base.ingest, 'x', { edit: (p) => (p.witnesses = []) }))).toBe('POLICY_FORMAT_ERROR');
    expect(await codeOf(buildTestPolicy(base.ingest, 'x', { edit: (p) => (p.version = 1.5) }))).toBe('POLICY_FORMAT_ERROR');
  });

  it('refuses a rolled-back version (POLICY_ROLLBACK_ERROR)', async () => {
    const { bytes } = await buildTestPolicy(base.ingest, 'x', { version: 3 });
    expect(await codeOf(loadTrustPolicy(bytes, pin, { minVersion: 4 }))).toBe('POLICY_ROLLBACK_ERROR');
    await expect(loadTrustPolicy(bytes, pin, { minVersion: 3 })).resolves.toBeDefined();
  });

  it('disables only the entry of an unknown kind or algorithm, with its reason', async () => {
    const { policy } = await buildTestPolicy(base.ingest, 'x', {
      edit: (p) => {
        (p.anchors as unknown[]).push({ kind: 'chainmaker', chainId: 'chain1', contract: 'x' });
        (p.ingestKeys as Record<string, unknown>[]).push({ ...(p.ingestKeys as Record<string, unknown>[])[0]!, alg: 'SM2' });
      },
    });
    expect(policy.anchors).toHaveLength(1);
    expect(policy.ingestKeys).toHaveLength(1);
    expect(policy.skipped.map((s) => s.path).sort()).toEqual(['$.anchors[1]', '$.ingestKeys[1]']);
  });

  it('refuses a key whose kid is not SHA-256 of its key, and one key in two roles', async () => {
    expect(await codeOf(buildTestPolicy(base.ingest, 'x', { edit: (p) => ((p.ingestKeys as Record<string, unknown>[])[0]!.kid = toBase64Url(new Uint8Array(32))) }))).toBe('POLICY_FORMAT_ERROR');
    const asInstaller = await codeOf(
      buildTestPolicy(base.ingest, 'x', {
        edit: (p) => (p.installerKeys = [{ ...(p.ingestKeys as Record<string, unknown>[])[0]!, issuer: undefined, name: 'installer' }]),
      }),
    );
    expect(asInstaller).toBe('POLICY_FORMAT_ERROR');
  });

  it('signTrustPolicy refuses JSON naming another authority key', async () => {
    const { bytes } = await buildTestPolicy(base.ingest, 'x');
    const json = new TextDecoder().decode(bytes.subarray(bytes.indexOf(0x7b)));
    expect(await codeOf(signTrustPolicy(utf8(json.slice(0, json.lastIndexOf('}') + 2)), testSigner('someone else')))).toBe('POLICY_AUTHORITY_ERROR');
  });
});

describe('verifying a bundle under a policy', () => {
  const online = { anchorReader: base.anchorReader };

  it('without a policy: not fully checked, naming the ingest key fingerprint, chain and contract in full', async () => {
    const v = await verifyBundle(base.bundle, online);
    expect(v.state).toBe('partial');
    expect(trustCheck(v)).toMatchObject({ status: 'unchecked', code: 'TRUST_POLICY_MISSING' });
    for (const t of [v.headline.en, v.headline.zh]) {
      expect(t).toContain(toHex(base.ingest.keyId));
      expect(t).toContain('31337');
      expect(t).toContain(TEST_CONTRACT);
    }
    expect(v.summary.trust).toEqual({
      policy: null,
      fromBundle: { ingestKeyFingerprint: toHex(base.ingest.keyId), issuer: 'stele-ingest-test', chainIds: [31337], contracts: [TEST_CONTRACT] },
    });
  });

  it('with the policy: verified, naming the policy entry behind the ingest key', async () => {
    const v = await verifyBundle(base.bundle, { ...online, trust: base.trust });
    expect(v.state).toBe('verified');
    expect(v.summary.trust?.policy).toMatchObject({ version: 1, ingestKey: '$.ingestKeys[0] (active)', anchorTargets: ['$.anchors[0]'] });
    expect(trustCheck(v).sentence.en).toContain('$.ingestKeys[0] (active)');
  });

  it('a rogue ingest (its own key, same issuer, chain and contract) fails with UNTRUSTED_INGEST_KEY_ERROR', async () => {
    const rogue = await buildTestBundle({ ingestSigner: testSigner('rogue ingest') });
    const v = await verifyBundle(rogue.bundle, { anchorReader: rogue.anchorReader, trust: base.trust });
    expect(v.state).toBe('failed');
    expect(codes(v)).toEqual(['UNTRUSTED_INGEST_KEY_ERROR']);
    expect(v.headline.en).toContain('not in the trust policy');
  });

  it('the right key under another issuer name fails (key and issuer are one entry)', async () => {
    const { policy } = await buildTestPolicy(base.ingest, 'another-issuer');
    expect(codes(await verifyBundle(base.bundle, { ...online, trust: policy }))).toEqual(['UNTRUSTED_INGEST_KEY_ERROR']);
  });

  it('an anchor on a chain or contract the policy does not list fails with UNTRUSTED_ANCHOR_ERROR', async () => {
    const { policy } = await buildTestPolicy(base.ingest, 'stele-ingest-test', { anchors: [{ kind: 'evm', chainId: 31337, contract: `0x${'11'.repeat(20)}`, startBlock: 0 }] });
    const v = await verifyBundle(base.bundle, { ...online, trust: policy });
    expect(codes(v)).toEqual(['UNTRUSTED_ANCHOR_ERROR']);
    const late = await buildTestPolicy(base.ingest, 'stele-ingest-test', { anchors: [{ kind: 'evm', chainId: 31337, contract: TEST_CONTRACT, startBlock: 12 }] });
    expect(codes(await verifyBundle(base.bundle, { ...online, trust: late.policy }))).toEqual(['UNTRUSTED_ANCHOR_ERROR']); // batch 1 is in block 11
  });

  it('a key outside its window at the anchor block time fails with INGEST_KEY_WINDOW_ERROR; offline that is unchecked', async () => {
    const { policy } = await buildTestPolicy(base.ingest, 'stele-ingest-test', {
      ingestKeys: [{ signer: base.ingest, validFrom: '2026-01-01T00:00:00Z', validUntil: '2026-06-01T00:00:00Z', state: 'retired' }],
    });
    const v = await verifyBundle(base.bundle, { ...online, trust: policy });
    expect(codes(v)).toEqual(['INGEST_KEY_WINDOW_ERROR']);
    const offline = await verifyBundle(base.bundle, { trust: policy });
    expect(trustCheck(offline)).toMatchObject({ status: 'unchecked', code: 'KEY_WINDOW_UNCHECKED' });
  });

  it('a compromised key fails what was anchored after its cut-off, and keeps what came before', async () => {
    const after = await buildTestPolicy(base.ingest, 'stele-ingest-test', { ingestKeys: [{ signer: base.ingest, state: 'compromised', compromisedAt: '2026-11-20T06:05:00Z' }] });
    expect(codes(await verifyBundle(base.bundle, { ...online, trust: after.policy }))).toEqual(['INGEST_KEY_WINDOW_ERROR']);
    const before = await buildTestPolicy(base.ingest, 'stele-ingest-test', { ingestKeys: [{ signer: base.ingest, state: 'compromised', compromisedAt: '2026-12-01T00:00:00Z' }] });
    expect((await verifyBundle(base.bundle, { ...online, trust: before.policy })).state).toBe('verified');
  });

  it('a rotation of the ingest key needs no format change: old and new keys listed, windows overlapping', async () => {
    const next = testSigner('ingest 2');
    const { policy } = await buildTestPolicy(base.ingest, 'stele-ingest-test', {
      ingestKeys: [
        { signer: base.ingest, validFrom: '2026-01-01T00:00:00Z', validUntil: '2026-12-01T00:00:00Z', state: 'retired' },
        { signer: next, validFrom: '2026-11-25T00:00:00Z' },
      ],
    });
    expect((await verifyBundle(base.bundle, { ...online, trust: policy })).state).toBe('verified');
    const newer = await buildTestBundle({ ingestSigner: next, startTimeMs: Date.UTC(2026, 11, 2) });
    expect((await verifyBundle(newer.bundle, { anchorReader: newer.anchorReader, trust: policy })).state).toBe('verified');
  });

  it('an expired policy lowers the verdict with TRUST_POLICY_EXPIRED', async () => {
    const { policy } = await buildTestPolicy(base.ingest, 'stele-ingest-test', { expiresAt: '2026-11-01T00:00:00Z', issuedAt: '2026-10-01T00:00:00Z' });
    const v = await verifyBundle(base.bundle, { ...online, trust: policy, now: Date.UTC(2026, 11, 2) });
    expect(v.state).toBe('partial');
    expect(trustCheck(v)).toMatchObject({ status: 'unchecked', code: 'TRUST_POLICY_EXPIRED' });
    expect(v.headline.en).toMatch(/expired/);
  });

  it('asks the endpoints of the policy, counting operators against its quorum', async () => {
    const asked: (string | undefined)[] = [];
    const reader = async (ref: Parameters<typeof base.anchorReader>[0], id: number, url: string | undefined) => {
      asked.push(url);
      if (url === 'http://down') throw Object.assign(new Error('down'), {});
      return base.anchorReader(ref, id, url);
    };
    const target = (quorum: number, endpoints: { operator: string; url: string }[]) => [{ kind: 'evm', chainId: 31337, contract: TEST_CONTRACT, startBlock: 0, endpoints, quorum }];
    const two = await buildTestPolicy(base.ingest, 'stele-ingest-test', { anchors: target(2, [{ operator: 'a', url: 'http://a1' }, { operator: 'a', url: 'http://a2' }, { operator: 'b', url: 'http://b' }]) });
    expect((await verifyBundle(base.bundle, { anchorReader: reader, trust: two.policy })).state).toBe('verified');
    expect(asked).not.toContain('http://127.0.0.1:8545'); // the bundle's own rpc is never asked unasked
    const oneOperator = await buildTestPolicy(base.ingest, 'stele-ingest-test', { anchors: target(2, [{ operator: 'a', url: 'http://a1' }, { operator: 'a', url: 'http://a2' }, { operator: 'b', url: 'http://down' }]) });
    const v = await verifyBundle(base.bundle, { anchorReader: reader, trust: oneOperator.policy });
    expect(v.state).toBe('partial');
    expect(v.checks.find((c) => c.id === 'anchor')!.sentence.en).toMatch(/1 operator\(s\), the policy asks for 2/);
  });

  it('the bundle rpc is asked only when asked for (useBundleRpc)', async () => {
    const asked: (string | undefined)[] = [];
    const reader = async (ref: Parameters<typeof base.anchorReader>[0], id: number, url: string | undefined) => {
      asked.push(url);
      return base.anchorReader(ref, id, url);
    };
    await verifyBundle(base.bundle, { anchorReader: reader, trust: base.trust });
    expect(asked.every((u) => u === undefined)).toBe(true);
    await verifyBundle(base.bundle, { anchorReader: reader, trust: base.trust, useBundleRpc: true });
    expect(asked).toContain('http://127.0.0.1:8545');
  });
});
