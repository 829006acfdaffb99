/**
 * Reads an anchor back from any Ethereum JSON-RPC endpoint (docs/FORMAT.md §6). Isomorphic: `fetch` and
 * @noble/hashes only, so the offline verifier page can use it in a browser. No viem: the one event this needs is
 * decoded by hand below.
 *
 * Trust boundary: the RPC endpoint is untrusted. Every field it returns is checked for shape; the log must come
 * from `ref.contract` on `ref.chainId`; the block must be the receipt's block. What the endpoint says about the
 * root and size is returned as facts for the caller to compare with the bundle (the verifier raises
 * ANCHOR_MISMATCH_ERROR when they differ); asking more than one endpoint is the caller's choice.
 */
import { keccak_256 } from '@noble/hashes/sha3.js';
import { toHex } from '../bytes.ts';
import { SteleError } from '../errors.ts';

/** Where an anchor was recorded (FORMAT.md §7 `anchor`). Hex strings are 0x-prefixed; times are Unix seconds. */
export interface AnchorRef {
  chainId: number;
  /** 0x + 40 hex; compared case-insensitively (EIP-55 checksums are not required). */
  contract: string;
  /** 0x + 64 hex. */
  txHash: string;
  blockNumber: number;
  /** Unix seconds of the anchoring block. */
  blockTime: number;
  /** A JSON-RPC endpoint the issuer suggests; readers may use any other endpoint of the chain. */
  rpc?: string;
}

/** What the chain says about one anchored batch. */
export interface AnchorFacts {
  chainId: number;
  /** Lower-case 0x hex address of the contract that emitted the log. */
  contract: string;
  batchId: number;
  /** 0x + 64 lower-case hex. */
  root: string;
  size: number;
  blockNumber: number;
  /** Unix seconds: the block's timestamp, an upper bound on when the batch existed. */
  blockTime: number;
}

export type AnchorErrorCode =
  /** The endpoint is unreachable, timed out, answered an error or something that is not well-formed JSON-RPC. */
  | 'ANCHOR_RPC_ERROR'
  /** No such transaction, or it carries no `Anchored` log for the batch from the contract. */
  | 'ANCHOR_NOT_FOUND'
  /** The chain answers, but not the chain the reference names (chain id) or inconsistently (block vs. receipt). */
  | 'ANCHOR_MISMATCH_ERROR'
  /** Anchorer: the batch id is already anchored with a different root or size. */
  | 'ANCHOR_CONFLICT'
  /** Anchorer: the anvil binary for this platform is not installed. */
  | 'ANCHOR_NODE_MISSING'
  /** Anchorer: the local node failed to start or stopped unexpectedly. */
  | 'ANCHOR_NODE_ERROR'
  /** Anchorer: a transaction was refused or reverted (not owner, deploy failed, ...). */
  | 'ANCHOR_TX_ERROR';

export class AnchorError extends SteleError<AnchorErrorCode> {}

/** keccak256("Anchored(uint64,bytes32,uint64,uint64)"): topic 0 of the event (Solidity ABI spec, event topics). */
export const ANCHORED_EVENT_TOPIC: string = `0x${toHex(keccak_256(new TextEncoder().encode('Anchored(uint64,bytes32,uint64,uint64)')))}`;

/** Default for `options.timeoutMs`: the whole read (three RPC calls) must finish within it. */
export const DEFAULT_READ_TIMEOUT_MS = 10_000;

const HEX_ADDRESS = /^0x[0-9a-fA-F]{40}$/;
const HEX_HASH = /^0x[0-9a-fA-F]{64}$/;
const HEX_QUANTITY = /^0x(0|[1-9a-fA-F][0-9a-fA-F]*)$/;
const HEX_DATA = /^0x([0-9a-fA-F]{2})*$/;
const UINT64_MAX = (1n << 64n) - 1n;

/**
 * Reads the `Anchored` log of `batchId` from the transaction `ref.txHash`, via `rpcUrl`:
 * eth_chainId (must equal `ref.chainId`), eth_getTransactionReceipt (the log must come from `ref.contract`),
 * eth_getBlockByNumber (the block's timestamp; its hash must be the receipt's block hash).
 *
 * Throws AnchorError: ANCHOR_RPC_ERROR (unreachable, timeout, not JSON-RPC, malformed answer), ANCHOR_NOT_FOUND
 * (no such transaction, reverted, or no matching log), ANCHOR_MISMATCH_ERROR (another chain, or block and receipt
 * disagree). Throws TypeError/RangeError when `rpcUrl`, `ref` or `batchId` are malformed (validate bundles first).
 */
