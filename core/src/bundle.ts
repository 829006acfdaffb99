/**
 * The evidence bundle (docs/FORMAT.md §7): the JSON file an officer receives. `parseBundle` checks its shape and
 * decodes every base64url/hex field; it does not decode the CBOR inside (statements, receipts, readings) and
 * does not judge consistency: that is `verifyBundle`'s job, which reports each problem as a check failure.
 *
 * Trust boundary: everything here is untrusted input. A shape problem raises `FormatError('BUNDLE_FORMAT_ERROR')`
 * whose `where.path` is the JSONPath of the first problem (e.g. `$.entries[3].statement`).
 */
import type { AnchorRef } from './anchor/evm-reader.ts';
import { equalBytes, fromBase64Url, fromHex, toBase64Url, toHex } from './bytes.ts';
import { decodeCbor } from './cbor.ts';
import { HEADER_STELE_BATCH_SIZE, HEADER_STELE_SEQ, HEADER_VDP, VDP_INCLUSION_PROOFS } from './cose/labels.ts';
import { encodeDeterministic } from './cose/plain-bytes.ts';
import { encodeReceipt, parseReceipt } from './cose/receipt.ts';
import { encodeSign1 } from './cose/sign1.ts';
import { parseStatement } from './cose/statement.ts';
import { checkEnrolmentRecord, type CheckedRecord } from './enrolment/record.ts';
import { FormatError, SteleError } from './errors.ts';
import { sha256 } from './hash.ts';
import { hashChildren, hashLeaf, splitPoint } from './rfc9162/hash.ts';
import { buildInclusionPath } from './rfc9162/proof-build.ts';
import type { KeyBackend } from './signer.ts';

/** `format` value of version 1 bundles (FORMAT.md §7): a receipt and its proof per reading. */
export const BUNDLE_FORMAT = 'stele-evidence/1';
/** `format` value of compact bundles (FORMAT.md §7.1): each ingest batch's receipt and proof nodes once. */
export const BUNDLE_FORMAT_V2 = 'stele-evidence/2';
/** The two bundle forms a verifier reads. */
export type BundleFormat = typeof BUNDLE_FORMAT | typeof BUNDLE_FORMAT_V2;

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

/**
 * A bundle as the verifier judges it. Both forms decode to it: a compact (v2) bundle is expanded by
 * {@link parseBundle} into the statements and receipts a v1 bundle carries, byte for byte the ones ingest made
 * (FORMAT.md §7.1), so every check of §9 runs on the same items whichever form the officer was given.
 */
export interface EvidenceBundle {
  /** The form the bundle was read from; {@link encodeBundle} writes this form unless told otherwise. */
  format: BundleFormat;
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
   * Statements the device signed that ingest caught and did not log (FORMAT.md §7, §11 step 7): a second, different
   * statement for a seq the bundle holds (a fork), or one ahead of the window after seqs ingest never received (a
   * gap). The verifier checks each one's key, signature and body and reports what it proves (FORK_ERROR,
   * SEQUENCE_GAP_ERROR); its body joins check 9's readings.
   */
  caught?: BundleCaught[];
  /**
   * The alert this bundle is evidence of (FORMAT.md §15.7), kept as parsed JSON: check 9 recomputes an alert of
   * the §15.7 shape from the verified readings (§15.8: the seq window covers its time window); any other value is
   * reported as not checked.
   */
  alert?: unknown;
}

/** A statement ingest caught and did not log (FORMAT.md §7 `caught`): no batch, no receipt. */
export interface BundleCaught {
  statement: Uint8Array;
  /** The reading body, when ingest received it. */
  reading?: Uint8Array;
}

/**
 * Limits of a bundle a verifier reads (FORMAT.md §7 "Limits"): beyond them, `BUNDLE_LIMIT_ERROR` before any work.
 * 128 MiB holds about 120,000 readings with bodies (a day at one reading a second is about 90 MiB).
 */
export const MAX_BUNDLE_BYTES = 128 * 1024 * 1024;
export const MAX_BUNDLE_ENTRIES = 500_000;
export const MAX_BUNDLE_LIFECYCLE = 10_000;
export const MAX_BUNDLE_BATCHES = 100_000;
export const MAX_BUNDLE_CAUGHT = 1_000;
/** v2 (§7.1): at most this many proof nodes per batch and device-level batches per bundle. */
export const MAX_BUNDLE_NODES = 10_000;
export const MAX_BUNDLE_DEVICE_BATCHES = 500_000;

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

/** A batch as read; `proof` only in a compact (v2) bundle (§7.1), where the verifier rebuilds receipts from it. */
type ParsedBatch = BundleBatch & { proof?: { protectedBytes: Uint8Array; signature: Uint8Array; nodes: Uint8Array[]; path: string } };

