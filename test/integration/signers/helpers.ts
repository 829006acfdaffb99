/** Shared set-up for the PKCS#11 signer suites: what is installed, SoftHSM2 tokens and the swtpm TPM in temp dirs. */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { loadBinding } from '@stele/device';

const run = promisify(execFile);
export const SCRIPTS = resolve(dirname(fileURLToPath(import.meta.url)), '../../scripts');
export const USER_PIN = '87654321';
export const SO_PIN = '12345678';

export function hasCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

export async function hasPkcs11js(): Promise<boolean> {
  return loadBinding().then(
    () => true,
    () => false,
  );
}

/** First existing path among the usual Debian/Ubuntu locations (multiarch) of a PKCS#11 library. */
export function findModule(candidates: string[]): string | undefined {
  return candidates.find((p) => existsSync(p));
}

const ARCH = process.arch === 'arm64' ? 'aarch64-linux-gnu' : process.arch === 'arm' ? 'arm-linux-gnueabihf' : 'x86_64-linux-gnu';
export const SOFTHSM_MODULE = findModule(['/usr/lib/softhsm/libsofthsm2.so', `/usr/lib/${ARCH}/softhsm/libsofthsm2.so`, '/usr/local/lib/softhsm/libsofthsm2.so']);
export const TPM2_PKCS11_MODULE = findModule([`/usr/lib/${ARCH}/pkcs11/libtpm2_pkcs11.so`, `/usr/lib/${ARCH}/libtpm2_pkcs11.so.1`, '/usr/local/lib/libtpm2_pkcs11.so']);

/** Why a SoftHSM suite cannot run here, or undefined when it can. Under CI=true an absent tool is a failure. */
export async function softhsmSkipReason(): Promise<string | undefined> {
  const missing: string[] = [];
  if (!hasCommand('softhsm2-util') || SOFTHSM_MODULE === undefined) missing.push('softhsm2 (apt-get install softhsm2)');
  if (!(await hasPkcs11js())) missing.push('pkcs11js (apt-get install build-essential python3; npm rebuild pkcs11js)');
  if (missing.length === 0) return undefined;
  const reason = `missing ${missing.join(' and ')}`;
  if (process.env.CI === 'true') throw new Error(`CI=true: the SoftHSM signer suite must run, but ${reason}`);
  return reason;
}

export interface SoftHsmToken {
  dir: string;
  conf: string;
  tokensDir: string;
  label: string;
  pinFile: string;
  cleanup(): Promise<void>;
}

/** A fresh SoftHSM2 token in a temp dir (test/scripts/softhsm-up.sh); sets SOFTHSM2_CONF for this process. */
export async function makeSoftHsmToken(label = 'stele-test'): Promise<SoftHsmToken> {
  const dir = await mkdtemp(join(tmpdir(), 'stele-softhsm-'));
  await run(join(SCRIPTS, 'softhsm-up.sh'), [dir, label, USER_PIN, SO_PIN]);
  const conf = join(dir, 'softhsm2.conf');
  process.env.SOFTHSM2_CONF = conf; // read by SoftHSM at C_Initialize
  const pinFile = join(dir, 'user.pin');
  await writeFile(pinFile, `${USER_PIN}\n`, { mode: 0o600 });
  return { dir, conf, tokensDir: join(dir, 'tokens'), label, pinFile, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Why the TPM suite does not run, or undefined when it does (STELE_TPM=1 and the tools are there). */
export async function tpmSkipReason(): Promise<string | undefined> {
  if (process.env.STELE_TPM !== '1') return 'set STELE_TPM=1 (npm run test:tpm) to run the swtpm + tpm2-pkcs11 suite';
  const missing = ['swtpm', 'swtpm_setup', 'tpm2-abrmd', 'tpm2_ptool', 'dbus-daemon', 'tpm2_getcap'].filter((c) => !hasCommand(c));
  if (TPM2_PKCS11_MODULE === undefined) missing.push('libtpm2-pkcs11-1');
  if (!(await hasPkcs11js())) missing.push('pkcs11js (build-essential python3; npm rebuild pkcs11js)');
  if (missing.length > 0) throw new Error(`STELE_TPM=1 but missing: ${missing.join(', ')} (apt-get install swtpm swtpm-tools tpm2-tools tpm2-abrmd libtpm2-pkcs11-1 libtpm2-pkcs11-tools libtss2-tcti-tabrmd0 dbus)`);
  return undefined;
}

export interface SwTpm {
  dir: string;
  label: string;
  pinFile: string;
  /** Stop / start tpm2-abrmd: the TPM "unplugged" and back. */
  stopResourceManager(): Promise<void>;
  startResourceManager(): Promise<void>;
  cleanup(): Promise<void>;
}

/** swtpm + tpm2-abrmd on a private D-Bus + a tpm2-pkcs11 token (test/scripts/swtpm-up.sh); exports its env here. */
export async function startSwTpm(label = 'stele-tpm'): Promise<SwTpm> {
  const dir = await mkdtemp(join(tmpdir(), 'stele-swtpm-'));
  const cleanup = async () => {
    await run(join(SCRIPTS, 'swtpm-down.sh'), [dir, '--rm']);
  };
  try {
    await run(join(SCRIPTS, 'swtpm-up.sh'), [dir, label, USER_PIN, SO_PIN], { timeout: 60_000 });
  } catch (err) {
    await cleanup();
    throw err;
  }
  // The env file is `export NAME="value"` lines written by swtpm-up.sh.
  for (const line of (await readFile(join(dir, 'env'), 'utf8')).split('\n')) {
    const m = /^export (\w+)="(.*)"$/.exec(line);
    if (m) process.env[m[1]!] = m[2]!;
  }
  const pinFile = join(dir, 'user.pin');
  await writeFile(pinFile, `${USER_PIN}\n`, { mode: 0o600 });
  return {
    dir,
    label,
    pinFile,
    stopResourceManager: async () => {
      await run(join(SCRIPTS, 'swtpm-abrmd.sh'), [dir, 'stop']);
    },
    startResourceManager: async () => {
      await run(join(SCRIPTS, 'swtpm-abrmd.sh'), [dir, 'start'], { timeout: 30_000 });
    },
    cleanup,
  };
}
