/**
 * A CPU profile of the verifier page's worker in headless Chromium (issue #13): opens dist/stele-verify.html
 * (`npm run build:web` first), attaches to its verification worker through the Chrome DevTools Protocol, runs the
 * V8 profiler there while the page verifies BUNDLE, and writes the profile (open it in Chrome's DevTools) and a
 * summary of the functions with the most self and total time:
 *
 *   npx tsx bench/src/prof-page.ts BUNDLE [OUT.cpuprofile]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium, type CDPSession } from 'playwright-core';
import { CHROMIUM_ARGS, DEFAULT_CHROMIUM } from '@stele/verifier/report';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const PAGE = join(repoRoot, 'dist', 'stele-verify.html');

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** The functions with the most self time and the most total time (each function counted once per sample). */
export function summarise(p: Profile, top = 40): string {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfById = new Map<number, number>();
  let total = 0;
  p.samples.forEach((s, i) => {
    const dt = p.timeDeltas[i] ?? 0;
    total += dt;
    selfById.set(s, (selfById.get(s) ?? 0) + dt);
  });
  const name = (n: ProfileNode): string => `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.split('/').pop() ?? ''}:${n.callFrame.lineNumber + 1}`;
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  for (const [id, t] of selfById) {
    const k = name(byId.get(id)!);
    self.set(k, (self.get(k) ?? 0) + t);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const kk = name(byId.get(cur)!);
      if (seen.has(kk)) continue;
      seen.add(kk);
      inclusive.set(kk, (inclusive.get(kk) ?? 0) + t);
    }
  }
  const rows = (m: Map<string, number>): string =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, t]) => `${(t / 1000).toFixed(0).padStart(7)} ms ${((100 * t) / total).toFixed(1).padStart(5)} %  ${k}`)
      .join('\n');
  return `sampled ${(total / 1000).toFixed(0)} ms\n\nself time\n${rows(self)}\n\ntotal time\n${rows(inclusive)}\n`;
}

/** Sends `method` to the worker attached as `sessionId` (non-flat Target messages) and awaits its answer. */
function workerCommand(cdp: CDPSession, sessionId: string, pending: Map<number, (r: unknown) => void>, id: number, method: string, params: object = {}): Promise<unknown> {
  return new Promise((res) => {
    pending.set(id, res);
    void cdp.send('Target.sendMessageToTarget', { sessionId, message: JSON.stringify({ id, method, params }) });
  });
}

async function main(): Promise<void> {
  const file = process.argv[2];
  if (file === undefined) throw new Error('usage: prof-page.ts BUNDLE [OUT.cpuprofile]');
  const out = process.argv[3] ?? join(repoRoot, '.tmp', 'verifier-worker.cpuprofile');
  mkdirSync(dirname(out), { recursive: true });
  const browser = await chromium.launch({ executablePath: process.env.STELE_CHROMIUM ?? DEFAULT_CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  try {
    const context = await browser.newContext();
    await context.addInitScript('window.__name = (f) => f;');
    const page = await context.newPage();
    await page.goto(pathToFileURL(PAGE).href);
    const cdp = await context.newCDPSession(page);
    const pending = new Map<number, (r: unknown) => void>();
    let nextId = 1;
    let started: Promise<unknown> | undefined;
    let workerSession: string | undefined;
    cdp.on('Target.receivedMessageFromTarget', (e: { message: string }) => {
      const msg = JSON.parse(e.message) as { id?: number; result?: unknown };
      if (msg.id !== undefined) pending.get(msg.id)?.(msg.result);
    });
    cdp.on('Target.attachedToTarget', (e: { sessionId: string; targetInfo: { type: string } }) => {
      if (e.targetInfo.type !== 'worker' || workerSession !== undefined) return;
      workerSession = e.sessionId;
      // The worker waits for the debugger: profiling starts before its first line runs.
      started = (async () => {
        await workerCommand(cdp, e.sessionId, pending, nextId++, 'Profiler.enable');
        await workerCommand(cdp, e.sessionId, pending, nextId++, 'Profiler.setSamplingInterval', { interval: 200 });
        // The worker closes itself after its result (verifier/web/src/worker.ts): kept open here for the profile.
        await workerCommand(cdp, e.sessionId, pending, nextId++, 'Runtime.evaluate', { expression: 'self.close = () => undefined; 0' });
        await workerCommand(cdp, e.sessionId, pending, nextId++, 'Profiler.start');
        await workerCommand(cdp, e.sessionId, pending, nextId++, 'Runtime.runIfWaitingForDebugger');
      })();
    });
    await cdp.send('Target.setAutoAttach', { autoAttach: true, waitForDebuggerOnStart: true, flatten: false });
    await page.locator('#file').setInputFiles(file);
    await page.waitForFunction(() => (window as unknown as { stele: { runs(): number } }).stele.runs() > 0, undefined, { timeout: 600_000 });
    await started;
    const result = (await page.evaluate(() => (window as unknown as { stele: { result(): unknown } }).stele.result())) as { elapsedMs: number; timings: unknown };
    process.stderr.write(`page: ${result.elapsedMs.toFixed(0)} ms, ${JSON.stringify(result.timings)}\n`);
    const stopped = (await workerCommand(cdp, workerSession!, pending, nextId++, 'Profiler.stop')) as { profile: Profile };
    writeFileSync(out, JSON.stringify(stopped.profile));
    process.stdout.write(summarise(stopped.profile));
    process.stderr.write(`profile: ${out}\n`);
  } finally {
    await browser.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