function parseBatch(v: unknown, path: string, compact: boolean): ParsedBatch {
  const o = asObject(v, path, ['batchId', 'size', 'root'], compact ? ['anchor', 'receipt', 'nodes'] : ['anchor']);
  const batch: ParsedBatch = {
    batchId: asUint(o.batchId, `${path}.batchId`, 1),
    size: asUint(o.size, `${path}.size`, 1),
    root: fromHex(asHex0x(o.root, `${path}.root`, 32)),
  };
  if (o.anchor !== undefined) batch.anchor = parseAnchor(o.anchor, `${path}.anchor`);
  if ((o.receipt === undefined) !== (o.nodes === undefined)) fail(`${path}.${o.receipt === undefined ? 'receipt' : 'nodes'}`, 'missing (receipt and nodes come together)');
  if (o.receipt !== undefined) {
    const r = asObject(o.receipt, `${path}.receipt`, ['protected', 'signature']);
    batch.proof = {
      protectedBytes: asB64(r.protected, `${path}.receipt.protected`),
      signature: asB64(r.signature, `${path}.receipt.signature`, 64),
      nodes: asArray(o.nodes, `${path}.nodes`, MAX_BUNDLE_NODES).map((n, i) => asB64(n, `${path}.nodes[${i}]`, 32)),
      path,
    };
  }
  return batch;
}

function asArray(v: unknown, path: string, max: number): unknown[] {
  if (!Array.isArray(v)) fail(path, 'expected an array');
  if (v.length > max) {
    throw new FormatError('BUNDLE_LIMIT_ERROR', `evidence bundle: ${path}: ${v.length} items, more than the ${max} a verifier reads`, { where: { path } });
  }
  return v;
}

/** Options of {@link parseBundle}. */
export interface ParseBundleOptions {
  /**
   * Filled, for a compact bundle, with hashLeaf(statement) of every entry's statement (keyed by the statement's
   * bytes object), which rebuilding the receipts computes: verifyBundleBytes hands them to its checks, which would
   * otherwise hash every statement again. Only for bytes nobody changes in between.
   */
  leafHashes?: Map<Uint8Array, Uint8Array>;
}

/**
 * Checks the shape of a parsed JSON evidence bundle (FORMAT.md §7) and decodes its binary fields.
 * Strict: unknown keys, wrong types, bad base64url/hex, wrong key or root lengths, a window with
 * firstSeq > lastSeq, duplicate batch ids and entries or lifecycle items naming a batch that is not listed are all
 * `FormatError('BUNDLE_FORMAT_ERROR')` with `where.path` naming the first problem.
 * Not checked here (the verifier reports them as check failures): entry order, gaps, forks, anything inside the CBOR.
 */
export function parseBundle(json: unknown, options: ParseBundleOptions = {}): EvidenceBundle {
  if (typeof json === 'object' && json !== null && !Array.isArray(json) && (json as Obj).format === BUNDLE_FORMAT_V2) return parseCompactBundle(json, options.leafHashes);
  const o = asObject(
    json,
    '$',
    ['format', 'createdAt', 'device', 'ingest', 'window', 'entries', 'batches'],
    ['lifecycle', 'caught', 'alert'],
  );
  if (o.format !== BUNDLE_FORMAT) fail('$.format', `expected "${BUNDLE_FORMAT}" or "${BUNDLE_FORMAT_V2}"`);
  const common = parseCommon(o);
  const entries = asArray(o.entries, '$.entries', MAX_BUNDLE_ENTRIES).map((e, i) => parseEntry(e, `$.entries[${i}]`));
  return finishBundle(BUNDLE_FORMAT, common, entries, o.alert);
}

interface Common {
  createdAt: string;
  device: BundleDevice;
  ingest: BundleIngest;
  window: { firstSeq: number; lastSeq: number };
  lifecycle: BundleLifecycleEntry[] | undefined;
  batches: BundleBatch[];
  batchById: Map<number, BundleBatch>;
  caught: BundleCaught[] | undefined;
}

