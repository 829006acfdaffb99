import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { toBase64Url, SteleError } from '@stele/core';
import { decodeSign1, encodeSign1 } from '@stele/core/cose';
import { createSoftwareKey } from '../software-signer.ts';
import { runGatewayProvision } from './cli.ts';
import { provisionGateway, type ProvisionOptions } from './provision.ts';
import { verifyEnrolmentRequest } from '@stele/core/enrolment';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stele-provision-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const codeOf = async (p: Promise<unknown>) => p.then(() => 'resolved', (e: unknown) => (e instanceof SteleError ? e.code : `other: ${String(e)}`));

function options(overrides: Partial<ProvisionOptions> = {}): ProvisionOptions {
  return {
    backend: { kind: 'software', keyFile: join(dir, 'device-key.pem') },
    deviceId: 'gw-0001',
    site: 'stack 2, Tangshan plant',
    instruments: [{ id: 'cems-1', kind: 'hj212', port: '/dev/ttyUSB0' }],
    installerKeyFile: join(dir, 'installer.pem'),
    createInstallerKey: true,
    installerName: 'Li Wei',
    outDir: join(dir, 'usb'),
    now: new Date('2026-11-23T14:00:00Z'),
    gateway: { hostname: 'gw-0001', serial: { source: '/etc/machine-id', value: 'abc123' }, macs: [{ iface: 'eth0', mac: 'dc:a6:32:01:02:03' }] },
    ...overrides,
  };
}

class Capture {
  text = '';
  write(chunk: string) {
    this.text += chunk;
    return true;
  }
}

describe('provisionGateway with the software backend', () => {
  it('writes a request that verifies, with the device and installer identities', async () => {
    const result = await provisionGateway(options());
    const bytes = new Uint8Array(await readFile(result.requestFile));
    expect(bytes).toEqual(result.fileBytes);
    const verified = await verifyEnrolmentRequest(bytes);
    expect(verified.record).toEqual({
      deviceId: 'gw-0001',
      publicKey: result.request.publicKey,
      kid: result.request.kid,
      keyBackend: 'software',
      enrolledAt: '2026-11-23T14:00:00.000Z',
      site: 'stack 2, Tangshan plant',
    });
    expect(verified.request.instruments).toEqual([{ id: 'cems-1', kind: 'hj212', port: '/dev/ttyUSB0' }]);
    expect(verified.request.gateway.macs).toEqual([{ iface: 'eth0', mac: 'dc:a6:32:01:02:03' }]);
    expect(verified.request.attestation.kind).toBe('none');
    expect(verified.request.installer.name).toBe('Li Wei');
    expect(verified.installerKid).toBe(result.request.installer.kid);
    expect(JSON.parse(await readFile(result.jsonFile, 'utf8'))).toEqual(verified.request);
    expect(result.keyConfigFile).toBeUndefined();
  });

  it('writes a QR-sized summary naming device, kid prefix, backend and the file SHA-256', async () => {
    const result = await provisionGateway(options());
    const verified = await verifyEnrolmentRequest(result.fileBytes);
    const lines = result.summary.split('\n');
    expect(lines).toEqual(['STELE-ENROL/1', 'device=gw-0001', `kid=${result.request.kid.slice(0, 16)}`, 'backend=software', `sha256=${verified.fileSha256}`]);
    expect(result.summary.length).toBeLessThan(200);
    expect(await readFile(result.summaryFile, 'utf8')).toBe(`${result.summary}\n`);
  });

  it('refuses to overwrite an earlier request with PROVISION_OUTPUT_EXISTS', async () => {
    await provisionGateway(options());
    expect(await codeOf(provisionGateway(options({ backend: { kind: 'software', keyFile: join(dir, 'k2.pem') } })))).toBe('PROVISION_OUTPUT_EXISTS');
  });

  it('reads the gateway identity from this machine when none is given', async () => {
    const { gateway: _g, ...rest } = options();
    const result = await provisionGateway(rest);
    expect(typeof result.request.gateway.hostname).toBe('string');
    expect(Array.isArray(result.request.gateway.macs)).toBe(true);
  });
});

