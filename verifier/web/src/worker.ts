/**
 * The verification worker: runs core's `verifyBundleBytes` (the CLI's very code) off the page's thread, so the
 * page stays responsive on a day of readings, and reports progress.
 *
 * Progress: core's verifier has no progress callback (yet), so the worker counts the signature checks it makes
 * through WebCrypto (`SubtleCrypto.prototype.verify`, wrapped in this worker only): one per statement and one per
 * batch receipt signature. A finer callback would belong in core's VerifyOptions.
 */
import { AnchorError, readAnchor } from '@stele/core/anchor';
import { parseBundleBytes } from '@stele/core';
import type { AnchorReader, SignatureBatchVerifier, SignatureJob } from '@stele/core/verify';
import { verifyBundleBytes, verifySignatureBatch } from '@stele/core/verify';
import { policyVerifyOptions } from './policy.ts';
import type { HelperRequest, SignatureAnswer, SignatureBatch, VerifyRequest, WorkerMessage } from './protocol.ts';
import { describeBundle } from './series.ts';

interface WorkerScope {
  postMessage(message: WorkerMessage): void;
  onmessage: ((event: MessageEvent<VerifyRequest | HelperRequest>) => void) | null;
}
const scope = self as unknown as WorkerScope;

let signatureChecks = 0;
let expectedChecks = 1;
/** Progress is posted every this many signature checks (and by a timer, for the phases without any). */
const PROGRESS_EVERY = 500;
const originalVerify = SubtleCrypto.prototype.verify;
SubtleCrypto.prototype.verify = function countedVerify(this: SubtleCrypto, ...args: Parameters<SubtleCrypto['verify']>) {
  // Counted when done: core starts a bundle's signature checks all at once, so starts say nothing of progress.
  const done = (): void => {
    signatureChecks++;
    if (signatureChecks % PROGRESS_EVERY === 0) {
      scope.postMessage({ type: 'progress', phase: 'signatures', done: Math.min(signatureChecks, expectedChecks), total: expectedChecks });
    }
  };
  const pending = originalVerify.apply(this, args);
  pending.then(done, done);
  return pending;
};

/**
 * Rough count of signature checks from the file size, before parsing: one per entry (about 1.25 KB of JSON each,
 * bench/src/verifier-page.ts) plus one receipt signature per batch. An estimate: the bar is capped at it.
 */
function estimateChecks(sizeBytes: number): number {
  return Math.max(1, Math.round(sizeBytes / 1250));
}

/**
 * Share of each batch of signature checks sent to the helper worker; the rest is checked here, where the reading
 * bodies of the batch are also hashed and decoded meanwhile (core's checkSignatures).
 */
const HELPER_SHARE = 0.5;

/**
 * Signature checks over two threads: part of each batch goes to the helper worker through `port`, the rest is
 * checked here (both with core's verifyEs256), the answers put back in order.
 */
function twoThreadVerifier(port: MessagePort): SignatureBatchVerifier {
  let nextId = 0;
  const waiting = new Map<number, (ok: boolean[]) => void>();
  port.onmessage = (event: MessageEvent<SignatureAnswer>) => {
    const answer = event.data;
    signatureChecks += answer.ok.length;
    waiting.get(answer.id)?.(answer.ok);
    waiting.delete(answer.id);
  };
  return async (jobs: readonly SignatureJob[]) => {
    const sent = Math.floor(jobs.length * HELPER_SHARE);
    const id = nextId++;
    const remote = new Promise<boolean[]>((resolve) => waiting.set(id, resolve));
    const batch: SignatureBatch = { id, jobs: jobs.slice(0, sent) };
    port.postMessage(batch);
    const local = await verifySignatureBatch(jobs.slice(sent));
    return [...(await remote), ...local];
  };
}

/** The helper's side: answers every batch of checks arriving on `port` (core's verifyEs256, as the CLI checks). */
function serveHelper(port: MessagePort): void {
  port.onmessage = (event: MessageEvent<SignatureBatch>) => {
    const { id, jobs } = event.data;
    void verifySignatureBatch(jobs).then((ok) => port.postMessage({ id, ok } satisfies SignatureAnswer));
  };
}

async function verify(req: VerifyRequest): Promise<void> {
  const t0 = performance.now();
  const bytes = new Uint8Array(req.bytes);
  scope.postMessage({ type: 'progress', phase: 'read', done: 0, total: 1 });
  signatureChecks = 0;
  expectedChecks = estimateChecks(bytes.length);
  const timer = setInterval(() => {
    scope.postMessage({ type: 'progress', phase: 'signatures', done: Math.min(signatureChecks, expectedChecks), total: expectedChecks });
  }, 250);
  const reader: AnchorReader = async (ref, batchId, rpcUrl) => {
    if (rpcUrl === undefined) throw new AnchorError('ANCHOR_RPC_ERROR', 'no chain endpoint given');
    scope.postMessage({ type: 'progress', phase: 'anchor', done: 0, total: 1 });
    return readAnchor(rpcUrl, ref, batchId, { timeoutMs: req.timeoutMs ?? 10_000 });
  };
  const policyOptions = await policyVerifyOptions(req.policy === undefined ? undefined : new Uint8Array(req.policy), req.authority);
  // Endpoints: the officer's, else (core's default) those the policy suggests; none when told offline.
  const online = req.offline !== true && (req.rpcUrls.length > 0 || policyOptions.trust !== undefined);
  const steps: Record<string, number> = {};
  const options = {
    timings: steps,
    ...(req.helper === undefined ? {} : { signatureVerifier: twoThreadVerifier(req.helper) }),
    ...(online ? { anchorReader: reader } : {}),
    ...(online && req.rpcUrls.length > 0 ? { rpcUrls: req.rpcUrls } : {}),
    ...policyOptions,
  };
  let result: Awaited<ReturnType<typeof verifyBundleBytes>>;
  try {
    result = await verifyBundleBytes(bytes, options);
  } finally {
    clearInterval(timer);
  }
  const total = signatureChecks;
  const t1 = performance.now();
  scope.postMessage({ type: 'progress', phase: 'chart', done: 0, total: 1 });
  // verifyBundleBytes keeps the parsed bundle; when it could not parse, there is nothing to draw.
  const bundle = result.bundle ?? tryParse(bytes);
  const info = bundle === undefined ? undefined : describeBundle(bundle, result.verdict, result.readings);
  const t2 = performance.now();
  scope.postMessage({
    type: 'result',
    verdict: result.verdict,
    info,
    timings: { parseAndVerifyMs: t1 - t0, chartMs: t2 - t1, totalMs: t2 - t0, signatureChecks: total, steps },
  });
}

function tryParse(bytes: Uint8Array) {
  try {
    return parseBundleBytes(bytes);
  } catch {
    return undefined;
  }
}

scope.onmessage = (event) => {
  if (event.data?.type === 'helper') {
    serveHelper(event.data.port);
    return;
  }
  if (event.data?.type !== 'verify') return;
  verify(event.data)
    .catch((err: unknown) => {
      scope.postMessage({ type: 'error', message: err instanceof Error ? `${err.name}: ${err.message}` : String(err) });
    })
    // One verification per worker: closing here frees its heap on this thread (the page's terminate() of a
    // worker holding a day of readings blocked the page for 2.7 s in the bench).
    .finally(() => (self as unknown as { close(): void }).close());
};