/** The keys both forms share (§7): everything but `entries` (and v2's `deviceBatches`). */
function parseCommon(o: Obj): Common {
  const createdAt = asIsoTime(o.createdAt, '$.createdAt');
  const device = parseDevice(o.device, '$.device');
  const ingest = parseIngest(o.ingest, '$.ingest');
  const w = asObject(o.window, '$.window', ['firstSeq', 'lastSeq']);
  const window = { firstSeq: asUint(w.firstSeq, '$.window.firstSeq', 1), lastSeq: asUint(w.lastSeq, '$.window.lastSeq', 1) };
  if (window.firstSeq > window.lastSeq) fail('$.window', 'firstSeq is greater than lastSeq');
  const lifecycle =
    o.lifecycle === undefined ? undefined : asArray(o.lifecycle, '$.lifecycle', MAX_BUNDLE_LIFECYCLE).map((e, i) => parseLifecycleEntry(e, `$.lifecycle[${i}]`));
  const batches = asArray(o.batches, '$.batches', MAX_BUNDLE_BATCHES).map((b, i) => parseBatch(b, `$.batches[${i}]`, o.format === BUNDLE_FORMAT_V2));
  const batchById = new Map<number, BundleBatch>();
  batches.forEach((b, i) => {
    if (batchById.has(b.batchId)) fail(`$.batches[${i}].batchId`, `batch ${b.batchId} is listed twice`);
    batchById.set(b.batchId, b);
  });
  lifecycle?.forEach((e, i) => {
    if (!batchById.has(e.batchId)) fail(`$.lifecycle[${i}].batchId`, `batch ${e.batchId} is not listed in $.batches`);
  });
  const caught =
    o.caught === undefined
      ? undefined
      : asArray(o.caught, '$.caught', MAX_BUNDLE_CAUGHT).map((f, i) => {
          const path = `$.caught[${i}]`;
          const x = asObject(f, path, ['statement'], ['reading']);
          return { statement: asB64(x.statement, `${path}.statement`), ...(x.reading === undefined ? {} : { reading: asB64(x.reading, `${path}.reading`) }) };
        });
  return { createdAt, device, ingest, window, lifecycle, batches, batchById, caught };
}

function checkEntryPlace(e: { seq: number; batchId: number }, path: string, common: Common): void {
  if (!common.batchById.has(e.batchId)) fail(`${path}.batchId`, `batch ${e.batchId} is not listed in $.batches`);
  if (e.seq < common.window.firstSeq || e.seq > common.window.lastSeq) fail(`${path}.seq`, 'outside the window');
}

function finishBundle(format: BundleFormat, common: Common, entries: BundleEntry[], alert: unknown): EvidenceBundle {
  entries.forEach((e, i) => checkEntryPlace(e, `$.entries[${i}]`, common));
  const { createdAt, device, ingest, window, lifecycle, caught } = common;
  const batches = common.batches.map(({ batchId, size, root, anchor }) => (anchor === undefined ? { batchId, size, root } : { batchId, size, root, anchor }));
  const bundle: EvidenceBundle = { format, createdAt, device, ingest, window, entries, batches };
  if (lifecycle !== undefined) bundle.lifecycle = lifecycle;
  if (caught !== undefined) bundle.caught = caught;
  if (alert !== undefined) bundle.alert = alert;
  return bundle;
}

/** Parses bundle file bytes (UTF-8 JSON). Bad UTF-8 or JSON is `BUNDLE_FORMAT_ERROR` at path `$`; a file or list beyond the limits above `BUNDLE_LIMIT_ERROR`. */
export function parseBundleBytes(bytes: Uint8Array, options: ParseBundleOptions = {}): EvidenceBundle {
  return parseBundle(readEvidenceJson(bytes), options);
}