describe('verifyEnrolmentRequest', () => {
  it('rejects a changed byte anywhere with a code', async () => {
    const { fileBytes } = await provisionGateway(options());
    for (const at of [0, 20, Math.floor(fileBytes.length / 2), fileBytes.length - 70, fileBytes.length - 1]) {
      const bad = new Uint8Array(fileBytes);
      bad[at]! ^= 0x01;
      expect(await codeOf(verifyEnrolmentRequest(bad))).toMatch(/^ENROLMENT_(FORMAT_ERROR|SIGNATURE_INVALID|COUNTERSIGNATURE_INVALID)$/);
    }
  });

  it('rejects a countersignature by another key with ENROLMENT_COUNTERSIGNATURE_INVALID', async () => {
    const { fileBytes } = await provisionGateway(options());
    const outer = decodeSign1(fileBytes);
    const sig = new Uint8Array(outer.signature);
    sig[10]! ^= 0xff;
    const forged = encodeSign1({ protectedBytes: outer.protectedBytes, unprotectedHeader: outer.unprotectedHeader, payload: outer.payload, signature: sig });
    expect(await codeOf(verifyEnrolmentRequest(forged))).toBe('ENROLMENT_COUNTERSIGNATURE_INVALID');
  });

  it('rejects a device signature that does not verify with ENROLMENT_SIGNATURE_INVALID', async () => {
    const { fileBytes } = await provisionGateway(options());
    const outer = decodeSign1(fileBytes);
    const inner = decodeSign1(outer.payload!);
    const sig = new Uint8Array(inner.signature);
    sig[5]! ^= 0xff;
    const innerBad = encodeSign1({ protectedBytes: inner.protectedBytes, unprotectedHeader: inner.unprotectedHeader, payload: inner.payload, signature: sig });
    // re-countersign honestly over the altered inner message
    const installer = await import('../software-signer.ts').then((m) => m.loadSoftwareSigner(join(dir, 'installer.pem')));
    const { sigStructure1 } = await import('@stele/core/cose');
    const outerSig = await installer.sign(sigStructure1(outer.protectedBytes, innerBad));
    const file = encodeSign1({ protectedBytes: outer.protectedBytes, unprotectedHeader: new Map(), payload: innerBad, signature: outerSig });
    expect(await codeOf(verifyEnrolmentRequest(file))).toBe('ENROLMENT_SIGNATURE_INVALID');
  });

  it('rejects bytes that are not COSE with ENROLMENT_FORMAT_ERROR', async () => {
    expect(await codeOf(verifyEnrolmentRequest(new Uint8Array([1, 2, 3])))).toBe('ENROLMENT_FORMAT_ERROR');
    expect(await codeOf(verifyEnrolmentRequest(new Uint8Array(0)))).toBe('ENROLMENT_FORMAT_ERROR');
  });
});

describe('stele gateway provision (runGatewayProvision)', () => {
  it('prints its usage with --help', async () => {
    const out = new Capture();
    expect(await runGatewayProvision(['--help'], { stdout: out, stderr: new Capture() })).toBe(0);
    expect(out.text).toMatch(/^usage: stele gateway provision/);
  });

  it('exits 2 on a missing option or both PIN sources', async () => {
    const err = new Capture();
    expect(await runGatewayProvision(['--backend', 'software'], { stdout: new Capture(), stderr: err })).toBe(2);
    const both = ['--backend', 'pkcs11', '--module', '/x.so', '--token', 't', '--pin-file', 'f', '--pin-env', 'P', '--device-id', 'd', '--site', 's', '--installer-key', 'k', '--out', dir];
    expect(await runGatewayProvision(both, { stdout: new Capture(), stderr: err })).toBe(2);
    expect(await runGatewayProvision(['--bogus'], { stdout: new Capture(), stderr: err })).toBe(2);
  });

  it('provisions a software key and prints the summary', async () => {
    await createSoftwareKey(join(dir, 'installer.pem'));
    await writeFile(join(dir, 'instruments.json'), JSON.stringify([{ id: 'flow-1', kind: 'modbus' }]));
    const out = new Capture();
    const code = await runGatewayProvision(
      ['--backend', 'software', '--key-file', join(dir, 'dk.pem'), '--device-id', 'gw-9', '--site', 'roof', '--installer-key', join(dir, 'installer.pem'),
        '--instrument', 'id=cems-1,kind=hj212', '--instruments', join(dir, 'instruments.json'), '--out', join(dir, 'usb')],
      { stdout: out, stderr: new Capture() },
    );
    expect(code).toBe(0);
    expect(out.text).toMatch(/^STELE-ENROL\/1\ndevice=gw-9\n/);
    const verified = await verifyEnrolmentRequest(new Uint8Array(await readFile(join(dir, 'usb', 'gw-9.enrol.cose'))));
    expect(verified.request.instruments.map((i) => i.id)).toEqual(['cems-1', 'flow-1']);
    expect(verified.request.installer.kid).toBe(toBase64Url((await import('../software-signer.ts').then((m) => m.loadSoftwareSigner(join(dir, 'installer.pem')))).keyId));
  });

  it('exits 1 with the code when the installer key is missing', async () => {
    const err = new Capture();
    const code = await runGatewayProvision(
      ['--backend', 'software', '--key-file', join(dir, 'dk.pem'), '--device-id', 'gw-9', '--site', 'roof', '--installer-key', join(dir, 'none.pem'), '--out', dir],
      { stdout: new Capture(), stderr: err },
    );
    expect(code).toBe(1);
    expect(err.text).toContain('KEY_FILE_MISSING');
  });
});
