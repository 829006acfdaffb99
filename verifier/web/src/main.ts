/**
 * The officer's verifier page (VERIFIER.md): load the authority's trust policy once, drop or paste a bundle,
 * optionally name chain endpoints; core's `verifyBundleBytes` (the CLI's code) runs in a worker; the verdict comes
 * first, then every check, the trust anchors, the readings chart and table, what it shows and does not, and the
 * identifiers with a QR code. The same DOM is the printable report (print stylesheet).
 *
 * For tests and `stele verify --report`, `window.stele` exposes verify(), the last result and a hook to state
 * the page file's SHA-256 (known to the program that opened the file, not to the page).
 */
import './style.css';
import { toHex, utf8, sha256 } from '@stele/core';
import type { Check, Text, Verdict } from '@stele/core/verify';
import { formatTime, shortHex } from '@stele/core/verify';
import { drawChart, fmtNum, hhmm } from './chart.ts';
import { bi, clear, h, T } from './dom.ts';
import { BACKEND_WORD, bucketWord, STATE_ICON, STATE_WORD, STATUS_WORD, W, type Lang } from './i18n.ts';
import { AUTHORITY_STORAGE_KEY, comparePolicy, loadStoredPolicy, readPolicy, storePolicy, MAX_POLICY_BYTES, type LoadedPolicy } from './policy.ts';
import type { BundleInfo, HelperRequest, Timings, VerifyRequest, WorkerMessage } from './protocol.ts';
import { identifierText, qrSvg } from './qr.ts';
import VerifyWorker from './worker.ts?worker&inline';

/** Largest bundle the page accepts: a day at 1 Hz is about 186 MB of JSON (issue #13). */
export const MAX_BUNDLE_BYTES = 512 * 1024 * 1024;

export interface PageResult {
  verdict: Verdict;
  info: BundleInfo | undefined;
  timings: Timings;
  fileName: string;
  sizeBytes: number;
  rpcUrls: string[];
  /** performance.now() from the click (or drop) to the rendered result. */
  elapsedMs: number;
  generatedAt: string;
}

const $ = <E extends HTMLElement>(id: string): E => {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`page element #${id} missing`);
  return el as E;
};

const state: {
  lang: Lang;
  policyBytes: Uint8Array | undefined;
  policy: LoadedPolicy | undefined;
  result: PageResult | undefined;
  fileSha256: string | undefined;
  codeSha256: string;
  worker: Worker | undefined;
  helper: Worker | undefined;
  /** Results rendered so far (tests wait for it to grow). */
  runs: number;
  /** Set by `stele verify --offline --report`: ask no endpoint, not even the policy's. */
  offline: boolean;
} = { runs: 0, offline: false, lang: 'zh', policyBytes: undefined, policy: undefined, result: undefined, fileSha256: undefined, codeSha256: '', worker: undefined, helper: undefined };

// ---- language ----------------------------------------------------------------------------------------------
function setLang(lang: Lang): void {
  state.lang = lang;
  document.body.classList.toggle('lang-zh', lang === 'zh');
  document.body.classList.toggle('lang-en', lang === 'en');
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  $('lang-zh').setAttribute('aria-pressed', String(lang === 'zh'));
  $('lang-en').setAttribute('aria-pressed', String(lang === 'en'));
  try {
    localStorage.setItem('stele.lang', lang);
  } catch {
    // storage disabled: the choice lasts for this visit
  }
  // aria-labels are plain strings: re-render what carries them.
  if (state.result !== undefined) renderResult(state.result);
}

const say = (t: Text): string => t[state.lang];

// ---- policy ------------------------------------------------------------------------------------------------
function setPolicy(bytes: Uint8Array | undefined, remember: boolean): void {
  state.policyBytes = bytes;
  state.policy = bytes === undefined ? undefined : readPolicy(bytes);
  if (remember) storePolicy(safeStorage(), bytes);
  const status = $('policy-status');
  clear(status);
  $('policy-forget').hidden = bytes === undefined;
  if (state.policy === undefined) status.append(bi(W.policyNoneLoaded));
  else {
    status.append(bi(W.policyLine(state.policy.sha256, state.policy.version, state.policy.issuedAt)));
    if (state.policy.problem !== undefined) status.append(h('br'), bi(W.policyProblem(state.policy.problem)));
  }
  if (state.result !== undefined) renderResult(state.result);
}

