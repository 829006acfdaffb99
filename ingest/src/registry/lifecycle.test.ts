/**
 * Device lifecycle through the real service (FORMAT.md §13): aedes in process, LevelDB in a temp dir, anchoring on
 * anvil. Issue #3 acceptance: readings signed by an unenrolled key, a revoked key and a rotated-out key are each
 * rejected with their code; the bundles that result verify with the key timeline.
 */
import { describe, expect, it } from 'vitest';
import { readAnchor } from '@stele/core/anchor';
import { equalBytes, fromBase64Url, toBase64Url, sha256 } from '@stele/core';
import { encodeLifecycleBody, parseLifecycleStatement, signLifecycleStatement, type LifecycleBody } from '@stele/core/lifecycle';
import type { Signer } from '@stele/core';
import { verifyBundle } from '@stele/core/verify';
import { policyTrustingBundle } from '@stele/core/testing';
import { signEnrolmentRequest, type EnrolmentRequest } from '@stele/core/enrolment';
import { enrolmentOf, makeChain, testSigner, TestGateway, useIngestStack, waitFor, type IngestSetup, type SignedReading } from '../test-helpers.ts';

const stack = useIngestStack('lifecycle-chain');
const { cleanups } = stack;

let devices = 0;
type Setup = IngestSetup;

async function setup(enrol = true): Promise<Setup> {
  return stack.setup({ deviceId: `gw-life-${String(++devices).padStart(3, '0')}`, dirPrefix: 'lifecycle', enrol });
}

/** A chained lifecycle statement (rotation, reinstall) at `seq` after `prev`, as the gateway's outbox makes it. */
async function chained(body: LifecycleBody, signer: Signer, seq: number, prev: Uint8Array): Promise<SignedReading> {
  const statement = await signLifecycleStatement(body, signer, { seq, prev });
  const bytes = encodeLifecycleBody(body);
  return { seq, reading: bytes, statement, digest: sha256(bytes) };
}

async function expectReject(s: Setup, code: string, seq: number): Promise<void> {
  await waitFor(() => s.gw.rejects.some((r) => r.code === code && r.seq === seq), `reject ${code} for seq ${seq}`);
}

const online = { anchorReader: (ref: Parameters<typeof readAnchor>[1], batchId: number) => readAnchor(stack.anvil.rpcUrl, ref, batchId) };
/** Verified online, under a policy trusting this test's ingest (the trust check is core's, tested there). */
const verifyOnline = async (bundle: Parameters<typeof verifyBundle>[0]) => verifyBundle(bundle, { ...online, trust: await policyTrustingBundle(bundle) });
const failureCodes = (v: Awaited<ReturnType<typeof verifyBundle>>): string[] => v.checks.flatMap((c) => c.failures.map((f) => f.code));

