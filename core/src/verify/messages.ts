/**
 * The verifier's sentences, zh and en (VERIFIER.md §4.3-4.5). Every template is a function of its parameters so
 * that the two dictionaries cannot drift: adding a parameter breaks the build for both languages at once.
 *
 * Wording rule (VERIFIER.md "In brief"): say 技术核验一致 / "verified as consistent", never 证据有效 / "valid
 * evidence"; say what was proven and what was not.
 */
import type { LifecycleType } from '../lifecycle/statement.ts';
import type { TimelineProblemReason } from '../lifecycle/keys.ts';
import type { KeyBackend } from '../signer.ts';
import type { CheckId, Text } from './verdict.ts';

/** Offset used to print times: Beijing time, stated in every printed time (VERIFIER.md §4.6). */
const DISPLAY_OFFSET_MINUTES = 8 * 60;

const pad2 = (n: number): string => String(n).padStart(2, '0');

/** `2026-11-20 14:38:34 UTC+08:00` for a time in ms since the epoch (deterministic, no locale). */
export function formatTime(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  const d = new Date(ms + DISPLAY_OFFSET_MINUTES * 60_000);
  if (Number.isNaN(d.getTime())) return String(ms);
  const h = Math.floor(DISPLAY_OFFSET_MINUTES / 60);
  return (
    `${d.getUTCFullYear()}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())} ` +
    `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())} UTC+${pad2(h)}:${pad2(DISPLAY_OFFSET_MINUTES % 60)}`
  );
}

/** First 8 and last 4 hex characters, as on the page (the full value stays in `expected`/`actual`). */
export function shortHex(hex: string): string {
  const h = hex.startsWith('0x') ? hex.slice(2) : hex;
  return h.length <= 16 ? h : `${h.slice(0, 8)}…${h.slice(-4)}`;
}

const BACKEND: Record<KeyBackend, Text> = {
  software: { zh: '软件密钥文件', en: 'a software key file' },
  pkcs11: { zh: 'PKCS#11 硬件令牌', en: 'a PKCS#11 hardware token' },
  tpm: { zh: 'TPM 芯片', en: 'a TPM' },
  'secure-element': { zh: '安全芯片', en: 'a secure element' },
};

/** "declared <backend>, not attested": no key is claimed hardware-backed without proof (FORMAT.md §14.5). */
export function declared(backend: KeyBackend): Text {
  return { zh: `声明为${BACKEND[backend].zh}（${backend}），未经证明`, en: `declared ${backend}, not attested` };
}

/** "attested tpm": a TPM2_Certify of the key whose EK certificate chains to a root of the trust policy (FORMAT.md §14.5). */
export function attestedClaim(backend: KeyBackend, rootName: string, test: boolean): Text {
  return {
    zh: `经证明在${BACKEND[backend].zh}中（${backend}；TPM2_Certify，背书密钥证书链至信任策略的根“${rootName}”${test ? '，测试根' : ''}）`,
    en: `attested ${backend} (TPM2_Certify; the endorsement key certificate chains to the policy root "${rootName}"${test ? ', a test root' : ''})`,
  };
}

const at = (time: number | undefined, zh: boolean): string =>
  time === undefined ? '' : zh ? `（${formatTime(time)}）` : ` (${formatTime(time)})`;

export const TITLES: Record<CheckId, Text> = {
  format: { zh: '证据包格式', en: 'Bundle format' },
  enrolment: { zh: '设备登记', en: 'Device enrolment' },
  signatures: { zh: '逐条签名', en: 'Signatures' },
  completeness: { zh: '数据完整', en: 'Completeness' },
  inclusion: { zh: '纳入批次', en: 'Batch inclusion' },
  receipt: { zh: '接入回执', en: 'Ingest receipt' },
  anchor: { zh: '链上锚定', en: 'On-chain anchor' },
  time: { zh: '时间界', en: 'Time bounds' },
  alert: { zh: '告警复算', en: 'Alert recomputed' },
  flags: { zh: '数据标记', en: 'Data flags' },
  trust: { zh: '信任策略', en: 'Trust policy' },
};

/** A sentence about one device of an evidence set (FORMAT.md §7.2), named in front. */
export const ofDevice = (device: string, t: Text): Text => ({ zh: `${device}：${t.zh}`, en: `${device}: ${t.en}` });

/** Verdict headlines (VERIFIER.md §4.3). */
export const HEADLINE = {
  verified: (): Text => ({
    zh: '技术核验通过：数据自签名后未被改动，窗口内无缺失，已锚定至区块链',
    en: 'Verified: unchanged since signing, none missing in the window, anchored on chain',
  }),
  failed: (first: Text): Text => ({ zh: `未通过：${first.zh}`, en: `Failed: ${first.en}` }),
  partialAnchor: (): Text => ({
    zh: '未能完全核验：离线核验均通过，链上锚定未核验',
    en: 'Not fully checked: all offline checks pass; the on-chain anchor was not checked',
  }),
  partialNoPolicy: (trust: Text): Text => ({ zh: `未能完全核验：${trust.zh}`, en: `Not fully checked: ${trust.en}` }),
  partialExpired: (trust: Text): Text => ({ zh: `未能完全核验：${trust.zh}`, en: `Not fully checked: ${trust.en}` }),
  partialOther: (titles: Text[]): Text => ({
    zh: `未能完全核验：其余各项均通过，${titles.map((t) => t.zh).join('、')}未核验`,
    en: `Not fully checked: everything else passes; not checked: ${titles.map((t) => t.en.toLowerCase()).join(', ')}`,
  }),
};

