/**
 * What identifies the gateway hardware in an enrolment request, and what attestation the key backend offers.
 * Read locally only: no network (installers are often on a roof with no signal).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { hostname, networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { toBase64Url } from '@stele/core';
import type { Attestation, GatewayIdentity } from '@stele/core/enrolment';

export type { Attestation, GatewayIdentity };

const run = promisify(execFile);


export async function readGatewayIdentity(): Promise<GatewayIdentity> {
  return { hostname: hostname(), serial: await readSerial(), macs: readMacs() };
}

async function readSerial(): Promise<GatewayIdentity['serial']> {
  try {
    const cpuinfo = await readFile('/proc/cpuinfo', 'utf8');
    const m = /^Serial\s*:\s*([0-9a-fA-F]+)\s*$/m.exec(cpuinfo);
    if (m && !/^0+$/.test(m[1]!)) return { source: '/proc/cpuinfo', value: m[1]!.toLowerCase() };
  } catch {
    // not Linux, or no /proc
  }
  try {
    const id = (await readFile('/etc/machine-id', 'utf8')).trim();
    if (id !== '') return { source: '/etc/machine-id', value: id };
  } catch {
    // none
  }
  return { source: 'none', value: '' };
}

function readMacs(): GatewayIdentity['macs'] {
  const out: GatewayIdentity['macs'] = [];
  for (const [iface, addrs] of Object.entries(networkInterfaces())) {
    const mac = addrs?.find((a) => !a.internal && a.mac !== '00:00:00:00:00:00')?.mac;
    if (mac !== undefined) out.push({ iface, mac });
  }
  return out.sort((a, b) => (a.iface < b.iface ? -1 : a.iface > b.iface ? 1 : 0));
}

/** What the key backend can show about itself. */

/**
 * TCG EK Credential Profile (v2.5 §2.2.1.5): EK certificates at NV 0x01C00002 (RSA 2048), 0x01C0000A (ECC P-256)
 * and the high range 0x01C00012..0x01C0001F (other key types); an EK certificate chain at 0x01C00100..0x01C001FF.
 */
function isEkCertIndex(index: number): boolean {
  return index === 0x01c00002 || index === 0x01c0000a || (index >= 0x01c00012 && index <= 0x01c0001f) || (index >= 0x01c00100 && index <= 0x01c001ff);
}

/**
 * The TPM's EK certificate(s) read from NV with tpm2-tools (`tpm2_nvreadpublic`, `tpm2_nvread`; TCTI from
 * TPM2TOOLS_TCTI, on gateways the default device:/dev/tpmrm0). Never `tpm2_getekcertificate`: without an NV
 * certificate it fetches one from the manufacturer over the network. Says `none` with the reason otherwise.
 */
export async function readTpmAttestation(env: NodeJS.ProcessEnv = process.env): Promise<Attestation> {
  let listing: string;
  try {
    listing = (await run('tpm2_nvreadpublic', [], { env, timeout: 20_000 })).stdout;
  } catch (err) {
    return { kind: 'none', reason: `tpm2_nvreadpublic failed: ${(err as Error).message.split('\n')[0]}` };
  }
  const indices = [...listing.matchAll(/^(0x[0-9a-fA-F]+):/gm)].map((m) => Number.parseInt(m[1]!, 16)).filter(isEkCertIndex);
  if (indices.length === 0) return { kind: 'none', reason: 'the TPM holds no EK certificate in NV (TCG EK Credential Profile indices)' };
  const dir = await mkdtemp(join(tmpdir(), 'stele-ek-'));
  try {
    const certificates: Array<{ nvIndex: string; der: string }> = [];
    for (const index of indices) {
      const hex = `0x${index.toString(16)}`;
      const file = join(dir, `${hex}.der`);
      try {
        await run('tpm2_nvread', [hex, '-o', file], { env, timeout: 20_000 });
        certificates.push({ nvIndex: hex, der: toBase64Url(trimDer(new Uint8Array(await readFile(file)))) });
      } catch {
        // unreadable index (auth policy): skip it
      }
    }
    if (certificates.length === 0) return { kind: 'none', reason: 'EK certificate NV indices exist but could not be read' };
    return {
      kind: 'tpm-ek-certificate',
      certificates,
      note: 'proves a TPM of that manufacturer is present; it does not bind the signing key to the TPM',
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** NV areas are often larger than the certificate: keep the DER SEQUENCE only (X.690 §8.1.3 lengths). */
function trimDer(bytes: Uint8Array): Uint8Array {
  if (bytes.length < 2 || bytes[0] !== 0x30) return bytes;
  const first = bytes[1]!;
  if (first < 0x80) return bytes.subarray(0, Math.min(bytes.length, 2 + first));
  const n = first & 0x7f;
  if (n === 0 || n > 4 || bytes.length < 2 + n) return bytes;
  let len = 0;
  for (let i = 0; i < n; i++) len = len * 256 + bytes[2 + i]!;
  return bytes.subarray(0, Math.min(bytes.length, 2 + n + len));
}
