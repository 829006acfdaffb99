/**
 * Unit tests of the PKCS#11 signer against a fake binding (no token, no native code): binding absent, config
 * misuse, PIN sources, CKA_EC_POINT forms, the queue's timeout, PIN lockout safety, reconnect after removal.
 * The same behaviours on real tokens: test/integration/signers/ (SoftHSM2, swtpm).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { p256 } from '@noble/curves/nist.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { utf8, SteleError, verifyEs256 } from '@stele/core';
import type { Attribute, Handle, Pkcs11Api, Pkcs11Binding } from './binding.ts';
import { CKA_CLASS, CKA_EC_PARAMS, CKA_EC_POINT, CKA_ID, CKO_PRIVATE_KEY, CKR, P256_EC_PARAMS } from './constants.ts';
import { pointFromEcPoint } from './ec-point.ts';
import { PKCS11JS_INSTALL_HINT } from './errors.ts';
import { checkPinSource, readPin } from './pin.ts';
import { Pkcs11Signer, type Pkcs11SignerConfig } from './signer.ts';

const codeOf = async (p: Promise<unknown>) => p.then(() => 'resolved', (e: unknown) => (e instanceof SteleError ? e.code : `other: ${String(e)}`));

function ckrError(name: keyof typeof CKR): Error {
  return Object.assign(new Error(`CKR_${name}`), { code: CKR[name] });
}

/** A one-token, one-key PKCS#11 library in memory. */
class FakeToken {
  present = true;
  pin = '1234';
  loginAttempts = 0;
  hang = false;
  signCalls = 0;
  readonly secret = p256.utils.randomSecretKey();
  readonly point = p256.getPublicKey(this.secret, false);
  readonly id = Buffer.from('0102', 'hex');
  sessions = new Set<string>();
  private next = 1;
  private found: Handle[] = [];

  binding(): Pkcs11Binding {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const token = this;
    const h = (n: number) => Buffer.from([n]);
    const api: Pkcs11Api = {
      load() {},
      close() {},
      C_Initialize() {},
      C_Finalize() {
        token.sessions.clear();
      },
      C_GetInfo: () => ({ manufacturerID: 'fake', libraryDescription: 'fake', libraryVersion: { major: 1, minor: 0 } }),
      C_GetSlotList: () => (token.present ? [h(0)] : []),
      C_GetTokenInfo: () => ({ label: 'fake-token'.padEnd(32), manufacturerID: 'fake', model: 'm', serialNumber: '1', flags: 0 }),
      C_OpenSession: () => {
        const s = h(token.next++);
        token.sessions.add(s.toString('hex'));
        return s;
      },
      C_CloseSession: (s) => {
        token.sessions.delete(s.toString('hex'));
      },
      C_Login: (_s, _u, pin) => {
        token.loginAttempts++;
        if (pin !== token.pin) throw ckrError('PIN_INCORRECT');
      },
      C_Logout() {},
      C_FindObjectsInit: (_s, template: Attribute[]) => {
        const cls = template.find((a) => a.type === CKA_CLASS)?.value;
        token.found = cls === CKO_PRIVATE_KEY ? [h(100)] : [h(101)];
      },
      C_FindObjects: () => {
        const out = token.found;
        token.found = [];
        return out;
      },
      C_FindObjectsFinal() {},
      C_GetAttributeValue: (_s, _o, template) =>
        template.map((a) => ({
          type: a.type,
          value:
            a.type === CKA_EC_POINT ? Buffer.concat([Buffer.from([4, 65]), token.point]) : a.type === CKA_EC_PARAMS ? Buffer.from(P256_EC_PARAMS) : a.type === CKA_ID ? token.id : Buffer.from([1]),
        })),
      C_DestroyObject() {},
      C_SignInit: (s) => {
        if (!token.present) throw ckrError('DEVICE_REMOVED');
        if (!token.sessions.has(s.toString('hex'))) throw ckrError('SESSION_HANDLE_INVALID');
      },
      C_SignAsync: async (_s, digest) => {
        token.signCalls++;
        if (token.hang) return new Promise<Buffer>(() => {});
        return Buffer.from(p256.sign(digest, token.secret, { prehash: false, lowS: false }));
      },
      C_GenerateKeyPairAsync: async () => ({ publicKey: h(101), privateKey: h(100) }),
    };
    return { PKCS11: class { constructor() { return api; } } as unknown as new () => Pkcs11Api };
  }
}

