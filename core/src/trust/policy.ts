/**
 * The verifier's trust policy (docs/FORMAT.md §14): which ingest keys, anchor targets, chain endpoints, installer
 * keys and attestation roots an authority trusts, signed by the authority's key, which the officer pins by its
 * fingerprint through another channel. Nothing a verifier trusts is taken from the bundle it checks
 * (Certificate Transparency, Sigstore's trusted_root.json); see `../shared/design/TRUST-POLICY.md`.
 *
 * Envelope: a tagged COSE_Sign1 (RFC 9052 §4.2) with an attached payload, the exact policy JSON bytes; protected
 * header exactly {1 (alg): -7, 3 (content type): TRUST_POLICY_CONTENT_TYPE, 4 (kid): authority key id}; empty
 * unprotected header; ES256 signature by the authority key over the Sig_structure of those bytes.
 *
 * Trust boundary: the file is untrusted until `loadTrustPolicy` has checked, in this order, the size, the COSE
 * shape, that the kid is the pinned fingerprint, the JSON (strict, bounded, duplicate names rejected), that the
 * authority key in it hashes to the pinned fingerprint, and the signature. Only then are the entries read.
 */
import { equalBytes, fromBase64Url, toHex } from '../bytes.ts';
import { decodeSign1 } from '../cose/sign1.ts';
import { encodeDeterministic } from '../cose/plain-bytes.ts';
import { encodeSign1, sigStructure1 } from '../cose/sign1.ts';
import { ALG_ES256, HEADER_ALG, HEADER_CONTENT_TYPE, HEADER_KID } from '../cose/labels.ts';
import { verifyEs256 } from '../ecdsa.ts';
import { SteleError } from '../errors.ts';
import { sha256 } from '../hash.ts';
import { keyIdOf } from '../keys.ts';
import type { Signer } from '../signer.ts';
import { parseStrictJson, type JsonValue } from './strict-json.ts';

/** `format` of a version 1 policy. */
export const TRUST_POLICY_FORMAT = 'stele-trust-policy/1';
/** COSE content type (label 3) of the signed policy, compared byte for byte. */
export const TRUST_POLICY_CONTENT_TYPE = 'application/vnd.stele.trust-policy+json; v=1';
/** Largest signed policy file accepted, bytes (a policy of 256 keys and 256 chains is about 100 KiB). */
export const MAX_POLICY_BYTES = 256 * 1024;
/** Most entries in any one list of the policy. */
export const MAX_POLICY_ENTRIES = 256;
/** Most endpoints of one anchor target. */
export const MAX_POLICY_ENDPOINTS = 16;
/** Longest name, issuer or operator text, characters. */
const MAX_TEXT = 256;
/** Longest URL, characters. */
const MAX_URL = 2048;
/** Largest attestation root certificate, bytes. */
const MAX_CERT_BYTES = 16 * 1024;

export type TrustPolicyErrorCode =
  /** Not a signed policy of this format: COSE shape, JSON, schema, or a limit. */
  | 'POLICY_FORMAT_ERROR'
  /** Larger than MAX_POLICY_BYTES, or a list longer than MAX_POLICY_ENTRIES. */
  | 'POLICY_LIMIT_ERROR'
  /** Signed by another key than the pinned authority (kid, or the authority key in the policy, differs). */
  | 'POLICY_AUTHORITY_ERROR'
  /** The authority's signature does not verify. */
  | 'POLICY_SIGNATURE_ERROR'
  /** The policy's version is lower than one the verifier already accepted (`minVersion`). */
  | 'POLICY_ROLLBACK_ERROR'
  /** The pinned fingerprint given by the officer is not 64 hex digits. */
  | 'POLICY_PIN_ERROR';

export class TrustPolicyError extends SteleError<TrustPolicyErrorCode> {}

export type KeyState = 'active' | 'retired' | 'compromised';

/** A key entry: the whole public key, its algorithm, its key id (recomputed), window and state. */
export interface PolicyKey {
  alg: 'ES256';
  /** SEC1 uncompressed P-256 point. */
  publicKey: Uint8Array;
  /** SHA-256(publicKey) (FORMAT.md §1), recomputed and compared with the entry's `kid`. */
  kid: Uint8Array;
  /** Start of validity, ms since the epoch, inclusive. */
  validFrom: number;
  /** End of validity, ms, exclusive; absent: open. */
  validUntil?: number;
  state: KeyState;
  /** For `compromised`: evidence anchored at or after this time (ms) is not accepted. */
  compromisedAt?: number;
  /** JSON path of the entry, for the verdict. */
  path: string;
}