/** Sentences for checks that pass, are unchecked or not applicable (VERIFIER.md §4.4). */
export const PASS = {
  format: (): Text => ({ zh: '证据包完整可读（格式 v1）', en: 'Bundle readable, format v1' }),
  formatNotReached: (): Text => ({ zh: '证据包不可读，本项未核验', en: 'Not checked: the bundle is not readable' }),
  /**
   * Check 2 passed. Only what signed statements say: the enrolment time from the ingest-signed enrolment statement
   * (`signed`), the backend as declared in it, never attested in this version (FORMAT.md §14.5).
   */
  enrolment: (deviceId: string, enrolledAtMs: number | undefined, d: Text, signed: boolean): Text => {
    if (!signed || enrolledAtMs === undefined) {
      return {
        zh: `设备 ${deviceId}：证据包不含接入服务签署的登记声明，登记记录未经签名；密钥${d.zh}；全部签名声明均使用该密钥`,
        en: `Device ${deviceId}: no enrolment statement signed by ingest in the bundle, the record is unsigned; key ${d.en}; every statement uses this key`,
      };
    }
    return {
      zh: `设备 ${deviceId} 于 ${formatTime(enrolledAtMs)} 由接入服务签署登记；密钥${d.zh}；全部签名声明均使用该登记密钥`,
      en: `Device ${deviceId} enrolled ${formatTime(enrolledAtMs)} (statement signed by ingest); key ${d.en}; every statement uses this enrolled key`,
    };
  },
  enrolmentKeys: (deviceId: string, enrolledAtMs: number | undefined, keys: { kid: string; from: number; until?: number; claim: Text }[]): Text => {
    const zh = keys.map((k) => `密钥 ${shortHex(k.kid)}（${k.claim.zh}）用于序号 ${k.from}${k.until === undefined ? ' 起' : `–${k.until}`}`).join('；');
    const en = keys.map((k) => `key ${shortHex(k.kid)} (${k.claim.en}) for seq ${k.from}${k.until === undefined ? ' on' : `–${k.until}`}`).join('; ');
    const when = enrolledAtMs === undefined ? { zh: '（无签名登记时间）', en: '(no signed enrolment time)' } : { zh: `于 ${formatTime(enrolledAtMs)} 登记`, en: `enrolled ${formatTime(enrolledAtMs)}` };
    return {
      zh: `设备 ${deviceId} ${when.zh}；${zh}；每条签名声明均使用其序号时有效的密钥`,
      en: `Device ${deviceId} ${when.en}; ${en}; every statement uses the key valid at its seq`,
    };
  },
  signatures: (n: number): Text => ({ zh: `${n} 条读数签名全部有效（ES256）`, en: `All ${n} signatures valid (ES256)` }),
  completeness: (a: number, b: number): Text => ({
    zh: `序号 ${a}–${b} 连续，哈希链无断点、无分叉`,
    en: `Seq ${a}–${b} contiguous, chain unbroken, no fork`,
  }),
  inclusion: (n: number, batches: number): Text => ({
    zh: `${n} 条读数均包含在其批次根中（${batches} 个批次，RFC 9162）`,
    en: `Every reading is in its batch root (${n} readings, ${batches} batches, RFC 9162)`,
  }),
  receipt: (issuer: string, kid: string): Text => ({
    zh: `回执签名有效（接入服务 ${issuer}，密钥 ${shortHex(kid)}）`,
    en: `Receipts signed by ingest key ${shortHex(kid)} (${issuer})`,
  }),
  receiptNotReached: (): Text => ({
    zh: '部分回执无法核验签名（其批次根未能计算）',
    en: 'Some receipt signatures could not be checked (their batch root could not be computed)',
  }),
  anchorOne: (chainId: number, tx: string, block: number, blockTime: number): Text => ({
    zh: `批次根与链 ${chainId} 交易 ${shortHex(tx)}（区块 ${block}，${formatTime(blockTime * 1000)}）一致`,
    en: `Root matches tx ${shortHex(tx)}, block ${block} (${formatTime(blockTime * 1000)}) on chain ${chainId}`,
  }),
  anchorMany: (n: number, chainId: number): Text => ({
    zh: `${n} 个批次根均与链 ${chainId} 上的锚定交易一致`,
    en: `All ${n} batch roots match their anchor transactions on chain ${chainId}`,
  }),
  anchorOffline: (): Text => ({
    zh: '未连接区块链节点，链上锚定未核验；其余各项已离线核验',
    en: 'No chain endpoint was asked; the anchor was not checked; everything else was checked offline',
  }),
  anchorUnreachable: (url: string): Text => ({
    zh: `无法连接区块链节点 ${url}，链上锚定未核验；其余各项已离线核验。`,
    en: `Could not reach ${url}; the anchor was not checked; everything else was checked offline.`,
  }),
  anchorDisagree: (u1: string, u2: string): Text => ({
    zh: `节点 ${u1} 与 ${u2} 返回结果不一致。`,
    en: `Nodes ${u1} and ${u2} disagree.`,
  }),
  anchorQuorum: (batchId: number, operators: number, quorum: number): Text => ({
    zh: `批次 ${batchId} 仅获 ${operators} 个运营方的节点确认，信任策略要求 ${quorum} 个，链上锚定未核验`,
    en: `Batch ${batchId} was confirmed by ${operators} operator(s), the policy asks for ${quorum}; the anchor was not checked`,
  }),
  anchorMissing: (batchId: number): Text => ({
    zh: `批次 ${batchId} 尚未上链锚定，链上锚定未核验`,
    en: `Batch ${batchId} is not anchored yet; the anchor was not checked`,
  }),
  time: (before: number): Text => ({
    zh: `读数产生于 ${formatTime(before * 1000)} 之前（链上区块时间）`,
    en: `Readings made before ${formatTime(before * 1000)} (chain block time)`,
  }),
  timeUnconfirmed: (): Text => ({
    zh: '锚定区块时间未经链上核实，时间上界未核验',
    en: 'The anchor block time was not confirmed on chain; the upper time bound was not checked',
  }),
  timeNoBodies: (): Text => ({
    zh: '证据包未附读数正文，无设备时间可核对',
    en: 'No reading bodies in the bundle; no device times to check',
  }),
  timeNoSynced: (bodies: number): Text => ({
    zh: `${bodies} 条读数正文均产生于设备时钟未同步时，无可核对上界的设备时间`,
    en: `All ${bodies} reading bodies were made with the device clock not synchronised; no device time to bound`,
  }),
  alertNone: (): Text => ({ zh: '证据包不含告警', en: 'The bundle carries no alert' }),
  alertUnstructured: (): Text => ({
    zh: '证据包中的告警不含可复算的规则（非 FORMAT.md §15.7 格式），告警值未核验',
    en: 'The alert in the bundle carries no rule to recompute (not a FORMAT.md §15.7 alert); its value was not checked',
  }),
  alertNoBody: (detail: string): Text => ({
    zh: `告警所用的部分读数在证据包中没有已核验的正文，无法复算（${detail}）`,
    en: `Some readings the alert uses have no verified body in the bundle; it could not be recomputed (${detail})`,
  }),
  alertRecomputed: (kind: string, subject: string, values: string, standard: string, first: number, last: number): Text => ({
    zh: `由已核验读数复算告警 ${kind}（${subject}）：${values}，与告警一致（${standard}）；序号 ${first}–${last} 覆盖整个告警时间窗`,
    en: `Recomputed ${kind} (${subject}) from verified readings: ${values}, equal to the alert (${standard}); seq ${first}–${last} covers the whole alert window`,
  }),
  alertRecomputedSet: (kind: string, subject: string, values: string, standard: string, ranges: string): Text => ({
    zh: `由各设备已核验读数复算告警 ${kind}（${subject}）：${values}，与告警一致（${standard}）；${ranges} 覆盖整个告警时间窗`,
    en: `Recomputed ${kind} (${subject}) from the verified readings of every device: ${values}, equal to the alert (${standard}); ${ranges} cover the whole alert window`,
  }),
  alertWindowBoundaryUnverified: (seq: number): Text => ({
    zh: `告警已复算一致，但窗口边界第 ${seq} 号读数没有已核验的正文，无法证明告警时间窗完整`,
    en: `The alert recomputes, but boundary reading ${seq} has no verified body: the alert window is not shown complete`,
  }),
  alertWindowOpenEnd: (seq: number, to: string): Text => ({
    zh: `告警已复算一致，但证据包最后一条读数（第 ${seq} 号）早于告警时间窗结束 ${to}：其后是否还有读数未能证明`,
    en: `The alert recomputes, but the bundle's last reading (seq ${seq}) is before the alert window ends (${to}): readings after it are not shown absent`,
  }),
  flagsAllN: (n: number): Text => ({ zh: `${n} 项测量的数据标记全部为 N（正常）`, en: `All ${n} measurement flags are N (normal)` }),
  flagsNoneOtherThanN: (n: number, noFlag: number): Text => ({
    zh: `${n} 项测量中无非 N 数据标记（其中 ${noFlag} 项未附数据标记）`,
    en: `No flag other than N among ${n} measurements (${noFlag} carry no flag)`,
  }),
  flagsListed: (list: string): Text => ({ zh: `存在非 N 数据标记：${list}`, en: `Non-N data flags present: ${list}` }),
  flagsNoBodies: (): Text => ({ zh: '证据包未附读数正文，无数据标记可列出', en: 'No reading bodies in the bundle; no flags to list' }),
  notReached: (): Text => ({ zh: '因证据包不可读，本项未核验', en: 'Not checked: the bundle is not readable' }),
  trustMissing: (ingestKid: string, issuer: string, targets: { chainId: number; contract: string }[]): Text => {
    const zh = targets.map((t) => `链 ${t.chainId} 合约 ${t.contract}`).join('、') || '（无锚定）';
    const en = targets.map((t) => `chain ${t.chainId} contract ${t.contract}`).join(', ') || '(no anchor)';
    return {
      zh: `未提供信任策略，以下各项仅依据证据包自身所述，未经核实：接入服务密钥指纹 ${ingestKid}（${issuer}）；${zh}。请向主管部门索取其签署的信任策略并核对其密钥指纹（见 docs/officer.md）。`,
      en: `No trust policy: taken on the bundle's word, not checked: ingest key fingerprint ${ingestKid} (${issuer}); ${en}. Obtain your authority's signed trust policy and compare its key fingerprint (docs/officer.md).`,
    };
  },
  trust: (p: PolicyText, ingestEntry: string, targets: string[], operators: string[]): Text => ({
    zh: `接入服务密钥（${ingestEntry}）与锚定目标（链 ${targets.join('、')}）均列于${policyZh(p)}；锚定区块时间在密钥有效期内${operators.length > 0 ? `（确认节点运营方：${operators.join('、')}）` : ''}`,
    en: `Ingest key (${ingestEntry}) and anchor target (chain ${targets.join(', ')}) are listed in ${policyEn(p)}; anchor block times inside the key's window${operators.length > 0 ? ` (confirmed by operators: ${operators.join(', ')})` : ''}`,
  }),
  trustExpired: (p: PolicyText, expiresAt: number): Text => ({
    zh: `${policyZh(p)}已于 ${formatTime(expiresAt)} 过期，请向主管部门索取新版信任策略`,
    en: `${capital(policyEn(p))} expired at ${formatTime(expiresAt)}; obtain a current policy from your authority`,
  }),
  trustWindowUnchecked: (p: PolicyText): Text => ({
    zh: `接入服务密钥与锚定目标均列于${policyZh(p)}；锚定区块时间未经链上核实，密钥有效期未核验`,
    en: `Ingest key and anchor target are listed in ${policyEn(p)}; the anchor block time was not confirmed on chain, so the key's window was not checked`,
  }),
};

