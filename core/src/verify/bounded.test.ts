import { describe, expect, it } from 'vitest';
import { encodeBundle, MAX_BUNDLE_BYTES, parseBundleBytes } from '../bundle.ts';
import { buildTestBundle, cloneBundle } from './test-bundle.ts';
import type { Verdict } from './verdict.ts';
import { verifyBundle, verifyBundleBytes } from './verify.ts';

const codes = (v: Verdict): string[] => [...new Set(v.checks.flatMap((c) => c.failures.map((f) => f.code)))].sort();
const check = (v: Verdict, id: string) => v.checks.find((c) => c.id === id)!;
const base = await buildTestBundle({ lifecycle: true });

describe('the device record is bound to the signed enrolment', () => {
  it('reports the backend from the enrolment statement as declared, not attested', async () => {
    const v = await verifyBundle(base.bundle, { anchorReader: base.anchorReader, trust: base.trust });
    expect(v.state).toBe('verified');
    expect(check(v, 'enrolment').sentence.en).toContain('declared software, not attested');
    expect(check(v, 'enrolment').sentence.zh).toContain('未经证明');
    expect(check(v, 'enrolment').sentence.en).toContain('statement signed by ingest');
    expect(v.summary.keys![0]!.attested).toBe(false);
  });

  it('an edited keyBackend (software -> tpm) fails with DEVICE_RECORD_MISMATCH_ERROR and never says "TPM"', async () => {
    const b = cloneBundle(base.bundle);
    b.device.keyBackend = 'tpm';
    const v = await verifyBundle(b, { anchorReader: base.anchorReader, trust: base.trust });
    expect(codes(v)).toEqual(['DEVICE_RECORD_MISMATCH_ERROR']);
    expect(check(v, 'enrolment').failures[0]).toMatchObject({ path: '$.device.keyBackend', expected: 'software', actual: 'tpm' });
    expect(JSON.stringify(v.checks.map((c) => c.sentence))).not.toMatch(/declared tpm/);
  });

  it('a TPM key is only "declared tpm, not attested"', async () => {
    const { testSigner } = await import('./test-bundle.ts');
    const tpm = await buildTestBundle({ lifecycle: true, deviceSigner: testSigner('tpm device', 'tpm') });
    const v = await verifyBundle(tpm.bundle, { anchorReader: tpm.anchorReader, trust: tpm.trust });
    expect(v.state).toBe('verified');
    expect(check(v, 'enrolment').sentence.en).toContain('declared tpm, not attested');
  });
});

describe('bounded work on hostile input', () => {
  it('a window declaring lastSeq 2^53 - 1 is one gap, found in well under 100 ms', async () => {
    const b = cloneBundle(base.bundle);
    b.window = { firstSeq: 1, lastSeq: Number.MAX_SAFE_INTEGER };
    const bytes = encodeBundle(b);
    const t0 = performance.now();
    const { verdict } = await verifyBundleBytes(bytes);
    const ms = performance.now() - t0;
    expect(codes(verdict)).toEqual(['SEQUENCE_GAP_ERROR']);
    expect(check(verdict, 'completeness').failures).toHaveLength(1);
    expect(check(verdict, 'completeness').failures[0]!.expected).toBe(`11-${Number.MAX_SAFE_INTEGER}`);
    expect(ms).toBeLessThan(1000); // the CLI test measures the 100 ms budget on the whole command
  });

  it('a file above the size limit is BUNDLE_LIMIT_ERROR without being parsed', async () => {
    const big = new Uint8Array(MAX_BUNDLE_BYTES + 1);
    const { verdict } = await verifyBundleBytes(big);
    expect(codes(verdict)).toEqual(['BUNDLE_LIMIT_ERROR']);
    expect(() => parseBundleBytes(big)).toThrow(/more than/);
  });

  it('thousands of duplicate entries fold into one note', async () => {
    const b = cloneBundle(base.bundle);
    const e = b.entries[0]!;
    for (let i = 0; i < 2000; i++) b.entries.push({ ...e });
    const v = await verifyBundle(b);
    const dup = v.notes.filter((n) => n.id === 'duplicate-entry');
    expect(dup).toHaveLength(1);
    expect(dup[0]!.sentence.en).toMatch(/^2000 entries repeat/);
    expect(v.notes.length).toBeLessThan(12);
  });

  it('check 8 does not say "no reading bodies" when every body is there and the clock was unsynchronised', async () => {
    const built = await buildTestBundle({ clockSynced: false });
    const v = await verifyBundle(built.bundle, { anchorReader: built.anchorReader, trust: built.trust });
    expect(check(v, 'time').status).toBe('not-applicable');
    expect(check(v, 'time').sentence.en).not.toMatch(/No reading bodies/);
    expect(check(v, 'time').sentence.en).toMatch(/All 10 reading bodies were made with the device clock not synchronised/);
  });

  it('chain look-ups run concurrently under one deadline and report progress', async () => {
    const built = await buildTestBundle({ count: 12, batchSizes: [2, 2, 2, 2, 2, 2] });
    let inFlight = 0;
    let most = 0;
    const progress: number[] = [];
    const never = new Promise<never>(() => undefined);
    const slow = await verifyBundle(built.bundle, {
      trust: built.trust,
      chainDeadlineMs: 200,
      anchorReader: async (ref, id, url) => {
        inFlight++;
        most = Math.max(most, inFlight);
        if (id === 6) await never; // one endpoint that never answers
        await new Promise((r) => setTimeout(r, 20));
        inFlight--;
        return built.anchorReader(ref, id, url);
      },
      onProgress: (p) => progress.push(p.done),
    });
    expect(most).toBeGreaterThan(1);
    expect(progress).toEqual([1, 2, 3, 4, 5, 6]);
    expect(slow.state).toBe('partial');
    expect(check(slow, 'anchor').status).toBe('unchecked');
  });

  it('check 10 says "all N" only when every measurement carries N', async () => {
    const built = await buildTestBundle({ flagOf: (seq) => (seq === 3 ? undefined : 'N') });
    const v = await verifyBundle(built.bundle, { trust: built.trust });
    expect(check(v, 'flags').sentence.en).toBe('No flag other than N among 10 measurements (1 carry no flag)');
  });
});
