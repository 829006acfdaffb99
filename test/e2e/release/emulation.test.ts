/**
 * Issue #15: the linux-arm64 release, unpacked, runs under qemu-aarch64-static (user-mode emulation, Debian's
 * qemu-user-static with the arm64 C and C++ libraries of libc6-arm64-cross / libstdc++6-arm64-cross) with its own
 * node and native modules: it provisions a software key and a SoftHSM2 key (Debian's arm64 libsofthsm2, unpacked
 * by test/scripts/arm64-softhsm.sh), doctor checks the SoftHSM2 gateway, and two gateways read a simulated CEMS
 * data logger over socat pseudo-terminals and publish to an x64 ingest (with mosquitto and anvil) on loopback.
 * Their readings are confirmed (acknowledged), anchored and verify with the repository's `stele verify`; the
 * verifier package gives the same verdict. Start-up time and RSS under emulation are printed and written to
 * .tmp/release-emulation.json (docs/BENCHMARKS.md "The arm64 release under emulation").
 *
 * Run by `npm run test:release` (after `npm run release`); skipped by `npm test`.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { toBase64Url } from '@stele/core';
import { createSoftwareKey } from '@stele/device';
import { verifyEnrolmentRequest } from '@stele/core/enrolment';
import { PtyPair, CemsSimulator } from '@stele/simulator';
import { runVerify } from '@stele/verifier/cli';
import { policyFileTrustingBundle } from '@stele/core/testing';
import { unitNodeFlags } from '../../../edge-agent/scripts/unit-flags.ts';
import { freePort, INGEST_SCRIPT, REPO_ROOT, sleep, spawnChild, spawnTs, startMosquitto, type Child } from '../chaos/processes.ts';
import { gatewayArchive, installVerifyPackage, RELEASE_TESTS, runCmd, unpack } from './release-files.ts';

const QEMU = 'qemu-aarch64-static';
const SYSROOT = '/usr/aarch64-linux-gnu';
const PIN = '87654321';
const READINGS = 5;

interface GatewaySpec {
  id: string;
  backend: 'software' | 'pkcs11';
}

function say(s: string): void {
  process.stdout.write(`[release-emulation] ${s}\n`);
}

/** VmRSS and VmHWM (peak) of a process, in MB, from /proc. */
function rssOf(pid: number): { rssMb: number; peakMb: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
  return { rssMb: Math.round(kb('VmRSS') / 102.4) / 10, peakMb: Math.round(kb('VmHWM') / 102.4) / 10 };
}

