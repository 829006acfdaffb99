/**
 * verifyBundle: the eleven checks of docs/FORMAT.md §9 over a parsed evidence bundle, producing a Verdict. One
 * function per check below (`checkFormat` ... `checkTrust`), in the order of §9, each readable beside its
 * paragraph of the spec; `verifyBundle` only runs them in order over one shared context.
 *
 * No network code here: the on-chain check goes through the `anchorReader` the caller passes (the CLI and the web
 * page pass `readAnchor` from anchor/evm-reader.ts; tests pass a double). Without one, that check stays
 * `unchecked` and the verdict is at best `partial`.
 *
 * Trust (check 11, FORMAT.md §14): the ingest key, issuer, chain and contract are trusted only when the officer's
 * trust policy (`options.trust`, signed by the pinned authority) lists them; without a policy the verdict is at
 * best `partial` and names in full what was taken on the bundle's word. The bundle's own `rpc` is asked only when
 * the caller says so (`useBundleRpc`).
 *
 * Every check runs even when an earlier one fails, on whatever entries could be decoded, so that the officer
 * sees every problem, not only the first. The state is: any `fail` -> failed (headline = the first failure in
 * check order); else any `unchecked` check -> partial; else verified.
 *
 * Work is bounded by the bytes given (FORMAT.md §9 "Bounded work"): loops run over the entries present, never
 * over the seq numbers a bundle declares, so a window of 2^53 - 1 costs what its entries cost.
 *
 * ## Batch inclusion (5), receipt (6) and anchor (7): the decision table
 *
 * Per entry: L = hashLeaf(statement bytes); R = root computed from L and the receipt's proof (RFC 9162
 * §2.1.3.2); B = `batches[].root`, the root the bundle records as anchored; S(x) = the receipt signature verifies
 * with the ingest key over the detached payload x (FORMAT.md §5). The receipt kid must be the ingest kid.
 *
 * | proof      | R == B | S(R)  | S(B)  | 5 inclusion           | 6 receipt               | 7 anchor (offline)          |
 * |------------|--------|-------|-------|-----------------------|-------------------------|-----------------------------|
 * | malformed  |   –    |   –   |   –   | INCLUSION_PROOF_ERROR | not assessed            |                             |
 * | ok         |  yes   | true  |   –   | pass                  | pass                    | size != B.size -> MISMATCH  |
 * | ok         |  yes   | false |   –   | pass                  | RECEIPT_SIGNATURE_ERROR |                             |
 * | ok         |  no    | true  |   –   | pass (in signed root) | pass                    | ANCHOR_MISMATCH_ERROR       |
 * | ok         |  no    | false | true  | INCLUSION_PROOF_ERROR | pass                    |                             |
 * | ok         |  no    | false | false | INCLUSION_PROOF_ERROR | not assessed            |                             |
 *
 * Why: the ingest signature binds the root, so S(R) true means ingest really signed R and this entry is in it.
 * - A changed proof node (or a changed statement) moves R away from the signed root: S(R) fails, R != B, and the
 *   signature still verifies over B -> INCLUSION_PROOF_ERROR only.
 * - A changed receipt signature byte leaves R == B but S(R) fails -> RECEIPT_SIGNATURE_ERROR only.
 * - A changed `batches[].root` leaves every receipt verifying over its own R, which is not B: the bundle records
 *   as anchored a root ingest never signed -> ANCHOR_MISMATCH_ERROR (once per batch), even offline; with a chain
 *   reader the chain's root differs from B as well (a second ANCHOR_MISMATCH_ERROR naming the chain).
 * - When neither R nor B carries the signature, the proof does not lead to the recorded root and the signature
 *   cannot be judged on its own: INCLUSION_PROOF_ERROR, the receipt is not assessed.
 * A receipt whose kid is not the ingest kid -> RECEIPT_SIGNATURE_ERROR (another key), inclusion still judged by
 * R == B. A receipt for another batch id than its entry's -> INCLUSION_PROOF_ERROR.
 *
 * ## On-chain anchor (7) with a reader
 * Per anchored batch, per endpoint: the officer's (`rpcUrls`, one operator each), else the policy's endpoints for
 * the batch's anchor target (counted per operator against its quorum), else the bundle's `anchor.rpc` when
 * `useBundleRpc`, else the reader alone. The facts (chainId, contract, batchId, root, size) must equal the
 * bundle's. AnchorError ANCHOR_RPC_ERROR (or any unexpected error, or the overall deadline) -> that endpoint did
 * not answer; ANCHOR_NOT_FOUND -> ANCHOR_NOT_FOUND_ERROR; a differing fact or ANCHOR_MISMATCH_ERROR from the
 * reader -> ANCHOR_MISMATCH_ERROR. Endpoints that answered must agree, else the batch stays unchecked ("nodes
 * disagree"); no endpoint answering -> unchecked ("could not reach {url}"); fewer operators than the quorum
 * confirming -> unchecked. Batches are looked up concurrently under one deadline.
 *
 * ## Time bounds (8)
 * Device time is untrusted (FORMAT.md §8). A reading whose clock was synced must not claim a time later than its
 * batch's block time + `timeToleranceS` (default 300 s); only block times confirmed on chain are used, so offline
 * this check is `unchecked`. Readings with an unsynced clock are not bounded (a note says so).
 */
import type { AnchorFacts, AnchorRef } from '../anchor/evm-reader.ts';
import type { BundleBatch, BundleEntry, BundleLifecycleEntry, EvidenceBundle, EvidenceSet } from '../bundle.ts';
import { bundleDigestAsync, EVIDENCE_SET_FORMAT, isEvidenceSetJson, parseBundle, parseEvidenceSet, readEvidenceJson } from '../bundle.ts';
import { verifyEvidenceSet } from './evidence-set.ts';
import { equalBytes, fromBase64Url, toBase64Url, toHex } from '../bytes.ts';
import { parseReceipt, parseStatement, sigStructure1, verifyStatementSignature } from '../cose/index.ts';
import { extendsChain, type ChainLinkTo } from '../chain-link.ts';
import type { ParsedReceipt, ParsedStatement } from '../cose/index.ts';
import { prepareEs256Key, verifyEs256 } from '../ecdsa.ts';
import { verifyEnrolmentRequest } from '../enrolment/request.ts';
import { chainToRoot, checkTpm2Certify, TPM2_CERTIFY_KIND } from '../tpm2/attestation.ts';
import { SteleError } from '../errors.ts';
import { sha256 } from '../hash.ts';
import { assertP256PublicKey, keyIdOf } from '../keys.ts';
import { buildKeyTimeline, findSpan, keyStatusAt, parseLifecycleStatement, type KeySpan, type ParsedLifecycle } from '../lifecycle/index.ts';
import { decodeReading, GENESIS_PREV } from '../reading.ts';
import type { Reading } from '../reading.ts';
import { hashLeaf, rootFromInclusionProof } from '../rfc9162/index.ts';
import { hashChildren, splitPoint } from '../rfc9162/hash.ts';
import { buildInclusionPath } from '../rfc9162/proof-build.ts';
import type { KeyBackend } from '../signer.ts';
import { keyValidAt, type AttestationRoot, type EvmAnchorTarget, type IngestKeyEntry, type TrustPolicy } from '../trust/policy.ts';
import { judgeBundleAlert, type VerifiedBody } from './alert-check.ts';
import type { OpenCode, VerifyCode } from './codes.ts';
import type { AnchorField, HeaderField, Subject } from './messages.ts';
import { attestedClaim, declared, FAIL, HEADLINE, NOTE, PASS, TITLES } from './messages.ts';
import type { AnchorSummary, Check, CheckId, CheckStatus, Failure, KeyAttestation, KeySummary, Note, Summary, Text, TrustSummary, Verdict } from './verdict.ts';

/**
 * Reads what the chain holds for one anchored batch. `rpcUrl` is the endpoint to ask (undefined when nobody named
 * one: the reader then uses its own). Throws AnchorError (evm-reader.ts).
 */
export type AnchorReader = (ref: AnchorRef, batchId: number, rpcUrl: string | undefined) => Promise<AnchorFacts>;

export interface VerifyOptions {
  /** Chain access for check 7. Default: none, the anchor stays unchecked (verdict at best `partial`). */
  anchorReader?: AnchorReader;
  /** The officer's endpoints, each its own operator; those that answer must agree. Default: the policy's. */
  rpcUrls?: readonly string[];
  /** Also ask the `rpc` each batch's anchor records (the officer asked for it). Default false. */
  useBundleRpc?: boolean;
  /** The officer's trust policy, from `loadTrustPolicy` (signature and pin checked). Default: none (partial). */
  trust?: TrustPolicy;
  /** The verifier's clock for the policy's expiry, ms since the epoch. Default `Date.now()`. */
  now?: number;
  /** Allowed lead of device time over the anchor block time, seconds. Default 300 (clock skew, block time). */
  timeToleranceS?: number;
  /** One deadline for every chain look-up together, ms. Default 60 000. */
  chainDeadlineMs?: number;
  /** Chain look-ups in flight at once. Default 4. */
  chainConcurrency?: number;
  /** Called after each batch's chain look-up (for a progress line). */
  onProgress?: (progress: { done: number; total: number }) => void;
  /**
   * Accept attestation roots the policy marks `test: true` (swtpm's local CA): only when the officer says this is
   * a test (`stele verify --test-attestation-roots`). Default false: a key attested only through a test root is
   * shown as declared, with a note (FORMAT.md §14.5).
   */
  testAttestationRoots?: boolean;
  /**
   * Checks the statements' ES256 signatures (check 3) a batch at a time, for a caller that spreads them over more
   * than one thread (the web page: two workers). Each answer must be what `verifyEs256(publicKey, message,
   * signature)` returns, false when it throws. Default: every batch started at once through `verifyEs256`.
   */
  signatureVerifier?: SignatureBatchVerifier;
  /**
   * Filled with the milliseconds spent in each step (`parse` by verifyBundleBytes; `format` = decoding every
   * COSE structure, `signatures`, `inclusion` = checks 5, 6 and 7 offline, `rest` = everything else), for the
   * benchmarks (docs/BENCHMARKS.md).
   */
  timings?: Record<string, number>;
}

/** One ES256 signature check: `signature` over `message` with the SEC1 `publicKey` (FORMAT.md §3). */
export interface SignatureJob {
  publicKey: Uint8Array;
  message: Uint8Array;
  signature: Uint8Array;
}

/** Checks a batch of signatures; answers in the order of `jobs` (see `VerifyOptions.signatureVerifier`). */
export type SignatureBatchVerifier = (jobs: readonly SignatureJob[]) => Promise<boolean[]>;

/** The default SignatureBatchVerifier: every check started at once (WebCrypto or noble, core/src/ecdsa.ts). */
export function verifySignatureBatch(jobs: readonly SignatureJob[]): Promise<boolean[]> {
  return Promise.all(jobs.map((j) => safeVerify(j.publicKey, j.message, j.signature)));
}

