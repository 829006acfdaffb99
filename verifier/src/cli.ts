/**
 * `stele verify BUNDLE --trust POLICY --authority FINGERPRINT [--rpc URL]... [--offline] [--json] [--lang zh|en]
 *                     [--report FILE.pdf [--page FILE]]`
 *
 * Exit codes: 0 verified, 1 failed, 3 partial (not fully checked: offline, or no trust policy), 2 usage or I/O
 * error, or a policy that is not the pinned authority's. The chain is asked through `readAnchor` at the --rpc URLs
 * (all must agree), else at the endpoints the policy suggests (counted per operator against its quorum), else, only
 * with --use-bundle-rpc, at the RPC recorded in the bundle; nothing else touches the network.
 */
import { readFile, stat, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { AnchorError, readAnchor } from '@stele/core/anchor';
import { sha256, MAX_BUNDLE_BYTES, FormatError } from '@stele/core';
import { loadTrustPolicy, parseFingerprint, TrustPolicyError, type TrustPolicy } from '@stele/core/trust';
import { findFrameInBundle, formatErrorVerdict, verifyBundleBytes, type FrameQueryResult } from '@stele/core/verify';
import type { AnchorReader, Verdict } from '@stele/core/verify';
import { EXIT_OK } from '@stele/command';
import { formatVerdict, type Lang } from './format.ts';

/** The part of a process's streams the command uses. */
export interface VerifyIo {
  stdout: { write(chunk: string): unknown };
  stderr: { write(chunk: string): unknown };
}

export const EXIT_VERIFIED = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_PARTIAL = 3;

const USAGE = `usage: stele verify BUNDLE --trust POLICY --authority FINGERPRINT [--rpc URL]... [--offline] [--json] [--lang zh|en]
                    [--report FILE.pdf [--page stele-verify.html]]

Verifies an evidence bundle (docs/FORMAT.md §7): signatures, completeness, batch inclusion, receipts offline;
the on-chain anchor through a JSON-RPC endpoint of the chain; the ingest key and anchor target against your
authority's trust policy (§14). Without a policy the best verdict is "not fully checked" (exit 3).

  --trust POLICY         the trust policy your authority signed (e.g. trust-policy.cose)
  --authority FP         the authority's key fingerprint (64 hex digits), obtained by another channel
  --authority-file FILE  ... or read from a file you keep (your pinned copy)
  --min-policy-version N refuse a policy older than version N (the last one you accepted)
  --policy-state FILE    remember in FILE the highest policy version accepted per authority, and refuse
                         an older one from then on (a rollback)
  --rpc URL      chain endpoint to ask (repeat to ask several; all must agree).
                 Default: the endpoints the trust policy suggests.
  --test-attestation-roots  accept attestation roots the policy marks as test roots (swtpm's local CA): tests only
  --use-bundle-rpc  when neither --rpc nor the policy names an endpoint, ask the rpc recorded in the bundle
                    (taken on the bundle's word)
  --deadline-ms N   one time limit for all chain look-ups together (default 60000)
  --offline      do not ask any chain endpoint (the anchor stays unchecked)
  --json         print the verdict as JSON
  --lang zh|en   language of the text output (default: zh when LANG starts with zh, else en)
  --timeout-ms N time limit per chain read (default 10000)
  --frame FILE   a raw frame as the authority's platform received it (e.g. one HJ 212 frame, byte for byte):
                 names the reading(s) of the bundle that came from it; exit 1 when none did, or when that
                 reading did not verify
  --report FILE  also write the officer's printable report (PDF) as the verifier page makes it, through
                 headless Chromium (Debian chromium, or STELE_CHROMIUM); the page verifies again with the same code
                 and must agree with this command
  --page FILE    the verifier page to print with (default: dist/stele-verify.html from npm run build:web)

exit: 0 verified, 1 failed, 3 not fully checked (offline, no policy), 2 usage or I/O error or a policy that is
not the pinned authority's
`;

interface Args {
  file: string;
  rpcUrls: string[];
  offline: boolean;
  json: boolean;
  lang: Lang;
  timeoutMs: number | undefined;
  frame: string | undefined;
  report: string | undefined;
  page: string | undefined;
  trust: string | undefined;
  authority: string | undefined;
  authorityFile: string | undefined;
  minPolicyVersion: number | undefined;
  useBundleRpc: boolean;
  testAttestationRoots: boolean;
  deadlineMs: number | undefined;
  policyState: string | undefined;
}

class UsageError extends Error {}

function defaultLang(): Lang {
  return (process.env.LANG ?? '').toLowerCase().startsWith('zh') ? 'zh' : 'en';
}

function parseArgs(argv: string[]): Args | 'help' {
  const files: string[] = [];
  const args: Omit<Args, 'file'> = {
    rpcUrls: [], offline: false, json: false, lang: defaultLang(), timeoutMs: undefined, frame: undefined,
    trust: undefined, authority: undefined, authorityFile: undefined, minPolicyVersion: undefined, useBundleRpc: false, testAttestationRoots: false, deadlineMs: undefined, policyState: undefined,
    report: undefined, page: undefined,
  };
  const positive = (name: string, v: string): number => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError(`${name}: expected a positive integer`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const raw = argv[i]!;
    const eq = raw.startsWith('--') ? raw.indexOf('=') : -1;
    const name = eq > 0 ? raw.slice(0, eq) : raw;
    const value = (): string => {
      if (eq > 0) return raw.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${name} needs a value`);
      return v;
    };
    switch (name) {
      case '--help':
      case '-h':
        return 'help';
      case '--rpc': {
        const url = value();
        if (!/^https?:\/\/\S+$/.test(url)) throw new UsageError(`--rpc: not an http(s) URL: ${url}`);
        args.rpcUrls.push(url);
        break;
      }
      case '--offline':
        args.offline = true;
        break;
      case '--json':
        args.json = true;
        break;
      case '--lang': {
        const lang = value();
        if (lang !== 'zh' && lang !== 'en') throw new UsageError(`--lang: expected zh or en, got ${lang}`);
        args.lang = lang;
        break;
      }
      case '--frame':
        args.frame = value();
        break;
      case '--report':
        args.report = value();
        break;
      case '--page':
        args.page = value();
        break;
      case '--trust':
        args.trust = value();
        break;
      case '--authority':
        args.authority = value();
        break;
      case '--authority-file':
        args.authorityFile = value();
        break;
      case '--min-policy-version':
        args.minPolicyVersion = positive(name, value());
        break;
      case '--policy-state':
        args.policyState = value();
        break;
      case '--test-attestation-roots':
        args.testAttestationRoots = true;
        break;
      case '--use-bundle-rpc':
        args.useBundleRpc = true;
        break;
      case '--deadline-ms':
        args.deadlineMs = positive(name, value());
        break;
      case '--timeout-ms': {
        const n = Number(value());
        if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError('--timeout-ms: expected a positive integer');
        args.timeoutMs = n;
        break;
      }
      default:
        if (raw.startsWith('-') && raw !== '-') throw new UsageError(`unknown option ${raw}`);
        files.push(raw);
    }
  }
  if (files.length !== 1) throw new UsageError(files.length === 0 ? 'no bundle file given' : 'give exactly one bundle file');
  if (args.offline && args.rpcUrls.length > 0) throw new UsageError('--offline and --rpc exclude each other');
  if (args.page !== undefined && args.report === undefined) throw new UsageError('--page needs --report');
  if (args.authority !== undefined && args.authorityFile !== undefined) throw new UsageError('give --authority or --authority-file, not both');
  // An unsigned or unpinned policy beside the bundle adds nothing over the bundle's own fields.
  if (args.trust !== undefined && args.authority === undefined && args.authorityFile === undefined) {
    throw new UsageError('--trust needs the authority fingerprint you obtained by another channel: --authority FP or --authority-file FILE');
  }
  if (args.trust === undefined && (args.authority !== undefined || args.authorityFile !== undefined)) throw new UsageError('--authority needs --trust POLICY');
  return { file: files[0]!, ...args };
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
  let args: Args | 'help';
  try {
    args = parseArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr.write(`stele verify: ${err.message}\n\n${USAGE}`);
    return EXIT_USAGE;
  }
  if (args === 'help') {
    io.stdout.write(USAGE);
    return EXIT_OK; // help, not a verdict
  }
  let trust: TrustPolicy | undefined;
  if (args.trust !== undefined) {
    try {
      const pinText = args.authorityFile !== undefined ? await readFile(args.authorityFile, 'utf8') : args.authority!;
      const pin = parseFingerprint(pinText.split('\n').find((l) => l.trim() !== '' && !l.trim().startsWith('#')) ?? '');
      // The highest version accepted before (per authority fingerprint), when the officer keeps that state.
      let state: Record<string, number> = {};
      if (args.policyState !== undefined) {
        try {
          state = JSON.parse(await readFile(args.policyState, 'utf8')) as Record<string, number>;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read --policy-state ${args.policyState}: ${(err as Error).message}`);
        }
      }
      const pinHex = Buffer.from(pin).toString('hex');
      const minVersion = Math.max(args.minPolicyVersion ?? 1, typeof state[pinHex] === 'number' ? state[pinHex] : 1);
      trust = await loadTrustPolicy(new Uint8Array(await readFile(args.trust)), pin, { minVersion });
      if (args.policyState !== undefined && trust.version > (state[pinHex] ?? 0)) {
        await writeFile(args.policyState, `${JSON.stringify({ ...state, [pinHex]: trust.version }, null, 2)}\n`);
      }
    } catch (err) {
      const code = err instanceof TrustPolicyError ? `${err.code}: ` : '';
      io.stderr.write(`stele verify: trust policy ${args.trust} not accepted: ${code}${(err as Error).message}\n`);
      return EXIT_USAGE;
    }
  }
  let bytes: Uint8Array;
  try {
    // Bounded before reading: a file beyond the limit is not loaded (BUNDLE_LIMIT_ERROR, FORMAT.md §7).
    const size = (await stat(args.file)).size;
    if (size > MAX_BUNDLE_BYTES) {
      const verdict = formatErrorVerdict(new FormatError('BUNDLE_LIMIT_ERROR', `${size} bytes, more than the ${MAX_BUNDLE_BYTES} a verifier reads`, { where: { path: '$' } }));
      io.stdout.write(args.json ? `${JSON.stringify(verdict, null, 2)}\n` : formatVerdict(verdict, args.lang, { bundleName: basename(args.file) }));
      return EXIT_FAILED;
    }
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
  let lastProgressAt = 0;
  const { verdict, bundle } = await verifyBundleBytes(bytes, {
    ...(args.offline ? {} : { anchorReader: cliAnchorReader(args.timeoutMs) }),
    ...(args.rpcUrls.length > 0 ? { rpcUrls: args.rpcUrls } : {}),
    ...(trust !== undefined ? { trust } : {}),
    ...(args.useBundleRpc ? { useBundleRpc: true } : {}),
    ...(args.testAttestationRoots ? { testAttestationRoots: true } : {}),
    ...(args.deadlineMs !== undefined ? { chainDeadlineMs: args.deadlineMs } : {}),
    // Progress on stderr (stdout stays the verdict): at most once a second, and the last one.
    onProgress: ({ done, total }) => {
      const now = Date.now();
      if (done < total && now - lastProgressAt < 1000) return;
      lastProgressAt = now;
      io.stderr.write(`${args.lang === 'zh' ? '链上核验' : 'chain look-ups'}: ${done}/${total}\n`);
    },
  });
  const frame: FrameQueryResult | undefined =
    frameDigest === undefined ? undefined : bundle === undefined ? { sha256: '', matches: [] } : findFrameInBundle(bundle, frameDigest, verdict);
  if (args.json) {
    io.stdout.write(`${JSON.stringify(frame === undefined ? verdict : { ...verdict, frame }, null, 2)}\n`);
  } else {
    io.stdout.write(formatVerdict(verdict, args.lang, { bundleName: basename(args.file) }));
    if (frame !== undefined) io.stdout.write(formatFrame(frame, args.lang));
  }
  if (args.report !== undefined) {
    const code = await writeReportFile(args, bytes, verdict, trust, io);
    if (code !== undefined) return code;
  }
  // A frame query answers "is this record's reading in the evidence, and does it hold?": no match is a failure.
  if (frame !== undefined && !frame.matches.some((m) => m.verified)) return EXIT_FAILED;
  return exitCodeOf(verdict);
}