export interface IngestKeyEntry extends PolicyKey {
  /** The receipts' `iss`: matched together with the kid, never alone. */
  issuer: string;
}

export interface InstallerKeyEntry extends PolicyKey {
  name: string;
}

/** A chain endpoint the authority suggests; operators are counted once each for the quorum. */
export interface PolicyEndpoint {
  operator: string;
  url: string;
}

/** An EVM anchor target: chain, SteleAnchor contract and the blocks it may anchor in. */
export interface EvmAnchorTarget {
  kind: 'evm';
  chainId: number;
  /** Lowercase 0x address. */
  contract: string;
  /** First block in which an anchor counts (inclusive). */
  startBlock: number;
  /** Last block in which an anchor counts (inclusive); absent: open. */
  endBlock?: number;
  endpoints: PolicyEndpoint[];
  /** Distinct operators that must confirm each anchor when the policy's endpoints are used. Default 1. */
  quorum: number;
  path: string;
}

export interface AttestationRoot {
  kind: 'tpm-ek-ca';
  name: string;
  /** DER certificate of the root CA. */
  certificate: Uint8Array;
  validFrom: number;
  validUntil?: number;
  state: KeyState;
  compromisedAt?: number;
  /** A test root (e.g. swtpm's local CA): never accepted unless the verifier is told it runs a test. */
  test: boolean;
  path: string;
}

/** An entry of a kind or algorithm this verifier does not know, or with members it does not know: unusable. */
export interface SkippedEntry {
  path: string;
  reason: string;
}

export interface TrustPolicy {
  version: number;
  /** ms since the epoch. */
  issuedAt: number;
  expiresAt: number;
  authority: { name: string; publicKey: Uint8Array; kid: Uint8Array };
  ingestKeys: IngestKeyEntry[];
  anchors: EvmAnchorTarget[];
  installerKeys: InstallerKeyEntry[];
  attestationRoots: AttestationRoot[];
  skipped: SkippedEntry[];
  /** SHA-256 (hex) of the signed policy file: what the verdict shows. */
  sha256: string;
  /** The pinned fingerprint (hex key id of the authority key). */
  authorityFingerprint: string;
}

function fail(code: TrustPolicyErrorCode, message: string, path?: string, cause?: unknown): never {
  throw new TrustPolicyError(code, `trust policy: ${path === undefined ? '' : `${path}: `}${message}`, {
    ...(path === undefined ? {} : { where: { path } }),
    ...(cause === undefined ? {} : { cause }),
  });
}

/**
 * Parses an authority fingerprint as an officer types it: 64 hex digits (SHA-256 of the authority's public key,
 * FORMAT.md §1), case-insensitive, optionally grouped with spaces or colons. TrustPolicyError POLICY_PIN_ERROR.
 */
export function parseFingerprint(text: string): Uint8Array {
  const hex = text.trim().replace(/^sha256:/i, '').replace(/[\s:]/g, '').toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) fail('POLICY_PIN_ERROR', 'the authority fingerprint must be 64 hex digits (SHA-256 of its public key)');
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** The fingerprint of an authority key, as printed for officers: lowercase hex in groups of 4. */
export function formatFingerprint(kid: Uint8Array): string {
  return toHex(kid).replace(/(.{4})(?=.)/g, '$1 ');
}

type Obj = { [name: string]: JsonValue };
/** Thrown inside an entry parser: the entry is skipped, the policy stands. */
class SkipEntry extends Error {}

function isObj(v: JsonValue | undefined): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function obj(v: JsonValue | undefined, path: string): Obj {
  if (!isObj(v)) fail('POLICY_FORMAT_ERROR', 'expected an object', path);
  return v;
}

function members(o: Obj, path: string, required: readonly string[], optional: readonly string[], skip: boolean): void {
  for (const k of required) if (!(k in o)) (skip ? skipEntry : formatFail)(`${path}.${k}`, 'missing');
  for (const k of Object.keys(o)) {
    if (!required.includes(k) && !optional.includes(k)) (skip ? skipEntry : formatFail)(`${path}.${k}`, 'unknown member');
  }
}

function formatFail(path: string, message: string): never {
  fail('POLICY_FORMAT_ERROR', message, path);
}

function skipEntry(path: string, message: string): never {
  throw new SkipEntry(`${path}: ${message}`);
}

function text(v: JsonValue | undefined, path: string, max = MAX_TEXT): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > max) formatFail(path, `expected a non-empty string of at most ${max} characters`);
  return v;
}

