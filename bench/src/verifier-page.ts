/**
 * The officer's verifier page in headless Chromium (issue #13): how long a bundle of an hour (3,600 readings) and
 * a day (86,400 readings) at 1 Hz take to verify in the page, whether progress is shown and the page stays
 * responsive, and where the bytes and the time go.
 *
 *   npm run bench:web                 both sizes (about 3 minutes, most of it building the day bundle)
 *   npm run bench:web -- 3600         one size
 *   BENCH_WEB_KEEP=1 npm run bench:web    keep the bundles in .tmp/bench-web/ and reuse them next time
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
import { generateKeyPairSync, sign } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { parseBundleBytes, type EvidenceBundle } from '@stele/core/bundle.ts';
import { keyIdOf } from '@stele/core/keys.ts';
import type { Signer } from '@stele/core/signer.ts';
import { verifyBundle } from '@stele/core/verify/index.ts';
import { buildTestBundle } from '@stele/core/verify/test-bundle.ts';
import { CHROMIUM_ARGS, DEFAULT_CHROMIUM } from '@stele/verifier/report.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const PAGE = join(repoRoot, 'dist', 'stele-verify.html');
/** BENCH_WEB_KEEP=1 keeps the built bundles here and later runs reuse them (building a day takes minutes). */
const cacheDir = join(repoRoot, '.tmp', 'bench-web');
/**
 * Readings per batch: a one-minute cut at 1 Hz. (Ingest's default cut is every 5 s, about 5 readings per batch:
 * shorter proofs, more batches; test-bundle's proof building is O(n) per leaf, so far larger batches build slowly.)
 */
const BATCH = 60;

/** A node:crypto P-256 signer (about 40,000 signatures/s here, against about 1,000 for the noble test signer). */
function nodeSigner(): Signer {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const raw = new Uint8Array(65);
  raw[0] = 4;
  raw.set(Buffer.from(jwk.x!, 'base64url'), 1);
  raw.set(Buffer.from(jwk.y!, 'base64url'), 33);
  return {
    algorithm: 'ES256',
    keyId: keyIdOf(raw),
    publicKey: raw,
    backend: 'software',
    sign: async (message) => new Uint8Array(sign('sha256', message, { key: privateKey, dsaEncoding: 'ieee-p1363' })),
  };
}

interface ByteShare {
  field: string;
  bytes: number;
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
  maxMainThreadLatenessMs: number;
  /** Timer ticks more than 250 ms late / all ticks. */
  lateTicks: string;
  progressTexts: number;
  state: string;
}

async function main(): Promise<void> {
  const sizes = process.argv.slice(2).map(Number).filter((n) => Number.isSafeInteger(n) && n > 0);
  const counts = sizes.length > 0 ? sizes : [3_600, 86_400];
  const dir = mkdtempSync(join(tmpdir(), 'stele-bench-web-'));
  const browser = await chromium.launch({ executablePath: process.env.STELE_CHROMIUM ?? DEFAULT_CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  const rows: string[] = [];
  const shares: string[] = [];
  try {
    for (const count of counts) {
      const cached = join(cacheDir, `bundle-${count}-b${BATCH}.json`);
      const file = existsSync(cached) ? cached : join(dir, `bundle-${count}.json`);
      process.stderr.write(`${existsSync(cached) ? 'reading' : 'building'} a bundle of ${count} readings…\n`);
      const t0 = performance.now();
      const built = existsSync(cached) ? { bytes: new Uint8Array(readFileSync(cached)), bundle: parseBundleBytes(new Uint8Array(readFileSync(cached))) } : await buildTestBundle({
        count,
        intervalMs: 1_000,
        batchSizes: Array.from({ length: Math.ceil(count / BATCH) }, () => BATCH),
        deviceSigner: nodeSigner(),
        ingestSigner: nodeSigner(),
        rpc: null,
      });
      const bytes = built.bytes;
      if (!existsSync(file)) writeFileSync(file, bytes);
      if (process.env.BENCH_WEB_KEEP === '1' && !existsSync(cached)) {
        mkdirSync(cacheDir, { recursive: true });
        writeFileSync(cached, bytes);
      }
      process.stderr.write(`  built in ${((performance.now() - t0) / 1000).toFixed(1)} s, ${(bytes.length / 1e6).toFixed(1)} MB\n`);
      for (const s of byteShares(built.bundle, bytes.length)) {
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
      await page.evaluate(() => {
        const w = window as unknown as { __probe: { max: number; texts: Set<string>; stop(): void } };
        let last = performance.now();
        const probe = { max: 0, late: 0, ticks: 0, texts: new Set<string>(), stop: () => undefined as void };
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
        };
        w.__probe = probe;
      });
      await page.locator('#file').setInputFiles(file);
      await page.waitForFunction(() => (window as unknown as { stele: { runs(): number } }).stele.runs() > 0, undefined, { timeout: 600_000 });
      const run = (await page.evaluate(() => {
        const w = window as unknown as {
          __probe: { max: number; late: number; ticks: number; texts: Set<string>; stop(): void };
          stele: { result(): { elapsedMs: number; verdict: { state: string }; timings: { parseAndVerifyMs: number; chartMs: number; signatureChecks: number } } };
        };
        w.__probe.stop();
        const r = w.stele.result();
        return {
          elapsedMs: r.elapsedMs,
          parseAndVerifyMs: r.timings.parseAndVerifyMs,
          chartMs: r.timings.chartMs,
          signatureChecks: r.timings.signatureChecks,
          maxMainThreadLatenessMs: w.__probe.max,
          lateTicks: `${w.__probe.late}/${w.__probe.ticks}`,
          progressTexts: w.__probe.texts.size,
          state: r.verdict.state,
        };
      })) as PageRun;
      await context.close();
      process.stderr.write(`  page: ${JSON.stringify(run)}\n`);
      rows.push(
        `| ${count.toLocaleString('en')} | ${(bytes.length / 1e6).toFixed(1)} MB | ${(run.elapsedMs / 1000).toFixed(2)} s | ${(run.parseAndVerifyMs / 1000).toFixed(2)} s | ${(run.chartMs / 1000).toFixed(2)} s | ${run.signatureChecks.toLocaleString('en')} | ${run.progressTexts} | ${run.maxMainThreadLatenessMs.toFixed(0)} ms (${run.lateTicks} ticks > 250 ms late) | ${n2 === n0 ? 'skipped' : `${((n1 - n0) / 1000).toFixed(2)} s + ${((n2 - n1) / 1000).toFixed(2)} s`} | ${run.state} |`,
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
      '| readings | bundle | page: file chosen → verdict shown | worker: parse + verify | worker: chart data | signature checks | progress texts shown | page thread max lateness | Node, same code: parse + verify | verdict |',
      '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
      ...rows,
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