/** Default of `VerifyOptions.timeToleranceS`. */
export const DEFAULT_TIME_TOLERANCE_S = 300;
/** Default of `VerifyOptions.chainDeadlineMs`. */
export const DEFAULT_CHAIN_DEADLINE_MS = 60_000;
/** Statements whose signature checks are started together (check 3); see checkSignatures. */
const SIGNATURE_CHUNK = 2048;
/** Notes of one kind shown before the rest are folded into one "and N more" note. */
const NOTES_PER_KIND = 3;

export const ORDER: CheckId[] = ['format', 'enrolment', 'signatures', 'completeness', 'inclusion', 'receipt', 'anchor', 'time', 'alert', 'flags', 'trust'];

/** One entry of the bundle and what could be decoded from it. */
interface Item {
  index: number;
  entry: BundleEntry;
  path: string;
  /** Decoded statement whose seq equals the entry's label; undefined when unusable. */
  statement?: ParsedStatement;
  receipt?: ParsedReceipt;
  /** Decoded reading, only when its digest is the signed one. */
  reading?: Reading;
  /** True when an identical statement appeared earlier in the bundle (checked once). */
  duplicate: boolean;
  /** hashLeaf(entry.statement), set with `statement`. */
  leafHash?: Uint8Array;
}
type UsableItem = Item & { statement: ParsedStatement };

/** One lifecycle statement of the bundle (FORMAT.md §13) and what could be decoded from it. */
interface LifecycleItem {
  index: number;
  entry: BundleLifecycleEntry;
  path: string;
  statement?: ParsedLifecycle;
  receipt?: ParsedReceipt;
}

/** A link of the device's hash chain: a reading statement or a chained lifecycle statement (rotation, reinstall). */
interface Link {
  digest: Uint8Array;
  /**
   * What it links to; undefined for a reading of a device-level batch past its first whose body is not in the
   * bundle (FORMAT.md §3.1): its link is then its place in the batch's signed tree (`batch`).
   */
  prev: Uint8Array | undefined;
  batch?: { root: Uint8Array; index: number };
  item?: Item;
}

/** What checks 5-7 judge: a leaf (reading or lifecycle statement) with its receipt. */
interface Leaf {
  subject: Subject;
  seq?: number;
  batchId: number;
  statementBytes: Uint8Array;
  /** hashLeaf(statementBytes) when already known. */
  leafHash?: Uint8Array;
  receipt: ParsedReceipt;
}

class CheckBuilder {
  readonly failures: Failure[] = [];
  status: CheckStatus | undefined;
  sentence: Text | undefined;
  code: OpenCode | undefined;
  constructor(readonly id: CheckId) {}
  fail(code: VerifyCode, sentence: Text, detail: Omit<Failure, 'code' | 'sentence'> = {}): void {
    this.failures.push({ code, sentence, ...detail });
  }
  /** Leaves the check open (unless it fails): not checked here, for `sentence`. */
  open(sentence: Text, code?: OpenCode): void {
    if (this.status === 'unchecked') return; // the first reason stands
    this.status = 'unchecked';
    this.sentence = sentence;
    this.code = code;
  }
  build(): Check {
    const status: CheckStatus = this.failures.length > 0 ? 'fail' : (this.status ?? 'pass');
    const check: Check = {
      id: this.id,
      number: ORDER.indexOf(this.id) + 1,
      status,
      title: TITLES[this.id],
      sentence: this.failures[0]?.sentence ?? this.sentence ?? PASS.notReached(),
      failures: this.failures,
    };
    if (status === 'unchecked' && this.code !== undefined) check.code = this.code;
    return check;
  }
}

/** What every check reads and adds to. */
interface Ctx {
  bundle: EvidenceBundle;
  options: VerifyOptions;
  c: Record<CheckId, CheckBuilder>;
  notes: Note[];
  batchById: Map<number, BundleBatch>;
  items: Item[];
  lifecycleItems: LifecycleItem[];
  /** Items with a usable statement, and those of them that are not duplicates. */
  usable: UsableItem[];
  unique: UsableItem[];
  deviceKeyOk: boolean;
  deviceKid: Uint8Array;
  spans: KeySpan[];
  keys: KeySummary[];
  keyIds: string[];
  otherDevices: string[];
  /** The ingest key the receipts and ingest-signed lifecycle statements are judged with (the policy's when listed). */
  ingest: { publicKey: Uint8Array; kid: Uint8Array; ok: boolean; entry?: IngestKeyEntry };
  /** Batch ids named by entries or lifecycle items, ascending. */
  usedBatchIds: number[];
  anchors: AnchorSummary[];
  /** Block time (s) and number per batch, as confirmed on chain in check 7. */
  confirmed: Map<number, { blockTime: number; blockNumber: number; operators: string[] }>;
  /** Anchor target of the policy per batch (check 7 picks it; check 11 reports it). */
  targets: Map<number, EvmAnchorTarget | undefined>;
  /** Bodies of the bundle's `caught` statements whose statement and digest verified (check 4), for check 9. */
  caughtBodies: VerifiedBody[];
  /** hashLeaf of statements as parseBundleBytes computed them (verifyBundleBytes only: bytes nobody changed). */
  leafHashes: Map<Uint8Array, Uint8Array> | undefined;
}

const hex0x = (b: Uint8Array): string => `0x${toHex(b)}`;

function codeOf(err: unknown): string | undefined {
  return err instanceof SteleError ? err.code : undefined;
}

async function safeVerify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean> {
  try {
    return await verifyEs256(publicKey, message, signature);
  } catch {
    return false;
  }
}

function validKey(publicKey: Uint8Array): boolean {
  try {
    assertP256PublicKey(publicKey);
    return true;
  } catch {
    return false;
  }
}

/** Runs every check of FORMAT.md §9 on a bundle that passed `parseBundle`. Never throws on bad evidence. */
export async function verifyBundle(bundle: EvidenceBundle, options: VerifyOptions = {}): Promise<Verdict> {
  return (await runChecks(bundle, options)).verdict;
}

/**
 * The verdict, and the readings check 3 decoded (bodies whose digest is the signed one), by entry, so that a
 * caller drawing them (the web page's chart) does not decode them again.
 */
export async function runChecks(
  bundle: EvidenceBundle,
  options: VerifyOptions,
  leafHashes?: Map<Uint8Array, Uint8Array>,
): Promise<{ verdict: Verdict; readings: Map<BundleEntry, Reading>; bodies: VerifiedBody[] }> {
  const deviceKeyOk = validKey(bundle.device.publicKey);
  const ctx: Ctx = {
    bundle,
    options,
    c: Object.fromEntries(ORDER.map((id) => [id, new CheckBuilder(id)])) as Record<CheckId, CheckBuilder>,
    notes: [],
    batchById: new Map(bundle.batches.map((b) => [b.batchId, b])),
    items: [],
    lifecycleItems: [],
    usable: [],
    unique: [],
    deviceKeyOk,
    // keyIdOf validates the key; for an invalid one (reported in check 2) use the plain digest so checks go on.
    deviceKid: deviceKeyOk ? keyIdOf(bundle.device.publicKey) : sha256(bundle.device.publicKey),
    spans: [],
    keys: [],
    keyIds: [],
    otherDevices: [],
    ingest: ingestKeyOf(bundle, options.trust),
    usedBatchIds: [],
    anchors: [],
    confirmed: new Map(),
    targets: new Map(),
    caughtBodies: [],
    leafHashes,
  };
  const timings = options.timings;
  let mark = performance.now();
  const lap = (step: string): void => {
    const now = performance.now();
    if (timings !== undefined) timings[step] = (timings[step] ?? 0) + now - mark;
    mark = now;
  };
  checkFormat(ctx);
  lap('format');
  await checkEnrolment(ctx);
  lap('rest');
  await checkSignatures(ctx);
  lap('signatures');
  checkCompleteness(ctx);
  await checkCaught(ctx);
  lap('rest');
  await checkInclusionReceiptRecordedRoot(ctx);
  lap('inclusion');
  await checkAnchor(ctx);
  checkTime(ctx);
  const alert = checkAlert(ctx);
  checkFlags(ctx);
  checkTrust(ctx);

  const summary: Summary = {
    readings: bundle.entries.length,
    bodies: bundle.entries.filter((e) => e.reading !== undefined).length,
    firstSeq: bundle.window.firstSeq,
    lastSeq: bundle.window.lastSeq,
    batches: bundle.batches.length,
    devices: [bundle.device.deviceId, ...ctx.otherDevices],
    keyIds: ctx.keyIds,
    keys: ctx.keys,
    ingestKeyId: toBase64Url(bundle.ingest.kid),
    anchors: ctx.anchors,
    trust: trustSummary(ctx),
    ...(alert === undefined ? {} : { alert }),
  };
  lap('rest');
  const readings = new Map<BundleEntry, Reading>();
  for (const item of ctx.items) if (item.reading !== undefined) readings.set(item.entry, item.reading);
  return { verdict: assemble(ORDER.map((id) => ctx.c[id].build()), foldNotes(ctx.notes), summary), readings, bodies: verifiedBodies(ctx) };
}

/** The ingest key to judge with: the policy's entry for the bundle's key id when it has one. */
function ingestKeyOf(bundle: EvidenceBundle, trust: TrustPolicy | undefined): Ctx['ingest'] {
  const ok = validKey(bundle.ingest.publicKey);
  const kid = ok ? keyIdOf(bundle.ingest.publicKey) : sha256(bundle.ingest.publicKey);
  const entry = trust?.ingestKeys.find((k) => equalBytes(k.kid, kid));
  if (entry !== undefined) return { publicKey: entry.publicKey, kid: entry.kid, ok: true, entry };
  return { publicKey: bundle.ingest.publicKey, kid, ok };
}

// ---- 1. Bundle format (FORMAT.md §9 check 1) ------------------------------------------------------------------