export async function readAnchor(
  rpcUrl: string,
  ref: AnchorRef,
  batchId: number,
  options?: { timeoutMs?: number; fetch?: typeof fetch },
): Promise<AnchorFacts> {
  checkArguments(rpcUrl, ref, batchId);
  const timeoutMs = options?.timeoutMs ?? DEFAULT_READ_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new RangeError('options.timeoutMs must be > 0');
  const givenFetch = options?.fetch ?? globalThis.fetch;
  if (typeof givenFetch !== 'function') throw new TypeError('no fetch available: pass options.fetch');
  // Called as a plain function: a browser's fetch throws "Illegal invocation" when called as a method of another
  // object (here it would be JsonRpc's `this.fetchFn(...)`); Node's does not care, so only the page showed it.
  const fetchFn: typeof fetch = (input, init) => givenFetch(input, init);

  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  const rpc = new JsonRpc(rpcUrl, fetchFn, controller.signal, timeoutMs);
  try {
    const chainId = parseQuantity(await rpc.call('eth_chainId', []), 'eth_chainId');
    if (chainId !== ref.chainId) {
      throw new AnchorError('ANCHOR_MISMATCH_ERROR', `the endpoint serves chain ${chainId}, the anchor is on chain ${ref.chainId}`, {
        where: { rpcUrl, expected: ref.chainId, actual: chainId },
      });
    }

    const receipt = await rpc.call('eth_getTransactionReceipt', [ref.txHash]);
    if (receipt === null) {
      throw new AnchorError('ANCHOR_NOT_FOUND', `no transaction ${ref.txHash} on chain ${chainId}`, { where: { rpcUrl, txHash: ref.txHash } });
    }
    const r = asObject(receipt, 'receipt');
    if (parseQuantity(r['status'], 'receipt.status') !== 1) {
      throw new AnchorError('ANCHOR_NOT_FOUND', `transaction ${ref.txHash} reverted`, { where: { rpcUrl, txHash: ref.txHash } });
    }
    const blockNumber = parseQuantity(r['blockNumber'], 'receipt.blockNumber');
    const blockHash = parseHash(r['blockHash'], 'receipt.blockHash');
    const logs = r['logs'];
    if (!Array.isArray(logs)) throw malformed('receipt.logs');

    const contract = ref.contract.toLowerCase();
    const batchTopic = `0x${batchId.toString(16).padStart(64, '0')}`;
    let found: { root: string; size: number; timestamp: number } | undefined;
    for (const [i, entry] of logs.entries()) {
      const log = asObject(entry, `receipt.logs[${i}]`);
      const address = log['address'];
      if (typeof address !== 'string' || !HEX_ADDRESS.test(address)) throw malformed(`receipt.logs[${i}].address`);
      if (address.toLowerCase() !== contract || log['removed'] === true) continue;
      const topics = log['topics'];
      if (!Array.isArray(topics)) throw malformed(`receipt.logs[${i}].topics`);
      if (topics.length !== 3 || String(topics[0]).toLowerCase() !== ANCHORED_EVENT_TOPIC) continue;
      if (parseHash(topics[1], `receipt.logs[${i}].topics[1]`) !== batchTopic) continue;
      const root = parseHash(topics[2], `receipt.logs[${i}].topics[2]`);
      const data = log['data'];
      // Non-indexed (uint64 size, uint64 timestamp): two 32-byte ABI words.
      if (typeof data !== 'string' || !HEX_DATA.test(data) || data.length !== 2 + 128) throw malformed(`receipt.logs[${i}].data`);
      found = {
        root,
        size: parseUint64Word(data.slice(2, 66), `receipt.logs[${i}].data size`),
        timestamp: parseUint64Word(data.slice(66, 130), `receipt.logs[${i}].data timestamp`),
      };
      break;
    }
    if (found === undefined) {
      throw new AnchorError('ANCHOR_NOT_FOUND', `transaction ${ref.txHash} has no Anchored log for batch ${batchId} from ${ref.contract}`, {
        where: { rpcUrl, txHash: ref.txHash, contract: ref.contract, batchId },
      });
    }

    const block = await rpc.call('eth_getBlockByNumber', [toQuantity(blockNumber), false]);
    if (block === null) {
      throw new AnchorError('ANCHOR_MISMATCH_ERROR', `block ${blockNumber} of the receipt is missing`, { where: { rpcUrl, blockNumber } });
    }
    const b = asObject(block, 'block');
    if (parseHash(b['hash'], 'block.hash') !== blockHash) {
      throw new AnchorError('ANCHOR_MISMATCH_ERROR', `block ${blockNumber} is not the receipt's block (reorg?)`, { where: { rpcUrl, blockNumber } });
    }
    const blockTime = parseQuantity(b['timestamp'], 'block.timestamp');
    // SteleAnchor logs block.timestamp; a difference means the endpoint's answers do not fit together.
    if (found.timestamp !== blockTime) {
      throw new AnchorError('ANCHOR_MISMATCH_ERROR', `the log's timestamp ${found.timestamp} is not the block's ${blockTime}`, {
        where: { rpcUrl, blockNumber },
      });
    }
    return { chainId, contract, batchId, root: found.root, size: found.size, blockNumber, blockTime };
  } finally {
    clearTimeout(timer);
  }
}

