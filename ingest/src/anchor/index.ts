export { ANVIL_CHAIN_ID, ANVIL_STATE_FILE, resolveAnvilBinary, startAnvil, type AnvilNode, type AnvilOptions } from './anvil.ts';
export {
  ANVIL_DEV_PRIVATE_KEY,
  connectEvmAnchorer,
  type Anchorer,
  type EvmAnchorer,
  type AnchorerState,
  type EvmAnchorerOptions,
} from './evm-anchorer.ts';
export { STELE_ANCHOR_ABI } from './abi.ts';
export { AnchorError, readAnchor, type AnchorFacts, type AnchorRef } from '@stele/core/anchor';
