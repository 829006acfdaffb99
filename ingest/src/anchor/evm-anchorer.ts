/**
 * Anchors batch roots with the SteleAnchor contract (docs/FORMAT.md §6) on any Ethereum JSON-RPC chain, via viem.
 * The contract is deployed once per chain; its address is kept in a small JSON state file.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  BaseError,
  ContractFunctionRevertedError,
  createPublicClient,
  createWalletClient,
  defineChain,
  http,
  encodeFunctionData,
  keccak256,
  parseEventLogs,
  type Address,
  type Chain,
  type Hex,
} from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { toHex } from '@stele/core';
import { AnchorError, type AnchorRef } from '@stele/core/anchor';
import artifact from '../../contracts/SteleAnchor.json' with { type: 'json' };
import { STELE_ANCHOR_ABI } from './abi.ts';

/**
 * anvil's first well-known dev account (mnemonic "test test ... junk", m/44'/60'/0'/0/0,
 * address 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266). Public knowledge: for the dev chain only.
 */
export const ANVIL_DEV_PRIVATE_KEY: `0x${string}` = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';

export interface Anchorer {
  /**
   * Records (batchId, root, size). Idempotent: when the batch id is already anchored with the same root and size,
   * returns the existing anchor's ref; a different root or size is AnchorError ANCHOR_CONFLICT.
   */
  anchor(batchId: number, root: Uint8Array, size: number): Promise<AnchorRef>;
  readonly chainId: number;
  /** Lower-case 0x address of the SteleAnchor contract. */
  readonly contract: string;
  readonly rpcUrl: string;
  /**
   * Staged anchoring, for the persisted state machine (anchor/machine.ts). An anchorer without it is driven through
   * `anchor()` in one step (tests' fakes).
   */
  readonly staged?: StagedAnchorer;
}

/** What the chain says about an anchor transaction (StagedAnchorer.inspect). */
export type AnchorInspection =
  /** Mined with the batch's Anchored log (by this tx or, after a crash, by another of ours). */
  | { status: 'included'; ref: AnchorRef; blockHash: string; confirmations: number }
  /** Known to the node, not mined yet. */
  | { status: 'pending' }
  /** The node knows neither the transaction nor an anchor of the batch: lost (chain reset, reorg, dropped). */
  | { status: 'missing' };

export interface StagedAnchorer {
  /**
   * Builds and signs anchor(batchId, root, size): the raw transaction and its hash, sent nowhere. With `nonce`, that
   * nonce (allocated in the store, shared by every worker: IngestStore.signAnchorWithNonce); without, the chain's
   * pending count (one process only).
   */
  prepare(batchId: number, root: Uint8Array, size: number, nonce?: number): Promise<{ txHash: string; raw: string }>;
  /** Lower-case 0x address of the account that signs anchor transactions. */
  readonly account: string;
  /** The account's transaction count including pending ones: the lowest nonce the chain would take next. */
  pendingNonce(): Promise<number>;
  /**
   * Sends a signed transaction (again). Resolves `'sent'` (or already known), `'stale'` when its nonce was used by
   * another transaction (prepare a new one), `'anchored'` when the batch is already anchored on chain.
   */
  broadcast(raw: string, batchId: number, root: Uint8Array, size: number): Promise<'sent' | 'stale' | 'anchored'>;
  /** Where the anchor of `batchId` stands, looking for `txHash` first and the contract's record second. */
  inspect(batchId: number, root: Uint8Array, size: number, txHash: string): Promise<AnchorInspection>;
}

/** What connectEvmAnchorer returns: an Anchorer that also names its account. */
export interface EvmAnchorer extends Anchorer {
  /** Lower-case 0x address of the anchoring (owner) account. */
  readonly owner: string;
}

/** The JSON kept in `stateFile`. */
export interface AnchorerState {
  chainId: number;
  contract: string;
  deployTxHash: string;
  owner: string;
}

