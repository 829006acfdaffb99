/**
 * `stele verify BUNDLE [--rpc URL]... [--offline] [--json] [--lang zh|en] [--frame FILE]`
 *
 * Exit codes: 0 verified, 1 failed, 3 partial (not fully checked, e.g. offline), 2 usage or I/O error.
 * The chain is asked through `readAnchor` at the --rpc URLs (all must agree) or, without --rpc, at the RPC
 * recorded in each batch's anchor; nothing else touches the network.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { AnchorError, readAnchor } from '@stele/core/anchor/evm-reader.ts';
import { sha256 } from '@stele/core/hash.ts';
import { findFrameInBundle, verifyBundleBytes, type FrameQueryResult } from '@stele/core/verify/index.ts';
import type { AnchorReader, Verdict } from '@stele/core/verify/index.ts';
import { EXIT_FAILED, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, UsageError, parseCommand, usageError, type CommandIo } from '@stele/command';
import { formatVerdict, type Lang } from './format.ts';

/** The part of a process's streams the command uses. */
export type VerifyIo = CommandIo;

export const EXIT_VERIFIED = EXIT_OK;
export { EXIT_FAILED, EXIT_PARTIAL, EXIT_USAGE };

const USAGE = `usage: stele verify BUNDLE [--rpc URL]... [--offline] [--json] [--lang zh|en] [--frame FILE]

Verifies an evidence bundle (docs/FORMAT.md §7): signatures, completeness, batch inclusion, receipts offline;
the on-chain anchor through a JSON-RPC endpoint of the chain.

  --rpc URL      chain endpoint to ask (repeat to ask several; all must agree).
                 Default: the rpc recorded in the bundle's anchors.
  --offline      do not ask any chain endpoint (the anchor stays unchecked)
  --json         print the verdict as JSON
  --lang zh|en   language of the text output (default: zh when LANG starts with zh, else en)
  --timeout-ms N time limit per chain read (default 10000)
  --frame FILE   a raw frame as the authority's platform received it (e.g. one HJ 212 frame, byte for byte):
                 names the reading(s) of the bundle that came from it; exit 1 when none did, or when that
                 reading did not verify

exit: 0 verified, 1 failed, 3 not fully checked (e.g. offline), 2 usage or I/O error, 70 internal error (a bug)
`;

interface Args {
  file: string;
  rpcUrls: string[];
  offline: boolean;
  json: boolean;
  lang: Lang;
  timeoutMs: number | undefined;
  frame: string | undefined;
}

function defaultLang(): Lang {
  return (process.env.LANG ?? '').toLowerCase().startsWith('zh') ? 'zh' : 'en';
}

const SPEC = {
  name: 'stele verify',
  usage: USAGE,
  positionals: true,
  options: {
    rpc: { type: 'string', multiple: true },
    offline: { type: 'boolean' },
    json: { type: 'boolean' },
    lang: { type: 'string' },
    'timeout-ms': { type: 'string' },
    frame: { type: 'string' },
  },
} as const;

/** The arguments, or an exit code when the command is already answered (--help, a usage error). */
function parseVerifyArgs(argv: string[], io: VerifyIo): Args | number {
  const parsed = parseCommand(argv, SPEC, io);
  if (typeof parsed === 'number') return parsed;
  const { values: v, positionals: files } = parsed;
  try {
    const rpcUrls = v.rpc ?? [];
    for (const url of rpcUrls) if (!/^https?:\/\/\S+$/.test(url)) throw new UsageError(`--rpc: not an http(s) URL: ${url}`);
    const lang = v.lang ?? defaultLang();
    if (lang !== 'zh' && lang !== 'en') throw new UsageError(`--lang: expected zh or en, got ${lang}`);
    let timeoutMs: number | undefined;
    if (v['timeout-ms'] !== undefined) {
      timeoutMs = Number(v['timeout-ms']);
      if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) throw new UsageError('--timeout-ms: expected a positive integer');
    }
    if (files.length !== 1) throw new UsageError(files.length === 0 ? 'no bundle file given' : 'give exactly one bundle file');
    const offline = v.offline === true;
    if (offline && rpcUrls.length > 0) throw new UsageError('--offline and --rpc exclude each other');
    return { file: files[0]!, rpcUrls, offline, json: v.json === true, lang, timeoutMs, frame: v.frame };
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    return usageError(io, SPEC, err.message);
  }
}

