import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPublicClient, createWalletClient, defineChain, http, type Address, type Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codeOf } from '@stele/testkit';
import { AnchorError, readAnchor, type AnchorRef } from '@stele/core/anchor';
import { STELE_ANCHOR_ABI } from './abi.ts';
import { startAnvil, type AnvilNode } from './anvil.ts';
import { ANVIL_DEV_PRIVATE_KEY, connectEvmAnchorer, type EvmAnchorer } from './evm-anchorer.ts';

/** The code of the AnchorError `p` rejects with. */
const anchorCodeOf = (p: Promise<unknown>) => codeOf(p, AnchorError);

/** anvil's second well-known dev account: funded, but not the contract's owner. */
const OTHER_DEV_KEY = '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d';

function root(fill: number): Uint8Array {
  return new Uint8Array(32).fill(fill);
}
const hex = (b: Uint8Array): Hex => `0x${Buffer.from(b).toString('hex')}`;

/** The revert error name of a contract call that must fail. */
async function revertName(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    const walk = (e as { walk?: (f: (x: unknown) => boolean) => unknown }).walk;
    const revert = walk?.call(e, (x) => (x as { data?: { errorName?: string } }).data?.errorName !== undefined) as
      | { data?: { errorName?: string } }
      | undefined;
    return revert?.data?.errorName;
  }
  throw new Error('expected a revert');
}

async function closedPort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