export interface EvmAnchorerOptions {
  rpcUrl: string;
  privateKey: `0x${string}`;
  /** JSON file remembering the deployed contract; created (with its directory) on first deploy. */
  stateFile: string;
  /** Per-request timeout. Default: 10000. */
  timeoutMs?: number;
  /**
   * When to deploy SteleAnchor: `'if-no-state'` (default: only when `stateFile` does not exist yet, the embedded dev
   * chain's first start and tests) or `'never'` (production: deploy with `stele ingest deploy-contract`). A state file
   * whose contract has no code on the chain is always ANCHOR_CONTRACT_MISSING, never a silent new deployment.
   */
  deploy?: 'if-no-state' | 'never';
  /**
   * Called after a deployment is mined and before `stateFile` records it: the embedded chain dumps its state here,
   * so a power cut can never leave a state file naming a contract the reloaded chain does not hold.
   */
  afterDeploy?: () => Promise<void>;
}

const HEX_ADDRESS = /^0x[0-9a-fA-F]{40}$/;
const HEX_KEY = /^0x[0-9a-fA-F]{64}$/;

/**
 * Connects to the chain at `rpcUrl`, deploys SteleAnchor unless `stateFile` names a contract that has code on this
 * chain (and is owned by this key), and returns the anchorer. AnchorError: ANCHOR_RPC_ERROR (node unreachable),
 * ANCHOR_TX_ERROR (deploy failed), ANCHOR_CONFLICT (the remembered contract belongs to another key).
 */
