/**
 * Issue #15: docs/gateway-install.md, run. The block the guide marks as checked (copy, check the hashes, unpack,
 * `sudo ./install.sh`) runs against the linux-x64 release in a scratch root: install.sh --root puts users,
 * folders, the unit and the command into that tree instead of / (no systemctl there: the tree's systemd reads the
 * unit when that system boots, and a test may not touch this machine's). Then, as an installer would after editing
 * the config (a software key from `stele gateway provision`, a local broker, a serial port owned by dialout),
 * install.sh runs again and `stele gateway doctor`, as the stele user with its groups, passes.
 *
 * Run by `npm run test:release` (after `npm run release`); skipped by `npm test`.
 */
import { chmodSync, chownSync, copyFileSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PtyPair } from '@stele/simulator';
import { freePort, REPO_ROOT, startMosquitto } from '../chaos/processes.ts';
import { gatewayArchive, RELEASE_DIR, RELEASE_TESTS, runCmd } from './release-files.ts';

/** The shell block of the guide that follows the marker comment naming this test. */
export function checkedBlock(markdown: string): string {
  const marker = markdown.indexOf('<!-- checked by test/e2e/release/install.test.ts');
  if (marker < 0) throw new Error('docs/gateway-install.md: no block marked as checked by test/e2e/release/install.test.ts');
  const m = /```sh\n([\s\S]*?)```/.exec(markdown.slice(marker));
  if (m === null) throw new Error('docs/gateway-install.md: no ```sh block after the marker');
  return m[1]!;
}

const mode = (p: string) => (statSync(p).mode & 0o7777).toString(8);
const entry = (file: string, name: string) => readFileSync(file, 'utf8').split('\n').find((l) => l.startsWith(`${name}:`))?.split(':');

