/**
 * Attack suite, evidence side (issue #8): the bundle findings replayed against real components, end to end as
 * an operator, an authority and an officer meet them.
 *
 * - A real gateway agent (outbox, publisher, software key) publishes signed readings through aedes with Stele's
 *   access hooks to a real IngestService, which anchors its batches on a real anvil; the bundle is fetched from
 *   ingest's HTTP `GET /bundle`.
 * - The trust policy is made as docs/officer.md says: `stele ingest trust export` (the operator's draft),
 *   `stele trust keygen` and `stele trust sign` (the authority), and the officer pins the authority's fingerprint
 *   from a file and runs `stele verify BUNDLE --trust POLICY --authority-file FILE`; every command goes through the
 *   `stele` entry point (`main` of @stele/cli), in process.
 * - The rogue ingest is a second real IngestService on the same broker with its own key, the same issuer name and
 *   its own anvil (hence the same chain id and the same deterministic contract address); it enrols the same device
 *   and receives the very same signed readings.
 *
 * What each test proves, and how the timed claim was checked to fail when broken: docs/BENCHMARKS.md, "Attack suite".
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256, toBase64Url, toHex, utf8, type Verdict } from '@stele/core';
import { main } from '@stele/cli';
import { createSoftwareKey, makeEnrolmentRecord, type SoftwareSigner } from '@stele/device';
import { GatewayAgent, Outbox, Publisher, type Acquired } from '@stele/edge-agent';
import {
  ANVIL_DEV_PRIVATE_KEY,
  IngestService,
  connectEvmAnchorer,
  resolveAnvilBinary,
  startAnvil,
  startIngestHttp,
  type AnvilNode,
  type BrokerUser,
  type IngestHttp,
} from '@stele/ingest';
import { loadOrCreateAdminToken } from '@stele/ingest';
import { startPolicyAedes, type PolicyBroker } from '@stele/ingest/testing';

const GW = 'gw-evidence-a';
/** Both ingests use this issuer name: the rogue copies it (the finding used the default name). */
const ISSUER = 'city-ingest';
const N = 6;
const pw = (name: string) => `${name}-password-0123456789abcdef`;
const USERS: BrokerUser[] = [
  { username: 'stele-ingest', password: pw('stele-ingest'), role: { kind: 'ingest' } },
  { username: 'stele-ingest-rogue', password: pw('stele-ingest-rogue'), role: { kind: 'ingest' } },
  { username: GW, password: pw(GW), role: { kind: 'gateway', device: GW } },
];

function anvilMissing(): string | undefined {
  try {
    const bin = resolveAnvilBinary();
    return existsSync(bin) ? undefined : `no anvil binary at ${bin}`;
  } catch (err) {
    return `no anvil binary (${(err as Error).message})`;
  }
}
const skip = anvilMissing();