export async function connectEvmAnchorer(options: EvmAnchorerOptions): Promise<EvmAnchorer> {
  const { rpcUrl, privateKey, stateFile } = options;
  if (typeof rpcUrl !== 'string' || !/^https?:\/\//i.test(rpcUrl)) throw new TypeError('rpcUrl must be an http(s) URL');
  if (typeof privateKey !== 'string' || !HEX_KEY.test(privateKey)) throw new TypeError('privateKey must be 0x + 64 hex');
  if (typeof stateFile !== 'string' || stateFile === '') throw new TypeError('stateFile must be a path');
  const transport = http(rpcUrl, { timeout: options.timeoutMs ?? 10_000, retryCount: 1 });

  const probe = createPublicClient({ transport });
  const chainId = await rpc('eth_chainId', rpcUrl, () => probe.getChainId());
  const chain: Chain = defineChain({
    id: chainId,
    name: `chain-${chainId}`,
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [rpcUrl] } },
  });
  // 100 ms: anvil mines on arrival, so the first receipt poll normally finds it.
  const publicClient = createPublicClient({ chain, transport, pollingInterval: 100 });
  const account = privateKeyToAccount(privateKey);
  const wallet = createWalletClient({ chain, transport, account });
  const owner = account.address.toLowerCase();

  let contract: Address | undefined;
  const saved = await readState(stateFile);
  if (saved !== undefined && saved.chainId === chainId) {
    const code = await rpc('eth_getCode', rpcUrl, () => publicClient.getCode({ address: saved.contract as Address }));
    if (code !== undefined && code !== '0x') {
      const contractOwner = await publicClient
        .readContract({ address: saved.contract as Address, abi: STELE_ANCHOR_ABI, functionName: 'owner' })
        .catch((cause: unknown) => {
          throw new AnchorError('ANCHOR_CONFLICT', `${saved.contract} on chain ${chainId} is not a SteleAnchor`, {
            cause,
            where: { stateFile, contract: saved.contract },
          });
        });
      if (contractOwner.toLowerCase() !== owner) {
        throw new AnchorError('ANCHOR_CONFLICT', `${saved.contract} on chain ${chainId} belongs to ${contractOwner}, not to this key`, {
          where: { stateFile, contract: saved.contract, owner: contractOwner },
        });
      }
      contract = saved.contract.toLowerCase() as Address;
    }
  }

  if (contract === undefined && saved !== undefined) {
    // A chain that was reset, or another chain: deploying a new contract here would silently start a second history.
    throw new AnchorError(
      'ANCHOR_CONTRACT_MISSING',
      saved.chainId === chainId
        ? `no SteleAnchor contract at ${saved.contract} on chain ${chainId} (${rpcUrl}), where ${stateFile} says it is: is this the right chain? Deploy a new one only on purpose (stele ingest deploy-contract)`
        : `${stateFile} names chain ${saved.chainId}, but ${rpcUrl} is chain ${chainId}`,
      { where: { stateFile, contract: saved.contract, chainId, expectedChainId: saved.chainId } },
    );
  }
  if (contract === undefined && (options.deploy ?? 'if-no-state') === 'never') {
    throw new AnchorError('ANCHOR_CONTRACT_MISSING', `no anchor contract recorded in ${stateFile}: deploy one with \`stele ingest deploy-contract\``, { where: { stateFile, chainId } });
  }
  if (contract === undefined) {
    // First run with no state file: deploy.
    const hash = await rpc('deploy', rpcUrl, () =>
      wallet.deployContract({ abi: STELE_ANCHOR_ABI, bytecode: artifact.bytecode as Hex }),
    );
    const receipt = await rpc('eth_getTransactionReceipt', rpcUrl, () => publicClient.waitForTransactionReceipt({ hash }));
    if (receipt.status !== 'success' || receipt.contractAddress == null) {
      throw new AnchorError('ANCHOR_TX_ERROR', `deploying SteleAnchor failed (tx ${hash})`, { where: { txHash: hash, chainId } });
    }
    contract = receipt.contractAddress.toLowerCase() as Address;
    await options.afterDeploy?.();
    await writeState(stateFile, { chainId, contract, deployTxHash: hash, owner });
  }
  const address: Address = contract;

  /** The ref of an existing anchor of `batchId`, found through the block that `anchors()` recorded. */
  async function existingRef(batchId: number, root: Hex, size: number): Promise<AnchorRef | undefined> {
    const [anchoredRoot, anchoredSize, blockNumber, timestamp] = await rpc('eth_call', rpcUrl, () =>
      publicClient.readContract({ address, abi: STELE_ANCHOR_ABI, functionName: 'anchors', args: [BigInt(batchId)] }),
    );
    if (/^0x0{64}$/.test(anchoredRoot)) return undefined;
    if (anchoredRoot.toLowerCase() !== root || anchoredSize !== BigInt(size)) {
      throw new AnchorError('ANCHOR_CONFLICT', `batch ${batchId} is already anchored with another root or size`, {
        where: { batchId, anchoredRoot, anchoredSize: Number(anchoredSize), root, size },
      });
    }
    const logs = await rpc('eth_getLogs', rpcUrl, () =>
      publicClient.getContractEvents({
        address,
        abi: STELE_ANCHOR_ABI,
        eventName: 'Anchored',
        args: { batchId: BigInt(batchId) },
        fromBlock: blockNumber,
        toBlock: blockNumber,
      }),
    );
    const log = logs.find((l) => l.args.root?.toLowerCase() === root && l.transactionHash !== null);
    if (log === undefined) {
      throw new AnchorError('ANCHOR_NOT_FOUND', `batch ${batchId} is anchored but its Anchored log is not in block ${blockNumber}`, {
        where: { batchId, blockNumber: Number(blockNumber) },
      });
    }
    return { chainId, contract: address, txHash: log.transactionHash, blockNumber: Number(blockNumber), blockTime: Number(timestamp) };
  }

  async function anchorOnce(batchId: number, root: Uint8Array, size: number): Promise<AnchorRef> {
    const rootHex = `0x${toHex(root)}` as Hex;
    const existing = await existingRef(batchId, rootHex, size);
    if (existing !== undefined) return existing;
    let hash: Hex;
    try {
      hash = await wallet.writeContract({
        address,
        abi: STELE_ANCHOR_ABI,
        functionName: 'anchor',
        args: [BigInt(batchId), rootHex, BigInt(size)],
      });
    } catch (e) {
      const revert = e instanceof BaseError ? e.walk((x) => x instanceof ContractFunctionRevertedError) : null;
      if (revert instanceof ContractFunctionRevertedError) {
        if (revert.data?.errorName === 'AlreadyAnchored') {
          // Someone (another process with this key) anchored it since we looked.
          const raced = await existingRef(batchId, rootHex, size);
          if (raced !== undefined) return raced;
        }
        throw new AnchorError('ANCHOR_TX_ERROR', `anchor(${batchId}) reverted: ${revert.data?.errorName ?? revert.shortMessage}`, {
          cause: e,
          where: { batchId, error: revert.data?.errorName },
        });
      }
      throw new AnchorError('ANCHOR_RPC_ERROR', `anchor(${batchId}) could not be sent to ${rpcUrl}`, { cause: e, where: { rpcUrl, batchId } });
    }
    const receipt = await rpc('eth_getTransactionReceipt', rpcUrl, () => publicClient.waitForTransactionReceipt({ hash }));
    if (receipt.status !== 'success') {
      throw new AnchorError('ANCHOR_TX_ERROR', `anchor(${batchId}) reverted in tx ${hash}`, { where: { batchId, txHash: hash } });
    }
    const log = parseEventLogs({ abi: STELE_ANCHOR_ABI, logs: receipt.logs, eventName: 'Anchored' }).find(
      (l) => l.address.toLowerCase() === address && l.args.batchId === BigInt(batchId),
    );
    if (log === undefined) {
      throw new AnchorError('ANCHOR_NOT_FOUND', `tx ${hash} has no Anchored log for batch ${batchId}`, { where: { batchId, txHash: hash } });
    }
    return { chainId, contract: address, txHash: hash, blockNumber: Number(receipt.blockNumber), blockTime: Number(log.args.timestamp) };
  }

  const staged: StagedAnchorer = {
    account: owner,
    async pendingNonce() {
      return rpc('eth_getTransactionCount', rpcUrl, () => publicClient.getTransactionCount({ address: account.address, blockTag: 'pending' }));
    },
    async prepare(batchId, root, size, nonce) {
      if (nonce !== undefined && (!Number.isSafeInteger(nonce) || nonce < 0)) throw new RangeError('nonce must be a non-negative integer');
      const request = await rpc('prepare', rpcUrl, () =>
        wallet.prepareTransactionRequest({
          to: address,
          data: encodeFunctionData({ abi: STELE_ANCHOR_ABI, functionName: 'anchor', args: [BigInt(batchId), `0x${toHex(root)}` as Hex, BigInt(size)] }),
          // a fixed limit: estimating would fail (revert) for a batch anchored meanwhile; anchor() needs ~70k gas
          gas: 150_000n,
          ...(nonce === undefined ? {} : { nonce }),
          nonceManager: undefined,
        }),
      );
      const raw = await account.signTransaction(request as Parameters<typeof account.signTransaction>[0]);
      return { txHash: keccak256(raw), raw };
    },
    async broadcast(raw, batchId, root, size) {
      try {
        await publicClient.sendRawTransaction({ serializedTransaction: raw as Hex });
        return 'sent';
      } catch (e) {
        const text = `${(e as Error).message} ${(e as { details?: string }).details ?? ''}`.toLowerCase();
        if (text.includes('already known') || text.includes('already imported') || text.includes('known transaction')) return 'sent';
        if (text.includes('nonce too low') || text.includes('nonce has already been used') || text.includes('replacement transaction underpriced')) {
          return (await existingRef(batchId, `0x${toHex(root)}` as Hex, size)) === undefined ? 'stale' : 'anchored';
        }
        throw new AnchorError('ANCHOR_RPC_ERROR', `sending the anchor of batch ${batchId} to ${rpcUrl} failed`, { cause: e, where: { rpcUrl, batchId } });
      }
    },
    async inspect(batchId, root, size, txHash) {
      const rootHex = `0x${toHex(root)}` as Hex;
      const latest = await rpc('eth_blockNumber', rpcUrl, () => publicClient.getBlockNumber({ cacheTime: 0 }));
      const receipt = await rpc('eth_getTransactionReceipt', rpcUrl, () => publicClient.getTransactionReceipt({ hash: txHash as Hex }).catch((e: unknown) => {
        if (e instanceof BaseError && e.name === 'TransactionReceiptNotFoundError') return undefined;
        throw e;
      }));
      let ref: AnchorRef | undefined;
      let blockHash: string | undefined;
      if (receipt !== undefined && receipt.status === 'success') {
        const log = parseEventLogs({ abi: STELE_ANCHOR_ABI, logs: receipt.logs, eventName: 'Anchored' }).find(
          (l) => l.address.toLowerCase() === address && l.args.batchId === BigInt(batchId) && l.args.root?.toLowerCase() === rootHex,
        );
        if (log !== undefined) {
          ref = { chainId, contract: address, txHash, blockNumber: Number(receipt.blockNumber), blockTime: Number(log.args.timestamp) };
          blockHash = receipt.blockHash;
        }
      }
      if (ref === undefined) {
        // Not by this transaction: by an earlier one of ours (a crash between sending and saving)?
        ref = await existingRef(batchId, rootHex, size);
        if (ref !== undefined) {
          const block = await rpc('eth_getBlockByNumber', rpcUrl, () => publicClient.getBlock({ blockNumber: BigInt(ref!.blockNumber) }));
          blockHash = block.hash ?? undefined;
        }
      }
      if (ref !== undefined && blockHash !== undefined) {
        return { status: 'included', ref, blockHash, confirmations: Number(latest) - ref.blockNumber + 1 };
      }
      const tx = await rpc('eth_getTransactionByHash', rpcUrl, () => publicClient.getTransaction({ hash: txHash as Hex }).catch((e: unknown) => {
        if (e instanceof BaseError && e.name === 'TransactionNotFoundError') return undefined;
        throw e;
      }));
      return tx === undefined ? { status: 'missing' } : { status: 'pending' };
    },
  };

  // One transaction at a time: concurrent sends from one key would race for the nonce.
  let queue: Promise<unknown> = Promise.resolve();
  return {
    chainId,
    contract: address,
    rpcUrl,
    owner,
    staged,
    anchor(batchId: number, root: Uint8Array, size: number): Promise<AnchorRef> {
      if (!Number.isSafeInteger(batchId) || batchId < 0) throw new RangeError('batchId must be a non-negative safe integer');
      if (!(root instanceof Uint8Array) || root.length !== 32) throw new RangeError('root must be 32 bytes');
      if (root.every((b) => b === 0)) throw new RangeError('root must not be all zero (the contract refuses it: EmptyRoot)');
      if (!Number.isSafeInteger(size) || size < 0) throw new RangeError('size must be a non-negative safe integer');
      const run = queue.then(() => anchorOnce(batchId, root, size));
      queue = run.catch(() => {});
      return run;
    },
  };
}

/** Runs one RPC step; anything that is not already an AnchorError becomes ANCHOR_RPC_ERROR. */
async function rpc<T>(step: string, rpcUrl: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof AnchorError) throw e;
    throw new AnchorError('ANCHOR_RPC_ERROR', `${step} failed at ${rpcUrl}`, { cause: e, where: { rpcUrl, step } });
  }
}

async function readState(stateFile: string): Promise<AnchorerState | undefined> {
  let text: string;
  try {
    text = await readFile(stateFile, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  // Our own file (written atomically below): a bad one is an operator problem, not untrusted input.
  const state = JSON.parse(text) as Partial<AnchorerState>;
  if (typeof state.chainId !== 'number' || typeof state.contract !== 'string' || !HEX_ADDRESS.test(state.contract)) {
    throw new TypeError(`${stateFile} is not an anchorer state file (expected {chainId, contract})`);
  }
  return state as AnchorerState;
}

async function writeState(stateFile: string, state: AnchorerState): Promise<void> {
  await mkdir(dirname(stateFile), { recursive: true });
  const tmp = `${stateFile}.tmp-${process.pid}`;
  await writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`);
  await rename(tmp, stateFile);
}