/** Decodes every statement and receipt (entries and lifecycle items); marks duplicates. */
function checkFormat(ctx: Ctx): void {
  const { c, bundle } = ctx;
  const seenStatements = new Set<string>();
  const duplicates: number[] = [];
  for (const [index, entry] of bundle.entries.entries()) {
    const path = `$.entries[${index}]`;
    const item: Item = { index, entry, path, duplicate: false };
    ctx.items.push(item);
    try {
      const st = parseStatement(entry.statement);
      if (st.seq !== entry.seq) {
        c.format.fail('BUNDLE_FORMAT_ERROR', FAIL.entrySeqLabel(entry.seq, st.seq, `${path}.seq`), {
          seq: entry.seq, path: `${path}.seq`, expected: String(st.seq), actual: String(entry.seq),
        });
      } else {
        item.statement = st;
        // The leaf hash (checks 5-7 need it anyway) identifies the statement bytes as well as their SHA-256 would.
        item.leafHash = ctx.leafHashes?.get(entry.statement) ?? hashLeaf(entry.statement);
        const key = toHex(item.leafHash);
        item.duplicate = seenStatements.has(key);
        seenStatements.add(key);
        if (item.duplicate) duplicates.push(entry.seq);
      }
    } catch (err) {
      c.format.fail('BUNDLE_FORMAT_ERROR', FAIL.entryFormat(entry.seq, 'statement', `${path}.statement`), {
        seq: entry.seq, path: `${path}.statement`, ...(codeOf(err) ? { actual: codeOf(err)! } : {}),
      });
    }
    try {
      item.receipt = parseReceipt(entry.receipt);
    } catch (err) {
      c.format.fail('BUNDLE_FORMAT_ERROR', FAIL.entryFormat(entry.seq, 'receipt', `${path}.receipt`), {
        seq: entry.seq, path: `${path}.receipt`, ...(codeOf(err) ? { actual: codeOf(err)! } : {}),
      });
    }
  }
  // One note for all duplicates (a bundle of 57,000 copies must not print 57,000 lines).
  if (duplicates.length > 0) ctx.notes.push({ id: 'duplicate-entry', sentence: NOTE.duplicateEntries(duplicates.length, duplicates.slice(0, 5)) });
  for (const [index, entry] of (bundle.lifecycle ?? []).entries()) {
    const path = `$.lifecycle[${index}]`;
    const item: LifecycleItem = { index, entry, path };
    ctx.lifecycleItems.push(item);
    try {
      item.statement = parseLifecycleStatement(entry.statement);
    } catch (err) {
      c.format.fail('BUNDLE_FORMAT_ERROR', FAIL.lifecycleFormat(index + 1, 'statement', `${path}.statement`), {
        path: `${path}.statement`, ...(codeOf(err) ? { actual: codeOf(err)! } : {}),
      });
    }
    try {
      item.receipt = parseReceipt(entry.receipt);
    } catch (err) {
      c.format.fail('BUNDLE_FORMAT_ERROR', FAIL.lifecycleFormat(index + 1, 'receipt', `${path}.receipt`), {
        path: `${path}.receipt`, ...(codeOf(err) ? { actual: codeOf(err)! } : {}),
      });
    }
  }
  ctx.usable = ctx.items.filter((i): i is UsableItem => i.statement !== undefined);
  ctx.unique = ctx.usable.filter((i) => !i.duplicate);
  ctx.usedBatchIds = [...new Set([...ctx.items.map((i) => i.entry.batchId), ...ctx.lifecycleItems.map((i) => i.entry.batchId)])].sort((a, b) => a - b);
  c.format.sentence = PASS.format();
}

// ---- 2. Device enrolment and key validity (§9 check 2, §13.5) -------------------------------------------------

async function checkEnrolment(ctx: Ctx): Promise<void> {
  const { c, bundle, notes, deviceKid } = ctx;
  if (!ctx.deviceKeyOk) c.enrolment.fail('UNKNOWN_KEY_ERROR', FAIL.badPublicKey('device'));
  else if (!equalBytes(deviceKid, bundle.device.kid)) {
    c.enrolment.fail('UNKNOWN_KEY_ERROR', FAIL.keyIdNotOfKey('device'), { expected: toHex(deviceKid), actual: toHex(bundle.device.kid) });
  }
  // The key timeline (FORMAT.md §13.5). Without lifecycle data (bundles made before it existed) the record's key
  // is the only key, valid from seq 1 and never revoked as far as the bundle can tell (a note says so).
  let enrolment: ParsedLifecycle | undefined;
  if (bundle.lifecycle === undefined) {
    ctx.spans = [{ kid: deviceKid, publicKey: bundle.device.publicKey, backend: bundle.device.keyBackend, from: 1, via: 'record' }];
  } else {
    const timeline = await buildKeyTimeline(bundle.device.deviceId, ctx.ingest.publicKey, ctx.lifecycleItems.map((i) => i.statement));
    ctx.spans = timeline.spans;
    for (const p of timeline.problems) {
      c.enrolment.fail(p.code, FAIL.lifecycleRejected(p.index + 1, p.type, p.reason, p.code, p.seq), {
        path: `$.lifecycle[${p.index}]`, ...(p.seq !== undefined ? { seq: p.seq } : {}), actual: p.kid,
      });
    }
    // The record in `device` must be one that ingest logged an enrolment statement for.
    const span = ctx.spans.find((sp) => sp.via === 'enrolment' && equalBytes(sp.kid, deviceKid));
    if (span === undefined) c.enrolment.fail('UNKNOWN_KEY_ERROR', FAIL.recordNotEnrolled(), { expected: toHex(deviceKid) });
    else {
      enrolment = ctx.lifecycleItems.find(
        (li, i) => timeline.applied[i] === true && li.statement?.body.type === 'enrolment' && equalBytes(li.statement.body.kid, deviceKid),
      )?.statement;
      // Everything said about the device comes from the signed statement; an unsigned field that differs is an edit.
      if (span.backend !== bundle.device.keyBackend) {
        c.enrolment.fail('DEVICE_RECORD_MISMATCH_ERROR', FAIL.recordMismatch('keyBackend', span.backend, bundle.device.keyBackend), {
          path: '$.device.keyBackend', expected: span.backend, actual: bundle.device.keyBackend,
        });
      }
    }
  }
  const signedBy = new Map<string, number[]>();
  for (const item of ctx.unique) {
    const st = item.statement;
    const kid = toBase64Url(st.kid);
    if (!ctx.keyIds.includes(kid)) ctx.keyIds.push(kid);
    const span = findSpan(ctx.spans, st.kid);
    const status = keyStatusAt(span, st.seq);
    const seqs = signedBy.get(toHex(st.kid)) ?? [];
    seqs.push(st.seq);
    signedBy.set(toHex(st.kid), seqs);
    if (status === 'UNKNOWN_KEY_ERROR') {
      c.enrolment.fail(
        'UNKNOWN_KEY_ERROR',
        span === undefined ? FAIL.unknownKey(st.seq, toHex(st.kid)) : FAIL.keyNotYetValid(st.seq, toHex(st.kid), span.from),
        { seq: st.seq, expected: span === undefined ? toHex(deviceKid) : `seq >= ${span.from}`, actual: toHex(st.kid) },
      );
    } else if (status === 'KEY_REVOKED_ERROR') {
      c.enrolment.fail('KEY_REVOKED_ERROR', FAIL.keyRevoked(st.seq, toHex(st.kid), span!.revokedAfter!), {
        seq: st.seq, expected: `seq <= ${span!.revokedAfter!}`, actual: toHex(st.kid),
      });
    } else if (status === 'KEY_ROTATED_ERROR') {
      c.enrolment.fail('KEY_ROTATED_ERROR', FAIL.keyRotated(st.seq, toHex(st.kid), span!.until!), {
        seq: st.seq, expected: `seq <= ${span!.until!}`, actual: toHex(st.kid),
      });
    }
    if (st.device !== bundle.device.deviceId) {
      if (!ctx.otherDevices.includes(st.device)) ctx.otherDevices.push(st.device);
      c.enrolment.fail('UNKNOWN_KEY_ERROR', FAIL.otherDevice(st.seq, st.device, bundle.device.deviceId), {
        seq: st.seq, expected: bundle.device.deviceId, actual: st.device,
      });
    }
  }
  const attestations = bundle.lifecycle === undefined ? new Map<string, KeyAttestation>() : await judgeAttestations(ctx);
  ctx.keys = ctx.spans.map((sp) => {
    const att = attestations.get(toHex(sp.kid));
    const k: KeySummary = { kid: toBase64Url(sp.kid), backend: sp.backend, attested: att !== undefined, via: sp.via, from: sp.from, signed: runsOf(signedBy.get(toHex(sp.kid)) ?? []) };
    if (att !== undefined) k.attestation = att;
    if (sp.until !== undefined) k.until = sp.until;
    if (sp.revokedAfter !== undefined) k.revokedAfter = sp.revokedAfter;
    return k;
  });
  // The sentence says only what signed statements say: device id (sub), enrolment time and backend from the
  // enrolment statement; a key is "attested" only with a TPM2_Certify that chains to a policy root (FORMAT.md
  // §14.5), else its backend is "declared".
  const backend: KeyBackend = ctx.spans.find((sp) => equalBytes(sp.kid, deviceKid))?.backend ?? bundle.device.keyBackend;
  const claimOf = (kid: Uint8Array, b: KeyBackend): Text => {
    const att = attestations.get(toHex(kid));
    return att === undefined ? declared(b) : attestedClaim(b, att.rootName, att.test);
  };
  const enrolledAt = enrolment?.body.type === 'enrolment' ? enrolment.body.time : undefined;
  c.enrolment.sentence =
    ctx.spans.length <= 1
      ? PASS.enrolment(bundle.device.deviceId, enrolledAt, claimOf(deviceKid, backend), bundle.lifecycle !== undefined)
      : PASS.enrolmentKeys(bundle.device.deviceId, enrolledAt, ctx.spans.map((sp) => ({ kid: toHex(sp.kid), from: sp.from, claim: claimOf(sp.kid, sp.backend), ...(sp.until !== undefined ? { until: sp.until } : {}) })));
  if (backend === 'software' || ctx.spans.some((sp) => sp.backend === 'software' && sp.via === 'rotation')) {
    notes.push({ id: 'software-key', sentence: NOTE.softwareKey() });
  }
  if (bundle.lifecycle === undefined) notes.push({ id: 'revocation-unchecked', sentence: NOTE.revocationUnchecked() });
  else {
    for (const sp of ctx.spans) {
      if (sp.via === 'rotation') notes.push({ id: 'key-rotated', sentence: NOTE.keyRotated(toHex(sp.kid), sp.from - 1) });
      if (sp.revokedAfter !== undefined) notes.push({ id: 'key-revoked', sentence: NOTE.keyRevoked(toHex(sp.kid), sp.revokedAfter) });
    }
    for (const li of ctx.lifecycleItems) {
      if (li.statement?.body.type === 'reinstall') notes.push({ id: 'agent-reinstalled', sentence: NOTE.reinstalled(li.statement.seq!) });
    }
    notes.push({ id: 'lifecycle-as-exported', sentence: NOTE.lifecycleAsExported(bundle.createdAt) });
  }
}

/**
 * Key attestation (FORMAT.md §14.5). An enrolment item may carry the enrolment request file; it must hash to the
 * statement's `request` and name the same device and key (else DEVICE_RECORD_MISMATCH_ERROR: an edited bundle).
 * The key counts as attested when the request checks (core's one enrolment check), its attestation is a
 * TPM2_Certify of that key, and its EK certificate chains to a usable `attestationRoots` entry of the policy
 * whose window holds the enrolment time (ingest clock); a test root only with `testAttestationRoots`. Anything
 * less leaves the key declared, with a note saying why.
 */
