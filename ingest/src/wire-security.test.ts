/**
 * Issue #8, ingest's side of the wire: confirmations signed with the ingest key (FORMAT.md §11.1), statement
 * identity (a high-S twin is a duplicate, never a fork), and bounded receiving.
 */
import { describe, expect, it } from 'vitest';
import { equalBytes } from '@stele/core/bytes.ts';
import { checkConfirmation, encodeSign1, type ParsedConfirmation } from '@stele/core/cose/index.ts';
import { makeChain, useIngestStack, waitFor } from './test-helpers.ts';

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

/** The confirmation bytes again (parse keeps its parts; it is deterministic CBOR, so this is what was sent). */
function encodeOf(c: ParsedConfirmation): Uint8Array {
  return encodeSign1({ protectedBytes: c.protectedBytes, unprotectedHeader: new Map(), payload: c.payloadBytes, signature: c.signature });
}
