/**
 * The evidence bundle (docs/FORMAT.md §7): the JSON file an officer receives. `parseBundle` checks its shape and
 * decodes every base64url/hex field; it does not decode the CBOR inside (statements, receipts, readings) and
 * does not judge consistency: that is `verifyBundle`'s job, which reports each problem as a check failure.
 *
 * Trust boundary: everything here is untrusted input. A shape problem raises `FormatError('BUNDLE_FORMAT_ERROR')`
 * whose `where.path` is the JSONPath of the first problem (e.g. `$.entries[3].statement`).
 */
import type { AnchorRef } from './anchor/evm-reader.ts';
import { fromBase64Url, fromHex, toBase64Url, toHex } from './bytes.ts';
import { checkEnrolmentRecord, type CheckedRecord } from './enrolment/record.ts';
import { FormatError, SteleError } from './errors.ts';
import { sha256 } from './hash.ts';
import type { KeyBackend } from './signer.ts';

/** `format` value of version 1 bundles. */
export const BUNDLE_FORMAT = 'stele-evidence/1';

/** The device's enrolment record as carried in a bundle (keys decoded). */
export interface BundleDevice {
  deviceId: string;
  /** SEC1 uncompressed P-256 point, 65 bytes (FORMAT.md §1). */
  publicKey: Uint8Array;
  /** Key id claimed by the record: must equal SHA-256(publicKey); `verifyBundle` checks it. */
  kid: Uint8Array;
  keyBackend: KeyBackend;
  /** ISO 8601 time of enrolment, as recorded by ingest. */
  enrolledAt: string;
  site?: string;
}

/** The ingest service whose key signs receipts. */
export interface BundleIngest {
  issuer: string;
  publicKey: Uint8Array;
  kid: Uint8Array;
}

/** One reading's evidence. `reading` is absent in hash-only evidence (FORMAT.md §7). */
export interface BundleEntry {
  seq: number;
  batchId: number;
  /** Reading CBOR (FORMAT.md §2); absent when the gateway kept the body (hash-only mode). */
  reading?: Uint8Array;
  /** Tagged COSE_Sign1 statement bytes exactly as signed (FORMAT.md §3). */
  statement: Uint8Array;
  /** Tagged COSE receipt bytes (FORMAT.md §5). */
  receipt: Uint8Array;
}

/**
 * One device lifecycle statement (FORMAT.md §13: enrolment, rotation, revocation, reinstall) with its receipt.
 * Its seq, when it has one (rotation, reinstall), is in its protected header.
 */
export interface BundleLifecycleEntry {
  batchId: number;
  /** Tagged COSE_Sign1 lifecycle statement bytes exactly as signed (FORMAT.md §13.1). */
  statement: Uint8Array;
  /** Tagged COSE receipt bytes (FORMAT.md §5). */
  receipt: Uint8Array;
  /**
   * Enrolment statements only, optional (FORMAT.md §13.6): the enrolment request file (`ID.enrol.cose`) whose
   * SHA-256 is the statement's `request`, so that a verifier can check its attestation (§14.5).
   */
  request?: Uint8Array;
}

/** One batch: the root ingest recorded as anchored, and where. */
export interface BundleBatch {
  batchId: number;
  size: number;
  /** 32-byte Merkle root (JSON: `0x` + 64 lowercase hex). */
  root: Uint8Array;
  /** Absent while the batch is not anchored yet; the on-chain check then stays unchecked. */
  anchor?: AnchorRef;
}

