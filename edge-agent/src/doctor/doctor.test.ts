/**
 * `stele gateway doctor` against a real mosquitto (its own temp config on a free 127.0.0.1 port, password file
 * made by mosquitto_passwd; skipped when mosquitto is not installed) and a SoftHSM2 token (skipped without
 * softhsm2-util or pkcs11js).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '@stele/testkit';
import { createSoftwareKey } from '@stele/device';
import { runGateway } from '../cli.ts';
import { portDeniedFix, type DoctorReport } from './doctor.ts';
import { collect } from '../test-helpers.ts';

function which(cmd: string): string | undefined {
  try {
    return execFileSync('which', [cmd], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

const MOSQUITTO = which('mosquitto') ?? (existsSync('/usr/sbin/mosquitto') ? '/usr/sbin/mosquitto' : undefined);
const MOSQUITTO_PASSWD = which('mosquitto_passwd');
const HAVE_MOSQUITTO = MOSQUITTO !== undefined && MOSQUITTO_PASSWD !== undefined;
const SOFTHSM_LIB = ['/usr/lib/softhsm/libsofthsm2.so', '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so', '/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so'].find((p) => existsSync(p));
const HAVE_SOFTHSM = SOFTHSM_LIB !== undefined && which('softhsm2-util') !== undefined;
// Skipped with the reason on a developer machine without them; under CI (which installs both) a skip would hide a
// missing install step, so it is an error there.
if (process.env.CI === 'true' && !(HAVE_MOSQUITTO && HAVE_SOFTHSM)) {
  throw new Error('CI=true but mosquitto/mosquitto_passwd or softhsm2 is missing: .ci/run must install them');
}

interface Mosquitto {
  url: string;
  stop(): Promise<void>;
}

async function startMosquitto(dir: string, user: string, password: string): Promise<Mosquitto> {
  const port = await freePort();
  const passwd = join(dir, 'passwd');
  execFileSync(MOSQUITTO_PASSWD!, ['-b', '-c', passwd, user, password]);
  // mosquitto started as root drops to its own user: it must be able to read the files
  await chmod(dir, 0o755);
  await chmod(passwd, 0o644);
  const conf = join(dir, 'mosquitto.conf');
  await writeFile(conf, [`listener ${port} 127.0.0.1`, 'allow_anonymous false', `password_file ${passwd}`, 'persistence false', 'log_dest stderr', ''].join('\n'));
  const child: ChildProcess = spawn(MOSQUITTO!, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`mosquitto did not start: ${log}`)), 5000);
    child.stderr!.on('data', (b: Buffer) => {
      log += b.toString();
      if (/running/.test(log)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`mosquitto exited ${code}: ${log}`));
    });
  });
  return {
    url: `mqtt://127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}


const baseConfig = (dir: string, url: string, opts: { key?: string; instruments?: string; passwordFile?: string } = {}) => `gateway:
  id: gw-doctor
  dataDir: ${dir}/data
key:
${opts.key ?? `  software:\n    path: ${dir}/key.pem`}
broker:
  url: ${url}
  username: gw-doctor
  passwordFile: ${opts.passwordFile ?? `${dir}/mqtt-password`}
instruments:
${opts.instruments ?? `  - id: cems-1\n    driver: hj212\n    port: /dev/serial/by-id/usb-STELE_DOCTOR_MISSING-if00-port0`}
health:
  port: 1
`;

async function doctor(file: string, extra: string[] = []): Promise<{ code: number; report: DoctorReport; text: string }> {
  const c = collect();
  const code = await runGateway(['doctor', '--config', file, '--json', ...extra], c.io, {
    doctor: { clockProbe: async () => ({ synced: true, via: 'test' }), brokerTimeoutMs: 3000, fetchStatus: async () => undefined },
  });
  return { code, report: JSON.parse(c.out()) as DoctorReport, text: c.out() };
}

const check = (r: DoctorReport, name: string) => r.checks.find((c) => c.name === name);

describe('stele gateway doctor', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stele-doctor-'));
    await createSoftwareKey(join(dir, 'key.pem'));
    await writeFile(join(dir, 'mqtt-password'), 'x\n', { mode: 0o600 });
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  describe('when a config line is broken', () => {
    it('fails the config check naming the file, line and field, and exits 1', async () => {
      const file = join(dir, 'broken.yaml');
      await writeFile(file, baseConfig(dir, 'mqtt://127.0.0.1:1').replace('  url: mqtt://127.0.0.1:1', '  url: mqtt//127.0.0.1:1'));
      const { code, report } = await doctor(file);
      expect(code).toBe(1);
      const c = check(report, 'config')!;
      expect(c).toMatchObject({ status: 'fail', code: 'CONFIG_INVALID' });
      expect(c.message).toContain(`${file}:8:8 broker.url`);
      expect(c.fix).toBeDefined();
    });

    it('also prints it for humans', async () => {
      const file = join(dir, 'broken.yaml');
      const c = collect();
      expect(await runGateway(['doctor', '--config', file], c.io)).toBe(1);
      expect(c.out()).toContain('[FAIL] config');
      expect(c.out()).toContain('broker.url');
    });
  });

  describe('when the serial port is missing', () => {
    it('names the instrument and the path, with the fix', async () => {
      const file = join(dir, 'missing-port.yaml');
      await writeFile(file, baseConfig(dir, 'mqtt://127.0.0.1:1'));
      const { code, report } = await doctor(file);
      expect(code).toBe(1);
      const c = check(report, 'port:cems-1')!;
      expect(c).toMatchObject({ status: 'fail', code: 'INSTRUMENT_PORT_MISSING' });
      expect(c.message).toContain('cems-1');
      expect(c.message).toContain('/dev/serial/by-id/usb-STELE_DOCTOR_MISSING-if00-port0');
      expect(c.fix).toContain('/dev/serial/by-id');
      // the other checks still ran
      expect(check(report, 'key')!.status).toBe('warn'); // a software key works, flagged for the field
      expect(check(report, 'broker')!).toMatchObject({ status: 'fail', code: 'BROKER_UNREACHABLE' });
      expect(check(report, 'disk')!.status).not.toBe('fail');
    });

    it('a regular file is not a serial device', async () => {
      const file = join(dir, 'not-tty.yaml');
      await writeFile(file, baseConfig(dir, 'mqtt://127.0.0.1:1', { instruments: `  - id: cems-1\n    driver: hj212\n    port: ${file}` }));
      const { report } = await doctor(file);
      expect(check(report, 'port:cems-1')!).toMatchObject({ status: 'fail', code: 'INSTRUMENT_PORT_FAILED' });
    });
  });

  describe.skipIf(!HAVE_MOSQUITTO)('against a real mosquitto with a password file', () => {
    let mosq: Mosquitto;
    let mdir: string;
    beforeAll(async () => {
      mdir = await mkdtemp(join(tmpdir(), 'stele-mosq-'));
      mosq = await startMosquitto(mdir, 'gw-doctor', 'right-password');
    });
    afterAll(async () => {
      await mosq?.stop();
      await rm(mdir, { recursive: true, force: true });
    });

    it('says bad credentials when the broker refuses the password', async () => {
      await writeFile(join(dir, 'mqtt-password'), 'wrong-password\n', { mode: 0o600 });
      const file = join(dir, 'bad-pass.yaml');
      await writeFile(file, baseConfig(dir, mosq.url, { instruments: '  []' }));
      const { code, report } = await doctor(file);
      expect(code).toBe(1);
      const c = check(report, 'broker')!;
      expect(c).toMatchObject({ status: 'fail', code: 'BROKER_BAD_CREDENTIALS' });
      expect(c.message).toMatch(/password/);
      expect(c.fix).toContain('broker.passwordFile');
    });

    it('passes with the right password (a trailing newline in the file is not part of it)', async () => {
      await writeFile(join(dir, 'mqtt-password'), 'right-password\n', { mode: 0o600 });
      const file = join(dir, 'good-pass.yaml');
      await writeFile(file, baseConfig(dir, mosq.url, { instruments: '  []' }));
      const { code, report } = await doctor(file);
      expect(check(report, 'broker')!.status).toBe('ok');
      expect(check(report, 'config')!.status).toBe('ok');
      expect(code).toBe(0); // warnings (agent not running, software key) do not fail
    });

    it('a missing password file is named', async () => {
      const file = join(dir, 'no-pass-file.yaml');
      await writeFile(file, baseConfig(dir, mosq.url, { instruments: '  []', passwordFile: join(dir, 'nope') }));
      const { report } = await doctor(file);
      expect(check(report, 'broker')!).toMatchObject({ status: 'fail', code: 'BROKER_SECRET_UNREADABLE' });
    });
  });

  describe.skipIf(!HAVE_SOFTHSM)('with a PKCS#11 key on SoftHSM2', () => {
    let hsmDir: string;
    beforeAll(async () => {
      hsmDir = await mkdtemp(join(tmpdir(), 'stele-hsm-'));
      await mkdir(join(hsmDir, 'tokens'));
      await writeFile(join(hsmDir, 'softhsm2.conf'), `directories.tokendir = ${hsmDir}/tokens\nobjectstore.backend = file\nlog.level = ERROR\n`);
      process.env.SOFTHSM2_CONF = join(hsmDir, 'softhsm2.conf');
      execFileSync('softhsm2-util', ['--init-token', '--free', '--label', 'stele-doctor', '--pin', '1234', '--so-pin', '5678'], { env: process.env, stdio: 'ignore' });
      await writeFile(join(hsmDir, 'pin'), '1234\n', { mode: 0o600 });
      await writeFile(join(hsmDir, 'wrong-pin'), '9999\n', { mode: 0o600 });
      const { Pkcs11Signer } = await import('@stele/device');
      const signer = await Pkcs11Signer.generate({ module: SOFTHSM_LIB!, tokenLabel: 'stele-doctor', pin: { file: join(hsmDir, 'pin') } });
      await signer.close();
    });
    afterAll(() => rm(hsmDir, { recursive: true, force: true }));

    const pkcs11Key = (pinFile: string) => `  pkcs11:\n    module: ${SOFTHSM_LIB}\n    token: stele-doctor\n    pinFile: ${pinFile}`;

    it('a wrong PIN is named as such, with the lockout warning', async () => {
      const file = join(dir, 'wrong-pin.yaml');
      await writeFile(file, baseConfig(dir, 'mqtt://127.0.0.1:1', { instruments: '  []', key: pkcs11Key(join(hsmDir, 'wrong-pin')) }));
      const { report } = await doctor(file);
      const c = check(report, 'key')!;
      expect(c).toMatchObject({ status: 'fail', code: 'KEY_PIN_INCORRECT' });
      expect(c.fix).toMatch(/PIN/);
    });

    it('the right PIN loads and signs', async () => {
      const file = join(dir, 'right-pin.yaml');
      await writeFile(file, baseConfig(dir, 'mqtt://127.0.0.1:1', { instruments: '  []', key: pkcs11Key(join(hsmDir, 'pin')) }));
      const { report } = await doctor(file);
      expect(check(report, 'key')!).toMatchObject({ status: 'ok' });
      expect(check(report, 'key')!.message).toContain('loads and signs');
    });
  });
});

describe('the fix for a serial port the user may not open', () => {
  it('says to join dialout when the port is root:dialout 0660', () => {
    expect(portDeniedFix('dialout', 0o20660)).toContain('usermod -aG dialout');
  });
  it.each([
    ['root', 0o20660],
    ['tty', 0o20620],
    ['dialout', 0o20600],
  ])('says to fix the udev rule, never to join the group, when the port is group %s mode %o', (group, mode) => {
    const fix = portDeniedFix(group, mode);
    expect(fix).toContain('udev rule');
    expect(fix).not.toContain('usermod');
    expect(fix).toContain(`never add a user to group ${group}`);
  });
});
