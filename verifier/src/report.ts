/**
 * `stele verify BUNDLE --report FILE.pdf`: the officer's printable report, made by the verifier page itself
 * (dist/stele-verify.html) in headless Chromium through playwright-core, so the CLI's PDF and the browser's
 * "Save as PDF" are the same document. The page runs core's verification again (the same code as the CLI); the
 * caller compares the two verdicts.
 *
 * Chromium gets no network but the chain endpoints: every other request is refused. The page file's SHA-256 is
 * computed here and stated to the page (a page cannot read its own file), and printed on the report.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { SteleError } from '@stele/core';
import type { Verdict } from '@stele/core/verify';

export type ReportErrorCode = 'REPORT_PAGE_MISSING' | 'REPORT_BROWSER_MISSING' | 'REPORT_BROWSER_ERROR';
export class ReportError extends SteleError<ReportErrorCode> {}

/** Where `npm run build:web` writes the page. */
export const DEFAULT_PAGE_PATH = resolve(dirname(fileURLToPath(import.meta.url)), '../../dist/stele-verify.html');
export const DEFAULT_CHROMIUM = '/usr/bin/chromium';

/** Debian chromium on this machine kind needs these to stay off the network at start (machine notes). */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface ReportOptions {
  pdfPath: string;
  bundleBytes: Uint8Array;
  bundleName: string;
  /** Chain endpoints the officer gave (the page then asks only these). */
  rpcUrls: string[];
  /** Endpoints the page may reach besides `rpcUrls` (the trust policy's suggestions). */
  allowUrls?: string[];
  /** Ask no endpoint at all. */
  offline?: boolean;
  /** The signed trust policy file and the pinned authority fingerprint (hex), loaded into the page. */
  policy?: { bytes: Uint8Array; authority: string };
  lang: 'zh' | 'en';
  /** Default: STELE_VERIFY_PAGE, else dist/stele-verify.html of this checkout. */
  pagePath?: string;
  /** Default: STELE_CHROMIUM, else /usr/bin/chromium. */
  chromiumPath?: string;
  /** Whole-report time limit. Default 300000. */
  timeoutMs?: number;
}

export interface ReportResult {
  verdict: Verdict;
  pageSha256: string;
  pdfPath: string;
}

/** Makes the PDF report; rejects with ReportError when the page or the browser is missing or fails. */
export async function writeReport(options: ReportOptions): Promise<ReportResult> {
  const pagePath = options.pagePath ?? process.env.STELE_VERIFY_PAGE ?? DEFAULT_PAGE_PATH;
  if (!existsSync(pagePath)) {
    throw new ReportError('REPORT_PAGE_MISSING', `no verifier page at ${pagePath}: run npm run build:web (or pass --page FILE)`, { where: { pagePath } });
  }
  const executablePath = options.chromiumPath ?? process.env.STELE_CHROMIUM ?? DEFAULT_CHROMIUM;
  if (!existsSync(executablePath)) {
    throw new ReportError('REPORT_BROWSER_MISSING', `no Chromium at ${executablePath}: apt-get install chromium (or set STELE_CHROMIUM)`, {
      where: { executablePath },
    });
  }
  const pageSha256 = createHash('sha256').update(readFileSync(pagePath)).digest('hex');
  const timeoutMs = options.timeoutMs ?? 300_000;
  const { chromium } = await import('playwright-core');
  let browser;
  try {
    browser = await chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS, timeout: 60_000 });
  } catch (cause) {
    throw new ReportError('REPORT_BROWSER_ERROR', `Chromium did not start: ${(cause as Error).message}`, { cause });
  }
  try {
    const context = await browser.newContext({ locale: options.lang === 'zh' ? 'zh-CN' : 'en-US', timezoneId: 'Asia/Shanghai' });
    const origins = options.offline === true ? [] : [...options.rpcUrls, ...(options.allowUrls ?? [])].map((u) => new URL(u).origin);
    await context.route('**/*', (route) => {
      const url = route.request().url();
      const ok = /^(file|data|blob):/.test(url) || origins.some((o) => url.startsWith(`${o}/`) || url === o);
      return ok ? route.continue() : route.abort('blockedbyclient');
    });
    const page = await context.newPage();
    page.setDefaultTimeout(timeoutMs);
    await page.goto(pathToFileURL(pagePath).href);
    await page.evaluate(
      ([sha, lang, offline, policy, authority]) => {
        const stele = (
          window as unknown as {
            stele: { setFileSha256(h: string): void; setLang(l: string): void; setOffline(o: boolean): void; setPolicy(b: number[], a: string): void };
          }
        ).stele;
        stele.setFileSha256(sha);
        stele.setLang(lang);
        stele.setOffline(offline);
        if (policy !== null && authority !== null) stele.setPolicy(policy, authority);
      },
      [pageSha256, options.lang, options.offline === true, options.policy === undefined ? null : [...options.policy.bytes], options.policy?.authority ?? null] as const,
    );
    await page.locator('#rpc').fill(options.rpcUrls.join('\n'));
    await page.locator('#file').setInputFiles({ name: options.bundleName, mimeType: 'application/json', buffer: Buffer.from(options.bundleBytes) });
    const outcome = await Promise.race([
      page.waitForFunction(() => (window as unknown as { stele: { runs(): number } }).stele.runs() > 0, undefined, { timeout: timeoutMs }).then(() => 'ok' as const),
      page.locator('#error').waitFor({ state: 'visible', timeout: timeoutMs }).then(() => 'error' as const),
    ]);
    if (outcome === 'error') {
      throw new ReportError('REPORT_BROWSER_ERROR', `the page could not verify: ${await page.locator('#error').innerText()}`);
    }
    const verdict = (await page.evaluate(() => (window as unknown as { stele: { result(): { verdict: unknown } } }).stele.result().verdict)) as Verdict;
    const bundleSha = verdict.summary.bundleSha256 ?? '';
    await page.evaluate(() => (window as unknown as { stele: { preparePrint(): void } }).stele.preparePrint());
    await page.emulateMedia({ media: 'print' });
    // Footer on every page: bundle hash and page n of m (VERIFIER.md §4.7 item 11). Only hex goes into the template.
    const footer =
      `<div style="font-size:7pt;width:100%;padding:0 12mm;display:flex;justify-content:space-between;font-family:monospace">` +
      `<span>SHA-256 ${/^[0-9a-f]{64}$/.test(bundleSha) ? bundleSha : ''}</span>` +
      `<span>第 <span class="pageNumber"></span> 页 / 共 <span class="totalPages"></span> 页 · page <span class="pageNumber"></span>/<span class="totalPages"></span></span></div>`;
    await page.pdf({
      path: options.pdfPath,
      format: 'A4',
      printBackground: true,
      displayHeaderFooter: true,
      headerTemplate: '<span></span>',
      footerTemplate: footer,
      margin: { top: '14mm', bottom: '18mm', left: '12mm', right: '12mm' },
    });
    return { verdict, pageSha256, pdfPath: options.pdfPath };
  } catch (err) {
    if (err instanceof ReportError) throw err;
    throw new ReportError('REPORT_BROWSER_ERROR', `making the report failed: ${(err as Error).message}`, { cause: err });
  } finally {
    await browser.close().catch(() => undefined);
  }
}

/** The failure codes of a verdict, per check, sorted: what the CLI and the page must agree on. */
export function verdictCodes(v: Verdict): string {
  return `${v.state}|${v.checks
    .flatMap((c) => c.failures.map((f) => `${c.id}:${f.code}`).concat(`${c.id}=${c.status}`))
    .sort()
    .join(',')}`;
}

