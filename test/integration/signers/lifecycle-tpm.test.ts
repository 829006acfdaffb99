/**
 * Issues #8 and #9 on a TPM 2.0 (swtpm + tpm2-abrmd + tpm2-pkcs11, test/scripts/swtpm-up.sh), through the CLIs:
 *   stele ingest init -> stele gateway provision --backend tpm --require-attestation (the key certified by an AK
 *   under the EK; the EK certificate from swtpm's local CA) -> stele ingest enrol X.enrol.cose -> readings signed in
 *   the TPM -> stele gateway rotate-key (a new key on the TPM token, the config switched to it) -> readings ->
 *   new SD card: stele gateway reinstall -> readings -> stele ingest revoke -> the next reading is rejected
 *   KEY_REVOKED_ERROR -> the bundle -> stele trust add-attestation-root / sign -> stele verify --trust shows the
 *   enrolled key as attested (with --test-attestation-roots: swtpm's CA is a test root), the rotated key as
 *   declared, the rotation, the reinstall and the revocation; without the test flag the key is declared, with a note.
 * Runs only with STELE_TPM=1 (`npm run test:tpm`), skipped with the reason otherwise.
 */
import { createHash, generateKeyPairSync } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Verdict } from '@stele/core/verify';
import { Outbox, Publisher, type Acquired } from '@stele/edge-agent';
import { runGateway } from '@stele/edge-agent/cli';
import { loadConfig, openSigner } from '@stele/edge-agent';
import { runIngest } from '@stele/ingest/cli';
import { startBroker, tempDir, waitFor } from '@stele/ingest/testing';
import { runVerify } from '@stele/verifier/cli';
import { runTrust } from '@stele/verifier/trust-cli';
import { startSwTpm, TPM2_PKCS11_MODULE, tpmSkipReason, type SwTpm } from './helpers.ts';
import { captureIo } from '@stele/testkit';

const skip = await tpmSkipReason();

const io = captureIo;


const reading = (i: number): Acquired => ({
  sensor: 'th-1',
  time: 1_795_000_000_000 + i * 1000,
  clock: { synced: true, source: 'ntp' },
  meas: [{ code: 'temp', kind: 'Rtd', value: `${(4 + i / 10).toFixed(1)}`, unit: '°C', flag: 'N' }],
  raw: [new Uint8Array(32).fill(i & 0xff)],
});

