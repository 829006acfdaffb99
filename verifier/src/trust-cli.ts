/**
 * `stele trust`: the authority's side of the trust policy (docs/FORMAT.md §14, docs/officer.md).
 *
 *   stele trust keygen --out KEY.pem                    a new P-256 authority key (PKCS#8 PEM, mode 0600)
 *   stele trust fingerprint --key KEY.pem               the fingerprint officers pin (SHA-256 of the public key)
 *   stele trust sign DRAFT.json --key KEY.pem --out POLICY.cose [--name N] [--version N] [--expires-days N]
 *   stele trust show POLICY.cose --authority FP         check a policy against a pinned fingerprint and print it
 *   stele trust add-attestation-root DRAFT.json --cert CA.pem --name N [--test]   pin a TPM EK CA in a draft
 *
 * The authority key should live offline (or in an HSM); this command signs with a PEM file for small deployments.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign as nodeSign, type KeyObject } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { fromBase64Url, toBase64Url, parseCertificate, keyIdOf } from '@stele/core';
import type { Signer } from '@stele/core';
import {
  completePolicyDraft,
  type PolicyDraft,
  formatFingerprint,
  loadTrustPolicy,
  policyPayloadOf,
  signTrustPolicy,
  TrustPolicyError,
} from '@stele/core/trust';
import type { VerifyIo } from './cli.ts';

const USAGE = `usage: stele trust <keygen|fingerprint|sign|show|add-attestation-root> [options]

  keygen --out KEY.pem                 make a P-256 authority key (PKCS#8 PEM, mode 0600); prints its fingerprint
  fingerprint --key KEY.pem            print the fingerprint officers pin (SHA-256 of the public key, hex)
  sign DRAFT.json --key KEY.pem --out POLICY.cose [--name NAME] [--version N] [--expires-days N]
                                       complete a draft (\`stele ingest trust export\`) and sign its exact bytes
                                       (defaults: name "authority", version 1, expiry 180 days)
  show POLICY.cose --authority FP      check a policy against the pinned fingerprint and print its JSON
  add-attestation-root DRAFT.json --cert CA.pem --name NAME [--test]
                                       add a TPM endorsement key CA (PEM or DER) to the draft's attestationRoots
                                       (FORMAT.md §14.5); --test marks a test root such as swtpm's local CA
`;

/** An ES256 signer over a PKCS#8 PEM P-256 private key, through node:crypto. */
export function pemSigner(pem: string): Signer {
  const key: KeyObject = createPrivateKey(pem);
  const jwk = createPublicKey(key).export({ format: 'jwk' }) as { crv?: string; x?: string; y?: string };
  if (jwk.crv !== 'P-256' || jwk.x === undefined || jwk.y === undefined) throw new TypeError('the key is not a P-256 key');
  const publicKey = new Uint8Array([0x04, ...fromBase64Url(jwk.x), ...fromBase64Url(jwk.y)]);
  return {
    algorithm: 'ES256',
    keyId: keyIdOf(publicKey),
    publicKey,
    backend: 'software',
    sign: async (message) => new Uint8Array(nodeSign('sha256', message, { key, dsaEncoding: 'ieee-p1363' })),
  };
}

