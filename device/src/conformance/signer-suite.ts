/**
 * One conformance suite for every key store (STYLE.md: "the conformance suite ships with the abstraction").
 * Run against the software key (device/src/conformance/software.test.ts), SoftHSM2
 * (test/integration/signers/softhsm.test.ts) and the swtpm TPM (test/integration/signers/tpm.test.ts).
 *
 * A target says what it can do; a check whose hook is absent does not apply and is not registered (not a skip: CI
 * counts skips, docs/developer.md "Skips").
 * Import from `@stele/device/testing` (not re-exported from the package index: it imports vitest).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { utf8, SteleError, verifyEs256, verifyEs256Noble, keyIdOf } from '@stele/core';
import type { Signer } from '@stele/core';
import type { KeyProtection } from '../pkcs11/signer.ts';

/** A signer as the suite sees it: `close` and `describeKeyProtection` where the store has them. */
export interface SuiteSigner extends Signer {
  close?(): Promise<void>;
  describeKeyProtection?(): Promise<KeyProtection>;
}

export interface SignerSuiteTarget {
  /** Once, before the checks: make the token and the key (the key is made here, not per check). */
  setup?(): Promise<void>;
  /** Once, after the checks: stop what setup started. */
  teardown?(): Promise<void>;
  /** A signer on the key made in setup; the suite closes it. */
  open(): Promise<SuiteSigner>;
  /** Open the same key with a wrong PIN: must reject with KEY_PIN_INCORRECT. */
  openWithWrongPin?(): Promise<SuiteSigner>;
  /** Open a token label that does not exist: must reject with KEY_TOKEN_MISSING. */
  openWithMissingToken?(): Promise<SuiteSigner>;
  /** Open with a PKCS#11 library path that does not exist: must reject with KEY_MODULE_MISSING. */
  openWithMissingModule?(): Promise<SuiteSigner>;
  /** Make the token vanish while a signer is open (unplug), and bring it back. */
  removeToken?(): Promise<void>;
  restoreToken?(): Promise<void>;
  /** Concurrent sign() calls in the concurrency and removal checks. Default 50. */
  concurrency?: number;
  /** Signatures in the rate measurement. Default 200. */
  rateSamples?: number;
}

/** Measured rates by suite name, for reports (the suite also prints them). */
export const measuredSignRates = new Map<string, { signsPerSecond: number; samples: number; concurrentSignsPerSecond: number }>();

const codeOf = (err: unknown): string => (err instanceof SteleError ? err.code : `not a SteleError: ${String(err)}`);

async function rejectionCode(p: Promise<SuiteSigner>): Promise<string> {
  try {
    const signer = await p;
    await signer.close?.();
    return 'resolved';
  } catch (err) {
    return codeOf(err);
  }
}

/**
 * Registers `describe(name)` with the checks. `factory` runs when the suite is collected and must not do I/O
 * (setup does). `skip`: a reason to skip the whole suite (the reason is the describe's title suffix).
 */
