/**
 * Order and commit: judges one device's group of checked statements against its committed head, in seq order.
 * A statement whose key may sign its seq (FORMAT.md §13.5) and that links to the head (prev = head digest, or the
 * leaf before it in a device-level batch, §3.1) extends the chain; one at or below the head is a duplicate (the
 * same statement again: re-acked) or a fork (recorded, never applied); one ahead of the head is held in the store,
 * once per (device, seq), and the chain check advances over what is held contiguously after the head (statements
 * that came ahead of a gap, possibly to another worker). The caller commits the result in one atomic store step.
 */
import { extendsChain } from '@stele/core';
import { equalBytes, decodeSign1, verifyStatementSignature, findSpan, keyStatusAt, verifyLifecycleSignature, hashLeaf } from '@stele/core';
import { decodeStatementMessage } from '@stele/core/wire';
import type { RejectCode } from '../errors.ts';
import type { DeviceKeys, KeyRegistry } from '../registry/index.ts';
import type { CommitItem, Head, HeldRow, IngestStore } from '../store/index.ts';
import type { Checked, HeadBatch, Incoming, Precheck } from '../verify/statement-check.ts';

/** Most held statements read per step while advancing over them. */
const HELD_STEP = 256;

export interface JudgeContext {
  store: IngestStore;
  /** The key registry as last read from the store (a rotation's announced kid must be new everywhere). */
  registry: KeyRegistry;
  /** Statements held ahead of a device's head at most. */
  reorderLimit: number;
  /** Whether any statement is held anywhere (as last counted): then look for held ones even without a commit. */
  heldKnown: boolean;
  /** The stateless checks (verify/), for a held statement judged again. */
  check: (device: string, m: Incoming) => Promise<Precheck>;
  reject: (device: string, code: RejectCode, seq: number, detail?: string) => void;
  recordFork: (device: string, c: Checked) => Promise<void>;
  /** The device-level batch position of the head statement, when a candidate may need it. */
  headBatchOf: (device: string, head: Head, candidates: Iterable<Checked>) => Promise<(HeadBatch & { seq: number }) | undefined>;
}

export interface GroupVerdict {
  /** Contiguous statements to commit, ending at `head`. */
  commits: CommitItem[];
  head: Head;
  headBatch: (HeadBatch & { seq: number }) | undefined;
  /** The registry draft, changed when `draftChanged` (a rotation or reinstall in the chain). */
  draft: DeviceKeys | undefined;
  draftChanged: boolean;
  /** A duplicate of a committed statement came: confirm the head again. */
  reAck: boolean;
  heldChanged: boolean;
  duplicates: number;
}

