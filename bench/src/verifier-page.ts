/**
 * The officer's verifier page in headless Chromium (issue #13): how long a bundle of an hour (3,600 readings) and
 * a day (86,400 readings) at 1 Hz take to verify in the page, whether progress is shown and the page stays
 * responsive, and where the bytes and the time go.
 *
 *   npm run bench:web                 both sizes (about 3 minutes, most of it building the day bundle)
 *   npm run bench:web -- 3600         one size
 *   BENCH_WEB_KEEP=1 npm run bench:web    keep the bundles in .tmp/bench-web/ and reuse them next time
 *   BENCH_WEB_PAGE=old.html npx tsx bench/src/verifier-page.ts 3600   another build of the page (before/after)
 *   BENCH_WEB_FORM=v1 npm run bench:web   the v1 bundle form (default v2, the compact form ingest exports, FORMAT.md §7.1)
 *
 * Bundles are built with core's test-bundle helper (node:crypto signing the device statements for speed), one
 * batch per 60 readings (see BATCH); verified offline (the chain look-up is network
 * time, a few ms per batch on a local node, and is left out). The page is dist/stele-verify.html opened from
 * file://; the file is chosen through its file input, as an officer does.
 *
 * Responsiveness: a 50 ms interval timer on the page's main thread records its largest lateness while the
 * verification runs (the worker does the work; the page's thread should stay free). Progress: the number of
 * distinct texts the progress label showed.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { bundleToJson, encodeBundle, parseBundleBytes, type EvidenceBundle } from '@stele/core';
import { verifyBundle } from '@stele/core/verify';
import { buildTestBundle } from '@stele/core/testing';
import { CHROMIUM_ARGS, DEFAULT_CHROMIUM } from '@stele/verifier/report';
import { nodeSigner } from './harness.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** BENCH_WEB_PAGE=FILE: another build of the page (e.g. the one before a change, for a before/after pair). */
const PAGE = process.env.BENCH_WEB_PAGE ?? join(repoRoot, 'dist', 'stele-verify.html');
/** BENCH_WEB_KEEP=1 keeps the built bundles here and later runs reuse them (building a day takes minutes). */
const cacheDir = join(repoRoot, '.tmp', 'bench-web');
/**
 * Readings per batch: a one-minute cut at 1 Hz. (Ingest's default cut is every 5 s, about 5 readings per batch:
 * shorter proofs, more batches; test-bundle's proof building is O(n) per leaf, so far larger batches build slowly.)
 */
const BATCH = 60;
/**
 * BENCH_WEB_DEVICE_BATCH=60: the device signs runs of this many readings as device-level batches (FORMAT.md
 * §3.1, one signature per run) instead of one signature per reading. Default 0 (one per reading).
 */
const DEVICE_BATCH = Number(process.env.BENCH_WEB_DEVICE_BATCH ?? 0);
/** BENCH_WEB_FORM=v1|v2: the bundle form the page is given (default v2, FORMAT.md §7.1). */
const FORM: 1 | 2 = process.env.BENCH_WEB_FORM === 'v1' ? 1 : 2;

interface ByteShare {
  field: string;
  bytes: number;
}

/** Bytes of a compact bundle's JSON by field (base64url text as written). */
function byteSharesV2(bundle: EvidenceBundle, total: number): ByteShare[] {
  const j = bundleToJson(bundle, { form: 2 }) as { entries: Record<string, unknown>[]; batches: Record<string, unknown>[]; deviceBatches?: Record<string, unknown>[] };
  const len = (v: unknown): number => (typeof v === 'string' ? v.length : 0);
  let statement = 0;
  let digest = 0;
  let reading = 0;
  for (const e of j.entries) {
    statement += len(e.statement);
    digest += len(e.digest);
    reading += len(e.reading);
  }
  const receipts = j.batches.reduce((n, b) => n + JSON.stringify(b.receipt ?? '').length + JSON.stringify(b.nodes ?? '').length, 0);
  const deviceBatches = JSON.stringify(j.deviceBatches ?? []).length;
  return [
    { field: 'v2 entries[].statement (single-reading statements)', bytes: statement },
    { field: 'v2 entries[].digest (device-level batch members)', bytes: digest },
    { field: 'v2 deviceBatches (header + signature once per device batch)', bytes: deviceBatches },
    { field: 'v2 batches[].receipt + nodes (once per ingest batch)', bytes: receipts },
    { field: 'v2 entries[].reading (reading CBOR)', bytes: reading },
    { field: 'v2 JSON keys, quotes, seq/batchId/leaf, device, batches', bytes: total - statement - digest - deviceBatches - receipts - reading },
  ];
}

