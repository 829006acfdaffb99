import { describe, expect, it } from 'vitest';
import { anchorCodeOf } from '@stele/test';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { ANCHORED_EVENT_TOPIC, readAnchor, type AnchorRef } from './evm-reader.ts';

// Hand-made answers shaped like anvil 1.7.1's, served by an in-process fetch so the
// decoding checks run without a node. The real-node tests are in ingest/src/anchor/*.test.ts.
const CONTRACT = '0x5fbdb2315678afecb367f032d93f642f64180aa3';
const TX = `0x${'a4'.repeat(32)}`;
const BLOCK_HASH = `0x${'bb'.repeat(32)}`;
const ROOT = `0x${'11'.repeat(32)}`;
const word = (n: number): string => n.toString(16).padStart(64, '0');
const ref: AnchorRef = { chainId: 31337, contract: CONTRACT, txHash: TX, blockNumber: 2, blockTime: 1_700_000_000 };

interface Chain {
  chainId: unknown;
  receipt: unknown;
  block: unknown;
}
function goodChain(): Chain {
  return {
    chainId: '0x7a69',
    receipt: {
      status: '0x1',
      blockNumber: '0x2',
      blockHash: BLOCK_HASH,
      logs: [
        {
          address: CONTRACT,
          topics: [ANCHORED_EVENT_TOPIC, `0x${word(1)}`, ROOT],
          data: `0x${word(5)}${word(1_700_000_000)}`,
          removed: false,
        },
      ],
    },
    block: { hash: BLOCK_HASH, number: '0x2', timestamp: '0x6553f100' },
  };
}

function fetchFor(chain: Chain, patch?: (method: string, reply: Record<string, unknown>) => unknown): typeof fetch {
  return (async (_url: unknown, init?: RequestInit) => {
    const { id, method } = JSON.parse(String(init?.body)) as { id: number; method: string };
    const result = method === 'eth_chainId' ? chain.chainId : method === 'eth_getTransactionReceipt' ? chain.receipt : chain.block;
    const reply: Record<string, unknown> = { jsonrpc: '2.0', id, result };
    const body = patch === undefined ? reply : patch(method, reply);
    return new Response(typeof body === 'string' ? body : JSON.stringify(body), { status: 200 });
  }) as typeof fetch;
}