export interface EvidenceBundle {
  format: typeof BUNDLE_FORMAT;
  createdAt: string;
  device: BundleDevice;
  ingest: BundleIngest;
  /** The contiguous seq range the bundle claims to be complete. */
  window: { firstSeq: number; lastSeq: number };
  /** One per reading; sorting by seq is not required of the input (the verifier sorts). */
  entries: BundleEntry[];
  /**
   * The device's lifecycle statements up to export (FORMAT.md §13.6), in log order. Absent in bundles made
   * before lifecycle data existed: the verifier then judges keys by `device` alone and notes it.
   */
  lifecycle?: BundleLifecycleEntry[];
  batches: BundleBatch[];
  /**
   * The alert this bundle is evidence of (FORMAT.md §15.7), kept as parsed JSON: check 9 recomputes an alert of
   * the §15.7 shape from the verified readings (§15.8: the seq window covers its time window); any other value is
   * reported as not checked.
   */
  alert?: unknown;
}

/**
 * Limits of a bundle a verifier reads (FORMAT.md §7 "Limits"): beyond them, `BUNDLE_LIMIT_ERROR` before any work.
 * 128 MiB holds about 120,000 readings with bodies (a day at one reading a second is about 90 MiB).
 */
export const MAX_BUNDLE_BYTES = 128 * 1024 * 1024;
export const MAX_BUNDLE_ENTRIES = 500_000;
export const MAX_BUNDLE_LIFECYCLE = 10_000;
export const MAX_BUNDLE_BATCHES = 100_000;

const MAX_U64_SAFE = Number.MAX_SAFE_INTEGER;

function fail(path: string, message: string, cause?: unknown): never {
  throw new FormatError('BUNDLE_FORMAT_ERROR', `evidence bundle: ${path}: ${message}`, {
    where: { path },
    ...(cause === undefined ? {} : { cause }),
  });
}

type Obj = Record<string, unknown>;

function asObject(v: unknown, path: string, required: readonly string[], optional: readonly string[] = []): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path, 'expected an object');
  const o = v as Obj;
  for (const k of required) if (!(k in o)) fail(`${path}.${k}`, 'missing');
  for (const k of Object.keys(o)) {
    if (!required.includes(k) && !optional.includes(k)) fail(`${path}.${k}`, 'unknown key (format v1)');
  }
  return o;
}

function asString(v: unknown, path: string): string {
  if (typeof v !== 'string') fail(path, 'expected a string');
  return v;
}

function asNonEmptyString(v: unknown, path: string): string {
  const s = asString(v, path);
  if (s.length === 0) fail(path, 'must not be empty');
  return s;
}

function asUint(v: unknown, path: string, min = 0): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > MAX_U64_SAFE) {
    fail(path, `expected an integer >= ${min}`);
  }
  return v;
}

function asB64(v: unknown, path: string, length?: number): Uint8Array {
  const s = asString(v, path);
  let bytes: Uint8Array;
  try {
    bytes = fromBase64Url(s);
  } catch (cause) {
    fail(path, 'not base64url (RFC 4648 §5, no padding)', cause);
  }
  if (length !== undefined && bytes.length !== length) fail(path, `expected ${length} bytes, got ${bytes.length}`);
  if (bytes.length === 0) fail(path, 'must not be empty');
  return bytes;
}

function asIsoTime(v: unknown, path: string): string {
  const s = asString(v, path);
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(s) || Number.isNaN(Date.parse(s))) {
    fail(path, 'expected an ISO 8601 date-time with offset');
  }
  return s;
}

/** `0x` + lowercase hex of exactly `bytes` bytes (FORMAT.md conventions). */
function asHex0x(v: unknown, path: string, bytes: number): string {
  const s = asString(v, path);
  if (!new RegExp(`^0x[0-9a-f]{${bytes * 2}}$`).test(s)) fail(path, `expected 0x + ${bytes * 2} lowercase hex digits`);
  return s;
}

function asAddress(v: unknown, path: string): string {
  const s = asString(v, path);
  if (!/^0x[0-9a-fA-F]{40}$/.test(s)) fail(path, 'expected 0x + 40 hex digits');
  return s.toLowerCase();
}

function asPublicKey(v: unknown, path: string): Uint8Array {
  const key = asB64(v, path, 65);
  if (key[0] !== 0x04) fail(path, 'expected an uncompressed SEC1 point (0x04 || X || Y)');
  return key;
}