function uint(v: JsonValue | undefined, path: string, min = 0): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) formatFail(path, `expected an integer >= ${min}`);
  return v;
}

function time(v: JsonValue | undefined, path: string): number {
  const s = text(v, path, 40);
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?(Z|[+-]\d{2}:\d{2})$/.test(s) || Number.isNaN(Date.parse(s))) {
    formatFail(path, 'expected an ISO 8601 date-time with offset');
  }
  return Date.parse(s);
}

function b64(v: JsonValue | undefined, path: string, max: number): Uint8Array {
  const s = text(v, path, Math.ceil((max * 4) / 3) + 4);
  let bytes: Uint8Array;
  try {
    bytes = fromBase64Url(s);
  } catch {
    formatFail(path, 'not base64url (RFC 4648 §5, no padding)');
  }
  if (bytes.length === 0 || bytes.length > max) formatFail(path, `expected 1 to ${max} bytes`);
  return bytes;
}

function list(v: JsonValue | undefined, path: string, max = MAX_POLICY_ENTRIES): JsonValue[] {
  if (!Array.isArray(v)) formatFail(path, 'expected an array');
  if (v.length > max) fail('POLICY_LIMIT_ERROR', `more than ${max} entries`, path);
  return v;
}

const KEY_STATES: readonly KeyState[] = ['active', 'retired', 'compromised'];

/** Window and state members shared by keys and roots. */
function windowAndState(o: Obj, path: string): Pick<PolicyKey, 'validFrom' | 'validUntil' | 'state' | 'compromisedAt'> {
  const validFrom = time(o.validFrom, `${path}.validFrom`);
  const out: Pick<PolicyKey, 'validFrom' | 'validUntil' | 'state' | 'compromisedAt'> = { validFrom, state: 'active' };
  if (o.validUntil !== undefined) {
    out.validUntil = time(o.validUntil, `${path}.validUntil`);
    if (out.validUntil <= validFrom) formatFail(`${path}.validUntil`, 'not after validFrom');
  }
  const state = text(o.state, `${path}.state`, 20);
  if (!(KEY_STATES as readonly string[]).includes(state)) skipEntry(`${path}.state`, `unknown state "${state}"`);
  out.state = state as KeyState;
  if (state === 'retired' && out.validUntil === undefined) formatFail(`${path}.validUntil`, 'a retired entry needs validUntil');
  if (state === 'compromised') {
    if (o.compromisedAt === undefined) formatFail(`${path}.compromisedAt`, 'a compromised entry needs compromisedAt');
    out.compromisedAt = time(o.compromisedAt, `${path}.compromisedAt`);
  } else if (o.compromisedAt !== undefined) formatFail(`${path}.compromisedAt`, `only a compromised entry has compromisedAt`);
  return out;
}

const KEY_MEMBERS = ['alg', 'publicKey', 'kid', 'validFrom', 'state'] as const;
const KEY_OPTIONAL = ['validUntil', 'compromisedAt'] as const;

function policyKey(o: Obj, path: string): PolicyKey {
  const alg = text(o.alg, `${path}.alg`, 40);
  if (alg !== 'ES256') skipEntry(`${path}.alg`, `unknown algorithm "${alg}"`);
  const publicKey = b64(o.publicKey, `${path}.publicKey`, 65);
  const kid = b64(o.kid, `${path}.kid`, 32);
  let computed: Uint8Array;
  try {
    computed = keyIdOf(publicKey);
  } catch {
    formatFail(`${path}.publicKey`, 'not a P-256 public key (65-byte SEC1 uncompressed point)');
  }
  if (!equalBytes(computed, kid)) formatFail(`${path}.kid`, 'not SHA-256 of publicKey (FORMAT.md §1)');
  return { alg: 'ES256', publicKey, kid, ...windowAndState(o, path), path };
}

function ingestKey(v: JsonValue, path: string): IngestKeyEntry {
  const o = obj(v, path);
  members(o, path, [...KEY_MEMBERS, 'issuer'], KEY_OPTIONAL, true);
  return { ...policyKey(o, path), issuer: text(o.issuer, `${path}.issuer`) };
}

function installerKey(v: JsonValue, path: string): InstallerKeyEntry {
  const o = obj(v, path);
  members(o, path, [...KEY_MEMBERS, 'name'], KEY_OPTIONAL, true);
  return { ...policyKey(o, path), name: text(o.name, `${path}.name`) };
}

