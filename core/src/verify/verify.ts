/**
 * verifyBundle: the ten checks of VERIFIER.md §4.4 over a parsed evidence bundle, producing a Verdict.
 *
 * No network code here: the on-chain check goes through the `anchorReader` the caller passes (the CLI and the web
 * page pass `readAnchor` from anchor/evm-reader.ts; tests pass a double). Without one, that check stays
 * `unchecked` and the verdict is at best `partial`.
 *
 * Every check runs even when an earlier one fails, on whatever entries could be decoded, so that the officer
 * sees every problem, not only the first. The state is: any `fail` -> failed (headline = the first failure in
 * check order); else any `unchecked` check -> partial; else verified.
 *
 * ## Batch inclusion (5), receipt (6) and anchor (7): the decision table
 *
 * Per entry: L = hashLeaf(statement bytes); R = root computed from L and the receipt's proof (RFC 9162
 * §2.1.3.2); B = `batches[].root`, the root the bundle records as anchored; S(x) = the receipt signature verifies
 * with the bundle's ingest key over the detached payload x (FORMAT.md §5). The receipt kid must be the ingest kid.
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
 * Per anchored batch, per endpoint (`rpcUrls`, else the bundle's `anchor.rpc`, else the reader alone): the facts
 * (chainId, contract, batchId, root, size) must equal the bundle's. AnchorError ANCHOR_RPC_ERROR (or any
 * unexpected error) -> that endpoint did not answer; ANCHOR_NOT_FOUND -> ANCHOR_NOT_FOUND_ERROR; a differing fact
 * or ANCHOR_MISMATCH_ERROR from the reader -> ANCHOR_MISMATCH_ERROR. Endpoints that answered must agree, else the
 * batch stays unchecked ("nodes disagree"); no endpoint answering -> unchecked ("could not reach {url}").
 *
 * ## Time bounds (8)
 * Device time is untrusted (FORMAT.md §8). A reading whose clock was synced must not claim a time later than its
 * batch's block time + `timeToleranceS` (default 300 s); only block times confirmed on chain are used, so offline
 * this check is `unchecked`. Readings with an unsynced clock are not bounded (a note says so).
 */
import type { AnchorFacts, AnchorRef } from '../anchor/evm-reader.ts';
import type { BundleBatch, BundleEntry, BundleLifecycleEntry, EvidenceBundle } from '../bundle.ts';
import { bundleDigest, parseBundleBytes } from '../bundle.ts';
import { equalBytes, toBase64Url, toHex } from '../bytes.ts';
import { checkStatementAgainstReading, parseReceipt, parseStatement, sigStructure1, verifyStatementSignature } from '../cose/index.ts';
import type { ParsedReceipt, ParsedStatement } from '../cose/index.ts';
import { verifyEs256 } from '../ecdsa.ts';
import { SteleError } from '../errors.ts';
import { sha256 } from '../hash.ts';
import { assertP256PublicKey, keyIdOf } from '../keys.ts';
import { buildKeyTimeline, findSpan, keyStatusAt, parseLifecycleStatement, type KeySpan, type ParsedLifecycle } from '../lifecycle/index.ts';
import { decodeReading, GENESIS_PREV } from '../reading.ts';
import type { Reading } from '../reading.ts';
import { hashLeaf, rootFromInclusionProof } from '../rfc9162/index.ts';
import type { VerifyCode } from './codes.ts';
import type { AnchorField, HeaderField, Subject } from './messages.ts';
import { FAIL, HEADLINE, NOTE, PASS, TITLES } from './messages.ts';
import type { AnchorSummary, Check, CheckId, CheckStatus, Failure, KeySummary, Note, Summary, Text, Verdict } from './verdict.ts';

/**
 * Reads what the chain holds for one anchored batch. `rpcUrl` is the endpoint to ask (undefined when the bundle
 * names none and the caller gave none: the reader then uses its own). Throws AnchorError (evm-reader.ts).
 */
export type AnchorReader = (ref: AnchorRef, batchId: number, rpcUrl: string | undefined) => Promise<AnchorFacts>;

export interface VerifyOptions {
  /** Chain access for check 7. Default: none, the anchor stays unchecked (verdict at best `partial`). */
  anchorReader?: AnchorReader;
  /** Endpoints to ask, each must agree. Default: the `rpc` recorded in each batch's anchor, if any. */
  rpcUrls?: readonly string[];
  /** Allowed lead of device time over the anchor block time, seconds. Default 300 (clock skew, block time). */
  timeToleranceS?: number;
}

/** Default of `VerifyOptions.timeToleranceS`. */
export const DEFAULT_TIME_TOLERANCE_S = 300;

