/**
 * The officer's verifier page (issue #13, VERIFIER.md §4.8) in Debian's Chromium through playwright-core: the
 * built single file opened from file://, bundles anchored on a real local anvil, the network cut except for that
 * RPC endpoint. Screenshots and the report PDF are saved under .tmp/browser/.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAnchor } from '@stele/core/anchor';
import { encodeBundle, type EvidenceBundle } from '@stele/core';
import { verifyBundleBytes, type AnchorReader, type Verdict } from '@stele/core/verify';
import { cloneBundle } from '@stele/core/testing';
import { launchChromium, type LaunchedBrowser } from './chromium.ts';
import { loadTrustPolicy, type TrustPolicy } from '@stele/core/trust';
import { alertBundle, anchoredBundle, custodySet, editedAlertValue, HOSTILE_TEXT, signedPolicy, startChain, tamperedVariants, type Chain } from './fixtures.ts';
import { ARTIFACTS, openPage, setRpc, verdictText, verifyFile, type OpenedPage } from './page.ts';

let browser: LaunchedBrowser;
let chain: Chain;
let valid: EvidenceBundle;
let validBytes: Uint8Array;
let opened: OpenedPage;
let policy: { bytes: Uint8Array; authority: string };
let trust: TrustPolicy;

const cliReader: AnchorReader = (ref, batchId, url) => readAnchor(url!, ref, batchId);
/** What the CLI's code says about the same bytes and endpoint (VERIFIER.md T9). */
const cliVerdict = async (bytes: Uint8Array, rpc: string): Promise<Verdict> =>
  (await verifyBundleBytes(bytes, { anchorReader: cliReader, rpcUrls: [rpc], trust })).verdict;
const codesOf = (v: Verdict): string[] => v.checks.flatMap((c) => c.failures.map((f) => `${c.id}:${f.code}`)).sort();

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  [browser, chain] = await Promise.all([launchChromium(), startChain()]);
  valid = await anchoredBundle(chain, { flagOf: (seq) => (seq === 9 ? 'M' : seq === 15 ? 'C' : undefined) });
  validBytes = encodeBundle(valid, { form: 2 }); // the compact form ingest exports (FORMAT.md §7.1)
  policy = await signedPolicy(valid);
  trust = await loadTrustPolicy(policy.bytes, policy.authority);
  opened = await openPage(browser.browser, { allowOrigin: chain.rpcUrl, policy });
});

afterAll(async () => {
  await opened?.context.close();
  await browser?.close();
  await chain?.stop();
});