function safeStorage(): Storage | undefined {
  try {
    return window.localStorage;
  } catch {
    return undefined;
  }
}

// ---- verification ------------------------------------------------------------------------------------------
function rpcUrlsFromInput(): string[] | Text {
  const typed = ($('rpc') as HTMLTextAreaElement).value.split(/\s+/).filter((x) => x !== '');
  for (const u of typed) if (!/^https?:\/\/[^\s]+$/i.test(u)) return W.badRpc(u);
  // None typed: core asks the endpoints the trust policy suggests (when one is loaded and pinned).
  return typed;
}

function authorityInput(): string | undefined {
  const v = ($('authority') as HTMLInputElement).value.trim();
  return v === '' ? undefined : v;
}

function showError(text: Text | undefined): void {
  const el = $('error');
  clear(el);
  el.hidden = text === undefined;
  if (text !== undefined) el.append(bi(text));
}

function showProgress(text: Text | undefined, done = 0, total = 1): void {
  const box = $('progress-box');
  box.hidden = text === undefined;
  const label = $('progress-label');
  clear(label);
  if (text !== undefined) label.append(bi(text));
  const bar = $('progress') as HTMLProgressElement;
  bar.max = Math.max(1, total);
  bar.value = Math.min(done, total);
  bar.setAttribute('aria-valuetext', text === undefined ? '' : say(text));
}

/**
 * A worker started ahead (the page load, then after each verification), so that its script is already compiled
 * when the officer drops a bundle; each verification still gets a worker of its own. With a second CPU, a
 * second worker checks part of the signatures (worker.ts, HelperRequest): started ahead the same way.
 */
const HELPERS = (navigator.hardwareConcurrency ?? 1) >= 2;
let spareWorker: { worker: Worker; helper: Worker | undefined } | undefined;
function newWorkers(): { worker: Worker; helper: Worker | undefined } {
  return { worker: new VerifyWorker(), helper: HELPERS ? new VerifyWorker() : undefined };
}
function takeWorker(): { worker: Worker; helper: Worker | undefined } {
  const workers = spareWorker ?? newWorkers();
  spareWorker = undefined;
  return workers;
}
/** Starts the next spare worker once the page is idle (not while one verifies: the CPUs are busy then). */
function startSpareWorker(): void {
  setTimeout(() => {
    spareWorker ??= newWorkers();
  }, 0);
}
startSpareWorker();

/** Verifies bundle bytes in a fresh worker; resolves with the rendered result. */
function verifyBytes(bytes: Uint8Array, fileName: string, rpcUrls: string[], options: { transfer?: boolean; t0?: number; offline?: boolean } = {}): Promise<PageResult> {
  const t0 = options.t0 ?? performance.now();
  const sizeBytes = bytes.length;
  showError(undefined);
  if (bytes.length > MAX_BUNDLE_BYTES) {
    const err = W.tooLarge(MAX_BUNDLE_BYTES / 1024 / 1024);
    showError(err);
    return Promise.reject(new Error(err.en));
  }
  state.worker?.terminate();
  state.helper?.terminate();
  // The previous result goes away while this bundle is checked: never show one bundle's verdict beside another's name.
  state.result = undefined;
  $('result').hidden = true;
  clear($('result-body'));
  const { worker, helper } = takeWorker();
  state.worker = worker;
  state.helper = helper;
  showProgress(W.progressRead);
  ($('print') as HTMLButtonElement).disabled = true;
  return new Promise<PageResult>((resolve, reject) => {
    worker.onmessage = (event: MessageEvent<WorkerMessage>) => {
      const m = event.data;
      if (m.type === 'progress') {
        const text =
          m.phase === 'read' ? W.progressRead : m.phase === 'signatures' ? W.progressSig(m.done, m.total) : m.phase === 'anchor' ? W.progressAnchor : W.progressChart;
        showProgress(text, m.done, m.total);
        return;
      }
      // The worker closes itself after its result (tearing down a day's heap there, not on this thread).
      startSpareWorker();
      if (state.worker === worker) state.worker = undefined;
      // The helper holds no more than a batch of signatures: ended here.
      helper?.terminate();
      if (state.helper === helper) state.helper = undefined;
      showProgress(undefined);
      if (m.type === 'error') {
        showError(W.workerError(m.message));
        reject(new Error(m.message));
        return;
      }
      const result: PageResult = {
        verdict: m.verdict,
        info: m.info,
        timings: m.timings,
        fileName,
        sizeBytes,
        rpcUrls,
        elapsedMs: 0,
        generatedAt: new Date().toISOString(),
      };
      state.result = result;
      void renderResultStaged(result).then(() => {
        state.runs++;
        result.elapsedMs = performance.now() - t0;
        ($('print') as HTMLButtonElement).disabled = false;
        resolve(result);
      });
    };
    worker.onerror = (event) => {
      helper?.terminate();
      showProgress(undefined);
      showError(W.workerError(event.message));
      reject(new Error(event.message));
    };
    // A file's buffer is the page's own: moved to the worker (a day of readings is ~190 MB); other input is copied.
    const buffer = options.transfer === true && bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? (bytes.buffer as ArrayBuffer) : bytes.slice().buffer;
    const request: VerifyRequest = { type: 'verify', bytes: buffer, rpcUrls };
    if (state.policyBytes !== undefined) request.policy = state.policyBytes.slice().buffer;
    const authority = authorityInput();
    if (authority !== undefined) request.authority = authority;
    if (options.offline === true) request.offline = true;
    const transfer: Transferable[] = options.transfer === true ? [buffer] : [];
    if (helper !== undefined) {
      const channel = new MessageChannel();
      helper.postMessage({ type: 'helper', port: channel.port1 } satisfies HelperRequest, [channel.port1]);
      request.helper = channel.port2;
      transfer.push(channel.port2);
    }
    worker.postMessage(request, transfer);
  });
}

