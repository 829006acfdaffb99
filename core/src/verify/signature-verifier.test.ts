/**
 * VerifyOptions.signatureVerifier (the web page's two workers): the verdict is the same as with core's own
 * checks, whatever the bundle.
 */
import { describe, expect, it } from 'vitest';
import type { EvidenceBundle } from '../bundle.ts';
import { buildTestBundle, cloneBundle, tamper, testSigner } from './test-bundle.ts';
import type { SignatureJob, VerifyOptions } from './verify.ts';
import { verifySignatureBatch, verifyBundle } from './verify.ts';

const next = testSigner('next', 'tpm');

function withEntry(bundle: EvidenceBundle, seq: number, change: (e: EvidenceBundle['entries'][number]) => void): EvidenceBundle {
  const b = cloneBundle(bundle);
  change(b.entries.find((x) => x.seq === seq)!);
  return b;
}

/** The verdict with core's checks and with a caller's verifier (counting its checks), which must be equal. */
async function both(bundle: EvidenceBundle, options: VerifyOptions = {}): Promise<{ checks: number }> {
  const plain = await verifyBundle(bundle, options);
  let checks = 0;
  const counted = (jobs: readonly SignatureJob[]): Promise<boolean[]> => {
    checks += jobs.length;
    return verifySignatureBatch(jobs);
  };
  const withVerifier = await verifyBundle(bundle, { ...options, signatureVerifier: counted });
  expect(withVerifier).toEqual(plain);
  return { checks };
}

describe('a caller-given signatureVerifier', () => {
  it('gives the same verdict on a sound bundle, one check per statement', async () => {
    const built = await buildTestBundle({});
    const { checks } = await both(built.bundle, { anchorReader: built.anchorReader, trust: built.trust });
    expect(checks).toBe(built.bundle.entries.length);
  });

  it('gives the same verdict when a statement signature byte is changed (SIGNATURE_ERROR)', async () => {
    const built = await buildTestBundle({});
    const bad = withEntry(built.bundle, 3, (e) => (e.statement = tamper.signatureByte(e.statement)));
    const v = await verifyBundle(bad, { signatureVerifier: verifySignatureBatch });
    expect(v.checks.find((c) => c.id === 'signatures')!.failures).toMatchObject([{ code: 'SIGNATURE_ERROR', seq: 3 }]);
    await both(bad);
  });

  it('gives the same verdict with a rotated key (early checks only for the record key), and with a revoked one', async () => {
    const rotated = await buildTestBundle({ rotations: [{ seq: 5, to: next }] });
    await both(rotated.bundle, { anchorReader: rotated.anchorReader, trust: rotated.trust });
    const revoked = await buildTestBundle({ revocations: [{ after: 6 }] });
    await both(revoked.bundle, { trust: revoked.trust });
  });

  it('gives the same verdict with device-level batches, one check per run', async () => {
    const built = await buildTestBundle({ deviceBatches: [{ first: 2, count: 5 }, { first: 7, count: 2 }] });
    const { checks } = await both(built.bundle);
    expect(checks).toBe(built.bundle.entries.length - 4 - 1);
  });

  it('counts every statement as failed when the verifier throws', async () => {
    const built = await buildTestBundle({});
    const v = await verifyBundle(built.bundle, { signatureVerifier: () => Promise.reject(new Error('worker gone')) });
    expect(v.checks.find((c) => c.id === 'signatures')!.failures.map((f) => f.code)).toEqual(built.bundle.entries.map(() => 'SIGNATURE_ERROR'));
  });
});