describe.skipIf(skip !== undefined)(`key lifecycle and attestation on a TPM${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let tpm: SwTpm;
  const cleanups: (() => Promise<unknown>)[] = [];
  beforeAll(async () => {
    tpm = await startSwTpm('stele-life');
  }, 90_000);
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    await tpm?.cleanup();
  });

  it('provision (attested), enrol, readings, rotate-key, reinstall, revoke, KEY_REVOKED_ERROR; stele verify --trust shows the key attested', async () => {
    const dir = await tempDir('lifecycle-tpm');
    cleanups.push(() => dir.remove());
    const data = join(dir.path, 'ingest');
    const gwData = join(dir.path, 'gw');
    const D = 'gw-tpm-life';
    const init = io();
    expect(await runIngest(['init', '--data', data], init)).toBe(0);
    const ingestKey = /public key (\S+)/.exec(init.stdout.text)![1]!;

    const prov = io();
    const provCode = await runGateway(
      ['provision', '--backend', 'tpm', '--module', TPM2_PKCS11_MODULE!, '--token', tpm.label, '--pin-file', tpm.pinFile, '--device-id', D, '--site', 'cold room 5',
        '--installer-key', join(dir.path, 'installer.pem'), '--new-installer-key', '--out', join(dir.path, 'usb'), '--require-attestation'],
      prov,
    );
    expect(prov.stderr.text).toBe('');
    expect(provCode).toBe(0);
    expect(prov.stdout.text).toMatch(/attestation: TPM2_Certify/);
    const request = JSON.parse(await readFile(join(dir.path, 'usb', `${D}.enrol.json`), 'utf8')) as { installer: { publicKey: string } };
    await writeFile(join(data, 'installer-keys.txt'), `${request.installer.publicKey}\n`, { mode: 0o600 });
    const keyJson = JSON.parse(await readFile(join(dir.path, 'usb', `${D}.key.json`), 'utf8')) as { keyId: string };

    const broker = await startBroker();
    cleanups.push(() => broker.close());
    const abort = new AbortController();
    const running = runIngest(['run', '--mqtt', broker.url, '--data', data, '--embedded-chain', '--batch-ms', '300', '--health-port', '0', '--log-level', 'warn'], { ...io(), signal: abort.signal });
    cleanups.push(async () => {
      abort.abort();
      await running;
    });
    await waitFor(async () => (await readFile(join(data, 'ingest-http.json'), 'utf8').catch(() => '')) !== '', 'ingest http', 60_000, 50);
    const { url } = JSON.parse(await readFile(join(data, 'ingest-http.json'), 'utf8')) as { url: string };
    const enrol = io();
    expect(await runIngest(['enrol', join(dir.path, 'usb', `${D}.enrol.cose`), '--data', data], enrol)).toBe(0);
    expect(enrol.stdout.text).toMatch(/attestation: TPM2_Certify .* checked; EK certificate issued by CN=swtpm-localca/);

    // The gateway's config names the TPM key as provisioning left it (key.json).
    const config = join(dir.path, 'gateway.yaml');
    await writeFile(
      config,
      `gateway:\n  id: ${D}\n  dataDir: ${gwData}\n# the device key lives in the TPM\nkey:\n  pkcs11:\n    kind: tpm\n    module: ${TPM2_PKCS11_MODULE}\n    token: ${tpm.label}\n    keyLabel: stele-device\n    keyId: ${keyJson.keyId}\n    pinFile: ${tpm.pinFile}\nbroker:\n  url: ${broker.url}\nhealth:\n  port: 0\n`,
    );

    /** The agent's part: `n` readings signed by the configured key, published until acked (or the rejection). */
    const send = async (n: number, rejected?: () => Promise<boolean>): Promise<number> => {
      const signer = await openSigner((await loadConfig(config)).key);
      const outbox = await Outbox.open(join(gwData, 'outbox'));
      const publisher = new Publisher({ mqttUrl: broker.url, deviceId: D, outbox, ingestKey: Buffer.from(ingestKey, 'base64url'), resendAfterMs: 500, reconnectPeriodMs: 100, maxReconnectPeriodMs: 500 });
      try {
        await publisher.start();
        for (let i = 0; i < n; i++) await outbox.take(reading(outbox.head().seq + 1), signer, D);
        publisher.notify();
        if (rejected !== undefined) await waitFor(rejected, 'the rejection', 30_000, 50);
        else await waitFor(() => outbox.ackedUpTo() === outbox.head().seq, `ack of seq ${outbox.head().seq}`, 30_000);
        return outbox.head().seq;
      } finally {
        await publisher.stop();
        await outbox.close();
        await signer.close?.();
      }
    };

    expect(await send(2)).toBe(2);
    const rot = io();
    expect(await runGateway(['rotate-key', '--config', config], rot)).toBe(0);
    expect(rot.stderr.text).toBe('');
    expect(rot.stdout.text).toMatch(/rotated gw-tpm-life at seq 3/);
    const rewritten = await readFile(config, 'utf8');
    expect(rewritten).toContain('# the device key lives in the TPM'); // comments kept
    expect(rewritten).not.toContain(keyJson.keyId);
    expect(await send(2)).toBe(5);

    await rm(join(gwData, 'outbox'), { recursive: true, force: true });
    const re = io();
    expect(await runGateway(['reinstall', '--config', config, '--ingest-url', url, '--ingest-key', ingestKey], re)).toBe(0);
    expect(re.stdout.text).toMatch(/resumes after seq 5 .* reinstall statement at seq 6/);
    expect(await send(1)).toBe(7);

    const rev = io();
    expect(await runIngest(['revoke', D, '--reason', 'stolen', '--data', data], rev)).toBe(0);
    expect(rev.stdout.text).toMatch(/after seq 7/);
    await send(1, async () => {
      const h = (await (await fetch(`${url}/health`)).json()) as { rejected: Record<string, number> };
      return (h.rejected['KEY_REVOKED_ERROR'] ?? 0) >= 1;
    });

    expect((await fetch(`${url}/flush`, { method: 'POST', headers: { authorization: `Bearer ${(await readFile(join(data, 'admin-token'), 'utf8')).trim()}` } })).status).toBe(200);
    const bundleFile = join(dir.path, 'bundle.json');
    await writeFile(bundleFile, await (await fetch(`${url}/bundle?device=${D}&first=1&last=7`)).text());
    const bundle = JSON.parse(await readFile(bundleFile, 'utf8')) as { lifecycle: { request?: string }[] };
    expect(bundle.lifecycle.filter((l) => l.request !== undefined)).toHaveLength(1); // the enrolment carries its request file

    // The authority pins swtpm's local CA (a test root) beside the ingest key and signs the policy.
    const draft = join(dir.path, 'draft.json');
    expect(await runIngest(['trust', 'export', '--data', data, '--out', draft], io())).toBe(0);
    const add = io();
    expect(await runTrust(['add-attestation-root', draft, '--cert', join(tpm.dir, 'localca', 'issuercert.pem'), '--name', 'swtpm local CA', '--test'], add)).toBe(0);
    const authorityKey = join(dir.path, 'authority.pem');
    const keygen = io();
    expect(await runTrust(['keygen', '--out', authorityKey], keygen)).toBe(0);
    const fingerprint = keygen.stdout.text.trim();
    const policy = join(dir.path, 'policy.cose');
    expect(await runTrust(['sign', draft, '--key', authorityKey, '--out', policy], io())).toBe(0);

    const verdictOf = async (...extra: string[]): Promise<Verdict> => {
      const ver = io();
      await runVerify([bundleFile, '--trust', policy, '--authority', fingerprint, '--json', ...extra], ver);
      return JSON.parse(ver.stdout.text) as Verdict;
    };
    const verdict = await verdictOf('--test-attestation-roots');
    expect(verdict.checks.flatMap((c) => c.failures.map((f) => f.code))).toEqual([]);
    expect(verdict.summary.keys!.map((k) => ({ backend: k.backend, attested: k.attested, via: k.via, until: k.until, revokedAfter: k.revokedAfter, signed: k.signed }))).toEqual([
      { backend: 'tpm', attested: true, via: 'enrolment', until: 3, revokedAfter: undefined, signed: [[1, 2]] },
      { backend: 'tpm', attested: false, via: 'rotation', until: undefined, revokedAfter: 7, signed: [[4, 5], [7, 7]] },
    ]);
    expect(verdict.summary.keys![0]!.attestation).toMatchObject({ kind: 'tpm2-certify', rootName: 'swtpm local CA', test: true });
    expect(verdict.notes.map((n) => n.id)).toEqual(expect.arrayContaining(['key-rotated', 'agent-reinstalled', 'key-revoked']));
    const text = io();
    await runVerify([bundleFile, '--trust', policy, '--authority', fingerprint, '--test-attestation-roots', '--lang', 'en'], text);
    expect(text.stdout.text).toMatch(/attested tpm \(TPM2_Certify/);
    expect(text.stdout.text).toMatch(/declared tpm, not attested/); // the rotated key: no attestation travels with a rotation

    // With installer keys in the policy, the installer who countersigned (and vouched for the AK) must be listed.
    const withInstallers = async (publicKey: string, out: string): Promise<void> => {
      const d = JSON.parse(await readFile(draft, 'utf8')) as Record<string, unknown>;
      const kid = createHash('sha256').update(Buffer.from(publicKey, 'base64url')).digest('base64url');
      d.installerKeys = [{ alg: 'ES256', publicKey, kid, name: 'installer', validFrom: '2020-01-01T00:00:00Z', state: 'active' }];
      const f = join(dir.path, `${out}.json`);
      await writeFile(f, JSON.stringify(d, null, 2));
      expect(await runTrust(['sign', f, '--key', authorityKey, '--out', join(dir.path, out)], io())).toBe(0);
    };
    await withInstallers(request.installer.publicKey, 'listed.cose');
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
    await withInstallers(Buffer.concat([Buffer.from([4]), Buffer.from(other.x!, 'base64url'), Buffer.from(other.y!, 'base64url')]).toString('base64url'), 'unlisted.cose');
    const under = async (p: string): Promise<Verdict> => {
      const ver = io();
      await runVerify([bundleFile, '--trust', join(dir.path, p), '--authority', fingerprint, '--test-attestation-roots', '--json'], ver);
      return JSON.parse(ver.stdout.text) as Verdict;
    };
    expect((await under('listed.cose')).summary.keys![0]!.attested).toBe(true);
    const unlisted = await under('unlisted.cose');
    expect(unlisted.summary.keys![0]!.attested).toBe(false);
    expect(unlisted.notes.find((n) => n.id === 'key-not-attested')?.sentence.en).toMatch(/ENROLMENT_INSTALLER_UNTRUSTED/);

    // An edited request file no longer hashes to what ingest signed: a failure, not a quiet downgrade.
    const edited = JSON.parse(await readFile(bundleFile, 'utf8')) as { lifecycle: { request?: string }[] };
    const item = edited.lifecycle.find((l) => l.request !== undefined)!;
    const bytes = Buffer.from(item.request!, 'base64url');
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 1;
    item.request = bytes.toString('base64url');
    const editedFile = join(dir.path, 'edited.json');
    await writeFile(editedFile, JSON.stringify(edited));
    const ed = io();
    expect(await runVerify([editedFile, '--trust', policy, '--authority', fingerprint, '--test-attestation-roots', '--json'], ed)).toBe(1);
    expect((JSON.parse(ed.stdout.text) as Verdict).checks.flatMap((c) => c.failures.map((f) => f.code))).toContain('DEVICE_RECORD_MISMATCH_ERROR');

    // Without the test flag a test root does not count: declared, and a note says why.
    const strict = await verdictOf();
    expect(strict.summary.keys!.map((k) => k.attested)).toEqual([false, false]);
    expect(strict.notes.find((n) => n.id === 'key-not-attested')?.sentence.en).toMatch(/ATTESTATION_UNTRUSTED_ROOT: only a test root/);
  }, 240_000);
});
