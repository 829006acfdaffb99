import { describe, expect, it } from 'vitest';
import type { AnchorRef } from '@stele/core/anchor';
import type { AnchorInspection, StagedAnchorer } from './evm-anchorer.ts';
import { stepAnchor, type AnchorJob } from './machine.ts';

/** A scripted chain: what inspect and broadcast answer next. */
function fakeChain(script: { inspect?: AnchorInspection[]; broadcast?: ('sent' | 'stale' | 'anchored')[] } = {}) {
  let n = 0;
  const calls: string[] = [];
  const chain: StagedAnchorer = {
    account: `0x${'cd'.repeat(20)}`,
    pendingNonce: async () => 0,
    prepare: async () => {
      calls.push('prepare');
      n++;
      return { txHash: `0x${String(n).padStart(64, '0')}`, raw: `0xraw${n}` };
    },
    broadcast: async (raw) => {
      calls.push(`broadcast ${raw}`);
      return script.broadcast?.shift() ?? 'sent';
    },
    inspect: async () => {
      calls.push('inspect');
      return script.inspect?.shift() ?? { status: 'pending' };
    },
  };
  return { chain, calls };
}

const batch = { batchId: 7, root: new Uint8Array(32).fill(1), size: 3 };
const ref = (blockNumber: number): AnchorRef => ({ chainId: 31337, contract: `0x${'ab'.repeat(20)}`, txHash: `0x${'01'.padStart(64, '0')}`, blockNumber, blockTime: 1_800_000_000 });
const included = (blockNumber: number, blockHash: string, confirmations: number): AnchorInspection => ({ status: 'included', ref: ref(blockNumber), blockHash, confirmations });

async function drive(chain: StagedAnchorer, job: AnchorJob, confirmations: number, steps: number, now = 0) {
  const seen: { job: AnchorJob; alarm?: string; final?: AnchorRef }[] = [];
  for (let i = 0; i < steps; i++) {
    const out = await stepAnchor(chain, batch, job, confirmations, now);
    seen.push(out);
    job = out.job;
    if (out.final) break;
  }
  return seen;
}

describe('the anchoring state machine', () => {
  it('goes prepared -> signed -> broadcast -> included -> final after N confirmations, saving the raw tx before sending', async () => {
    const { chain, calls } = fakeChain({ inspect: [included(10, '0xaa', 1), included(10, '0xaa', 3)] });
    const seen = await drive(chain, { state: 'prepared' }, 3, 6);
    expect(seen.map((s) => s.job.state)).toEqual(['signed', 'broadcast', 'included', 'included']);
    expect(seen[0]!.job.raw).toBe('0xraw1'); // signed and kept before any broadcast
    expect(calls).toEqual(['prepare', 'broadcast 0xraw1', 'inspect', 'inspect']);
    expect(seen.at(-1)!.final).toEqual(ref(10));
    expect(seen[2]!.final).toBeUndefined(); // 1 confirmation of 3: not final, not in bundles
  });

  describe('when an included anchor is gone from the chain (reset or reorg)', () => {
    it('goes back to prepared with a "lost" alarm and anchors again', async () => {
      const { chain } = fakeChain({ inspect: [{ status: 'missing' }] });
      const out = await stepAnchor(chain, batch, { state: 'included', txHash: '0x1', raw: '0xraw', blockNumber: 10, blockHash: '0xaa' }, 3);
      expect(out.alarm).toBe('lost');
      expect(out.job).toEqual({ state: 'prepared', lost: 1 });
    });

    it('raises "reorged" when the same anchor now sits in another block', async () => {
      const { chain } = fakeChain({ inspect: [included(11, '0xbb', 1)] });
      const out = await stepAnchor(chain, batch, { state: 'included', txHash: '0x1', raw: '0xraw', blockNumber: 10, blockHash: '0xaa' }, 3);
      expect(out.alarm).toBe('reorged');
      expect(out.job).toMatchObject({ state: 'included', blockNumber: 11, blockHash: '0xbb', lost: 1 });
    });
  });

  describe('when a broadcast transaction is unknown to the node (restart lost its pool)', () => {
    it('sends the same saved bytes again', async () => {
      const { chain, calls } = fakeChain({ inspect: [{ status: 'missing' }] });
      const out = await stepAnchor(chain, batch, { state: 'broadcast', txHash: '0x1', raw: '0xsaved' }, 1);
      expect(calls).toEqual(['inspect', 'broadcast 0xsaved']);
      expect(out.job.state).toBe('broadcast');
      expect(out.alarm).toBeUndefined();
    });

    it('prepares a new transaction with an alarm when its nonce was used meanwhile', async () => {
      const { chain } = fakeChain({ inspect: [{ status: 'missing' }], broadcast: ['stale'] });
      const out = await stepAnchor(chain, batch, { state: 'broadcast', txHash: '0x1', raw: '0xsaved' }, 1);
      expect(out).toMatchObject({ job: { state: 'prepared', lost: 1 }, alarm: 'lost' });
    });
  });

  it('replaces a transaction the node holds but never mines, after stuckAfterMs', async () => {
    const { chain } = fakeChain({ inspect: [{ status: 'pending' }, { status: 'pending' }, { status: 'pending' }] });
    let job: AnchorJob = { state: 'broadcast', txHash: '0x1', raw: '0xsaved' };
    job = (await stepAnchor(chain, batch, job, 1, 1000, 5000)).job;
    expect(job.pendingSince).toBe(1000);
    expect((await stepAnchor(chain, batch, job, 1, 5000, 5000)).job).toBe(job);
    const out = await stepAnchor(chain, batch, job, 1, 7000, 5000);
    expect(out).toMatchObject({ job: { state: 'prepared' }, alarm: 'lost' });
  });
});