export async function judgeGroup(ctx: JudgeContext, device: string, startHead: Head, draft: DeviceKeys | undefined, checks: Precheck[]): Promise<GroupVerdict> {
  // In seq order (rejections first): statements reordered within a group commit without being held.
  checks.sort((a, b) => (a.ok ? a.value.seq : -1) - (b.ok ? b.value.seq : -1));
  let head = startHead;
  const commits: CommitItem[] = [];
  const committedHere = new Map<number, Uint8Array>();
  let reAck = false;
  let heldChanged = false;
  let draftChanged = false;
  let headBatch = await ctx.headBatchOf(device, head, checks.flatMap((r) => (r.ok ? [r.value] : [])));
  let duplicates = 0;

  /** Whether the statement's key may sign its seq now (FORMAT.md §13.5); rejects it when not. */
  const keyCheck = async (c: Checked): Promise<boolean> => {
    const span = draft === undefined || c.device !== device ? undefined : findSpan(draft.keys, c.kid);
    if (!c.verified) {
      // A kid that was not registered at precheck: only a rotation earlier in this group can have announced it.
      if (span === undefined) {
        ctx.reject(device, 'UNKNOWN_KEY_ERROR', c.seq, 'kid not enrolled');
        return false;
      }
      const ok = c.parsed !== undefined ? await verifyStatementSignature(c.parsed, span.publicKey) : await verifyLifecycleSignature(c.lifecycle!, span.publicKey);
      if (!ok) {
        ctx.reject(device, 'SIGNATURE_ERROR', c.seq);
        return false;
      }
      c.verified = true;
    }
    const status = keyStatusAt(span, c.seq);
    if (status === 'valid') return true;
    const detail =
      status === 'KEY_REVOKED_ERROR' ? `key revoked after seq ${span!.revokedAfter}` : status === 'KEY_ROTATED_ERROR' ? `key rotated out at seq ${span!.until}` : `key valid from seq ${span?.from}`;
    ctx.reject(device, status, c.seq, detail);
    return false;
  };

  const tryCommit = (c: Checked): boolean => {
    // Hash-only inside a device-level batch (FORMAT.md §3.1): the head must be the leaf before it in the same
    // signed tree, whose digest is then the one this reading's body links to.
    const linked = extendsChain(c, { digest: head.digest, batch: headBatch?.seq === head.seq ? headBatch : undefined });
    if (!linked) {
      ctx.reject(device, 'CHAIN_LINK_ERROR', c.seq, c.prev !== undefined ? 'prev is not the digest of the committed reading seq - 1' : 'the committed seq - 1 is not the leaf before it in its device batch');
      return false;
    }
    const body = c.lifecycle?.body;
    if (body !== undefined && draft !== undefined) {
      if (body.type === 'rotation') {
        // The announced key must be new everywhere: a kid belongs to one device, one span, forever.
        if (ctx.registry.deviceOfKid(body.kid) !== undefined || findSpan(draft.keys, body.kid) !== undefined) {
          ctx.reject(device, 'LIFECYCLE_ERROR', c.seq, 'the rotation announces a key that is already enrolled');
          return false;
        }
        const old = findSpan(draft.keys, c.kid)!;
        old.until = c.seq;
        draft.keys.push({ kid: body.kid, publicKey: body.key, backend: body.backend, from: c.seq + 1, via: 'rotation' });
      }
      draft.chained.push(c.seq);
      draftChanged = true;
    }
    const entry: CommitItem['entry'] = { statement: c.statement, receivedAt: c.receivedAt };
    if (c.reading !== undefined) entry.reading = c.reading;
    const item: CommitItem = { seq: c.seq, entry, leafHash: hashLeaf(c.statement) };
    if (c.index !== undefined) item.index = c.index;
    commits.push(item);
    committedHere.set(c.seq, c.statement);
    // The chain digest is the statement payload for a reading (FORMAT.md §3), so hash-only mode keeps the chain too.
    head = { seq: c.seq, digest: c.digest };
    headBatch = c.batch === undefined ? undefined : { seq: c.seq, ...c.batch };
    return true;
  };

  /**
   * The chain check advancing over what the store holds contiguously after the head (statements that came
   * ahead of a gap, possibly to another worker). Each is judged again: a revocation or rotation may have come
   * since it was held. One that fails is dropped (the gateway resends what is not confirmed). The run that
   * continues the head is checked at once (decode and signature are stateless; with two workers on a shared
   * subscription most statements come this way, and one check at a time left the signature thread a job per
   * round trip), then judged in order.
   */
  const advanceOverHeld = async (): Promise<void> => {
    for (;;) {
      const held = await ctx.store.listHeldRun(device, head.seq + 1, HELD_STEP);
      if (held.length === 0) return;
      // a held row is the message as received, with whether its signature was checked (HeldRow.signatureChecked)
      const checked = await Promise.all(held.map((h) => ctx.check(device, h)));
      for (const [i, r] of checked.entries()) {
        const seq = held[i]!.seq;
        if (!r.ok || r.value.seq !== seq) {
          if (!r.ok) ctx.reject(device, r.code, seq, r.detail);
          await ctx.store.dropHeld(device, seq);
          heldChanged = true;
          return;
        }
        if (r.value.prev === undefined && headBatch === undefined) headBatch = await ctx.headBatchOf(device, head, [r.value]);
        if (!(await keyCheck(r.value)) || !tryCommit(r.value)) {
          await ctx.store.dropHeld(device, seq);
          heldChanged = true;
          return;
        }
        heldChanged = true;
      }
      if (held.length < HELD_STEP) return;
    }
  };

  /**
   * Statements of this group ahead of the head: committed from here as soon as the group fills the gap before them
   * (judged again for their key, since a rotation or revocation may have committed in between), else held in the
   * store in one write once the group is judged (one synced write per group, not one per statement).
   */
  const ahead = new Map<number, Checked>();
  const advanceOverAhead = async (): Promise<void> => {
    for (let next = ahead.get(head.seq + 1); next !== undefined; next = ahead.get(head.seq + 1)) {
      ahead.delete(next.seq);
      if (!(await keyCheck(next)) || !tryCommit(next)) return;
    }
  };
  /** A statement for a seq the head has passed: the committed one again (re-acked), or a fork (kept). */
  const judgePassed = async (c: Checked): Promise<void> => {
    const existing = committedHere.get(c.seq) ?? (await ctx.store.getEntry(device, c.seq))?.statement;
    if (existing !== undefined && sameStatement(existing, c.statement)) {
      duplicates++;
      reAck = true;
    } else {
      await ctx.recordFork(device, c);
    }
  };

  for (const r of checks) {
    if (!r.ok) {
      ctx.reject(device, r.code, r.seq, r.detail);
      continue;
    }
    const c = r.value;
    const seq = c.seq;
    if (!(await keyCheck(c))) continue;
    if (seq <= head.seq) {
      await judgePassed(c);
    } else if (seq === head.seq + 1) {
      // Held statements may continue it; look only when some are known (one read per group otherwise, below).
      if (tryCommit(c)) {
        await advanceOverAhead();
        if (ctx.heldKnown || heldChanged) await advanceOverHeld();
      }
    } else {
      const other = ahead.get(seq);
      if (other === undefined) ahead.set(seq, c);
      else if (sameStatement(other.statement, c.statement)) duplicates++;
      else await ctx.recordFork(device, c);
    }
  }
  // What is still ahead is held in the store, once per (device, seq), until the gap fills. Another worker sharing
  // the store may have committed up to the gap while this group judged against an older head, and looked for held
  // statements before these were written: the caller reads the store's head again once the group is done and
  // advances over what is held (service.ts processGroup). (Judging the group again here instead made every hold
  // under two workers a conflict, and groups were given up.)
  if (ahead.size > 0) {
    const seqs = [...ahead.keys()].sort((a, b) => a - b);
    // what is held from the first of these seqs to the last (held rows beyond the last carry payloads not needed here)
    const span = Math.min(ctx.reorderLimit, seqs.at(-1)! - seqs[0]! + 1);
    const held = new Map((await ctx.store.listHeld(device, seqs[0]!, span)).map((h) => [h.seq, h]));
    let room = ctx.reorderLimit - (await ctx.store.countHeld(device));
    const rows: HeldRow[] = [];
    for (const seq of seqs) {
      const c = ahead.get(seq)!;
      const already = held.get(seq);
      if (seq <= head.seq) await judgePassed(c);
      else if (already !== undefined) {
        if (sameStatement(statementOf(already.payload), c.statement)) duplicates++;
        else await ctx.recordFork(device, c);
      } else if (room <= 0) {
        ctx.reject(device, 'INGEST_REORDER_FULL', seq, `seq is ahead of head ${head.seq} and the reorder buffer is full`);
      } else {
        rows.push({ seq, payload: c.payload, receivedAt: c.receivedAt, ...(c.verified ? { signatureChecked: true as const } : {}) });
        room--;
      }
    }
    if (rows.length > 0 && (await ctx.store.holdAll(device, rows)).length > 0) heldChanged = true;
  }
  // What is held may continue the head now: held by this group, or by another worker sharing the store.
  if (commits.length > 0 || heldChanged || ctx.heldKnown) await advanceOverHeld();

  // The head is kept per device after the group (service.ts heads): a digest of its own, not a view into the buffer
  // its message was decoded from (statement-check.ts decodes views), which it would keep alive.
  return { commits, head: { seq: head.seq, digest: head.digest.slice() }, headBatch, draft, draftChanged, reAck, heldChanged, duplicates };
}

/**
 * The statement inside a held message (FORMAT.md §11 envelope); empty bytes when it holds none. Held messages
 * passed ingest's size bound when they came, so their own length is the bound here.
 */
export function statementOf(payload: Uint8Array): Uint8Array {
  try {
    return decodeStatementMessage(payload, payload.byteLength).statement;
  } catch {
    return new Uint8Array(0);
  }
}

/**
 * Statement identity at ingest (issue #8): the protected header and the payload, what the signature covers. ECDSA
 * signatures are malleable (s -> n - s verifies too, and FORMAT.md §0 requires accepting high S), so anyone who saw
 * a statement can make a second, valid one with other bytes: that is the same statement again (a duplicate),
 * never a fork of the device's chain.
 */
export function sameStatement(a: Uint8Array, b: Uint8Array): boolean {
  if (equalBytes(a, b)) return true;
  try {
    const x = decodeSign1(a);
    const y = decodeSign1(b);
    return equalBytes(x.protectedBytes, y.protectedBytes) && x.payload !== null && y.payload !== null && equalBytes(x.payload, y.payload);
  } catch {
    return false;
  }
}