/** What the verdict says of the policy behind it (TRUST-POLICY.md item 9). */
export interface PolicyText {
  sha256: string;
  version: number;
  issuedAt: number;
  authority: string;
  fingerprint: string;
}
const policyZh = (p: PolicyText): string =>
  `主管部门 ${p.authority}（密钥指纹 ${shortHex(p.fingerprint)}）签署的信任策略第 ${p.version} 版（${formatTime(p.issuedAt)} 签发，SHA-256 ${shortHex(p.sha256)}）`;
const policyEn = (p: PolicyText): string =>
  `the trust policy version ${p.version} of ${p.authority} (key fingerprint ${shortHex(p.fingerprint)}, issued ${formatTime(p.issuedAt)}, SHA-256 ${shortHex(p.sha256)})`;

const LIFECYCLE: Record<LifecycleType, Text> = {
  enrolment: { zh: '登记', en: 'enrolment' },
  rotation: { zh: '密钥轮换', en: 'key rotation' },
  revocation: { zh: '密钥吊销', en: 'revocation' },
  reinstall: { zh: '代理重装', en: 'agent reinstall' },
};

/** What a receipt or inclusion failure is about: reading `seq`, or the n-th lifecycle statement (1-based). */
export type Subject = number | { lifecycle: number; type: LifecycleType };
const subjectZh = (s: Subject): string => (typeof s === 'number' ? `第 ${s} 号读数` : `第 ${s.lifecycle} 条生命周期声明（${LIFECYCLE[s.type].zh}）`);
const subjectEn = (s: Subject): string => (typeof s === 'number' ? `reading ${s}` : `lifecycle statement ${s.lifecycle} (${LIFECYCLE[s.type].en})`);
const capital = (t: string): string => t.charAt(0).toUpperCase() + t.slice(1);

