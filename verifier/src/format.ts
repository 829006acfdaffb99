/**
 * Plain-text rendering of a Verdict for terminals (the web page renders the same object as HTML).
 */
import type { Check, CheckStatus, Verdict, VerdictState } from '@stele/core/verify';

export type Lang = 'zh' | 'en';

const STATE: Record<VerdictState, { zh: string; en: string }> = {
  verified: { zh: '通过', en: 'VERIFIED' },
  failed: { zh: '未通过', en: 'FAILED' },
  partial: { zh: '未能完全核验', en: 'NOT FULLY CHECKED' },
};

const STATUS: Record<CheckStatus, { zh: string; en: string }> = {
  pass: { zh: '通过', en: 'pass' },
  fail: { zh: '未通过', en: 'FAIL' },
  unchecked: { zh: '未核验', en: 'unchecked' },
  'not-applicable': { zh: '不适用', en: 'n/a' },
};

const LABEL = {
  title: { zh: 'Stele 证据核验', en: 'Stele evidence verification' },
  bundle: { zh: '证据包', en: 'Bundle' },
  verdict: { zh: '结论', en: 'Verdict' },
  checks: { zh: '核验项目', en: 'Checks' },
  notes: { zh: '说明', en: 'Notes' },
  alert: { zh: '告警', en: 'Alert' },
  alertValues: { zh: '告警值', en: 'stated' },
  alertRecomputed: { zh: '复算值', en: 'recomputed' },
  alertNotRecomputed: { zh: '未能复算', en: 'not recomputed' },
  devices: { zh: '设备（每台设备一个证据包）', en: 'Devices (one bundle each)' },
  readings: { zh: '条读数', en: 'readings' },
  more: { zh: (n: number) => `…… 另有 ${n} 项（--json 可查看全部）`, en: (n: number) => `… and ${n} more (--json lists all)` },
  counts: {
    zh: (p: number, f: number, u: number) => `${p} 项通过 · ${f} 项未通过 · ${u} 项未核验`,
    en: (p: number, f: number, u: number) => `${p} passed · ${f} failed · ${u} not checked`,
  },
};

export interface FormatOptions {
  /** Shown in the header line. */
  bundleName?: string;
  /** Failures listed per check before "… and N more". Default 20. */
  maxFailuresPerCheck?: number;
}

function formatCheck(check: Check, lang: Lang, max: number): string[] {
  const status = STATUS[check.status][lang];
  // A failed check's sentence is its first failure, listed just below: do not print it twice.
  const head = `  [${status}] ${check.number}. ${check.title[lang]}`;
  const code = check.status === 'unchecked' && check.code !== undefined ? ` (${check.code})` : '';
  const lines = [check.failures.length > 0 ? head : `${head}${code}: ${check.sentence[lang]}`];
  for (const f of check.failures.slice(0, max)) {
    const where = [f.device ?? '', f.seq !== undefined ? `seq ${f.seq}` : '', f.batchId !== undefined ? `batch ${f.batchId}` : '']
      .filter(Boolean)
      .join(', ');
    lines.push(`      ${f.code}${where ? ` (${where})` : ''}: ${f.sentence[lang]}`);
    if (f.expected !== undefined || f.actual !== undefined) {
      lines.push(`        expected ${f.expected ?? '-'}`, `        actual   ${f.actual ?? '-'}`);
    }
  }
  if (check.failures.length > max) lines.push(`      ${LABEL.more[lang](check.failures.length - max)}`);
  return lines;
}

/** The verdict as text: verdict line first, then every check with its status and sentence, then notes. */
export function formatVerdict(verdict: Verdict, lang: Lang, options: FormatOptions = {}): string {
  const max = options.maxFailuresPerCheck ?? 20;
  const count = (s: CheckStatus): number => verdict.checks.filter((c) => c.status === s).length;
  const lines: string[] = [LABEL.title[lang]];
  if (options.bundleName !== undefined || verdict.summary.bundleSha256 !== undefined) {
    const sha = verdict.summary.bundleSha256 !== undefined ? `  SHA-256 ${verdict.summary.bundleSha256}` : '';
    lines.push(`${LABEL.bundle[lang]}: ${options.bundleName ?? ''}${sha}`);
  }
  lines.push(
    '',
    `${LABEL.verdict[lang]}: ${STATE[verdict.state][lang]}`,
    verdict.headline[lang],
    LABEL.counts[lang](count('pass'), count('fail'), count('unchecked')),
  );
  const a = verdict.summary.alert;
  if (a !== undefined) {
    // The alert and its recomputation, before the checks (VERIFIER.md §4.2: verdict, then the alert).
    const vals = (v: Record<string, unknown>): string => Object.entries(v).map(([k, x]) => `${k}=${typeof x === 'string' ? x : JSON.stringify(x)}`).join(' ');
    const alertCheck = verdict.checks.find((c) => c.id === 'alert');
    lines.push(
      '',
      `${LABEL.alert[lang]}: ${a.kind} ${a.subject} [${STATUS[alertCheck?.status ?? 'unchecked'][lang]}]`,
      `  ${a.rule} (${a.standard}) · ${a.window.from} .. ${a.window.to}`,
      `  ${LABEL.alertValues[lang]}:   ${vals(a.values)}`,
      `  ${LABEL.alertRecomputed[lang]}: ${a.recomputed === undefined ? LABEL.alertNotRecomputed[lang] : vals(a.recomputed)}`,
    );
  }
  const members = verdict.summary.members;
  if (members !== undefined) {
    // An evidence set (FORMAT.md §7.2): each device's bundle and its own verdict; the checks below are over all.
    lines.push('', `${LABEL.devices[lang]}:`);
    for (const m of members) lines.push(`  ${m.deviceId}  seq ${m.firstSeq}..${m.lastSeq}  ${m.readings} ${LABEL.readings[lang]}  [${STATE[m.state][lang]}]`);
  }
  lines.push('', `${LABEL.checks[lang]}:`);
  for (const check of verdict.checks) lines.push(...formatCheck(check, lang, max));
  if (verdict.notes.length > 0) {
    lines.push('', `${LABEL.notes[lang]}:`);
    for (const n of verdict.notes) lines.push(`  - ${n.sentence[lang]}`);
  }
  return `${lines.join('\n')}\n`;
}