function anchorTarget(v: JsonValue, path: string): EvmAnchorTarget {
  const o = obj(v, path);
  const kind = text(o.kind, `${path}.kind`, 40);
  if (kind !== 'evm') skipEntry(`${path}.kind`, `unknown anchor kind "${kind}"`);
  members(o, path, ['kind', 'chainId', 'contract', 'startBlock'], ['endBlock', 'endpoints', 'quorum'], true);
  const contract = text(o.contract, `${path}.contract`, 42);
  if (!/^0x[0-9a-fA-F]{40}$/.test(contract)) formatFail(`${path}.contract`, 'expected 0x + 40 hex digits');
  const target: EvmAnchorTarget = {
    kind: 'evm',
    chainId: uint(o.chainId, `${path}.chainId`, 1),
    contract: contract.toLowerCase(),
    startBlock: uint(o.startBlock, `${path}.startBlock`),
    endpoints: [],
    quorum: o.quorum === undefined ? 1 : uint(o.quorum, `${path}.quorum`, 1),
    path,
  };
  if (o.endBlock !== undefined) {
    target.endBlock = uint(o.endBlock, `${path}.endBlock`);
    if (target.endBlock < target.startBlock) formatFail(`${path}.endBlock`, 'below startBlock');
  }
  if (o.endpoints !== undefined) {
    list(o.endpoints, `${path}.endpoints`, MAX_POLICY_ENDPOINTS).forEach((e, i) => {
      const p = `${path}.endpoints[${i}]`;
      const eo = obj(e, p);
      members(eo, p, ['operator', 'url'], [], false);
      const url = text(eo.url, `${p}.url`, MAX_URL);
      if (!/^https?:\/\/\S+$/.test(url)) formatFail(`${p}.url`, 'expected an http(s) URL');
      target.endpoints.push({ operator: text(eo.operator, `${p}.operator`), url });
    });
  }
  const operators = new Set(target.endpoints.map((e) => e.operator));
  if (target.endpoints.length > 0 && target.quorum > operators.size) formatFail(`${path}.quorum`, 'more than the number of operators listed');
  return target;
}

function attestationRoot(v: JsonValue, path: string): AttestationRoot {
  const o = obj(v, path);
  const kind = text(o.kind, `${path}.kind`, 40);
  if (kind !== 'tpm-ek-ca') skipEntry(`${path}.kind`, `unknown attestation root kind "${kind}"`);
  members(o, path, ['kind', 'name', 'certificate', 'validFrom', 'state', 'test'], KEY_OPTIONAL, true);
  if (typeof o.test !== 'boolean') formatFail(`${path}.test`, 'expected true or false');
  return {
    kind: 'tpm-ek-ca',
    name: text(o.name, `${path}.name`),
    certificate: b64(o.certificate, `${path}.certificate`, MAX_CERT_BYTES),
    ...windowAndState(o, path),
    test: o.test,
    path,
  };
}

/** Parses each entry of a list; entries of unknown kinds, algorithms, states or members are skipped with a reason. */
function entries<T>(v: JsonValue | undefined, path: string, parse: (e: JsonValue, p: string) => T, skipped: SkippedEntry[]): T[] {
  if (v === undefined) return [];
  const out: T[] = [];
  list(v, path).forEach((e, i) => {
    const p = `${path}[${i}]`;
    try {
      out.push(parse(e, p));
    } catch (err) {
      if (!(err instanceof SkipEntry)) throw err;
      skipped.push({ path: p, reason: err.message });
    }
  });
  return out;
}

/**
 * Parses and checks the policy JSON (the COSE payload) without its signature: strict JSON, the schema of
 * FORMAT.md §14.2, limits, one role per key. Exported for `stele trust sign` (checks a draft before signing) and
 * tests; verifiers call {@link loadTrustPolicy}.
 */