const REJECTED: Record<TimelineProblemReason, Text> = {
  'other-device': { zh: '它属于另一台设备', en: 'it names another device' },
  'not-ingest-key': { zh: '它不是由接入服务密钥签署的', en: 'it is not signed under the ingest key' },
  'bad-signature': { zh: '其签名无效', en: 'its signature does not verify' },
  'signer-not-valid': { zh: '签署它的密钥在该序号时无效', en: 'the key that signed it was not valid at its seq' },
  'key-reused': { zh: '它宣告的密钥已在使用', en: 'the key it announces is already in use' },
};

export type EntryPart = 'statement' | 'receipt' | 'reading';
const PART: Record<EntryPart, Text> = {
  statement: { zh: '签名声明', en: 'signed statement' },
  receipt: { zh: '接入回执', en: 'ingest receipt' },
  reading: { zh: '读数正文', en: 'reading body' },
};

export type HeaderField = 'device' | 'seq' | 'prev';
const FIELD: Record<HeaderField, Text> = {
  device: { zh: '设备编号', en: 'device id' },
  seq: { zh: '序号', en: 'seq' },
  prev: { zh: '前序摘要', en: 'previous digest' },
};

export type AnchorField = 'root' | 'size' | 'batchId' | 'chainId' | 'contract' | 'block';
const ANCHOR_FIELD: Record<AnchorField, Text> = {
  root: { zh: '根', en: 'root' },
  size: { zh: '条目数', en: 'size' },
  batchId: { zh: '批次号', en: 'batch id' },
  chainId: { zh: '链编号', en: 'chain id' },
  contract: { zh: '合约地址', en: 'contract address' },
  block: { zh: '区块信息', en: 'block data' },
};

