/**
 * `stele ingest trust export`: drafts the trust policy entries for what this ingest signs and anchors (its receipt
 * key with its issuer, the chain and SteleAnchor contract it anchors on), for the authority to review and sign with
 * `stele trust sign` (docs/FORMAT.md §14, docs/officer.md). The draft is unsigned: it is a request, never trust.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { draftTrustPolicy } from '@stele/core/trust';
import { loadSoftwareSigner } from '@stele/device';
import type { AnchorerState } from './anchor/evm-anchorer.ts';
import type { IngestIo } from './cli.ts';

const USAGE = `usage: stele ingest trust export --data DIR [--issuer NAME] [--key FILE] [--rpc URL --operator NAME]...
                                 [--start-block N] [--valid-from ISO] [--out FILE]

Writes an unsigned draft trust policy (JSON) naming this ingest's receipt key, its issuer and the chain and
contract it anchors on, for your authority to sign with \`stele trust sign\`.

  --data DIR          the ingest data directory (key in DIR/keys/ingest.pem; contract in DIR/chain/anchor-contract.json
                      for --embedded-chain, DIR/anchor-contract.json for --rpc)
  --issuer NAME       the --issuer ingest runs with (default stele-ingest)
  --key FILE          the receipt key, if not DIR/keys/ingest.pem
  --rpc URL           a chain endpoint to suggest to officers (repeat; pair each with --operator)
  --operator NAME     who runs the matching --rpc endpoint (quorums count operators, not URLs)
  --start-block N     first block anchors count from (default 0)
  --valid-from ISO    start of the key's window (default now)
  --out FILE          write the draft there (default: stdout)
`;

export async function runIngestTrust(argv: string[], io: IngestIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'export') {
    io.stderr.write(USAGE);
    return sub === '--help' || sub === '-h' ? 0 : 2;
  }
  let values;
  try {
    values = parseArgs({
      args: rest,
      options: {
        data: { type: 'string' },
        issuer: { type: 'string' },
        key: { type: 'string' },
        rpc: { type: 'string', multiple: true },
        operator: { type: 'string', multiple: true },
        'start-block': { type: 'string' },
        'valid-from': { type: 'string' },
        out: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values;
  } catch (err) {
    io.stderr.write(`stele ingest trust export: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help === true) {
    io.stdout.write(USAGE);
    return 0;
  }
  const dataDir = values.data;
  const rpc = values.rpc ?? [];
  const operators = values.operator ?? [];
  const startBlock = Number(values['start-block'] ?? '0');
  if (dataDir === undefined || rpc.length !== operators.length || !Number.isSafeInteger(startBlock) || startBlock < 0) {
    io.stderr.write(`stele ingest trust export: give --data DIR, one --operator per --rpc, and --start-block >= 0\n\n${USAGE}`);
    return 2;
  }
  try {
    const signer = await loadSoftwareSigner(values.key ?? join(dataDir, 'keys', 'ingest.pem'));
    let state: AnchorerState | undefined;
    for (const file of [join(dataDir, 'chain', 'anchor-contract.json'), join(dataDir, 'anchor-contract.json')]) {
      try {
        state = JSON.parse(await readFile(file, 'utf8')) as AnchorerState;
        break;
      } catch {
        // not this layout
      }
    }
    if (state === undefined) throw new Error(`no anchor contract recorded under ${dataDir} (has ingest run and anchored yet?)`);
    const draft = draftTrustPolicy({
      ingest: { publicKey: signer.publicKey, issuer: values.issuer ?? 'stele-ingest', validFrom: values['valid-from'] ?? new Date().toISOString() },
      anchors: [{ chainId: state.chainId, contract: state.contract, startBlock, endpoints: rpc.map((url, i) => ({ operator: operators[i]!, url })) }],
    });
    const text = `${JSON.stringify(draft, null, 2)}\n`;
    if (values.out === undefined) io.stdout.write(text);
    else {
      await writeFile(values.out, text);
      io.stdout.write(`wrote ${values.out}: ingest key and chain ${state.chainId} contract ${state.contract}; give it to your authority to sign\n`);
    }
    return 0;
  } catch (err) {
    io.stderr.write(`stele ingest trust export: ${(err as Error).message}\n`);
    return 1;
  }
}
