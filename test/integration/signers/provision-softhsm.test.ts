/**
 * `stele gateway provision` on SoftHSM2: the key is made on the token, and pkcs11-tool (OpenSC) then lists the
 * private key as sensitive and never extractable (issue #3 acceptance). Skips like softhsm.test.ts.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGatewayProvision } from '@stele/device/provision';
import { verifyEnrolmentRequest } from '@stele/core/enrolment';
import { Pkcs11Signer, createSoftwareKey } from '@stele/device';
import { utf8, verifyEs256 } from '@stele/core';
import { hasCommand, makeSoftHsmToken, SOFTHSM_MODULE, softhsmSkipReason, USER_PIN, type SoftHsmToken } from './helpers.ts';

const run = promisify(execFile);
let skip = await softhsmSkipReason();
if (skip === undefined && !hasCommand('pkcs11-tool')) {
  if (process.env.CI === 'true') throw new Error('CI=true: pkcs11-tool (apt-get install opensc) is needed');
  skip = 'missing pkcs11-tool (apt-get install opensc)';
}

class Capture {
  text = '';
  write(chunk: string) {
    this.text += chunk;
    return true;
  }
}

describe.skipIf(skip !== undefined)(`stele gateway provision on SoftHSM2${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let token: SoftHsmToken;
  beforeAll(async () => {
    token = await makeSoftHsmToken('stele-gw');
    await createSoftwareKey(join(token.dir, 'installer.pem'));
  });
  afterAll(async () => token?.cleanup());

  it('makes the key on the token; pkcs11-tool shows it sensitive and never extractable; the request verifies', async () => {
    const out = new Capture();
    const err = new Capture();
    const usb = join(token.dir, 'usb');
    const code = await runGatewayProvision(
      ['--backend', 'pkcs11', '--module', SOFTHSM_MODULE!, '--token', token.label, '--pin-file', token.pinFile, '--device-id', 'gw-roof-7',
        '--site', 'Boiler house roof', '--instrument', 'id=cems-1,kind=hj212,port=/dev/ttyUSB0', '--installer-key', join(token.dir, 'installer.pem'),
        '--installer', 'Zhang Min', '--out', usb],
      { stdout: out, stderr: err },
    );
    expect(err.text).toBe('');
    expect(code).toBe(0);
    expect(out.text).toMatch(/backend=pkcs11/);
    expect(out.text).not.toContain(USER_PIN);

    const bytes = new Uint8Array(await readFile(join(usb, 'gw-roof-7.enrol.cose')));
    const verified = await verifyEnrolmentRequest(bytes);
    expect(verified.record.keyBackend).toBe('pkcs11');
    expect(verified.request.keyStore).toMatchObject({ store: 'pkcs11', tokenLabel: 'stele-gw', sensitive: true, extractable: false, neverExtractable: true, valueRead: 'CKR_ATTRIBUTE_SENSITIVE' });
    for (const file of ['gw-roof-7.enrol.cose', 'gw-roof-7.enrol.json', 'gw-roof-7.enrol.txt', 'gw-roof-7.key.json']) {
      expect(await readFile(join(usb, file), 'latin1')).not.toContain(USER_PIN);
    }

    const { stdout } = await run('pkcs11-tool', ['--module', SOFTHSM_MODULE!, '--token-label', token.label, '--login', '--pin', USER_PIN, '--list-objects'], {
      env: { ...process.env, SOFTHSM2_CONF: token.conf },
    });
    const privateBlock = stdout.split(/\n(?=\S)/).find((b) => /^Private Key Object; EC/.test(b) && /label:\s+stele-device/.test(b));
    expect(privateBlock).toBeDefined();
    const access = /Access:\s+(.*)/.exec(privateBlock!)?.[1] ?? '';
    expect(access).toMatch(/\bsensitive\b/);
    expect(access).toMatch(/never extractable/);
    expect(access).not.toMatch(/(^|, )extractable/);

    // the agent finds the same key again from the key config written beside the request
    const keyConfig = JSON.parse(await readFile(join(usb, 'gw-roof-7.key.json'), 'utf8'));
    expect(keyConfig.pin).toEqual({ file: token.pinFile });
    const signer = await Pkcs11Signer.open(keyConfig);
    try {
      expect(signer.publicKey).toEqual(new Uint8Array(Buffer.from(verified.record.publicKey, 'base64url')));
      const sig = await signer.sign(utf8('first reading'));
      expect(await verifyEs256(signer.publicKey, utf8('first reading'), sig)).toBe(true);
    } finally {
      await signer.close();
    }
  });

  it('refuses a second key under the same label with KEY_EXISTS (exit 1)', async () => {
    const err = new Capture();
    const code = await runGatewayProvision(
      ['--backend', 'pkcs11', '--module', SOFTHSM_MODULE!, '--token', token.label, '--pin-env', 'STELE_TEST_PIN', '--device-id', 'gw-roof-8',
        '--site', 'roof', '--installer-key', join(token.dir, 'installer.pem'), '--out', join(token.dir, 'usb2')],
      { stdout: new Capture(), stderr: err },
    );
    // STELE_TEST_PIN is unset: the PIN source is named but empty
    expect(code).toBe(1);
    expect(err.text).toContain('KEY_PIN_UNAVAILABLE');
    process.env.STELE_TEST_PIN = USER_PIN;
    try {
      const err2 = new Capture();
      const code2 = await runGatewayProvision(
        ['--backend', 'pkcs11', '--module', SOFTHSM_MODULE!, '--token', token.label, '--pin-env', 'STELE_TEST_PIN', '--device-id', 'gw-roof-8',
          '--site', 'roof', '--installer-key', join(token.dir, 'installer.pem'), '--out', join(token.dir, 'usb2')],
        { stdout: new Capture(), stderr: err2 },
      );
      expect(code2).toBe(1);
      expect(err2.text).toContain('KEY_EXISTS');
    } finally {
      delete process.env.STELE_TEST_PIN;
    }
  });
});
