import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeBundle, toHex } from '@stele/core';
import { answerJsonRpc, buildTestBundle, buildTestPolicy, cloneBundle, tamper, testSigner } from '@stele/core/testing';
import type { Verdict } from '@stele/core/verify';
import { runVerify } from './cli.ts';
import { formatVerdict } from './format.ts';

const built = await buildTestBundle({ lifecycle: true });
const policy = await buildTestPolicy(built.ingest, 'stele-ingest-test');
/** What the officer passes: the authority's signed policy and the fingerprint pinned by another channel. */
let trustArgs: string[];
let dir: string;
let server: Server;
let rpcUrl: string;
const files: Record<string, string> = {};

/** A JSON-RPC endpoint on 127.0.0.1 answering like a chain holding the bundle's genuine anchors. */
function startChain(): Promise<Server> {
  const s = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(answerJsonRpc(built, JSON.parse(body))));
    });
  });
  return new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve(s)));
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stele-verify-cli-'));
  server = await startChain();
  rpcUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const tampered = cloneBundle(built.bundle);
  tampered.entries[2]!.statement = tamper.signatureByte(tampered.entries[2]!.statement);
  const withRpc = cloneBundle(built.bundle);
  for (const b of withRpc.batches) b.anchor!.rpc = rpcUrl;
  const rogue = await buildTestBundle({ lifecycle: true, ingestSigner: testSigner('rogue ingest') });
  const edited = cloneBundle(built.bundle);
  edited.device.keyBackend = 'tpm';
  const huge = cloneBundle(built.bundle);
  huge.window = { firstSeq: 1, lastSeq: Number.MAX_SAFE_INTEGER };
  const contents: Record<string, Uint8Array> = {
    valid: built.bytes,
    validV2: encodeBundle(built.bundle, { form: 2 }),
    rogue: rogue.bytes,
    edited: encodeBundle(edited),
    huge: encodeBundle(huge),
    policy: policy.bytes,
    otherPolicy: (await buildTestPolicy(built.ingest, 'stele-ingest-test', { authority: testSigner('not the authority') })).bytes,
    validRpc: encodeBundle(withRpc),
    tampered: encodeBundle(tampered),
    truncated: built.bytes.subarray(0, 300),
  };
  for (const [name, bytes] of Object.entries(contents)) {
    files[name] = join(dir, `${name}.json`);
    await writeFile(files[name]!, bytes);
  }
  files.pin = join(dir, 'authority.fingerprint');
  await writeFile(files.pin, `# the authority's fingerprint, read out over the phone\n${policy.fingerprint}\n`);
  trustArgs = ['--trust', files.policy!, '--authority', policy.fingerprint];
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runVerify(argv, { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) } });
  return { code, out, err };
}