describe('device lifecycle at ingest', () => {
  describe('when a reading is signed by a key that was never enrolled', () => {
    it('rejects it with UNKNOWN_KEY_ERROR, for an enrolled device and for a device ingest does not know', async () => {
      const s = await setup();
      const [stray] = await makeChain(testSigner(), s.deviceId, 1);
      await s.gw.publish(stray!);
      await expectReject(s, 'UNKNOWN_KEY_ERROR', 1);
      expect(s.ingest.head(s.deviceId).seq).toBe(0);

      const unknown = await TestGateway.connect(stack.broker.url, 'gw-never-enrolled');
      cleanups.push(() => unknown.close());
      const [r] = await makeChain(testSigner(), 'gw-never-enrolled', 1);
      await unknown.publish(r!);
      await waitFor(() => unknown.rejects.some((x) => x.code === 'UNKNOWN_KEY_ERROR'), 'reject of the unknown device');
      expect(s.ingest.stats().rejected['UNKNOWN_KEY_ERROR']).toBe(2);
    });
  });

  describe('when ingest revokes the device key', () => {
    it('rejects readings under it received afterwards with KEY_REVOKED_ERROR; the bundle of the readings before verifies and carries the revocation', async () => {
      const s = await setup();
      const chain = await makeChain(s.device, s.deviceId, 5);
      for (const r of chain.slice(0, 3)) await s.gw.publish(r);
      await waitFor(() => s.gw.ackedUpTo === 3, 'ack upTo 3');

      const revoked = await s.ingest.revoke(s.deviceId, { reason: 'stolen' });
      expect(revoked).toEqual({ kid: s.device.keyId, after: 3 });
      expect(await s.ingest.revoke(s.deviceId, { kid: s.device.keyId })).toEqual(revoked); // idempotent

      await s.gw.publish(chain[3]!);
      await expectReject(s, 'KEY_REVOKED_ERROR', 4);
      await s.gw.publish(chain[1]!); // a redelivery of a reading committed before the revocation: still a duplicate
      await waitFor(() => s.ingest.stats().duplicates === 1, 'duplicate re-acked');
      expect(s.ingest.head(s.deviceId).seq).toBe(3);

      await s.ingest.flush();
      const bundle = await s.ingest.exportEvidence(s.deviceId, 1, 3);
      expect(bundle.lifecycle?.map((l) => parseLifecycleStatement(l.statement).body.type)).toEqual(['enrolment', 'revocation']);
      const v = await verifyOnline(bundle);
      expect(failureCodes(v)).toEqual([]);
      expect(v.state).toBe('verified');
      expect(v.summary.keys?.[0]).toMatchObject({ revokedAfter: 3, signed: [[1, 3]] });
    });

    it('lets the device enrol a new key, valid from the committed head + 1', async () => {
      const s = await setup();
      const chain = await makeChain(s.device, s.deviceId, 2);
      for (const r of chain) await s.gw.publish(r);
      await waitFor(() => s.gw.ackedUpTo === 2, 'ack upTo 2');
      const replacement = testSigner();
      await expect(s.ingest.enrol(enrolmentOf(replacement, s.deviceId))).rejects.toMatchObject({ code: 'INGEST_ENROL_CONFLICT' });
      await s.ingest.revoke(s.deviceId);
      await s.ingest.enrol(enrolmentOf(replacement, s.deviceId));
      expect(s.ingest.keys(s.deviceId)?.keys.map((k) => [k.from, k.revokedAfter])).toEqual([
        [1, 2],
        [3, undefined],
      ]);
      const [next] = await makeChain(replacement, s.deviceId, 1, 3, chain[1]!.digest);
      await s.gw.publish(next!);
      await waitFor(() => s.gw.ackedUpTo === 3, 'ack upTo 3');

      await s.ingest.flush();
      const v = await verifyOnline(await s.ingest.exportEvidence(s.deviceId, 1, 3));
      expect(failureCodes(v)).toEqual([]);
      expect(v.summary.keys?.map((k) => k.signed)).toEqual([[[1, 2]], [[3, 3]]]);
    });

    it('refuses to revoke for an unknown device (INGEST_UNKNOWN_DEVICE) or an unknown key (INGEST_REVOKE_ERROR)', async () => {
      const s = await setup();
      await expect(s.ingest.revoke('gw-nobody')).rejects.toMatchObject({ code: 'INGEST_UNKNOWN_DEVICE' });
      await expect(s.ingest.revoke(s.deviceId, { kid: testSigner().keyId })).rejects.toMatchObject({ code: 'INGEST_REVOKE_ERROR' });
    });
  });

  describe('when the device rotates its key at seq 4', () => {
    it('accepts the rotation signed by the old key and then only the new key: the old key after seq 4 is KEY_ROTATED_ERROR', async () => {
      const s = await setup();
      const next = testSigner();
      const before = await makeChain(s.device, s.deviceId, 3);
      const rotation = await chained(
        { type: 'rotation', device: s.deviceId, kid: next.keyId, key: next.publicKey, backend: 'tpm', time: 1_700_000_004_000 },
        s.device,
        4,
        before[2]!.digest,
      );
      const after = await makeChain(next, s.deviceId, 2, 5, rotation.digest);
      // Rotation and the first new-key readings in one burst: the key it announces is judged in seq order.
      for (const r of before) await s.gw.publish(r);
      await s.gw.publish(rotation);
      await s.gw.publish(after[0]!, 'hash-only');
      await s.gw.publish(after[1]!);
      await waitFor(() => s.gw.ackedUpTo === 6, 'ack upTo 6');

      const [stale] = await makeChain(s.device, s.deviceId, 1, 7, after[1]!.digest);
      await s.gw.publish(stale!);
      await expectReject(s, 'KEY_ROTATED_ERROR', 7);
      const [early] = await makeChain(next, s.deviceId, 1, 3, before[1]!.digest);
      await s.gw.publish(early!); // the new key signing a seq before its start (and a fork of seq 3)
      await expectReject(s, 'UNKNOWN_KEY_ERROR', 3);
      expect(s.ingest.head(s.deviceId).seq).toBe(6);
      expect(s.ingest.keys(s.deviceId)?.keys.map((k) => [k.via, k.from, k.until])).toEqual([
        ['enrolment', 1, 4],
        ['rotation', 5, undefined],
      ]);

      await s.ingest.flush();
      const json = await s.ingest.exportBundle(s.deviceId, 1, 6);
      expect(json.entries.map((e) => e.seq)).toEqual([1, 2, 3, 5, 6]); // seq 4 travels in `lifecycle`
      expect(json.lifecycle).toHaveLength(2);
      const v = await verifyOnline(await s.ingest.exportEvidence(s.deviceId, 1, 6));
      expect(failureCodes(v)).toEqual([]);
      expect(v.state).toBe('verified');
      expect(v.summary.keys?.map((k) => [toBase64Url(fromBase64Url(k.kid)), k.signed])).toEqual([
        [toBase64Url(s.device.keyId), [[1, 3]]],
        [toBase64Url(next.keyId), [[5, 6]]],
      ]);
    });

    it('keeps the key timeline across a restart', async () => {
      const s = await setup();
      const next = testSigner();
      const [first] = await makeChain(s.device, s.deviceId, 1);
      const rotation = await chained(
        { type: 'rotation', device: s.deviceId, kid: next.keyId, key: next.publicKey, backend: 'pkcs11', time: 0 },
        s.device,
        2,
        first!.digest,
      );
      await s.gw.publish(first!);
      await s.gw.publish(rotation, 'hash-only');
      await waitFor(() => s.gw.ackedUpTo === 2, 'ack upTo 2');
      await s.ingest.stop();

      const again = await stack.startIngest(s.dataDir, s.ingestKey, s.anchorer);
      const [stale] = await makeChain(s.device, s.deviceId, 1, 3, rotation.digest);
      await s.gw.publish(stale!);
      await expectReject(s, 'KEY_ROTATED_ERROR', 3);
      const [fresh] = await makeChain(next, s.deviceId, 1, 3, rotation.digest);
      await s.gw.publish(fresh!);
      await waitFor(() => s.gw.ackedUpTo === 3, 'ack upTo 3');
      await again.flush();
      const v = await verifyOnline(await again.exportEvidence(s.deviceId, 1, 3));
      expect(failureCodes(v)).toEqual([]);
    });

    it('refuses a rotation announcing a key enrolled elsewhere with LIFECYCLE_ERROR', async () => {
      const s = await setup();
      const other = testSigner();
      await s.ingest.enrol(enrolmentOf(other, `${s.deviceId}-other`));
      const rotation = await chained(
        { type: 'rotation', device: s.deviceId, kid: other.keyId, key: other.publicKey, backend: 'software', time: 0 },
        s.device,
        1,
        new Uint8Array(32),
      );
      await s.gw.publish(rotation);
      await expectReject(s, 'LIFECYCLE_ERROR', 1);
    });
  });

  describe('when the agent is reinstalled without its outbox', () => {
    it('accepts a reinstall statement at the confirmed head + 1 and the chain goes on; the verdict notes it', async () => {
      const s = await setup();
      const chain = await makeChain(s.device, s.deviceId, 2);
      for (const r of chain) await s.gw.publish(r);
      await waitFor(() => s.gw.ackedUpTo === 2, 'ack upTo 2');
      const head = s.ingest.head(s.deviceId);
      const reinstall = await chained({ type: 'reinstall', device: s.deviceId, time: 0 }, s.device, head.seq + 1, head.digest);
      await s.gw.publish(reinstall);
      const [next] = await makeChain(s.device, s.deviceId, 1, head.seq + 2, reinstall.digest);
      await s.gw.publish(next!);
      await waitFor(() => s.gw.ackedUpTo === 4, 'ack upTo 4');
      await s.ingest.flush();
      const v = await verifyOnline(await s.ingest.exportEvidence(s.deviceId, 1, 4));
      expect(failureCodes(v)).toEqual([]);
      expect(v.notes.map((n) => n.id)).toContain('agent-reinstalled');
    });
  });

  describe('when a device sends a statement only ingest may sign', () => {
    it('rejects an enrolment statement from the gateway with LIFECYCLE_ERROR', async () => {
      const s = await setup();
      const forged = await signLifecycleStatement(
        { type: 'enrolment', device: s.deviceId, kid: s.device.keyId, key: s.device.publicKey, backend: 'software', request: new Uint8Array(32), from: 1, time: 0, site: '', installer: new Uint8Array(0) },
        s.device,
      );
      await s.gw.publish({ statement: forged });
      await waitFor(() => s.gw.rejects.some((r) => r.code === 'LIFECYCLE_ERROR'), 'LIFECYCLE_ERROR');
    });
  });

  describe('enrolment', () => {
    it('registers a countersigned provisioning request; the enrolment statement names the file digest', async () => {
      const installer = testSigner();
      const s = await stack.setup({ deviceId: `gw-life-${String(++devices).padStart(3, '0')}`, dirPrefix: 'lifecycle', enrol: false, options: { trustedInstallers: [installer.publicKey] } });
      const request: EnrolmentRequest = {
        version: 1,
        deviceId: s.deviceId,
        publicKey: toBase64Url(s.device.publicKey),
        kid: toBase64Url(s.device.keyId),
        keyBackend: 'software',
        keyStore: { store: 'software' },
        attestation: { kind: 'none', reason: 'software key' },
        gateway: { hostname: 'gw', serial: { source: 'none', value: '' }, macs: [] },
        site: 'test stack',
        instruments: [{ id: 'cems-1' }],
        installer: { publicKey: toBase64Url(installer.publicKey), kid: toBase64Url(installer.keyId) },
        createdAt: new Date(0).toISOString(),
      };
      const file = await signEnrolmentRequest(request, s.device, installer);
      const result = await s.ingest.enrolRequest(file);
      expect(result.installerKid).toBe(toBase64Url(installer.keyId));
      await expect(s.ingest.enrolRequest(file.slice(0, -1))).rejects.toMatchObject({ code: 'INGEST_ENROL_ERROR' });
      // An installer the operator does not trust: its valid countersignature is not enough.
      const stranger = testSigner();
      const other = testSigner();
      const untrusted = await signEnrolmentRequest(
        { ...request, deviceId: 'gw-life-untrusted', publicKey: toBase64Url(other.publicKey), kid: toBase64Url(other.keyId), installer: { publicKey: toBase64Url(stranger.publicKey), kid: toBase64Url(stranger.keyId) } },
        other,
        stranger,
      );
      await expect(s.ingest.enrolRequest(untrusted)).rejects.toMatchObject({ code: 'INGEST_ENROL_ERROR', where: { code: 'ENROLMENT_INSTALLER_UNTRUSTED' } });

      const chain = await makeChain(s.device, s.deviceId, 2);
      for (const r of chain) await s.gw.publish(r);
      await waitFor(() => s.gw.ackedUpTo === 2, 'ack upTo 2');
      await s.ingest.flush();
      const bundle = await s.ingest.exportEvidence(s.deviceId, 1, 2);
      const enrolment = parseLifecycleStatement(bundle.lifecycle![0]!.statement).body;
      expect(enrolment.type).toBe('enrolment');
      expect(enrolment.type === 'enrolment' && equalBytes(enrolment.request, sha256(file))).toBe(true);
      // The enrolment facts travel signed by ingest: site and the installer who countersigned.
      expect(enrolment.type === 'enrolment' && enrolment.site).toBe('test stack');
      expect(enrolment.type === 'enrolment' && equalBytes(enrolment.installer, installer.keyId)).toBe(true);
      // The request file travels with its enrolment statement (FORMAT.md §13.6), so a verifier can judge its attestation.
      expect(bundle.lifecycle![0]!.request).toEqual(file);
      const verdict = await verifyOnline(bundle);
      expect(verdict.state).toBe('verified');
      expect(verdict.summary.keys!.map((k) => k.attested)).toEqual([false]); // "none": a software key is declared
      expect(verdict.notes.map((n) => n.id)).not.toContain('key-not-attested');
      // An edited request file is an edited bundle.
      const edited = structuredClone(bundle);
      edited.lifecycle![0]!.request = file.slice(0, -1);
      const bad = await verifyOnline(edited);
      expect(bad.state).toBe('failed');
      expect(bad.checks.flatMap((c) => c.failures.map((f) => f.code))).toEqual(['DEVICE_RECORD_MISMATCH_ERROR']);
      // Without the file (bundles made before it travelled) the bundle verifies as before.
      const without = structuredClone(bundle);
      delete without.lifecycle![0]!.request;
      expect((await verifyOnline(without)).state).toBe('verified');
    });
  });
});
