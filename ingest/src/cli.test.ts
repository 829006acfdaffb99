import { access, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseBundle, utf8, sha256, GENESIS_PREV } from '@stele/core';
import { verifyBundle } from '@stele/core/verify';
import { policyTrustingBundle } from '@stele/core/testing';
import { ANVIL_DEV_PRIVATE_KEY, readAnchor, startAnvil } from './anchor/index.ts';
import { runIngest, type IngestIo } from './cli.ts';
import { loadSoftwareSigner, provisionGateway } from '@stele/device';
import { LevelStore } from './store/index.ts';
import { readingAt, signedReading, startBroker, tempDir, TestGateway, waitFor } from './test-helpers.ts';
import { captureIo } from '@stele/testkit';

const io = captureIo;

/** `stele gateway provision` for a software key into dir/usb, by `installerKeyFile` (created). */
async function provision(dir: string, deviceId: string, installerKeyFile = join(dir, 'installer.pem')) {
  const r = await provisionGateway({
    backend: { kind: 'software', keyFile: join(dir, `${deviceId}.pem`) },
    deviceId,
    site: 'stack 2',
    instruments: [{ id: 'cems-1' }],
    installerKeyFile,
    createInstallerKey: true,
    outDir: join(dir, 'usb'),
  });
  return { ...r, device: await loadSoftwareSigner(join(dir, `${deviceId}.pem`)), installerPublicKey: r.request.installer.publicKey };
}
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('stele ingest', () => {
  it('prints help for each command and exits 2 on bad usage', async () => {
    for (const argv of [['--help'], ['init', '--help'], ['run', '--help'], ['enrol', '--help'], ['revoke', '--help']]) {
      const o = io();
      expect(await runIngest(argv, o)).toBe(0);
      expect(o.stdout.text).toMatch(/usage: stele ingest/);
    }
    const o = io();
    expect(await runIngest(['run', '--data', '/tmp/x'], o)).toBe(2);
    expect(o.stderr.text).toMatch(/--mqtt/);
    expect(await runIngest(['run', '--mqtt', 'mqtt://127.0.0.1:1', '--data', '/tmp/x', '--embedded-chain', '--rpc', 'http://x'], io())).toBe(2);
    expect(await runIngest(['run', '--bogus'], io())).toBe(2);
    expect(await runIngest(['frobnicate'], io())).toBe(2);
    expect(await runIngest(['enrol'], io())).toBe(2);
    expect(await runIngest(['revoke', 'gw-1', '--data', '/tmp/x'], io())).toBe(2); // no --reason
    expect(await runIngest(['init'], io())).toBe(2);
    for (const bad of ['0', '65537', 'many']) {
      const e = io();
      expect(await runIngest(['run', '--mqtt', 'mqtt://127.0.0.1:1', '--data', '/tmp/x', '--embedded-chain', '--verify-in-flight', bad], e)).toBe(2);
      expect(e.stderr.text).toMatch(/--verify-in-flight must be/);
    }
    for (const bad of ['65535', 'lots']) {
      const e = io();
      expect(await runIngest(['run', '--mqtt', 'mqtt://127.0.0.1:1', '--data', '/tmp/x', '--embedded-chain', '--queue-bytes', bad], e)).toBe(2);
      expect(e.stderr.text).toMatch(/--queue-bytes must be an integer >= 65536/);
    }
  });

  it('init makes the key once, prints its kid, and run never mints one (a wrong --key path fails)', async () => {
    const dir = await tempDir('ingest-cli-init');
    cleanups.push(() => dir.remove());
    const data = join(dir.path, 'data');
    const o = io();
    expect(await runIngest(['run', '--mqtt', 'mqtt://127.0.0.1:1', '--data', data, '--embedded-chain'], o)).toBe(1);
    expect(o.stderr.text).toMatch(/INGEST_KEY_MISSING.*stele ingest init/);
    const i = io();
    expect(await runIngest(['init', '--data', data], i)).toBe(0);
    const kid = /ingest key id \(kid\) (\S+)/.exec(i.stdout.text)?.[1];
    const key = await loadSoftwareSigner(join(data, 'keys', 'ingest.pem'));
    expect(kid).toBe(Buffer.from(key.keyId).toString('base64url'));
    expect((await stat(join(data, 'keys', 'ingest.pem'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(data, 'keys'))).mode & 0o777).toBe(0o700);
    expect((await stat(data)).mode & 0o777).toBe(0o700);
    expect((await stat(join(data, 'ingest-key.json'))).mode & 0o777).toBe(0o600);
    const again = io();
    expect(await runIngest(['init', '--data', data], again)).toBe(1);
    expect(again.stderr.text).toMatch(/INGEST_KEY_EXISTS/);
    const wrong = io();
    const typo = join(dir.path, 'keys', 'ingest-typo.pem');
    expect(await runIngest(['run', '--mqtt', 'mqtt://127.0.0.1:1', '--data', data, '--embedded-chain', '--key', typo], wrong)).toBe(1);
    expect(wrong.stderr.text).toMatch(/INGEST_KEY_MISSING/);
    await expect(access(typo)).rejects.toThrow();
    // An anchor key file others can read is refused with the fix named.
    const anchorKey = join(dir.path, 'anchor.key');
    await writeFile(anchorKey, `0x${'11'.repeat(32)}\n`, { mode: 0o644 });
    const loose = io();
    expect(await runIngest(['run', '--mqtt', 'mqtt://127.0.0.1:1', '--data', data, '--rpc', 'http://127.0.0.1:1', '--anchor-key-file', anchorKey], loose)).toBe(1);
    expect(loose.stderr.text).toMatch(/INGEST_FILE_MODE.*chmod 600/);
  });

  it('run --rpc refuses a chain with no recorded contract (ANCHOR_CONTRACT_MISSING); deploy-contract deploys once', async () => {
    const dir = await tempDir('ingest-cli-deploy');
    cleanups.push(() => dir.remove());
    const data = join(dir.path, 'data');
    expect(await runIngest(['init', '--data', data], io())).toBe(0);
    const chain = await startAnvil({ stateDir: join(dir.path, 'chain') });
    cleanups.push(() => chain.stop());
    const keyFile = join(dir.path, 'anchor.key');
    await writeFile(keyFile, `${ANVIL_DEV_PRIVATE_KEY}\n`, { mode: 0o600 });
    const missing = io();
    expect(await runIngest(['run', '--mqtt', 'mqtt://127.0.0.1:1', '--data', data, '--rpc', chain.rpcUrl, '--anchor-key-file', keyFile], missing)).toBe(1);
    expect(missing.stderr.text).toMatch(/ANCHOR_CONTRACT_MISSING.*deploy-contract/);
    const d = io();
    expect(await runIngest(['deploy-contract', '--rpc', chain.rpcUrl, '--anchor-key-file', keyFile, '--data', data], d)).toBe(0);
    const address = /deployed SteleAnchor at (0x[0-9a-f]{40})/.exec(d.stdout.text)?.[1];
    expect(address).toBeDefined();
    const again = io();
    expect(await runIngest(['deploy-contract', '--rpc', chain.rpcUrl, '--anchor-key-file', keyFile, '--data', data], again)).toBe(1);
    expect(again.stderr.text).toMatch(/already records a contract/);
  });

  it('enrols the installer\'s .enrol.cose into the store when ingest is not running; refuses the .json copy and untrusted installers', async () => {
    const dir = await tempDir('ingest-cli-enrol');
    cleanups.push(() => dir.remove());
    const data = join(dir.path, 'data');
    expect(await runIngest(['init', '--data', data], io())).toBe(0);
    const p = await provision(dir.path, 'gw-cli-1');
    const untrusted = io();
    expect(await runIngest(['enrol', p.requestFile, '--data', data], untrusted)).toBe(1);
    expect(untrusted.stderr.text).toMatch(/ENROLMENT_INSTALLER_UNTRUSTED/);
    expect(untrusted.stderr.text).toMatch(/installer-keys.txt/);
    await writeFile(join(data, 'installer-keys.txt'), `# installer 7\n${p.installerPublicKey}\n`);
    const ok = io();
    expect(await runIngest(['enrol', p.requestFile, '--data', data], ok)).toBe(0);
    expect(ok.stdout.text).toMatch(/enrolled gw-cli-1/);
    expect(await runIngest(['enrol', p.requestFile, '--data', data], io())).toBe(0); // idempotent
    const json = io();
    expect(await runIngest(['enrol', p.jsonFile, '--data', data], json)).toBe(1);
    expect(json.stderr.text).toContain(`enrol ${p.requestFile} instead`);
    const bad = join(dir.path, 'bad.enrol.cose');
    const bytes = new Uint8Array(await readFile(p.requestFile));
    bytes[bytes.length - 5]! ^= 1;
    await writeFile(bad, bytes);
    const b = io();
    expect(await runIngest(['enrol', bad, '--data', data], b)).toBe(1);
    expect(b.stderr.text).toMatch(/INGEST_ENROL_ERROR: ENROLMENT_/);
    const store = await LevelStore.open(join(data, 'store'));
    expect((await store.listDevices()).map((d) => d.record.deviceId)).toEqual(['gw-cli-1']);
    await store.close();
    // offline revocation, through the same service code
    const r = io();
    expect(await runIngest(['revoke', 'gw-cli-1', '--reason', 'stolen', '--data', data], r)).toBe(0);
    expect(r.stdout.text).toMatch(/revoked gw-cli-1 key .* after seq 0/);
    const u = io();
    expect(await runIngest(['revoke', 'gw-nobody', '--reason', 'stolen', '--data', data], u)).toBe(1);
    expect(u.stderr.text).toMatch(/INGEST_UNKNOWN_DEVICE/);
  });

  it(
    'runs with an embedded chain, enrols through its HTTP endpoint, finds a reading by its frame and stops on abort',
    async () => {
      const dir = await tempDir('ingest-cli-run');
      cleanups.push(() => dir.remove());
      const broker = await startBroker();
      cleanups.push(() => broker.close());
      expect(await runIngest(['init', '--data', dir.path], io())).toBe(0);
      const p = await provision(dir.path, 'gw-cli-3');
      await writeFile(join(dir.path, 'installer-keys.txt'), `${p.installerPublicKey}\n`);
      const out = io();
      const abort = new AbortController();
      const running = runIngest(
        ['run', '--mqtt', broker.url, '--data', dir.path, '--embedded-chain', '--batch-ms', '200', '--health-port', '0', '--worker-id', 'w-cli'],
        { ...out, signal: abort.signal } satisfies IngestIo,
      );
      cleanups.push(async () => {
        abort.abort();
        await running;
      });
      await waitFor(() => out.stdout.lines().some((l) => l['msg'] === 'ingest running'), 'ingest running', 60_000);
      const { url } = JSON.parse(await readFile(join(dir.path, 'ingest-http.json'), 'utf8')) as { url: string };
      expect((await (await fetch(`${url}/health`)).json()) as object).toMatchObject({ status: 'ok', readings: 0 });
      expect((await stat(join(dir.path, 'store'))).mode & 0o777).toBe(0o700);
      expect((await stat(join(dir.path, 'ingest-http.json'))).mode & 0o777).toBe(0o600);

      const signer = p.device;
      const e = io();
      expect(await runIngest(['enrol', p.requestFile, '--data', dir.path], e)).toBe(0); // through ingest-http.json
      expect(e.stdout.text).toMatch(/enrolled gw-cli-3/);
      const q = await provision(join(dir.path, 'other'), 'gw-cli-4');
      const e0 = io();
      expect(await runIngest(['enrol', q.requestFile, '--data', dir.path], e0)).toBe(1); // installer not trusted by the running ingest
      expect(e0.stderr.text).toMatch(/ENROLMENT_INSTALLER_UNTRUSTED/);
      const adminToken = (await readFile(join(dir.path, 'admin-token'), 'utf8')).trim();
      const json = await fetch(`${url}/enrol`, { method: 'POST', headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' }, body: await readFile(p.jsonFile) });
      expect(json.status).toBe(400);
      expect(((await json.json()) as { error: string }).error).toMatch(/enrol\.cose/);

      const frame = utf8('##0088QN=20260101000000000;ST=31;CN=2011;PW=123456;MN=X;Flag=5;CP=&&a21026-Rtd=1.0,a21026-Flag=N&&ABCD\r\n');
      const r = await signedReading(signer, { ...readingAt('gw-cli-3', 1, GENESIS_PREV), raw: [sha256(frame)] });
      const gw = await TestGateway.connect(broker.url, 'gw-cli-3');
      cleanups.push(() => gw.close());
      await gw.publish(r);
      await waitFor(() => gw.ackedUpTo === 1, 'ack');
      expect((await fetch(`${url}/flush`, { method: 'POST' })).status).toBe(401); // the admin token is required
      const token = (await readFile(join(dir.path, 'admin-token'), 'utf8')).trim();
      expect((await fetch(`${url}/flush`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })).status).toBe(200);

      const byBody = (await (await fetch(`${url}/frames`, { method: 'POST', body: Buffer.from(frame) })).json()) as { readings: unknown[]; bundles: unknown[] };
      expect(byBody.readings).toEqual([{ deviceId: 'gw-cli-3', seq: 1 }]);
      const byHash = (await (await fetch(`${url}/frames/${Buffer.from(sha256(frame)).toString('hex')}`)).json()) as { bundles: unknown[] };
      const noTime = (b: unknown[]) => b.map((x) => ({ ...(x as object), createdAt: undefined }));
      expect(noTime(byHash.bundles)).toEqual(noTime(byBody.bundles));
      const bundle = parseBundle(byBody.bundles[0]);
      const verdict = await verifyBundle(bundle, { anchorReader: (ref, batchId, rpc) => readAnchor(rpc ?? ref.rpc!, ref, batchId), trust: await policyTrustingBundle(bundle) });
      expect(verdict.state).toBe('verified');
      expect((await fetch(`${url}/frames/${'00'.repeat(32)}`)).status).toBe(404);
      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(metrics).toMatch(/^stele_ingest_readings_total\{worker="w-cli"\} 1$/m);
      expect(metrics).toMatch(/^stele_ingest_committed_total\{worker="w-cli"\} 1$/m);
      expect(out.stdout.lines().some((l) => l['worker'] === 'w-cli')).toBe(true);

      abort.abort();
      expect(await running).toBe(0);
      expect(out.stdout.lines().some((l) => l['msg'] === 'ingest stopped')).toBe(true);
    },
    120_000,
  );
});
