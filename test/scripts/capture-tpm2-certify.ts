/**
 * Captures test/fixtures/tpm2/certify.json from a fresh swtpm (test/fixtures/tpm2/SOURCE.md):
 *   STELE_TPM=1 npx tsx test/scripts/capture-tpm2-certify.ts test/fixtures/tpm2/certify.json
 */
import { X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { provisionGateway } from '@stele/device';
import { startSwTpm, TPM2_PKCS11_MODULE, tpmSkipReason } from '../integration/signers/helpers.ts';

const out = process.argv[2];
if (out === undefined) throw new Error('usage: capture-tpm2-certify.ts OUT.json');
const skip = await tpmSkipReason();
if (skip !== undefined) throw new Error(skip);
const tpm = await startSwTpm();
try {
  const der = async (name: string) => Buffer.from(new X509Certificate(await readFile(join(tpm.dir, 'localca', name))).raw).toString('base64url');
  const localCa = await der('issuercert.pem');
  const result = await provisionGateway({
    backend: { kind: 'pkcs11', config: { backend: 'tpm', module: TPM2_PKCS11_MODULE!, tokenLabel: tpm.label, pin: { file: tpm.pinFile } } },
    deviceId: 'gw-tpm-fixture',
    site: 'fixture',
    instruments: [],
    installerKeyFile: join(tpm.dir, 'installer.pem'),
    createInstallerKey: true,
    outDir: join(tpm.dir, 'usb'),
    requireAttestation: true,
    tpmIntermediates: [new Uint8Array(Buffer.from(localCa, 'base64url'))],
  });
  const fixture = { attestation: result.request.attestation, devicePublicKey: result.request.publicKey, localCa, rootCa: await der('swtpm-localca-rootca-cert.pem') };
  await writeFile(out, `${JSON.stringify(fixture, null, 2)}\n`);
  console.log(`wrote ${out}`);
} finally {
  await tpm.cleanup();
}