async function waitFor(cond: () => boolean, what: string, limitMs = 20_000): Promise<void> {
  const until = Date.now() + limitMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** `stele ARGV...` through the command's entry point, in process. */
async function stele(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const sink = (append: (s: string) => void) =>
    new Writable({
      write(chunk: Buffer | string, _enc, cb) {
        append(chunk.toString());
        cb();
      },
    });
  const code = await main(argv, { stdin: new PassThrough(), stdout: sink((s) => (out += s)), stderr: sink((s) => (err += s)) });
  return { code, out, err };
}

const failureCodes = (v: Verdict): string[] => v.checks.flatMap((c) => c.failures.map((f) => f.code));

/** One ingest as `stele ingest run --embedded-chain` lays out its data directory: keys/, chain/, store/. */
interface Ingest {
  dataDir: string;
  chain: AnvilNode;
  key: SoftwareSigner;
  service: IngestService;
  api: IngestHttp;
}

async function startIngest(dataDir: string, username: string, brokerUrl: string): Promise<Ingest> {
  await mkdir(join(dataDir, 'keys'), { recursive: true });
  await mkdir(join(dataDir, 'chain'), { recursive: true });
  const key = await createSoftwareKey(join(dataDir, 'keys', 'ingest.pem'));
  const chain = await startAnvil({ stateDir: join(dataDir, 'chain') });
  try {
    const anchorer = await connectEvmAnchorer({ rpcUrl: chain.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY, stateFile: join(dataDir, 'chain', 'anchor-contract.json') });
    await writeFile(join(dataDir, 'broker.password'), `${pw(username)}\n`, { mode: 0o600 });
    const service = await IngestService.start({
      mqttUrl: brokerUrl,
      broker: { username, passwordFile: join(dataDir, 'broker.password') },
      dataDir: join(dataDir, 'store'),
      signer: key,
      issuer: ISSUER,
      anchorer,
      batchIntervalMs: 600_000, // batches are cut by flush(), when the test says so
    });
    const api = await startIngestHttp({ service, adminToken: await loadOrCreateAdminToken(join(dataDir, 'admin-token')) });
    return { dataDir, chain, key, service, api };
  } catch (err) {
    await chain.stop();
    throw err;
  }
}

async function stopIngest(i: Ingest | undefined): Promise<void> {
  if (i === undefined) return;
  await i.api.close().catch(() => undefined);
  await i.service.stop().catch(() => undefined);
  await i.chain.stop().catch(() => undefined);
}

/** The bundle as ingest serves it over HTTP, byte for byte. */
async function fetchBundle(i: Ingest): Promise<string> {
  const res = await fetch(`${i.api.url}/bundle?device=${GW}&first=1&last=${N}`);
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET /bundle: ${res.status} ${text}`);
  return text;
}

describe.skipIf(skip !== undefined)(`attacks on the evidence: real gateway, ingest, anvil and stele verify${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let dir: string;
  let broker: PolicyBroker;
  let genuine: Ingest;
  let rogue: Ingest;
  let outbox: Outbox;
  let agent: GatewayAgent;
  let device: SoftwareSigner;
  const files: Record<string, string> = {};
  /** What the officer passes: the authority's signed policy and the fingerprint kept in a file of their own. */
  let trustArgs: string[];
  let genuineJson: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stele-attacks-evidence-'));
    broker = await startPolicyAedes(USERS);
    genuine = await startIngest(join(dir, 'ingest'), 'stele-ingest', broker.url);
    rogue = await startIngest(join(dir, 'rogue-ingest'), 'stele-ingest-rogue', broker.url);

    // The gateway pins the genuine ingest's key at provisioning; both ingests enrol it (the rogue copies the
    // device's public enrolment record) and both receive every reading it publishes.
    device = await createSoftwareKey(join(dir, 'gateway.pem'));
    const record = makeEnrolmentRecord(device, GW, 'stack 1, roof');
    await genuine.service.enrol(record);
    await rogue.service.enrol(record);
    outbox = await Outbox.open(join(dir, 'outbox'));
    const publisher = new Publisher({ mqttUrl: broker.url, deviceId: GW, outbox, ingestKey: genuine.key.publicKey, mqttOptions: { username: GW, password: pw(GW) }, reconnectPeriodMs: 100, resendAfterMs: 500 });
    agent = new GatewayAgent({ deviceId: GW, signer: device, outbox, publisher });
    await publisher.start();
    const t0 = Date.now() - N * 1000; // before the anchors, so that the time checks pass on the genuine bundle
    agent.addSource(
      'cems',
      (async function* (): AsyncGenerator<Acquired> {
        for (let i = 1; i <= N; i++) {
          yield { sensor: 'cems-1', time: t0 + i * 1000, clock: { synced: true, source: 'ntp' }, meas: [{ code: 'a21026', kind: 'Rtd', value: `${20 + i}.0`, unit: 'mg/m³', flag: 'N' }], raw: [sha256(utf8(`frame ${i}`))] };
        }
      })(),
    );
    await waitFor(() => outbox.ackedUpTo() === N, `the genuine ingest to confirm seq ${N}`);
    await waitFor(() => rogue.service.stats().readings === N, `the rogue ingest to store the same ${N} readings`);

    // The operator drafts the policy entry for what the genuine ingest signs and anchors; the authority signs it.
    files.draft = join(dir, 'draft.json');
    const validFrom = new Date(Date.now() - 3_600_000).toISOString();
    const exported = await stele('ingest', 'trust', 'export', '--data', genuine.dataDir, '--issuer', ISSUER, '--rpc', genuine.chain.rpcUrl, '--operator', 'city', '--valid-from', validFrom, '--out', files.draft);
    expect(exported, exported.err).toMatchObject({ code: 0 });
    files.authorityKey = join(dir, 'authority.pem');
    expect((await stele('trust', 'keygen', '--out', files.authorityKey)).code).toBe(0);
    files.policy = join(dir, 'trust-policy.cose');
    const signed = await stele('trust', 'sign', files.draft, '--key', files.authorityKey, '--out', files.policy, '--name', 'EPB test', '--version', '1', '--expires-days', '30');
    expect(signed, signed.err).toMatchObject({ code: 0 });
    const fp = await stele('trust', 'fingerprint', '--key', files.authorityKey);
    expect(fp.code).toBe(0);
    files.pin = join(dir, 'authority.fingerprint');
    await writeFile(files.pin, fp.out);
    trustArgs = ['--trust', files.policy, '--authority-file', files.pin];

    // Both ingests cut and anchor their batch; the bundles come from their HTTP API.
    await genuine.service.flush();
    await rogue.service.flush();
    genuineJson = await fetchBundle(genuine);
    files.genuine = join(dir, 'genuine.json');
    await writeFile(files.genuine, genuineJson);
    files.rogue = join(dir, 'rogue.json');
    await writeFile(files.rogue, await fetchBundle(rogue));
  }, 90_000);

  afterAll(async () => {
    await agent?.stop();
    await outbox?.close();
    await stopIngest(rogue);
    await stopIngest(genuine);
    await broker?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('the genuine bundle verifies under the authority\'s policy, the chain asked at the endpoint the policy names (exit 0)', async () => {
    const r = await stele('verify', files.genuine!, ...trustArgs, '--json');
    expect(r.code, r.out + r.err).toBe(0);
    const v = JSON.parse(r.out) as Verdict;
    expect(v.state).toBe('verified');
    expect(v.summary.readings).toBe(N);
  });

  describe('a rogue ingest (its own key and anvil, the same issuer name, the same device and readings)', () => {
    it('makes a bundle that looks the same but for the key: same chain id and contract, same signed readings', async () => {
      const g = JSON.parse(genuineJson) as { entries: { statement: string }[]; batches: { anchor: { chainId: number; contract: string } }[] };
      const r = JSON.parse(await readFile(files.rogue!, 'utf8')) as typeof g;
      expect(r.batches[0]!.anchor.chainId).toBe(g.batches[0]!.anchor.chainId);
      expect(r.batches[0]!.anchor.contract).toBe(g.batches[0]!.anchor.contract);
      expect(r.entries.map((e) => e.statement)).toEqual(g.entries.map((e) => e.statement));
      expect(toBase64Url(rogue.key.keyId)).not.toBe(toBase64Url(genuine.key.keyId));
    });

    it('fails under the genuine ingest\'s policy with UNTRUSTED_INGEST_KEY_ERROR (exit 1), asked at the policy\'s endpoint', async () => {
      const r = await stele('verify', files.rogue!, ...trustArgs, '--json');
      expect(r.code, r.out + r.err).toBe(1);
      expect(failureCodes(JSON.parse(r.out) as Verdict)).toContain('UNTRUSTED_INGEST_KEY_ERROR');
    });

    it('fails with UNTRUSTED_INGEST_KEY_ERROR alone even when its own chain is asked and confirms its anchors', async () => {
      // the officer talked into asking the rogue's anvil: every anchor checks out there, only the policy catches it
      const r = await stele('verify', files.rogue!, ...trustArgs, '--rpc', rogue.chain.rpcUrl, '--json');
      expect(r.code, r.out + r.err).toBe(1);
      expect(failureCodes(JSON.parse(r.out) as Verdict)).toEqual(['UNTRUSTED_INGEST_KEY_ERROR']);
      // and without a policy the best it gets is "not fully checked" (exit 3), never VERIFIED as in the finding
      const unpinned = await stele('verify', files.rogue!, '--rpc', rogue.chain.rpcUrl, '--json');
      expect(unpinned.code).toBe(3);
    });
  });

  describe('an edited device record', () => {
    const edit = async (name: string, change: (device: Record<string, unknown>) => void): Promise<string> => {
      const b = JSON.parse(genuineJson) as { device: Record<string, unknown> };
      change(b.device);
      const file = join(dir, `${name}.json`);
      await writeFile(file, JSON.stringify(b));
      return file;
    };

    it('keyBackend software -> tpm fails with DEVICE_RECORD_MISMATCH_ERROR (exit 1)', async () => {
      const file = await edit('edited-backend', (d) => {
        expect(d.keyBackend).toBe('software');
        d.keyBackend = 'tpm';
      });
      const r = await stele('verify', file, ...trustArgs, '--json');
      expect(r.code, r.out + r.err).toBe(1);
      expect(failureCodes(JSON.parse(r.out) as Verdict)).toEqual(['DEVICE_RECORD_MISMATCH_ERROR']);
    });

    it('another key put in the record fails with UNKNOWN_KEY_ERROR: no enrolment statement backs it (exit 1)', async () => {
      const other = await createSoftwareKey(join(dir, 'other-device.pem'));
      const file = await edit('edited-key', (d) => {
        d.publicKey = toBase64Url(other.publicKey);
        d.kid = toBase64Url(other.keyId);
      });
      const r = await stele('verify', file, ...trustArgs, '--json');
      expect(r.code, r.out + r.err).toBe(1);
      // the readings still verify under the enrolled key (the lifecycle statements ingest signed): only the record
      // fails, in the enrolment check, naming the key that nothing enrolled
      const v = JSON.parse(r.out) as Verdict;
      expect(v.checks.flatMap((c) => c.failures.map((f) => ({ check: c.id, code: f.code, expected: f.expected })))).toEqual([
        { check: 'enrolment', code: 'UNKNOWN_KEY_ERROR', expected: toHex(other.keyId) },
      ]);
    });
  });

  it('a bundle declaring lastSeq 2^53-1 is rejected with SEQUENCE_GAP_ERROR in under 100 ms of CPU', async () => {
    const b = JSON.parse(genuineJson) as { window: { firstSeq: number; lastSeq: number } };
    b.window.lastSeq = Number.MAX_SAFE_INTEGER;
    const file = join(dir, 'huge-window.json');
    await writeFile(file, JSON.stringify(b));
    const args = ['verify', file, ...trustArgs, '--offline', '--json'];
    await stele(...args); // warm up: module loading and WebCrypto are not the verifier's work on the bundle
    // CPU time of this process (all threads) rather than wall time: this 2-core machine is shared. Nothing else
    // in the process is busy here (the gateway has nothing to send, the ingests nothing to cut).
    const cpu0 = process.cpuUsage();
    const r = await stele(...args);
    const cpu = process.cpuUsage(cpu0);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    expect(r.code, r.out + r.err).toBe(1);
    const v = JSON.parse(r.out) as Verdict;
    expect(failureCodes(v)).toEqual(['SEQUENCE_GAP_ERROR']);
    if (process.env.STELE_PRINT_TIMES === '1') console.log(`lastSeq 2^53-1 rejected in ${cpuMs.toFixed(1)} ms of CPU`);
    expect(cpuMs).toBeLessThan(100);
  });
});