/** Failure sentences: what, where, and what it means (VERIFIER.md §4.5). */
export const FAIL = {
  bundleFormat: (path: string, detail: string): Text => ({
    zh: `证据包格式错误，无法读取（位置 ${path}）`,
    en: `The bundle is not readable (${path}: ${detail})`,
  }),
  bundleLimit: (path: string, detail: string): Text => ({
    zh: `证据包超出核验器的限制，未予读取（位置 ${path}）`,
    en: `The bundle is beyond the verifier's limits and was not read (${path}: ${detail})`,
  }),
  requestMismatch: (item: number, what: 'not an enrolment' | 'SHA-256' | 'device or key'): Text =>
    what === 'not an enrolment'
      ? { zh: `生命周期第 ${item} 项不是登记声明，却附有登记请求文件。`, en: `Lifecycle item ${item} carries an enrolment request file but is not an enrolment statement.` }
      : what === 'SHA-256'
        ? { zh: `生命周期第 ${item} 项附带的登记请求文件与接入服务签署的登记声明中的 SHA-256 不符：文件被改动。`, en: `Lifecycle item ${item}: the enrolment request file does not hash to the SHA-256 in the enrolment statement ingest signed: the file was edited.` }
        : { zh: `生命周期第 ${item} 项附带的登记请求文件所述设备或密钥与登记声明不符。`, en: `Lifecycle item ${item}: the enrolment request file names another device or key than the enrolment statement.` },
  recordMismatch: (field: 'keyBackend', signed: string, record: string): Text => ({
    zh: `证据包设备记录中的 ${field} 为 ${record}，而接入服务签署的登记声明为 ${signed}：未签名的记录被改动。`,
    en: `The bundle's device record says ${field} ${record}, but the enrolment statement ingest signed says ${signed}: the unsigned record was edited.`,
  }),
  untrustedIngestKey: (kid: string): Text => ({
    zh: `接入服务密钥 ${shortHex(kid)} 不在信任策略中：回执与登记声明并非由受信任的接入服务签署。`,
    en: `Ingest key ${shortHex(kid)} is not in the trust policy: the receipts and enrolment were not signed by a trusted ingest service.`,
  }),
  untrustedIssuer: (issuer: string, expected: string): Text => ({
    zh: `证据包的接入服务名称为 ${issuer}，而信任策略中该密钥的名称为 ${expected}。`,
    en: `The bundle names ingest issuer ${issuer}, but the trust policy lists this key for issuer ${expected}.`,
  }),
  untrustedAnchor: (batchId: number, chainId: number, contract: string): Text => ({
    zh: `批次 ${batchId} 锚定于链 ${chainId} 合约 ${contract}，该锚定目标不在信任策略中。`,
    en: `Batch ${batchId} is anchored on chain ${chainId}, contract ${contract}, which is not an anchor target of the trust policy.`,
  }),
  anchorOutsideBlocks: (batchId: number, block: number, start: number, end?: number): Text => ({
    zh: `批次 ${batchId} 锚定于区块 ${block}，不在信任策略允许的区块范围 ${start}–${end ?? ''} 内。`,
    en: `Batch ${batchId} is anchored in block ${block}, outside the blocks ${start}–${end ?? ''} the trust policy allows.`,
  }),
  ingestKeyWindow: (batchId: number, blockTime: number, why: 'before' | 'after' | 'compromised', key: { validFrom: number; validUntil?: number; compromisedAt?: number }): Text => {
    const t = formatTime(blockTime * 1000);
    if (why === 'compromised') {
      return {
        zh: `批次 ${batchId} 于 ${t} 锚定，晚于接入服务密钥被认定泄露的时间 ${formatTime(key.compromisedAt!)}：其回执不可信。`,
        en: `Batch ${batchId} was anchored at ${t}, after the ingest key was compromised (${formatTime(key.compromisedAt!)}): its receipts cannot be trusted.`,
      };
    }
    const window = `${formatTime(key.validFrom)} – ${key.validUntil === undefined ? '' : formatTime(key.validUntil)}`;
    return {
      zh: `批次 ${batchId} 于 ${t} 锚定，不在接入服务密钥的有效期（${window}）内。`,
      en: `Batch ${batchId} was anchored at ${t}, outside the ingest key's window (${window}).`,
    };
  },
  entryFormat: (seq: number, part: EntryPart, path: string): Text => ({
    zh: `第 ${seq} 号读数的${PART[part].zh}无法解码（位置 ${path}）`,
    en: `The ${PART[part].en} of reading ${seq} does not decode (${path})`,
  }),
  entrySeqLabel: (label: number, seq: number, path: string): Text => ({
    zh: `证据包条目标注序号 ${label}，但其签名声明的序号为 ${seq}（位置 ${path}）`,
    en: `A bundle entry is labelled seq ${label} but its signed statement has seq ${seq} (${path})`,
  }),
  keyIdNotOfKey: (who: 'device' | 'ingest'): Text =>
    who === 'device'
      ? { zh: '设备登记记录中的密钥标识与公钥不符', en: "The enrolment record's key id is not the id of its public key" }
      : { zh: '接入服务的密钥标识与公钥不符', en: "The ingest key id is not the id of the ingest public key" },
  badPublicKey: (who: 'device' | 'ingest'): Text =>
    who === 'device'
      ? { zh: '登记的设备公钥不是有效的 P-256 公钥', en: 'The enrolled device key is not a valid P-256 public key' }
      : { zh: '接入服务公钥不是有效的 P-256 公钥', en: 'The ingest key is not a valid P-256 public key' },
  unknownKey: (seq: number, kid: string): Text => ({
    zh: `第 ${seq} 号读数由未登记的密钥 ${shortHex(kid)} 签署，而非登记设备密钥`,
    en: `Reading ${seq} is signed under key ${shortHex(kid)}, which is not the enrolled device key`,
  }),
  keyNotYetValid: (seq: number, kid: string, from: number): Text => ({
    zh: `第 ${seq} 号读数由密钥 ${shortHex(kid)} 签署，但该密钥自第 ${from} 号起才有效`,
    en: `Reading ${seq} is signed under key ${shortHex(kid)}, which is valid only from seq ${from}`,
  }),
  keyRevoked: (seq: number, kid: string, after: number): Text => ({
    zh: `第 ${seq} 号读数由已吊销的密钥 ${shortHex(kid)} 签署（该密钥在第 ${after} 号之后已吊销）`,
    en: `Reading ${seq} is signed under key ${shortHex(kid)}, revoked after seq ${after}`,
  }),
  keyRotated: (seq: number, kid: string, until: number): Text => ({
    zh: `第 ${seq} 号读数由已轮换下线的密钥 ${shortHex(kid)} 签署（该密钥仅适用至第 ${until} 号）`,
    en: `Reading ${seq} is signed under key ${shortHex(kid)}, which was rotated out at seq ${until}`,
  }),
  recordNotEnrolled: (): Text => ({
    zh: '证据包中的设备登记记录没有对应的接入服务登记声明',
    en: "The bundle's enrolment record is not backed by an enrolment statement of the ingest service",
  }),
  lifecycleRejected: (n: number, type: LifecycleType, reason: TimelineProblemReason, code: string, seq?: number): Text => ({
    zh: `第 ${n} 条生命周期声明（${LIFECYCLE[type].zh}${seq === undefined ? '' : `，序号 ${seq}`}）不予采用：${REJECTED[reason].zh}（${code}）`,
    en: `Lifecycle statement ${n} (${LIFECYCLE[type].en}${seq === undefined ? '' : `, seq ${seq}`}) is not accepted: ${REJECTED[reason].en} (${code})`,
  }),
  lifecycleFormat: (n: number, part: 'statement' | 'receipt', path: string): Text => ({
    zh: `第 ${n} 条生命周期声明的${PART[part].zh}无法解码（位置 ${path}）`,
    en: `The ${part === 'statement' ? 'lifecycle statement' : PART[part].en} of lifecycle entry ${n} does not decode (${path})`,
  }),
  otherDevice: (seq: number, other: string, enrolled: string): Text => ({
    zh: `第 ${seq} 号读数的签名声明属于设备 ${other}，而非登记设备 ${enrolled}`,
    en: `Reading ${seq}'s statement names device ${other}, not the enrolled device ${enrolled}`,
  }),
  signature: (seq: number, time?: number): Text => ({
    zh: `第 ${seq} 号读数${at(time, true)}签名与登记设备密钥不符：读数在签名后被改动，或并非该设备签署。`,
    en: `Reading ${seq}${at(time, false)} does not match the enrolled device key: it was changed after signing, or not signed by this device.`,
  }),
  digest: (seq: number, time?: number): Text => ({
    zh: `第 ${seq} 号读数${at(time, true)}的内容与设备签名的摘要不符：读数在签名后被改动。`,
    en: `Reading ${seq}${at(time, false)} does not match the digest the device signed: it was changed after signing.`,
  }),
  header: (seq: number, field: HeaderField): Text => ({
    zh: `第 ${seq} 号读数的${FIELD[field].zh}与其签名声明中的不一致。`,
    en: `Reading ${seq}'s ${FIELD[field].en} differs from its signed statement.`,
  }),
  gap: (a: number, b: number, t1?: number, t2?: number): Text => {
    const n = b - a + 1;
    const range = a === b ? `${a}` : `${a}–${b}`;
    const times = t1 !== undefined && t2 !== undefined;
    return {
      zh: `序号 ${range} 缺失（${times ? `${formatTime(t1)} 至 ${formatTime(t2)} 之间，` : ''}共 ${n} 条）：窗口内数据不完整。`,
      en: `${a === b ? `Reading ${range} is` : `Readings ${range} are`} missing (${n}${times ? `, between ${formatTime(t1)} and ${formatTime(t2)}` : ''}): the window is incomplete.`,
    };
  },
  chainLink: (seq: number): Text => ({
    zh: `第 ${seq} 号读数记录的前序摘要与第 ${seq - 1} 号不符：两者之间有读数被删除、插入或替换。`,
    en: `Reading ${seq} does not link to ${seq - 1}: a reading between them was deleted, inserted or replaced.`,
  }),
  genesis: (): Text => ({
    zh: '第 1 号读数记录的前序摘要不是全零：它不是该设备的首条读数，或已被替换。',
    en: 'Reading 1 does not start the chain (its previous digest is not 32 zero bytes): it is not the first reading, or it was replaced.',
  }),
  forkCaught: (seq: number): Text => ({
    zh: `第 ${seq} 号：设备还签署了另一条不同的读数（接入服务拦下、未入日志）：设备日志出现分叉。`,
    en: `Seq ${seq}: the device also signed another, different reading, which ingest caught and did not log: the device log forked.`,
  }),
  caughtGap: (a: number, b: number, seq: number): Text => ({
    zh: `第 ${a === b ? a : `${a}–${b}`} 号读数从未送达接入服务：设备签署了第 ${seq} 号读数（接入服务拦下、未入日志），其前的读数缺失。`,
    en: `Reading${a === b ? ` ${a} was` : `s ${a}–${b} were`} never received by ingest: the device signed reading ${seq} (caught by ingest, not logged), so the seqs before it are missing.`,
  }),
  caughtEntry: (n: number, detail: string, path: string): Text => ({
    zh: `拦下的声明 ${n} 不能作为证据（${detail}，位置 ${path}）`,
    en: `Caught statement ${n} is not evidence of a fork or a gap (${detail}; ${path})`,
  }),
  fork: (seq: number, n: number): Text => ({
    zh: `第 ${seq} 号有 ${n} 条不同的已签名读数：设备日志出现分叉。`,
    en: `Seq ${seq} has ${n} different signed readings: the device log forked.`,
  }),
  inclusion: (seq: Subject, batchId: number): Text => ({
    zh: `证据包中的${subjectZh(seq)}与已上链批次 ${batchId} 不一致：包含证明不能从${typeof seq === 'number' ? '该读数' : '该声明'}推出批次根。`,
    en: `${capital(subjectEn(seq))} does not match anchored batch ${batchId}: its inclusion proof does not lead to the batch root.`,
  }),
  inclusionMalformed: (seq: Subject, batchId: number): Text => ({
    zh: `${subjectZh(seq)}在批次 ${batchId} 中的包含证明格式错误。`,
    en: `The inclusion proof of ${subjectEn(seq)} in batch ${batchId} is malformed.`,
  }),
  inclusionOtherBatch: (seq: Subject, batchId: number, receiptBatchId: number): Text => ({
    zh: `${subjectZh(seq)}标注属于批次 ${batchId}，但其回执属于批次 ${receiptBatchId}。`,
    en: `${capital(subjectEn(seq))} is listed in batch ${batchId}, but its receipt is for batch ${receiptBatchId}.`,
  }),
  inclusionSize: (seq: number, batchId: number, proofSize: number, size: number): Text => ({
    zh: `第 ${seq} 号读数的包含证明针对 ${proofSize} 条的树，而批次 ${batchId} 记录为 ${size} 条。`,
    en: `The inclusion proof of reading ${seq} is for a tree of ${proofSize}, but batch ${batchId} records ${size}.`,
  }),
  receiptSignature: (seq: Subject, kid: string): Text => ({
    zh: `${subjectZh(seq)}的接入回执签名无效：回执并非由接入服务密钥 ${shortHex(kid)} 签署，或已被改动。`,
    en: `The ingest receipt of ${subjectEn(seq)} is not validly signed by ingest key ${shortHex(kid)}: it was altered or issued by another key.`,
  }),
  receiptOtherKey: (seq: Subject, kid: string): Text => ({
    zh: `${subjectZh(seq)}的接入回执由密钥 ${shortHex(kid)} 签署，而非证据包中的接入服务密钥。`,
    en: `The ingest receipt of ${subjectEn(seq)} is signed under key ${shortHex(kid)}, not the bundle's ingest key.`,
  }),
  receiptOtherIssuer: (seq: Subject, issuer: string): Text => ({
    zh: `${subjectZh(seq)}的接入回执由 ${issuer} 签发，而非证据包中的接入服务。`,
    en: `The ingest receipt of ${subjectEn(seq)} was issued by ${issuer}, not the bundle's ingest service.`,
  }),
  anchorSigned: (batchId: number): Text => ({
    zh: `证据包中的读数与已上链批次 ${batchId} 不一致：证据包记录的批次根不是接入服务签署的根。`,
    en: `The readings do not match anchored batch ${batchId}: the root recorded in the bundle is not the root ingest signed.`,
  }),
  anchorChain: (batchId: number, field: AnchorField, chainId: number): Text => ({
    zh: `证据包中的读数与已上链批次 ${batchId} 不一致：链 ${chainId} 上锚定的${ANCHOR_FIELD[field].zh}与证据包记录不同。`,
    en: `The readings do not match anchored batch ${batchId}: the anchored ${ANCHOR_FIELD[field].en} on chain ${chainId} differs from the bundle.`,
  }),
  anchorNotFound: (batchId: number, tx: string, url: string): Text => ({
    zh: `区块链节点 ${url} 上找不到批次 ${batchId} 的锚定交易 ${shortHex(tx)}。`,
    en: `Node ${url} has no anchor of batch ${batchId} in transaction ${shortHex(tx)}.`,
  }),
  timeBound: (seq: number, time: number, batchId: number, blockTime: number): Text => ({
    zh: `第 ${seq} 号读数的设备时间 ${formatTime(time)} 晚于其批次 ${batchId} 的上链时间 ${formatTime(blockTime * 1000)}：设备时间不可信。`,
    en: `Reading ${seq} claims device time ${formatTime(time)}, after its batch ${batchId} was anchored at ${formatTime(blockTime * 1000)}: its device time cannot be right.`,
  }),
  alertValue: (name: string, v: string, a: string): Text => ({
    zh: `由已核验读数复算的 ${name} 为 ${v}，与告警值 ${a} 不符。`,
    en: `The ${name} recomputed from verified readings is ${v}, not ${a}.`,
  }),
  alertNotProduced: (): Text => ({
    zh: '已核验的读数按告警所载规则（及其版本）复算不出该告警：告警的规则、对象或时间窗被改动，或读数不支持该告警。',
    en: 'The verified readings do not produce this alert under its rule and version: the rule, subject or window was changed, or the readings do not support it.',
  }),
  alertField: (path: string, detail: string): Text => ({
    zh: `告警的 ${path} 与由已核验读数复算的结果不符（${detail}）。`,
    en: `The alert's ${path} differs from the recomputation from verified readings (${detail}).`,
  }),
  alertWindowStart: (seq: number, time: number, from: string): Text => ({
    zh: `证据包从第 ${seq} 号读数（${formatTime(time)}）开始，晚于告警时间窗起点 ${from}：窗口开头的读数可能被略去。`,
    en: `The bundle starts at reading ${seq} (${formatTime(time)}), not before the alert window starts (${from}): readings at its start may be left out.`,
  }),
};