describe.runIf(RELEASE_TESTS)('docs/gateway-install.md against the x64 release in a scratch root', () => {
  const cleanups: (() => unknown)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined);
  });

  it("runs the guide's install commands, then doctor passes as the stele user once key and config are done", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stele-install-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    chmodSync(dir, 0o755); // the stele user's doctor must reach the tree

    // the USB stick: the archive and the release's SHA256SUMS
    const usb = join(dir, 'usb');
    mkdirSync(usb);
    const archive = gatewayArchive('linux-x64');
    copyFileSync(archive, join(usb, archive.split('/').pop()!));
    copyFileSync(join(RELEASE_DIR, 'SHA256SUMS'), join(usb, 'SHA256SUMS'));

    // the scratch root: a fresh system's account files (root, and dialout as Debian has it; no tss, no stele)
    const root = join(dir, 'root');
    mkdirSync(join(root, 'etc'), { recursive: true });
    chmodSync(root, 0o755);
    writeFileSync(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/bash\n');
    writeFileSync(join(root, 'etc', 'group'), 'root:x:0:\ndialout:x:20:\n');
    writeFileSync(join(root, 'etc', 'shadow'), 'root:*:19000:0:99999:7:::\n', { mode: 0o640 });
    writeFileSync(join(root, 'etc', 'gshadow'), 'root:*::\ndialout:*::\n', { mode: 0o640 });

    // the guide's block: on an x64 machine the x64 archive; `sudo ./install.sh` becomes `./install.sh --root`
    const block = checkedBlock(readFileSync(join(REPO_ROOT, 'docs', 'gateway-install.md'), 'utf8'));
    expect(block).toMatch(/sudo \.\/install\.sh/);
    // and the guide's /tmp is this test's own folder
    const unpacked = join(dir, 'tmp');
    mkdirSync(unpacked);
    const script = block
      .split('\n')
      .filter((l) => !/^cd \/media\//.test(l))
      .map((l) => l.replaceAll('linux-arm64', 'linux-x64').replace(/(?<=\s)\/tmp(?=\/|\s|$)/g, unpacked).replace(/^sudo \.\/install\.sh/, `./install.sh --root ${root}`))
      .join('\n');
    const first = runCmd('bash', ['-euo', 'pipefail', '-c', script], { cwd: usb, timeoutMs: 180_000 });
    const out1 = first.stdout + first.stderr;
    expect(first.status, out1).toBe(0);
    expect(out1).toMatch(/stele-gateway-[\d.]+-linux-x64\.tar\.gz: OK/);

    // users and groups, in the scratch root's files
    const stele = entry(join(root, 'etc', 'passwd'), 'stele')!;
    expect(stele, 'user stele').toBeDefined();
    expect(stele[5]).toBe('/var/lib/stele');
    expect(stele[6]).toBe('/usr/sbin/nologin');
    const uid = Number(stele[2]);
    const gid = Number(stele[3]);
    expect(uid).toBeGreaterThan(0);
    expect(uid).toBeLessThan(1000); // a system user
    expect(entry(join(root, 'etc', 'group'), 'dialout')![3]).toContain('stele');
    expect(entry(join(root, 'etc', 'group'), 'tss')![3]).toContain('stele');
    expect(entry(join(root, 'etc', 'group'), 'root')![3] ?? '').not.toContain('stele');

    // folders and modes
    const data = join(root, 'var', 'lib', 'stele');
    expect(mode(data)).toBe('700');
    expect(mode(join(data, 'keys'))).toBe('700');
    expect([statSync(data).uid, statSync(data).gid]).toEqual([uid, gid]);
    expect(mode(join(root, 'etc', 'stele'))).toBe('750');
    expect([statSync(join(root, 'etc', 'stele')).uid, statSync(join(root, 'etc', 'stele')).gid]).toEqual([0, gid]);
    expect(mode(join(root, 'etc', 'stele', 'gateway.yaml'))).toBe('640');
    expect(statSync(join(root, 'opt', 'stele', 'node', 'bin', 'node')).uid).toBe(0);
    expect(statSync(join(root, 'opt', 'stele', 'lib', 'stele.mjs')).mode & 0o022).toBe(0);

    // the unit runs the release's own node and bundle; the command links to the release
    const unit = readFileSync(join(root, 'etc', 'systemd', 'system', 'stele-gateway.service'), 'utf8');
    expect(unit).toMatch(/^ExecStart=\/opt\/stele\/node\/bin\/node .* \/opt\/stele\/lib\/stele\.mjs gateway run --config \/etc\/stele\/gateway\.yaml$/m);
    expect(unit).toMatch(/^User=stele$/m);
    expect(unit).toMatch(/^SupplementaryGroups=dialout tss$/m);
    expect(unit).toMatch(/^StateDirectoryMode=0700$/m);
    expect(lstatSync(join(root, 'usr', 'local', 'bin', 'stele')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(root, 'usr', 'local', 'bin', 'stele'))).toBe('/opt/stele/bin/stele');

    // doctor ran at the end, on the example config: no key yet, so it reports the problems and install says so
    expect(out1).toMatch(/stele gateway doctor/);
    expect(out1).toMatch(/doctor found problems/);

    // ---- the installer's part: key, broker, serial port, config; then install.sh again (an update does the same)
    const bin = join(root, 'opt', 'stele', 'bin', 'stele');
    const keyFile = join(data, 'keys', 'gateway.pem');
    const prov = runCmd(bin, ['gateway', 'provision', '--backend', 'software', '--key-file', keyFile, '--device-id', 'gw-x64-install', '--site', 'test bench', '--installer-key', join(dir, 'installer.pem'), '--new-installer-key', '--out', join(dir, 'usb', 'enrol')]);
    expect(prov.status, prov.stderr).toBe(0);
    chownSync(keyFile, uid, gid);
    chmodSync(keyFile, 0o600);
    const broker = await startMosquitto(dir);
    cleanups.push(() => broker.stop());
    mkdirSync(join(dir, 'dev'));
    const line = await PtyPair.start({ dir: join(dir, 'dev'), names: ['ttyUSB-cems', 'instrument'] });
    cleanups.push(() => line.stop());
    chmodSync(join(dir, 'dev'), 0o755);
    const tty = realpathSync(line.pathA);
    chownSync(tty, 0, 20); // as udev leaves a USB serial adapter: root:dialout 0660
    chmodSync(tty, 0o660);
    writeFileSync(
      join(root, 'etc', 'stele', 'gateway.yaml'),
      [
        'gateway:', '  id: gw-x64-install', `  dataDir: ${data}`,
        'key:', '  software:', `    path: ${keyFile}`,
        'broker:', `  url: ${broker.url}`,
        'instruments:', '  - id: cems-1', '    driver: hj212', `    port: ${line.pathA}`, '    baud: 9600',
        'health:', `  port: ${await freePort()}`,
        '',
      ].join('\n'),
    );
    const release = join(unpacked, archive.split('/').pop()!.replace(/\.tar\.gz$/, ''));
    const second = runCmd(join(release, 'install.sh'), ['--root', root, '--require-doctor'], { timeoutMs: 120_000 });
    const out2 = second.stdout + second.stderr;
    expect(second.status, out2).toBe(0);
    expect(out2).toMatch(/doctor: all checks passed/);
    expect(out2).not.toMatch(/user stele/); // already there: not made again
    expect(readFileSync(join(root, 'etc', 'stele', 'gateway.yaml'), 'utf8')).toContain('gw-x64-install'); // never overwritten

    // the same doctor without the dialout group: the port check fails (doctor runs with the service's groups)
    chownSync(tty, 0, 0);
    const denied = runCmd(join(release, 'install.sh'), ['--root', root, '--require-doctor'], { timeoutMs: 120_000 });
    expect(denied.status).toBe(1);
    const out3 = denied.stdout + denied.stderr;
    expect(out3).toMatch(/\[FAIL\] port:cems-1 .* no permission to open .*owned by group root/);
    expect(out3).toMatch(/udev rule/);
    expect(out3).not.toMatch(/usermod -aG root/);
  }, 300_000);
});
