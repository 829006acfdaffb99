export { repoRoot, sharedDir, SHARED_SKIP_REASON } from './shared.ts';
export { anchorCodeOf } from './anchor.ts';