export async function runTrust(argv: string[], io: VerifyIo): Promise<number> {
  const [sub, ...rest] = argv;
  try {
    const { values, positionals } = parseArgs({
      args: rest,
      options: {
        out: { type: 'string' },
        key: { type: 'string' },
        name: { type: 'string' },
        version: { type: 'string' },
        'expires-days': { type: 'string' },
        authority: { type: 'string' },
        cert: { type: 'string' },
        test: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: true,
      strict: true,
    });
    if (sub === undefined || sub === '--help' || sub === '-h' || values.help === true) {
      io.stdout.write(USAGE);
      return sub === undefined ? 2 : 0;
    }
    switch (sub) {
      case 'keygen': {
        if (values.out === undefined) throw new RangeError('keygen needs --out KEY.pem');
        const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
        const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
        await writeFile(values.out, pem, { mode: 0o600, flag: 'wx' }); // never overwrite an authority key
        io.stdout.write(`${formatFingerprint(pemSigner(pem).keyId)}\n`);
        return 0;
      }
      case 'fingerprint': {
        if (values.key === undefined) throw new RangeError('fingerprint needs --key KEY.pem');
        io.stdout.write(`${formatFingerprint(pemSigner(await readFile(values.key, 'utf8')).keyId)}\n`);
        return 0;
      }
      case 'sign': {
        const draftFile = positionals[0];
        if (draftFile === undefined || values.key === undefined || values.out === undefined) throw new RangeError('sign needs DRAFT.json --key KEY.pem --out POLICY.cose');
        const signer = pemSigner(await readFile(values.key, 'utf8'));
        const draft = JSON.parse(await readFile(draftFile, 'utf8')) as PolicyDraft;
        const version = values.version === undefined ? 1 : Number(values.version);
        const days = values['expires-days'] === undefined ? 180 : Number(values['expires-days']);
        if (!Number.isSafeInteger(version) || version < 1) throw new RangeError('--version must be an integer >= 1');
        if (!Number.isSafeInteger(days) || days < 1) throw new RangeError('--expires-days must be an integer >= 1');
        const now = new Date();
        const json = completePolicyDraft(draft, {
          authorityName: values.name ?? 'authority',
          authorityPublicKey: signer.publicKey,
          version,
          issuedAt: now.toISOString(),
          expiresAt: new Date(now.getTime() + days * 86_400_000).toISOString(),
        });
        await writeFile(values.out, await signTrustPolicy(json, signer));
        io.stdout.write(`signed ${values.out}: version ${version}, expires in ${days} days; authority fingerprint ${formatFingerprint(signer.keyId)}\n`);
        return 0;
      }
      case 'show': {
        const file = positionals[0];
        if (file === undefined || values.authority === undefined) throw new RangeError('show needs POLICY.cose --authority FP');
        const bytes = new Uint8Array(await readFile(file));
        const policy = await loadTrustPolicy(bytes, values.authority);
        io.stdout.write(new TextDecoder().decode(policyPayloadOf(bytes)!));
        io.stdout.write(`\n# accepted: version ${policy.version}, SHA-256 ${policy.sha256}, ${policy.ingestKeys.length} ingest key(s), ${policy.anchors.length} anchor target(s)`);
        for (const s of policy.skipped) io.stdout.write(`\n# entry ${s.path} unusable: ${s.reason}`);
        io.stdout.write('\n');
        return 0;
      }
      case 'add-attestation-root': {
        const draftFile = positionals[0];
        if (draftFile === undefined || values.cert === undefined || values.name === undefined) throw new RangeError('add-attestation-root needs DRAFT.json --cert CA.pem --name NAME');
        const certBytes = await readFile(values.cert);
        const text = certBytes.toString('latin1');
        const m = /-----BEGIN CERTIFICATE-----([^-]+)-----END CERTIFICATE-----/.exec(text);
        const der = new Uint8Array(m === null ? certBytes : Buffer.from(m[1]!.replace(/\s/g, ''), 'base64'));
        const cert = parseCertificate(der); // refuse what a verifier could not use
        if (!cert.isCa) throw new RangeError(`${values.cert} is not a CA certificate (basicConstraints cA)`);
        const draft = JSON.parse(await readFile(draftFile, 'utf8')) as PolicyDraft & { attestationRoots?: unknown[] };
        const roots = draft.attestationRoots ?? [];
        roots.push({ kind: 'tpm-ek-ca', name: values.name, certificate: toBase64Url(der), validFrom: new Date(0).toISOString().replace('.000', ''), state: 'active', test: values.test === true });
        draft.attestationRoots = roots;
        await writeFile(draftFile, `${JSON.stringify(draft, null, 2)}\n`);
        io.stdout.write(`added attestation root "${values.name}"${values.test === true ? ' (test root)' : ''} to ${draftFile}: ${roots.length} root(s)\n`);
        return 0;
      }
      default:
        io.stderr.write(`stele trust: unknown subcommand ${sub}\n\n${USAGE}`);
        return 2;
    }
  } catch (err) {
    if (err instanceof TrustPolicyError) {
      io.stderr.write(`stele trust ${sub}: ${err.code}: ${err.message}\n`);
      return 1;
    }
    io.stderr.write(`stele trust ${sub ?? ''}: ${(err as Error).message}\n`);
    return 2;
  }
}
