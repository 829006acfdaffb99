/** The page's own words, zh and en (the verdict's sentences come from core's messages.ts). */
import type { CheckStatus, Text, VerdictState } from '@stele/core/verify';
import { T } from './dom.ts';

export type Lang = 'zh' | 'en';

export const STATE_WORD: Record<VerdictState, Text> = {
  verified: T('通过', 'Verified'),
  failed: T('未通过', 'Failed'),
  partial: T('未能完全核验', 'Not fully checked'),
};
export const STATE_ICON: Record<VerdictState, string> = { verified: '✓', failed: '✗', partial: '?' };

export const STATUS_WORD: Record<CheckStatus, Text> = {
  pass: T('✓ 通过', '✓ passed'),
  fail: T('✗ 未通过', '✗ failed'),
  unchecked: T('? 未核验', '? not checked'),
  'not-applicable': T('– 不适用', '– n/a'),
};

export const W = {
  checks: T('核验项目', 'Checks'),
  alert: T('告警', 'Alert'),
  alertRule: (rule: string, standard: string): Text => T(`规则 ${rule}（${standard}）`, `Rule ${rule} (${standard})`),
  alertWindow: (from: string, to: string, basis: 'itime' | 'time'): Text =>
    T(`时间窗 ${from} – ${to}（${basis === 'itime' ? '仪器时间' : '网关时间'}）`, `Window ${from} – ${to} (${basis === 'itime' ? 'instrument time' : 'gateway time'})`),
  alertCols: [T('数值', 'Value'), T('告警所载', 'Stated in the alert'), T('由已核验读数复算', 'Recomputed from verified readings'), T('一致', 'Equal')] as Text[],
  alertNotRecomputed: T('未能复算', 'not recomputed'),
  alertRecomputedHead: T('复算', 'Recomputed'),
  notes: T('说明（不属于未通过）', 'Notes (not failures)'),
  anchors: T('信任锚与链上锚定', 'Trust anchors and the on-chain anchor'),
  chart: T('窗口内读数', "The window's readings"),
  shows: T('本核验证明什么', 'What this verification shows'),
  notShows: T('本核验不证明什么', 'What it does not show'),
  ids: T('证据标识', 'Evidence identifiers'),
  counts: (p: number, f: number, u: number, n: number): Text =>
    T(`${p} 项通过 · ${f} 项未通过 · ${u} 项未核验 · ${n} 项不适用`, `${p} passed · ${f} failed · ${u} not checked · ${n} not applicable`),
  open: (titles: Text[], offline: boolean): Text =>
    T(
      `仍未核验：${titles.map((t) => t.zh).join('、')}${offline ? '。本次为离线核验（未填写节点地址）；填写该链的 RPC 地址即可核验这些项目。' : '。'}`,
      `Still open: ${titles.map((t) => t.en).join(', ')}${offline ? '. This run was offline (no endpoint given); enter an RPC endpoint of the chain to check them.' : '.'}`,
    ),
  code: T('错误代码', 'Code'),
  seq: T('读数序号', 'Reading seq'),
  members: T('设备（每台设备一个证据包）', 'Devices (one bundle each)'),
  memberCols: [T('设备', 'Device'), T('序号范围', 'Seq range'), T('读数', 'Readings'), T('该设备证据包结论', "This device's bundle")] as Text[],
  batch: T('批次', 'Batch'),
  expected: T('应为', 'Expected'),
  actual: T('实为', 'Actual'),
  path: T('位置', 'Where'),
  noFailure: T('无问题。', 'No problem found.'),
  ingestIssuer: T('接入服务', 'Ingest service'),
  ingestKey: T('接入服务密钥指纹（SHA-256）', 'Ingest key fingerprint (SHA-256)'),
  device: T('设备', 'Device'),
  site: T('站点', 'Site'),
  deviceKey: T('设备密钥指纹（SHA-256）', 'Device key fingerprint (SHA-256)'),
  keyStore: T('密钥存储', 'Key store'),
  enrolledAt: T('登记时间', 'Enrolled at'),
  chain: T('链 ID', 'Chain id'),
  contract: T('合约', 'Contract'),
  window: T('序号窗口', 'Seq window'),
  batchesShown: (n: number) => T(`全部 ${n} 个批次（展开）`, `All ${n} batches (show)`),
  bucketsShown: (n: number) => T(`数值表，${n} 行（展开）`, `Table of the values, ${n} rows (show)`),
  batchCols: [T('批次', 'Batch'), T('条数', 'Size'), T('批次根', 'Root'), T('交易', 'Transaction'), T('区块', 'Block'), T('区块时间', 'Block time'), T('确认节点', 'Confirmed by')],
  notConfirmed: T('未经节点确认', 'not confirmed by a node'),
  notAnchored: T('未锚定', 'not anchored'),
  policyNone: T(
    '未载入信任策略：接入服务密钥与链上合约取自证据包本身，未经独立信任来源确认。',
    'No trust policy loaded: the ingest key and the contract were taken from the bundle itself, not from an independent source of trust.',
  ),
  policyLine: (sha: string, version: string | undefined, issued: string | undefined): Text =>
    T(
      `信任策略 SHA-256 ${sha}${version ? `，版本 ${version}` : ''}${issued ? `，签发于 ${issued}` : ''}`,
      `Trust policy SHA-256 ${sha}${version ? `, version ${version}` : ''}${issued ? `, issued ${issued}` : ''}`,
    ),
  policyProblem: (p: string): Text => T(`该文件无法作为信任策略读取：${p}`, `The file could not be read as a trust policy: ${p}`),
  policyIngest: T('接入服务密钥在策略中', 'Ingest key in the policy'),
  policyAnchors: T('链与合约在策略中', 'Chain and contract in the policy'),
  match: { match: T('一致', 'matches'), mismatch: T('不一致', 'does not match'), 'not-listed': T('策略未列出', 'not listed by the policy') },
  policyDisplayOnly: T(
    '（对照显示；策略由核验本身执行，见上方接入回执与链上锚定两项。）',
    '(shown for comparison; the policy is enforced by the verification itself, see the ingest receipt and anchor checks above.)',
  ),
  policyApplied: (authority: string, fp: string, ingest: string | undefined, anchors: string[]): Text =>
    T(
      `核验采用的策略：主管部门 ${authority}（密钥指纹 ${fp}）；接入服务密钥条目 ${ingest ?? '无'}；锚定目标条目 ${anchors.join('、') || '无'}`,
      `Policy applied by the verification: authority ${authority} (key fingerprint ${fp}); ingest key entry ${ingest ?? 'none'}; anchor target entries ${anchors.join(', ') || 'none'}`,
    ),
  policyNotApplied: T(
    '核验未采用信任策略（未载入策略或未填写主管部门密钥指纹）。',
    'The verification applied no trust policy (none loaded, or no authority fingerprint entered).',
  ),
  policyNoneLoaded: T('尚未载入信任策略。', 'No trust policy loaded yet.'),
  chartSummary: (code: string, n: number, from: string, to: string, gaps: number, markers: number): Text =>
    T(
      `${code} 读数图：${n} 个时段，${from} 至 ${to}，${gaps} 处缺失，${markers} 个标记点。下表为同一数据。`,
      `Chart of ${code}: ${n} intervals from ${from} to ${to}, ${gaps} gaps, ${markers} marked points. The table below holds the same data.`,
    ),
  legend: T(
    '蓝线：时段均值；浅蓝带：时段最小–最大值；斜线区：缺失读数；红色虚线：限值；▲ C 标记、■ M 标记、✕ D 标记；红圈✕：未通过核验的读数。时间为设备时间（不可信，仅用于定位）。',
    'Blue line: interval mean; light band: interval min–max; hatched: missing readings; dashed red: limit; ▲ C flag, ■ M flag, ✕ D flag; red circled ✕: a reading that failed a check. Times are device time (untrusted; used for placement only).',
  ),
  tableCols: [T('时段起（UTC+08:00）', 'From (UTC+08:00)'), T('有效条数', 'Count'), T('均值', 'Mean'), T('最小', 'Min'), T('最大', 'Max'), T('标记', 'Flags'), T('未通过', 'Failed')],
  tableCaption: (code: string, unit: string, bucket: Text): Text =>
    T(`${code}${unit ? `（${unit}）` : ''}，每 ${bucket.zh} 一行`, `${code}${unit ? ` (${unit})` : ''}, one row per ${bucket.en}`),
  gapsTitle: T('缺失的读数', 'Missing readings'),
  gapLine: (a: number, b: number, from?: string, to?: string): Text =>
    T(`序号 ${a}–${b}（共 ${b - a + 1} 条）${from && to ? `，${from} 至 ${to} 之间` : ''}`, `seq ${a}–${b} (${b - a + 1})${from && to ? `, between ${from} and ${to}` : ''}`),
  noValues: T('证据包中没有可绘制的读数值（仅摘要或无法解码）。', 'The bundle holds no reading values to draw (hash-only or undecodable).'),
  showsVerified: (t: string): Text =>
    T(
      `自设备签名起数据未被改动；窗口内无缺失；批次根已于 ${t} 锚定至区块链（技术核验一致）。`,
      `The data is unchanged since the device signed it; nothing is missing in the window; the batch roots were anchored on chain at ${t} (technically verified as consistent).`,
    ),
  showsPartial: T(
    '离线部分：自设备签名起数据未被改动，窗口内无缺失，读数包含在接入服务签名的批次中。链上锚定未核验，因此不能证明数据在何时已存在。',
    'Offline part: unchanged since the device signed it, nothing missing in the window, every reading is in a batch the ingest service signed. The anchor was not checked, so it does not show when the data existed.',
  ),
  showsFailed: T(
    '证据包未通过核验：上列未通过的项目说明了哪些数据与签名、序号或锚定不一致。未通过的部分不能作为技术核验一致的数据。',
    'The bundle failed: the failed checks above say which data does not match its signature, sequence or anchor. That data cannot be treated as technically verified.',
  ),
  notShowsList: [
    T('仪器的校准、运行与维护是否合规（数据标记仅按设备所报列出）；', "Whether the instrument was calibrated, run and maintained properly (data flags are listed as the device reported them);"),
    T('现场比对结果与测量本身的准确性；', 'Field comparison results, or the accuracy of the measurement itself;'),
    T('数据采集的合法性与关联性：由执法人员或法院判断；', 'The legality and relevance of the collection: for the officer or the court to judge;'),
    T('设备时间的准确性：设备时间不可信，只受区块时间约束。', 'That device times are accurate: device time is untrusted, bounded only by block time.'),
  ],
  bundleFile: T('证据包文件', 'Bundle file'),
  size: T('大小', 'Size'),
  bundleSha: T('证据包 SHA-256', 'Bundle SHA-256'),
  policySha: T('信任策略 SHA-256', 'Trust policy SHA-256'),
  noPolicy: T('未载入', 'none loaded'),
  verifier: T('核验程序', 'Verifier'),
  codeSha: T('核验代码 SHA-256', 'Verifier code SHA-256'),
  codeShaHow: T(
    '（由本页面对其自身脚本计算；浏览器只执行哈希与页面 Content-Security-Policy 相符的脚本）',
    "(computed by this page from its own script; the browser runs only a script whose hash is in the page's Content-Security-Policy)",
  ),
  fileSha: T('核验程序文件 SHA-256', 'Verifier file SHA-256'),
  fileShaUnknown: T(
    '页面无法读取自身文件；请与发布的 stele-verify.html.sha256 对照（sha256sum stele-verify.html）',
    'a page cannot read its own file: compare with the published stele-verify.html.sha256 (sha256sum stele-verify.html)',
  ),
  fileShaFrom: T('（由生成本报告的 stele 命令计算）', '(computed by the stele command that made this report)'),
  generated: T('生成时间', 'Generated at'),
  reportId: T('报告编号', 'Report id'),
  browser: T('浏览器', 'Browser'),
  took: (ms: number): Text => T(`核验用时 ${(ms / 1000).toFixed(2)} 秒`, `Verification took ${(ms / 1000).toFixed(2)} s`),
  qr: T('证据标识二维码（仅含标识，不含证据内容）', 'QR code of the identifiers (identifiers only, not the evidence)'),
  signer: T('核验人', 'Verified by'),
  date: T('日期', 'Date'),
  seal: T('单位盖章', 'Unit seal'),
  progressRead: T('正在读取证据包…', 'Reading the bundle…'),
  progressSig: (d: number, t: number): Text => T(`正在核验签名：${d} / 约 ${t}`, `Checking signatures: ${d} / about ${t}`),
  progressAnchor: T('正在向区块链节点查询锚定…', 'Asking the chain endpoints for the anchor…'),
  progressChart: T('正在整理读数图表…', 'Preparing the chart…'),
  tooLarge: (mb: number): Text => T(`文件过大（上限 ${mb} MB）。`, `The file is too large (limit ${mb} MB).`),
  badRpc: (u: string): Text => T(`不是 http(s) 地址：${u}`, `Not an http(s) URL: ${u}`),
  workerError: (m: string): Text => T(`核验程序出错：${m}`, `The verifier failed: ${m}`),
  verifierLine: (v: string, c: string): Text => T(`Stele 核验程序 ${v}（提交 ${c}）`, `Stele verifier ${v} (commit ${c})`),
  pasted: T('（粘贴内容）', '(pasted text)'),
};

export const BACKEND_WORD: Record<string, Text> = {
  software: T('软件密钥文件', 'software key file'),
  pkcs11: T('PKCS#11 硬件令牌', 'PKCS#11 hardware token'),
  tpm: T('TPM 芯片', 'TPM'),
  'secure-element': T('安全芯片', 'secure element'),
};

export function bucketWord(ms: number): Text {
  if (ms % 3_600_000 === 0) return T(`${ms / 3_600_000} 小时`, `${ms / 3_600_000} h`);
  if (ms % 60_000 === 0) return T(`${ms / 60_000} 分钟`, `${ms / 60_000} min`);
  return T(`${ms / 1000} 秒`, `${ms / 1000} s`);
}
