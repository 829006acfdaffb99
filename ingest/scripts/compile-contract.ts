/**
 * Compiles ingest/contracts/SteleAnchor.sol with solc-js (bundled soljson, no download) and writes
 * ingest/contracts/SteleAnchor.json, which is checked in: the service deploys that bytecode, so it never needs
 * solc at run time. `ingest/src/anchor/contract.test.ts` recompiles and compares.
 *
 *   npx tsx ingest/scripts/compile-contract.ts           # (re)write SteleAnchor.json
 *   npx tsx ingest/scripts/compile-contract.ts --check   # exit 1 when the checked-in JSON is stale
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import solc from 'solc';

export const CONTRACT_NAME = 'SteleAnchor';
export const SOLC_VERSION = '0.8.37';
/**
 * Pinned because solc 0.8.37 defaults to `osaka`, whose new opcodes (e.g. CLZ) not every chain we may anchor on
 * runs yet. `cancun` (PUSH0, MCOPY, TSTORE) is live on Ethereum mainnet, the major L2s and current
 * Besu/Geth consortium networks, and anvil 1.7.1 runs it; pinning it also keeps the bytecode reproducible when
 * solc's default moves on.
 */
export const EVM_VERSION = 'cancun';
export const OPTIMIZER = { enabled: true, runs: 200 } as const;

export const SOURCE_PATH = fileURLToPath(new URL('../contracts/SteleAnchor.sol', import.meta.url));
export const ARTIFACT_PATH = fileURLToPath(new URL('../contracts/SteleAnchor.json', import.meta.url));

export interface ContractArtifact {
  contractName: string;
  solcVersion: string;
  evmVersion: string;
  optimizer: { enabled: boolean; runs: number };
  sourceSha256: string;
  abi: unknown[];
  bytecode: `0x${string}`;
  deployedBytecode: `0x${string}`;
}

interface SolcOutput {
  errors?: { severity: string; formattedMessage: string }[];
  contracts?: Record<string, Record<string, { abi: unknown[]; evm: { bytecode: { object: string }; deployedBytecode: { object: string } } }>>;
}

/** Compiles the contract source (default: the checked-in .sol) and returns the artifact. Throws on any solc error. */
export function compileSteleAnchor(source: string = readFileSync(SOURCE_PATH, 'utf8')): ContractArtifact {
  const fullVersion = solc.version() as string;
  if (!fullVersion.startsWith(`${SOLC_VERSION}+`)) {
    throw new Error(`solc-js ${SOLC_VERSION} expected, found ${fullVersion}`);
  }
  const input = {
    language: 'Solidity',
    // The source unit name goes into the metadata hash at the end of the bytecode: keep it fixed.
    sources: { [`${CONTRACT_NAME}.sol`]: { content: source } },
    settings: {
      evmVersion: EVM_VERSION,
      optimizer: OPTIMIZER,
      outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input)) as string) as SolcOutput;
  const errors = (output.errors ?? []).filter((e) => e.severity === 'error');
  if (errors.length > 0) throw new Error(`solc failed:\n${errors.map((e) => e.formattedMessage).join('\n')}`);
  const warnings = (output.errors ?? []).filter((e) => e.severity !== 'error');
  if (warnings.length > 0) throw new Error(`solc warnings (fix them):\n${warnings.map((e) => e.formattedMessage).join('\n')}`);
  const contract = output.contracts?.[`${CONTRACT_NAME}.sol`]?.[CONTRACT_NAME];
  if (contract === undefined) throw new Error(`solc produced no ${CONTRACT_NAME}`);
  return {
    contractName: CONTRACT_NAME,
    solcVersion: fullVersion,
    evmVersion: EVM_VERSION,
    optimizer: { ...OPTIMIZER },
    sourceSha256: createHash('sha256').update(source, 'utf8').digest('hex'),
    abi: contract.abi,
    bytecode: `0x${contract.evm.bytecode.object}`,
    deployedBytecode: `0x${contract.evm.deployedBytecode.object}`,
  };
}

export function serializeArtifact(artifact: ContractArtifact): string {
  return `${JSON.stringify(artifact, null, 2)}\n`;
}

function main(args: string[]): number {
  const text = serializeArtifact(compileSteleAnchor());
  if (args.includes('--check')) {
    let current = '';
    try {
      current = readFileSync(ARTIFACT_PATH, 'utf8');
    } catch {
      // missing counts as stale
    }
    if (current !== text) {
      process.stderr.write(`${ARTIFACT_PATH} is stale: run npx tsx ingest/scripts/compile-contract.ts\n`);
      return 1;
    }
    process.stdout.write(`${ARTIFACT_PATH} is up to date\n`);
    return 0;
  }
  writeFileSync(ARTIFACT_PATH, text);
  process.stdout.write(`wrote ${ARTIFACT_PATH}\n`);
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.slice(2));
}
