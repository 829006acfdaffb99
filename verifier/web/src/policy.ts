/**
 * The trust policy on the page side: the ONE adapter between the page and core's policy support
 * (TRUST-POLICY.md). The page loads the authority's policy file once, keeps it in localStorage, shows its
 * fingerprint (SHA-256 of the exact file bytes), version and dates, and compares the bundle's ingest key and
 * anchors with it for display.
 *
 * - `readPolicy` reads the policy for display before any bundle (its signed payload, not yet checked against the
 *   authority): it grants no trust;
 * - `policyVerifyOptions` checks the file against the pinned authority fingerprint with core's `loadTrustPolicy`
 *   and returns `{ trust }` for `verifyBundle`: the verdict then carries the policy checks and their codes.
 * Nothing else in the page knows the policy's shape.
 */
import { toHex, sha256 } from '@stele/core';
import { decodeSign1 } from '@stele/core/cose';
import { loadTrustPolicy, parsePolicyPayload } from '@stele/core/trust';
import type { VerifyOptions } from '@stele/core/verify';

/** localStorage key of the remembered policy (base64 of the file bytes). */
export const POLICY_STORAGE_KEY = 'stele.trust-policy.v1';
/** localStorage key of the pinned authority fingerprint (hex). */
export const AUTHORITY_STORAGE_KEY = 'stele.trust-authority.v1';
/** A policy is a small JSON document; refuse anything larger before parsing. */
export const MAX_POLICY_BYTES = 256 * 1024;

export interface LoadedPolicy {
  /** SHA-256 (hex) of the exact file bytes: the policy's fingerprint, printed on every report. */
  sha256: string;
  sizeBytes: number;
  version?: string;
  issuedAt?: string;
  expiresAt?: string;
  issuer?: string;
  /** Ingest key ids (hex) the policy lists. */
  ingestKeyIds: string[];
  /** Anchor targets the policy lists. */
  anchors: { chainId: number; contract: string }[];
  /** RPC endpoints the authority suggests. */
  rpcUrls: string[];
  /** Why the file could not be read as a policy (then only the fingerprint is shown). */
  problem?: string;
}

export type Match = 'match' | 'mismatch' | 'not-listed';

export interface PolicyComparison {
  ingestKey: Match;
  anchors: Match;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined);

function b64urlToHex(s: string): string | undefined {
  try {
    const b = atob(s.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(s.length / 4) * 4, '='));
    return [...b].map((c) => c.charCodeAt(0).toString(16).padStart(2, '0')).join('');
  } catch {
    return undefined;
  }
}

/** A key id as lower-case hex, from hex (with or without 0x) or base64url. */
function kidHex(v: unknown): string | undefined {
  const s = str(v);
  if (s === undefined) return undefined;
  const h = s.startsWith('0x') ? s.slice(2) : s;
  if (/^[0-9a-fA-F]{64}$/.test(h)) return h.toLowerCase();
  if (/^[A-Za-z0-9_-]{43}$/.test(s)) return b64urlToHex(s);
  return undefined;
}