async function judgeAttestations(ctx: Ctx): Promise<Map<string, KeyAttestation>> {
  const { c, bundle, notes } = ctx;
  const out = new Map<string, KeyAttestation>();
  for (const li of ctx.lifecycleItems) {
    const request = li.entry.request;
    if (request === undefined) continue;
    const body = li.statement?.body;
    if (body?.type !== 'enrolment') {
      c.enrolment.fail('DEVICE_RECORD_MISMATCH_ERROR', FAIL.requestMismatch(li.index + 1, 'not an enrolment'), { path: `${li.path}.request` });
      continue;
    }
    if (!equalBytes(sha256(request), body.request)) {
      c.enrolment.fail('DEVICE_RECORD_MISMATCH_ERROR', FAIL.requestMismatch(li.index + 1, 'SHA-256'), {
        path: `${li.path}.request`, expected: toHex(body.request), actual: toHex(sha256(request)),
      });
      continue;
    }
    const span = ctx.spans.find((sp) => sp.via === 'enrolment' && equalBytes(sp.kid, body.kid));
    if (span === undefined) continue; // an enrolment the timeline did not apply: judged (and failed) above
    const kidHex = toHex(body.kid);
    const declaredWhy = (reason: string) => notes.push({ id: 'key-not-attested', sentence: NOTE.keyNotAttested(kidHex, reason) });
    let verified;
    try {
      verified = await verifyEnrolmentRequest(request);
    } catch (err) {
      declaredWhy(`${codeOf(err) ?? 'ENROLMENT_FORMAT_ERROR'}${(err as SteleError).where?.code ? ` (${String((err as SteleError).where!.code)})` : ''}`);
      continue;
    }
    if (verified.record.deviceId !== bundle.device.deviceId || verified.record.kid !== toBase64Url(body.kid) || verified.record.keyBackend !== body.backend) {
      c.enrolment.fail('DEVICE_RECORD_MISMATCH_ERROR', FAIL.requestMismatch(li.index + 1, 'device or key'), { path: `${li.path}.request` });
      continue;
    }
    const att = verified.request.attestation;
    if (att.kind !== TPM2_CERTIFY_KIND) {
      if (span.backend !== 'software') declaredWhy(att.kind === 'none' ? 'no attestation' : 'EK certificate without TPM2_Certify');
      continue;
    }
    const trust = ctx.options.trust;
    if (trust === undefined) {
      declaredWhy('TRUST_POLICY_MISSING');
      continue;
    }
    // The AK's credential activation is the installer's word (FORMAT.md §14.5): when the policy lists installer
    // keys, the one who countersigned must be among them, valid at the enrolment time.
    const installerKid = fromBase64UrlSafe(verified.installerKid);
    if (trust.installerKeys.length > 0 && !trust.installerKeys.some((k) => installerKid !== undefined && equalBytes(k.kid, installerKid) && keyValidAt(k, body.time) === 'valid')) {
      declaredWhy('ENROLMENT_INSTALLER_UNTRUSTED: the installer who countersigned is not in the policy\'s installerKeys');
      continue;
    }
    const usable = trust.attestationRoots.filter((r) => rootUsable(r, body.time));
    const roots = usable.filter((r) => !r.test || ctx.options.testAttestationRoots === true);
    try {
      const checked = await checkTpm2Certify(att, span.publicKey);
      const i = chainToRoot(checked, roots.map((r) => r.certificate));
      const root = roots[i]!;
      out.set(kidHex, { kind: 'tpm2-certify', root: root.path, rootName: root.name, test: root.test });
    } catch (err) {
      const code = codeOf(err) ?? 'ATTESTATION_FORMAT_ERROR';
      const testOnly = code === 'ATTESTATION_UNTRUSTED_ROOT' && roots.length < usable.length;
      declaredWhy(testOnly ? `${code}: only a test root (give --test-attestation-roots for a test)` : code);
    }
  }
  return out;
}

function fromBase64UrlSafe(text: string): Uint8Array | undefined {
  try {
    return fromBase64Url(text);
  } catch {
    return undefined;
  }
}

/** A policy attestation root that may vouch for an enrolment made at `timeMs` (ingest clock). */
function rootUsable(r: AttestationRoot, timeMs: number): boolean {
  if (r.state === 'compromised') return false;
  return r.validFrom <= timeMs && (r.validUntil === undefined || timeMs < r.validUntil);
}

// ---- 3. Signatures, and each body against its statement (§9 check 3) ------------------------------------------

async function checkSignatures(ctx: Ctx): Promise<void> {
  const { c, bundle, spans } = ctx;
  let hashOnly = 0;
  // Start every signature check at once: WebCrypto works them off in parallel (3,600 statements: 0.67 s awaited
  // one by one, 0.36 s together, Node 20 on the 2-core CI machine).
  const usableKey = new Map<KeySpan, boolean>(spans.map((sp) => [sp, validKey(sp.publicKey)]));
  await Promise.all([...spans.filter((sp) => usableKey.get(sp) === true).map((sp) => sp.publicKey), ...(ctx.deviceKeyOk ? [bundle.device.publicKey] : [])].map(prepareEs256Key));
  // The statements of a device-level batch (FORMAT.md §3.1) carry one signature over one Sig_structure (the
  // batch root): checked once for the run, as the last check is reused when key, signature and bytes are equal.
  const verifier = ctx.options.signatureVerifier ?? verifySignatureBatch;
  let last: { key: Uint8Array; st: ParsedStatement; slot: number } | undefined;
  /** Starts the checks of a chunk's unique statements; resolves when each has its answer in `signatureOk`. */
  const startChunk = (chunk: readonly UsableItem[]): Promise<void> => {
    const jobs: SignatureJob[] = [];
    // A run of a device-level batch that goes on into the next chunk is checked once more there (same answer).
    last = undefined;
    // Per item: the index of its job, or -1 when its key is unusable (then it fails without a check).
    const slots: [UsableItem, number][] = [];
    for (const item of chunk) {
      if (item.duplicate) continue;
      // The key the statement names, when the timeline knows it; else the record's key (which then fails).
      const span = findSpan(spans, item.statement.kid);
      const key = span?.publicKey ?? bundle.device.publicKey;
      const keyOk = span === undefined ? ctx.deviceKeyOk : usableKey.get(span) === true;
      const st = item.statement;
      if (!keyOk) {
        slots.push([item, -1]);
        continue;
      }
      if (last !== undefined && last.key === key && equalBytes(last.st.signature, st.signature) && equalBytes(last.st.toBeSigned, st.toBeSigned)) {
        slots.push([item, last.slot]);
        continue;
      }
      last = { key, st, slot: jobs.length };
      slots.push([item, jobs.length]);
      jobs.push({ publicKey: key, message: st.toBeSigned, signature: st.signature });
    }
    const answers = jobs.length === 0 ? Promise.resolve([] as boolean[]) : verifier(jobs).catch(() => jobs.map(() => false));
    return answers.then((ok) => {
      for (const [item, slot] of slots) signatureOk.set(item, slot >= 0 && ok[slot] === true);
    });
  };
  const signatureOk = new Map<Item, boolean>();
  // Bodies of duplicate entries are checked too: an identical statement must not smuggle in another body.
  const timeOf = new Map<Item, number>();
  // In chunks: the signature checks of a chunk start, then the previous chunk's are awaited, then this chunk's
  // bodies are hashed and decoded while WebCrypto (or the caller's verifier, in another worker) works on its
  // signatures. At most two chunks are in flight: 86,400 checks started at once took 2.5 times as long in
  // Chromium as the same checks in chunks.
  let previous: Promise<unknown> = Promise.resolve();
  for (let from = 0; from < ctx.usable.length; from += SIGNATURE_CHUNK) {
    const chunk = ctx.usable.slice(from, from + SIGNATURE_CHUNK);
    const started = startChunk(chunk);
    await previous;
    hashOnly += checkBodies(ctx, chunk, timeOf);
    previous = started;
  }
  await previous;
  // Signature failures in entry order; the sort below puts them first.
  for (const item of ctx.usable) {
    if (!item.duplicate && signatureOk.get(item) !== true) c.signatures.fail('SIGNATURE_ERROR', FAIL.signature(item.statement.seq, timeOf.get(item)), { seq: item.statement.seq });
  }
  // Signature failures first in this check: they are what §4.5 leads with.
  c.signatures.failures.sort((a, b) => rank(a.code) - rank(b.code) || (a.seq ?? 0) - (b.seq ?? 0));
  c.signatures.sentence = PASS.signatures(ctx.unique.length);
  if (hashOnly > 0) ctx.notes.push({ id: 'hash-only', sentence: NOTE.hashOnly(hashOnly) });
}

/** Each body against its statement (check 3): digest, decoding, header fields. Returns the hash-only count. */
function checkBodies(ctx: Ctx, items: readonly UsableItem[], timeOf: Map<Item, number>): number {
  let hashOnly = 0;
  for (const item of items) {
    const body = item.entry.reading;
    if (body === undefined) {
      if (!item.duplicate) hashOnly++;
      continue;
    }
    const reading = checkBody(ctx, item.statement, body, `${item.path}.reading`);
    if (reading === undefined) continue;
    item.reading = reading;
    timeOf.set(item, reading.time);
  }
  return hashOnly;
}

/**
 * A reading body against the statement that signs it (check 3): its digest, then its decoding, then the header
 * fields. The decoded reading when the digest is the signed one and it decodes (a header mismatch is a failure that
 * names its seq, so check 9 leaves it out). `where` is added to the failures of a body outside `entries`.
 */
function checkBody(ctx: Ctx, st: ParsedStatement, body: Uint8Array, bodyPath: string, where: { path?: string } = {}): Reading | undefined {
  const { c } = ctx;
  const bodyDigest = sha256(body);
  if (!equalBytes(bodyDigest, st.payload)) {
    // A changed body: say so even when it no longer decodes (that is what the change did).
    c.signatures.fail('DIGEST_MISMATCH_ERROR', FAIL.digest(st.seq), { seq: st.seq, expected: toHex(st.payload), actual: toHex(bodyDigest), ...where });
    return undefined;
  }
  try {
    const reading = decodeReading(body);
    // The digest matched above and the body decoded: what checkStatementAgainstReading would say is exactly
    // headerMismatch (same fields, same order), without hashing and decoding the body a second time.
    const field = headerMismatch(st, reading);
    if (field !== undefined) c.signatures.fail('HEADER_MISMATCH_ERROR', FAIL.header(st.seq, field), { seq: st.seq, ...where });
    return reading;
  } catch (err) {
    c.format.fail('BUNDLE_FORMAT_ERROR', FAIL.entryFormat(st.seq, 'reading', bodyPath), {
      seq: st.seq, path: bodyPath, ...(codeOf(err) ? { actual: codeOf(err)! } : {}),
    });
    return undefined;
  }
}

