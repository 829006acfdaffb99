import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { generateKeyPairSync } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fromBase64Url, toBase64Url, utf8, verifyEs256, keyIdOf } from '@stele/core';
import { KeyError } from './errors.ts';
import { makeEnrolmentRecord } from './enrolment.ts';
import { createSoftwareKey, loadOrCreateSoftwareSigner, loadSoftwareSigner, SoftwareSigner } from './software-signer.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stele-key-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const codeOf = async (p: Promise<unknown>) => p.then(() => 'resolved', (e: unknown) => (e instanceof KeyError ? e.code : `other: ${String(e)}`));

describe('SoftwareSigner', () => {
  it('signs ES256 signatures that verify with core verifyEs256', async () => {
    const signer = await createSoftwareKey(join(dir, 'k.pem'));
    expect(signer.backend).toBe('software');
    expect(signer.algorithm).toBe('ES256');
    expect(signer.publicKey.length).toBe(65);
    expect(signer.publicKey[0]).toBe(4);
    expect(signer.keyId).toEqual(keyIdOf(signer.publicKey));
    const message = utf8('Signature1 over something');
    const sig = await signer.sign(message);
    expect(sig.length).toBe(64);
    expect(await verifyEs256(signer.publicKey, message, sig)).toBe(true);
    expect(await verifyEs256(signer.publicKey, utf8('something else'), sig)).toBe(false);
  });

  it('reloads the same key from its file', async () => {
    const path = join(dir, 'k.pem');
    const a = await createSoftwareKey(path);
    const b = await loadSoftwareSigner(path);
    expect(b.publicKey).toEqual(a.publicKey);
    const sig = await b.sign(utf8('m'));
    expect(await verifyEs256(a.publicKey, utf8('m'), sig)).toBe(true);
  });

  it('creates the key file as PKCS#8 PEM with mode 0600', async () => {
    const path = join(dir, 'k.pem');
    await createSoftwareKey(path);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readFile(path, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
  });

  it('refuses to overwrite an existing file with KEY_FILE_EXISTS', async () => {
    const path = join(dir, 'k.pem');
    await writeFile(path, 'precious', { mode: 0o600 });
    expect(await codeOf(createSoftwareKey(path))).toBe('KEY_FILE_EXISTS');
    expect(await readFile(path, 'utf8')).toBe('precious');
  });

  it('never shows key material in JSON, toString or inspect', async () => {
    const path = join(dir, 'k.pem');
    const signer = await createSoftwareKey(path);
    const pemBody = (await readFile(path, 'utf8')).split('\n').slice(1, -2).join('');
    const json = JSON.stringify(signer);
    expect(JSON.parse(json)).toEqual({ backend: 'software', kid: toBase64Url(signer.keyId) });
    for (const text of [json, String(signer), inspect(signer, { showHidden: true, depth: 10 }), JSON.stringify({ signer })]) {
      expect(text).not.toContain(pemBody.slice(0, 24));
      expect(text).not.toMatch(/PRIVATE|"d"/);
    }
    expect(Object.keys(signer)).not.toContain('key');
  });

  it('rejects a key that is not P-256 with KEY_FILE_INVALID', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
    expect(() => new SoftwareSigner(privateKey)).toThrow(KeyError);
    const path = join(dir, 'p384.pem');
    await writeFile(path, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    expect(await codeOf(loadSoftwareSigner(path))).toBe('KEY_FILE_INVALID');
    await writeFile(join(dir, 'junk.pem'), 'not a key', { mode: 0o600 });
    expect(await codeOf(loadSoftwareSigner(join(dir, 'junk.pem')))).toBe('KEY_FILE_INVALID');
  });

  it('reports a missing file with KEY_FILE_MISSING', async () => {
    expect(await codeOf(loadSoftwareSigner(join(dir, 'none.pem')))).toBe('KEY_FILE_MISSING');
  });

  describe.skipIf(process.platform === 'win32')('when the key file is readable by others', () => {
    it('refuses it with KEY_FILE_MODE naming the chmod, and loads it once fixed', async () => {
      const path = join(dir, 'k.pem');
      const a = await createSoftwareKey(path);
      await chmod(path, 0o644);
      const err = await loadSoftwareSigner(path).then(() => undefined, (e: unknown) => e as KeyError);
      expect(err?.code).toBe('KEY_FILE_MODE');
      expect(err?.message).toContain(`chmod 600 ${path}`);
      await chmod(path, 0o600);
      expect((await loadSoftwareSigner(path)).publicKey).toEqual(a.publicKey);
    });
  });

  it('loadOrCreate creates once, then loads the same key', async () => {
    const path = join(dir, 'k.pem');
    const a = await loadOrCreateSoftwareSigner(path);
    const b = await loadOrCreateSoftwareSigner(path);
    expect(b.keyId).toEqual(a.keyId);
  });
});

describe('makeEnrolmentRecord', () => {
  it('carries the public key, kid and backend in base64url', async () => {
    const signer = await createSoftwareKey(join(dir, 'k.pem'));
    const rec = makeEnrolmentRecord(signer, 'gw-0001', 'stack 2', new Date('2026-11-23T14:00:00Z'));
    expect(rec).toEqual({
      deviceId: 'gw-0001',
      publicKey: toBase64Url(signer.publicKey),
      kid: toBase64Url(signer.keyId),
      keyBackend: 'software',
      enrolledAt: '2026-11-23T14:00:00.000Z',
      site: 'stack 2',
    });
    expect(fromBase64Url(rec.publicKey)).toEqual(signer.publicKey);
    expect('site' in makeEnrolmentRecord(signer, 'gw-0001')).toBe(false);
  });

  it('rejects device ids that cannot be an MQTT topic level', async () => {
    const signer = await createSoftwareKey(join(dir, 'k.pem'));
    for (const bad of ['', 'a/b', 'a+', '#', 'x\n']) expect(() => makeEnrolmentRecord(signer, bad)).toThrow(RangeError);
  });
});