/** Reads a policy file for display. Never throws on bad input: a problem is reported in `problem`. */
export function readPolicy(bytes: Uint8Array): LoadedPolicy {
  const out: LoadedPolicy = { sha256: toHex(sha256(bytes)), sizeBytes: bytes.length, ingestKeyIds: [], anchors: [], rpcUrls: [] };
  if (bytes.length > MAX_POLICY_BYTES) return { ...out, problem: `larger than ${MAX_POLICY_BYTES} bytes` };
  // A signed policy (FORMAT.md §14): COSE_Sign1 over the policy JSON. Read its payload for display.
  try {
    const p = parsePolicyPayload(decodeSign1(bytes).payload ?? new Uint8Array());
    return {
      ...out,
      version: String(p.version),
      issuedAt: new Date(p.issuedAt).toISOString(),
      expiresAt: new Date(p.expiresAt).toISOString(),
      issuer: p.authority.name,
      ingestKeyIds: p.ingestKeys.map((k) => toHex(k.kid)),
      anchors: p.anchors.map((a) => ({ chainId: a.chainId, contract: a.contract.toLowerCase() })),
      rpcUrls: p.anchors.flatMap((a) => (a.endpoints ?? []).map((e) => e.url)),
    };
  } catch {
    // not a signed policy: try the bare JSON below (drafts), for display only
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    return { ...out, problem: `not a signed policy nor UTF-8 JSON: ${(err as Error).message}` };
  }
  // A signed envelope ({policy|payload: {...}, signature}) or the bare policy object.
  const root = isObj(json) ? (isObj(json.policy) ? json.policy : isObj(json.payload) ? json.payload : json) : undefined;
  if (root === undefined) return { ...out, problem: 'not a JSON object' };
  const version = str(root.version);
  const issuedAt = str(root.issuedAt ?? root.issued);
  const expiresAt = str(root.expiresAt ?? root.expires);
  const issuer = str(root.issuer ?? root.authority);
  if (version !== undefined) out.version = version;
  if (issuedAt !== undefined) out.issuedAt = issuedAt;
  if (expiresAt !== undefined) out.expiresAt = expiresAt;
  if (issuer !== undefined) out.issuer = issuer;
  const keys = root.ingestKeys ?? root.ingest;
  for (const k of Array.isArray(keys) ? keys : []) {
    if (!isObj(k)) continue;
    const kid = kidHex(k.kid ?? k.keyId);
    if (kid !== undefined) out.ingestKeyIds.push(kid);
    else if (typeof k.publicKey === 'string') {
      const pk = k.publicKey.startsWith('0x') ? k.publicKey.slice(2) : k.publicKey;
      const hex = /^[0-9a-fA-F]+$/.test(pk) ? pk : b64urlToHex(k.publicKey);
      if (hex !== undefined && hex.length % 2 === 0) {
        const raw = new Uint8Array(hex.length / 2).map((_, i) => Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16));
        out.ingestKeyIds.push(toHex(sha256(raw)));
      }
    }
  }
  for (const a of Array.isArray(root.anchors) ? root.anchors : []) {
    if (!isObj(a)) continue;
    const chainId = Number(a.chainId);
    const contract = str(a.contract);
    if (Number.isSafeInteger(chainId) && contract !== undefined) out.anchors.push({ chainId, contract: contract.toLowerCase() });
  }
  const rpcs = root.rpcUrls ?? root.rpc;
  for (const u of Array.isArray(rpcs) ? rpcs : []) {
    const url = str(isObj(u) ? u.url : u);
    if (url !== undefined && /^https?:\/\/\S+$/.test(url)) out.rpcUrls.push(url);
  }
  return out;
}

/** Whether the bundle's ingest key and anchors are the ones the policy lists (display only; see the file comment). */
export function comparePolicy(
  policy: LoadedPolicy,
  bundle: { ingestKidHex: string; anchors: { chainId?: number; contract?: string }[] },
): PolicyComparison {
  const ingestKey: Match =
    policy.ingestKeyIds.length === 0 ? 'not-listed' : policy.ingestKeyIds.includes(bundle.ingestKidHex.toLowerCase()) ? 'match' : 'mismatch';
  const used = bundle.anchors.filter((a) => a.chainId !== undefined && a.contract !== undefined);
  const anchors: Match =
    policy.anchors.length === 0 || used.length === 0
      ? 'not-listed'
      : used.every((a) => policy.anchors.some((p) => p.chainId === a.chainId && p.contract === a.contract!.toLowerCase()))
        ? 'match'
        : 'mismatch';
  return { ingestKey, anchors };
}

/**
 * The options core's verifier takes from the policy: `{ trust }` once the file is checked against the pinned
 * authority fingerprint (rejects with core's TrustPolicyError, e.g. POLICY_PIN_ERROR, POLICY_SIGNATURE_ERROR).
 * No policy or no fingerprint: no option (the verdict is then at best "not fully checked").
 */
export async function policyVerifyOptions(policyBytes: Uint8Array | undefined, authority: string | undefined): Promise<Partial<VerifyOptions>> {
  if (policyBytes === undefined || authority === undefined || authority.trim() === '') return {};
  return { trust: await loadTrustPolicy(policyBytes, authority) };
}

/** The policy remembered in this browser, if any (bytes). */
export function loadStoredPolicy(storage: Pick<Storage, 'getItem'> | undefined): Uint8Array | undefined {
  try {
    const b64 = storage?.getItem(POLICY_STORAGE_KEY);
    if (b64 === null || b64 === undefined) return undefined;
    const bin = atob(b64);
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
}

export function storePolicy(storage: Pick<Storage, 'setItem' | 'removeItem'> | undefined, bytes: Uint8Array | undefined): void {
  try {
    if (bytes === undefined) storage?.removeItem(POLICY_STORAGE_KEY);
    else {
      let bin = '';
      for (const b of bytes) bin += String.fromCharCode(b);
      storage?.setItem(POLICY_STORAGE_KEY, btoa(bin));
    }
  } catch {
    // Storage may be disabled (private window, file:// policy): the policy then lasts for this visit only.
  }
}