function parseDevice(v: unknown, path: string): BundleDevice {
  const o = asObject(v, path, ['deviceId', 'publicKey', 'kid', 'keyBackend', 'enrolledAt'], ['site']);
  // The one enrolment-record check (core/src/enrolment), the same ingest applies when it enrols.
  let checked: CheckedRecord;
  try {
    checked = checkEnrolmentRecord(o);
  } catch (cause) {
    const field = cause instanceof SteleError ? String(cause.where?.['field'] ?? '') : '';
    fail(field === '' ? path : `${path}.${field}`, cause instanceof Error ? cause.message : 'not an enrolment record', cause);
  }
  const device: BundleDevice = {
    deviceId: checked.record.deviceId,
    publicKey: checked.publicKey,
    kid: checked.kid,
    keyBackend: checked.record.keyBackend,
    enrolledAt: checked.record.enrolledAt,
  };
  if (checked.record.site !== undefined) device.site = checked.record.site;
  return device;
}

function parseIngest(v: unknown, path: string): BundleIngest {
  const o = asObject(v, path, ['issuer', 'publicKey', 'kid']);
  return {
    issuer: asNonEmptyString(o.issuer, `${path}.issuer`),
    publicKey: asPublicKey(o.publicKey, `${path}.publicKey`),
    kid: asB64(o.kid, `${path}.kid`, 32),
  };
}

function parseEntry(v: unknown, path: string): BundleEntry {
  const o = asObject(v, path, ['seq', 'batchId', 'statement', 'receipt'], ['reading']);
  const entry: BundleEntry = {
    seq: asUint(o.seq, `${path}.seq`, 1),
    batchId: asUint(o.batchId, `${path}.batchId`, 1),
    statement: asB64(o.statement, `${path}.statement`),
    receipt: asB64(o.receipt, `${path}.receipt`),
  };
  if (o.reading !== undefined) entry.reading = asB64(o.reading, `${path}.reading`);
  return entry;
}

function parseLifecycleEntry(v: unknown, path: string): BundleLifecycleEntry {
  const o = asObject(v, path, ['batchId', 'statement', 'receipt'], ['request']);
  const entry: BundleLifecycleEntry = {
    batchId: asUint(o.batchId, `${path}.batchId`, 1),
    statement: asB64(o.statement, `${path}.statement`),
    receipt: asB64(o.receipt, `${path}.receipt`),
  };
  if (o.request !== undefined) {
    // The request file is at most 64 KiB (FORMAT.md §13.2): 87,382 base64url characters.
    if (typeof o.request === 'string' && o.request.length > 87_382) fail(`${path}.request`, 'longer than an enrolment request file (64 KiB)');
    entry.request = asB64(o.request, `${path}.request`);
  }
  return entry;
}

function parseAnchor(v: unknown, path: string): AnchorRef {
  const o = asObject(v, path, ['chainId', 'contract', 'txHash', 'blockNumber', 'blockTime'], ['rpc']);
  const ref: AnchorRef = {
    chainId: asUint(o.chainId, `${path}.chainId`, 1),
    // EVM tools often print EIP-55 mixed-case addresses; case carries no meaning here, so normalise.
    contract: asAddress(o.contract, `${path}.contract`),
    txHash: asHex0x(o.txHash, `${path}.txHash`, 32),
    blockNumber: asUint(o.blockNumber, `${path}.blockNumber`),
    blockTime: asUint(o.blockTime, `${path}.blockTime`),
  };
  if (o.rpc !== undefined) {
    const rpc = asString(o.rpc, `${path}.rpc`);
    if (!/^https?:\/\/\S+$/.test(rpc)) fail(`${path}.rpc`, 'expected an http(s) URL');
    ref.rpc = rpc;
  }
  return ref;
}