let dir: string;
let token: FakeToken;
let config: Pkcs11SignerConfig;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stele-p11-'));
  token = new FakeToken();
  await writeFile(join(dir, 'pin'), '1234\n', { mode: 0o600 });
  // the module path must exist (the fake binding never loads it); one per test, since libraries are shared by path
  await writeFile(join(dir, 'libfake-pkcs11.so'), '');
  config = { module: join(dir, 'libfake-pkcs11.so'), tokenLabel: 'fake-token', pin: { file: join(dir, 'pin') } };
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('Pkcs11Signer (fake binding)', () => {
  it('says what to install when pkcs11js is absent (KEY_BACKEND_UNAVAILABLE)', async () => {
    const err = await Pkcs11Signer.open(config, { loadBinding: () => Promise.reject(new Error("Cannot find module 'pkcs11js'")) }).catch((e: unknown) => e);
    expect((err as SteleError).code).toBe('KEY_BACKEND_UNAVAILABLE');
    expect((err as Error).message).toBe(PKCS11JS_INSTALL_HINT);
    expect(PKCS11JS_INSTALL_HINT).toContain('build-essential python3');
    expect(PKCS11JS_INSTALL_HINT).toContain('npm rebuild pkcs11js');
  });

  it('signs through CKM_ECDSA over the host SHA-256; signatures verify', async () => {
    const signer = await Pkcs11Signer.open(config, { loadBinding: async () => token.binding() });
    const sig = await signer.sign(utf8('m'));
    expect(await verifyEs256(signer.publicKey, utf8('m'), sig)).toBe(true);
    expect(JSON.stringify(signer)).not.toContain('1234');
    expect(String(signer)).not.toContain('1234');
    await signer.close();
    expect(await codeOf(signer.sign(utf8('m')))).toBe('KEY_SIGNER_CLOSED');
  });

  it('refuses a PIN in the config itself (TypeError) and bad options (RangeError)', async () => {
    await expect(Pkcs11Signer.open({ ...config, pin: '1234' as never })).rejects.toThrow(TypeError);
    await expect(Pkcs11Signer.open({ ...config, module: '' })).rejects.toThrow(TypeError);
    await expect(Pkcs11Signer.open(config, { timeoutMs: 0 })).rejects.toThrow(RangeError);
  });

  it('gives KEY_SIGN_TIMEOUT to every waiting caller when the token stops answering, never a hang', async () => {
    const signer = await Pkcs11Signer.open(config, { loadBinding: async () => token.binding(), timeoutMs: 50 });
    token.hang = true;
    const codes = await Promise.all([signer.sign(utf8('a')), signer.sign(utf8('b')), signer.sign(utf8('c'))].map(codeOf));
    expect(codes).toEqual(['KEY_SIGN_TIMEOUT', 'KEY_SIGN_TIMEOUT', 'KEY_SIGN_TIMEOUT']);
    expect(token.signCalls).toBe(1); // the others waited in the queue: the session was never shared
  });

  it('does not try a PIN the token refused again (lockout safety)', async () => {
    token.pin = '9999';
    const options = { loadBinding: async () => token.binding() };
    expect(await codeOf(Pkcs11Signer.open(config, options))).toBe('KEY_PIN_INCORRECT');
    expect(await codeOf(Pkcs11Signer.open(config, options))).toBe('KEY_PIN_INCORRECT');
    expect(token.loginAttempts).toBe(1);
  });

  it('reports removal as KEY_DEVICE_REMOVED and resumes once the token is back', async () => {
    const signer = await Pkcs11Signer.open(config, { loadBinding: async () => token.binding(), reconnectDelayMs: 1, reconnectMaxDelayMs: 2 });
    token.present = false;
    expect(await codeOf(signer.sign(utf8('x')))).toBe('KEY_DEVICE_REMOVED');
    token.present = true;
    let sig: Uint8Array | undefined;
    for (let i = 0; i < 50 && sig === undefined; i++) {
      sig = await signer.sign(utf8('x')).catch(() => new Promise<undefined>((r) => setTimeout(() => r(undefined), 5)));
    }
    expect(sig).toBeDefined();
    expect(await verifyEs256(signer.publicKey, utf8('x'), sig!)).toBe(true);
    await signer.close();
  });

  it('reports KEY_TOKEN_MISSING for an absent label and KEY_MODULE_MISSING for an absent library', async () => {
    const options = { loadBinding: async () => token.binding() };
    expect(await codeOf(Pkcs11Signer.open({ ...config, tokenLabel: 'other' }, options))).toBe('KEY_TOKEN_MISSING');
    expect(await codeOf(Pkcs11Signer.open({ ...config, module: join(dir, 'none.so') }, options))).toBe('KEY_MODULE_MISSING');
  });
});

describe('PIN sources', () => {
  it('reads a file (one trailing newline dropped) or a variable; KEY_PIN_UNAVAILABLE otherwise', async () => {
    expect(await readPin({ file: join(dir, 'pin') })).toBe('1234');
    expect(await readPin({ env: 'P' }, { P: '5678' })).toBe('5678');
    expect(await codeOf(readPin({ env: 'P' }, {}))).toBe('KEY_PIN_UNAVAILABLE');
    expect(await codeOf(readPin({ file: join(dir, 'none') }))).toBe('KEY_PIN_UNAVAILABLE');
  });

  it('accepts only { file } or { env }', () => {
    expect(() => checkPinSource('1234')).toThrow(TypeError);
    expect(() => checkPinSource({ file: 'a', env: 'B' })).toThrow(TypeError);
    expect(() => checkPinSource({ env: 'not a name' })).toThrow(TypeError);
    expect(() => checkPinSource({ env: 'STELE_PIN' })).not.toThrow();
  });
});

describe('pointFromEcPoint', () => {
  const point = p256.getPublicKey(p256.utils.randomSecretKey(), false);
  it('takes the DER OCTET STRING of PKCS#11 v2.40 and the bare point', () => {
    expect(pointFromEcPoint(Uint8Array.from([4, 65, ...point]))).toEqual(point);
    expect(pointFromEcPoint(point)).toEqual(point);
  });
  it('rejects anything else with KEY_TOKEN_ERROR', () => {
    expect(() => pointFromEcPoint(point.subarray(1))).toThrow(expect.objectContaining({ code: 'KEY_TOKEN_ERROR' }));
    const off = Uint8Array.from(point);
    off[64]! ^= 1;
    expect(() => pointFromEcPoint(off)).toThrow(expect.objectContaining({ code: 'KEY_TOKEN_ERROR' }));
  });
});