describe('connectEvmAnchorer and readAnchor on a real anvil', () => {
  let dir: string;
  let node: AnvilNode;
  let anchorer: EvmAnchorer;
  let first: AnchorRef;
  const servers: Server[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'stele-anchorer-'));
    node = await startAnvil({ stateDir: join(dir, 'chain') });
    anchorer = await connectEvmAnchorer({ rpcUrl: node.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY, stateFile: join(dir, 'anchorer.json') });
    first = await anchorer.anchor(1, root(0x11), 5);
  });

  afterAll(async () => {
    await Promise.all(
      servers.map((s) => {
        s.closeAllConnections(); // keep-alive sockets would hold close() for seconds
        return new Promise<void>((r) => s.close(() => r()));
      }),
    );
    await node?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const chainClients = (key: Hex) => {
    const chain = defineChain({
      id: node.chainId,
      name: 'anvil',
      nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
      rpcUrls: { default: { http: [node.rpcUrl] } },
    });
    return {
      wallet: createWalletClient({ chain, transport: http(node.rpcUrl), account: privateKeyToAccount(key) }),
      pub: createPublicClient({ chain, transport: http(node.rpcUrl) }),
    };
  };

  describe('when it connects the first time', () => {
    it('deploys SteleAnchor and remembers it in the state file', () => {
      const state = JSON.parse(readFileSync(join(dir, 'anchorer.json'), 'utf8')) as { chainId: number; contract: string; owner: string };
      expect(state.chainId).toBe(31337);
      expect(state.contract).toBe(anchorer.contract);
      expect(state.owner).toBe(privateKeyToAccount(ANVIL_DEV_PRIVATE_KEY).address.toLowerCase());
    });

    it('reuses the contract on the next connect', async () => {
      const again = await connectEvmAnchorer({ rpcUrl: node.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY, stateFile: join(dir, 'anchorer.json') });
      expect(again.contract).toBe(anchorer.contract);
    });

    it('refuses with ANCHOR_CONTRACT_MISSING, naming the address, when the remembered contract has no code (never re-deploys)', async () => {
      const stateFile = join(dir, 'stale.json');
      const ghost = '0x000000000000000000000000000000000000dead';
      writeFileSync(stateFile, JSON.stringify({ chainId: 31337, contract: ghost, deployTxHash: `0x${'00'.repeat(32)}`, owner: anchorer.owner }));
      const err = await connectEvmAnchorer({ rpcUrl: node.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY, stateFile }).then(() => undefined, (e: unknown) => e as AnchorError);
      expect(err?.code).toBe('ANCHOR_CONTRACT_MISSING');
      expect(err?.message).toContain(ghost);
      expect((JSON.parse(readFileSync(stateFile, 'utf8')) as { contract: string }).contract).toBe(ghost);
    });

    it('with deploy: never and no state file, refuses with ANCHOR_CONTRACT_MISSING', async () => {
      const err = await connectEvmAnchorer({ rpcUrl: node.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY, stateFile: join(dir, 'none.json'), deploy: 'never' }).then(
        () => undefined,
        (e: unknown) => e as AnchorError,
      );
      expect(err?.code).toBe('ANCHOR_CONTRACT_MISSING');
    });

    it('refuses a remembered contract owned by another key with ANCHOR_CONFLICT', async () => {
      const stateFile = join(dir, 'anchorer.json');
      expect(await anchorCodeOf(connectEvmAnchorer({ rpcUrl: node.rpcUrl, privateKey: OTHER_DEV_KEY, stateFile }))).toBe('ANCHOR_CONFLICT');
    });

    it('rejects with ANCHOR_RPC_ERROR when the node is unreachable', async () => {
      const rpcUrl = `http://127.0.0.1:${await closedPort()}`;
      expect(await anchorCodeOf(connectEvmAnchorer({ rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY, stateFile: join(dir, 'x.json') }))).toBe(
        'ANCHOR_RPC_ERROR',
      );
    });
  });

  describe('when a batch is anchored', () => {
    it('returns a ref that readAnchor confirms', async () => {
      expect(first.chainId).toBe(31337);
      expect(first.contract).toBe(anchorer.contract);
      expect(first.txHash).toMatch(/^0x[0-9a-f]{64}$/);
      const facts = await readAnchor(node.rpcUrl, first, 1);
      expect(facts).toEqual({
        chainId: 31337,
        contract: anchorer.contract,
        batchId: 1,
        root: hex(root(0x11)),
        size: 5,
        blockNumber: first.blockNumber,
        blockTime: first.blockTime,
      });
    });

    it('records it in anchors()', async () => {
      const { pub } = chainClients(ANVIL_DEV_PRIVATE_KEY);
      const [r, size, blockNumber, timestamp] = await pub.readContract({
        address: anchorer.contract as Address,
        abi: STELE_ANCHOR_ABI,
        functionName: 'anchors',
        args: [1n],
      });
      expect([r, size, blockNumber, timestamp]).toEqual([hex(root(0x11)), 5n, BigInt(first.blockNumber), BigInt(first.blockTime)]);
    });

    it('returns the same ref when the same batch is anchored again with the same root', async () => {
      expect(await anchorer.anchor(1, root(0x11), 5)).toEqual(first);
    });

    it('rejects another root for the same batch id with ANCHOR_CONFLICT', async () => {
      expect(await anchorCodeOf(anchorer.anchor(1, root(0x22), 5))).toBe('ANCHOR_CONFLICT');
      expect(await anchorCodeOf(anchorer.anchor(1, root(0x11), 6))).toBe('ANCHOR_CONFLICT');
    });

    it('anchors concurrent batches one after another', async () => {
      const refs = await Promise.all([2, 3, 4].map((id) => anchorer.anchor(id, root(id), id * 10)));
      const facts = await Promise.all(refs.map((ref, i) => readAnchor(node.rpcUrl, ref, i + 2)));
      expect(facts.map((f) => [f.batchId, f.size])).toEqual([
        [2, 20],
        [3, 30],
        [4, 40],
      ]);
    });

    it('throws RangeError for an all-zero root, a short root or a negative batch id', () => {
      expect(() => anchorer.anchor(9, new Uint8Array(32), 1)).toThrow(RangeError);
      expect(() => anchorer.anchor(9, new Uint8Array(31).fill(1), 1)).toThrow(RangeError);
      expect(() => anchorer.anchor(-1, root(1), 1)).toThrow(RangeError);
    });
  });

  describe('the contract itself', () => {
    it('reverts a second anchor of a batch id with AlreadyAnchored', async () => {
      const { wallet } = chainClients(ANVIL_DEV_PRIVATE_KEY);
      const call = wallet.writeContract({
        address: anchorer.contract as Address,
        abi: STELE_ANCHOR_ABI,
        functionName: 'anchor',
        args: [1n, hex(root(0x11)), 5n],
      });
      expect(await revertName(call)).toBe('AlreadyAnchored');
    });

    it('reverts an anchor from another account with NotOwner', async () => {
      const { wallet } = chainClients(OTHER_DEV_KEY);
      const call = wallet.writeContract({
        address: anchorer.contract as Address,
        abi: STELE_ANCHOR_ABI,
        functionName: 'anchor',
        args: [100n, hex(root(0x33)), 1n],
      });
      expect(await revertName(call)).toBe('NotOwner');
    });

    it('reverts an all-zero root with EmptyRoot', async () => {
      const { wallet } = chainClients(ANVIL_DEV_PRIVATE_KEY);
      const call = wallet.writeContract({
        address: anchorer.contract as Address,
        abi: STELE_ANCHOR_ABI,
        functionName: 'anchor',
        args: [101n, hex(new Uint8Array(32)), 1n],
      });
      expect(await revertName(call)).toBe('EmptyRoot');
    });

    it('names the deployer as owner()', async () => {
      const { pub } = chainClients(ANVIL_DEV_PRIVATE_KEY);
      const owner = await pub.readContract({ address: anchorer.contract as Address, abi: STELE_ANCHOR_ABI, functionName: 'owner' });
      expect(owner.toLowerCase()).toBe(anchorer.owner);
    });
  });

  describe('readAnchor', () => {
    it('rejects with ANCHOR_RPC_ERROR on a closed port', async () => {
      expect(await anchorCodeOf(readAnchor(`http://127.0.0.1:${await closedPort()}`, first, 1))).toBe('ANCHOR_RPC_ERROR');
    });

    it('rejects with ANCHOR_RPC_ERROR when the endpoint never answers (timeout)', async () => {
      const server = createHttpServer(() => {
        // never answers
      });
      servers.push(server);
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const { port } = server.address() as AddressInfo;
      expect(await anchorCodeOf(readAnchor(`http://127.0.0.1:${port}`, first, 1, { timeoutMs: 200 }))).toBe('ANCHOR_RPC_ERROR');
    });

    it('rejects with ANCHOR_RPC_ERROR when the endpoint does not speak JSON-RPC', async () => {
      const server = createHttpServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end('<html>hello</html>');
      });
      servers.push(server);
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const { port } = server.address() as AddressInfo;
      expect(await anchorCodeOf(readAnchor(`http://127.0.0.1:${port}`, first, 1))).toBe('ANCHOR_RPC_ERROR');
    });

    it('rejects an unknown transaction with ANCHOR_NOT_FOUND', async () => {
      expect(await anchorCodeOf(readAnchor(node.rpcUrl, { ...first, txHash: `0x${'ab'.repeat(32)}` }, 1))).toBe('ANCHOR_NOT_FOUND');
    });

    it('rejects a transaction without an Anchored log (the deploy) with ANCHOR_NOT_FOUND', async () => {
      const state = JSON.parse(readFileSync(join(dir, 'anchorer.json'), 'utf8')) as { deployTxHash: string };
      expect(await anchorCodeOf(readAnchor(node.rpcUrl, { ...first, txHash: state.deployTxHash }, 1))).toBe('ANCHOR_NOT_FOUND');
    });

    it('rejects another batch id than the log carries with ANCHOR_NOT_FOUND', async () => {
      expect(await anchorCodeOf(readAnchor(node.rpcUrl, first, 2))).toBe('ANCHOR_NOT_FOUND');
    });

    it('rejects a log from another contract with ANCHOR_NOT_FOUND', async () => {
      const other = { ...first, contract: '0x000000000000000000000000000000000000beef' };
      expect(await anchorCodeOf(readAnchor(node.rpcUrl, other, 1))).toBe('ANCHOR_NOT_FOUND');
    });

    it('rejects another chain id with ANCHOR_MISMATCH_ERROR', async () => {
      expect(await anchorCodeOf(readAnchor(node.rpcUrl, { ...first, chainId: 1 }, 1))).toBe('ANCHOR_MISMATCH_ERROR');
    });

    it('throws TypeError for a malformed ref', async () => {
      await expect(readAnchor(node.rpcUrl, { ...first, txHash: '0x12' }, 1)).rejects.toThrow(TypeError);
    });
  });
});