function parseBatch(v: unknown, path: string): BundleBatch {
  const o = asObject(v, path, ['batchId', 'size', 'root'], ['anchor']);
  const batch: BundleBatch = {
    batchId: asUint(o.batchId, `${path}.batchId`, 1),
    size: asUint(o.size, `${path}.size`, 1),
    root: fromHex(asHex0x(o.root, `${path}.root`, 32)),
  };
  if (o.anchor !== undefined) batch.anchor = parseAnchor(o.anchor, `${path}.anchor`);
  return batch;
}

function asArray(v: unknown, path: string, max: number): unknown[] {
  if (!Array.isArray(v)) fail(path, 'expected an array');
  if (v.length > max) {
    throw new FormatError('BUNDLE_LIMIT_ERROR', `evidence bundle: ${path}: ${v.length} items, more than the ${max} a verifier reads`, { where: { path } });
  }
  return v;
}

/**
 * Checks the shape of a parsed JSON evidence bundle (FORMAT.md §7) and decodes its binary fields.
 * Strict: unknown keys, wrong types, bad base64url/hex, wrong key or root lengths, a window with
 * firstSeq > lastSeq, duplicate batch ids and entries or lifecycle items naming a batch that is not listed are all
 * `FormatError('BUNDLE_FORMAT_ERROR')` with `where.path` naming the first problem.
 * Not checked here (the verifier reports them as check failures): entry order, gaps, forks, anything inside the CBOR.
 */
export function parseBundle(json: unknown): EvidenceBundle {
  const o = asObject(
    json,
    '$',
    ['format', 'createdAt', 'device', 'ingest', 'window', 'entries', 'batches'],
    ['lifecycle', 'alert'],
  );
  if (o.format !== BUNDLE_FORMAT) fail('$.format', `expected "${BUNDLE_FORMAT}"`);
  const createdAt = asIsoTime(o.createdAt, '$.createdAt');
  const device = parseDevice(o.device, '$.device');
  const ingest = parseIngest(o.ingest, '$.ingest');
  const w = asObject(o.window, '$.window', ['firstSeq', 'lastSeq']);
  const window = { firstSeq: asUint(w.firstSeq, '$.window.firstSeq', 1), lastSeq: asUint(w.lastSeq, '$.window.lastSeq', 1) };
  if (window.firstSeq > window.lastSeq) fail('$.window', 'firstSeq is greater than lastSeq');

  const entries = asArray(o.entries, '$.entries', MAX_BUNDLE_ENTRIES).map((e, i) => parseEntry(e, `$.entries[${i}]`));
  const lifecycle =
    o.lifecycle === undefined ? undefined : asArray(o.lifecycle, '$.lifecycle', MAX_BUNDLE_LIFECYCLE).map((e, i) => parseLifecycleEntry(e, `$.lifecycle[${i}]`));
  const batches = asArray(o.batches, '$.batches', MAX_BUNDLE_BATCHES).map((b, i) => parseBatch(b, `$.batches[${i}]`));

  const batchIds = new Set<number>();
  batches.forEach((b, i) => {
    if (batchIds.has(b.batchId)) fail(`$.batches[${i}].batchId`, `batch ${b.batchId} is listed twice`);
    batchIds.add(b.batchId);
  });
  entries.forEach((e, i) => {
    if (!batchIds.has(e.batchId)) fail(`$.entries[${i}].batchId`, `batch ${e.batchId} is not listed in $.batches`);
    if (e.seq < window.firstSeq || e.seq > window.lastSeq) fail(`$.entries[${i}].seq`, 'outside the window');
  });
  lifecycle?.forEach((e, i) => {
    if (!batchIds.has(e.batchId)) fail(`$.lifecycle[${i}].batchId`, `batch ${e.batchId} is not listed in $.batches`);
  });

  const bundle: EvidenceBundle = { format: BUNDLE_FORMAT, createdAt, device, ingest, window, entries, batches };
  if (lifecycle !== undefined) bundle.lifecycle = lifecycle;
  if (o.alert !== undefined) bundle.alert = o.alert;
  return bundle;
}

