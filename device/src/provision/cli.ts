/**
 * `stele gateway provision`: run on the gateway by the installer. Exit 0 done, 1 failed (code on stderr), 2 usage.
 * Wired into the stele CLI by cli/src/main.ts (`gateway provision`).
 */
import { UsageError, parseCommand, usageError } from '@stele/command';
import { SteleError } from '@stele/core';
import type { Pkcs11Backend } from '../pkcs11/signer.ts';
import type { PinSource } from '../pkcs11/pin.ts';
import { provisionGateway, type ProvisionBackend } from './provision.ts';
import type { InstrumentEntry } from '@stele/core/enrolment';
import { readFile } from 'node:fs/promises';

export interface ProvisionIo {
  stdout: { write(chunk: string): unknown };
  stderr: { write(chunk: string): unknown };
}

export const PROVISION_USAGE = `usage: stele gateway provision --backend software|pkcs11|tpm --device-id ID --site S --installer-key F --out DIR
         [--key-file F]                                   (software)
         [--module PATH --token LABEL --pin-file F | --pin-env NAME] [--key-label L]   (pkcs11, tpm)
         [--require-attestation] [--tpm-ek-chain FILE.pem]      (tpm)
         [--instrument id=ID,kind=K,...]... [--instruments FILE.json] [--installer NAME] [--new-installer-key]

Makes the device signing key inside the chosen backend and writes, with no network:
  DIR/ID.enrol.cose   enrolment request signed by the device key, countersigned by the installer key
  DIR/ID.enrol.txt    short summary for a QR code (device, kid prefix, backend, SHA-256 of the .cose file)
  DIR/ID.enrol.json   readable copy of the request
  DIR/ID.key.json     (pkcs11, tpm) where the agent finds the key again: module, token, key id, PIN source

  --backend B         software (PKCS#8 file; development only), pkcs11 (SoftHSM, secure element, HSM) or
                      tpm (tpm2-pkcs11: same as pkcs11, recorded as a TPM key)
  --module PATH       PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so,
                      /usr/lib/aarch64-linux-gnu/pkcs11/libtpm2_pkcs11.so
  --token LABEL       token label
  --pin-file F        file holding the user PIN (mode 0600)     } one of the two; the PIN is never an argument
  --pin-env NAME      environment variable holding the user PIN }
  --key-label L       CKA_LABEL of the new key pair (default stele-device)
  --require-attestation  tpm: fail unless the key is certified by the TPM (TPM2_Certify by an attestation key
                      under the endorsement key, with the EK certificate); without it a failed certification
                      leaves the EK certificate alone in the request, and the key shows as declared, not attested
  --tpm-ek-chain F    tpm: PEM file of CA certificates above the EK certificate's issuer, carried in the request
  --key-file F        software backend: where to create the key (refuses to overwrite)
  --device-id ID      1..128 characters, none of / + #
  --site S            site name
  --instrument SPEC   an instrument as key=value pairs, id required (repeatable)
  --instruments FILE  a JSON array of instruments ({ "id": ..., ... })
  --installer-key F   the installer's own key (PKCS#8 PEM); --new-installer-key creates it if missing
  --installer NAME    installer name, recorded in the request
  --out DIR           output folder (e.g. a USB stick)
`;

const PROVISION_SPEC = {
  name: 'stele gateway provision',
  usage: PROVISION_USAGE,
  options: {
    backend: { type: 'string' },
    module: { type: 'string' },
    token: { type: 'string' },
    'pin-file': { type: 'string' },
    'pin-env': { type: 'string' },
    'key-label': { type: 'string' },
    'key-file': { type: 'string' },
    'device-id': { type: 'string' },
    site: { type: 'string' },
    instrument: { type: 'string', multiple: true },
    instruments: { type: 'string' },
    'installer-key': { type: 'string' },
    'new-installer-key': { type: 'boolean' },
    installer: { type: 'string' },
    out: { type: 'string' },
    'require-attestation': { type: 'boolean' },
    'tpm-ek-chain': { type: 'string' },
  },
} as const;