/** Bytes of the bundle JSON by field (base64url text as written). */
function byteShares(bundle: EvidenceBundle, total: number): ByteShare[] {
  const b64 = (n: number): number => Math.ceil((n * 4) / 3);
  let statement = 0;
  let receipt = 0;
  let reading = 0;
  for (const e of bundle.entries) {
    statement += b64(e.statement.length);
    receipt += b64(e.receipt.length);
    reading += e.reading === undefined ? 0 : b64(e.reading.length);
  }
  return [
    { field: 'entries[].statement (COSE_Sign1: header, digest, signature)', bytes: statement },
    { field: 'entries[].receipt (COSE receipt: ingest signature + inclusion proof)', bytes: receipt },
    { field: 'entries[].reading (reading CBOR)', bytes: reading },
    { field: 'JSON keys, quotes, seq/batchId, device, batches', bytes: total - statement - receipt - reading },
  ];
}

interface PageRun {
  elapsedMs: number;
  parseAndVerifyMs: number;
  chartMs: number;
  signatureChecks: number;
  steps: Record<string, number>;
  maxMainThreadLatenessMs: number;
  /** Timer ticks more than 250 ms late / all ticks. */
  lateTicks: string;
  progressTexts: number;
  longTaskMaxMs: number;
  longTasks: number;
  /** "start after the file was chosen: duration" of each long task. */
  longTaskAt: string[];
  longTaskTotalMs: number;
  state: string;
}

interface PageLimits {
  verifySequentialPerS: number;
  verifyConcurrentPerS: number;
  digest200ConcurrentPerS: number;
  digest1MiBMBps: number;
}

/**
 * The ceilings in the same page, measured before each bundle: WebCrypto P-256 verify awaited one at a time and
 * with 2,000 in flight, SHA-256 (WebCrypto digest) of 200-byte inputs with 2,000 in flight, and of 1 MiB inputs.
 */
