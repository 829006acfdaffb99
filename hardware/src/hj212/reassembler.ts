/**
 * Split packets (HJ 212-2017 §6.3.2 PNUM/PNO, tables C.49/C.50): when an upload does not fit, the station sends
 * PNUM=n;PNO=k (k = 1..n), each part with its own QN and CRC, the same DataTime, and a subset of the items.
 * Parts are grouped by (MN, CN, DataTime, PNUM), not QN. Only each part is CRC-protected, never the set, so a
 * message is complete only when every PNO 1..PNUM has arrived. Pure: the caller supplies the time.
 */
import { Hj212Error } from './errors.ts';
import { record } from './segment.ts';
import type { Hj212Cp, Hj212Frame } from './types.ts';

export interface Hj212MessageKey {
  mn: string;
  cn: string;
  dataTime: string;
  pnum: number;
}

/** One logical message: a single unsplit frame, or every part of a split one in PNO order. */
export interface Hj212Message {
  /** Undefined for an unsplit frame. */
  key?: Hj212MessageKey;
  frames: Hj212Frame[];
  /** The parts' CP areas merged in PNO order (item_order concatenated; a later part's sub-field wins). */
  cp: Hj212Cp;
}

export type Hj212ReassemblyEvent =
  | { kind: 'message'; message: Hj212Message }
  /** A group given up: parts that conflict, or evicted (too many open groups) or expired before completion. */
  | { kind: 'incomplete'; key: Hj212MessageKey; frames: Hj212Frame[]; error: Hj212Error };

export interface Hj212ReassemblerOptions {
  /** Open groups kept at most; the oldest is given up beyond. Default 64. */
  maxGroups?: number;
}

interface Group {
  key: Hj212MessageKey;
  parts: Map<number, Hj212Frame>;
  firstSeenMs: number;
}

export class Hj212Reassembler {
  private readonly groups = new Map<string, Group>();
  private readonly maxGroups: number;

  constructor(options: Hj212ReassemblerOptions = {}) {
    const max = options.maxGroups ?? 64;
    if (!Number.isInteger(max) || max < 1) throw new RangeError('options.maxGroups must be a positive integer');
    this.maxGroups = max;
  }

  /** Open (incomplete) groups. */
  get pending(): number {
    return this.groups.size;
  }

  /** Adds a decoded frame; returns the messages it completes and the groups it forces out. */
  add(frame: Hj212Frame, nowMs = 0): Hj212ReassemblyEvent[] {
    const h = frame.parsed.header;
    if (h.PNUM === undefined && h.PNO === undefined) {
      return [{ kind: 'message', message: { frames: [frame], cp: frame.parsed.cp } }];
    }
    const pnum = Number(h.PNUM);
    const pno = Number(h.PNO);
    const key: Hj212MessageKey = { mn: h.MN ?? '', cn: h.CN ?? '', dataTime: frame.parsed.cp.params.DataTime ?? '', pnum };
    if (!(Number.isInteger(pnum) && Number.isInteger(pno) && pnum >= 1 && pno >= 1 && pno <= pnum && pnum <= 9999)) {
      const error = new Hj212Error('HJ212_REASSEMBLY', `bad PNUM/PNO: ${String(h.PNUM)}/${String(h.PNO)}`, { offset: frame.offset, length: frame.raw.length });
      return [{ kind: 'incomplete', key, frames: [frame], error }];
    }
    const id = JSON.stringify([key.mn, key.cn, key.dataTime, key.pnum]);
    const events: Hj212ReassemblyEvent[] = [];
    let group = this.groups.get(id);
    if (group === undefined) {
      group = { key, parts: new Map(), firstSeenMs: nowMs };
      this.groups.set(id, group);
      while (this.groups.size > this.maxGroups) {
        const [oldId, old] = this.groups.entries().next().value as [string, Group];
        this.groups.delete(oldId);
        events.push(this.giveUp(old, 'evicted: too many open split messages'));
      }
    }
    const prev = group.parts.get(pno);
    if (prev !== undefined && !sameBytes(prev.raw, frame.raw)) {
      // Two different parts claim the same PNO: the set cannot be trusted.
      this.groups.delete(id);
      events.push(this.giveUp(group, `two different frames for PNO ${pno}`, frame));
      return events;
    }
    group.parts.set(pno, frame);
    if (group.parts.size === pnum) {
      this.groups.delete(id);
      const frames = [...group.parts.entries()].sort((a, b) => a[0] - b[0]).map(([, f]) => f);
      events.push({ kind: 'message', message: { key, frames, cp: mergeCp(frames) } });
    }
    return events;
  }

  /** Gives up groups first seen more than `maxAgeMs` before `nowMs`. */
  expire(nowMs: number, maxAgeMs: number): Hj212ReassemblyEvent[] {
    const events: Hj212ReassemblyEvent[] = [];
    for (const [id, g] of this.groups) {
      if (nowMs - g.firstSeenMs > maxAgeMs) {
        this.groups.delete(id);
        events.push(this.giveUp(g, `expired after ${maxAgeMs} ms with ${g.parts.size} of ${g.key.pnum} parts`));
      }
    }
    return events;
  }

  private giveUp(g: Group, why: string, extra?: Hj212Frame): Hj212ReassemblyEvent {
    const frames = [...g.parts.values()];
    if (extra !== undefined) frames.push(extra);
    const first = frames[0];
    const error = new Hj212Error('HJ212_REASSEMBLY', `split message ${g.key.mn}/${g.key.cn}/${g.key.dataTime}: ${why}`, {
      offset: first?.offset ?? 0,
      length: first?.raw.length ?? 0,
    });
    return { kind: 'incomplete', key: g.key, frames, error };
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function mergeCp(frames: Hj212Frame[]): Hj212Cp {
  const params = record<string>();
  const items = record<Record<string, string>>();
  const item_order: string[] = [];
  for (const f of frames) {
    const cp = f.parsed.cp;
    for (const [k, v] of Object.entries(cp.params)) params[k] = v;
    for (const code of cp.item_order) {
      let item = items[code];
      if (item === undefined) {
        item = record<string>();
        items[code] = item;
        item_order.push(code);
      }
      Object.assign(item, cp.items[code]);
    }
  }
  return { params, items, item_order };
}
