/**
 * Which device key is valid for which seq (docs/FORMAT.md §13.5). Validity is a function of the seq only, never
 * of a clock: device time is untrusted (§8), and ingest's own moments (a revocation) are turned into seqs when
 * ingest logs them (`after` = the device's committed head at that moment). Shared by ingest (accept or reject)
 * and the verifier (check 2), so that both judge a statement the same way.
 */
import { equalBytes, toHex } from '../bytes.ts';
import { assertP256PublicKey, keyIdOf } from '../keys.ts';
import type { KeyBackend } from '../signer.ts';
import { verifyLifecycleSignature, isChainedType, type ParsedLifecycle } from './statement.ts';

/** One device key and the seqs it may sign. */
export interface KeySpan {
  kid: Uint8Array;
  publicKey: Uint8Array;
  backend: KeyBackend;
  /** First seq the key may sign. */
  from: number;
  /** Last seq the key may sign: the seq of the rotation statement that handed over to the next key. */
  until?: number;
  /** Revoked: statements under this key with seq > revokedAfter are invalid. */
  revokedAfter?: number;
  /** How the key came in: an enrolment statement, a rotation statement, or (bundles without lifecycle data) the record. */
  via: 'enrolment' | 'rotation' | 'record';
}

/** What a key is worth at a seq: `valid`, or the code of why not (FORMAT.md §10). */
export type KeyStatus = 'valid' | 'UNKNOWN_KEY_ERROR' | 'KEY_REVOKED_ERROR' | 'KEY_ROTATED_ERROR';

/**
 * The status of a statement at `seq` signed by the key of `span`: no span (kid never enrolled) or seq before the
 * key's start -> UNKNOWN_KEY_ERROR; revoked and seq > revokedAfter -> KEY_REVOKED_ERROR; rotated out and
 * seq > until -> KEY_ROTATED_ERROR; else valid.
 */
export function keyStatusAt(span: KeySpan | undefined, seq: number): KeyStatus {
  if (!Number.isSafeInteger(seq) || seq < 1) throw new RangeError('seq must be a safe integer >= 1');
  if (span === undefined || seq < span.from) return 'UNKNOWN_KEY_ERROR';
  if (span.revokedAfter !== undefined && seq > span.revokedAfter) return 'KEY_REVOKED_ERROR';
  if (span.until !== undefined && seq > span.until) return 'KEY_ROTATED_ERROR';
  return 'valid';
}

/** The span of `kid` among `spans`. */
export function findSpan(spans: readonly KeySpan[], kid: Uint8Array): KeySpan | undefined {
  return spans.find((s) => equalBytes(s.kid, kid));
}

/** Why a lifecycle statement was not applied. */
export type TimelineProblemReason =
  | 'other-device' // the statement names another device
  | 'not-ingest-key' // an enrolment or revocation not under the ingest key
  | 'bad-signature' // the signature does not verify
  | 'signer-not-valid' // a rotation or reinstall signed by a key not valid at its seq (code says why)
  | 'key-reused'; // a rotation or enrolment announcing a key already in the timeline

export interface TimelineProblem {
  code: 'UNKNOWN_KEY_ERROR' | 'KEY_REVOKED_ERROR' | 'KEY_ROTATED_ERROR' | 'SIGNATURE_ERROR';
  reason: TimelineProblemReason;
  /** Index of the statement in the input list. */
  index: number;
  type: ParsedLifecycle['body']['type'];
  seq?: number;
  /** Hex kid of the signer. */
  kid: string;
}

export interface KeyTimeline {
  /** In order of appearance: enrolments (log order), then rotated-in keys (seq order). */
  spans: KeySpan[];
  /** Per input statement: whether it was applied (false: see problems; undefined input: false). */
  applied: boolean[];
  problems: TimelineProblem[];
}

/**
 * Builds the key timeline of `deviceId` from its lifecycle statements (FORMAT.md §13.5), untrusted:
 * 1. enrolment and revocation statements count only under the ingest key (kid and signature);
 * 2. enrolments add a key valid from their `from`; revocations mark `revokedAfter` (the lowest `after` wins);
 * 3. rotations and reinstalls, in seq order, count only when signed by a key valid at their seq; a rotation
 *    ends the signing key at its seq and starts the announced key at seq + 1.
 * A statement that fails a rule is reported and not applied. Undefined entries (statements that did not parse)
 * are skipped.
 */