describe('the verifier page, network cut except for the RPC endpoint', () => {
  it('loads offline: only its own file, no other request', () => {
    expect(opened.requests.every((u) => u.startsWith('file:'))).toBe(true);
    expect(opened.errors).toEqual([]);
  });

  it('shows "verified" for a valid anchored bundle, the same verdict as the CLI code', async () => {
    const { page } = opened;
    await setRpc(page, [chain.rpcUrl]);
    const verdict = await verifyFile(page, validBytes, 'valid.bundle.json');
    expect(verdict.state).toBe('verified');
    expect(verdict.checks.find((c) => c.id === 'anchor')!.status).toBe('pass');
    expect(await verdictText(page, 'zh')).toContain('技术核验通过');
    expect((await page.locator('#verdict .word').innerText()).trim()).toBe('✓ 通过');
    expect(await verdictText(page, 'en')).toContain('Verified: unchanged since signing');
    expect((await page.locator('#verdict .word').innerText()).trim()).toBe('✓ Verified');
    expect(await page.locator('html').getAttribute('lang')).toBe('en');
    expect(await page.locator('[data-policy-applied]').getAttribute('data-policy-applied')).toBe('yes');
    expect(verdict.summary.trust?.policy?.sha256).toBe((await import('node:crypto')).createHash('sha256').update(policy.bytes).digest('hex'));
    const cli = await cliVerdict(validBytes, chain.rpcUrl);
    expect(verdict).toEqual(cli);
    await page.screenshot({ path: join(ARTIFACTS, 'valid-en.png'), fullPage: true });
    await page.locator('#lang-zh').click();
    await page.screenshot({ path: join(ARTIFACTS, 'valid-zh.png'), fullPage: true });
    // Every request went to the page itself or the RPC endpoint; nothing was blocked.
    expect(opened.blocked).toEqual([]);
    expect(opened.requests.filter((u) => !u.startsWith('file:')).every((u) => u.startsWith(chain.rpcUrl))).toBe(true);
    expect(opened.requests.some((u) => u.startsWith(chain.rpcUrl))).toBe(true);
  });

  it('prints a report whose PDF text holds the verdict and the bundle hash', async () => {
    const { page } = opened;
    await setRpc(page, [chain.rpcUrl]);
    const verdict = await verifyFile(page, validBytes, 'valid.bundle.json');
    await page.evaluate(() => (window as unknown as { stele: { preparePrint(): void } }).stele.preparePrint());
    await page.emulateMedia({ media: 'print' });
    const pdf = join(ARTIFACTS, 'report-valid.pdf');
    await page.pdf({ path: pdf, format: 'A4', printBackground: true });
    await page.screenshot({ path: join(ARTIFACTS, 'valid-print.png'), fullPage: true });
    await page.emulateMedia({ media: 'screen' });
    const text = execFileSync('pdftotext', ['-enc', 'UTF-8', pdf, '-'], { encoding: 'utf8' }).replace(/\s+/g, '');
    expect(text).toContain('技术核验通过');
    expect(text).toContain('Verified');
    expect(text).toContain(verdict.summary.bundleSha256!);
    expect(text).toContain(verdict.summary.anchors[0]!.txHash!);
    expect(text).toContain('核验人');
  });

  it('says which checks stay open when no endpoint is given (offline)', async () => {
    const { page } = opened;
    await setRpc(page, []);
    const verdict = await verifyFile(page, validBytes);
    expect(verdict.state).toBe('partial');
    const zh = await verdictText(page, 'zh');
    expect(zh).toContain('未能完全核验');
    expect(zh).toContain('链上锚定');
    expect(zh).toContain('时间界');
    expect(await verdictText(page, 'en')).toMatch(/Still open: On-chain anchor, Time bounds/);
    await page.screenshot({ path: join(ARTIFACTS, 'offline-en.png'), fullPage: false });
  });

  const variants = (form: 1 | 2 = 2): ReturnType<typeof tamperedVariants> => tamperedVariants(valid, form);
  it('has at least eight tampered variants', () => {
    expect(variants().length).toBeGreaterThanOrEqual(8);
  });

  it('gives each tampered variant the same failure codes in the v1 form as in the compact form', async () => {
    const unique = (v: Verdict): string[] => [...new Set(codesOf(v))];
    const v1 = variants(1);
    for (const v2 of variants(2)) {
      const same = v1.find((x) => x.name === v2.name)!;
      const [a, b] = [await cliVerdict(v2.bytes, chain.rpcUrl), await cliVerdict(same.bytes, chain.rpcUrl)];
      expect([v2.name, a.state, unique(a)]).toEqual([v2.name, b.state, unique(b)]);
      expect(JSON.parse(new TextDecoder().decode(v2.name === 'truncated file' ? validBytes : v2.bytes)).format).toBe('stele-evidence/2');
    }
  });

  it.each(
    // Names only here: the bundles are built after beforeAll has anchored the valid one.
    [
      'altered value',
      'removed reading',
      'forged signature',
      'altered proof',
      'altered root',
      'forged receipt signature',
      'rogue ingest key (receipts not re-signed)',
      'edited device record (another key)',
      'edited device record (key id)',
      'untrusted anchor (another contract)',
      'altered transaction hash',
      'truncated file',
    ],
  )('shows "failed" with the right reason in both languages: %s', async (name) => {
    const v = variants().find((x) => x.name === name)!;
    const { page } = opened;
    await setRpc(page, [chain.rpcUrl]);
    const verdict = await verifyFile(page, v.bytes, `${name}.json`);
    expect(verdict.state).toBe('failed');
    const failed = verdict.checks.filter((c) => c.status === 'fail');
    const codes = failed.flatMap((c) => c.failures.map((f) => f.code));
    const wanted = [v.code].flat();
    expect(codes.filter((c) => wanted.includes(c)), `codes ${codes.join(', ')}`).not.toEqual([]);
    // The same verdict as the CLI's code, code for code.
    expect(codesOf(verdict)).toEqual(codesOf(await cliVerdict(v.bytes, chain.rpcUrl)));
    // The banner: the word and the first failure's sentence, in each language.
    const first = failed[0]!.failures[0]!;
    const zh = await verdictText(page, 'zh');
    expect(zh).toContain('未通过');
    expect(zh).toContain(first.sentence.zh);
    const en = await verdictText(page, 'en');
    expect(en).toContain('Failed');
    expect(en).toContain(first.sentence.en);
    // The failure row for the expected code is shown, in the visible language.
    const shown = codes.find((c) => wanted.includes(c))!;
    const row = page.locator(`li[data-status="fail"] .failure[data-code="${shown}"]`).first();
    await expect.poll(() => row.isVisible()).toBe(true);
    expect(await row.innerText()).toContain(shown);
    if (name === 'altered value' || name === 'removed reading') {
      await page.screenshot({ path: join(ARTIFACTS, `failed-${name.replace(/\W+/g, '-')}-en.png`), fullPage: true });
    }
  });

  describe('a bundle carrying an alert (check 9, offline)', () => {
    let alerted: EvidenceBundle;
    beforeAll(async () => {
      alerted = await alertBundle();
    });

    it('shows the alert section: what it states, and every value recomputed equal', async () => {
      const { page } = opened;
      await setRpc(page, []);
      const verdict = await verifyFile(page, encodeBundle(alerted), 'alert.bundle.json');
      expect(verdict.state).toBe('partial'); // offline: the anchor stays open; nothing fails
      expect(verdict.checks.find((c) => c.id === 'alert')!.status).toBe('pass');
      const section = page.locator('#alert');
      await expect.poll(() => section.isVisible()).toBe(true);
      expect(await section.getAttribute('data-status')).toBe('pass');
      await page.locator('#lang-en').click();
      const en = await section.innerText();
      expect(en).toContain('cold-chain-excursion');
      expect(en).toContain('Recomputed from verified readings');
      expect(await page.locator('#alert tr[data-value="peak"] td').allInnerTexts()).toEqual(['9.6', '9.6', '✓']);
      await page.locator('#lang-zh').click();
      expect(await section.innerText()).toContain('由已核验读数复算');
      await page.screenshot({ path: join(ARTIFACTS, 'alert-zh.png'), fullPage: true });
    });

    it('shows "failed" with the right reason in both languages: edited alert value', async () => {
      const v = editedAlertValue(alerted);
      const { page } = opened;
      await setRpc(page, []);
      const verdict = await verifyFile(page, v.bytes, 'edited-alert.bundle.json');
      expect(verdict.state).toBe('failed');
      const failures = verdict.checks.filter((c) => c.status === 'fail').flatMap((c) => c.failures);
      expect(failures.map((f) => f.code)).toEqual(['ALERT_MISMATCH_ERROR']);
      expect(codesOf(verdict)).toEqual(codesOf((await verifyBundleBytes(v.bytes, { trust })).verdict));
      const first = failures[0]!;
      const zh = await verdictText(page, 'zh');
      expect(zh).toContain('未通过');
      expect(zh).toContain(first.sentence.zh);
      expect(zh).toContain('与告警值');
      const en = await verdictText(page, 'en');
      expect(en).toContain('Failed');
      expect(en).toContain(first.sentence.en);
      expect(en).toContain('is 9.6, not 12.5');
      const row = page.locator('li[data-status="fail"] .failure[data-code="ALERT_MISMATCH_ERROR"]').first();
      await expect.poll(() => row.isVisible()).toBe(true);
      expect(await page.locator('#alert tr[data-value="peak"]').getAttribute('class')).toBe('differs');
      await page.screenshot({ path: join(ARTIFACTS, 'failed-edited-alert-value-en.png'), fullPage: true });
    });
  });

  it('verifies an evidence set (FORMAT.md §7.2): one alert over two gateways, each listed with its own verdict', async () => {
    const { page } = opened;
    await setRpc(page, []);
    const bytes = await custodySet();
    const verdict = await verifyFile(page, bytes, 'custody.set.json');
    expect(verdict.state).toBe('partial'); // offline: the anchors stay open; nothing fails
    expect(verdict.checks.find((c) => c.id === 'alert')!.status).toBe('pass');
    expect(codesOf(verdict)).toEqual(codesOf((await verifyBundleBytes(bytes, { trust })).verdict));
    await page.locator('#lang-en').click();
    const rows = page.locator('#members tbody tr');
    await expect.poll(() => rows.count()).toBe(2);
    expect(await page.locator('#members tr[data-device="gw-lab"] td').allInnerTexts()).toEqual(['1–3', '3', expect.stringContaining('Not fully checked')]);
    expect(await page.locator('#alert').innerText()).toContain('coal-custody-break');
    await page.screenshot({ path: join(ARTIFACTS, 'evidence-set-en.png'), fullPage: true });
  });

  it('shows markup in bundle strings as text, never as markup', async () => {
    const { page } = opened;
    const b = cloneBundle(valid);
    b.device = { ...b.device, deviceId: HOSTILE_TEXT.deviceId, site: HOSTILE_TEXT.site };
    b.ingest = { ...b.ingest, issuer: HOSTILE_TEXT.issuer };
    await setRpc(page, []);
    await verifyFile(page, encodeBundle(b), '<b>hostile</b>.json');
    expect(await page.locator('#pwn-img, #pwn-script, svg[onload], a[href^="javascript:"]').count()).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    const text = await page.locator('#result').innerText();
    expect(text).toContain(HOSTILE_TEXT.deviceId);
    expect(text).toContain(HOSTILE_TEXT.issuer);
    expect(text).toContain('<b>hostile</b>.json');
    expect(await page.locator('script').count()).toBe(1);
  });

  it('has no serious or critical axe-core violations on the empty, verified, failed and partial pages', async () => {
    const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
    const scan = async (page: OpenedPage['page'], label: string): Promise<void> => {
      // page.evaluate is not subject to the page's CSP, so axe can be injected without weakening it.
      await page.evaluate(axeSource);
      const violations = (await page.evaluate(async () => {
        const axe = (window as unknown as { axe: { run(c: Document, o: object): Promise<{ violations: { id: string; impact: string; nodes: unknown[] }[] }> } }).axe;
        const r = await axe.run(document, { resultTypes: ['violations'] });
        return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length }));
      })) as { id: string; impact: string }[];
      expect({ label, bad: violations.filter((v) => v.impact === 'serious' || v.impact === 'critical') }).toEqual({ label, bad: [] });
    };
    const fresh = await openPage(browser.browser, { allowOrigin: chain.rpcUrl, policy });
    try {
      await scan(fresh.page, 'empty');
      await setRpc(fresh.page, [chain.rpcUrl]);
      await verifyFile(fresh.page, validBytes);
      await scan(fresh.page, 'verified');
      await verifyFile(fresh.page, tamperedVariants(valid)[0]!.bytes);
      await scan(fresh.page, 'failed');
      await setRpc(fresh.page, []);
      await verifyFile(fresh.page, validBytes);
      await scan(fresh.page, 'partial');
    } finally {
      await fresh.context.close();
    }
  });

  it('verifies a dropped file and pasted text, asking two endpoints that must both confirm', async () => {
    const second = chain.rpcUrl.replace('127.0.0.1', 'localhost');
    const fresh = await openPage(browser.browser, { allowOrigin: [chain.rpcUrl, second], policy });
    try {
      const { page } = fresh;
      await setRpc(page, [chain.rpcUrl, second]);
      const runs = (): Promise<number> => page.evaluate(() => (window as unknown as { stele: { runs(): number } }).stele.runs());
      const text = Buffer.from(validBytes).toString('utf8');
      const dataTransfer = await page.evaluateHandle((t) => {
        const dt = new DataTransfer();
        dt.items.add(new File([t], 'dropped.bundle.json', { type: 'application/json' }));
        return dt;
      }, text);
      await page.locator('#drop').dispatchEvent('drop', { dataTransfer });
      await expect.poll(runs).toBe(1);
      let verdict = (await page.evaluate(() => (window as unknown as { stele: { result(): { verdict: unknown } } }).stele.result().verdict)) as Verdict;
      expect(verdict.state).toBe('verified');
      expect(verdict.summary.anchors.every((a) => a.confirmedBy.length === 2)).toBe(true);
      expect(await page.locator('#identifiers').innerText()).toContain('dropped.bundle.json');

      await page.locator('#paste-box summary').click();
      await page.locator('#paste').fill(text);
      await page.locator('#verify-paste').click();
      await expect.poll(runs).toBe(2);
      verdict = (await page.evaluate(() => (window as unknown as { stele: { result(): { verdict: unknown } } }).stele.result().verdict)) as Verdict;
      expect(verdict.state).toBe('verified');
      expect(fresh.blocked).toEqual([]);
    } finally {
      await fresh.context.close();
    }
  });

  it('is keyboard-usable: Tab reaches the language switch, the file chooser and the print button', async () => {
    const { page } = opened;
    const reached = new Set<string>();
    await page.locator('body').focus();
    for (let i = 0; i < 80; i++) {
      await page.keyboard.press('Tab');
      reached.add(await page.evaluate(() => document.activeElement?.id ?? ''));
    }
    for (const id of ['lang-zh', 'lang-en', 'print', 'file', 'policy-file', 'rpc']) expect(reached).toContain(id);
  });

  it('loads the signed trust policy once, remembers it with the pinned authority, and shows its fingerprint and matches', async () => {
    const fresh = await openPage(browser.browser, { allowOrigin: chain.rpcUrl });
    try {
      const { page, context } = fresh;
      const sha = (await import('node:crypto')).createHash('sha256').update(policy.bytes).digest('hex');
      await page.locator('#policy-file').setInputFiles({ name: 'trust-policy.cose', mimeType: 'application/cose', buffer: Buffer.from(policy.bytes) });
      await page.locator('#authority').fill(policy.authority);
      await page.locator('#authority').press('Tab');
      await expect.poll(() => page.locator('#policy-status').innerText()).toContain(sha);
      expect(await page.locator('#policy-status').innerText()).toMatch(/version 1|版本 1/);
      // Remembered: a new page of the same browser profile has both without loading them again.
      const again = await context.newPage();
      await again.goto(page.url());
      await expect.poll(() => again.locator('#policy-status').innerText()).toContain(sha);
      expect(await again.locator('#authority').inputValue()).toBe(policy.authority);
      await setRpc(again, [chain.rpcUrl]);
      const verdict = await verifyFile(again, validBytes);
      expect(verdict.state).toBe('verified');
      expect(await again.locator('[data-policy-ingest]').getAttribute('data-policy-ingest')).toBe('match');
      expect(await again.locator('[data-policy-anchors]').getAttribute('data-policy-anchors')).toBe('match');
      expect(await again.locator('#identifiers').innerText()).toContain(sha);
      // Without the policy the same bundle is only "not fully checked" (nothing pinned).
      await again.locator('#policy-forget').click();
      expect((await verifyFile(again, validBytes)).state).toBe('partial');
      await again.close();
      writeFileSync(join(ARTIFACTS, 'trust-policy.cose'), policy.bytes);
    } finally {
      await fresh.context.close();
    }
  });
});