/** `--report`: the page's PDF. Returns an exit code when it failed, undefined when the report was written. */
async function writeReportFile(args: Args, bytes: Uint8Array, verdict: Verdict, trust: TrustPolicy | undefined, io: VerifyIo): Promise<number | undefined> {
  // The page asks what this command asked: --rpc, else the policy's endpoints (core's default), none offline.
  // (--use-bundle-rpc has no page equivalent: the page never takes an endpoint on the bundle's word.)
  const policyUrls = (trust?.anchors ?? []).flatMap((a) => (a.endpoints ?? []).map((e) => e.url));
  const policy = trust === undefined || args.trust === undefined ? undefined : { bytes: new Uint8Array(await readFile(args.trust)), authority: trust.authorityFingerprint };
  const { writeReport, verdictCodes, ReportError } = await import('./report.ts');
  try {
    const made = await writeReport({
      pdfPath: args.report!,
      bundleBytes: bytes,
      bundleName: basename(args.file),
      rpcUrls: args.offline ? [] : args.rpcUrls,
      allowUrls: policyUrls,
      offline: args.offline,
      ...(policy !== undefined ? { policy } : {}),
      lang: args.lang,
      ...(args.page !== undefined ? { pagePath: args.page } : {}),
    });
    if (verdictCodes(made.verdict) !== verdictCodes(verdict)) {
      io.stderr.write(
        `stele verify: the page's verdict differs from this command's (${verdictCodes(made.verdict)} vs ${verdictCodes(verdict)}); the report was written but do not rely on it\n`,
      );
      return EXIT_USAGE;
    }
    io.stderr.write(`stele verify: report written to ${made.pdfPath} (verifier page SHA-256 ${made.pageSha256})\n`);
    return undefined;
  } catch (err) {
    if (err instanceof ReportError) {
      io.stderr.write(`stele verify: --report: ${err.code}: ${err.message}\n`);
      return EXIT_USAGE;
    }
    throw err;
  }
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
