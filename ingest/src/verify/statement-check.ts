/**
 * Receive and verify, the stateless part: a message from the broker (untrusted) becomes a checked statement or a
 * coded rejection. Decodes the FORMAT.md §11 envelope, parses the statement (a reading, §3, or a device's
 * lifecycle statement, §13), checks that the kid belongs to the device named by the statement and the topic, the
 * signature when the kid is registered, and the reading body against the signed digest. Key validity for the seq
 * and the chain link are judged later, in order, against the store (service.ts processGroup).
 */
import {
  equalBytes,
  checkStatementAgainstReading,
  parseStatement,
  type ParsedStatement,
  SteleError,
  isChainedType,
  isLifecycleStatement,
  parseLifecycleStatement,
  type ParsedLifecycle,
  type Reading,
} from '@stele/core';
import { decodeStatementMessage, WireError, type StatementMessage } from '@stele/core/wire';
import type { RejectCode } from '../errors.ts';
import type { KeyRegistry } from '../registry/index.ts';
import type { IndexFields } from '../store/types.ts';

export interface Incoming {
  /** Ingest's own copy, never changed: what is decoded from it may be views into it. */
  payload: Uint8Array;
  receivedAt: number;
  /** Only for a statement held in ingest's own store (HeldRow.signatureChecked): its signature is not checked again. */
  signatureChecked?: true;
}

export interface Checked {
  /** The message as received: what is held in the store when the statement is ahead of the head. */
  payload: Uint8Array;
  statement: Uint8Array;
  /** The reading statement, or undefined for a lifecycle statement (rotation, reinstall). */
  parsed?: ParsedStatement;
  lifecycle?: ParsedLifecycle;
  kid: Uint8Array;
  /** The statement's `sub`. */
  device: string;
  seq: number;
  /**
   * What the statement links to: its signed prev, or the reading body's prev for a reading of a device-level batch
   * past its first (FORMAT.md §3.1); undefined for such a reading sent hash-only, linked by `batch` instead.
   */
  prev: Uint8Array | undefined;
  /** Its place in a device-level batch (FORMAT.md §3.1): the signed root and its leaf index. */
  batch?: HeadBatch;
  /** Chain digest: the reading digest (payload), or SHA-256 of a lifecycle body (FORMAT.md §13.3). */
  digest: Uint8Array;
  reading?: Uint8Array;
  /** What the store indexes of `reading` (decoded once, here). */
  index?: IndexFields;
  receivedAt: number;
  /**
   * False while the kid is not registered: a key announced by a rotation not committed yet. Its signature and
   * validity are then judged in order, when the statement's turn comes (processGroup).
   */
  verified: boolean;
}

/** Where a committed statement sits in its device-level batch (FORMAT.md §3.1). */
export interface HeadBatch {
  root: Uint8Array;
  index: number;
}

export type Precheck = { ok: true; value: Checked } | { ok: false; code: RejectCode; seq: number; detail?: string };

export interface StatementCheckContext {
  /** Larger payloads are INGEST_OVERSIZE. */
  maxMessageBytes: number;
  /** The key registry as last read from the store (kid -> device, key spans). */
  registry: KeyRegistry;
  /** Checks an ES256 signature (the signature thread, signature-thread.ts); same answers as core's verifyEs256. */
  verifySignature: (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) => Promise<boolean>;
}

/** The message is ingest's own copy (Incoming.payload): its parts are decoded as views into it, not copied. */
const VIEWS = { views: true } as const;

