/**
 * Drafting a trust policy (docs/FORMAT.md §14): what `stele ingest trust export` writes for the authority (an
 * unsigned draft naming the ingest key and anchor target), and how `stele trust sign` completes it (authority
 * key, version, dates) into the exact bytes it signs.
 */
import { toBase64Url } from '../bytes.ts';
import { keyIdOf } from '../keys.ts';
import { TRUST_POLICY_FORMAT } from './policy.ts';

/** The draft's JSON: a policy without `authority`, `version`, `issuedAt`, `expiresAt` (the authority sets them). */
export type PolicyDraft = Record<string, unknown>;

export interface DraftInput {
  ingest: { publicKey: Uint8Array; issuer: string; validFrom: string };
  anchors: { chainId: number; contract: string; startBlock: number; endpoints?: { operator: string; url: string }[]; quorum?: number }[];
}

/** A draft naming one ingest key (active from `validFrom`) and the anchor targets it anchors on. */
export function draftTrustPolicy(input: DraftInput): PolicyDraft {
  return {
    format: TRUST_POLICY_FORMAT,
    ingestKeys: [
      {
        alg: 'ES256',
        publicKey: toBase64Url(input.ingest.publicKey),
        kid: toBase64Url(keyIdOf(input.ingest.publicKey)),
        issuer: input.ingest.issuer,
        validFrom: input.ingest.validFrom,
        state: 'active',
      },
    ],
    anchors: input.anchors.map((a) => ({
      kind: 'evm',
      chainId: a.chainId,
      contract: a.contract.toLowerCase(),
      startBlock: a.startBlock,
      ...(a.endpoints !== undefined && a.endpoints.length > 0 ? { endpoints: a.endpoints, quorum: a.quorum ?? 1 } : {}),
    })),
    installerKeys: [],
    attestationRoots: [],
  };
}

export interface CompleteOptions {
  authorityName: string;
  authorityPublicKey: Uint8Array;
  version: number;
  issuedAt: string;
  expiresAt: string;
}

/**
 * The policy JSON bytes to sign: the draft with the authority's members set (replacing any the draft had), in a
 * fixed member order, two-space indented, with a trailing newline. Drafts from several ingests can be merged by
 * concatenating their lists before this step.
 */
export function completePolicyDraft(draft: PolicyDraft, o: CompleteOptions): Uint8Array {
  const { format: _f, version: _v, issuedAt: _i, expiresAt: _e, authority: _a, ...rest } = draft;
  const policy = {
    format: TRUST_POLICY_FORMAT,
    version: o.version,
    issuedAt: o.issuedAt,
    expiresAt: o.expiresAt,
    authority: { name: o.authorityName, alg: 'ES256', publicKey: toBase64Url(o.authorityPublicKey) },
    ...rest,
  };
  return new TextEncoder().encode(`${JSON.stringify(policy, null, 2)}\n`);
}