describe('stele verify', () => {
  it('exits 0 for a valid bundle with the authority\'s policy, anchored on a chain that answers (--rpc)', async () => {
    const r = await run(files.valid!, ...trustArgs, '--rpc', rpcUrl, '--lang', 'en');
    expect(r.code).toBe(0);
    expect(r.out).toContain('Verdict: VERIFIED');
    expect(r.out).toContain('[pass] 7. On-chain anchor');
    expect(r.out).toContain('[pass] 11. Trust policy');
    expect(r.out).toContain('declared software, not attested');
  });

  it('reads the compact form (stele-evidence/2, FORMAT.md §7.1) with the same verdict, exit 0', async () => {
    const v1 = await run(files.valid!, ...trustArgs, '--rpc', rpcUrl, '--json');
    const v2 = await run(files.validV2!, ...trustArgs, '--rpc', rpcUrl, '--json');
    expect([v1.code, v2.code]).toEqual([0, 0]);
    const strip = (out: string) => {
      const v = JSON.parse(out) as Verdict & { bundleSha256?: string };
      return JSON.stringify(v.checks);
    };
    expect(strip(v2.out)).toEqual(strip(v1.out));
  });

  it('takes the pinned fingerprint from a file (--authority-file)', async () => {
    expect((await run(files.valid!, '--trust', files.policy!, '--authority-file', files.pin!, '--rpc', rpcUrl)).code).toBe(0);
  });

  it('without a policy exits 3, naming in full what was taken on the bundle\'s word', async () => {
    const r = await run(files.valid!, '--rpc', rpcUrl, '--lang', 'en');
    expect(r.code).toBe(3);
    expect(r.out).toContain('Verdict: NOT FULLY CHECKED');
    expect(r.out).toContain(toHex(built.ingest.keyId));
    expect(r.out).toContain('chain 31337 contract 0x5fbdb2315678afecb367f032d93f642f64180aa3');
    const zh = await run(files.valid!, '--rpc', rpcUrl, '--lang', 'zh');
    expect(zh.out).toContain('未提供信任策略');
  });

  it('fails a rogue ingest\'s bundle (its own key, same issuer, chain and contract) with UNTRUSTED_INGEST_KEY_ERROR', async () => {
    const r = await run(files.rogue!, ...trustArgs, '--rpc', rpcUrl, '--json');
    expect(r.code).toBe(1);
    const v = JSON.parse(r.out) as Verdict;
    expect(v.checks.flatMap((c) => c.failures.map((f) => f.code))).toContain('UNTRUSTED_INGEST_KEY_ERROR');
  });

  it('fails an edited device.keyBackend with DEVICE_RECORD_MISMATCH_ERROR', async () => {
    const r = await run(files.edited!, ...trustArgs, '--offline', '--json');
    expect(r.code).toBe(1);
    const v = JSON.parse(r.out) as Verdict;
    expect(v.checks.flatMap((c) => c.failures.map((f) => f.code))).toEqual(['DEVICE_RECORD_MISMATCH_ERROR']);
  });

  it('rejects a bundle declaring lastSeq 2^53 - 1 in under 100 ms', async () => {
    await run(files.huge!, ...trustArgs, '--offline', '--json'); // warm up (module loading, WebCrypto)
    const t0 = performance.now();
    const r = await run(files.huge!, ...trustArgs, '--offline', '--json');
    const ms = performance.now() - t0;
    expect(r.code).toBe(1);
    expect((JSON.parse(r.out) as Verdict).checks[3]!.failures.map((f) => f.code)).toEqual(['SEQUENCE_GAP_ERROR']);
    expect(ms).toBeLessThan(100);
  });

  it('refuses a policy not signed by the pinned authority, and a policy without a pin (exit 2)', async () => {
    const r = await run(files.valid!, '--trust', files.otherPolicy!, '--authority', policy.fingerprint);
    expect(r.code).toBe(2);
    expect(r.err).toContain('POLICY_AUTHORITY_ERROR');
    expect((await run(files.valid!, '--trust', files.policy!)).code).toBe(2);
  });

  it('refuses an older policy version once a newer one was accepted (--policy-state)', async () => {
    const state = join(dir, 'accepted-policies.json');
    const v3 = join(dir, 'policy-v3.cose');
    await writeFile(v3, (await buildTestPolicy(built.ingest, 'stele-ingest-test', { version: 3 })).bytes);
    expect((await run(files.valid!, '--trust', v3, '--authority', policy.fingerprint, '--policy-state', state, '--rpc', rpcUrl)).code).toBe(0);
    const older = await run(files.valid!, ...trustArgs, '--policy-state', state, '--rpc', rpcUrl); // version 1
    expect(older.code).toBe(2);
    expect(older.err).toContain('POLICY_ROLLBACK_ERROR');
  });

  it('asks the rpc recorded in the bundle only with --use-bundle-rpc', async () => {
    const without = await run(files.validRpc!, ...trustArgs, '--json');
    expect(without.code).toBe(3); // the policy suggests no endpoint and the bundle's is not taken on its word
    const r = await run(files.validRpc!, ...trustArgs, '--use-bundle-rpc', '--json');
    expect(r.code).toBe(0);
    const v = JSON.parse(r.out) as Verdict;
    expect(v.state).toBe('verified');
    expect(v.summary.anchors[0]!.confirmedBy).toEqual([rpcUrl]);
  });

  it('--frame names the reading that came from a raw frame, and fails when none did or it did not verify', async () => {
    const frame = join(dir, 'frame-3.bin');
    await writeFile(frame, new TextEncoder().encode('frame 3 0')); // test-bundle: reading seq 3 lists SHA-256 of these bytes
    const hit = await run(files.valid!, ...trustArgs, '--rpc', rpcUrl, '--frame', frame, '--json');
    expect(hit.code).toBe(0);
    expect((JSON.parse(hit.out) as { frame: unknown }).frame).toMatchObject({ matches: [{ seq: 3, verified: true }] });
    const other = join(dir, 'frame-x.bin');
    await writeFile(other, new TextEncoder().encode('a frame this gateway never received'));
    const miss = await run(files.valid!, '--rpc', rpcUrl, '--frame', other, '--lang', 'en');
    expect(miss.code).toBe(1);
    expect(miss.out).toContain('no reading in this bundle came from that frame');
    const tamperedHit = await run(files.tampered!, '--rpc', rpcUrl, '--frame', join(dir, 'frame-3.bin'), '--json');
    expect(tamperedHit.code).toBe(1);
    expect((JSON.parse(tamperedHit.out) as { frame: unknown }).frame).toMatchObject({ matches: [{ seq: 3, verified: false }] });
  });

  it('exits 1 for a tampered bundle and names the code', async () => {
    const r = await run(files.tampered!, '--offline', '--lang', 'en');
    expect(r.code).toBe(1);
    expect(r.out).toContain('SIGNATURE_ERROR (seq 3)');
  });

  it('exits 1 for a truncated file (BUNDLE_FORMAT_ERROR)', async () => {
    const r = await run(files.truncated!, '--json');
    expect(r.code).toBe(1);
    const v = JSON.parse(r.out) as Verdict;
    expect(v.checks[0]!.failures[0]!.code).toBe('BUNDLE_FORMAT_ERROR');
  });

  it('exits 3 offline and when the chain cannot be reached', async () => {
    expect((await run(files.valid!, '--offline')).code).toBe(3);
    const r = await run(files.valid!, '--rpc', 'http://127.0.0.1:1', '--lang', 'zh');
    expect(r.code).toBe(3);
    expect(r.out).toContain('无法连接区块链节点 http://127.0.0.1:1');
  });

  it('exits 2 for usage and I/O errors', async () => {
    expect((await run()).code).toBe(2);
    expect((await run(join(dir, 'missing.json'))).code).toBe(2);
    expect((await run(files.valid!, '--lang', 'fr')).code).toBe(2);
    expect((await run(files.valid!, '--bogus')).code).toBe(2);
    expect((await run(files.valid!, '--rpc')).code).toBe(2);
    expect((await run(files.valid!, '--rpc', 'ftp://x')).code).toBe(2);
    expect((await run(files.valid!, files.valid!)).code).toBe(2);
    expect((await run(files.valid!, '--offline', '--rpc', rpcUrl)).code).toBe(2);
  });

  it('prints usage for --help and exits 0', async () => {
    const r = await run('--help');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^usage: stele verify/);
  });
});

describe('formatVerdict', () => {
  it('prints the verdict line first, then every check, in either language', async () => {
    const r = await run(files.valid!, '--offline', '--json');
    const v = JSON.parse(r.out) as Verdict;
    const zh = formatVerdict(v, 'zh');
    const en = formatVerdict(v, 'en');
    expect(zh).toContain('结论: 未能完全核验');
    expect(en).toContain('Verdict: NOT FULLY CHECKED');
    for (const c of v.checks) {
      expect(zh).toContain(c.title.zh);
      expect(en).toContain(c.title.en);
    }
  });

  it('caps long failure lists', async () => {
    const b = cloneBundle(built.bundle);
    b.window = { firstSeq: 1, lastSeq: 10 };
    b.entries = b.entries.map((e) => ({ ...e, receipt: tamper.signatureByte(e.receipt) }));
    const file = join(dir, 'many.json');
    await writeFile(file, encodeBundle(b));
    const r = await run(file, '--offline', '--lang', 'en');
    expect(r.code).toBe(1);
    const capped = formatVerdict(JSON.parse((await run(file, '--offline', '--json')).out) as Verdict, 'en', { maxFailuresPerCheck: 3 });
    expect(capped).toContain('… and 7 more');
  });
});