/** The JSON of an evidence file (a bundle, §7, or an evidence set, §7.2): within the byte limit, UTF-8, JSON. */
export function readEvidenceJson(bytes: Uint8Array): unknown {
  if (bytes.length > MAX_BUNDLE_BYTES) {
    throw new FormatError('BUNDLE_LIMIT_ERROR', `evidence bundle: ${bytes.length} bytes, more than the ${MAX_BUNDLE_BYTES} a verifier reads`, { where: { path: '$' } });
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (cause) {
    fail('$', 'not UTF-8 JSON', cause);
  }
  return json;
}

/** Which form {@link bundleToJson} and {@link encodeBundle} write: 1 = `stele-evidence/1`, 2 = `stele-evidence/2` (§7.1). */
export interface BundleFormOptions {
  /** Default: the form the bundle was read from (`bundle.format`). */
  form?: 1 | 2;
}

/**
 * The JSON object form of a bundle (FORMAT.md §7, or §7.1 with `form: 2`): the inverse of `parseBundle`. Writing
 * the compact form needs the receipts of each batch to share one protected header, one signature and one tree
 * (as ingest makes them); otherwise it throws `FormatError('BUNDLE_FORMAT_ERROR')` naming the entry.
 */
export function bundleToJson(bundle: EvidenceBundle, options: BundleFormOptions = {}): Record<string, unknown> {
  const form = options.form ?? (bundle.format === BUNDLE_FORMAT_V2 ? 2 : 1);
  const b64 = toBase64Url;
  const device: Record<string, unknown> = {
    deviceId: bundle.device.deviceId,
    publicKey: b64(bundle.device.publicKey),
    kid: b64(bundle.device.kid),
    keyBackend: bundle.device.keyBackend,
    enrolledAt: bundle.device.enrolledAt,
  };
  if (bundle.device.site !== undefined) device.site = bundle.device.site;
  const compact = form === 2 ? compactParts(bundle) : undefined;
  const out: Record<string, unknown> = {
    format: form === 2 ? BUNDLE_FORMAT_V2 : BUNDLE_FORMAT,
    createdAt: bundle.createdAt,
    device,
    ingest: { issuer: bundle.ingest.issuer, publicKey: b64(bundle.ingest.publicKey), kid: b64(bundle.ingest.kid) },
    window: { firstSeq: bundle.window.firstSeq, lastSeq: bundle.window.lastSeq },
    entries: bundle.entries.map((e, i) => {
      const entry: Record<string, unknown> = { seq: e.seq, batchId: e.batchId };
      if (compact !== undefined) entry.leaf = compact.leafOf[i];
      if (e.reading !== undefined) entry.reading = b64(e.reading);
      const db = compact?.deviceBatchOf[i];
      if (db !== undefined) {
        entry.digest = b64(compact!.digestOf[i]!);
        entry.deviceBatch = db;
      } else entry.statement = b64(e.statement);
      if (compact === undefined) entry.receipt = b64(e.receipt);
      return entry;
    }),
    ...(compact === undefined || compact.deviceBatches.length === 0
      ? {}
      : { deviceBatches: compact.deviceBatches.map((d) => ({ header: b64(d.header), signature: b64(d.signature) })) }),
    ...(bundle.lifecycle === undefined
      ? {}
      : { lifecycle: bundle.lifecycle.map((e) => ({ batchId: e.batchId, statement: b64(e.statement), receipt: b64(e.receipt), ...(e.request === undefined ? {} : { request: b64(e.request) }) })) }),
    batches: bundle.batches.map((b) => {
      const batch: Record<string, unknown> = { batchId: b.batchId, size: b.size, root: `0x${toHex(b.root)}` };
      if (b.anchor !== undefined) batch.anchor = { ...b.anchor };
      const proof = compact?.proofs.get(b.batchId);
      if (proof !== undefined) {
        batch.receipt = { protected: b64(proof.protectedBytes), signature: b64(proof.signature) };
        batch.nodes = proof.nodes.map(b64);
      }
      return batch;
    }),
  };
  if (bundle.caught !== undefined) out.caught = bundle.caught.map((f) => ({ statement: b64(f.statement), ...(f.reading === undefined ? {} : { reading: b64(f.reading) }) }));
  if (bundle.alert !== undefined) out.alert = bundle.alert;
  return out;
}

/** Serialises a bundle to its file bytes: UTF-8 JSON, two-space indent, trailing newline (form: {@link BundleFormOptions}). */
export function encodeBundle(bundle: EvidenceBundle, options: BundleFormOptions = {}): Uint8Array {
  return new TextEncoder().encode(`${JSON.stringify(bundleToJson(bundle, options), null, 2)}\n`);
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

// ---- The compact form, `stele-evidence/2` (FORMAT.md §7.1) -----------------------------------------------------

/**
 * Walks the RFC 9162 tree of `size` leaves depth first, left before right (FORMAT.md §7.1): a range holding a
 * known leaf index is split (a single known leaf is its leaf hash), a range holding none takes its hash from
 * `next` (the batch's `nodes`, in this order). Returns the hash of every range visited, keyed `start,end`: every
 * sibling on a known leaf's inclusion path is among them.
 */
function walkTree(size: number, known: Map<number, Uint8Array>, next: (start: number, end: number) => Uint8Array): Map<string, Uint8Array> {
  const sorted = [...known.keys()].sort((a, b) => a - b);
  const hasKnown = (start: number, end: number): boolean => {
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (sorted[mid]! < start) lo = mid + 1;
      else hi = mid;
    }
    return lo < sorted.length && sorted[lo]! < end;
  };
  const memo = new Map<string, Uint8Array>();
  const visit = (start: number, end: number): Uint8Array => {
    let h: Uint8Array;
    if (!hasKnown(start, end)) h = next(start, end);
    else if (end - start === 1) h = known.get(start)!;
    else {
      const k = splitPoint(end - start);
      const left = visit(start, start + k);
      h = hashChildren(left, visit(start + k, end));
    }
    memo.set(`${start},${end}`, h);
    return h;
  };
  visit(0, size);
  return memo;
}

function pathIn(memo: Map<string, Uint8Array>, leafIndex: number, size: number): Uint8Array[] {
  return buildInclusionPath((start, end) => memo.get(`${start},${end}`)!, leafIndex, size);
}

/**
 * The statements of a device-level batch (FORMAT.md §3.1) from its shared header and signature and its K reading
 * digests in order: each is the deterministic `18([header, {396: {-1: [bstr .cbor [K, i, path_i]]}}, digest_i,
 * signature])`, path_i its inclusion path in the tree of `SHA-256(0x00 || digest)` leaves.
 */
function deviceBatchStatements(header: Uint8Array, signature: Uint8Array, digests: readonly Uint8Array[]): Uint8Array[] {
  const count = digests.length;
  const memo = walkTree(count, new Map(digests.map((d, i) => [i, hashLeaf(d)])), () => {
    throw new RangeError('unreachable: every leaf of a device-level batch is known');
  });
  return digests.map((payload, i) => {
    const proofBytes = encodeDeterministic([count, i, pathIn(memo, i, count)]);
    const unprotectedHeader = new Map<number, unknown>([[HEADER_VDP, new Map<number, unknown>([[VDP_INCLUSION_PROOFS, [proofBytes]]])]]);
    return encodeSign1({ protectedBytes: header, unprotectedHeader, payload, signature });
  });
}

interface CompactEntry {
  seq: number;
  batchId: number;
  leaf: number;
  reading?: Uint8Array;
  statement?: Uint8Array;
  digest?: Uint8Array;
  deviceBatch?: number;
}

function parseCompactEntry(v: unknown, path: string): CompactEntry {
  const o = asObject(v, path, ['seq', 'batchId', 'leaf'], ['reading', 'statement', 'digest', 'deviceBatch']);
  const entry: CompactEntry = {
    seq: asUint(o.seq, `${path}.seq`, 1),
    batchId: asUint(o.batchId, `${path}.batchId`, 1),
    leaf: asUint(o.leaf, `${path}.leaf`, 0),
  };
  if (o.reading !== undefined) entry.reading = asB64(o.reading, `${path}.reading`);
  if (o.statement !== undefined) {
    if (o.digest !== undefined || o.deviceBatch !== undefined) fail(`${path}.statement`, 'an entry carries either statement or digest and deviceBatch');
    entry.statement = asB64(o.statement, `${path}.statement`);
  } else {
    if (o.digest === undefined) fail(`${path}.statement`, 'missing (or digest and deviceBatch)');
    if (o.deviceBatch === undefined) fail(`${path}.deviceBatch`, 'missing (digest and deviceBatch come together)');
    entry.digest = asB64(o.digest, `${path}.digest`, 32);
    entry.deviceBatch = asUint(o.deviceBatch, `${path}.deviceBatch`, 0);
  }
  return entry;
}

interface CompactDeviceBatch {
  header: Uint8Array;
  signature: Uint8Array;
  first: number;
  count: number;
}

function parseDeviceBatch(v: unknown, path: string): CompactDeviceBatch {
  const o = asObject(v, path, ['header', 'signature']);
  const header = asB64(o.header, `${path}.header`);
  const signature = asB64(o.signature, `${path}.signature`, 64);
  let map: unknown;
  try {
    map = decodeCbor(header, { what: 'device-level batch header' });
  } catch (cause) {
    fail(`${path}.header`, 'not a CBOR map', cause);
  }
  if (!(map instanceof Map)) fail(`${path}.header`, 'not a CBOR map');
  const first = map.get(HEADER_STELE_SEQ);
  const count = map.get(HEADER_STELE_BATCH_SIZE);
  if (typeof first !== 'number' || !Number.isSafeInteger(first) || first < 1) fail(`${path}.header`, 'no stele seq (-65537) >= 1');
  if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 2) fail(`${path}.header`, 'no stele batch size (-65540) >= 2');
  return { header, signature, first, count };
}