// ---- 4. Completeness: gaps, forks, chain links (§9 check 4) ---------------------------------------------------

function checkCompleteness(ctx: Ctx): void {
  const { c } = ctx;
  const { firstSeq, lastSeq } = ctx.bundle.window;
  // Chained lifecycle statements (rotation, reinstall) hold a seq of the chain like readings do (FORMAT.md §13.3).
  const bySeq = new Map<number, Link[]>();
  const addLink = (seq: number, link: Link): void => {
    const variants = bySeq.get(seq) ?? [];
    if (!variants.some((v) => equalBytes(v.digest, link.digest))) variants.push(link);
    bySeq.set(seq, variants);
  };
  for (const item of ctx.unique) {
    const st = item.statement;
    // Inside a device-level batch (index > 0) the statement carries no prev: the body's prev is the link when the
    // body is here and matches the signed digest (check 3 decoded it); hash-only, the signed tree order is.
    const link: Link = { digest: st.payload, prev: st.prev ?? item.reading?.prev, item };
    if (st.batch !== undefined) link.batch = { root: st.batch.root, index: st.batch.index };
    addLink(st.seq, link);
  }
  const labelled = new Set(ctx.items.map((i) => i.entry.seq)); // undecodable entries were reported in check 1
  for (const li of ctx.lifecycleItems) {
    const st = li.statement;
    if (st?.seq === undefined) continue;
    addLink(st.seq, { digest: st.digest, prev: st.prev! });
    labelled.add(st.seq);
  }
  const timeOf = (seq: number): number | undefined => bySeq.get(seq)?.find((v) => v.item?.reading)?.item?.reading?.time;
  // (a) Gaps: walk the seqs present, in order; the runs between them are missing. Cost: the entries, not the window.
  const present = [...labelled].filter((s) => s >= firstSeq && s <= lastSeq).sort((a, b) => a - b);
  const gap = (a: number, b: number): void => {
    c.completeness.fail('SEQUENCE_GAP_ERROR', FAIL.gap(a, b, timeOf(a - 1), timeOf(b + 1)), { seq: a, expected: a === b ? `${a}` : `${a}-${b}`, actual: 'missing' });
  };
  let next = firstSeq;
  for (const seq of present) {
    if (seq > next) gap(next, seq - 1);
    next = seq + 1;
  }
  if (next <= lastSeq) gap(next, lastSeq);
  // (b) forks and (c) links, over the seqs that have statements.
  const withStatements = [...bySeq.keys()].filter((s) => s >= firstSeq && s <= lastSeq).sort((a, b) => a - b);
  for (const seq of withStatements) {
    const variants = bySeq.get(seq)!;
    if (variants.length > 1) {
      c.completeness.fail('FORK_ERROR', FAIL.fork(seq, variants.length), { seq, expected: toHex(variants[0]!.digest), actual: toHex(variants[1]!.digest) });
    }
    const before: ChainLinkTo[] | undefined = seq === 1 ? [{ digest: GENESIS_PREV }] : bySeq.get(seq - 1);
    if (before === undefined) continue; // seq - 1 outside the window or missing (reported as a gap)
    for (const v of variants) {
      if (!before.some((w) => extendsChain(v, w))) {
        c.completeness.fail('CHAIN_LINK_ERROR', seq === 1 ? FAIL.genesis() : FAIL.chainLink(seq), {
          seq, expected: toHex(before[0]!.digest), actual: v.prev !== undefined ? toHex(v.prev) : 'not the next leaf of the device batch of seq - 1',
        });
      }
    }
  }
  c.completeness.sentence = PASS.completeness(firstSeq, lastSeq);
}

// ---- 4, continued: statements ingest caught and did not log (FORMAT.md §7 `caught`, §9 check 4 (d)) -----------

/**
 * Each statement of `caught` is one the device signed that ingest caught and did not log: a second statement for a
 * seq the bundle holds (a fork), or one ahead of the window after seqs ingest never received (a gap). It is checked
 * as a reading statement is (key valid at its seq, signature, body digest and header); one that holds proves the
 * fork (FORK_ERROR) or the missing seqs (SEQUENCE_GAP_ERROR), and its body joins the readings check 9 recomputes from.
 */
async function checkCaught(ctx: Ctx): Promise<void> {
  const caught = ctx.bundle.caught;
  if (caught === undefined) return;
  const { c } = ctx;
  const { firstSeq, lastSeq } = ctx.bundle.window;
  const loggedAt = new Map<number, UsableItem>();
  for (const item of ctx.unique) if (!loggedAt.has(item.statement.seq)) loggedAt.set(item.statement.seq, item);
  for (const [i, f] of caught.entries()) {
    const path = `$.caught[${i}]`;
    const notEvidence = (detail: string, where: string): void => c.format.fail('BUNDLE_FORMAT_ERROR', FAIL.caughtEntry(i + 1, detail, where), { path: where });
    let st: ParsedStatement;
    try {
      st = parseStatement(f.statement);
    } catch (err) {
      notEvidence(`the statement does not decode${codeOf(err) === undefined ? '' : `: ${codeOf(err)!}`}`, `${path}.statement`);
      continue;
    }
    const logged = loggedAt.get(st.seq);
    const ahead = st.seq > lastSeq + 1;
    if (!ahead && (st.seq < firstSeq || logged === undefined)) {
      notEvidence(`seq ${st.seq} is neither a seq of the bundle's entries nor ahead of its window after a gap`, `${path}.statement`);
      continue;
    }
    if (logged !== undefined && equalBytes(st.payload, logged.statement.payload)) {
      notEvidence(`the same reading as the entry of seq ${st.seq}`, `${path}.statement`);
      continue;
    }
    const span = findSpan(ctx.spans, st.kid);
    const status = keyStatusAt(span, st.seq);
    if (status !== 'valid' || !validKey(span!.publicKey)) {
      c.enrolment.fail(status === 'valid' ? 'UNKNOWN_KEY_ERROR' : status, FAIL.signature(st.seq, undefined), { seq: st.seq, path: `${path}.statement` });
      continue;
    }
    let signed = false;
    try {
      signed = await verifyStatementSignature(st, span!.publicKey);
    } catch {
      signed = false;
    }
    if (!signed) {
      c.signatures.fail('SIGNATURE_ERROR', FAIL.signature(st.seq, undefined), { seq: st.seq, path: `${path}.statement` });
      continue;
    }
    if (ahead) {
      // The device signed seq st.seq: it made every seq before it, and the ones after the window never arrived.
      const [a, b] = [lastSeq + 1, st.seq - 1];
      c.completeness.fail('SEQUENCE_GAP_ERROR', FAIL.caughtGap(a, b, st.seq), { seq: a, expected: a === b ? `${a}` : `${a}-${b}`, actual: 'never received', path });
    } else {
      c.completeness.fail('FORK_ERROR', FAIL.forkCaught(st.seq), { seq: st.seq, expected: toHex(logged!.statement.payload), actual: toHex(st.payload), path });
    }
    if (f.reading === undefined) continue;
    const reading = checkBody(ctx, st, f.reading, `${path}.reading`, { path: `${path}.reading` });
    if (reading !== undefined) ctx.caughtBodies.push({ seq: st.seq, reading });
  }
}

// ---- 5, 6, 7 offline: inclusion, receipt, signed root vs recorded root (the decision table) --------------------

async function checkInclusionReceiptRecordedRoot(ctx: Ctx): Promise<void> {
  const { c, bundle, batchById } = ctx;
  const ingestKid = ctx.ingest.kid;
  if (!ctx.ingest.ok) c.receipt.fail('UNKNOWN_KEY_ERROR', FAIL.badPublicKey('ingest'));
  else if (!equalBytes(ingestKid, bundle.ingest.kid)) {
    c.receipt.fail('UNKNOWN_KEY_ERROR', FAIL.keyIdNotOfKey('ingest'), { expected: toHex(ingestKid), actual: toHex(bundle.ingest.kid) });
  }
  const sigCache = new Map<string, Promise<boolean>>();
  // The receipts of one batch share their protected header and signature, and usually their root: the last
  // look-up is compared bytewise before the hex key is built.
  let last: { r: ParsedReceipt; root: Uint8Array; p: Promise<boolean> } | undefined;
  const receiptSigOver = (r: ParsedReceipt, root: Uint8Array): Promise<boolean> => {
    if (!ctx.ingest.ok) return Promise.resolve(false);
    if (last !== undefined && equalBytes(last.root, root) && equalBytes(last.r.signature, r.signature) && equalBytes(last.r.protectedBytes, r.protectedBytes)) {
      return last.p;
    }
    const key = `${toHex(r.protectedBytes)}|${toHex(r.signature)}|${toHex(root)}`;
    let p = sigCache.get(key);
    if (p === undefined) {
      p = safeVerify(ctx.ingest.publicKey, sigStructure1(r.protectedBytes, root), r.signature);
      sigCache.set(key, p);
    }
    last = { r, root, p };
    return p;
  };
  const anchorMismatchOffline = new Set<number>();
  let receiptUnassessed = 0;
  const leaves: Leaf[] = [];
  for (const item of ctx.items) {
    if (item.statement === undefined || item.receipt === undefined) continue;
    leaves.push({ subject: item.statement.seq, seq: item.statement.seq, batchId: item.entry.batchId, statementBytes: item.entry.statement, leafHash: item.leafHash!, receipt: item.receipt });
  }
  for (const li of ctx.lifecycleItems) {
    if (li.statement === undefined || li.receipt === undefined) continue;
    const leaf: Leaf = { subject: { lifecycle: li.index + 1, type: li.statement.body.type }, batchId: li.entry.batchId, statementBytes: li.entry.statement, receipt: li.receipt };
    if (li.statement.seq !== undefined) leaf.seq = li.statement.seq;
    leaves.push(leaf);
  }
  // The receipts must name the bundle's issuer; check 11 then matches (issuer, key id) with the policy as one entry.
  const issuer = bundle.ingest.issuer;
  // First every root (R of the decision table) and every signature check R needs, started together so that
  // WebCrypto works them off concurrently; then the table, leaf by leaf in bundle order, as before.
  const roots = rootsOf(leaves);
  const signedRs = leaves.map((leaf, i) => {
    const root = roots[i];
    const batch = batchById.get(leaf.batchId)!;
    if (leaf.receipt.batchId !== batch.batchId || root === undefined || !equalBytes(leaf.receipt.kid, ingestKid)) return undefined;
    return receiptSigOver(leaf.receipt, root);
  });
  for (const [i, leaf] of leaves.entries()) {
    const r = leaf.receipt;
    const subject = leaf.subject;
    const at = leaf.seq === undefined ? {} : { seq: leaf.seq };
    const batch = batchById.get(leaf.batchId)!; // parseBundle guarantees it is listed
    if (r.batchId !== batch.batchId) {
      c.inclusion.fail('INCLUSION_PROOF_ERROR', FAIL.inclusionOtherBatch(subject, batch.batchId, r.batchId), {
        ...at, batchId: batch.batchId, expected: String(batch.batchId), actual: String(r.batchId),
      });
      receiptUnassessed++;
      continue;
    }
    const root = roots[i];
    if (root === undefined) {
      c.inclusion.fail('INCLUSION_PROOF_ERROR', FAIL.inclusionMalformed(subject, batch.batchId), { ...at, batchId: batch.batchId });
      receiptUnassessed++;
      continue;
    }
    const atRecorded = equalBytes(root, batch.root);
    if (!equalBytes(r.kid, ingestKid)) {
      c.receipt.fail('RECEIPT_SIGNATURE_ERROR', FAIL.receiptOtherKey(subject, toHex(r.kid)), {
        ...at, batchId: batch.batchId, expected: toHex(ingestKid), actual: toHex(r.kid),
      });
      if (!atRecorded) {
        c.inclusion.fail('INCLUSION_PROOF_ERROR', FAIL.inclusion(subject, batch.batchId), { ...at, batchId: batch.batchId, expected: toHex(batch.root), actual: toHex(root) });
      }
      continue;
    }
    const signedR = await signedRs[i]!;
    if (atRecorded) {
      if (!signedR) {
        c.receipt.fail('RECEIPT_SIGNATURE_ERROR', FAIL.receiptSignature(subject, toHex(ingestKid)), { ...at, batchId: batch.batchId });
      } else if (r.proof.treeSize !== batch.size && !anchorMismatchOffline.has(batch.batchId)) {
        anchorMismatchOffline.add(batch.batchId);
        c.anchor.fail('ANCHOR_MISMATCH_ERROR', FAIL.anchorSigned(batch.batchId), { batchId: batch.batchId, expected: String(r.proof.treeSize), actual: String(batch.size) });
      }
    } else if (signedR) {
      if (!anchorMismatchOffline.has(batch.batchId)) {
        anchorMismatchOffline.add(batch.batchId);
        c.anchor.fail('ANCHOR_MISMATCH_ERROR', FAIL.anchorSigned(batch.batchId), { batchId: batch.batchId, expected: toHex(root), actual: toHex(batch.root) });
      }
    } else {
      c.inclusion.fail('INCLUSION_PROOF_ERROR', FAIL.inclusion(subject, batch.batchId), { ...at, batchId: batch.batchId, expected: toHex(batch.root), actual: toHex(root) });
      if (!(await receiptSigOver(r, batch.root))) receiptUnassessed++;
    }
    if (signedR && r.issuer !== issuer) {
      c.receipt.fail('RECEIPT_SIGNATURE_ERROR', FAIL.receiptOtherIssuer(subject, r.issuer), { ...at, batchId: batch.batchId, expected: issuer, actual: r.issuer });
    }
  }
  c.inclusion.sentence = PASS.inclusion(ctx.unique.length, ctx.usedBatchIds.length);
  c.receipt.sentence = PASS.receipt(issuer, toHex(ingestKid));
  if (receiptUnassessed > 0) c.receipt.open(PASS.receiptNotReached());
}

