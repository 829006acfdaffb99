import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project root (this file is testkit/src/shared.ts). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * `../shared` beside the project root holds the public vectors and captured frames; tests read them in place.
 * Returns the path, or `undefined` with a reason when it is absent. Under CI=true its absence is an error.
 */
export function sharedDir(): string | undefined {
  const dir = process.env.STELE_SHARED_DIR ?? resolve(repoRoot, '..', 'shared');
  if (existsSync(dir)) return dir;
  if (process.env.CI === 'true') throw new Error(`../shared not found at ${dir}: CI must run the vector suites`);
  return undefined;
}

export const SHARED_SKIP_REASON = 'skipped: ../shared (public vectors and captured frames) is not beside the project root';