const ORDER: CheckId[] = ['format', 'enrolment', 'signatures', 'completeness', 'inclusion', 'receipt', 'anchor', 'time', 'alert', 'flags'];

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
}

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
  receipt: ParsedReceipt;
}

class CheckBuilder {
  readonly failures: Failure[] = [];
  status: CheckStatus | undefined;
  sentence: Text | undefined;
  constructor(readonly id: CheckId) {}
  fail(code: VerifyCode, sentence: Text, detail: Omit<Failure, 'code' | 'sentence'> = {}): void {
    this.failures.push({ code, sentence, ...detail });
  }
  build(): Check {
    const status: CheckStatus = this.failures.length > 0 ? 'fail' : (this.status ?? 'pass');
    return {
      id: this.id,
      number: ORDER.indexOf(this.id) + 1,
      status,
      title: TITLES[this.id],
      sentence: this.failures[0]?.sentence ?? this.sentence ?? PASS.notReached(),
      failures: this.failures,
    };
  }
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

/** Runs every check of VERIFIER.md §4.4 on a bundle that passed `parseBundle`. Never throws on bad evidence. */
export async function verifyBundle(bundle: EvidenceBundle, options: VerifyOptions = {}): Promise<Verdict> {
  const tolS = options.timeToleranceS ?? DEFAULT_TIME_TOLERANCE_S;
  const notes: Note[] = [];
  const c = Object.fromEntries(ORDER.map((id) => [id, new CheckBuilder(id)])) as Record<CheckId, CheckBuilder>;
  const batchById = new Map<number, BundleBatch>(bundle.batches.map((b) => [b.batchId, b]));

  // ---- 1. Bundle format: decode every statement, receipt and reading. ---------------------------------------
  const items: Item[] = [];
  const seenStatements = new Set<string>();
  for (const [index, entry] of bundle.entries.entries()) {
    const path = `$.entries[${index}]`;
    const item: Item = { index, entry, path, duplicate: false };
    items.push(item);
    try {
      const st = parseStatement(entry.statement);
      if (st.seq !== entry.seq) {
        c.format.fail('BUNDLE_FORMAT_ERROR', FAIL.entrySeqLabel(entry.seq, st.seq, `${path}.seq`), {
          seq: entry.seq, path: `${path}.seq`, expected: String(st.seq), actual: String(entry.seq),
        });
      } else {
        item.statement = st;
        const key = toHex(sha256(entry.statement));
        item.duplicate = seenStatements.has(key);
        seenStatements.add(key);
        if (item.duplicate) notes.push({ id: 'duplicate-entry', sentence: NOTE.duplicateEntry(entry.seq) });
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
  const lifecycleItems: LifecycleItem[] = [];
  for (const [index, entry] of (bundle.lifecycle ?? []).entries()) {
    const path = `$.lifecycle[${index}]`;
    const item: LifecycleItem = { index, entry, path };
    lifecycleItems.push(item);
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
  c.format.sentence = PASS.format();

  // ---- 2. Device enrolment. ---------------------------------------------------------------------------------
  const deviceKeyOk = validKey(bundle.device.publicKey);
  // keyIdOf validates the key; for an invalid one (reported just below) use the plain digest so checks go on.
  const deviceKid = deviceKeyOk ? keyIdOf(bundle.device.publicKey) : sha256(bundle.device.publicKey);
  if (!deviceKeyOk) c.enrolment.fail('UNKNOWN_KEY_ERROR', FAIL.badPublicKey('device'));
  else if (!equalBytes(deviceKid, bundle.device.kid)) {
    c.enrolment.fail('UNKNOWN_KEY_ERROR', FAIL.keyIdNotOfKey('device'), {
      expected: toHex(deviceKid), actual: toHex(bundle.device.kid),
    });
  }
  // The key timeline (FORMAT.md §13.5). Without lifecycle data (bundles made before it existed) the record's key
  // is the only key, valid from seq 1 and never revoked as far as the bundle can tell (a note says so).
  let spans: KeySpan[];
  if (bundle.lifecycle === undefined) {
    spans = [{ kid: deviceKid, publicKey: bundle.device.publicKey, backend: bundle.device.keyBackend, from: 1, via: 'record' }];
  } else {
    const timeline = await buildKeyTimeline(bundle.device.deviceId, bundle.ingest.publicKey, lifecycleItems.map((i) => i.statement));
    spans = timeline.spans;
    for (const p of timeline.problems) {
      c.enrolment.fail(p.code, FAIL.lifecycleRejected(p.index + 1, p.type, p.reason, p.code, p.seq), {
        path: `$.lifecycle[${p.index}]`, ...(p.seq !== undefined ? { seq: p.seq } : {}), actual: p.kid,
      });
    }
    // The record in `device` must be one that ingest logged an enrolment statement for.
    if (!spans.some((sp) => sp.via === 'enrolment' && equalBytes(sp.kid, deviceKid))) {
      c.enrolment.fail('UNKNOWN_KEY_ERROR', FAIL.recordNotEnrolled(), { expected: toHex(deviceKid) });
    }
  }
  const usable = items.filter((i): i is Item & { statement: ParsedStatement } => i.statement !== undefined);
  const unique = usable.filter((i) => !i.duplicate);
  const otherDevices: string[] = [];
  const keyIds: string[] = [];
  /** Per kid (hex): the seqs it signed, for the summary. */
  const signedBy = new Map<string, number[]>();
  for (const item of unique) {
    const st = item.statement;
    const kid = toBase64Url(st.kid);
    if (!keyIds.includes(kid)) keyIds.push(kid);
    const span = findSpan(spans, st.kid);
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
      if (!otherDevices.includes(st.device)) otherDevices.push(st.device);
      c.enrolment.fail('UNKNOWN_KEY_ERROR', FAIL.otherDevice(st.seq, st.device, bundle.device.deviceId), {
        seq: st.seq, expected: bundle.device.deviceId, actual: st.device,
      });
    }
  }
  const keys: KeySummary[] = spans.map((sp) => {
    const k: KeySummary = { kid: toBase64Url(sp.kid), backend: sp.backend, via: sp.via, from: sp.from, signed: runsOf(signedBy.get(toHex(sp.kid)) ?? []) };
    if (sp.until !== undefined) k.until = sp.until;
    if (sp.revokedAfter !== undefined) k.revokedAfter = sp.revokedAfter;
    return k;
  });
  c.enrolment.sentence =
    spans.length <= 1
      ? PASS.enrolment(bundle.device.deviceId, bundle.device.enrolledAt, bundle.device.keyBackend)
      : PASS.enrolmentKeys(bundle.device.deviceId, bundle.device.enrolledAt, spans.map((sp) => ({ kid: toHex(sp.kid), from: sp.from, ...(sp.until !== undefined ? { until: sp.until } : {}) })));
  if (bundle.device.keyBackend === 'software' || spans.some((sp) => sp.backend === 'software' && sp.via === 'rotation')) {
    notes.push({ id: 'software-key', sentence: NOTE.softwareKey() });
  }
  if (bundle.lifecycle === undefined) notes.push({ id: 'revocation-unchecked', sentence: NOTE.revocationUnchecked() });
  else {
    for (const sp of spans) {
      if (sp.via === 'rotation') notes.push({ id: 'key-rotated', sentence: NOTE.keyRotated(toHex(sp.kid), sp.from - 1) });
      if (sp.revokedAfter !== undefined) notes.push({ id: 'key-revoked', sentence: NOTE.keyRevoked(toHex(sp.kid), sp.revokedAfter) });
    }
    for (const li of lifecycleItems) {
      if (li.statement?.body.type === 'reinstall') notes.push({ id: 'agent-reinstalled', sentence: NOTE.reinstalled(li.statement.seq!) });
    }
    notes.push({ id: 'lifecycle-as-exported', sentence: NOTE.lifecycleAsExported(bundle.createdAt) });
  }

  // ---- 3. Signatures, and each body against its statement. --------------------------------------------------
  let hashOnly = 0;
  // Start every signature check at once: WebCrypto works them off in parallel (3,600 statements: 0.67 s awaited
  // one by one, 0.36 s together, Node 20 on the 2-core CI machine).
  const usableKey = new Map<KeySpan, boolean>(spans.map((sp) => [sp, validKey(sp.publicKey)]));
  const signatureChecks = unique.map(async (item) => {
    // The key the statement names, when the timeline knows it; else the record's key (which then fails).
    const span = findSpan(spans, item.statement.kid);
    const key = span?.publicKey ?? bundle.device.publicKey;
    const keyOk = span === undefined ? deviceKeyOk : usableKey.get(span) === true;
    try {
      return keyOk && (await verifyStatementSignature(item.statement, key));
    } catch {
      return false;
    }
  });
  const signatureResults = await Promise.all(signatureChecks);
  // Bodies of duplicate entries are checked too: an identical statement must not smuggle in another body.
  const signatureOk = new Map(unique.map((u, i) => [u, signatureResults[i] === true]));
  for (const item of usable) {
    const st = item.statement;
    const body = item.entry.reading;
    let time: number | undefined;
    if (body === undefined) {
      if (!item.duplicate) hashOnly++;
    } else if (!equalBytes(sha256(body), st.payload)) {
      // A changed body: say so even when it no longer decodes (that is what the change did).
      c.signatures.fail('DIGEST_MISMATCH_ERROR', FAIL.digest(st.seq), {
        seq: st.seq, expected: toHex(st.payload), actual: toHex(sha256(body)),
      });
    } else {
      try {
        item.reading = decodeReading(body);
        time = item.reading.time;
        const field = headerMismatch(st, item.reading);
        let verdict: ReturnType<typeof checkStatementAgainstReading>;
        try {
          verdict = checkStatementAgainstReading(st, body);
        } catch {
          verdict = field === undefined ? 'ok' : 'HEADER_MISMATCH';
        }
        if (verdict === 'DIGEST_MISMATCH') {
          c.signatures.fail('DIGEST_MISMATCH_ERROR', FAIL.digest(st.seq, time), { seq: st.seq });
        } else if (verdict === 'HEADER_MISMATCH' || field !== undefined) {
          c.signatures.fail('HEADER_MISMATCH_ERROR', FAIL.header(st.seq, field ?? 'device'), { seq: st.seq });
        }
      } catch (err) {
        c.format.fail('BUNDLE_FORMAT_ERROR', FAIL.entryFormat(st.seq, 'reading', `${item.path}.reading`), {
          seq: st.seq, path: `${item.path}.reading`, ...(codeOf(err) ? { actual: codeOf(err)! } : {}),
        });
      }
    }
    if (!item.duplicate && signatureOk.get(item) !== true) c.signatures.fail('SIGNATURE_ERROR', FAIL.signature(st.seq, time), { seq: st.seq });
  }
  // Signature failures first in this check: they are what §4.5 leads with.
  c.signatures.failures.sort((a, b) => rank(a.code) - rank(b.code) || (a.seq ?? 0) - (b.seq ?? 0));
  c.signatures.sentence = PASS.signatures(unique.length);
  if (hashOnly > 0) notes.push({ id: 'hash-only', sentence: NOTE.hashOnly(hashOnly) });

  // ---- 4. Completeness: gaps, forks, chain links. ------------------------------------------------------------
  const { firstSeq, lastSeq } = bundle.window;
  // Chained lifecycle statements (rotation, reinstall) hold a seq of the chain like readings do (FORMAT.md §13.3).
  const bySeq = new Map<number, Link[]>();
  const addLink = (seq: number, link: Link): void => {
    const variants = bySeq.get(seq) ?? [];
    if (!variants.some((v) => equalBytes(v.digest, link.digest))) variants.push(link);
    bySeq.set(seq, variants);
  };
  for (const item of unique) {
    const st = item.statement;
    // Inside a device-level batch (index > 0) the statement carries no prev: the body's prev is the link when the
    // body is here and matches the signed digest (check 3 decoded it); hash-only, the signed tree order is.
    const link: Link = { digest: st.payload, prev: st.prev ?? item.reading?.prev, item };
    if (st.batch !== undefined) link.batch = { root: st.batch.root, index: st.batch.index };
    addLink(st.seq, link);
  }
  const labelled = new Set(items.map((i) => i.entry.seq)); // undecodable entries were reported in check 1
  for (const li of lifecycleItems) {
    const st = li.statement;
    if (st?.seq === undefined) continue;
    addLink(st.seq, { digest: st.digest, prev: st.prev! });
    labelled.add(st.seq);
  }
  const timeOf = (seq: number): number | undefined => bySeq.get(seq)?.find((v) => v.item?.reading)?.item?.reading?.time;
  for (let seq = firstSeq; seq <= lastSeq; seq++) {
    if (labelled.has(seq)) continue;
    let end = seq;
    while (end + 1 <= lastSeq && !labelled.has(end + 1)) end++;
    c.completeness.fail('SEQUENCE_GAP_ERROR', FAIL.gap(seq, end, timeOf(seq - 1), timeOf(end + 1)), {
      seq, expected: seq === end ? `${seq}` : `${seq}-${end}`, actual: 'missing',
    });
    seq = end;
  }
  for (let seq = firstSeq; seq <= lastSeq; seq++) {
    const variants = bySeq.get(seq);
    if (variants === undefined) continue;
    if (variants.length > 1) {
      c.completeness.fail('FORK_ERROR', FAIL.fork(seq, variants.length), {
        seq, expected: toHex(variants[0]!.digest), actual: toHex(variants[1]!.digest),
      });
    }
    const before = seq === 1 ? [GENESIS_PREV] : bySeq.get(seq - 1)?.map((v) => v.digest);
    if (before === undefined) continue; // seq - 1 outside the window or missing (reported as a gap)
    for (const v of variants) {
      const prev = v.prev;
      const inBatch = v.batch;
      const linked =
        prev !== undefined
          ? before.some((d) => equalBytes(d, prev))
          : // hash-only inside a device-level batch: seq - 1 must be the leaf before it in the same signed tree
            inBatch !== undefined &&
            (bySeq.get(seq - 1) ?? []).some((w) => w.batch !== undefined && w.batch.index === inBatch.index - 1 && equalBytes(w.batch.root, inBatch.root));
      if (!linked) {
        c.completeness.fail('CHAIN_LINK_ERROR', seq === 1 ? FAIL.genesis() : FAIL.chainLink(seq), {
          seq, expected: toHex(before[0]!), actual: prev !== undefined ? toHex(prev) : 'not the next leaf of the device batch of seq - 1',
        });
      }
    }
  }
  c.completeness.sentence = PASS.completeness(firstSeq, lastSeq);

  // ---- 5, 6, 7 offline: inclusion, receipt, signed root vs recorded root (decision table above). -------------
  const ingestKeyOk = validKey(bundle.ingest.publicKey);
  const ingestKid = ingestKeyOk ? keyIdOf(bundle.ingest.publicKey) : sha256(bundle.ingest.publicKey);
  if (!ingestKeyOk) c.receipt.fail('UNKNOWN_KEY_ERROR', FAIL.badPublicKey('ingest'));
  else if (!equalBytes(ingestKid, bundle.ingest.kid)) {
    c.receipt.fail('UNKNOWN_KEY_ERROR', FAIL.keyIdNotOfKey('ingest'), {
      expected: toHex(ingestKid), actual: toHex(bundle.ingest.kid),
    });
  }
  const sigCache = new Map<string, Promise<boolean>>();
  const receiptSigOver = (r: ParsedReceipt, root: Uint8Array): Promise<boolean> => {
    if (!ingestKeyOk) return Promise.resolve(false);
    const key = `${toHex(r.protectedBytes)}|${toHex(r.signature)}|${toHex(root)}`;
    let p = sigCache.get(key);
    if (p === undefined) {
      p = safeVerify(bundle.ingest.publicKey, sigStructure1(r.protectedBytes, root), r.signature);
      sigCache.set(key, p);
    }
    return p;
  };
  const anchorMismatchOffline = new Set<number>();
  let receiptUnassessed = 0;
  const leaves: Leaf[] = [];
  for (const item of items) {
    if (item.statement === undefined || item.receipt === undefined) continue;
    leaves.push({ subject: item.statement.seq, seq: item.statement.seq, batchId: item.entry.batchId, statementBytes: item.entry.statement, receipt: item.receipt });
  }
  for (const li of lifecycleItems) {
    if (li.statement === undefined || li.receipt === undefined) continue;
    const leaf: Leaf = { subject: { lifecycle: li.index + 1, type: li.statement.body.type }, batchId: li.entry.batchId, statementBytes: li.entry.statement, receipt: li.receipt };
    if (li.statement.seq !== undefined) leaf.seq = li.statement.seq;
    leaves.push(leaf);
  }
  for (const leaf of leaves) {
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
    let root: Uint8Array;
    try {
      root = rootFromInclusionProof(r.proof.leafIndex, r.proof.treeSize, hashLeaf(leaf.statementBytes), r.proof.path);
    } catch {
      c.inclusion.fail('INCLUSION_PROOF_ERROR', FAIL.inclusionMalformed(subject, batch.batchId), { ...at, batchId: batch.batchId });
      receiptUnassessed++;
      continue;
    }
    const atRecorded = equalBytes(root, batch.root);
    const kidOk = equalBytes(r.kid, ingestKid);
    if (!kidOk) {
      c.receipt.fail('RECEIPT_SIGNATURE_ERROR', FAIL.receiptOtherKey(subject, toHex(r.kid)), {
        ...at, batchId: batch.batchId, expected: toHex(ingestKid), actual: toHex(r.kid),
      });
      if (!atRecorded) {
        c.inclusion.fail('INCLUSION_PROOF_ERROR', FAIL.inclusion(subject, batch.batchId), {
          ...at, batchId: batch.batchId, expected: toHex(batch.root), actual: toHex(root),
        });
      }
      continue;
    }
    const signedR = await receiptSigOver(r, root);
    if (atRecorded) {
      if (!signedR) {
        c.receipt.fail('RECEIPT_SIGNATURE_ERROR', FAIL.receiptSignature(subject, toHex(ingestKid)), { ...at, batchId: batch.batchId });
      } else if (r.proof.treeSize !== batch.size && !anchorMismatchOffline.has(batch.batchId)) {
        anchorMismatchOffline.add(batch.batchId);
        c.anchor.fail('ANCHOR_MISMATCH_ERROR', FAIL.anchorSigned(batch.batchId), {
          batchId: batch.batchId, expected: String(r.proof.treeSize), actual: String(batch.size),
        });
      }
    } else if (signedR) {
      if (!anchorMismatchOffline.has(batch.batchId)) {
        anchorMismatchOffline.add(batch.batchId);
        c.anchor.fail('ANCHOR_MISMATCH_ERROR', FAIL.anchorSigned(batch.batchId), {
          batchId: batch.batchId, expected: toHex(root), actual: toHex(batch.root),
        });
      }
    } else {
      c.inclusion.fail('INCLUSION_PROOF_ERROR', FAIL.inclusion(subject, batch.batchId), {
        ...at, batchId: batch.batchId, expected: toHex(batch.root), actual: toHex(root),
      });
      if (!(await receiptSigOver(r, batch.root))) receiptUnassessed++;
    }
    if (signedR && r.issuer !== bundle.ingest.issuer) {
      c.receipt.fail('RECEIPT_SIGNATURE_ERROR', FAIL.receiptOtherIssuer(subject, r.issuer), {
        ...at, batchId: batch.batchId, expected: bundle.ingest.issuer, actual: r.issuer,
      });
    }
  }
  const usedBatchIds = [...new Set([...items.map((i) => i.entry.batchId), ...lifecycleItems.map((i) => i.entry.batchId)])].sort((a, b) => a - b);
  c.inclusion.sentence = PASS.inclusion(unique.length, usedBatchIds.length);
  c.receipt.sentence = PASS.receipt(bundle.ingest.issuer, toHex(bundle.ingest.kid));
  if (receiptUnassessed > 0) {
    c.receipt.status = 'unchecked';
    c.receipt.sentence = PASS.receiptNotReached();
  }

  // ---- 7. On-chain anchor. ----------------------------------------------------------------------------------
  const anchors: AnchorSummary[] = [];
  const confirmedTime = new Map<number, number>();
  let anchorUnchecked: Text | undefined;
  for (const batchId of usedBatchIds) {
    const batch = batchById.get(batchId)!;
    const summary: AnchorSummary = { batchId, size: batch.size, root: hex0x(batch.root), confirmedBy: [] };
    anchors.push(summary);
    const ref = batch.anchor;
    if (ref === undefined) {
      notes.push({ id: 'not-anchored', sentence: NOTE.notAnchored(batchId) });
      anchorUnchecked ??= PASS.anchorMissing(batchId);
      continue;
    }
    Object.assign(summary, { chainId: ref.chainId, contract: ref.contract, txHash: ref.txHash, blockNumber: ref.blockNumber, blockTime: ref.blockTime });
    if (options.anchorReader === undefined) {
      anchorUnchecked ??= PASS.anchorOffline();
      continue;
    }
    const urls: (string | undefined)[] =
      options.rpcUrls !== undefined && options.rpcUrls.length > 0 ? [...options.rpcUrls] : [ref.rpc];
    const answers = await askAll(options.anchorReader, ref, batch, urls);
    const answered = answers.filter((a) => a.kind !== 'unreachable');
    if (answered.length === 0) {
      // No endpoint named anywhere and the reader could not find one itself: that is "offline", not "unreachable".
      anchorUnchecked ??= urls.length === 1 && urls[0] === undefined ? PASS.anchorOffline() : PASS.anchorUnreachable(answers[0]!.url);
      continue;
    }
    const first = answered[0]!;
    const other = answered.find((a) => a.fingerprint !== first.fingerprint);
    if (other !== undefined) {
      anchorUnchecked ??= PASS.anchorDisagree(first.url, other.url);
      continue;
    }
    for (const a of answers) if (a.kind === 'unreachable') notes.push({ id: 'rpc-unreachable', sentence: NOTE.rpcUnreachable(a.url) });
    if (first.kind === 'match') {
      summary.confirmedBy = answered.map((a) => a.url);
      summary.blockNumber = first.facts!.blockNumber;
      summary.blockTime = first.facts!.blockTime;
      confirmedTime.set(batchId, first.facts!.blockTime);
    } else if (first.kind === 'notfound') {
      c.anchor.fail('ANCHOR_NOT_FOUND_ERROR', FAIL.anchorNotFound(batchId, ref.txHash, first.url), { batchId, expected: ref.txHash });
    } else {
      c.anchor.fail('ANCHOR_MISMATCH_ERROR', FAIL.anchorChain(batchId, first.field ?? 'chainId', ref.chainId), {
        batchId, ...(first.expected !== undefined ? { expected: first.expected } : {}), ...(first.actual !== undefined ? { actual: first.actual } : {}),
      });
    }
  }
  if (anchorUnchecked !== undefined) {
    c.anchor.status = 'unchecked';
    c.anchor.sentence = anchorUnchecked;
  } else {
    const only = anchors.length === 1 ? anchors[0] : undefined;
    c.anchor.sentence =
      only !== undefined && only.txHash !== undefined
        ? PASS.anchorOne(only.chainId!, only.txHash, only.blockNumber!, only.blockTime!)
        : PASS.anchorMany(anchors.length, anchors[0]?.chainId ?? 0);
  }

  // ---- 8. Time bounds. ---------------------------------------------------------------------------------------
  const bodies = unique.filter((i) => i.reading !== undefined);
  const unsynced = bodies.filter((i) => !i.reading!.clock.synced);
  const bounded = bodies.filter((i) => i.reading!.clock.synced);
  let unconfirmed = false;
  let latest = 0;
  for (const item of bounded) {
    const blockTime = confirmedTime.get(item.entry.batchId);
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
  if (unsynced.length > 0) {
    notes.push({ id: 'clock-unsynced', sentence: NOTE.clockUnsynced(unsynced.length, unsynced[0]!.statement.seq) });
  }
  if (bounded.length === 0) {
    c.time.status = 'not-applicable';
    c.time.sentence = PASS.timeNoBodies();
  } else if (unconfirmed) {
    c.time.status = 'unchecked';
    c.time.sentence = PASS.timeUnconfirmed();
  } else {
    c.time.sentence = PASS.time(latest);
  }

  // ---- 9. Alert. ---------------------------------------------------------------------------------------------
  if (bundle.alert === undefined) {
    c.alert.status = 'not-applicable';
    c.alert.sentence = PASS.alertNone();
  } else {
    c.alert.status = 'unchecked';
    c.alert.sentence = PASS.alertUnsupported();
  }

  // ---- 10. Data flags (informational). -----------------------------------------------------------------------
  if (bodies.length === 0) {
    c.flags.status = 'not-applicable';
    c.flags.sentence = PASS.flagsNoBodies();
  } else {
    const flagged = new Map<string, number[]>();
    let measurements = 0;
    for (const item of bodies) {
      for (const m of item.reading!.meas) {
        measurements++;
        if (m.flag !== undefined && m.flag !== 'N') {
          const seqs = flagged.get(m.flag) ?? [];
          if (!seqs.includes(item.statement.seq)) seqs.push(item.statement.seq);
          flagged.set(m.flag, seqs);
        }
      }
    }
    if (flagged.size === 0) c.flags.sentence = PASS.flagsAllN(measurements);
    else {
      const list = [...flagged.entries()]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([flag, seqs]) => `${flag} × ${seqs.length} (seq ${seqs.slice(0, 5).join(', ')}${seqs.length > 5 ? ', …' : ''})`)
        .join('; ');
      c.flags.sentence = PASS.flagsListed(list);
      notes.push({ id: 'data-flags', sentence: NOTE.dataFlags(list) });
    }
  }

  const summary: Summary = {
    readings: bundle.entries.length,
    bodies: bundle.entries.filter((e) => e.reading !== undefined).length,
    firstSeq,
    lastSeq,
    batches: bundle.batches.length,
    devices: [bundle.device.deviceId, ...otherDevices],
    keyIds,
    keys,
    ingestKeyId: toBase64Url(bundle.ingest.kid),
    anchors,
  };
  return assemble(ORDER.map((id) => c[id].build()), notes, summary);
}

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

interface Answer {
  url: string;
  kind: 'match' | 'mismatch' | 'notfound' | 'unreachable';
  facts?: AnchorFacts;
  field?: AnchorField;
  expected?: string;
  actual?: string;
  /** Equal for answers that agree. */
  fingerprint: string;
}

async function askAll(reader: AnchorReader, ref: AnchorRef, batch: BundleBatch, urls: (string | undefined)[]): Promise<Answer[]> {
  const answers: Answer[] = [];
  for (const rpcUrl of urls) {
    const url = rpcUrl ?? '(anchor reader)';
    try {
      const facts = await reader(ref, batch.batchId, rpcUrl);
      const fingerprint = JSON.stringify([facts.chainId, facts.contract.toLowerCase(), facts.batchId, facts.root.toLowerCase(), facts.size, facts.blockNumber, facts.blockTime]);
      const diff = compareFacts(facts, ref, batch);
      answers.push(diff === undefined ? { url, kind: 'match', facts, fingerprint } : { url, kind: 'mismatch', facts, ...diff, fingerprint });
    } catch (err) {
      const code = codeOf(err);
      if (code === 'ANCHOR_NOT_FOUND') answers.push({ url, kind: 'notfound', fingerprint: 'notfound' });
      else if (code === 'ANCHOR_MISMATCH_ERROR') {
        // The reader's own mismatches: another chain (where.expected/actual are chain ids) or block data that does not fit.
        const where = (err as SteleError).where ?? {};
        const isChain = typeof where.expected === 'number' && typeof where.actual === 'number';
        answers.push({
          url,
          kind: 'mismatch',
          field: isChain ? 'chainId' : 'block',
          ...(isChain ? { expected: String(where.expected), actual: String(where.actual) } : {}),
          fingerprint: `mismatch:${(err as Error).message}`,
        });
      }
      else answers.push({ url, kind: 'unreachable', fingerprint: 'unreachable' });
    }
  }
  return answers;
}

function compareFacts(facts: AnchorFacts, ref: AnchorRef, batch: BundleBatch): { field: AnchorField; expected: string; actual: string } | undefined {
  if (facts.chainId !== ref.chainId) return { field: 'chainId', expected: String(ref.chainId), actual: String(facts.chainId) };
  if (facts.contract.toLowerCase() !== ref.contract.toLowerCase()) return { field: 'contract', expected: ref.contract, actual: facts.contract };
  if (facts.batchId !== batch.batchId) return { field: 'batchId', expected: String(batch.batchId), actual: String(facts.batchId) };
  if (facts.root.toLowerCase() !== hex0x(batch.root)) return { field: 'root', expected: toHex(batch.root), actual: facts.root.replace(/^0x/, '').toLowerCase() };
  if (facts.size !== batch.size) return { field: 'size', expected: String(batch.size), actual: String(facts.size) };
  return undefined;
}

/** State and headline from the checks (VERIFIER.md §4.3). */
function assemble(checks: Check[], notes: Note[], summary: Summary): Verdict {
  const firstFailure = checks.find((k) => k.status === 'fail')?.failures[0];
  if (firstFailure !== undefined) {
    return { state: 'failed', headline: HEADLINE.failed(firstFailure.sentence), checks, notes, summary };
  }
  // Any check left open, the alert recomputation (9) included, keeps the verdict from `verified` (VERIFIER.md §4.3:
  // pass means every check passes).
  const open = checks.filter((k) => k.status === 'unchecked');
  if (open.length > 0) {
    const headline = open.some((k) => k.id === 'anchor') ? HEADLINE.partialAnchor() : HEADLINE.partialOther(open.map((k) => k.title));
    return { state: 'partial', headline, checks, notes, summary };
  }
  return { state: 'verified', headline: HEADLINE.verified(), checks, notes, summary };
}

/**
 * The verdict for a bundle that could not be parsed: check 1 fails with the format error and its JSON path;
 * every other check is unchecked.
 */
export function formatErrorVerdict(err: unknown): Verdict {
  const path = err instanceof SteleError && typeof err.where?.path === 'string' ? err.where.path : '$';
  const detail = err instanceof Error ? err.message : String(err);
  const checks = ORDER.map((id) => {
    const b = new CheckBuilder(id);
    if (id === 'format') b.fail('BUNDLE_FORMAT_ERROR', FAIL.bundleFormat(path, detail), { path });
    else {
      b.status = 'unchecked';
      b.sentence = PASS.notReached();
    }
    return b.build();
  });
  const summary: Summary = { readings: 0, bodies: 0, firstSeq: 0, lastSeq: 0, batches: 0, devices: [], keyIds: [], ingestKeyId: '', anchors: [] };
  return assemble(checks, [], summary);
}

/**
 * Parses and verifies bundle file bytes: what the CLI and the web page call. A file that is not a bundle gives
 * a `failed` verdict with BUNDLE_FORMAT_ERROR (never a throw). `options.rpcUrls` default: each batch's `anchor.rpc`.
 */
export async function verifyBundleBytes(bytes: Uint8Array, options: VerifyOptions = {}): Promise<{ verdict: Verdict; bundle?: EvidenceBundle }> {
  let bundle: EvidenceBundle;
  try {
    bundle = parseBundleBytes(bytes);
  } catch (err) {
    if (codeOf(err) === 'BUNDLE_FORMAT_ERROR') {
      const verdict = formatErrorVerdict(err);
      verdict.summary.bundleSha256 = bundleDigest(bytes);
      return { verdict };
    }
    throw err;
  }
  const verdict = await verifyBundle(bundle, options);
  verdict.summary.bundleSha256 = bundleDigest(bytes);
  return { verdict, bundle };
}
