/**
 * End to end: the demo topology (simulated CEMS -> serial -> gateway -> aedes -> ingest -> anvil), then the
 * officer's verifier on the bundle it leaves, with the chain up, with the chain down, and tampered.
 */
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '@stele/testkit';
import { decodeReading, encodeReading, fromBase64Url, parseReceipt, toBase64Url, encodeReceipt } from '@stele/core';
import { startAnvil } from '@stele/ingest';
import { demo, type DemoSummary } from '@stele/simulator/demo';
import { runVerify } from '@stele/verifier';

class Sink extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

/** Verifies with the demo authority's policy and pinned fingerprint, as the officer's guide says. */
let trustArgs: string[] = [];

async function verify(file: string, ...extra: string[]): Promise<{ code: number; json: any }> {
  const stdout = new Sink();
  const stderr = new Sink();
  const code = await runVerify([file, '--json', ...trustArgs, ...extra], { stdout, stderr });
  return { code, json: stdout.text ? JSON.parse(stdout.text) : undefined };
}

function failureCodes(verdict: any): string[] {
  return verdict.checks.flatMap((c: any) => c.failures.map((f: any) => f.code));
}

describe('the demo, end to end', () => {
  let out: string;
  let port: number;
  let first: DemoSummary;
  let bundleFile: string;
  let bundle: any;

  beforeAll(async () => {
    out = await mkdtemp(join(tmpdir(), 'stele-e2e-'));
    port = await freePort();
    first = await demo({ seconds: 4, out, intervalMs: 100, batchMs: 1000, chainPort: port, serve: false, io: { stdout: new Sink(), stderr: new Sink() } });
    bundleFile = first.evidence[0]!;
    bundle = JSON.parse(await readFile(bundleFile, 'utf8'));
    trustArgs = ['--trust', first.trust.policy, '--authority-file', first.trust.fingerprintFile];
  }, 120_000);

  afterAll(async () => {
    await rm(out, { recursive: true, force: true });
  });

  it('anchors at least one batch and leaves summary.json and an evidence bundle', async () => {
    expect(first.verdict).toBe('verified');
    expect(first.readings).toBeGreaterThan(10);
    expect(first.transactions.length).toBeGreaterThanOrEqual(1);
    expect(first.transactions[0]!.txHash).toMatch(/^0x[0-9a-f]{64}$/);
    const summary = JSON.parse(await readFile(join(out, 'summary.json'), 'utf8'));
    expect(summary.lastSeq).toBe(first.lastSeq);
    const files = (await readdir(join(out, 'evidence'))).filter((f) => f.endsWith('.json'));
    // one bundle of the CEMS window, and one per alert of the scripted episodes (alert-episodes.test.ts)
    expect(files.filter((f) => !f.startsWith('alert-'))).toHaveLength(1);
    expect(files.filter((f) => f.startsWith('alert-'))).toHaveLength(3);
    expect(bundle.entries).toHaveLength(first.readings);
  });

  it('writes a signed policy and the authority fingerprint beside the bundle', async () => {
    expect(await readdir(join(out, 'evidence'))).toEqual(expect.arrayContaining(['authority.fingerprint', 'trust-policy.cose']));
    expect((await readFile(first.trust.fingerprintFile, 'utf8')).trim()).toBe(first.trust.fingerprint);
  });

  it('is not fully checked (exit 3) once the chain is stopped', async () => {
    const r = await verify(bundleFile);
    expect(r.code).toBe(3);
    expect(r.json.state).toBe('partial');
  });

  describe('with the chain restarted from its saved state', () => {
    let stop: () => Promise<void>;
    beforeAll(async () => {
      const node = await startAnvil({ stateDir: join(out, 'data', 'chain'), port });
      stop = () => node.stop();
    }, 60_000);
    afterAll(async () => stop?.());

    it('verifies (exit 0) with the demo policy, asking the endpoint the policy suggests', async () => {
      const r = await verify(bundleFile);
      expect(r.code).toBe(0);
      expect(r.json.state).toBe('verified');
      expect(r.json.summary.trust.policy.authorityFingerprint).toBe(first.trust.fingerprint);
    });

    it('without the policy: not fully checked (exit 3), naming what was taken on the bundle\'s word', async () => {
      const saved = trustArgs;
      trustArgs = [];
      try {
        const r = await verify(bundleFile, '--use-bundle-rpc');
        expect(r.code).toBe(3);
        const trust = r.json.checks.find((c: any) => c.id === 'trust');
        expect(trust.code).toBe('TRUST_POLICY_MISSING');
        expect(r.json.headline.en).toContain(r.json.summary.trust.fromBundle.ingestKeyFingerprint);
        expect(r.json.headline.en).toContain(first.chain.contract.toLowerCase());
      } finally {
        trustArgs = saved;
      }
    });

    const tampered = async (name: string, change: (b: any) => void) => {
      const copy = structuredClone(bundle);
      change(copy);
      const file = join(out, `tampered-${name}.json`);
      await writeFile(file, JSON.stringify(copy));
      return verify(file);
    };
    const middle = () => Math.floor(bundle.entries.length / 2);

    it('fails with DIGEST_MISMATCH_ERROR when one measurement value is changed', async () => {
      const r = await tampered('value', (b) => {
        const e = b.entries[middle()];
        const reading = decodeReading(fromBase64Url(e.reading));
        const m = reading.meas[0]!;
        m.value = m.value === '0' ? '1' : '0';
        e.reading = toBase64Url(encodeReading(reading));
      });
      expect(r.code).toBe(1);
      expect(failureCodes(r.json)).toContain('DIGEST_MISMATCH_ERROR');
    });

    it('fails with SIGNATURE_ERROR when one signature byte is changed', async () => {
      const r = await tampered('signature', (b) => {
        const e = b.entries[middle()];
        const bytes = fromBase64Url(e.statement);
        bytes[bytes.length - 1]! ^= 0x01; // the signature is the last field of the COSE_Sign1 array
        e.statement = toBase64Url(bytes);
      });
      expect(r.code).toBe(1);
      expect(failureCodes(r.json)).toContain('SIGNATURE_ERROR');
    });

    it('fails with INCLUSION_PROOF_ERROR when one proof node is changed', async () => {
      const r = await tampered('proof', (b) => {
        const e = b.entries.find((x: any) => parseReceipt(fromBase64Url(x.receipt)).proof.path.length > 0);
        const receipt = parseReceipt(fromBase64Url(e.receipt));
        receipt.proof.path[0]![0]! ^= 0x80;
        e.receipt = toBase64Url(encodeReceipt(receipt.protectedBytes, receipt.signature, receipt.proof));
      });
      expect(r.code).toBe(1);
      expect(failureCodes(r.json)).toContain('INCLUSION_PROOF_ERROR');
    });

    it('fails with ANCHOR_MISMATCH_ERROR when the root is changed', async () => {
      const r = await tampered('root', (b) => {
        const root: string = b.batches[0].root;
        b.batches[0].root = root.slice(0, -1) + (root.endsWith('0') ? '1' : '0');
      });
      expect(r.code).toBe(1);
      expect(failureCodes(r.json)).toContain('ANCHOR_MISMATCH_ERROR');
    });

    it('fails with SEQUENCE_GAP_ERROR when a reading is removed from the middle of the window', async () => {
      const r = await tampered('gap', (b) => {
        b.entries.splice(middle(), 1);
      });
      expect(r.code).toBe(1);
      expect(failureCodes(r.json)).toContain('SEQUENCE_GAP_ERROR');
    });
  });

  it('a second run with the same --out continues the chain and keeps the first anchors verifiable', async () => {
    const second = await demo({ seconds: 2, out, intervalMs: 100, batchMs: 1000, chainPort: port, serve: false, io: { stdout: new Sink(), stderr: new Sink() } });
    expect(second.verdict).toBe('verified');
    expect(second.firstSeq).toBe(first.lastSeq + 1);
    const node = await startAnvil({ stateDir: join(out, 'data', 'chain'), port });
    try {
      expect((await verify(bundleFile)).code).toBe(0);
      expect((await verify(second.evidence[0]!)).code).toBe(0);
    } finally {
      await node.stop();
    }
  }, 120_000);
});