describe.runIf(RELEASE_TESTS)('the linux-arm64 release under qemu-aarch64', () => {
  const cleanups: (() => unknown)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined);
  });

  it('provisions a software and a SoftHSM2 key, runs against x64 ingest; readings are confirmed, anchored and verified', async () => {
    const t0 = Date.now();
    expect(spawnSync(QEMU, ['--version']).status, `${QEMU} (Debian qemu-user-static)`).toBe(0);
    expect(existsSync(join(SYSROOT, 'lib', 'ld-linux-aarch64.so.1')), `${SYSROOT} (Debian libc6-arm64-cross)`).toBe(true);
    const archive = gatewayArchive('linux-arm64');
    const hsmLib = runCmd('bash', [join(REPO_ROOT, 'test', 'scripts', 'arm64-softhsm.sh'), join(REPO_ROOT, '.tmp', 'arm64-softhsm')], { timeoutMs: 300_000 });
    expect(hsmLib.status, `arm64-softhsm.sh: ${hsmLib.stderr}`).toBe(0);
    const softhsmRoot = join(REPO_ROOT, '.tmp', 'arm64-softhsm', 'root');
    const softhsmModule = join(softhsmRoot, 'usr', 'lib', 'softhsm', 'libsofthsm2.so');

    const dir = mkdtempSync(join(tmpdir(), 'stele-release-arm64-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const rel = unpack(archive, dir);
    say(`unpacked ${archive} (${Math.round((Date.now() - t0) / 1000)} s)`);

    // SoftHSM2 token made with this machine's softhsm2-util; the arm64 library reads the same token files.
    const hsm = runCmd('bash', [join(REPO_ROOT, 'test', 'scripts', 'softhsm-up.sh'), join(dir, 'hsm'), 'stele', PIN]);
    expect(hsm.status, `softhsm-up.sh: ${hsm.stderr}`).toBe(0);
    const pinFile = join(dir, 'pin');
    writeFileSync(pinFile, `${PIN}\n`);
    chmodSync(pinFile, 0o600);
    /** `node lib/stele.mjs gateway ARGS` (what bin/stele runs) of the release under qemu; -E sets the guest's environment only. */
    const qemuArgs = (args: string[]) => [
      '-L', SYSROOT,
      '-E', `SOFTHSM2_CONF=${join(dir, 'hsm', 'softhsm2.conf')}`,
      '-E', `LD_LIBRARY_PATH=${join(softhsmRoot, 'usr', 'lib', 'aarch64-linux-gnu')}`,
      join(rel, 'node', 'bin', 'node'), join(rel, 'lib', 'stele.mjs'), 'gateway', ...args,
    ];
    const gateway = (args: string[]) => spawnChild(QEMU, qemuArgs(args));
    /** `run` with the V8 flags of the systemd unit (what ships: RSS is measured on that). */
    const UNIT_FLAGS = unitNodeFlags();
    const runGatewayAsUnit = (config: string) => {
      const a = qemuArgs(['run', '--config', config]);
      const node = a.indexOf(join(rel, 'node', 'bin', 'node'));
      a.splice(node + 1, 0, ...UNIT_FLAGS);
      return spawnChild(QEMU, a);
    };
    // `stele gateway --help`: the start-up of node and the bundle alone, under qemu and natively (x64 release)
    const relX64 = unpack(gatewayArchive('linux-x64'), mkdtempSync(join(dir, 'x64-')));
    const timeIt = (cmd: string, args: string[]) => {
      const t = Date.now();
      const r = runCmd(cmd, args);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/usage: stele gateway/);
      return (Date.now() - t) / 1000;
    };
    const helpQemuS = timeIt(QEMU, ['-L', SYSROOT, join(rel, 'node', 'bin', 'node'), join(rel, 'lib', 'stele.mjs'), 'gateway', '--help']);
    const helpNativeS = timeIt(join(relX64, 'bin', 'stele'), ['gateway', '--help']);
    say(`stele gateway --help: ${helpQemuS.toFixed(1)} s arm64 under qemu, ${helpNativeS.toFixed(2)} s x64 native`);
    const finished = async (c: Child, what: string) => {
      const { code } = await c.exited;
      if (code !== 0) throw new Error(`${what} exited ${code}: ${c.lines.slice(-20).join('\n')}\n${c.errTail.join('\n')}`);
      return c.lines.join('\n');
    };

    // ---- x64 side: broker, ingest with its embedded chain
    const broker = await startMosquitto(dir);
    cleanups.push(() => broker.stop());
    // the ingest key made here, so each gateway can pin its public key (FORMAT.md §11.1, config ingest.publicKey)
    mkdirSync(join(dir, 'ingest', 'keys'), { recursive: true });
    const ingestKey = await createSoftwareKey(join(dir, 'ingest', 'keys', 'ingest.pem'));
    const api = `http://127.0.0.1:${await freePort()}`;
    const ingest = spawnTs(INGEST_SCRIPT, ['run', '--mqtt', broker.url, '--data', join(dir, 'ingest'), '--embedded-chain', '--batch-ms', '1000', '--health-port', new URL(api).port, '--log-level', 'warn']);
    cleanups.push(() => ingest.kill('SIGTERM'));

    // ---- arm64: provision both keys (at the same time; each start of node under qemu takes seconds)
    const specs: GatewaySpec[] = [
      { id: 'gw-arm64-sw', backend: 'software' },
      { id: 'gw-arm64-hsm', backend: 'pkcs11' },
    ];
    const tProvision = Date.now();
    // the installer key is made by the first run, so the two requests are countersigned one after the other
    for (const s of specs) {
      const backendArgs =
        s.backend === 'software'
          ? ['--backend', 'software', '--key-file', join(dir, `${s.id}.pem`)]
          : ['--backend', 'pkcs11', '--module', softhsmModule, '--token', 'stele', '--pin-file', pinFile, '--key-label', s.id];
      await finished(
        gateway(['provision', ...backendArgs, '--device-id', s.id, '--site', 'roof, stack 2', '--instrument', 'id=cems-1,kind=hj212', '--installer-key', join(dir, 'installer.pem'), '--new-installer-key', '--installer', 'emulation test', '--out', join(dir, 'usb')]),
        `provision ${s.id}`,
      );
    }
    const provisionS = (Date.now() - tProvision) / 1000 / specs.length;
    say(`provisioned ${specs.map((s) => `${s.id} (${s.backend})`).join(', ')}: ${provisionS.toFixed(1)} s each`);

    // ---- ingest up; each countersigned request checks on x64, and its record is enrolled
    for (const until = Date.now() + 90_000; ; ) {
      if (await fetch(`${api}/health`).then((r) => r.ok, () => false)) break;
      if (ingest.proc.exitCode !== null) throw new Error(`ingest exited: ${ingest.errTail.join(' | ')}`);
      if (Date.now() > until) throw new Error('ingest did not come up');
      await sleep(200);
    }
    // ingest's admin token (/enrol, /flush), which it wrote into its data folder
    const adminToken = () => readFileSync(join(dir, 'ingest', 'admin-token'), 'utf8').trim();
    for (const s of specs) {
      const { record } = await verifyEnrolmentRequest(new Uint8Array(readFileSync(join(dir, 'usb', `${s.id}.enrol.cose`))));
      expect(record.deviceId).toBe(s.id);
      expect(record.keyBackend).toBe(s.backend);
      const res = await fetch(`${api}/enrol`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken()}` }, body: JSON.stringify(record) });
      expect(res.status, await res.clone().text()).toBe(200);
    }

    // ---- the serial lines and the configs
    const lines: PtyPair[] = [];
    const configs: string[] = [];
    const healthPorts: number[] = [];
    for (const s of specs) {
      const pair = await PtyPair.start({ dir, names: [`${s.id}-ttyA`, `${s.id}-ttyB`] });
      cleanups.push(() => pair.stop());
      lines.push(pair);
      const port = await freePort();
      healthPorts.push(port);
      const key =
        s.backend === 'software'
          ? [`  software:`, `    path: ${join(dir, `${s.id}.pem`)}`]
          : [`  pkcs11:`, `    module: ${softhsmModule}`, `    token: stele`, `    keyLabel: ${s.id}`, `    pinFile: ${pinFile}`];
      const config = join(dir, `${s.id}.yaml`);
      writeFileSync(
        config,
        [
          'gateway:', `  id: ${s.id}`, `  dataDir: ${join(dir, `data-${s.id}`)}`, '  logLevel: info',
          'key:', ...key,
          'broker:', `  url: ${broker.url}`, '  resendAfter: 2s',
          'ingest:', `  publicKey: ${toBase64Url(ingestKey.publicKey)}`,
          'instruments:', '  - id: cems-1', '    driver: hj212', `    port: ${pair.pathA}`, '    baud: 9600',
          'health:', `  port: ${port}`,
          '',
        ].join('\n'),
      );
      configs.push(config);
    }

    // ---- doctor on the SoftHSM2 gateway: the key loads and signs through the arm64 library, the broker answers
    const doctor = gateway(['doctor', '--config', configs[1]!, '--json']);
    await doctor.exited;
    const report = JSON.parse(doctor.lines.join('\n')) as { checks: { name: string; status: string; code?: string }[] };
    const statusOf = (id: string) => report.checks.find((c) => c.name === id)?.status;
    expect(statusOf('key'), JSON.stringify(report.checks)).toBe('ok');
    expect(statusOf('broker'), JSON.stringify(report.checks)).toBe('ok');
    expect(statusOf('port:cems-1'), JSON.stringify(report.checks)).toBe('ok');

    // ---- run both gateways, one after the other so that each start-up is timed alone: spawn until the ops
    // endpoint answers /status
    const started: { child: Child; startupS: number; ops: string }[] = [];
    for (const [i, s] of specs.entries()) {
      {
        const t = Date.now();
        const child = runGatewayAsUnit(configs[i]!);
        cleanups.push(() => child.kill('SIGKILL'));
        const ops = `http://127.0.0.1:${healthPorts[i]}`;
        for (const until = Date.now() + 120_000; ; ) {
          if (await fetch(`${ops}/status`).then((r) => r.ok, () => false)) break;
          if (child.proc.exitCode !== null) throw new Error(`${s.id} exited: ${child.lines.slice(-10).join('\n')} ${child.errTail.join('\n')}`);
          if (Date.now() > until) throw new Error(`${s.id} did not start`);
          await sleep(100);
        }
        started[i] = { child, startupS: (Date.now() - t) / 1000, ops };
      }
    }
    say(`running: ${specs.map((s, i) => `${s.id} up in ${started[i]!.startupS.toFixed(1)} s`).join(', ')}`);

    // ---- the instruments: one HJ 212 real-time frame every 500 ms on each line
    const fds = lines.map((l) => openSync(l.pathB, 'r+'));
    cleanups.push(() => fds.forEach((fd) => closeSync(fd)));
    const sims = specs.map((_, i) => new CemsSimulator({ mn: `010000A8900016F00016${String(i).padStart(4, '0')}`, seed: i + 1 }));
    const feeder = setInterval(() => fds.forEach((fd, i) => writeSync(fd, sims[i]!.nextFrame(Date.now()))), 500);
    cleanups.push(() => clearInterval(feeder));

    const acked: number[] = [];
    const rss: { rssMb: number; peakMb: number }[] = [];
    for (const [i, s] of specs.entries()) {
      for (const until = Date.now() + 180_000; ; ) {
        const st = (await fetch(`${started[i]!.ops}/status`).then((r) => r.json(), () => undefined)) as { outbox: { acked: number } } | undefined;
        if (st !== undefined && st.outbox.acked >= READINGS) {
          acked[i] = st.outbox.acked;
          break;
        }
        if (Date.now() > until) throw new Error(`${s.id}: ingest did not confirm ${READINGS} readings (status ${JSON.stringify(st)})`);
        await sleep(250);
      }
    }
    clearInterval(feeder);
    for (const [i] of specs.entries()) rss[i] = rssOf(started[i]!.child.proc.pid!);
    for (const [i, s] of specs.entries()) {
      const { code } = await started[i]!.child.kill('SIGTERM');
      expect(code, `${s.id} stops cleanly`).toBe(0);
    }
    say(`confirmed: ${specs.map((s, i) => `${s.id} ${acked[i]} readings, RSS ${rss[i]!.rssMb} MB (peak ${rss[i]!.peakMb} MB)`).join('; ')}`);

    // ---- anchored and verified: the repository's `stele verify`, then the verifier package, on the same bundles
    expect((await fetch(`${api}/flush`, { method: 'POST', headers: { authorization: `Bearer ${adminToken()}` } })).status).toBe(200);
    const prefix = join(dir, 'officer');
    mkdirSync(prefix);
    const files: string[] = [];
    for (const [i, s] of specs.entries()) {
      const res = await fetch(`${api}/bundle?device=${s.id}&first=1&last=${acked[i]}`);
      expect(res.status).toBe(200);
      files[i] = join(dir, `${s.id}.bundle.json`);
      writeFileSync(files[i]!, Buffer.from(await res.arrayBuffer()));
    }
    const steleVerify = installVerifyPackage(prefix);
    for (const [i, s] of specs.entries()) {
      const file = files[i]!;
      // The test plays the authority: a policy trusting this ingest (FORMAT.md §14); the bundle's rpc on request.
      const trust = await policyFileTrustingBundle(JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>);
      const policyFile = join(dir, `${s.id}.trust-policy.cose`);
      writeFileSync(policyFile, trust.bytes);
      const args = [file, '--json', '--trust', policyFile, '--authority', trust.fingerprint, '--use-bundle-rpc'];
      let out = '';
      const code = await runVerify(args, { stdout: { write: (c: string) => (out += c) }, stderr: { write: () => true } });
      const verdict = JSON.parse(out) as { state: string; summary: { readings: number; batches: number } };
      expect(verdict.state, out).toBe('verified');
      expect(code).toBe(0);
      expect(verdict.summary.readings).toBe(acked[i]);
      const pkg = runCmd(steleVerify, args);
      expect(pkg.status).toBe(code);
      expect(JSON.parse(pkg.stdout)).toEqual(verdict);
      say(`${s.id}: ${verdict.summary.readings} readings in ${verdict.summary.batches} batch(es) anchored and verified (stele verify and stele-verify agree)`);
    }

    const bench = {
      arch: 'linux-arm64 under qemu-aarch64-static on x86-64',
      helpS: { arm64Qemu: Number(helpQemuS.toFixed(2)), x64Native: Number(helpNativeS.toFixed(2)) },
      provisionS: Number(provisionS.toFixed(1)),
      nodeFlags: UNIT_FLAGS.join(' '),
      loadAverage: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
      startup: specs.map((s, i) => ({ gateway: s.id, backend: s.backend, startupS: Number(started[i]!.startupS.toFixed(1)), ...rss[i] })),
      totalS: Math.round((Date.now() - t0) / 1000),
    };
    mkdirSync(join(REPO_ROOT, '.tmp'), { recursive: true });
    writeFileSync(join(REPO_ROOT, '.tmp', 'release-emulation.json'), `${JSON.stringify(bench, null, 2)}\n`);
    say(`bench ${JSON.stringify(bench)}`);
  }, 600_000);
});