/** Minimal JSON-RPC 2.0 over HTTP POST. */
class JsonRpc {
  #nextId = 1;
  constructor(
    private readonly url: string,
    private readonly fetchFn: typeof fetch,
    private readonly signal: AbortSignal,
    private readonly timeoutMs: number,
  ) {}

  async call(method: string, params: unknown[]): Promise<unknown> {
    const id = this.#nextId++;
    const where = { rpcUrl: this.url, method };
    let body: unknown;
    try {
      const response = await this.fetchFn(this.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id, method, params }),
        signal: this.signal,
      });
      if (!response.ok) {
        throw new AnchorError('ANCHOR_RPC_ERROR', `${method}: HTTP ${response.status} from ${this.url}`, { where: { ...where, status: response.status } });
      }
      const text = await response.text();
      try {
        body = JSON.parse(text);
      } catch (cause) {
        throw new AnchorError('ANCHOR_RPC_ERROR', `${method}: ${this.url} did not answer JSON`, { cause, where });
      }
    } catch (e) {
      if (e instanceof AnchorError) throw e;
      const message = this.signal.aborted ? `${method}: no answer from ${this.url} within ${this.timeoutMs} ms` : `${method}: cannot reach ${this.url}`;
      throw new AnchorError('ANCHOR_RPC_ERROR', message, { cause: e, where: { ...where, timedOut: this.signal.aborted } });
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body) || (body as Record<string, unknown>)['jsonrpc'] !== '2.0') {
      throw new AnchorError('ANCHOR_RPC_ERROR', `${method}: ${this.url} did not answer JSON-RPC 2.0`, { where });
    }
    const reply = body as Record<string, unknown>;
    if (reply['id'] !== id) throw new AnchorError('ANCHOR_RPC_ERROR', `${method}: answer id does not match the request`, { where });
    if (reply['error'] !== undefined) {
      const error = reply['error'] as { code?: unknown; message?: unknown } | null;
      throw new AnchorError('ANCHOR_RPC_ERROR', `${method}: ${String(error?.message ?? 'error')}`, {
        where: { ...where, rpcCode: error?.code },
      });
    }
    if (!('result' in reply)) throw new AnchorError('ANCHOR_RPC_ERROR', `${method}: answer has no result`, { where });
    return reply['result'];
  }
}

function checkArguments(rpcUrl: string, ref: AnchorRef, batchId: number): void {
  if (typeof rpcUrl !== 'string' || !/^https?:\/\//i.test(rpcUrl)) throw new TypeError('rpcUrl must be an http(s) URL');
  if (typeof ref !== 'object' || ref === null) throw new TypeError('ref must be an AnchorRef');
  if (!Number.isSafeInteger(ref.chainId) || ref.chainId <= 0) throw new RangeError('ref.chainId must be a positive integer');
  if (typeof ref.contract !== 'string' || !HEX_ADDRESS.test(ref.contract)) throw new TypeError('ref.contract must be 0x + 40 hex');
  if (typeof ref.txHash !== 'string' || !HEX_HASH.test(ref.txHash)) throw new TypeError('ref.txHash must be 0x + 64 hex');
  if (!Number.isSafeInteger(batchId) || batchId < 0) throw new RangeError('batchId must be a non-negative safe integer');
}

function malformed(what: string): AnchorError {
  return new AnchorError('ANCHOR_RPC_ERROR', `malformed JSON-RPC answer: ${what}`, { where: { field: what } });
}

function asObject(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw malformed(what);
  return value as Record<string, unknown>;
}

function parseQuantity(value: unknown, what: string): number {
  if (typeof value !== 'string' || !HEX_QUANTITY.test(value)) throw malformed(what);
  const n = Number.parseInt(value.slice(2), 16);
  if (!Number.isSafeInteger(n)) throw malformed(`${what} (beyond 2^53)`);
  return n;
}

function parseHash(value: unknown, what: string): string {
  if (typeof value !== 'string' || !HEX_HASH.test(value)) throw malformed(what);
  return value.toLowerCase();
}

function parseUint64Word(hex64: string, what: string): number {
  const n = BigInt(`0x${hex64}`);
  if (n > UINT64_MAX) throw malformed(`${what} (not a uint64)`);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw malformed(`${what} (beyond 2^53)`);
  return Number(n);
}

function toQuantity(n: number): string {
  return `0x${n.toString(16)}`;
}
