/**
 * `npm run build:web`: builds the officer's verifier page into one self-contained file, `dist/stele-verify.html`
 * (VERIFIER.md §4.1), and its checksum file `dist/stele-verify.html.sha256` (`sha256sum -c` format).
 *
 * After Vite (with vite-plugin-singlefile) has inlined everything, this step puts a Content-Security-Policy meta
 * first in <head> whose script-src and style-src are the SHA-256 hashes of the one inline script and the one
 * inline style: the browser runs no other code. The same script hash is what the page shows as its "code
 * SHA-256" (it computes it from its own script text at run time), so a printed report names the code that made it.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';

const here = dirname(fileURLToPath(import.meta.url));
const webRoot = resolve(here, '..');
const repoRoot = resolve(webRoot, '../..');
const outDir = join(repoRoot, 'dist');
export const PAGE_FILE = 'stele-verify.html';

/**
 * The page's CSP (VERIFIER.md §4.1). connect-src: the only network use is the officer's RPC look-up, to endpoints
 * typed at run time, so it cannot list hosts: it allows any https endpoint and plain http on loopback only (a
 * node on the officer's own machine). worker-src blob: is the inlined verification worker. Nothing else loads.
 */
export function contentSecurityPolicy(scriptHash: string, styleHash: string): string {
  return [
    "default-src 'none'",
    `script-src '${scriptHash}'`,
    `style-src '${styleHash}'`,
    'worker-src blob:',
    'connect-src https: http://127.0.0.1:* http://localhost:*',
    "img-src 'none'",
    "font-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');
}

const b64sha256 = (text: string): string => `sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}`;

function gitCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: repoRoot, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

async function main(): Promise<void> {
  const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
  await build({
    configFile: join(webRoot, 'vite.config.ts'),
    // STELE_WEB_MINIFY=0: readable function names, for a CPU profile (bench/src/prof-page.ts).
    ...(process.env.STELE_WEB_MINIFY === '0' ? { build: { minify: false } } : {}),
    define: {
      __STELE_VERSION__: JSON.stringify(version),
      __STELE_COMMIT__: JSON.stringify(process.env.STELE_COMMIT ?? gitCommit()),
    },
  });
  const viteOut = join(webRoot, 'dist-vite');
  let html = readFileSync(join(viteOut, 'index.html'), 'utf8');
  rmSync(viteOut, { recursive: true, force: true });

  const scripts = [...html.matchAll(/<script\b[^>]*>([\s\S]*?)<\/script>/g)];
  const styles = [...html.matchAll(/<style\b[^>]*>([\s\S]*?)<\/style>/g)];
  if (scripts.length !== 1 || styles.length !== 1) {
    throw new Error(`expected one inline script and one style, found ${scripts.length} and ${styles.length}`);
  }
  if (/<(script|link)\b[^>]*\b(src|href)=/i.test(html)) throw new Error('the page references an external file');
  const scriptHash = b64sha256(scripts[0]![1]!);
  const styleHash = b64sha256(styles[0]![1]!);
  const meta = `<meta http-equiv="Content-Security-Policy" content="${contentSecurityPolicy(scriptHash, styleHash)}">`;
  if (!html.includes('<!--CSP-->')) throw new Error('index.html lost its <!--CSP--> marker');
  html = html.replace('<!--CSP-->', meta);

  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, PAGE_FILE);
  writeFileSync(file, html);
  const fileHash = createHash('sha256').update(html, 'utf8').digest('hex');
  writeFileSync(`${file}.sha256`, `${fileHash}  ${PAGE_FILE}\n`);
  const codeHex = Buffer.from(scriptHash.slice('sha256-'.length), 'base64').toString('hex');
  process.stdout.write(
    `${file}\n  ${(html.length / 1024).toFixed(0)} KiB, file SHA-256 ${fileHash}\n  code SHA-256 ${codeHex} (shown on the page and its reports)\n`,
  );
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`build:web: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
