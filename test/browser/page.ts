/** Opening the built verifier page and reading what it shows. */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { Verdict } from '@stele/core/verify';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const PAGE_PATH = join(REPO_ROOT, 'dist', 'stele-verify.html');
export const ARTIFACTS = join(REPO_ROOT, '.tmp', 'browser');

export function pageUrl(): string {
  if (!existsSync(PAGE_PATH)) throw new Error(`${PAGE_PATH} missing: run npm run build:web`);
  return pathToFileURL(PAGE_PATH).href;
}

export interface OpenedPage {
  context: BrowserContext;
  page: Page;
  /** Every URL the page (and its worker) asked for. */
  requests: string[];
  /** Requests refused by the network cut. */
  blocked: string[];
  errors: string[];
}

/**
 * A new context (fresh storage) with the network cut: nothing leaves but requests to `allowOrigin` (the RPC
 * endpoint), the page's own file and the data/blob URLs it makes.
 */
export async function openPage(
  browser: Browser,
  options: { allowOrigin?: string | string[]; locale?: string; policy?: { bytes: Uint8Array; authority: string } } = {},
): Promise<OpenedPage> {
  const allow = options.allowOrigin === undefined ? [] : [options.allowOrigin].flat();
  const context = await browser.newContext({ locale: options.locale ?? 'zh-CN', timezoneId: 'Asia/Shanghai', viewport: { width: 1100, height: 900 } });
  const requests: string[] = [];
  const blocked: string[] = [];
  const errors: string[] = [];
  await context.route('**/*', async (route) => {
    const url = route.request().url();
    const allowed = url.startsWith('file:') || url.startsWith('data:') || url.startsWith('blob:') || allow.some((o) => url.startsWith(o));
    if (allowed) await route.continue();
    else {
      blocked.push(url);
      await route.abort('blockedbyclient');
    }
  });
  context.on('request', (r) => requests.push(r.url()));
  const page = await context.newPage();
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  await page.goto(pageUrl());
  if (options.policy !== undefined) await loadPolicy(page, options.policy);
  return { context, page, requests, blocked, errors };
}

/** Loads a trust policy and the pinned authority into the page (as the policy box does, without remembering). */
export async function loadPolicy(page: Page, policy: { bytes: Uint8Array; authority: string }): Promise<void> {
  await page.evaluate(
    ([bytes, authority]) => (window as unknown as { stele: { setPolicy(b: readonly number[], a: string): void } }).stele.setPolicy(bytes, authority),
    [[...policy.bytes], policy.authority] as const,
  );
}

/** Drops nothing: chooses the file through the file input, as a keyboard user does, and waits for the verdict. */
export async function verifyFile(page: Page, bytes: Uint8Array, name = 'bundle.json'): Promise<Verdict> {
  const before = await runs(page);
  await page.locator('#file').setInputFiles({ name, mimeType: 'application/json', buffer: Buffer.from(bytes) });
  return waitVerdict(page, before);
}

const runs = (page: Page): Promise<number> => page.evaluate(() => (window as unknown as { stele: { runs(): number } }).stele.runs());

/** Waits for a result newer than run `before`, and returns its verdict (the object core produced). */
export async function waitVerdict(page: Page, before: number): Promise<Verdict> {
  await page.waitForFunction((n) => (window as unknown as { stele: { runs(): number } }).stele.runs() > n, before, { timeout: 120_000 });
  await page.locator('#verdict').waitFor({ state: 'visible' });
  return (await page.evaluate(() => (window as unknown as { stele: { result(): { verdict: unknown } } }).stele.result().verdict)) as Verdict;
}

export async function setRpc(page: Page, urls: string[]): Promise<void> {
  await page.locator('#rpc').fill(urls.join('\n'));
}

/** The verdict box's visible text in one language. */
export async function verdictText(page: Page, lang: 'zh' | 'en'): Promise<string> {
  await page.locator(`#lang-${lang}`).click();
  return page.locator('#verdict').innerText();
}