function parseInstrument(spec: string): InstrumentEntry {
  const entry: Record<string, string> = {};
  for (const part of spec.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new UsageError(`--instrument: expected key=value pairs, got '${part}'`);
    entry[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  if (!entry.id) throw new UsageError('--instrument: id=... is required');
  return entry as InstrumentEntry;
}

export async function runGatewayProvision(argv: string[], io: ProvisionIo): Promise<number> {
  const parsed = parseCommand(argv, PROVISION_SPEC, io);
  if (typeof parsed === 'number') return parsed;
  const values: Record<string, string | boolean | string[] | undefined> = parsed.values;
  let backend: ProvisionBackend;
  let instruments: InstrumentEntry[];
  let tpmIntermediates: Uint8Array[] | undefined;
  const str = (name: string): string => {
    const v = values[name];
    if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} is required`);
    return v;
  };
  try {
    const kind = str('backend');
    if (kind === 'software') {
      backend = { kind: 'software', keyFile: str('key-file') };
    } else if (kind === 'pkcs11' || kind === 'tpm') {
      const pinFile = values['pin-file'];
      const pinEnv = values['pin-env'];
      if ((typeof pinFile === 'string') === (typeof pinEnv === 'string')) throw new UsageError('give exactly one of --pin-file and --pin-env');
      const pin: PinSource = typeof pinFile === 'string' ? { file: pinFile } : { env: pinEnv as string };
      const keyLabel = values['key-label'];
      backend = {
        kind: 'pkcs11',
        config: {
          backend: kind satisfies Pkcs11Backend,
          module: str('module'),
          tokenLabel: str('token'),
          pin,
          ...(typeof keyLabel === 'string' ? { keyLabel } : {}),
        },
      };
    } else {
      throw new UsageError(`--backend must be software, pkcs11 or tpm (got '${kind}')`);
    }
    instruments = ((values.instrument as string[] | undefined) ?? []).map(parseInstrument);
    if (typeof values.instruments === 'string') {
      const list: unknown = JSON.parse(await readFile(values.instruments, 'utf8'));
      if (!Array.isArray(list) || !list.every((i) => typeof i === 'object' && i !== null && typeof (i as { id?: unknown }).id === 'string')) {
        throw new UsageError('--instruments: expected a JSON array of objects with an "id"');
      }
      instruments.push(...(list as InstrumentEntry[]));
    }
    if (typeof values['tpm-ek-chain'] === 'string') {
      const pem = await readFile(values['tpm-ek-chain'], 'utf8');
      tpmIntermediates = [...pem.matchAll(/-----BEGIN CERTIFICATE-----([^-]+)-----END CERTIFICATE-----/g)].map((m) => new Uint8Array(Buffer.from(m[1]!.replace(/\s/g, ''), 'base64')));
      if (tpmIntermediates.length === 0) throw new UsageError('--tpm-ek-chain: no PEM certificate in the file');
    }
    str('device-id');
    str('site');
    str('installer-key');
    str('out');
  } catch (err) {
    if (!(err instanceof UsageError) && !(err instanceof SyntaxError)) throw err;
    return usageError(io, PROVISION_SPEC, err.message);
  }
  try {
    const installerName = values.installer;
    const result = await provisionGateway({
      backend,
      deviceId: values['device-id'] as string,
      site: values.site as string,
      instruments,
      installerKeyFile: values['installer-key'] as string,
      createInstallerKey: values['new-installer-key'] === true,
      ...(typeof installerName === 'string' ? { installerName } : {}),
      outDir: values.out as string,
      ...(values['require-attestation'] === true ? { requireAttestation: true } : {}),
      ...(tpmIntermediates === undefined ? {} : { tpmIntermediates }),
    });
    io.stdout.write(`${result.summary}\n\nwrote ${result.requestFile}\n      ${result.summaryFile}\n      ${result.jsonFile}\n`);
    if (result.keyConfigFile !== undefined) io.stdout.write(`      ${result.keyConfigFile}\n`);
    const att = result.request.attestation;
    io.stdout.write(
      att.kind === 'tpm2-certify'
        ? '\nattestation: TPM2_Certify of the key by an attestation key under the endorsement key (EK certificate attached)\n'
        : att.kind === 'tpm-ek-certificate'
          ? `\nattestation: EK certificate only, the key is not certified (${att.note})\n`
          : `\nattestation: none (${att.reason})\n`,
    );
    io.stdout.write(`\ninstaller public key ${result.request.installer.publicKey}\n  (the ingest operator trusts it once, in DIR/installer-keys.txt; then: stele ingest enrol ${result.requestFile})\n`);
    return 0;
  } catch (err) {
    if (err instanceof TypeError || err instanceof RangeError) {
      io.stderr.write(`stele gateway provision: ${err.message}\n`);
      return 2;
    }
    const code = err instanceof SteleError ? `${err.code}: ` : '';
    io.stderr.write(`stele gateway provision: ${code}${(err as Error).message}\n`);
    return 1;
  }
}