// ---- 7. On-chain anchor (§9 check 7) ---------------------------------------------------------------------------

/** One endpoint to ask for a batch, and the operator it counts for. */
interface Endpoint {
  url: string | undefined;
  operator: string;
}

/** The endpoints for a batch, and the quorum of operators (see the file comment). */
function endpointsFor(ctx: Ctx, ref: AnchorRef, target: EvmAnchorTarget | undefined): { endpoints: Endpoint[]; quorum: number } {
  const officer = ctx.options.rpcUrls ?? [];
  if (officer.length > 0) return { endpoints: officer.map((url) => ({ url, operator: url })), quorum: 1 };
  if (target !== undefined && target.endpoints.length > 0) return { endpoints: target.endpoints.map((e) => ({ url: e.url, operator: e.operator })), quorum: target.quorum };
  if (ctx.options.useBundleRpc === true && ref.rpc !== undefined) return { endpoints: [{ url: ref.rpc, operator: ref.rpc }], quorum: 1 };
  return { endpoints: [{ url: undefined, operator: '(anchor reader)' }], quorum: 1 };
}

async function checkAnchor(ctx: Ctx): Promise<void> {
  const { c, options, notes } = ctx;
  const jobs: { batchId: number; batch: BundleBatch; ref: AnchorRef; endpoints: Endpoint[]; quorum: number; summary: AnchorSummary }[] = [];
  for (const batchId of ctx.usedBatchIds) {
    const batch = ctx.batchById.get(batchId)!;
    const summary: AnchorSummary = { batchId, size: batch.size, root: hex0x(batch.root), confirmedBy: [] };
    ctx.anchors.push(summary);
    const ref = batch.anchor;
    if (ref === undefined) {
      notes.push({ id: 'not-anchored', sentence: NOTE.notAnchored(batchId) });
      c.anchor.open(PASS.anchorMissing(batchId));
      continue;
    }
    Object.assign(summary, { chainId: ref.chainId, contract: ref.contract, txHash: ref.txHash, blockNumber: ref.blockNumber, blockTime: ref.blockTime });
    // The policy's target for this chain and contract (check 11 fails the batch when there is none).
    const target = options.trust?.anchors.find((t) => t.chainId === ref.chainId && t.contract === ref.contract.toLowerCase());
    ctx.targets.set(batchId, target);
    if (options.anchorReader === undefined) {
      c.anchor.open(PASS.anchorOffline());
      continue;
    }
    jobs.push({ batchId, batch, ref, ...endpointsFor(ctx, ref, target), summary });
  }
  if (options.anchorReader === undefined || jobs.length === 0) {
    finishAnchorSentence(ctx);
    return;
  }
  // All batches at once (up to `chainConcurrency` in flight), under one deadline for the lot.
  const reader = options.anchorReader;
  const deadline = new Promise<'deadline'>((resolve) => {
    const t = setTimeout(() => resolve('deadline'), options.chainDeadlineMs ?? DEFAULT_CHAIN_DEADLINE_MS);
    (t as { unref?: () => void }).unref?.();
  });
  const results: Answer[][] = new Array(jobs.length);
  let nextJob = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (nextJob < jobs.length) {
      const i = nextJob++;
      const job = jobs[i]!;
      results[i] = await askAll(reader, job.ref, job.batch, job.endpoints, deadline);
      options.onProgress?.({ done: ++done, total: jobs.length });
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(options.chainConcurrency ?? 4, jobs.length)) }, worker));
  // Judged in batch order, so the verdict does not depend on which answer came first.
  jobs.forEach((job, i) => {
    const answers = results[i]!;
    const answered = answers.filter((a) => a.kind !== 'unreachable');
    if (answered.length === 0) {
      // No endpoint named anywhere and the reader could not find one itself: that is "offline", not "unreachable".
      c.anchor.open(job.endpoints.length === 1 && job.endpoints[0]!.url === undefined ? PASS.anchorOffline() : PASS.anchorUnreachable(answers[0]!.url));
      return;
    }
    const first = answered[0]!;
    const other = answered.find((a) => a.fingerprint !== first.fingerprint);
    if (other !== undefined) {
      c.anchor.open(PASS.anchorDisagree(first.url, other.url));
      return;
    }
    for (const a of answers) if (a.kind === 'unreachable') notes.push({ id: 'rpc-unreachable', sentence: NOTE.rpcUnreachable(a.url) });
    if (first.kind === 'match') {
      const operators = [...new Set(answered.map((a) => a.operator))];
      if (operators.length < job.quorum) {
        c.anchor.open(PASS.anchorQuorum(job.batchId, operators.length, job.quorum));
        return;
      }
      job.summary.confirmedBy = answered.map((a) => a.url);
      job.summary.blockNumber = first.facts!.blockNumber;
      job.summary.blockTime = first.facts!.blockTime;
      ctx.confirmed.set(job.batchId, { blockTime: first.facts!.blockTime, blockNumber: first.facts!.blockNumber, operators });
    } else if (first.kind === 'notfound') {
      c.anchor.fail('ANCHOR_NOT_FOUND_ERROR', FAIL.anchorNotFound(job.batchId, job.ref.txHash, first.url), { batchId: job.batchId, expected: job.ref.txHash });
    } else {
      c.anchor.fail('ANCHOR_MISMATCH_ERROR', FAIL.anchorChain(job.batchId, first.field ?? 'chainId', job.ref.chainId), {
        batchId: job.batchId, ...(first.expected !== undefined ? { expected: first.expected } : {}), ...(first.actual !== undefined ? { actual: first.actual } : {}),
      });
    }
  });
  finishAnchorSentence(ctx);
}

function finishAnchorSentence(ctx: Ctx): void {
  const { c, anchors } = ctx;
  if (c.anchor.status === 'unchecked') return;
  const only = anchors.length === 1 ? anchors[0] : undefined;
  c.anchor.sentence =
    only !== undefined && only.txHash !== undefined
      ? PASS.anchorOne(only.chainId!, only.txHash, only.blockNumber!, only.blockTime!)
      : PASS.anchorMany(anchors.length, anchors[0]?.chainId ?? 0);
}

// ---- 8. Time bounds (§9 check 8, §8) ---------------------------------------------------------------------------

function checkTime(ctx: Ctx): void {
  const { c } = ctx;
  const tolS = ctx.options.timeToleranceS ?? DEFAULT_TIME_TOLERANCE_S;
  const bodies = ctx.unique.filter((i) => i.reading !== undefined);
  const unsynced = bodies.filter((i) => !i.reading!.clock.synced);
  const bounded = bodies.filter((i) => i.reading!.clock.synced);
  let unconfirmed = false;
  let latest = 0;
  for (const item of bounded) {
    const blockTime = ctx.confirmed.get(item.entry.batchId)?.blockTime;
    if (blockTime === undefined) {
      unconfirmed = true;
      continue;
    }
    latest = Math.max(latest, blockTime);
    const time = item.reading!.time;
    if (time > (blockTime + tolS) * 1000) {
      c.time.fail('TIME_BOUND_ERROR', FAIL.timeBound(item.statement.seq, time, item.entry.batchId, blockTime), {
        seq: item.statement.seq, batchId: item.entry.batchId, expected: `<= ${(blockTime + tolS) * 1000}`, actual: String(time),
      });
    }
  }
  if (unsynced.length > 0) ctx.notes.push({ id: 'clock-unsynced', sentence: NOTE.clockUnsynced(unsynced.length, unsynced[0]!.statement.seq) });
  if (bounded.length === 0) {
    c.time.status = 'not-applicable';
    // Every sentence must be true of the bundle: bodies present but none from a synced clock is not "no bodies".
    c.time.sentence = bodies.length === 0 ? PASS.timeNoBodies() : PASS.timeNoSynced(bodies.length);
  } else if (unconfirmed) c.time.open(PASS.timeUnconfirmed());
  else c.time.sentence = PASS.time(latest);
}