/** The chain access of the CLI: `readAnchor` at the given URL. */
function cliAnchorReader(timeoutMs: number | undefined): AnchorReader {
  return async (ref, batchId, rpcUrl) => {
    if (rpcUrl === undefined) throw new AnchorError('ANCHOR_RPC_ERROR', 'no chain endpoint: pass --rpc URL');
    return readAnchor(rpcUrl, ref, batchId, timeoutMs === undefined ? {} : { timeoutMs });
  };
}

/** Exit code of a verdict. */
export function exitCodeOf(verdict: Verdict): number {
  return verdict.state === 'verified' ? EXIT_VERIFIED : verdict.state === 'failed' ? EXIT_FAILED : EXIT_PARTIAL;
}

/** `stele verify`: see the file comment. Never throws for bad input; returns the exit code. */
export async function runVerify(argv: string[], io: VerifyIo): Promise<number> {
  const args = parseVerifyArgs(argv, io);
  if (typeof args === 'number') return args;
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(args.file));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    io.stderr.write(`stele verify: cannot read ${args.file}: ${e.message}\n`);
    return EXIT_USAGE;
  }
  let frameDigest: Uint8Array | undefined;
  if (args.frame !== undefined) {
    try {
      frameDigest = sha256(new Uint8Array(await readFile(args.frame)));
    } catch (err) {
      io.stderr.write(`stele verify: cannot read ${args.frame}: ${(err as Error).message}\n`);
      return EXIT_USAGE;
    }
  }
  const { verdict, bundle } = await verifyBundleBytes(bytes, {
    ...(args.offline ? {} : { anchorReader: cliAnchorReader(args.timeoutMs) }),
    ...(args.rpcUrls.length > 0 ? { rpcUrls: args.rpcUrls } : {}),
  });
  const frame: FrameQueryResult | undefined =
    frameDigest === undefined ? undefined : bundle === undefined ? { sha256: '', matches: [] } : findFrameInBundle(bundle, frameDigest, verdict);
  if (args.json) {
    io.stdout.write(`${JSON.stringify(frame === undefined ? verdict : { ...verdict, frame }, null, 2)}\n`);
  } else {
    io.stdout.write(formatVerdict(verdict, args.lang, { bundleName: basename(args.file) }));
    if (frame !== undefined) io.stdout.write(formatFrame(frame, args.lang));
  }
  // A frame query answers "is this record's reading in the evidence, and does it hold?": no match is a failure.
  if (frame !== undefined && !frame.matches.some((m) => m.verified)) return EXIT_FAILED;
  return exitCodeOf(verdict);
}

function formatFrame(frame: FrameQueryResult, lang: Lang): string {
  const seqs = frame.matches.map((m) => `${m.seq}${m.verified ? '' : lang === 'zh' ? '（未通过核验）' : ' (did not verify)'}`).join(', ');
  if (lang === 'zh') {
    return frame.matches.length === 0
      ? `\n原始报文 SHA-256 ${frame.sha256}：证据包中没有来自该报文的读数。\n`
      : `\n原始报文 SHA-256 ${frame.sha256}：对应读数序号 ${seqs}。\n`;
  }
  return frame.matches.length === 0
    ? `\nFrame SHA-256 ${frame.sha256}: no reading in this bundle came from that frame.\n`
    : `\nFrame SHA-256 ${frame.sha256}: reading seq ${seqs} came from it.\n`;
}
