import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseBundle } from '@stele/core/bundle.ts';
import { utf8 } from '@stele/core/bytes.ts';
import { sha256 } from '@stele/core/hash.ts';
import { GENESIS_PREV } from '@stele/core/reading.ts';
import { verifyBundle } from '@stele/core/verify/index.ts';
import { policyTrustingBundle } from '@stele/core/verify/test-bundle.ts';
import { readAnchor } from './anchor/index.ts';
import { runIngest, type IngestIo } from './cli.ts';
import { IngestStore } from './store.ts';
import { enrolmentOf, readingAt, signedReading, startBroker, tempDir, testSigner, TestGateway, waitFor } from './test-helpers.ts';

class Sink {
  text = '';
  write(s: string): boolean {
    this.text += s;
    return true;
  }
  lines(): Record<string, unknown>[] {
    return this.text
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }
}

const io = () => ({ stdout: new Sink(), stderr: new Sink() });
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('stele ingest', () => {
  it('prints help for each command and exits 2 on bad usage', async () => {
    for (const argv of [['--help'], ['run', '--help'], ['enrol', '--help']]) {
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
  });

  it('enrols into the store when ingest is not running, idempotently, and refuses a bad record', async () => {
    const dir = await tempDir('ingest-cli-enrol');
    cleanups.push(() => dir.remove());
    const signer = testSigner();
    const file = join(dir.path, 'gw.json');
    await writeFile(file, JSON.stringify(enrolmentOf(signer, 'gw-cli-1')));
    expect(await runIngest(['enrol', file, '--data', dir.path], io())).toBe(0);
    expect(await runIngest(['enrol', file, '--data', dir.path], io())).toBe(0);
    const bad = join(dir.path, 'bad.json');
    await writeFile(bad, JSON.stringify({ ...enrolmentOf(signer, 'gw-cli-2'), kid: 'AAAA' }));
    const o = io();
    expect(await runIngest(['enrol', bad, '--data', dir.path], o)).toBe(1);
    expect(o.stderr.text).toMatch(/INGEST_ENROL_ERROR/);
    const other = join(dir.path, 'other.json');
    await writeFile(other, JSON.stringify(enrolmentOf(testSigner(), 'gw-cli-1')));
    const o2 = io();
    expect(await runIngest(['enrol', other, '--data', dir.path], o2)).toBe(1);
    expect(o2.stderr.text).toMatch(/INGEST_ENROL_CONFLICT/);
    const store = await IngestStore.open(join(dir.path, 'store'));
    expect((await store.listDevices()).map((d) => d.record.deviceId)).toEqual(['gw-cli-1']);
    await store.close();
  });

  it(
    'runs with an embedded chain, enrols through its HTTP endpoint, finds a reading by its frame and stops on abort',
    async () => {
      const dir = await tempDir('ingest-cli-run');
      cleanups.push(() => dir.remove());
      const broker = await startBroker();
      cleanups.push(() => broker.close());
      const out = io();
      const abort = new AbortController();
      const running = runIngest(
        ['run', '--mqtt', broker.url, '--data', dir.path, '--embedded-chain', '--batch-ms', '200', '--health-port', '0'],
        { ...out, signal: abort.signal } satisfies IngestIo,
      );
      cleanups.push(async () => {
        abort.abort();
        await running;
      });
      await waitFor(() => out.stdout.lines().some((l) => l['msg'] === 'ingest running'), 'ingest running', 60_000);
      const { url } = JSON.parse(await readFile(join(dir.path, 'ingest-http.json'), 'utf8')) as { url: string };
      expect((await (await fetch(`${url}/health`)).json()) as object).toMatchObject({ status: 'ok', readings: 0 });

      const signer = testSigner();
      const file = join(dir.path, 'gw.json');
      await writeFile(file, JSON.stringify(enrolmentOf(signer, 'gw-cli-3')));
      const e = io();
      expect(await runIngest(['enrol', file, '--data', dir.path], e)).toBe(0); // through ingest-http.json
      expect(e.stdout.text).toMatch(/enrolled gw-cli-3/);

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
      expect(metrics).toMatch(/^stele_ingest_readings_total 1$/m);

      abort.abort();
      expect(await running).toBe(0);
      expect(out.stdout.lines().some((l) => l['msg'] === 'ingest stopped')).toBe(true);
    },
    120_000,
  );
});