// ---- 9. Alert (§9 check 9) ------------------------------------------------------------------------------------

/**
 * Recomputes the bundle's alert (FORMAT.md §15.7) from the reading bodies that passed checks 3 and 4 (no failure
 * of check 2, 3 or 4 names their seq) and judges whether the bundle covers the alert's time window (§15.8); the
 * work is in alert-check.ts.
 */
function checkAlert(ctx: Ctx): Summary['alert'] {
  const { c } = ctx;
  const j = judgeBundleAlert(ctx.bundle.alert, ctx.bundle.window, verifiedBodies(ctx));
  for (const { code, sentence, ...detail } of j.failures) c.alert.fail(code, sentence, detail);
  if (j.status === 'unchecked') c.alert.open(j.sentence);
  else {
    if (j.status === 'not-applicable') c.alert.status = 'not-applicable';
    c.alert.sentence = j.sentence;
  }
  return j.summary;
}

/** The reading bodies check 9 recomputes from: those that passed checks 3 and 4 (no failure of 2, 3 or 4 names their seq). */
function verifiedBodies(ctx: Ctx): VerifiedBody[] {
  const { c } = ctx;
  // A fork does not unverify either reading of its seq: each is signed and whole, and the rules see both (§15.6).
  // (A gap a caught statement proves names lastSeq + 1, which holds no body.)
  const failedSeqs = new Set([...c.enrolment.failures, ...c.signatures.failures, ...c.completeness.failures].filter((f) => f.code !== 'FORK_ERROR').map((f) => f.seq));
  const logged = ctx.unique.filter((i) => i.reading !== undefined && !failedSeqs.has(i.statement.seq)).map((i) => ({ seq: i.statement.seq, reading: i.reading! }));
  return [...logged, ...ctx.caughtBodies.filter((b) => !failedSeqs.has(b.seq))];
}

// ---- 10. Data flags, informational (§9 check 10) --------------------------------------------------------------

function checkFlags(ctx: Ctx): void {
  const { c } = ctx;
  const bodies = ctx.unique.filter((i) => i.reading !== undefined);
  if (bodies.length === 0) {
    c.flags.status = 'not-applicable';
    c.flags.sentence = PASS.flagsNoBodies();
    return;
  }
  const flagged = new Map<string, number[]>();
  let measurements = 0;
  let noFlag = 0;
  for (const item of bodies) {
    for (const m of item.reading!.meas) {
      measurements++;
      if (m.flag === undefined) noFlag++;
      if (m.flag !== undefined && m.flag !== 'N') {
        const seqs = flagged.get(m.flag) ?? [];
        if (seqs[seqs.length - 1] !== item.statement.seq) seqs.push(item.statement.seq);
        flagged.set(m.flag, seqs);
      }
    }
  }
  // "All N" only when every measurement carries the flag N; a measurement without a flag is said to have none.
  if (flagged.size === 0) c.flags.sentence = noFlag === 0 ? PASS.flagsAllN(measurements) : PASS.flagsNoneOtherThanN(measurements, noFlag);
  else {
    const list = [...flagged.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .slice(0, 20)
      .map(([flag, seqs]) => `${flag} × ${seqs.length} (seq ${seqs.slice(0, 5).join(', ')}${seqs.length > 5 ? ', …' : ''})`)
      .join('; ');
    c.flags.sentence = PASS.flagsListed(list);
    ctx.notes.push({ id: 'data-flags', sentence: NOTE.dataFlags(list) });
  }
}

// ---- 11. Trust policy (§9 check 11, §14) ----------------------------------------------------------------------

/**
 * With a policy: the ingest key (with its issuer) and every anchor target must be listed; each batch's confirmed
 * block time must lie in the key's window (and before a compromise); an expired policy leaves the check open.
 * Without one: open, naming in full what was taken on the bundle's word.
 */
function checkTrust(ctx: Ctx): void {
  const { c, bundle } = ctx;
  const trust = ctx.options.trust;
  const anchored = ctx.usedBatchIds.map((id) => ctx.batchById.get(id)!).filter((b) => b.anchor !== undefined);
  const targets = [...new Map(anchored.map((b) => [`${b.anchor!.chainId}|${b.anchor!.contract}`, b.anchor!])).values()];
  if (trust === undefined) {
    c.trust.open(PASS.trustMissing(toHex(ctx.ingest.kid), bundle.ingest.issuer, targets.map((t) => ({ chainId: t.chainId, contract: t.contract }))), 'TRUST_POLICY_MISSING');
    return;
  }
  for (const s of trust.skipped) ctx.notes.push({ id: 'policy-entry-skipped', sentence: NOTE.policyEntrySkipped(s.path, s.reason) });
  const entry = ctx.ingest.entry;
  if (entry === undefined) {
    c.trust.fail('UNTRUSTED_INGEST_KEY_ERROR', FAIL.untrustedIngestKey(toHex(ctx.ingest.kid)), { expected: 'a key of $.ingestKeys', actual: toHex(ctx.ingest.kid) });
  } else if (entry.issuer !== bundle.ingest.issuer) {
    c.trust.fail('UNTRUSTED_INGEST_KEY_ERROR', FAIL.untrustedIssuer(bundle.ingest.issuer, entry.issuer), { path: '$.ingest.issuer', expected: entry.issuer, actual: bundle.ingest.issuer });
  }
  let windowOpen = false;
  for (const batch of anchored) {
    const ref = batch.anchor!;
    const target = ctx.targets.get(batch.batchId);
    const confirmed = ctx.confirmed.get(batch.batchId);
    if (target === undefined) {
      c.trust.fail('UNTRUSTED_ANCHOR_ERROR', FAIL.untrustedAnchor(batch.batchId, ref.chainId, ref.contract), {
        batchId: batch.batchId, expected: 'a target of $.anchors', actual: `evm ${ref.chainId} ${ref.contract}`,
      });
      continue;
    }
    if (confirmed === undefined) {
      windowOpen = true;
      continue;
    }
    if (confirmed.blockNumber < target.startBlock || (target.endBlock !== undefined && confirmed.blockNumber > target.endBlock)) {
      c.trust.fail('UNTRUSTED_ANCHOR_ERROR', FAIL.anchorOutsideBlocks(batch.batchId, confirmed.blockNumber, target.startBlock, target.endBlock), {
        batchId: batch.batchId, expected: `${target.startBlock}..${target.endBlock ?? ''}`, actual: String(confirmed.blockNumber),
      });
    }
    if (entry !== undefined) {
      const at = keyValidAt(entry, confirmed.blockTime * 1000);
      if (at !== 'valid') {
        c.trust.fail('INGEST_KEY_WINDOW_ERROR', FAIL.ingestKeyWindow(batch.batchId, confirmed.blockTime, at, entry), {
          batchId: batch.batchId,
          expected: at === 'compromised' ? `before ${new Date(entry.compromisedAt!).toISOString()}` : `${new Date(entry.validFrom).toISOString()}..${entry.validUntil === undefined ? '' : new Date(entry.validUntil).toISOString()}`,
          actual: new Date(confirmed.blockTime * 1000).toISOString(),
        });
      }
    }
  }
  const now = ctx.options.now ?? Date.now();
  const policyText = { sha256: trust.sha256, version: trust.version, issuedAt: trust.issuedAt, authority: trust.authority.name, fingerprint: trust.authorityFingerprint };
  if (now >= trust.expiresAt) c.trust.open(PASS.trustExpired(policyText, trust.expiresAt), 'TRUST_POLICY_EXPIRED');
  else if (windowOpen || ctx.usedBatchIds.length > anchored.length) c.trust.open(PASS.trustWindowUnchecked(policyText), 'KEY_WINDOW_UNCHECKED');
  else {
    const operators = [...new Set([...ctx.confirmed.values()].flatMap((x) => x.operators))];
    c.trust.sentence = PASS.trust(policyText, entry === undefined ? '' : `${entry.path} (${entry.state})`, targets.map((t) => `${t.chainId} ${t.contract}`), operators);
  }
}

function trustSummary(ctx: Ctx): TrustSummary {
  const trust = ctx.options.trust;
  const anchored = ctx.usedBatchIds.map((id) => ctx.batchById.get(id)!.anchor).filter((a): a is AnchorRef => a !== undefined);
  const takenOnTrust = {
    ingestKeyFingerprint: toHex(ctx.ingest.kid),
    issuer: ctx.bundle.ingest.issuer,
    chainIds: [...new Set(anchored.map((a) => a.chainId))],
    contracts: [...new Set(anchored.map((a) => a.contract))],
  };
  if (trust === undefined) return { policy: null, fromBundle: takenOnTrust };
  return {
    policy: {
      sha256: trust.sha256,
      version: trust.version,
      issuedAt: new Date(trust.issuedAt).toISOString(),
      expiresAt: new Date(trust.expiresAt).toISOString(),
      authority: trust.authority.name,
      authorityFingerprint: trust.authorityFingerprint,
      ...(ctx.ingest.entry !== undefined ? { ingestKey: `${ctx.ingest.entry.path} (${ctx.ingest.entry.state})` } : {}),
      anchorTargets: [...new Set([...ctx.targets.values()].filter((t): t is EvmAnchorTarget => t !== undefined).map((t) => t.path))],
    },
    fromBundle: takenOnTrust,
  };
}

// ---- helpers --------------------------------------------------------------------------------------------------

/** Runs of consecutive seqs, `[first, last]`, of an unsorted list. */
function runsOf(seqs: number[]): [number, number][] {
  const sorted = [...new Set(seqs)].sort((a, b) => a - b);
  const out: [number, number][] = [];
  for (const seq of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && last[1] === seq - 1) last[1] = seq;
    else out.push([seq, seq]);
  }
  return out;
}

/**
 * R of the decision table for every leaf: the root its receipt's inclusion proof leads to (RFC 9162 §2.1.3.2), or
 * undefined when the proof is malformed for its index and size. The same values as `rootFromInclusionProof` per
 * leaf, computed faster when a bundle holds a whole batch: the leaves of one (batch id, tree size) whose indices
 * are exactly 0..size-1 give the tree itself (size - 1 hashes, against about log2(size) per leaf), and a proof
 * whose every node equals the tree's sibling hash leads to the tree's root. Any other proof, and every leaf of a
 * batch the bundle holds only part of, is recomputed on its own. The tree's root is cross-checked once per batch
 * through `rootFromInclusionProof` (the verifying code, kept apart from the proof-building code on purpose).
 */