async function verifyFile(file: File): Promise<PageResult | undefined> {
  const t0 = performance.now();
  const rpc = rpcUrlsFromInput();
  if (!Array.isArray(rpc)) {
    showError(rpc);
    return undefined;
  }
  if (file.size > MAX_BUNDLE_BYTES) {
    showError(W.tooLarge(MAX_BUNDLE_BYTES / 1024 / 1024));
    return undefined;
  }
  return verifyBytes(new Uint8Array(await file.arrayBuffer()), file.name, rpc, { transfer: true, t0, offline: state.offline });
}

// ---- rendering ---------------------------------------------------------------------------------------------
const fullHex = (hex: string): HTMLElement => h('code', { class: 'mono' }, hex);

/** The result's sections in page order, in three stages: the verdict and checks, the chart, the rest. */
function resultStages(r: PageResult): (() => HTMLElement[])[] {
  const v = r.verdict;
  return [
    () => [renderReportHead(r), renderVerdict(r), renderAlert(v), renderMembers(v), renderNotes(v), renderChecks(v.checks), renderAnchors(r)],
    () => [renderChart(r)],
    () => [
      renderShows(r),
      renderIdentifiers(r),
      h('div', { class: 'sign print-only' }, h('div', {}, bi(W.signer)), h('div', {}, bi(W.date)), h('div', {}, bi(W.seal))),
    ],
  ];
}

/** The result's section, emptied and shown. */
function emptyResultBody(): HTMLElement {
  const body = $('result-body');
  clear(body);
  $('result').hidden = false;
  return body;
}

function renderResult(r: PageResult): void {
  const body = emptyResultBody();
  for (const stage of resultStages(r)) body.append(...stage());
}

/**
 * The result drawn in stages with a frame between them (after a verification): the verdict is on screen first,
 * and building and laying out the chart's tables and the identifiers' QR code (hundreds of ms for a day of
 * readings) does not hold the page in one long task.
 */
