/**
 * Issue #9 acceptance: the key lifecycle through the CLIs, as an installer and an operator do it, with ingest
 * running the whole time (its admin HTTP API) and its embedded chain:
 *   stele ingest init -> stele gateway provision (software key) -> stele ingest enrol X.enrol.cose -> readings
 *   -> stele gateway rotate-key -> readings under the new key -> new SD card: stele gateway reinstall -> readings
 *   -> stele ingest revoke (stolen) -> the next reading is rejected KEY_REVOKED_ERROR
 *   -> stele verify reports which key signed which seq, the rotation, the reinstall and the revocation.
 * The agent's part (taking readings into the outbox and publishing them) runs in-process with the agent's own
 * Outbox and Publisher, on the outbox folder the config names.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Verdict } from '@stele/core/verify';
import { loadSoftwareSigner } from '@stele/device';
import { Outbox, Publisher, type Acquired } from '@stele/edge-agent';
import { runGateway } from '@stele/edge-agent/cli';
import { runIngest } from '@stele/ingest/cli';
import { startBroker, tempDir, waitFor } from '@stele/ingest/testing';
import { runVerify } from '@stele/verifier/cli';
import { captureIo } from '@stele/testkit';

const io = captureIo;


function reading(i: number): Acquired {
  return {
    sensor: 'cems-1',
    time: 1_795_000_000_000 + i * 1000,
    clock: { synced: true, source: 'ntp' },
    meas: [{ code: 'a21026', kind: 'Rtd', value: (20 + i / 10).toFixed(1), unit: 'mg/m³', flag: 'N' }],
    raw: [new Uint8Array(32).fill(i & 0xff)],
  };
}

describe('key lifecycle through the CLIs (software key)', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  it('enrols the .enrol.cose, rotates, reinstalls and revokes; stele verify names the right key for every reading', async () => {
    const dir = await tempDir('stele-lifecycle-e2e');
    cleanups.push(() => dir.remove());
    const data = join(dir.path, 'ingest');
    const gwData = join(dir.path, 'gw');
    const keyPath = join(dir.path, 'gateway.pem');
    const D = 'gw-life-e2e';
    const broker = await startBroker();
    cleanups.push(() => broker.close());

    // The operator makes the ingest key once; its public key is what the installer pins for reinstall.
    const init = io();
    expect(await runIngest(['init', '--data', data], init)).toBe(0);
    const ingestKey = /public key (\S+)/.exec(init.stdout.text)![1]!;

    // The installer provisions the gateway (no network) and hands over D.enrol.cose.
    const prov = io();
    expect(
      await runGateway(['provision', '--backend', 'software', '--key-file', keyPath, '--device-id', D, '--site', 'stack 2', '--installer-key', join(dir.path, 'installer.pem'), '--new-installer-key', '--out', join(dir.path, 'usb')], prov),
    ).toBe(0);
    const request = JSON.parse(await readFile(join(dir.path, 'usb', `${D}.enrol.json`), 'utf8')) as { installer: { publicKey: string } };
    await writeFile(join(data, 'installer-keys.txt'), `${request.installer.publicKey}\n`, { mode: 0o600 });

    const abort = new AbortController();
    const out = io();
    const running = runIngest(['run', '--mqtt', broker.url, '--data', data, '--embedded-chain', '--batch-ms', '300', '--health-port', '0', '--log-level', 'warn'], { ...out, signal: abort.signal });
    cleanups.push(async () => {
      abort.abort();
      await running;
    });
    await waitFor(async () => (await readFile(join(data, 'ingest-http.json'), 'utf8').catch(() => '')) !== '', 'ingest http', 60_000, 50);
    const { url } = JSON.parse(await readFile(join(data, 'ingest-http.json'), 'utf8')) as { url: string };

    const enrol = io();
    expect(await runIngest(['enrol', join(dir.path, 'usb', `${D}.enrol.cose`), '--data', data], enrol)).toBe(0);

    const config = join(dir.path, 'gateway.yaml');
    await writeFile(config, `gateway:\n  id: ${D}\n  dataDir: ${gwData}\nkey:\n  software:\n    path: ${keyPath}\nbroker:\n  url: ${broker.url}\nhealth:\n  port: 0\n`);

    /** The agent's part: take `n` readings signed by the configured key and publish until ingest acks them all. */
    const send = async (n: number, rejected?: () => Promise<boolean>): Promise<number> => {
      const signer = await loadSoftwareSigner(keyPath);
      const outbox = await Outbox.open(join(gwData, 'outbox'));
      const publisher = new Publisher({ mqttUrl: broker.url, deviceId: D, outbox, ingestKey: Buffer.from(ingestKey, 'base64url'), resendAfterMs: 500, reconnectPeriodMs: 100, maxReconnectPeriodMs: 500 });
      try {
        await publisher.start();
        for (let i = 0; i < n; i++) await outbox.take(reading(outbox.head().seq + 1), signer, D);
        publisher.notify();
        if (rejected !== undefined) await waitFor(rejected, 'the rejection', 20_000, 50);
        else await waitFor(() => outbox.ackedUpTo() === outbox.head().seq, `ack of seq ${outbox.head().seq}`, 20_000);
        return outbox.head().seq;
      } finally {
        await publisher.stop();
        await outbox.close();
      }
    };

    expect(await send(3)).toBe(3); // seq 1..3 under the enrolled key

    const rot = io();
    expect(await runGateway(['rotate-key', '--config', config], rot)).toBe(0); // seq 4: the rotation
    expect(rot.stdout.text).toMatch(/rotated gw-life-e2e at seq 4/);
    expect(await send(2)).toBe(6); // seq 5..6 under the new key

    // A new SD card: the outbox is gone, the key is intact. The head comes from ingest, signed.
    await rm(join(gwData, 'outbox'), { recursive: true, force: true });
    const wrongKey = io();
    expect(await runGateway(['reinstall', '--config', config, '--ingest-url', url, '--ingest-key', request.installer.publicKey], wrongKey)).toBe(1);
    expect(wrongKey.stderr.text).toMatch(/REINSTALL_HEAD_UNVERIFIED/);
    await rm(join(gwData, 'outbox'), { recursive: true, force: true });
    const re = io();
    expect(await runGateway(['reinstall', '--config', config, '--ingest-url', url, '--ingest-key', ingestKey], re)).toBe(0);
    expect(re.stdout.text).toMatch(/resumes after seq 6 .* reinstall statement at seq 7/);
    expect(await send(2)).toBe(9); // seq 8..9

    // Stolen: the operator revokes the key while ingest runs; the thief's next reading is refused.
    const rev = io();
    expect(await runIngest(['revoke', D, '--reason', 'stolen', '--data', data], rev)).toBe(0);
    expect(rev.stdout.text).toMatch(/after seq 9/);
    await send(1, async () => {
      const h = (await (await fetch(`${url}/health`)).json()) as { rejected: Record<string, number> };
      return (h.rejected['KEY_REVOKED_ERROR'] ?? 0) >= 1;
    });

    expect((await fetch(`${url}/flush`, { method: 'POST', headers: { authorization: `Bearer ${(await readFile(join(data, 'admin-token'), 'utf8')).trim()}` } })).status).toBe(200);
    const bundle = await (await fetch(`${url}/bundle?device=${D}&first=1&last=9`)).text();
    const bundleFile = join(dir.path, 'bundle.json');
    await writeFile(bundleFile, bundle);
    const ver = io();
    const code = await runVerify([bundleFile, '--json'], ver);
    const verdict = JSON.parse(ver.stdout.text) as Verdict;
    expect(verdict.checks.flatMap((c) => c.failures.map((f) => f.code))).toEqual([]);
    expect(code).not.toBe(1);
    const keys = verdict.summary.keys!;
    expect(keys.map((k) => ({ via: k.via, from: k.from, until: k.until, revokedAfter: k.revokedAfter, signed: k.signed }))).toEqual([
      { via: 'enrolment', from: 1, until: 4, revokedAfter: undefined, signed: [[1, 3]] },
      { via: 'rotation', from: 5, until: undefined, revokedAfter: 9, signed: [[5, 6], [8, 9]] },
    ]);
    const notes = verdict.notes.map((n) => n.id);
    expect(notes).toEqual(expect.arrayContaining(['key-rotated', 'agent-reinstalled', 'key-revoked']));
    const text = io();
    await runVerify([bundleFile, '--lang', 'en'], text);
    expect(text.stdout.text).toMatch(/revoked/i);
  }, 120_000);
});
