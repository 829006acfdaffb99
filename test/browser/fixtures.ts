/**
 * Bundles for the verifier page's browser tests and benchmarks: a valid bundle from core's test-bundle helper
 * whose batch roots are anchored for real on a local anvil (so the page's chain look-up is the real
 * `readAnchor` over HTTP), and tampered variants of it, each with the failure code core must report.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evalReading, evaluateRuleSet, parseRuleSet } from '@stele/core/alerts';
import { bundleToJson, EVIDENCE_SET_FORMAT, encodeBundle, fromBase64Url, type EvidenceBundle, toBase64Url, toHex, utf8, keyIdOf, decodeReading, encodeReading } from '@stele/core';
import type { VerifyCode } from '@stele/core/verify';
import { buildTestBundle, cloneBundle, flipByte, tamper, testSigner, type TestBundleOptions } from '@stele/core/testing';
import { completePolicyDraft, draftTrustPolicy, signTrustPolicy } from '@stele/core/trust';
import { ANVIL_DEV_PRIVATE_KEY, connectEvmAnchorer, startAnvil, type AnvilNode } from '@stele/ingest/anchor';

export interface Chain {
  rpcUrl: string;
  anvil: AnvilNode;
  anchor(bundle: EvidenceBundle): Promise<void>;
  stop(): Promise<void>;
}

/** A local anvil with the SteleAnchor contract deployed; `anchor` records every batch of a bundle on it. */
export async function startChain(): Promise<Chain> {
  const dir = mkdtempSync(join(tmpdir(), 'stele-web-chain-'));
  const anvil = await startAnvil({ stateDir: join(dir, 'chain') });
  try {
    const anchorer = await connectEvmAnchorer({ rpcUrl: anvil.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY, stateFile: join(dir, 'anchor.json') });
    return {
      rpcUrl: anvil.rpcUrl,
      anvil,
      anchor: async (bundle) => {
        for (const b of bundle.batches) {
          const ref = await anchorer.anchor(b.batchId, b.root, b.size);
          const { rpc: _rpc, ...withoutRpc } = ref;
          b.anchor = withoutRpc;
        }
      },
      stop: async () => {
        await anvil.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await anvil.stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** A valid bundle anchored on `chain`. Batch ids start at 1: use one chain per bundle built. */
export async function anchoredBundle(chain: Chain, options: TestBundleOptions = {}): Promise<EvidenceBundle> {
  const built = await buildTestBundle({ count: 24, intervalMs: 60_000, rpc: null, chainId: 31337, ...options });
  const bundle = cloneBundle(built.bundle);
  await chain.anchor(bundle);
  return bundle;
}

export interface Variant {
  name: string;
  /** The code the verdict must carry (in a failed check); with several, one of them. */
  code: VerifyCode | VerifyCode[];
  bytes: Uint8Array;
}

/**
 * A trust policy signed by a test authority (FORMAT.md §14) listing the bundle's ingest key and anchor target,
 * and the authority's fingerprint (hex) that the officer pins.
 */
export async function signedPolicy(valid: EvidenceBundle): Promise<{ bytes: Uint8Array; authority: string }> {
  const authority = testSigner('authority');
  const a = valid.batches[0]!.anchor!;
  const draft = draftTrustPolicy({
    ingest: { publicKey: valid.ingest.publicKey, issuer: valid.ingest.issuer, validFrom: '2026-01-01T00:00:00Z' },
    anchors: [{ chainId: a.chainId, contract: a.contract, startBlock: 0 }],
  });
  const json = completePolicyDraft(draft, {
    authorityName: 'Test Environmental Protection Bureau',
    authorityPublicKey: authority.publicKey,
    version: 1,
    issuedAt: '2026-11-01T00:00:00Z',
    expiresAt: '2027-11-01T00:00:00Z',
  });
  return { bytes: await signTrustPolicy(json, authority), authority: toHex(authority.keyId) };
}

const entryOf = (b: EvidenceBundle, seq: number) => {
  const e = b.entries.find((x) => x.seq === seq);
  if (e === undefined) throw new Error(`no entry ${seq}`);
  return e;
};

/**
 * A bundle carrying an alert (FORMAT.md §15.7): twelve cold-store probe samples a minute apart, 5.0 °C except 9.1,
 * 9.6, 9.3 at seq 5..7, and the cold-chain excursion the GSP 2-8 °C rule gives for them. Not anchored on the test
 * chain (its batch ids would collide with the valid bundle's): verified offline, where check 9 runs in full.
 */
export async function alertBundle(): Promise<EvidenceBundle> {
  const temps: Record<number, string> = { 5: '9.1', 6: '9.6', 7: '9.3' };
  const built = await buildTestBundle({
    count: 12,
    rpc: null,
    contentOf: (seq) => ({ sensor: 'cold-1', meas: [{ code: '28-0316a2795cff', kind: 'temperature', value: temps[seq] ?? '5.0', unit: '°C' }] }),
  });
  const rules = parseRuleSet({ format: 'stele-rules/1', rules: [{ id: 'gsp-cold-2-8', type: 'cold-chain', standard: 'GSP 2016', version: '1', params: { profile: '2-8 C', low: '2', high: '8', maxContinuousMs: 120_000 } }] });
  const alert = evaluateRuleSet(rules, built.readings.map((r) => evalReading(r))).alerts.find((a) => a.kind === 'cold-chain-excursion');
  if (alert === undefined) throw new Error('the probe samples should give an excursion');
  const bundle = cloneBundle(built.bundle);
  bundle.alert = JSON.parse(JSON.stringify(alert)) as unknown;
  return bundle;
}

/**
 * An evidence set (FORMAT.md §7.2, compact members): a custody hand-over to wang on the yard's gateway and the
 * preparation by sun on the lab's, the coal-lab rule's CUSTODY_HOLDER_MISMATCH naming a reading of each. Not
 * anchored on the test chain: verified offline, where check 9 runs in full over both devices.
 */
export async function custodySet(): Promise<Uint8Array> {
  const H = 3_600_000;
  const t0 = Date.UTC(2026, 10, 20, 0, 0, 0);
  const at = (h: number): string => `2026-11-20T${String(8 + h).padStart(2, '0')}:00:00+08:00`;
  const events = (f: Record<string, string>) => Object.entries(f).map(([code, value]) => ({ code, kind: 'custody', value, ...(code === 'weight' ? { unit: 'g' } : {}) }));
  const yard = await buildTestBundle({
    deviceId: 'gw-yard', deviceSigner: testSigner('yard'), count: 3, startTimeMs: t0, intervalMs: H, rpc: null,
    contentOf: (s) =>
      s === 1 ? { sensor: 'custody', meas: events({ step: 'sampling', at: at(0), by: 'li', code: 'S1', weight: '1000' }) }
      : s === 2 ? { sensor: 'custody', meas: events({ step: 'handover', at: at(1), by: 'li', to: 'wang', code: 'S1', weight: '995' }) }
      : undefined,
  });
  const lab = await buildTestBundle({
    deviceId: 'gw-lab', deviceSigner: testSigner('lab'), firstBatchId: 10, count: 3, startTimeMs: t0 + 2 * H, intervalMs: H, rpc: null,
    contentOf: (s) => (s === 1 ? { sensor: 'custody', meas: events({ step: 'preparation', at: at(2), by: 'sun', code: 'P1', fromCode: 'S1', weight: '100' }) } : undefined),
  });
  const rules = parseRuleSet({ format: 'stele-rules/1', rules: [{ id: 'coal', type: 'coal-lab', standard: 'GB/T 474', version: '1', params: {} }] });
  const alert = evaluateRuleSet(rules, [...yard.readings, ...lab.readings].map((r) => evalReading(r))).alerts.find((a) => a.subject === 'P1');
  if (alert === undefined) throw new Error('the custody events should give a break at P1');
  const set = { format: EVIDENCE_SET_FORMAT, createdAt: '2026-11-21T00:00:00.000Z', alert, bundles: [yard, lab].map((b) => bundleToJson(b.bundle, { form: 2 })) };
  return new TextEncoder().encode(`${JSON.stringify(set, null, 2)}\n`);
}

/** The alert bundle with the alert's peak edited: ALERT_MISMATCH_ERROR. */
export function editedAlertValue(bundle: EvidenceBundle): Variant {
  const b = cloneBundle(bundle);
  (b.alert as { values: Record<string, unknown> }).values.peak = '12.5';
  return { name: 'edited alert value', code: 'ALERT_MISMATCH_ERROR', bytes: encodeBundle(b, { form: 2 }) };
}

type Json = Record<string, any>;
const jsonBytes = (j: Json): Uint8Array => new TextEncoder().encode(`${JSON.stringify(j, null, 2)}\n`);
const flipB64 = (text: string, index: number): string => toBase64Url(flipByte(fromBase64Url(text), index));

/**
 * Tampered copies of a valid anchored bundle, one per kind of attack the page must catch, in the compact form
 * (FORMAT.md §7.1, what ingest exports) or in v1. A change the compact form carries differently (a statement
 * byte, a proof node, the batch's receipt signature) is made on its JSON; the code expected is the same in both.
 */
export function tamperedVariants(valid: EvidenceBundle, form: 1 | 2 = 2): Variant[] {
  const out: Variant[] = [];
  const add = (name: string, code: VerifyCode | VerifyCode[], edit: (b: EvidenceBundle) => void, compact?: (j: Json, b: EvidenceBundle) => void): void => {
    const b = cloneBundle(valid);
    if (form === 2 && compact !== undefined) {
      const j = bundleToJson(b, { form: 2 });
      compact(j, b);
      out.push({ name, code, bytes: jsonBytes(j) });
      return;
    }
    edit(b);
    out.push({ name, code, bytes: encodeBundle(b, { form }) });
  };
  const entryAt = (j: Json, seq: number): Json => (j.entries as Json[]).find((e) => e.seq === seq)!;
  add('altered value', 'DIGEST_MISMATCH_ERROR', (b) => {
    const e = entryOf(b, 5);
    const r = decodeReading(e.reading!);
    r.meas[0]!.value = String(Number(r.meas[0]!.value) + 10);
    e.reading = encodeReading(r);
  });
  add('removed reading', 'SEQUENCE_GAP_ERROR', (b) => {
    b.entries = b.entries.filter((e) => e.seq !== 7);
  });
  add('forged signature', 'SIGNATURE_ERROR', (b) => {
    const e = entryOf(b, 3);
    e.statement = tamper.signatureByte(e.statement);
  }, (j) => {
    const e = entryAt(j, 3);
    e.statement = flipB64(e.statement, -1);
  });
  add('altered proof', 'INCLUSION_PROOF_ERROR', (b) => {
    const e = entryOf(b, 4);
    e.receipt = tamper.proofNode(e.receipt);
  }, (j, b) => {
    // The bundle's batches are whole (no nodes): start the window at seq 2, so that batch 1 carries leaf 0 as a node.
    b.entries = b.entries.filter((e) => e.seq !== 1);
    b.window = { ...b.window, firstSeq: 2 };
    const cut = bundleToJson(b, { form: 2 }) as Json;
    cut.batches[0].nodes[0] = flipB64(cut.batches[0].nodes[0], 0);
    for (const k of Object.keys(j)) delete j[k];
    Object.assign(j, cut);
  });
  add('altered root', 'ANCHOR_MISMATCH_ERROR', (b) => {
    b.batches[0]!.root = flipByte(b.batches[0]!.root, 0);
  });
  add('forged receipt signature', 'RECEIPT_SIGNATURE_ERROR', (b) => {
    const e = entryOf(b, 2);
    e.receipt = tamper.signatureByte(e.receipt);
  }, (j) => {
    j.batches[0].receipt.signature = flipB64(j.batches[0].receipt.signature, -1);
  });
  add('rogue ingest key (receipts not re-signed)', ['UNTRUSTED_INGEST_KEY_ERROR', 'RECEIPT_SIGNATURE_ERROR'], (b) => {
    const rogue = testSigner('rogue-ingest');
    b.ingest = { ...b.ingest, publicKey: rogue.publicKey, kid: keyIdOf(rogue.publicKey) };
  });
  add('edited device record (another key)', ['DEVICE_RECORD_MISMATCH_ERROR', 'UNKNOWN_KEY_ERROR'], (b) => {
    const other = testSigner('other-device');
    b.device = { ...b.device, publicKey: other.publicKey, kid: keyIdOf(other.publicKey) };
  });
  // A kid that is not the key's id fails the one enrolment-record check (core/src/enrolment) already when the bundle
  // is read: the record is not well-formed, named at device.kid.
  add('edited device record (key id)', 'BUNDLE_FORMAT_ERROR', (b) => {
    b.device = { ...b.device, kid: flipByte(b.device.kid, 0) };
  });
  add('untrusted anchor (another contract)', 'UNTRUSTED_ANCHOR_ERROR', (b) => {
    for (const batch of b.batches) batch.anchor = { ...batch.anchor!, contract: `0x${'42'.repeat(20)}` };
  });
  add('altered transaction hash', 'ANCHOR_NOT_FOUND_ERROR', (b) => {
    const a = b.batches[0]!.anchor!;
    b.batches[0]!.anchor = { ...a, txHash: `0x${toHex(flipByte(Uint8Array.from(Buffer.from(a.txHash.slice(2), 'hex')), 31))}` };
  });
  const bytes = encodeBundle(valid, { form });
  out.push({ name: 'truncated file', code: 'BUNDLE_FORMAT_ERROR', bytes: bytes.slice(0, Math.floor(bytes.length / 2)) });
  return out;
}

/** A bundle whose free-text fields carry markup: the page must show it as text. */
export const HOSTILE_TEXT = {
  deviceId: 'gw-<img src=x id=pwn-img onerror="window.__pwned=1">',
  issuer: 'ingest-<script id="pwn-script">window.__pwned=2</script>',
  site: '<svg onload="window.__pwned=3"><a href="javascript:window.__pwned=4">site</a></svg>',
};

export { utf8 };