describe('stele verify BUNDLE --report FILE.pdf', () => {
  const io = () => {
    const out = { stdout: '', stderr: '' };
    return { out, io: { stdout: { write: (c: string) => (out.stdout += c) }, stderr: { write: (c: string) => (out.stderr += c) } } };
  };
  const pdfText = (pdf: string): string => execFileSync('pdftotext', ['-enc', 'UTF-8', pdf, '-'], { encoding: 'utf8' }).replace(/\s+/g, '');

  it('writes the page\'s report through headless Chromium, agreeing with the CLI verdict', async () => {
    const { runVerify } = await import('@stele/verifier/cli');
    const bundlePath = join(ARTIFACTS, 'valid.bundle.json');
    writeFileSync(bundlePath, validBytes);
    const pdf = join(ARTIFACTS, 'report-cli.pdf');
    const { out, io: streams } = io();
    const policyPath = join(ARTIFACTS, 'trust-policy.cose');
    writeFileSync(policyPath, policy.bytes);
    const code = await runVerify([bundlePath, '--trust', policyPath, '--authority', policy.authority, '--rpc', chain.rpcUrl, '--lang', 'zh', '--report', pdf], streams);
    expect(out.stderr).toContain('report written');
    expect(code).toBe(0);
    const text = pdfText(pdf);
    const sha = (await import('node:crypto')).createHash('sha256').update(validBytes).digest('hex');
    const pageSha = (await import('node:crypto')).createHash('sha256').update((await import('node:fs')).readFileSync(join(ARTIFACTS, '../../dist/stele-verify.html'))).digest('hex');
    expect(text).toContain('技术核验通过');
    expect(text).toContain(sha);
    expect(text).toContain(pageSha); // the verifier file's SHA-256, stated by the CLI
    expect(text).toMatch(/第1页\/共\d+页/);
  });

  it('reports a tampered bundle as failed, exit 1', async () => {
    const { runVerify } = await import('@stele/verifier/cli');
    const v = tamperedVariants(valid).find((x) => x.name === 'altered value')!;
    const bundlePath = join(ARTIFACTS, 'altered-value.bundle.json');
    writeFileSync(bundlePath, v.bytes);
    const pdf = join(ARTIFACTS, 'report-cli-failed.pdf');
    const { io: streams } = io();
    const policyPath = join(ARTIFACTS, 'trust-policy.cose');
    writeFileSync(policyPath, policy.bytes);
    expect(await runVerify([bundlePath, '--trust', policyPath, '--authority', policy.authority, '--rpc', chain.rpcUrl, '--report', pdf], streams)).toBe(1);
    const text = pdfText(pdf);
    expect(text).toContain('未通过');
    expect(text).toContain('DIGEST_MISMATCH_ERROR');
  });

  it('says how to build the page when it is missing (exit 2)', async () => {
    const { runVerify } = await import('@stele/verifier/cli');
    const bundlePath = join(ARTIFACTS, 'valid.bundle.json');
    const { out, io: streams } = io();
    const code = await runVerify([bundlePath, '--offline', '--report', join(ARTIFACTS, 'x.pdf'), '--page', join(ARTIFACTS, 'nope.html')], streams);
    expect(code).toBe(2);
    expect(out.stderr).toContain('REPORT_PAGE_MISSING');
    expect(out.stderr).toContain('npm run build:web');
  });
});
