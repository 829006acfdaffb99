import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ARTIFACT_PATH, compileSteleAnchor, serializeArtifact, type ContractArtifact } from '../../scripts/compile-contract.ts';
import { STELE_ANCHOR_ABI } from './abi.ts';

/** ABI entries without solc's `internalType`, in a stable order, for comparing with viem's parseAbi output. */
function normalizeAbi(abi: readonly unknown[]): unknown[] {
  const strip = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(strip);
    if (typeof v === 'object' && v !== null) {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) {
        if (k === 'internalType' || (k === 'name' && x === '') || ((k === 'indexed' || k === 'anonymous') && x === false)) continue; // solc spells out defaults
        out[k] = strip(x);
      }
      return out;
    }
    return v;
  };
  const key = (e: unknown): string => {
    const o = e as { type: string; name?: string };
    return `${o.type}:${o.name ?? ''}`;
  };
  return abi.map(strip).sort((a, b) => key(a).localeCompare(key(b)));
}

describe('SteleAnchor.json', () => {
  const checkedIn = JSON.parse(readFileSync(ARTIFACT_PATH, 'utf8')) as ContractArtifact;
  const fresh = compileSteleAnchor();

  it('matches a fresh compile of SteleAnchor.sol byte for byte', () => {
    expect(fresh.sourceSha256).toBe(checkedIn.sourceSha256);
    expect(fresh.bytecode).toBe(checkedIn.bytecode);
    expect(fresh.deployedBytecode).toBe(checkedIn.deployedBytecode);
    expect(fresh.abi).toEqual(checkedIn.abi);
    expect(serializeArtifact(fresh)).toBe(readFileSync(ARTIFACT_PATH, 'utf8'));
  });

  it('pins solc 0.8.37, evm cancun and the optimizer at 200 runs', () => {
    expect(checkedIn.solcVersion.startsWith('0.8.37+')).toBe(true);
    expect(checkedIn.evmVersion).toBe('cancun');
    expect(checkedIn.optimizer).toEqual({ enabled: true, runs: 200 });
  });

  it('has the ABI that the TypeScript side uses', () => {
    expect(normalizeAbi(STELE_ANCHOR_ABI)).toEqual(normalizeAbi(checkedIn.abi));
  });
});
