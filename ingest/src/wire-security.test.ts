/**
 * Issue #8, ingest's side of the wire: confirmations signed with the ingest key (FORMAT.md §11.1), statement
 * identity (a high-S twin is a duplicate, never a fork), and bounded receiving.
 */
import { describe, expect, it } from 'vitest';
import { equalBytes } from '@stele/core';
import { checkConfirmation, decodeSign1, encodeSign1, type ParsedConfirmation } from '@stele/core/cose';
import { toHighS } from '@stele/core/testing';
import { envelope, makeChain, useIngestStack, waitFor } from './test-helpers.ts';

const stack = useIngestStack('ingest-wire');
let devices = 0;
const nextId = () => `gw-wire-${++devices}`;

describe('confirmations', () => {
  it('are signed by the ingest key, name the device and the committed head digest; anchoring sends an anchored one', async () => {
    const s = await stack.setup({ deviceId: nextId(), dirPrefix: 'ingest-wire' });
    const chain = await makeChain(s.device, s.deviceId, 6);
    for (const r of chain) await s.gw.publish(r);
    await waitFor(() => s.gw.ackedUpTo === 6, 'stored up to 6');
    for (const c of s.gw.confirmations) {
      const checked = await checkConfirmation(encodeOf(c), { publicKey: s.ingestKey.publicKey, device: s.deviceId });
      expect(equalBytes(checked.head, chain[checked.upTo - 1]!.digest)).toBe(true);
    }
    expect(s.gw.badAcks).toBe(0);
    await s.ingest.flush();
    await waitFor(() => s.gw.confirmations.some((c) => c.type === 'anchored'), 'anchored confirmation');
    const anchored = s.gw.confirmations.find((c) => c.type === 'anchored')!;
    expect(anchored.upTo).toBe(6);
    expect(equalBytes(anchored.head, chain[5]!.digest)).toBe(true);
  });
});

describe('statement identity', () => {
  it('counts the high-S twin of a committed or held statement as a duplicate, never a fork', async () => {
    const s = await stack.setup({ deviceId: nextId(), dirPrefix: 'ingest-wire' });
    const chain = await makeChain(s.device, s.deviceId, 4);
    const twin = (st: Uint8Array) => {
      const c = decodeSign1(st);
      return encodeSign1({ ...c, signature: toHighS(c.signature) });
    };
    await s.gw.publish(chain[0]!);
    await waitFor(() => s.gw.ackedUpTo === 1, 'stored 1');
    // the twin of a committed statement (seq 1) and of a held one (seq 3, ahead of the head)
    await s.gw.publish({ statement: twin(chain[0]!.statement), reading: chain[0]!.reading });
    await s.gw.publish(chain[2]!);
    await s.gw.publish({ statement: twin(chain[2]!.statement), reading: chain[2]!.reading });
    await waitFor(() => s.ingest.stats().duplicates === 2, 'two duplicates');
    await s.gw.publish(chain[1]!);
    await s.gw.publish(chain[3]!);
    await waitFor(() => s.gw.ackedUpTo === 4, 'stored 4');
    expect(s.ingest.stats().rejected).toEqual({});
    expect(await s.ingest.forks(s.deviceId)).toEqual([]);
  });
});

describe('bounded receiving', () => {
  it('sheds beyond the receive queue bound (counted, INGEST_QUEUE_FULL) and rate-limits reject logs and messages', async () => {
    const lines: string[] = [];
    const s = await stack.setup({
      deviceId: nextId(),
      dirPrefix: 'ingest-wire',
      options: { maxQueuedPerDevice: 2, rejectsPerDevicePerSecond: 3, log: (level, msg) => void (msg === 'statement rejected' && lines.push(level)) },
    });
    const chain = await makeChain(s.device, s.deviceId, 1);
    const bytes = envelope(chain[0]!);
    // 300 copies in one burst: they arrive faster than a group is verified
    await Promise.all(Array.from({ length: 300 }, () => s.gw.publishRaw(bytes)));
    await waitFor(() => s.ingest.stats().shed > 0 && s.ingest.stats().queued === 0, 'shed and drained');
    const st = s.ingest.stats();
    expect(st.rejected['INGEST_QUEUE_FULL']).toBe(st.shed);
    expect(st.rejectsSuppressed).toBeGreaterThan(0);
    // at most 3 per second were logged (the burst spans a second boundary at most a few times)
    expect(lines.length).toBeLessThanOrEqual(3 * 4);
    expect(s.ingest.head(s.deviceId).seq).toBe(1);
  });
});

describe('bounded receiving by bytes', () => {
  it('sheds a message that would take the queued bytes of all devices past maxQueuedBytes, and counts them back to 0', async () => {
    const bounded = await stack.setup({ deviceId: nextId(), dirPrefix: 'ingest-wire', options: { maxQueuedBytes: 1000 } });
    const own = envelope((await makeChain(bounded.device, bounded.deviceId, 1))[0]!);
    // one message fits, three do not
    expect(own.length).toBeLessThan(1000);
    expect(3 * own.length).toBeGreaterThan(1000);
    // 300 copies in one burst, as above: beyond 1000 bytes waiting, the rest is shed
    await Promise.all(Array.from({ length: 300 }, () => bounded.gw.publishRaw(own)));
    await waitFor(() => bounded.ingest.stats().shed > 0 && bounded.ingest.stats().queued === 0, 'shed and drained');
    const st = bounded.ingest.stats();
    expect(st.rejected['INGEST_QUEUE_FULL']).toBe(st.shed);
    expect(st.queuedBytes).toBe(0);
    expect(st.queuedBytesLimit).toBe(1000);
    expect(bounded.ingest.head(bounded.deviceId).seq).toBe(1);
  });
});

/** The confirmation bytes again (parse keeps its parts; it is deterministic CBOR, so this is what was sent). */
function encodeOf(c: ParsedConfirmation): Uint8Array {
  return encodeSign1({ protectedBytes: c.protectedBytes, unprotectedHeader: new Map(), payload: c.payloadBytes, signature: c.signature });
}