/**
 * Reads a compact bundle (FORMAT.md §7.1) into the bundle the verifier judges: the statements of device-level
 * batches rebuilt from their header, signature and digests, every receipt rebuilt from its batch's receipt and the
 * tree of the batch's known leaves and `nodes`. Structural problems are `BUNDLE_FORMAT_ERROR` with the path; a
 * wrong byte in a node, digest, header or signature rebuilds other statements or receipts, which checks 3-7 then
 * judge as they judge a v1 bundle.
 */
function parseCompactBundle(json: unknown, leafHashes: Map<Uint8Array, Uint8Array> | undefined): EvidenceBundle {
  const o = asObject(json, '$', ['format', 'createdAt', 'device', 'ingest', 'window', 'entries', 'batches'], ['deviceBatches', 'lifecycle', 'caught', 'alert']);
  const common = parseCommon(o);
  const raw = asArray(o.entries, '$.entries', MAX_BUNDLE_ENTRIES).map((e, i) => parseCompactEntry(e, `$.entries[${i}]`));
  raw.forEach((e, i) => checkEntryPlace(e, `$.entries[${i}]`, common));
  const deviceBatches =
    o.deviceBatches === undefined ? [] : asArray(o.deviceBatches, '$.deviceBatches', MAX_BUNDLE_DEVICE_BATCHES).map((d, i) => parseDeviceBatch(d, `$.deviceBatches[${i}]`));

  // Statements of device-level batches: every one of the K readings must be an entry, each once.
  const statements: (Uint8Array | undefined)[] = raw.map((e) => e.statement);
  const slots: (number[] | undefined)[] = deviceBatches.map(() => undefined);
  raw.forEach((e, i) => {
    if (e.deviceBatch === undefined) return;
    const path = `$.entries[${i}]`;
    const db = deviceBatches[e.deviceBatch];
    if (db === undefined) fail(`${path}.deviceBatch`, `there is no $.deviceBatches[${e.deviceBatch}]`);
    if (db.count > raw.length) fail(`$.deviceBatches[${e.deviceBatch}].header`, `batch size ${db.count} is more than the bundle's entries`);
    const slot = (slots[e.deviceBatch] ??= new Array<number>(db.count).fill(-1));
    const index = e.seq - db.first;
    if (index < 0 || index >= db.count) fail(`${path}.seq`, `seq ${e.seq} is not in device-level batch ${e.deviceBatch} (seq ${db.first} ..= ${db.first + db.count - 1})`);
    if (slot[index] !== -1) fail(`${path}.seq`, `seq ${e.seq} appears twice in device-level batch ${e.deviceBatch}`);
    slot[index] = i;
  });
  deviceBatches.forEach((db, j) => {
    const slot = slots[j];
    if (slot === undefined) fail(`$.deviceBatches[${j}]`, 'no entry names this device-level batch');
    const missing = slot.indexOf(-1);
    if (missing !== -1) fail(`$.deviceBatches[${j}]`, `seq ${db.first + missing} of this device-level batch has no entry (a compact device-level batch holds all its ${db.count} readings)`);
    const built = deviceBatchStatements(db.header, db.signature, slot.map((i) => raw[i]!.digest!));
    slot.forEach((i, index) => (statements[i] = built[index]));
  });

  // Receipts: one tree per batch from its known leaves and its nodes.
  const receipts: Uint8Array[] = new Array(raw.length);
  const byBatch = new Map<number, number[]>();
  raw.forEach((e, i) => {
    const g = byBatch.get(e.batchId);
    if (g === undefined) byBatch.set(e.batchId, [i]);
    else g.push(i);
  });
  common.batches.forEach((batch: ParsedBatch, bi) => {
    const path = `$.batches[${bi}]`;
    const members = byBatch.get(batch.batchId);
    const proof = batch.proof;
    if (members === undefined) {
      if (proof !== undefined) fail(`${path}.receipt`, 'present on a batch no entry names');
      return;
    }
    if (proof === undefined) fail(`${path}.receipt`, 'missing: entries name this batch');
    const known = new Map<number, Uint8Array>();
    for (const i of members) {
      const leaf = raw[i]!.leaf;
      if (leaf >= batch.size) fail(`$.entries[${i}].leaf`, `leaf ${leaf} is not below the batch size ${batch.size}`);
      if (known.has(leaf)) fail(`$.entries[${i}].leaf`, `leaf ${leaf} of batch ${batch.batchId} appears twice`);
      const h = hashLeaf(statements[i]!);
      known.set(leaf, h);
      leafHashes?.set(statements[i]!, h);
    }
    let taken = 0;
    const memo = walkTree(batch.size, known, () => {
      const node = proof.nodes[taken++];
      if (node === undefined) fail(`${path}.nodes`, `fewer nodes than the tree of ${batch.size} leaves needs`);
      return node;
    });
    if (taken !== proof.nodes.length) fail(`${path}.nodes`, `${proof.nodes.length - taken} more nodes than the tree needs`);
    for (const i of members) {
      const leafIndex = raw[i]!.leaf;
      receipts[i] = encodeReceipt(proof.protectedBytes, proof.signature, { treeSize: batch.size, leafIndex, path: pathIn(memo, leafIndex, batch.size) });
    }
  });

  const entries: BundleEntry[] = raw.map((e, i) => {
    const entry: BundleEntry = { seq: e.seq, batchId: e.batchId, statement: statements[i]!, receipt: receipts[i]! };
    if (e.reading !== undefined) entry.reading = e.reading;
    return entry;
  });
  return finishBundle(BUNDLE_FORMAT_V2, common, entries, o.alert);
}