export async function buildKeyTimeline(
  deviceId: string,
  ingestPublicKey: Uint8Array,
  statements: readonly (ParsedLifecycle | undefined)[],
): Promise<KeyTimeline> {
  let ingestKid: Uint8Array | undefined;
  try {
    assertP256PublicKey(ingestPublicKey);
    ingestKid = keyIdOf(ingestPublicKey);
  } catch {
    ingestKid = undefined; // every ingest-signed statement then fails its signature
  }
  const spans: KeySpan[] = [];
  const applied = statements.map(() => false);
  const problems: TimelineProblem[] = [];
  const revoked = new Map<string, number>();
  const problem = (index: number, st: ParsedLifecycle, code: TimelineProblem['code'], reason: TimelineProblemReason): void => {
    const p: TimelineProblem = { code, reason, index, type: st.body.type, kid: toHex(st.kid) };
    if (st.seq !== undefined) p.seq = st.seq;
    problems.push(p);
  };
  const safeVerify = async (st: ParsedLifecycle, key: Uint8Array): Promise<boolean> => {
    try {
      return await verifyLifecycleSignature(st, key);
    } catch {
      return false;
    }
  };

  // 1 + 2: ingest-signed statements, in the order given (log order).
  for (const [index, st] of statements.entries()) {
    if (st === undefined || isChainedType(st.body.type)) continue;
    if (st.device !== deviceId) {
      problem(index, st, 'UNKNOWN_KEY_ERROR', 'other-device');
      continue;
    }
    if (ingestKid === undefined || !equalBytes(st.kid, ingestKid)) {
      problem(index, st, 'UNKNOWN_KEY_ERROR', 'not-ingest-key');
      continue;
    }
    if (!(await safeVerify(st, ingestPublicKey))) {
      problem(index, st, 'SIGNATURE_ERROR', 'bad-signature');
      continue;
    }
    const body = st.body;
    if (body.type === 'enrolment') {
      const known = findSpan(spans, body.kid);
      if (known !== undefined) {
        if (known.from !== body.from) {
          problem(index, st, 'UNKNOWN_KEY_ERROR', 'key-reused');
          continue;
        }
      } else {
        spans.push({ kid: body.kid, publicKey: body.key, backend: body.backend, from: body.from, via: 'enrolment' });
      }
    } else if (body.type === 'revocation') {
      const k = toHex(body.kid);
      revoked.set(k, Math.min(revoked.get(k) ?? Number.MAX_SAFE_INTEGER, body.after));
    }
    applied[index] = true;
  }
  const applyRevocation = (span: KeySpan): void => {
    const after = revoked.get(toHex(span.kid));
    if (after !== undefined) span.revokedAfter = after;
  };
  spans.forEach(applyRevocation);

  // 3: chained statements in seq order (a stable sort keeps the input order among equal seqs).
  const chained = statements
    .map((st, index) => ({ st, index }))
    .filter((x): x is { st: ParsedLifecycle; index: number } => x.st !== undefined && isChainedType(x.st.body.type))
    .sort((a, b) => a.st.seq! - b.st.seq!);
  for (const { st, index } of chained) {
    if (st.device !== deviceId) {
      problem(index, st, 'UNKNOWN_KEY_ERROR', 'other-device');
      continue;
    }
    const signer = findSpan(spans, st.kid);
    const status = keyStatusAt(signer, st.seq!);
    if (status !== 'valid') {
      problem(index, st, status, 'signer-not-valid');
      continue;
    }
    if (!(await safeVerify(st, signer!.publicKey))) {
      problem(index, st, 'SIGNATURE_ERROR', 'bad-signature');
      continue;
    }
    const body = st.body;
    if (body.type === 'rotation') {
      if (findSpan(spans, body.kid) !== undefined) {
        problem(index, st, 'UNKNOWN_KEY_ERROR', 'key-reused');
        continue;
      }
      signer!.until = Math.min(signer!.until ?? Number.MAX_SAFE_INTEGER, st.seq!);
      const span: KeySpan = { kid: body.kid, publicKey: body.key, backend: body.backend, from: st.seq! + 1, via: 'rotation' };
      applyRevocation(span);
      spans.push(span);
    }
    applied[index] = true;
  }
  return { spans, applied, problems };
}