async function pageLimits(page: import('playwright-core').Page): Promise<PageLimits> {
  return page.evaluate(async () => {
    const subtle = crypto.subtle;
    const pair = (await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
    const alg = { name: 'ECDSA', hash: 'SHA-256' };
    const msgs = Array.from({ length: 2000 }, (_, i) => new TextEncoder().encode(`message ${i} `.repeat(8)));
    const sigs = await Promise.all(msgs.map((m) => subtle.sign(alg, pair.privateKey, m)));
    let t = performance.now();
    for (let i = 0; i < 500; i++) await subtle.verify(alg, pair.publicKey, sigs[i]!, msgs[i]!);
    const verifySequentialPerS = 500 / ((performance.now() - t) / 1000);
    t = performance.now();
    await Promise.all(msgs.map((m, i) => subtle.verify(alg, pair.publicKey, sigs[i]!, m)));
    const verifyConcurrentPerS = 2000 / ((performance.now() - t) / 1000);
    const small = Array.from({ length: 2000 }, (_, i) => new Uint8Array(200).fill(i & 255));
    t = performance.now();
    await Promise.all(small.map((m) => subtle.digest('SHA-256', m)));
    const digest200ConcurrentPerS = 2000 / ((performance.now() - t) / 1000);
    const big = new Uint8Array(1 << 20);
    t = performance.now();
    for (let i = 0; i < 32; i++) await subtle.digest('SHA-256', big);
    const digest1MiBMBps = (32 * (1 << 20)) / 1e6 / ((performance.now() - t) / 1000);
    return { verifySequentialPerS, verifyConcurrentPerS, digest200ConcurrentPerS, digest1MiBMBps };
  });
}

async function main(): Promise<void> {
  const sizes = process.argv.slice(2).map(Number).filter((n) => Number.isSafeInteger(n) && n > 0);
  const counts = sizes.length > 0 ? sizes : [3_600, 86_400];
  const dir = mkdtempSync(join(tmpdir(), 'stele-bench-web-'));
  const browser = await chromium.launch({ executablePath: process.env.STELE_CHROMIUM ?? DEFAULT_CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  const rows: string[] = [];
  const shares: string[] = [];
  const limitRows: string[] = [];
  try {
    for (const count of counts) {
      const cached = join(cacheDir, `bundle-${count}-b${BATCH}${DEVICE_BATCH > 0 ? `-d${DEVICE_BATCH}` : ''}.json`);
      process.stderr.write(`${existsSync(cached) ? 'reading' : 'building'} a bundle of ${count} readings…\n`);
      const t0 = performance.now();
      const built = existsSync(cached) ? { bytes: new Uint8Array(readFileSync(cached)), bundle: parseBundleBytes(new Uint8Array(readFileSync(cached))) } : await buildTestBundle({
        count,
        intervalMs: 1_000,
        batchSizes: Array.from({ length: Math.ceil(count / BATCH) }, () => BATCH),
        deviceSigner: nodeSigner(),
        ...(DEVICE_BATCH > 0 ? { deviceBatches: Array.from({ length: Math.floor(count / DEVICE_BATCH) }, (_, i) => ({ first: 1 + i * DEVICE_BATCH, count: DEVICE_BATCH })) } : {}),
        ingestSigner: nodeSigner(),
        rpc: null,
      });
      const bytes = FORM === 2 ? encodeBundle(built.bundle, { form: 2 }) : built.bytes;
      const given = join(dir, `bundle-${count}.json`); // what the page is given: the bundle in the form measured
      writeFileSync(given, bytes);
      if (process.env.BENCH_WEB_KEEP === '1' && !existsSync(cached)) {
        mkdirSync(cacheDir, { recursive: true });
        writeFileSync(cached, built.bytes);
      }
      process.stderr.write(`  built in ${((performance.now() - t0) / 1000).toFixed(1)} s, ${(bytes.length / 1e6).toFixed(1)} MB\n`);
      for (const s of FORM === 2 ? byteSharesV2(built.bundle, bytes.length) : byteShares(built.bundle, bytes.length)) {
        shares.push(`| ${count.toLocaleString('en')} | ${s.field} | ${(s.bytes / 1e6).toFixed(1)} MB | ${((100 * s.bytes) / bytes.length).toFixed(0)} % | ${Math.round(s.bytes / count)} B |`);
      }

      // The same code in Node, for the split between parsing and checking (BENCH_WEB_NODE=0 skips it).
      const n0 = performance.now();
      let n1 = n0;
      let n2 = n0;
      if (process.env.BENCH_WEB_NODE !== '0') {
        const parsed = parseBundleBytes(bytes);
        n1 = performance.now();
        const nodeVerdict = await verifyBundle(parsed);
        n2 = performance.now();
        process.stderr.write(`  node: parse ${(n1 - n0).toFixed(0)} ms, verify ${(n2 - n1).toFixed(0)} ms (${nodeVerdict.state})\n`);
      }

      const context = await browser.newContext();
      await context.route('**/*', (r) => (/^(file|data|blob):/.test(r.request().url()) ? r.continue() : r.abort()));
      // tsx keeps function names with a __name helper that the page does not have.
      await context.addInitScript('window.__name = (f) => f;');
      const page = await context.newPage();
      await page.goto(pathToFileURL(PAGE).href);
      const limits = await pageLimits(page);
      process.stderr.write(`  page limits: ${JSON.stringify(limits)}\n`);
      limitRows.push(
        `| ${count.toLocaleString('en')} | ${Math.round(limits.verifySequentialPerS).toLocaleString('en')} /s | ${Math.round(limits.verifyConcurrentPerS).toLocaleString('en')} /s | ${Math.round(limits.digest200ConcurrentPerS).toLocaleString('en')} /s | ${Math.round(limits.digest1MiBMBps).toLocaleString('en')} MB/s | ${(count / limits.verifyConcurrentPerS).toFixed(2)} s |`,
      );
      await page.evaluate(() => {
        const w = window as unknown as { __probe: { max: number; texts: Set<string>; stop(): void } };
        let last = performance.now();
        const probe = { max: 0, late: 0, ticks: 0, texts: new Set<string>(), longTasks: [] as number[], longTaskAt: [] as string[], t0: performance.now(), stop: () => undefined as void };
        // Main-thread long tasks (> 50 ms) while the verification runs (Long Tasks API).
        const longTaskObs = new PerformanceObserver((list) => {
          for (const e of list.getEntries()) {
            probe.longTasks.push(e.duration);
            probe.longTaskAt.push(`${((e.startTime - probe.t0) / 1000).toFixed(1)} s: ${e.duration.toFixed(0)} ms`);
          }
        });
        longTaskObs.observe({ type: 'longtask', buffered: false });
        const timer = setInterval(() => {
          const now = performance.now();
          probe.max = Math.max(probe.max, now - last - 50);
          probe.ticks++;
          if (now - last - 50 > 250) probe.late++;
          last = now;
        }, 50);
        const label = document.getElementById('progress-label')!;
        const obs = new MutationObserver(() => probe.texts.add(label.textContent ?? ''));
        obs.observe(label, { childList: true, subtree: true, characterData: true });
        probe.stop = () => {
          clearInterval(timer);
          obs.disconnect();
          longTaskObs.disconnect();
        };
        w.__probe = probe;
      });
      await page.locator('#file').setInputFiles(given);
      await page.waitForFunction(() => (window as unknown as { stele: { runs(): number } }).stele.runs() > 0, undefined, { timeout: 600_000 });
      const run = (await page.evaluate(() => {
        const w = window as unknown as {
          __probe: { max: number; late: number; ticks: number; texts: Set<string>; longTasks: number[]; longTaskAt: string[]; stop(): void };
          stele: { result(): { elapsedMs: number; verdict: { state: string }; timings: { parseAndVerifyMs: number; chartMs: number; signatureChecks: number; steps?: Record<string, number> } } };
        };
        w.__probe.stop();
        const r = w.stele.result();
        return {
          elapsedMs: r.elapsedMs,
          parseAndVerifyMs: r.timings.parseAndVerifyMs,
          chartMs: r.timings.chartMs,
          signatureChecks: r.timings.signatureChecks,
          steps: r.timings.steps ?? {},
          maxMainThreadLatenessMs: w.__probe.max,
          lateTicks: `${w.__probe.late}/${w.__probe.ticks}`,
          progressTexts: w.__probe.texts.size,
          longTaskMaxMs: Math.max(0, ...w.__probe.longTasks),
          longTasks: w.__probe.longTasks.length,
          longTaskAt: w.__probe.longTaskAt,
          longTaskTotalMs: w.__probe.longTasks.reduce((a, b) => a + b, 0),
          state: r.verdict.state,
        };
      })) as PageRun;
      await context.close();
      process.stderr.write(`  page: ${JSON.stringify(run)}\n`);
      rows.push(
        `| ${count.toLocaleString('en')} v${FORM}${DEVICE_BATCH > 0 ? ` (device batches of ${DEVICE_BATCH})` : ''} | ${(bytes.length / 1e6).toFixed(1)} MB | ${(run.elapsedMs / 1000).toFixed(2)} s | ${(run.parseAndVerifyMs / 1000).toFixed(2)} s | ${['parse', 'format', 'signatures', 'inclusion', 'rest'].map((k) => ((run.steps[k] ?? 0) / 1000).toFixed(2)).join(' / ')} s | ${(run.chartMs / 1000).toFixed(2)} s | ${run.signatureChecks.toLocaleString('en')} | ${run.progressTexts} | ${run.maxMainThreadLatenessMs.toFixed(0)} ms (${run.lateTicks} ticks > 250 ms late) | ${run.longTasks} (max ${run.longTaskMaxMs.toFixed(0)} ms, total ${run.longTaskTotalMs.toFixed(0)} ms) | ${n2 === n0 ? 'skipped' : `${((n1 - n0) / 1000).toFixed(2)} s + ${((n2 - n1) / 1000).toFixed(2)} s`} | ${run.state} |`,
      );
    }
  } finally {
    await browser.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  process.stdout.write(
    [
      `- Machine: ${availableParallelism()} CPUs, ${cpu}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM; Chromium ${browser.version()} (Debian, headless)`,
      `- Date: ${new Date().toISOString()}; load average after: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`,
      `- Command: \`npm run bench:web\` (bench/src/verifier-page.ts), offline (no chain look-up)`,
      '',
      '| readings | bundle | page: file chosen → verdict shown | worker: parse + verify | of which parse / format / signatures / inclusion / rest | worker: chart data | signature checks | progress texts shown | page thread max lateness | page long tasks (> 50 ms) | Node, same code: parse + verify | verdict |',
      '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
      ...rows,
      '',
      'Limits in the same page just before each bundle (main thread, WebCrypto):',
      '',
      '| before bundle of | P-256 verify, one at a time | P-256 verify, 2,000 in flight | SHA-256 200 B, 2,000 in flight | SHA-256 1 MiB | readings / concurrent verify rate |',
      '|---:|---:|---:|---:|---:|---:|',
      ...limitRows,
      '',
      '| readings | field | bytes | share | per reading |',
      '|---:|---|---:|---:|---:|',
      ...shares,
      '',
    ].join('\n'),
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