function cannotCompact(path: string, message: string, cause?: unknown): never {
  throw new FormatError('BUNDLE_FORMAT_ERROR', `evidence bundle: ${path}: cannot write the compact form (stele-evidence/2): ${message}`, {
    where: { path },
    ...(cause === undefined ? {} : { cause }),
  });
}

/** The ranges, top down, whose hashes make up the inclusion path of `leafIndex` (buildInclusionPath's walk). */
function pathRanges(leafIndex: number, size: number): string[] {
  const keys: string[] = [];
  let start = 0;
  let end = size;
  while (end - start > 1) {
    const k = splitPoint(end - start);
    if (leafIndex < start + k) {
      keys.push(`${start + k},${end}`);
      end = start + k;
    } else {
      keys.push(`${start},${start + k}`);
      start += k;
    }
  }
  return keys.reverse();
}

/**
 * What the compact form carries instead of per-entry receipts (FORMAT.md §7.1), worked out from a bundle's
 * statements and receipts: leaf indices, each batch's receipt and nodes, and the device-level batches whose K
 * statements are all in the bundle and rebuild byte for byte (the others keep their statements).
 */
function compactParts(bundle: EvidenceBundle): {
  leafOf: number[];
  deviceBatchOf: (number | undefined)[];
  digestOf: (Uint8Array | undefined)[];
  deviceBatches: { header: Uint8Array; signature: Uint8Array }[];
  proofs: Map<number, { protectedBytes: Uint8Array; signature: Uint8Array; nodes: Uint8Array[] }>;
} {
  const parsed = bundle.entries.map((e, i) => {
    try {
      return { st: parseStatement(e.statement), rc: parseReceipt(e.receipt) };
    } catch (cause) {
      cannotCompact(`$.entries[${i}]`, 'its statement or receipt does not decode', cause);
    }
  });

  // Device-level batches, grouped by (header, signature).
  const deviceBatchOf: (number | undefined)[] = new Array(parsed.length).fill(undefined);
  const digestOf: (Uint8Array | undefined)[] = new Array(parsed.length).fill(undefined);
  const deviceBatches: { header: Uint8Array; signature: Uint8Array }[] = [];
  const groups = new Map<string, number[]>();
  parsed.forEach(({ st }, i) => {
    if (st.batch === undefined) return;
    const key = `${toHex(st.protectedBytes)}|${toHex(st.signature)}`;
    const g = groups.get(key);
    if (g === undefined) groups.set(key, [i]);
    else g.push(i);
  });
  const order = [...groups.values()].sort((a, b) => a[0]! - b[0]!);
  for (const group of order) {
    const first = parsed[group[0]!]!.st;
    const count = first.batch!.count;
    if (group.length !== count) continue;
    const slot: number[] = new Array<number>(count).fill(-1);
    let whole = true;
    for (const i of group) {
      const index = parsed[i]!.st.batch!.index;
      if (slot[index] !== -1) whole = false;
      else slot[index] = i;
    }
    if (!whole || slot.includes(-1)) continue;
    const built = deviceBatchStatements(first.protectedBytes, first.signature, slot.map((i) => parsed[i]!.st.payload));
    if (!slot.every((i, index) => equalBytes(built[index]!, bundle.entries[i]!.statement))) continue;
    const j = deviceBatches.length;
    deviceBatches.push({ header: first.protectedBytes, signature: first.signature });
    for (const i of slot) {
      deviceBatchOf[i] = j;
      digestOf[i] = parsed[i]!.st.payload;
    }
  }

  // One receipt and one set of nodes per batch.
  const leafOf = parsed.map(({ rc }) => rc.proof.leafIndex);
  const proofs = new Map<number, { protectedBytes: Uint8Array; signature: Uint8Array; nodes: Uint8Array[] }>();
  const byBatch = new Map<number, number[]>();
  bundle.entries.forEach((e, i) => {
    const g = byBatch.get(e.batchId);
    if (g === undefined) byBatch.set(e.batchId, [i]);
    else g.push(i);
  });
  for (const batch of bundle.batches) {
    const members = byBatch.get(batch.batchId);
    if (members === undefined) continue;
    const rc0 = parsed[members[0]!]!.rc;
    const known = new Map<number, Uint8Array>();
    const fromProofs = new Map<string, Uint8Array>();
    for (const i of members) {
      const { rc } = parsed[i]!;
      const path = `$.entries[${i}].receipt`;
      if (rc.batchId !== batch.batchId) cannotCompact(path, `its receipt names batch ${rc.batchId}, the entry batch ${batch.batchId}`);
      if (rc.proof.treeSize !== batch.size) cannotCompact(path, `its proof is for a tree of ${rc.proof.treeSize} leaves, batch ${batch.batchId} has ${batch.size}`);
      if (!equalBytes(rc.protectedBytes, rc0.protectedBytes) || !equalBytes(rc.signature, rc0.signature)) {
        cannotCompact(path, `its receipt's header or signature differs from the other receipts of batch ${batch.batchId}`);
      }
      if (known.has(rc.proof.leafIndex)) cannotCompact(path, `leaf ${rc.proof.leafIndex} of batch ${batch.batchId} appears twice`);
      known.set(rc.proof.leafIndex, hashLeaf(bundle.entries[i]!.statement));
      const keys = pathRanges(rc.proof.leafIndex, batch.size);
      keys.forEach((key, level) => {
        if (!fromProofs.has(key) && rc.proof.path[level] !== undefined) fromProofs.set(key, rc.proof.path[level]!);
      });
    }
    const nodes: Uint8Array[] = [];
    const memo = walkTree(batch.size, known, (start, end) => {
      const h = fromProofs.get(`${start},${end}`);
      if (h === undefined) cannotCompact(`$.batches[batchId=${batch.batchId}]`, `no receipt gives the hash of leaves ${start} ..< ${end}`);
      nodes.push(h);
      return h;
    });
    for (const i of members) {
      const { rc } = parsed[i]!;
      const expected = pathIn(memo, rc.proof.leafIndex, batch.size);
      if (expected.length !== rc.proof.path.length || !expected.every((h, level) => equalBytes(h, rc.proof.path[level]!))) {
        cannotCompact(`$.entries[${i}].receipt`, `its proof does not describe the same tree as the other receipts of batch ${batch.batchId}`);
      }
    }
    proofs.set(batch.batchId, { protectedBytes: rc0.protectedBytes, signature: rc0.signature, nodes });
  }
  return { leafOf, deviceBatchOf, digestOf, deviceBatches, proofs };
}

