/**
 * Debian's chromium driven by playwright-core (Playwright's own browser download does not work on this machine
 * kind). The flags keep Chromium off the network it would otherwise call at start (node-svc machine notes).
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { CHROMIUM_ARGS, DEFAULT_CHROMIUM } from '@stele/verifier/report';

export function chromiumPath(): string {
  const path = process.env.STELE_CHROMIUM ?? DEFAULT_CHROMIUM;
  if (!existsSync(path)) throw new Error(`no Chromium at ${path}: apt-get install chromium (or set STELE_CHROMIUM)`);
  return path;
}

export interface LaunchedBrowser {
  browser: Browser;
  close(): Promise<void>;
}

/** Launches headless Chromium; playwright gives it a fresh temporary profile (--user-data-dir) and removes it on close. */
export async function launchChromium(): Promise<LaunchedBrowser> {
  const browser = await chromium.launch({ executablePath: chromiumPath(), headless: true, args: CHROMIUM_ARGS });
  return { browser, close: () => browser.close().catch(() => undefined) };
}