describe('readAnchor', () => {
  it('uses keccak256("Anchored(uint64,bytes32,uint64,uint64)") as the event topic', () => {
    const expected = `0x${Buffer.from(keccak_256(new TextEncoder().encode('Anchored(uint64,bytes32,uint64,uint64)'))).toString('hex')}`;
    expect(ANCHORED_EVENT_TOPIC).toBe(expected);
  });

  it('calls fetch as a plain function, as a browser fetch requires (no "Illegal invocation")', async () => {
    const inner = fetchFor(goodChain());
    const strictFetch = function (this: unknown, url: RequestInfo | URL, init?: RequestInit) {
      // A browser's fetch throws TypeError "Illegal invocation" when `this` is another object.
      if (this !== undefined && this !== globalThis) throw new TypeError('Illegal invocation');
      return inner(url, init);
    } as typeof fetch;
    expect((await readAnchor('http://127.0.0.1:1', ref, 1, { fetch: strictFetch })).batchId).toBe(1);
  });

  it('decodes the Anchored log and the block time', async () => {
    expect(await readAnchor('http://127.0.0.1:1', ref, 1, { fetch: fetchFor(goodChain()) })).toEqual({
      chainId: 31337,
      contract: CONTRACT,
      batchId: 1,
      root: ROOT,
      size: 5,
      blockNumber: 2,
      blockTime: 1_700_000_000,
    });
  });

  it('accepts a checksummed contract address in the ref', async () => {
    const facts = await readAnchor('http://127.0.0.1:1', { ...ref, contract: '0x5FbDB2315678afecb367f032d93F642f64180aa3' }, 1, {
      fetch: fetchFor(goodChain()),
    });
    expect(facts.contract).toBe(CONTRACT);
  });

  describe('when the endpoint misbehaves', () => {
    const cases: [string, (method: string, reply: Record<string, unknown>) => unknown][] = [
      ['answers an error object', (_m, r) => ({ jsonrpc: '2.0', id: r['id'], error: { code: -32000, message: 'boom' } })],
      ['answers another id', (_m, r) => ({ ...r, id: 999 })],
      ['answers without jsonrpc 2.0', (_m, r) => ({ id: r['id'], result: r['result'] })],
      ['answers text', () => 'not json'],
      ['answers a chain id that is not a quantity', (m, r) => (m === 'eth_chainId' ? { ...r, result: 31337 } : r)],
    ];
    for (const [name, patch] of cases) {
      it(`rejects with ANCHOR_RPC_ERROR when it ${name}`, async () => {
        expect(await anchorCodeOf(readAnchor('http://127.0.0.1:1', ref, 1, { fetch: fetchFor(goodChain(), patch) }))).toBe('ANCHOR_RPC_ERROR');
      });
    }

    it('rejects with ANCHOR_RPC_ERROR on an HTTP error status', async () => {
      const fetch500 = (async () => new Response('oops', { status: 502 })) as unknown as typeof fetch;
      expect(await anchorCodeOf(readAnchor('http://127.0.0.1:1', ref, 1, { fetch: fetch500 }))).toBe('ANCHOR_RPC_ERROR');
    });

    it('rejects with ANCHOR_RPC_ERROR when the log data is not two words', async () => {
      const chain = goodChain();
      (chain.receipt as { logs: { data: string }[] }).logs[0]!.data = `0x${word(5)}`;
      expect(await anchorCodeOf(readAnchor('http://127.0.0.1:1', ref, 1, { fetch: fetchFor(chain) }))).toBe('ANCHOR_RPC_ERROR');
    });
  });

  describe('when the chain does not back the ref', () => {
    it('rejects a reverted transaction with ANCHOR_NOT_FOUND', async () => {
      const chain = goodChain();
      (chain.receipt as { status: string }).status = '0x0';
      expect(await anchorCodeOf(readAnchor('http://127.0.0.1:1', ref, 1, { fetch: fetchFor(chain) }))).toBe('ANCHOR_NOT_FOUND');
    });

    it('ignores a removed log (ANCHOR_NOT_FOUND)', async () => {
      const chain = goodChain();
      (chain.receipt as { logs: { removed: boolean }[] }).logs[0]!.removed = true;
      expect(await anchorCodeOf(readAnchor('http://127.0.0.1:1', ref, 1, { fetch: fetchFor(chain) }))).toBe('ANCHOR_NOT_FOUND');
    });

    it('rejects a block that is not the receipt block with ANCHOR_MISMATCH_ERROR', async () => {
      const chain = goodChain();
      (chain.block as { hash: string }).hash = `0x${'cc'.repeat(32)}`;
      expect(await anchorCodeOf(readAnchor('http://127.0.0.1:1', ref, 1, { fetch: fetchFor(chain) }))).toBe('ANCHOR_MISMATCH_ERROR');
    });

    it('rejects a log timestamp that is not the block time with ANCHOR_MISMATCH_ERROR', async () => {
      const chain = goodChain();
      (chain.block as { timestamp: string }).timestamp = '0x6553f101';
      expect(await anchorCodeOf(readAnchor('http://127.0.0.1:1', ref, 1, { fetch: fetchFor(chain) }))).toBe('ANCHOR_MISMATCH_ERROR');
    });
  });

  it('throws RangeError/TypeError for misuse', async () => {
    await expect(readAnchor('ftp://x', ref, 1)).rejects.toThrow(TypeError);
    await expect(readAnchor('http://127.0.0.1:1', ref, -1)).rejects.toThrow(RangeError);
    await expect(readAnchor('http://127.0.0.1:1', ref, 1, { timeoutMs: 0 })).rejects.toThrow(RangeError);
  });
});
