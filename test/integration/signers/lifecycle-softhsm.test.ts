/**
 * Issue #9 on SoftHSM2: the ingest key made on a PKCS#11 token by `stele ingest init --pkcs11-module`, a gateway
 * provisioned on the token by `stele gateway provision --backend pkcs11`, its `.enrol.cose` enrolled, readings
 * signed on the token, `stele gateway rotate-key` (a new key on the token), `stele gateway reinstall`,
 * `stele ingest revoke`, the next reading rejected KEY_REVOKED_ERROR, and `stele verify` showing both pkcs11 keys,
 * declared (never attested), the rotation, the reinstall and the revocation. Skips like softhsm.test.ts (an error under CI=true).
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Verdict } from '@stele/core/verify';
import { Outbox, Publisher, type Acquired } from '@stele/edge-agent';
import { runGateway } from '@stele/edge-agent/cli';
import { loadConfig, openSigner } from '@stele/edge-agent';
import { runIngest } from '@stele/ingest/cli';
import { startBroker, tempDir } from '@stele/ingest/testing';
import { runVerify } from '@stele/verifier/cli';
import { makeSoftHsmToken, SOFTHSM_MODULE, softhsmSkipReason, type SoftHsmToken } from './helpers.ts';
import { captureIo, waitFor } from '@stele/testkit';

const skip = await softhsmSkipReason();

const io = captureIo;


const reading = (i: number): Acquired => ({
  sensor: 'cems-1',
  time: 1_795_000_000_000 + i * 1000,
  clock: { synced: true, source: 'ntp' },
  meas: [{ code: 'a21026', kind: 'Rtd', value: `${20 + i}.0`, unit: 'mg/m³', flag: 'N' }],
  raw: [new Uint8Array(32).fill(i)],
});

describe.skipIf(skip !== undefined)(`key lifecycle on SoftHSM2${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let token: SoftHsmToken;
  const cleanups: (() => Promise<unknown>)[] = [];
  beforeAll(async () => {
    token = await makeSoftHsmToken('stele-life');
  });
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    await token?.cleanup();
  });

  it('ingest key and gateway key on the token: enrol, readings, revoke, KEY_REVOKED_ERROR, stele verify', async () => {
    const dir = await tempDir('lifecycle-softhsm');
    cleanups.push(() => dir.remove());
    const data = join(dir.path, 'ingest');
    const D = 'gw-hsm-1';
    const init = io();
    expect(await runIngest(['init', '--data', data, '--pkcs11-module', SOFTHSM_MODULE!, '--token', token.label, '--pin-file', token.pinFile], init)).toBe(0);
    expect(init.stdout.text).toMatch(/backend pkcs11/);
    const prov = io();
    expect(
      await runGateway(
        ['provision', '--backend', 'pkcs11', '--module', SOFTHSM_MODULE!, '--token', token.label, '--pin-file', token.pinFile, '--device-id', D, '--site', 'lab', '--installer-key', join(dir.path, 'installer.pem'), '--new-installer-key', '--out', join(dir.path, 'usb')],
        prov,
      ),
    ).toBe(0);
    const request = JSON.parse(await readFile(join(dir.path, 'usb', `${D}.enrol.json`), 'utf8')) as { installer: { publicKey: string } };
    await writeFile(join(data, 'installer-keys.txt'), `${request.installer.publicKey}\n`);

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
    expect(await runIngest(['enrol', join(dir.path, 'usb', `${D}.enrol.cose`), '--data', data], io())).toBe(0);

    const keyJson = JSON.parse(await readFile(join(dir.path, 'usb', `${D}.key.json`), 'utf8')) as { keyId: string };
    const health = (await (await fetch(`${url}/health`)).json()) as { ingestKey: { publicKey: string } };
    const ingestKey = health.ingestKey.publicKey;
    const gwData = join(dir.path, 'gw');
    const config = join(dir.path, 'gateway.yaml');
    await writeFile(
      config,
      `gateway:\n  id: ${D}\n  dataDir: ${gwData}\nkey:\n  pkcs11:\n    module: ${SOFTHSM_MODULE}\n    token: ${token.label}\n    keyLabel: stele-device\n    keyId: ${keyJson.keyId}\n    pinFile: ${token.pinFile}\nbroker:\n  url: ${broker.url}\nhealth:\n  port: 0\n`,
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
        else await waitFor(() => outbox.ackedUpTo() === outbox.head().seq, `ack of seq ${outbox.head().seq}`, 30_000, 50);
        return outbox.head().seq;
      } finally {
        await publisher.stop();
        await outbox.close();
        await signer.close?.();
      }
    };
    expect(await send(2)).toBe(2);

    // rotate-key on the token: a new key pair on SoftHSM, the config switched to it.
    const rot = io();
    expect(await runGateway(['rotate-key', '--config', config], rot)).toBe(0);
    expect(rot.stdout.text).toMatch(/rotated gw-hsm-1 at seq 3/);
    expect(await send(1)).toBe(4);

    // reinstall: a new SD card, the key intact on the token; the head comes from ingest, signed.
    await rm(join(gwData, 'outbox'), { recursive: true, force: true });
    const re = io();
    expect(await runGateway(['reinstall', '--config', config, '--ingest-url', url, '--ingest-key', ingestKey], re)).toBe(0);
    expect(re.stdout.text).toMatch(/resumes after seq 4 .* reinstall statement at seq 5/);
    expect(await send(1)).toBe(6);

    expect(await runIngest(['revoke', D, '--reason', 'stolen', '--data', data], io())).toBe(0);
    await send(1, async () => ((await (await fetch(`${url}/health`)).json()) as { rejected: Record<string, number> }).rejected['KEY_REVOKED_ERROR'] !== undefined);

    expect((await fetch(`${url}/flush`, { method: 'POST', headers: { authorization: `Bearer ${(await readFile(join(data, 'admin-token'), 'utf8')).trim()}` } })).status).toBe(200);
    const bundleFile = join(dir.path, 'bundle.json');
    await writeFile(bundleFile, await (await fetch(`${url}/bundle?device=${D}&first=1&last=6`)).text());
    const ver = io();
    await runVerify([bundleFile, '--json'], ver);
    const verdict = JSON.parse(ver.stdout.text) as Verdict;
    expect(verdict.checks.flatMap((c) => c.failures.map((f) => f.code))).toEqual([]);
    expect(verdict.summary.keys!.map((k) => ({ backend: k.backend, attested: k.attested, until: k.until, revokedAfter: k.revokedAfter, signed: k.signed }))).toEqual([
      { backend: 'pkcs11', attested: false, until: 3, revokedAfter: undefined, signed: [[1, 2]] },
      { backend: 'pkcs11', attested: false, until: undefined, revokedAfter: 6, signed: [[4, 4], [6, 6]] },
    ]);
    expect(verdict.notes.map((n) => n.id)).toEqual(expect.arrayContaining(['key-rotated', 'agent-reinstalled', 'key-revoked']));
    // A SoftHSM2 key is declared, never attested (FORMAT.md §14.5).
    expect(verdict.checks.find((c) => c.id === 'enrolment')!.sentence.en).toMatch(/declared pkcs11, not attested/);
  }, 120_000);
});