export function signerConformanceSuite(name: string, factory: () => SignerSuiteTarget, options: { skip?: string | false } = {}): void {
  const skip = typeof options.skip === 'string' ? options.skip : undefined;
  const title = skip === undefined ? `signer conformance: ${name}` : `signer conformance: ${name} (skipped: ${skip})`;
  describe.skipIf(skip !== undefined)(title, () => {
    const target = skip === undefined ? factory() : ({ open: () => Promise.reject(new Error('skipped')) } satisfies SignerSuiteTarget);
    const n = target.concurrency ?? 50;
    let signer: SuiteSigner;

    beforeAll(async () => {
      await target.setup?.();
      signer = await target.open();
    });
    afterAll(async () => {
      await signer?.close?.();
      await target.teardown?.();
    });

    it('is an ES256 signer with a SEC1 public key and its key id', () => {
      expect(signer.algorithm).toBe('ES256');
      expect(signer.publicKey.length).toBe(65);
      expect(signer.publicKey[0]).toBe(4);
      expect(signer.keyId).toEqual(keyIdOf(signer.publicKey));
    });

    it('signs 64-byte r || s signatures that verify with verifyEs256 and verifyEs256Noble (high S accepted)', async () => {
      const message = utf8(`Signature1 over a reading from ${name}`);
      for (let i = 0; i < 8; i++) {
        const sig = await signer.sign(message);
        expect(sig.length).toBe(64);
        expect(await verifyEs256(signer.publicKey, message, sig)).toBe(true);
        expect(verifyEs256Noble(signer.publicKey, message, sig)).toBe(true);
        expect(await verifyEs256(signer.publicKey, utf8('another message'), sig)).toBe(false);
      }
    });

    it('does not let the private key be read out (or says it is a software key)', async () => {
      if (signer.backend === 'software') {
        const protection = await signer.describeKeyProtection?.();
        if (protection !== undefined) expect(protection.hardware).toBe(false);
        expect(JSON.stringify(signer)).not.toMatch(/PRIVATE|"d"/);
        return;
      }
      expect(signer.describeKeyProtection).toBeTypeOf('function');
      const p = await signer.describeKeyProtection!();
      expect(p.hardware).toBe(true);
      expect(p.sensitive).toBe(true);
      expect(p.extractable).toBe(false);
      expect(p.neverExtractable).toBe(true);
      expect(p.valueRead).not.toBe('returned'); // C_GetAttributeValue(CKA_VALUE) failed
      expect(p.valueRead).toMatch(/^CKR_/);
    });

    // A check whose hook the target lacks does not apply (the software key has no PIN, token or library): it is not
    // registered at all, so CI's skip count stays a signal (docs/developer.md, "Skips").
    const { openWithWrongPin, openWithMissingToken, openWithMissingModule } = target;
    if (openWithWrongPin) {
      it('rejects a wrong PIN with KEY_PIN_INCORRECT', async () => {
        expect(await rejectionCode(openWithWrongPin())).toBe('KEY_PIN_INCORRECT');
      });
    }

    if (openWithMissingToken) {
      it('rejects a missing token with KEY_TOKEN_MISSING', async () => {
        expect(await rejectionCode(openWithMissingToken())).toBe('KEY_TOKEN_MISSING');
      });
    }

    if (openWithMissingModule) {
      it('rejects a missing library with KEY_MODULE_MISSING', async () => {
        expect(await rejectionCode(openWithMissingModule())).toBe('KEY_MODULE_MISSING');
      });
    }

    it(`serialises ${n} concurrent sign() calls: all succeed and verify`, async () => {
      const messages = Array.from({ length: n }, (_, i) => utf8(`concurrent ${i}`));
      const sigs = await Promise.all(messages.map((m) => signer.sign(m)));
      for (let i = 0; i < n; i++) expect(await verifyEs256(signer.publicKey, messages[i]!, sigs[i]!)).toBe(true);
    });

    it('measures sustained sign/s (reported, not asserted)', async () => {
      const samples = target.rateSamples ?? 200;
      const message = utf8('rate');
      let t0 = performance.now();
      for (let i = 0; i < samples; i++) await signer.sign(message);
      const sequential = samples / ((performance.now() - t0) / 1000);
      t0 = performance.now();
      await Promise.all(Array.from({ length: samples }, () => signer.sign(message)));
      const concurrent = samples / ((performance.now() - t0) / 1000);
      measuredSignRates.set(name, { signsPerSecond: Math.round(sequential), samples, concurrentSignsPerSecond: Math.round(concurrent) });
      console.info(`[signer-suite] ${name}: ${sequential.toFixed(0)} sign/s sequential, ${concurrent.toFixed(0)} sign/s with ${samples} queued (${samples} samples)`);
      expect(sequential).toBeGreaterThan(0);
    });

    const removable = target.removeToken !== undefined && target.restoreToken !== undefined;
    if (removable) it(
      'reports a token that vanishes mid-run as KEY_DEVICE_REMOVED and resumes when it returns, losing no request',
      async () => {
        const messages = Array.from({ length: n }, (_, i) => utf8(`removal ${i}`));
        const removeAfter = Math.max(1, Math.floor(n / 5));
        let settled = 0;
        let removed: Promise<void> | undefined;
        const outcomes = await Promise.all(
          messages.map((m) =>
            signer.sign(m).then(
              (sig) => ({ sig, code: undefined as string | undefined }),
              (err: unknown) => ({ sig: undefined, code: codeOf(err) }),
            ).finally(() => {
              settled++;
              // the token goes away while the rest of the requests wait in the signer's queue
              if (settled === removeAfter) removed = target.removeToken!();
            }),
          ),
        );
        await removed;
        const failed = outcomes.flatMap((o, i) => (o.code === undefined ? [] : [i]));
        expect(new Set(outcomes.map((o) => o.code).filter((c) => c !== undefined))).toEqual(new Set(['KEY_DEVICE_REMOVED']));
        expect(failed.length).toBeGreaterThan(0);
        expect(outcomes.slice(0, removeAfter).every((o) => o.sig !== undefined)).toBe(true);

        // Still gone: still KEY_DEVICE_REMOVED, never a hang.
        expect(await signer.sign(utf8('while away')).then(() => 'signed', codeOf)).toBe('KEY_DEVICE_REMOVED');

        await target.restoreToken!();
        // A retrying caller (the agent's outbox) gets every signature: bounded retries, short pauses.
        for (const i of failed) {
          for (let attempt = 0; ; attempt++) {
            try {
              outcomes[i] = { sig: await signer.sign(messages[i]!), code: undefined };
              break;
            } catch (err) {
              expect(codeOf(err)).toBe('KEY_DEVICE_REMOVED');
              if (attempt >= 200) throw err;
              await new Promise((r) => setTimeout(r, 25));
            }
          }
        }
        for (let i = 0; i < n; i++) expect(await verifyEs256(signer.publicKey, messages[i]!, outcomes[i]!.sig!)).toBe(true);
      },
    );
  });
}