function rootsOf(leaves: readonly Leaf[]): (Uint8Array | undefined)[] {
  const leafHashes = leaves.map((l) => l.leafHash ?? hashLeaf(l.statementBytes));
  const one = (i: number): Uint8Array | undefined => {
    const { leafIndex, treeSize, path } = leaves[i]!.receipt.proof;
    try {
      return rootFromInclusionProof(leafIndex, treeSize, leafHashes[i]!, path);
    } catch {
      return undefined;
    }
  };
  const out: (Uint8Array | undefined)[] = new Array(leaves.length);
  const groups = new Map<string, number[]>();
  for (const [i, l] of leaves.entries()) {
    const key = `${l.receipt.batchId}|${l.receipt.proof.treeSize}`;
    const g = groups.get(key);
    if (g === undefined) groups.set(key, [i]);
    else g.push(i);
  }
  for (const group of groups.values()) {
    const size = leaves[group[0]!]!.receipt.proof.treeSize;
    const byIndex: number[] = new Array(size);
    let whole = group.length === size && size >= 2;
    for (const i of group) {
      if (!whole) break;
      const index = leaves[i]!.receipt.proof.leafIndex;
      if (byIndex[index] !== undefined) whole = false;
      else byIndex[index] = i;
    }
    if (!whole) {
      for (const i of group) out[i] = one(i);
      continue;
    }
    const memo = new Map<number, Uint8Array>();
    const range = (start: number, end: number): Uint8Array => {
      if (end - start === 1) return leafHashes[byIndex[start]!]!;
      const key = start * (size + 1) + end;
      let h = memo.get(key);
      if (h === undefined) {
        const k = splitPoint(end - start);
        h = hashChildren(range(start, start + k), range(start + k, end));
        memo.set(key, h);
      }
      return h;
    };
    const treeRoot = range(0, size);
    let crossChecked = false;
    for (const i of group) {
      const { leafIndex, path } = leaves[i]!.receipt.proof;
      const expected = buildInclusionPath(range, leafIndex, size);
      const same = path.length === expected.length && path.every((p, j) => equalBytes(p, expected[j]!));
      if (same && !crossChecked) {
        const r = one(i);
        crossChecked = r !== undefined && equalBytes(r, treeRoot);
        out[i] = r;
      } else out[i] = same && crossChecked ? treeRoot : one(i);
    }
  }
  return out;
}

/** Order within check 3: a bad signature leads, then body problems. */
function rank(code: VerifyCode): number {
  return code === 'SIGNATURE_ERROR' ? 0 : code === 'DIGEST_MISMATCH_ERROR' ? 1 : 2;
}

function headerMismatch(st: ParsedStatement, reading: Reading): HeaderField | undefined {
  if (reading.device !== st.device) return 'device';
  if (reading.seq !== st.seq) return 'seq';
  // Inside a device-level batch (index > 0) the statement signs no prev of its own; check 4 links the body's prev.
  if (st.prev !== undefined && !equalBytes(reading.prev, st.prev)) return 'prev';
  return undefined;
}

/** Notes of one kind beyond NOTES_PER_KIND fold into one "and N more" note, in the order they came. */
function foldNotes(notes: Note[]): Note[] {
  const seen = new Map<Note['id'], number>();
  const out: Note[] = [];
  for (const n of notes) seen.set(n.id, (seen.get(n.id) ?? 0) + 1);
  const shown = new Map<Note['id'], number>();
  for (const n of notes) {
    const k = (shown.get(n.id) ?? 0) + 1;
    shown.set(n.id, k);
    if (k <= NOTES_PER_KIND) out.push(n);
    else if (k === NOTES_PER_KIND + 1) out.push({ id: n.id, sentence: NOTE.more(seen.get(n.id)! - NOTES_PER_KIND) });
  }
  return out;
}

interface Answer {
  url: string;
  operator: string;
  kind: 'match' | 'mismatch' | 'notfound' | 'unreachable';
  facts?: AnchorFacts;
  field?: AnchorField;
  expected?: string;
  actual?: string;
  /** Equal for answers that agree. */
  fingerprint: string;
}

async function askAll(reader: AnchorReader, ref: AnchorRef, batch: BundleBatch, endpoints: Endpoint[], deadline: Promise<'deadline'>): Promise<Answer[]> {
  return Promise.all(
    endpoints.map(async ({ url: rpcUrl, operator }): Promise<Answer> => {
      const url = rpcUrl ?? '(anchor reader)';
      try {
        const facts = await Promise.race([reader(ref, batch.batchId, rpcUrl), deadline]);
        if (facts === 'deadline') return { url, operator, kind: 'unreachable', fingerprint: 'unreachable' };
        const fingerprint = JSON.stringify([facts.chainId, facts.contract.toLowerCase(), facts.batchId, facts.root.toLowerCase(), facts.size, facts.blockNumber, facts.blockTime]);
        const diff = compareFacts(facts, ref, batch);
        return diff === undefined ? { url, operator, kind: 'match', facts, fingerprint } : { url, operator, kind: 'mismatch', facts, ...diff, fingerprint };
      } catch (err) {
        const code = codeOf(err);
        if (code === 'ANCHOR_NOT_FOUND') return { url, operator, kind: 'notfound', fingerprint: 'notfound' };
        if (code === 'ANCHOR_MISMATCH_ERROR') {
          // The reader's own mismatches: another chain (where.expected/actual are chain ids) or block data that does not fit.
          const where = (err as SteleError).where ?? {};
          const isChain = typeof where.expected === 'number' && typeof where.actual === 'number';
          return {
            url,
            operator,
            kind: 'mismatch',
            field: isChain ? 'chainId' : 'block',
            ...(isChain ? { expected: String(where.expected), actual: String(where.actual) } : {}),
            fingerprint: `mismatch:${(err as Error).message}`,
          };
        }
        return { url, operator, kind: 'unreachable', fingerprint: 'unreachable' };
      }
    }),
  );
}

function compareFacts(facts: AnchorFacts, ref: AnchorRef, batch: BundleBatch): { field: AnchorField; expected: string; actual: string } | undefined {
  if (facts.chainId !== ref.chainId) return { field: 'chainId', expected: String(ref.chainId), actual: String(facts.chainId) };
  if (facts.contract.toLowerCase() !== ref.contract.toLowerCase()) return { field: 'contract', expected: ref.contract, actual: facts.contract };
  if (facts.batchId !== batch.batchId) return { field: 'batchId', expected: String(batch.batchId), actual: String(facts.batchId) };
  if (facts.root.toLowerCase() !== hex0x(batch.root)) return { field: 'root', expected: toHex(batch.root), actual: facts.root.replace(/^0x/, '').toLowerCase() };
  if (facts.size !== batch.size) return { field: 'size', expected: String(batch.size), actual: String(facts.size) };
  return undefined;
}

/** State and headline from the checks (FORMAT.md §9 "Check status and verdict"); also an evidence set's (evidence-set.ts). */
export function assemble(checks: Check[], notes: Note[], summary: Summary): Verdict {
  const firstFailure = checks.find((k) => k.status === 'fail')?.failures[0];
  if (firstFailure !== undefined) {
    return { state: 'failed', headline: HEADLINE.failed(firstFailure.sentence), checks, notes, summary };
  }
  // Any check left open, the alert recomputation (9) included, keeps the verdict from `verified` (VERIFIER.md §4.3:
  // pass means every check passes).
  const open = checks.filter((k) => k.status === 'unchecked');
  if (open.length > 0) {
    const trust = open.find((k) => k.id === 'trust');
    const headline =
      trust?.code === 'TRUST_POLICY_MISSING'
        ? HEADLINE.partialNoPolicy(trust.sentence)
        : open.some((k) => k.id === 'anchor')
          ? HEADLINE.partialAnchor()
          : trust?.code === 'TRUST_POLICY_EXPIRED'
            ? HEADLINE.partialExpired(trust.sentence)
            : HEADLINE.partialOther(open.map((k) => k.title));
    return { state: 'partial', headline, checks, notes, summary };
  }
  return { state: 'verified', headline: HEADLINE.verified(), checks, notes, summary };
}

/**
 * The verdict for a bundle that could not be parsed: check 1 fails with the format error (or the limit error) and
 * its JSON path; every other check is unchecked.
 */
export function formatErrorVerdict(err: unknown): Verdict {
  const path = err instanceof SteleError && typeof err.where?.path === 'string' ? err.where.path : '$';
  const detail = err instanceof Error ? err.message : String(err);
  const code: VerifyCode = codeOf(err) === 'BUNDLE_LIMIT_ERROR' ? 'BUNDLE_LIMIT_ERROR' : 'BUNDLE_FORMAT_ERROR';
  const checks = ORDER.map((id) => {
    const b = new CheckBuilder(id);
    if (id === 'format') b.fail(code, code === 'BUNDLE_LIMIT_ERROR' ? FAIL.bundleLimit(path, detail) : FAIL.bundleFormat(path, detail), { path });
    else b.open(PASS.notReached());
    return b.build();
  });
  const summary: Summary = { readings: 0, bodies: 0, firstSeq: 0, lastSeq: 0, batches: 0, devices: [], keyIds: [], ingestKeyId: '', anchors: [] };
  return assemble(checks, [], summary);
}

/**
 * Parses and verifies bundle file bytes: what the CLI and the web page call. An evidence set (FORMAT.md §7.2) is
 * verified as one (`set`, and each bundle's own verdict in `members`). A file that is not a bundle, or is
 * beyond the limits of FORMAT.md §7, gives a `failed` verdict with BUNDLE_FORMAT_ERROR or BUNDLE_LIMIT_ERROR
 * (never a throw).
 */
export async function verifyBundleBytes(
  bytes: Uint8Array,
  options: VerifyOptions = {},
): Promise<{ verdict: Verdict; bundle?: EvidenceBundle; readings?: Map<BundleEntry, Reading>; set?: EvidenceSet; members?: Verdict[] }> {
  // The file's digest is computed by WebCrypto while the checks run.
  const digest = bundleDigestAsync(bytes);
  let parsed: EvidenceBundle | EvidenceSet;
  const t0 = performance.now();
  const leafHashes = new Map<Uint8Array, Uint8Array>();
  try {
    const json = readEvidenceJson(bytes);
    // An alert's evidence across devices (FORMAT.md §7.2): each bundle by §9, the alert over all of them.
    parsed = isEvidenceSetJson(json) ? parseEvidenceSet(json) : parseBundle(json, { leafHashes });
    if (options.timings !== undefined) options.timings.parse = performance.now() - t0;
  } catch (err) {
    const code = codeOf(err);
    if (code === 'BUNDLE_FORMAT_ERROR' || code === 'BUNDLE_LIMIT_ERROR') {
      const verdict = formatErrorVerdict(err);
      verdict.summary.bundleSha256 = await digest;
      return { verdict };
    }
    throw err;
  }
  if (parsed.format === EVIDENCE_SET_FORMAT) {
    const { verdict, members } = await verifyEvidenceSet(parsed, options);
    verdict.summary.bundleSha256 = await digest;
    return { verdict, set: parsed, members };
  }
  const bundle = parsed;
  const { verdict, readings } = await runChecks(bundle, options, leafHashes);
  verdict.summary.bundleSha256 = await digest;
  return { verdict, bundle, readings };
}