// ---- Evidence set (FORMAT.md §7.2): one alert's bundles across several devices --------------------------------

export const EVIDENCE_SET_FORMAT = 'stele-evidence-set/1';
/** Most bundles (devices) one evidence set holds (FORMAT.md §7.2). */
export const MAX_SET_BUNDLES = 64;

/**
 * An alert's evidence across devices (FORMAT.md §7.2): one ordinary bundle per device, none with its own `alert`,
 * device ids distinct, and the alert once at the top. The verifier judges each bundle by §9 and the alert (check 9)
 * over the verified readings of all of them.
 */
export interface EvidenceSet {
  format: typeof EVIDENCE_SET_FORMAT;
  createdAt: string;
  alert: unknown;
  bundles: EvidenceBundle[];
}

/** Whether parsed JSON names the evidence set format (and so must be read with {@link parseEvidenceSet}). */
export function isEvidenceSetJson(json: unknown): boolean {
  return typeof json === 'object' && json !== null && !Array.isArray(json) && (json as Obj).format === EVIDENCE_SET_FORMAT;
}

/**
 * Reads an evidence set (FORMAT.md §7.2). A problem in a member bundle is reported with its path inside the set
 * (`$.bundles[1].entries[3].seq`); more entries in all members than one bundle may hold is BUNDLE_LIMIT_ERROR.
 */
