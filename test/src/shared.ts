// Moved to @stele/testkit (a leaf package, so suites in every package can use it without a cycle).
export { repoRoot, sharedDir, SHARED_SKIP_REASON } from '@stele/testkit';
