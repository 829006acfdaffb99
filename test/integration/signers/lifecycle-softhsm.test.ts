/**
 * Issue #9 on SoftHSM2: the ingest key made on a PKCS#11 token by `stele ingest init --pkcs11-module`, a gateway
 * provisioned on the token by `stele gateway provision --backend pkcs11`, its `.enrol.cose` enrolled, readings
 * signed on the token, `stele ingest revoke`, the next reading rejected KEY_REVOKED_ERROR, and `stele verify` showing
 * the pkcs11 key and its revocation. Skips like softhsm.test.ts (an error under CI=true).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Verdict } from '@stele/core/verify/index.ts';
import { Pkcs11Signer } from '@stele/device';
import { Outbox, Publisher, type Acquired } from '@stele/edge-agent';
import { runGateway } from '@stele/edge-agent/cli.ts';
import { runIngest } from '@stele/ingest/cli.ts';
import { startBroker, tempDir } from '@stele/ingest/test-helpers.ts';
import { runVerify } from '@stele/verifier/cli.ts';
import { makeSoftHsmToken, SOFTHSM_MODULE, softhsmSkipReason, type SoftHsmToken } from './helpers.ts';

const skip = await softhsmSkipReason();

class Sink {
  text = '';
  write(s: string): boolean {
    this.text += s;
    return true;
  }
}
const io = () => ({ stdin: process.stdin, stdout: new Sink() as unknown as NodeJS.WritableStream & Sink, stderr: new Sink() as unknown as NodeJS.WritableStream & Sink });

async function until(cond: () => Promise<boolean> | boolean, what: string, limitMs = 20_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

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
    await until(async () => (await readFile(join(data, 'ingest-http.json'), 'utf8').catch(() => '')) !== '', 'ingest http', 60_000);
    const { url } = JSON.parse(await readFile(join(data, 'ingest-http.json'), 'utf8')) as { url: string };
    expect(await runIngest(['enrol', join(dir.path, 'usb', `${D}.enrol.cose`), '--data', data], io())).toBe(0);

    const keyConfig = JSON.parse(await readFile(join(dir.path, 'usb', `${D}.key.json`), 'utf8')) as Parameters<typeof Pkcs11Signer.open>[0];
    const signer = await Pkcs11Signer.open(keyConfig);
    cleanups.push(() => signer.close());
    const outbox = await Outbox.open(join(dir.path, 'outbox'));
    cleanups.push(() => outbox.close());
    const health = (await (await fetch(`${url}/health`)).json()) as { ingestKey: { publicKey: string } };
    const publisher = new Publisher({ mqttUrl: broker.url, deviceId: D, outbox, ingestKey: Buffer.from(health.ingestKey.publicKey, 'base64url'), resendAfterMs: 500, reconnectPeriodMs: 100, maxReconnectPeriodMs: 500 });
    cleanups.push(() => publisher.stop());
    await publisher.start();
    for (let i = 1; i <= 2; i++) await outbox.take(reading(i), signer, D);
    publisher.notify();
    await until(() => outbox.ackedUpTo() === 2, 'ack of seq 2');

    expect(await runIngest(['revoke', D, '--reason', 'stolen', '--data', data], io())).toBe(0);
    await outbox.take(reading(3), signer, D);
    publisher.notify();
    await until(async () => ((await (await fetch(`${url}/health`)).json()) as { rejected: Record<string, number> }).rejected['KEY_REVOKED_ERROR'] !== undefined, 'KEY_REVOKED_ERROR');

    expect((await fetch(`${url}/flush`, { method: 'POST', headers: { authorization: `Bearer ${(await readFile(join(data, 'admin-token'), 'utf8')).trim()}` } })).status).toBe(200);
    const bundleFile = join(dir.path, 'bundle.json');
    await writeFile(bundleFile, await (await fetch(`${url}/bundle?device=${D}&first=1&last=2`)).text());
    const ver = io();
    await runVerify([bundleFile, '--json'], ver);
    const verdict = JSON.parse(ver.stdout.text) as Verdict;
    expect(verdict.checks.flatMap((c) => c.failures.map((f) => f.code))).toEqual([]);
    expect(verdict.summary.keys!.map((k) => ({ backend: k.backend, revokedAfter: k.revokedAfter, signed: k.signed }))).toEqual([{ backend: 'pkcs11', revokedAfter: 2, signed: [[1, 2]] }]);
    expect(verdict.notes.map((n) => n.id)).toContain('key-revoked');
  }, 120_000);
});