export function parseEvidenceSet(json: unknown): EvidenceSet {
  const o = asObject(json, '$', ['format', 'createdAt', 'alert', 'bundles']);
  if (o.format !== EVIDENCE_SET_FORMAT) fail('$.format', `expected "${EVIDENCE_SET_FORMAT}"`);
  const createdAt = asIsoTime(o.createdAt, '$.createdAt');
  const members = asArray(o.bundles, '$.bundles', MAX_SET_BUNDLES);
  if (members.length === 0) fail('$.bundles', 'must not be empty');
  let entries = 0;
  const ids = new Set<string>();
  const bundles = members.map((member, i) => {
    const at = `$.bundles[${i}]`;
    let b: EvidenceBundle;
    try {
      b = parseBundle(member);
    } catch (err) {
      if (!(err instanceof FormatError)) throw err;
      const path = typeof err.where?.path === 'string' ? err.where.path : '$';
      throw new FormatError(err.code, err.message.replace(/^evidence bundle: \$/, `evidence set: ${at}`), { where: { path: `${at}${path.slice(1)}` }, cause: err });
    }
    if (b.alert !== undefined) fail(`${at}.alert`, 'a bundle of an evidence set carries no alert of its own (the set has it)');
    if (ids.has(b.device.deviceId)) fail(`${at}.device.deviceId`, `device ${b.device.deviceId} has another bundle in this set`);
    ids.add(b.device.deviceId);
    entries += b.entries.length;
    if (entries > MAX_BUNDLE_ENTRIES) {
      throw new FormatError('BUNDLE_LIMIT_ERROR', `evidence set: more than ${MAX_BUNDLE_ENTRIES} entries in all its bundles`, { where: { path: `${at}.entries` } });
    }
    return b;
  });
  return { format: EVIDENCE_SET_FORMAT, createdAt, alert: o.alert, bundles };
}

/** The JSON object of an evidence set (FORMAT.md §7.2), its bundles in the given form (default: as read). */
export function evidenceSetToJson(set: EvidenceSet, options: BundleFormOptions = {}): Record<string, unknown> {
  return { format: EVIDENCE_SET_FORMAT, createdAt: set.createdAt, alert: set.alert, bundles: set.bundles.map((b) => bundleToJson(b, options)) };
}