async function renderResultStaged(r: PageResult): Promise<void> {
  const body = emptyResultBody();
  for (const [i, stage] of resultStages(r).entries()) {
    if (i > 0) await new Promise<void>((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
    if (state.result !== r) return; // another verification started meanwhile
    body.append(...stage());
  }
}

function reportId(r: PageResult): string {
  return `R-${toHex(sha256(utf8(`${r.verdict.summary.bundleSha256 ?? ''}|${r.generatedAt}`))).slice(0, 12)}`;
}

function renderReportHead(r: PageResult): HTMLElement {
  return h(
    'div',
    { class: 'print-only report-head' },
    h('p', {}, bi(W.reportId), ' ', h('code', {}, reportId(r)), ' · ', bi(W.generated), ' ', `${formatTime(Date.parse(r.generatedAt))} (${r.generatedAt})`),
  );
}

function renderVerdict(r: PageResult): HTMLElement {
  const v = r.verdict;
  const n = (s: Check['status']): number => v.checks.filter((c) => c.status === s).length;
  const open = v.checks.filter((c) => c.status === 'unchecked');
  const box = h(
    'div',
    { id: 'verdict', class: `verdict ${v.state}`, role: 'status', 'aria-live': 'polite', 'data-state': v.state },
    h('span', { class: 'word' }, `${STATE_ICON[v.state]} `, bi(STATE_WORD[v.state])),
    h('p', { class: 'headline' }, bi(v.headline)),
    h('p', { class: 'counts' }, bi(W.counts(n('pass'), n('fail'), n('unchecked'), n('not-applicable')))),
  );
  if (open.length > 0) box.append(h('p', { class: 'open' }, bi(W.open(open.map((c) => c.title), r.rpcUrls.length === 0))));
  if (v.summary.bundleSha256 !== undefined) box.append(h('p', { class: 'digest' }, bi(W.bundleSha), ' ', fullHex(v.summary.bundleSha256)));
  return box;
}

/**
 * The alert and its recomputation (VERIFIER.md §4.2, check 9): what the alert states, the rule and window, and per
 * value the stated and the recomputed number side by side. Nothing when the bundle carries no FORMAT.md §15.7 alert.
 */
function renderAlert(v: Verdict): HTMLElement {
  const a = v.summary.alert;
  if (a === undefined) return h('div');
  const check = v.checks.find((c) => c.id === 'alert')!;
  const text = (x: unknown): string => (x === undefined ? '' : typeof x === 'string' ? x : JSON.stringify(x));
  const keys = [...new Set([...Object.keys(a.values), ...Object.keys(a.recomputed ?? {})])];
  const tbody = h('tbody');
  for (const k of keys) {
    const stated = text(a.values[k]);
    const again = a.recomputed === undefined ? undefined : text(a.recomputed[k]);
    const equal = again === undefined ? undefined : again === stated;
    tbody.append(
      h(
        'tr',
        { 'data-value': k, ...(equal === false ? { class: 'differs' } : {}) },
        h('th', { scope: 'row' }, k),
        h('td', { class: 'num' }, stated),
        h('td', { class: 'num' }, again === undefined ? bi(W.alertNotRecomputed) : again),
        h('td', {}, equal === undefined ? '–' : equal ? '✓' : '✗'),
      ),
    );
  }
  return h(
    'section',
    { id: 'alert', 'aria-labelledby': 'alert-h', 'data-status': check.status },
    h('h2', { id: 'alert-h' }, bi(W.alert)),
    h('p', { class: 'alert-what' }, h('strong', {}, a.kind), ' · ', a.subject),
    h('p', {}, bi(W.alertRule(a.rule, a.standard)), ' · ', bi(W.alertWindow(a.window.from, a.window.to, a.window.basis))),
    h('p', { class: 'alert-check' }, h('span', { class: `badge ${check.status}` }, bi(STATUS_WORD[check.status])), ' ', bi(W.alertRecomputedHead), ': ', bi(check.sentence)),
    h('table', { class: 'alert-values' }, h('thead', {}, h('tr', {}, ...W.alertCols.map((c) => h('th', { scope: 'col' }, bi(c))))), tbody),
  );
}

/** An evidence set (FORMAT.md §7.2): each device's bundle, its seq range and its own verdict. */
function renderMembers(v: Verdict): HTMLElement {
  const members = v.summary.members;
  if (members === undefined) return h('div');
  const tbody = h('tbody');
  for (const m of members) {
    tbody.append(
      h(
        'tr',
        { 'data-device': m.deviceId, 'data-state': m.state },
        h('th', { scope: 'row' }, m.deviceId),
        h('td', { class: 'num' }, `${m.firstSeq}–${m.lastSeq}`),
        h('td', { class: 'num' }, String(m.readings)),
        h('td', {}, `${STATE_ICON[m.state]} `, bi(STATE_WORD[m.state])),
      ),
    );
  }
  return h(
    'section',
    { id: 'members', 'aria-labelledby': 'members-h' },
    h('h2', { id: 'members-h' }, bi(W.members)),
    h('table', { class: 'members' }, h('thead', {}, h('tr', {}, ...W.memberCols.map((c) => h('th', { scope: 'col' }, bi(c))))), tbody),
  );
}

function renderNotes(v: Verdict): HTMLElement {
  if (v.notes.length === 0) return h('div');
  return h(
    'section',
    { 'aria-labelledby': 'notes-h' },
    h('h2', { id: 'notes-h' }, bi(W.notes)),
    h('ul', { class: 'notes' }, ...v.notes.map((n) => h('li', { 'data-note': n.id }, bi(n.sentence)))),
  );
}

function renderChecks(checks: Check[]): HTMLElement {
  const list = h('ol', { class: 'checks' });
  for (const c of checks) {
    const detail = h('div', { class: 'detail' });
    if (c.failures.length === 0) {
      detail.classList.add('empty');
      detail.append(h('p', {}, bi(W.noFailure)));
    }
    for (const f of c.failures) {
      const dl = h('dl', {}, h('dt', {}, bi(W.code)), h('dd', {}, h('code', { class: 'code' }, f.code)), h('dt', {}, bi(T('说明', 'What'))), h('dd', {}, bi(f.sentence)));
      if (f.device !== undefined) dl.append(h('dt', {}, bi(W.device)), h('dd', {}, f.device));
      if (f.seq !== undefined) dl.append(h('dt', {}, bi(W.seq)), h('dd', {}, String(f.seq)));
      if (f.batchId !== undefined) dl.append(h('dt', {}, bi(W.batch)), h('dd', {}, String(f.batchId)));
      if (f.expected !== undefined) dl.append(h('dt', {}, bi(W.expected)), h('dd', {}, h('code', { title: f.expected }, shortHex(f.expected)), ' ', fullHex(f.expected)));
      if (f.actual !== undefined) dl.append(h('dt', {}, bi(W.actual)), h('dd', {}, h('code', { title: f.actual }, shortHex(f.actual)), ' ', fullHex(f.actual)));
      if (f.path !== undefined) dl.append(h('dt', {}, bi(W.path)), h('dd', {}, h('code', {}, f.path)));
      detail.append(dl);
    }
    const failSentences = c.failures.map((f) => h('div', { class: 'failure', 'data-code': f.code }, h('code', {}, f.code), ' ', bi(f.sentence)));
    list.append(
      h(
        'li',
        { 'data-check': c.id, 'data-status': c.status },
        h(
          'details',
          c.status === 'fail' ? { open: true } : {},
          h('summary', {}, h('span', { class: `badge ${c.status}` }, bi(STATUS_WORD[c.status])), h('span', { class: 'check-title' }, `${c.number}. `, bi(c.title)), bi(c.sentence)),
          ...failSentences,
          detail,
        ),
      ),
    );
  }
  return h('section', { 'aria-labelledby': 'checks-h' }, h('h2', { id: 'checks-h' }, bi(W.checks)), list);
}

function renderAnchors(r: PageResult): HTMLElement {
  const v = r.verdict;
  const info = r.info;
  const facts = h('dl', { class: 'facts' });
  const row = (k: Text, ...vals: (Node | string)[]): void => {
    facts.append(h('dt', {}, bi(k)), h('dd', {}, ...vals));
  };
  if (info !== undefined) {
    row(W.ingestIssuer, info.ingest.issuer);
    row(W.ingestKey, fullHex(info.ingest.kidHex));
    row(W.device, info.device.deviceId);
    if (info.device.site !== undefined) row(W.site, info.device.site);
    row(W.deviceKey, fullHex(info.device.kidHex));
    row(W.keyStore, bi(BACKEND_WORD[info.device.keyBackend] ?? T(info.device.keyBackend, info.device.keyBackend)));
    row(W.enrolledAt, info.device.enrolledAt);
    row(W.window, `${info.window.firstSeq}–${info.window.lastSeq}`);
  }
  const anchored = v.summary.anchors.filter((a) => a.chainId !== undefined);
  const chains = [...new Set(anchored.map((a) => a.chainId))];
  const contracts = [...new Set(anchored.map((a) => a.contract))];
  if (chains.length > 0) row(W.chain, chains.join(', '));
  if (contracts.length > 0) row(W.contract, ...contracts.map((c) => fullHex(c ?? '')));

  const section = h('section', { 'aria-labelledby': 'anchors-h' }, h('h2', { id: 'anchors-h' }, bi(W.anchors)), facts);
  // Policy comparison.
  const pol = h('div', { class: 'policy', id: 'policy-result' });
  if (state.policy === undefined) pol.append(h('p', {}, bi(W.policyNone)));
  else {
    const p = state.policy;
    pol.append(h('p', {}, bi(W.policyLine(p.sha256, p.version, p.issuedAt))));
    if (info !== undefined) {
      const cmp = comparePolicy(p, { ingestKidHex: info.ingest.kidHex, anchors: anchored });
      const cls = (m: string): string => (m === 'not-listed' ? 'notlisted' : m);
      pol.append(
        h('p', {}, bi(W.policyIngest), ': ', h('span', { class: cls(cmp.ingestKey), 'data-policy-ingest': cmp.ingestKey }, bi(W.match[cmp.ingestKey]))),
        h('p', {}, bi(W.policyAnchors), ': ', h('span', { class: cls(cmp.anchors), 'data-policy-anchors': cmp.anchors }, bi(W.match[cmp.anchors]))),
        h('p', { class: 'hint' }, bi(W.policyDisplayOnly)),
      );
    }
  }
  const applied = v.summary.trust?.policy;
  pol.append(
    h(
      'p',
      { 'data-policy-applied': applied ? 'yes' : 'no' },
      bi(applied ? W.policyApplied(applied.authority, applied.authorityFingerprint, applied.ingestKey, applied.anchorTargets) : W.policyNotApplied),
    ),
  );
  section.append(pol);
  if (v.summary.anchors.length > 0) {
    const table = h('table', {}, h('thead', {}, h('tr', {}, ...W.batchCols.map((c) => h('th', { scope: 'col' }, bi(c))))));
    const tbody = h('tbody');
    for (const a of v.summary.anchors) {
      tbody.append(
        h(
          'tr',
          {},
          h('td', { class: 'num' }, String(a.batchId)),
          h('td', { class: 'num' }, String(a.size)),
          h('td', {}, h('code', { title: a.root }, shortHex(a.root))),
          h('td', {}, a.txHash === undefined ? bi(W.notAnchored) : h('code', { title: a.txHash }, a.txHash)),
          h('td', { class: 'num' }, a.blockNumber === undefined ? '' : String(a.blockNumber)),
          h('td', {}, a.blockTime === undefined ? '' : `${formatTime(a.blockTime * 1000)} (${new Date(a.blockTime * 1000).toISOString()})`),
          h('td', {}, a.confirmedBy.length === 0 ? bi(W.notConfirmed) : a.confirmedBy.join(', ')),
        ),
      );
    }
    table.append(tbody);
    section.append(collapsed(table, v.summary.anchors.length, W.batchesShown));
  }
  return section;
}

/** Rows beyond which a table starts closed on screen (a day has 1,440 batches); printing opens it. */
const OPEN_TABLE_ROWS = 48;

/**
 * A long table inside a closed <details> on screen: laying out a day's 1,440 rows took 300 ms of the page's
 * thread in one task. The print stylesheet and preparePrint open every <details>, so the report holds all rows.
 */
function collapsed(table: HTMLElement, rows: number, label: (n: number) => Text): HTMLElement {
  if (rows <= OPEN_TABLE_ROWS) return table;
  return h('details', { class: 'long-table' }, h('summary', {}, bi(label(rows))), table);
}

function renderChart(r: PageResult): HTMLElement {
  const info = r.info;
  const section = h('section', { 'aria-labelledby': 'chart-h', id: 'chart' }, h('h2', { id: 'chart-h' }, bi(W.chart)));
  if (info === undefined || info.series.length === 0 || info.timeRange === undefined) {
    section.append(h('p', {}, bi(W.noValues)));
    return section;
  }
  for (const series of info.series.slice(0, 6)) {
    const summary = W.chartSummary(
      series.code,
      series.buckets.length,
      formatTime(info.timeRange.fromMs),
      formatTime(info.timeRange.toMs),
      info.gaps.length,
      series.markers.length + series.markersOmitted,
    );
    const table = h(
      'table',
      { class: 'bucket-table' },
      h('caption', {}, bi(W.tableCaption(series.code, series.unit, bucketWord(series.bucketMs)))),
      h('thead', {}, h('tr', {}, ...W.tableCols.map((c) => h('th', { scope: 'col' }, bi(c))))),
      h(
        'tbody',
        {},
        ...series.buckets.map((b) =>
          h(
            'tr',
            b.failed > 0 ? { class: 'failed-row' } : {},
            h('td', {}, `${formatTime(b.startMs).slice(0, 16)}`),
            h('td', { class: 'num' }, String(b.count)),
            h('td', { class: 'num' }, fmtNum(b.mean)),
            h('td', { class: 'num' }, fmtNum(b.min)),
            h('td', { class: 'num' }, fmtNum(b.max)),
            h('td', {}, Object.entries(b.flags).map(([k, n]) => `${k}×${n}`).join(' ')),
            h('td', { class: 'num' }, b.failed === 0 ? '' : String(b.failed)),
          ),
        ),
      ),
    );
    section.append(h('figure', {}, drawChart(info, series, say(summary)), h('figcaption', { class: 'legend' }, bi(W.legend))), collapsed(table, series.buckets.length, W.bucketsShown));
  }
  if (info.gaps.length > 0) {
    section.append(
      h('h3', {}, bi(W.gapsTitle)),
      h(
        'ul',
        {},
        ...info.gaps.slice(0, 50).map((g) =>
          h('li', {}, bi(W.gapLine(g.firstSeq, g.lastSeq, g.fromMs === undefined ? undefined : formatTime(g.fromMs), g.toMs === undefined ? undefined : formatTime(g.toMs)))),
        ),
      ),
    );
  }
  void hhmm;
  return section;
}

function renderShows(r: PageResult): HTMLElement {
  const v = r.verdict;
  const times = v.summary.anchors.filter((a) => a.blockTime !== undefined && a.confirmedBy.length > 0).map((a) => a.blockTime!);
  const last = times.length > 0 ? formatTime(Math.max(...times) * 1000) : '';
  const shows = v.state === 'verified' ? W.showsVerified(last) : v.state === 'partial' ? W.showsPartial : W.showsFailed;
  return h(
    'section',
    { 'aria-labelledby': 'shows-h' },
    h('h2', { id: 'shows-h' }, bi(W.shows)),
    h('p', {}, bi(shows)),
    h('h2', { id: 'notshows-h' }, bi(W.notShows)),
    h('ul', {}, ...W.notShowsList.map((t) => h('li', {}, bi(t)))),
  );
}

function renderIdentifiers(r: PageResult): HTMLElement {
  const v = r.verdict;
  const anchored = v.summary.anchors.filter((a) => a.txHash !== undefined);
  const ids = {
    bundleSha256: v.summary.bundleSha256 ?? '',
    txHashes: anchored.map((a) => a.txHash!),
    ...(anchored[0]?.chainId !== undefined ? { chainId: anchored[0].chainId } : {}),
    ...(anchored[0]?.contract !== undefined ? { contract: anchored[0].contract } : {}),
    ...(state.policy !== undefined ? { policySha256: state.policy.sha256 } : {}),
  };
  const facts = h('dl', { class: 'facts' });
  const row = (k: Text, ...vals: (Node | string)[]): void => {
    facts.append(h('dt', {}, bi(k)), h('dd', {}, ...vals));
  };
  row(W.bundleFile, r.fileName);
  row(W.size, `${r.sizeBytes} B`);
  row(W.bundleSha, fullHex(ids.bundleSha256));
  row(W.policySha, state.policy === undefined ? bi(W.noPolicy) : fullHex(state.policy.sha256));
  row(W.verifier, bi(W.verifierLine(__STELE_VERSION__, __STELE_COMMIT__)));
  row(W.codeSha, fullHex(state.codeSha256), ' ', bi(W.codeShaHow));
  row(W.fileSha, ...(state.fileSha256 === undefined ? [bi(W.fileShaUnknown)] : [fullHex(state.fileSha256), ' ', bi(W.fileShaFrom)]));
  row(W.generated, `${formatTime(Date.parse(r.generatedAt))} (${r.generatedAt})`);
  row(W.browser, navigator.userAgent);
  row(T('用时', 'Time'), bi(W.took(r.timings.totalMs)));
  const text = identifierText(ids);
  return h(
    'section',
    { 'aria-labelledby': 'ids-h', id: 'identifiers' },
    h('h2', { id: 'ids-h' }, bi(W.ids)),
    h('div', { class: 'ids' }, facts, h('figure', {}, qrSvg(text, say(W.qr)), h('figcaption', { class: 'legend' }, bi(W.qr)))),
    h('pre', { class: 'qr-text mono', 'aria-label': say(W.qr) }, text),
  );
}

// ---- wiring ------------------------------------------------------------------------------------------------
function openAllDetails(): void {
  document.querySelectorAll<HTMLDetailsElement>('#result details').forEach((d) => {
    d.open = true;
  });
}

async function computeCodeSha(): Promise<string> {
  const script = document.querySelector('script');
  return script === null ? '' : toHex(sha256(utf8(script.textContent ?? '')));
}

function init(): void {
  let lang: Lang = navigator.language.toLowerCase().startsWith('zh') ? 'zh' : 'en';
  try {
    const saved = localStorage.getItem('stele.lang');
    if (saved === 'zh' || saved === 'en') lang = saved;
  } catch {
    // no storage
  }
  setLang(lang);
  $('lang-zh').addEventListener('click', () => setLang('zh'));
  $('lang-en').addEventListener('click', () => setLang('en'));
  $('print').addEventListener('click', () => {
    openAllDetails();
    window.print();
  });
  window.addEventListener('beforeprint', openAllDetails);

  setPolicy(loadStoredPolicy(safeStorage()), false);
  ($('policy-file') as HTMLInputElement).addEventListener('change', async (e) => {
    const input = e.target as HTMLInputElement;
    const file = input.files?.[0];
    input.value = '';
    if (file === undefined) return;
    if (file.size > MAX_POLICY_BYTES) {
      showError(W.policyProblem(`> ${MAX_POLICY_BYTES} B`));
      return;
    }
    setPolicy(new Uint8Array(await file.arrayBuffer()), true);
  });
  $('policy-forget').addEventListener('click', () => setPolicy(undefined, true));
  const authority = $('authority') as HTMLInputElement;
  try {
    authority.value = localStorage.getItem(AUTHORITY_STORAGE_KEY) ?? '';
  } catch {
    // no storage
  }
  authority.addEventListener('change', () => {
    try {
      localStorage.setItem(AUTHORITY_STORAGE_KEY, authority.value.trim());
    } catch {
      // no storage: this visit only
    }
  });

  const fileInput = $('file') as HTMLInputElement;
  fileInput.addEventListener('change', () => {
    const file = fileInput.files?.[0];
    fileInput.value = '';
    if (file !== undefined) void verifyFile(file).then(focusResult, () => undefined);
  });
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    const file = e.dataTransfer?.files[0];
    if (file !== undefined) void verifyFile(file).then(focusResult, () => undefined);
  });
  $('verify-paste').addEventListener('click', () => {
    const rpc = rpcUrlsFromInput();
    if (!Array.isArray(rpc)) return showError(rpc);
    const text = ($('paste') as HTMLTextAreaElement).value;
    void verifyBytes(utf8(text), say(W.pasted), rpc, { offline: state.offline }).then(focusResult, () => undefined);
  });

  const idLine = $('verifier-id');
  void computeCodeSha().then((hex) => {
    state.codeSha256 = hex;
    clear(idLine);
    idLine.append(bi(W.verifierLine(__STELE_VERSION__, __STELE_COMMIT__)), ' · ', bi(W.codeSha), ' ', h('code', {}, hex));
  });

  (window as unknown as { stele: unknown }).stele = {
    /** Verifies bundle bytes (or text) as the page does for a dropped file. */
    verify: (input: Uint8Array | string, options: { fileName?: string; rpcUrls?: string[]; offline?: boolean } = {}) =>
      verifyBytes(typeof input === 'string' ? utf8(input) : input, options.fileName ?? 'bundle.json', options.rpcUrls ?? [], { offline: options.offline === true }),
    /** Loads a trust policy file and the pinned authority fingerprint, as the officer does (not remembered). */
    setPolicy: (bytes: number[] | Uint8Array, authorityHex: string) => {
      ($('authority') as HTMLInputElement).value = authorityHex;
      setPolicy(Uint8Array.from(bytes), false);
    },
    result: () => state.result,
    runs: () => state.runs,
    /** States the SHA-256 of this page's file, as computed by the program that opened it (stele verify --report). */
    setFileSha256: (hex: string) => {
      if (!/^[0-9a-f]{64}$/.test(hex)) throw new TypeError('expected 64 lower-case hex digits');
      state.fileSha256 = hex;
      if (state.result !== undefined) renderResult(state.result);
    },
    setLang,
    setOffline: (offline: boolean) => {
      state.offline = offline;
    },
    preparePrint: openAllDetails,
    codeSha256: () => state.codeSha256,
  };
}

function focusResult(): void {
  $('result').focus();
}

init();
