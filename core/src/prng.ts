/**
 * mulberry32: a small, fast, seedable 32-bit PRNG (public domain). Deterministic and NOT for cryptography: for the
 * simulators' drifting values and for replayable test schedules (fuzzing, chaos). Exported from `@stele/core` (the
 * verifier has no use for it; a bundler drops it).
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