export async function checkStatement(ctx: StatementCheckContext, topicDevice: string, m: Incoming): Promise<Precheck> {
  let envelope: StatementMessage;
  try {
    envelope = decodeStatementMessage(m.payload, ctx.maxMessageBytes, VIEWS);
  } catch (e) {
    if (!(e instanceof WireError)) throw e;
    return { ok: false, code: e.code === 'WIRE_LIMIT_ERROR' ? 'INGEST_OVERSIZE' : 'INGEST_MALFORMED', seq: 0, detail: errorText(e) };
  }
  const { statement, reading } = envelope;
  // A reading statement (§3) or a lifecycle statement (FORMAT.md §13): the content type tells them apart. A reading
  // statement has none (label 3 is not one of its labels), so a statement parseStatement takes is never a lifecycle
  // one, and the first is tried first (it is nearly every message; the statement is decoded once).
  let parsed: ParsedStatement | undefined;
  let lifecycle: ParsedLifecycle | undefined;
  try {
    try {
      parsed = parseStatement(statement, VIEWS);
    } catch (e) {
      if (!(e instanceof SteleError) || !isLifecycleStatement(statement)) throw e;
      lifecycle = parseLifecycleStatement(statement);
    }
  } catch (e) {
    if (e instanceof SteleError) return { ok: false, code: 'STATEMENT_FORMAT_ERROR', seq: 0, detail: errorText(e) };
    throw e;
  }
  if (lifecycle !== undefined && !isChainedType(lifecycle.body.type)) {
    // Enrolment and revocation are ingest's own statements; a device never sends them.
    return { ok: false, code: 'LIFECYCLE_ERROR', seq: 0, detail: `a device may not send a ${lifecycle.body.type} statement` };
  }
  const seq = parsed?.seq ?? lifecycle!.seq!;
  const c: Checked = {
    statement,
    kid: parsed?.kid ?? lifecycle!.kid,
    device: parsed?.device ?? lifecycle!.device,
    seq,
    prev: parsed !== undefined ? parsed.prev : lifecycle!.prev!,
    digest: parsed?.payload ?? lifecycle!.digest,
    payload: m.payload,
    receivedAt: m.receivedAt,
    verified: false,
  };
  if (parsed !== undefined) c.parsed = parsed;
  if (parsed?.batch !== undefined) c.batch = { root: parsed.batch.root, index: parsed.batch.index };
  if (lifecycle !== undefined) c.lifecycle = lifecycle;
  const owner = ctx.registry.deviceOfKid(c.kid);
  if (owner !== undefined && (owner !== c.device || owner !== topicDevice)) {
    return { ok: false, code: 'UNKNOWN_KEY_ERROR', seq, detail: `kid is enrolled for ${owner}, statement names ${c.device} on topic of ${topicDevice}` };
  }
  if (owner === undefined && c.device !== topicDevice) {
    return { ok: false, code: 'UNKNOWN_KEY_ERROR', seq, detail: `statement names ${c.device} on topic of ${topicDevice}` };
  }
  const span = owner === undefined ? undefined : ctx.registry.span(c.kid);
  if (span !== undefined) {
    // the statement's Sig_structure and signature (verifyStatementSignature / verifyLifecycleSignature check the same)
    if (m.signatureChecked !== true) {
      const signed = parsed ?? lifecycle!;
      const ok = await ctx.verifySignature(span.publicKey, signed.toBeSigned, signed.signature);
      if (!ok) return { ok: false, code: 'SIGNATURE_ERROR', seq };
    }
    c.verified = true;
  }
  if (reading !== undefined && parsed !== undefined) {
    let result: ReturnType<typeof checkStatementAgainstReading>;
    const out: { reading?: Reading } = {};
    try {
      result = checkStatementAgainstReading(parsed, reading, out, VIEWS);
    } catch (e) {
      if (e instanceof SteleError) return { ok: false, code: 'READING_FORMAT_ERROR', seq, detail: errorText(e) };
      throw e;
    }
    if (result === 'DIGEST_MISMATCH') return { ok: false, code: 'DIGEST_MISMATCH_ERROR', seq };
    if (result === 'HEADER_MISMATCH') return { ok: false, code: 'HEADER_MISMATCH_ERROR', seq };
    c.reading = reading;
    const decoded = out.reading!;
    c.index = { raw: decoded.raw.filter((d) => d.length === 32), deviceTime: decoded.time };
    // Inside a device-level batch the statement signs no prev of its own: the body's prev is the link (§3.1).
    c.prev ??= decoded.prev;
  } else if (reading !== undefined && !equalBytes(reading, lifecycle!.bodyBytes)) {
    // The outbox sends a lifecycle body beside its statement in full mode; it must be the attached one.
    return { ok: false, code: 'DIGEST_MISMATCH_ERROR', seq };
  }
  return { ok: true, value: c };
}

function errorText(e: unknown): string {
  if (e instanceof SteleError) return `${e.code}: ${e.message}`;
  return e instanceof Error ? e.message : String(e);
}