/** Parses bundle file bytes (UTF-8 JSON). Bad UTF-8 or JSON is `BUNDLE_FORMAT_ERROR` at path `$`; a file or list beyond the limits above `BUNDLE_LIMIT_ERROR`. */
export function parseBundleBytes(bytes: Uint8Array): EvidenceBundle {
  if (bytes.length > MAX_BUNDLE_BYTES) {
    throw new FormatError('BUNDLE_LIMIT_ERROR', `evidence bundle: ${bytes.length} bytes, more than the ${MAX_BUNDLE_BYTES} a verifier reads`, { where: { path: '$' } });
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (cause) {
    fail('$', 'not UTF-8 JSON', cause);
  }
  return parseBundle(json);
}

/** The JSON object form of a bundle (FORMAT.md §7): the inverse of `parseBundle`. */
export function bundleToJson(bundle: EvidenceBundle): Record<string, unknown> {
  const b64 = toBase64Url;
  const device: Record<string, unknown> = {
    deviceId: bundle.device.deviceId,
    publicKey: b64(bundle.device.publicKey),
    kid: b64(bundle.device.kid),
    keyBackend: bundle.device.keyBackend,
    enrolledAt: bundle.device.enrolledAt,
  };
  if (bundle.device.site !== undefined) device.site = bundle.device.site;
  const out: Record<string, unknown> = {
    format: bundle.format,
    createdAt: bundle.createdAt,
    device,
    ingest: { issuer: bundle.ingest.issuer, publicKey: b64(bundle.ingest.publicKey), kid: b64(bundle.ingest.kid) },
    window: { firstSeq: bundle.window.firstSeq, lastSeq: bundle.window.lastSeq },
    entries: bundle.entries.map((e) => {
      const entry: Record<string, unknown> = { seq: e.seq, batchId: e.batchId };
      if (e.reading !== undefined) entry.reading = b64(e.reading);
      entry.statement = b64(e.statement);
      entry.receipt = b64(e.receipt);
      return entry;
    }),
    ...(bundle.lifecycle === undefined
      ? {}
      : { lifecycle: bundle.lifecycle.map((e) => ({ batchId: e.batchId, statement: b64(e.statement), receipt: b64(e.receipt), ...(e.request === undefined ? {} : { request: b64(e.request) }) })) }),
    batches: bundle.batches.map((b) => {
      const batch: Record<string, unknown> = { batchId: b.batchId, size: b.size, root: `0x${toHex(b.root)}` };
      if (b.anchor !== undefined) batch.anchor = { ...b.anchor };
      return batch;
    }),
  };
  if (bundle.alert !== undefined) out.alert = bundle.alert;
  return out;
}

/** Serialises a bundle to its file bytes: UTF-8 JSON, two-space indent, trailing newline. */
export function encodeBundle(bundle: EvidenceBundle): Uint8Array {
  return new TextEncoder().encode(`${JSON.stringify(bundleToJson(bundle), null, 2)}\n`);
}

/** SHA-256 of the bundle file bytes, lowercase hex: the identifier printed on reports and in QR codes. */
export function bundleDigest(bytes: Uint8Array): string {
  return toHex(sha256(bytes));
}

/**
 * The same digest as {@link bundleDigest}, through WebCrypto when there is one (native code, off the calling
 * thread: a day of readings is over 100 MB, several seconds in JavaScript), else as bundleDigest.
 */
export async function bundleDigestAsync(bytes: Uint8Array): Promise<string> {
  const subtle = globalThis.crypto?.subtle;
  if (subtle === undefined) return bundleDigest(bytes);
  try {
    return toHex(new Uint8Array(await subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>)));
  } catch {
    return bundleDigest(bytes);
  }
}