/** Notes: informational, never failures (VERIFIER.md §4.3). */
export const NOTE = {
  keyNotAttested: (kid: string, reason: string): Text => ({
    zh: `密钥 ${shortHex(kid)} 的登记请求附有证明材料，但未能据此证明（${reason}），故仅为声明。`,
    en: `Key ${shortHex(kid)}: its enrolment request carries attestation evidence that does not prove it (${reason}); the backend is declared only.`,
  }),
  softwareKey: (): Text => ({
    zh: '设备密钥为软件密钥文件，而非硬件密钥（TPM 或安全芯片）：能读取该文件者即可签名。',
    en: 'The device key is a software key file, not a hardware key (TPM or secure element): whoever can read the file can sign.',
  }),
  revocationUnchecked: (): Text => ({
    zh: '该证据包不含密钥生命周期信息（登记、轮换、吊销），未核验密钥是否已吊销。',
    en: 'This bundle carries no key lifecycle data (enrolment, rotation, revocation); whether the key was revoked was not checked.',
  }),
  keyRotated: (kid: string, atSeq: number): Text => ({
    zh: `第 ${atSeq} 号为密钥轮换：此后的读数由密钥 ${shortHex(kid)} 签署。`,
    en: `Seq ${atSeq} is a key rotation: later readings are signed under key ${shortHex(kid)}.`,
  }),
  keyRevoked: (kid: string, after: number): Text => ({
    zh: `密钥 ${shortHex(kid)} 已被接入服务吊销，第 ${after} 号之后由其签署的声明均无效。`,
    en: `Key ${shortHex(kid)} was revoked by ingest; statements under it after seq ${after} are invalid.`,
  }),
  reinstalled: (seq: number): Text => ({
    zh: `第 ${seq} 号为网关代理重装：重装前尚未送达接入服务的读数已丢失，序号从接入服务确认的位置继续。`,
    en: `Seq ${seq} is an agent reinstall: readings the old agent had not delivered were lost; the chain continues from the head ingest confirmed.`,
  }),
  lifecycleAsExported: (createdIso: string): Text => ({
    zh: `密钥生命周期信息以证据包导出时（${createdIso}）接入服务的记录为准。`,
    en: `Key lifecycle data is as ingest held it when the bundle was exported (${createdIso}).`,
  }),
  hashOnly: (n: number): Text => ({
    zh: `${n} 条读数未附正文（仅哈希）：其签名、回执和哈希链已核验，但读数内容无法查看。`,
    en: `${n} readings come without their body (hash-only): signature, receipt and chain were checked, but their content cannot be shown.`,
  }),
  clockUnsynced: (n: number, first: number): Text => ({
    zh: `${n} 条读数产生时设备时钟未同步（首条为第 ${first} 号），其设备时间仅供参考，未用于时间界核验。`,
    en: `${n} readings were made with the device clock not synchronised (first: seq ${first}); their device time is indicative only and was not bounded.`,
  }),
  dataFlags: (list: string): Text => ({
    zh: `存在非 N 数据标记：${list}。数据标记反映仪器状态，其认定由执法人员或法院判断。`,
    en: `Non-N data flags present: ${list}. Flags reflect the instrument's state; what they mean is for the officer or court to judge.`,
  }),
  rpcUnreachable: (url: string): Text => ({
    zh: `无法连接区块链节点 ${url}；其他节点已给出结果。`,
    en: `Could not reach ${url}; other nodes answered.`,
  }),
  notAnchored: (batchId: number): Text => ({
    zh: `批次 ${batchId} 尚未上链锚定。`,
    en: `Batch ${batchId} is not anchored yet.`,
  }),
  duplicateEntries: (n: number, first: number[]): Text => ({
    zh: `${n} 个条目与前面的条目完全相同（首批序号 ${first.join(', ')}${n > first.length ? ' 等' : ''}），各只核验一次。`,
    en: `${n} entries repeat an earlier entry exactly (seq ${first.join(', ')}${n > first.length ? ', …' : ''}); each was checked once.`,
  }),
  policyEntrySkipped: (path: string, reason: string): Text => ({
    zh: `信任策略条目 ${path} 无法使用，已忽略（${reason}）；其余条目照常适用。`,
    en: `Trust policy entry ${path} is unusable and was ignored (${reason}); the other entries apply.`,
  }),
  more: (n: number): Text => ({ zh: `…… 另有 ${n} 条同类说明（--json 可查看计数）`, en: `… and ${n} more notes of this kind` }),
};