export function parsePolicyPayload(bytes: Uint8Array): Omit<TrustPolicy, 'sha256' | 'authorityFingerprint'> {
  if (bytes.length > MAX_POLICY_BYTES) fail('POLICY_LIMIT_ERROR', `larger than ${MAX_POLICY_BYTES} bytes`);
  let textValue: string;
  try {
    textValue = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (cause) {
    fail('POLICY_FORMAT_ERROR', 'not UTF-8', '$', cause);
  }
  let json: JsonValue;
  try {
    json = parseStrictJson(textValue, { maxDepth: 6, maxValues: 20_000 });
  } catch (cause) {
    fail('POLICY_FORMAT_ERROR', (cause as Error).message, '$', cause);
  }
  const o = obj(json, '$');
  members(o, '$', ['format', 'version', 'issuedAt', 'expiresAt', 'authority', 'ingestKeys', 'anchors'], ['installerKeys', 'attestationRoots'], false);
  if (o.format !== TRUST_POLICY_FORMAT) formatFail('$.format', `expected "${TRUST_POLICY_FORMAT}"`);
  const issuedAt = time(o.issuedAt, '$.issuedAt');
  const expiresAt = time(o.expiresAt, '$.expiresAt');
  if (expiresAt <= issuedAt) formatFail('$.expiresAt', 'not after issuedAt');
  const a = obj(o.authority, '$.authority');
  members(a, '$.authority', ['name', 'alg', 'publicKey'], [], false);
  if (a.alg !== 'ES256') formatFail('$.authority.alg', 'the authority key must be ES256');
  const authorityKey = b64(a.publicKey, '$.authority.publicKey', 65);
  let authorityKid: Uint8Array;
  try {
    authorityKid = keyIdOf(authorityKey);
  } catch {
    formatFail('$.authority.publicKey', 'not a P-256 public key');
  }
  const skipped: SkippedEntry[] = [];
  const policy = {
    version: uint(o.version, '$.version', 1),
    issuedAt,
    expiresAt,
    authority: { name: text(a.name, '$.authority.name'), publicKey: authorityKey, kid: authorityKid },
    ingestKeys: entries(o.ingestKeys, '$.ingestKeys', ingestKey, skipped),
    anchors: entries(o.anchors, '$.anchors', anchorTarget, skipped),
    installerKeys: entries(o.installerKeys, '$.installerKeys', installerKey, skipped),
    attestationRoots: entries(o.attestationRoots, '$.attestationRoots', attestationRoot, skipped),
    skipped,
  };
  if (o.ingestKeys === undefined || o.anchors === undefined) formatFail('$', 'ingestKeys and anchors are required');
  // One key, one role: a key listed as ingest key and installer key (or the authority's) is a policy error.
  const roles = new Map<string, string>([[toHex(authorityKid), '$.authority']]);
  for (const k of [...policy.ingestKeys, ...policy.installerKeys]) {
    const other = roles.get(toHex(k.kid));
    if (other !== undefined && !(other.startsWith('$.ingestKeys') && k.path.startsWith('$.ingestKeys'))) {
      formatFail(k.path, `the same key as ${other}: one key, one role`);
    }
    roles.set(toHex(k.kid), k.path);
  }
  return policy;
}

const PROTECTED_LABELS = new Set([HEADER_ALG, HEADER_CONTENT_TYPE, HEADER_KID]);

function protectedHeaderOf(kid: Uint8Array): Uint8Array {
  return encodeDeterministic(
    new Map<number, unknown>([
      [HEADER_ALG, ALG_ES256],
      [HEADER_CONTENT_TYPE, TRUST_POLICY_CONTENT_TYPE],
      [HEADER_KID, kid],
    ]),
  );
}

export interface LoadTrustPolicyOptions {
  /** Refuse a policy whose version is lower (POLICY_ROLLBACK_ERROR): the highest version the verifier accepted. */
  minVersion?: number;
}

/**
 * Checks a signed policy file against the pinned authority fingerprint and returns the policy (FORMAT.md §14.3).
 * Throws TrustPolicyError with the code of the first rule broken. Expiry is not judged here: the verdict is
 * lowered for an expired policy (`verifyBundle`), so that the officer can still read the evidence.
 */
export async function loadTrustPolicy(fileBytes: Uint8Array, pinnedFingerprint: Uint8Array | string, options: LoadTrustPolicyOptions = {}): Promise<TrustPolicy> {
  if (!(fileBytes instanceof Uint8Array)) throw new TypeError('fileBytes must be a Uint8Array');
  const pin = typeof pinnedFingerprint === 'string' ? parseFingerprint(pinnedFingerprint) : pinnedFingerprint;
  if (!(pin instanceof Uint8Array) || pin.length !== 32) throw new TypeError('pinnedFingerprint must be 32 bytes or 64 hex digits');
  if (fileBytes.length > MAX_POLICY_BYTES + 512) fail('POLICY_LIMIT_ERROR', `file larger than ${MAX_POLICY_BYTES + 512} bytes`);
  let cose;
  try {
    cose = decodeSign1(fileBytes);
  } catch (cause) {
    fail('POLICY_FORMAT_ERROR', 'not a tagged COSE_Sign1', '$', cause);
  }
  const h = cose.protectedHeader;
  for (const label of h.keys()) if (!PROTECTED_LABELS.has(label)) fail('POLICY_FORMAT_ERROR', `unexpected protected header label ${label}`);
  if (h.get(HEADER_ALG) !== ALG_ES256) fail('POLICY_FORMAT_ERROR', 'alg is not ES256 (-7)');
  if (h.get(HEADER_CONTENT_TYPE) !== TRUST_POLICY_CONTENT_TYPE) fail('POLICY_FORMAT_ERROR', 'content type is not the trust policy type');
  const kid = h.get(HEADER_KID);
  if (!(kid instanceof Uint8Array) || kid.length !== 32) fail('POLICY_FORMAT_ERROR', 'kid is not 32 bytes');
  if (cose.unprotectedHeader.size !== 0) fail('POLICY_FORMAT_ERROR', 'unprotected header is not empty');
  if (cose.payload === null) fail('POLICY_FORMAT_ERROR', 'payload is detached');
  if (cose.signature.length !== 64) fail('POLICY_FORMAT_ERROR', 'signature is not 64 bytes');
  if (!equalBytes(protectedHeaderOf(kid), cose.protectedBytes)) fail('POLICY_FORMAT_ERROR', 'protected header is not in deterministic encoding');
  if (!equalBytes(encodeSign1({ ...cose, payload: cose.payload }), fileBytes)) fail('POLICY_FORMAT_ERROR', 'COSE_Sign1 is not in deterministic encoding');
  // The pin first: a policy from another authority is refused before its JSON is read.
  if (!equalBytes(kid, pin)) fail('POLICY_AUTHORITY_ERROR', `signed by key ${toHex(kid)}, not the pinned authority ${toHex(pin)}`);
  const payload = parsePolicyPayload(cose.payload);
  if (!equalBytes(payload.authority.kid, pin)) fail('POLICY_AUTHORITY_ERROR', 'the authority key in the policy is not the pinned one', '$.authority.publicKey');
  let ok = false;
  try {
    ok = await verifyEs256(payload.authority.publicKey, sigStructure1(cose.protectedBytes, cose.payload), cose.signature);
  } catch {
    ok = false;
  }
  if (!ok) fail('POLICY_SIGNATURE_ERROR', 'the authority signature does not verify');
  if (options.minVersion !== undefined && payload.version < options.minVersion) {
    fail('POLICY_ROLLBACK_ERROR', `version ${payload.version} is lower than version ${options.minVersion} already accepted`, '$.version');
  }
  return { ...payload, sha256: toHex(sha256(fileBytes)), authorityFingerprint: toHex(pin) };
}

/**
 * Signs policy JSON bytes with the authority key (FORMAT.md §14.3). The bytes must parse as a policy whose
 * `authority.publicKey` is the signer's key (TrustPolicyError otherwise): the exact bytes given are signed.
 */
export async function signTrustPolicy(policyJson: Uint8Array, signer: Signer): Promise<Uint8Array> {
  if (signer.algorithm !== 'ES256') throw new TypeError('signer must be ES256');
  const payload = parsePolicyPayload(policyJson);
  if (!equalBytes(payload.authority.kid, signer.keyId)) {
    fail('POLICY_AUTHORITY_ERROR', 'authority.publicKey is not the signing key', '$.authority.publicKey');
  }
  const protectedBytes = protectedHeaderOf(signer.keyId);
  const signature = await signer.sign(sigStructure1(protectedBytes, policyJson));
  return encodeSign1({ protectedBytes, unprotectedHeader: new Map(), payload: Uint8Array.from(policyJson), signature });
}

/** The payload JSON of a signed policy file, without checking anything (for display before loading). */
export function policyPayloadOf(fileBytes: Uint8Array): Uint8Array | undefined {
  try {
    return decodeSign1(fileBytes).payload ?? undefined;
  } catch {
    return undefined;
  }
}

/** Where a key stands at `timeMs`: inside its window and not compromised by then. */
export function keyValidAt(key: Pick<PolicyKey, 'validFrom' | 'validUntil' | 'state' | 'compromisedAt'>, timeMs: number): 'valid' | 'before' | 'after' | 'compromised' {
  if (key.state === 'compromised' && key.compromisedAt !== undefined && timeMs >= key.compromisedAt) return 'compromised';
  if (timeMs < key.validFrom) return 'before';
  if (key.validUntil !== undefined && timeMs >= key.validUntil) return 'after';
  return 'valid';
}
