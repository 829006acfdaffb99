import { parseAbi } from 'viem';

/**
 * ABI of ingest/contracts/SteleAnchor.sol (docs/FORMAT.md §6), written out so viem can type the calls.
 * contract.test.ts checks it equals the ABI solc produces.
 */
export const STELE_ANCHOR_ABI = parseAbi([
  'constructor()',
  'error AlreadyAnchored(uint64 batchId)',
  'error EmptyRoot()',
  'error NotOwner()',
  'event Anchored(uint64 indexed batchId, bytes32 indexed root, uint64 size, uint64 timestamp)',
  'function anchor(uint64 batchId, bytes32 root, uint64 size)',
  'function anchors(uint64) view returns (bytes32 root, uint64 size, uint64 blockNumber, uint64 timestamp)',
  'function owner() view returns (address)',
]);
