/**
 * test/vectors/ (docs/FORMAT.md worked examples): regenerating them gives the checked-in bytes, every bundle
 * vector gives its expected verdict through core's verifyBundle, and the smaller vectors check out with core's
 * own decoders and verifiers (and, for the anchor log, core's JSON-RPC reader against viem's encoding).
 */
import { createHmac } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { p256 } from '@noble/curves/nist.js';
import { describe, expect, it } from 'vitest';
import {
  checkConfirmation,
  ANCHORED_EVENT_TOPIC,
  AnchorError,
  decodeCbor,
  decodeReading,
  fromHex,
  hashLeaf,
  parseBundleBytes,
  parseReceipt,
  parseStatement,
  readAnchor,
  readingDigest,
  rootFromInclusionProof,
  toHex,
  utf8,
  verifyBundle,
  verifyBundleBytes,
  verifyConsistency,
  verifyEs256,
  verifyReceipt,
  verifyStatementSignature,
  VERIFY_CODES,
  type AnchorFacts,
  type AnchorReader,
  type Verdict,
  type VerifyCode,
} from '@stele/core';
import { loadTrustPolicy, TrustPolicyError, type TrustPolicy } from '@stele/core/trust';
import { generateVectors, VECTORS_DIR } from './generate-vectors.ts';
import { checkMqttNotice, checkWebhookRequest } from '@stele/ingest';
import { evaluateRuleSet, parseReadingLines, parseRuleSet } from '@stele/core/alerts';
import { repoRoot } from './shared.ts';

const generated = await generateVectors();

function readVector<T = Record<string, unknown>>(name: string): T {
  return JSON.parse(readFileSync(resolve(VECTORS_DIR, name), 'utf8')) as T;
}

function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? listFiles(resolve(dir, d.name)) : [relative(VECTORS_DIR, resolve(dir, d.name))],
  );
}

function codesOf(verdict: Verdict): VerifyCode[] {
  const seen = new Set(verdict.checks.flatMap((c) => c.failures.map((f) => f.code)));
  return VERIFY_CODES.filter((c) => seen.has(c));
}

/** A chain double answering with the vector's facts; unknown batch -> ANCHOR_NOT_FOUND (as readAnchor would). */
function chainReader(chain: AnchorFacts[]): AnchorReader {
  return async (_ref, batchId) => {
    const facts = chain.find((f) => f.batchId === batchId);
    if (facts === undefined) throw new AnchorError('ANCHOR_NOT_FOUND', `no anchor for batch ${batchId}`);
    return { ...facts };
  };
}

describe('test/vectors', () => {
  it('regenerates byte for byte (npm run vectors)', () => {
    const onDisk = listFiles(VECTORS_DIR).filter((f) => f !== 'SOURCE.md').sort();
    expect(onDisk).toEqual([...generated.keys()].sort());
    for (const [name, contents] of generated) {
      expect(readFileSync(resolve(VECTORS_DIR, name), 'utf8'), name).toBe(contents);
    }
  });

  it('SOURCE.md names every vector file', () => {
    const source = readFileSync(resolve(VECTORS_DIR, 'SOURCE.md'), 'utf8');
    for (const name of generated.keys()) {
      const base = name.replace(/^bundles\//, '').replace(/\.(bundle|expected)\.json$/, '');
      expect(source.includes(base), name).toBe(true);
    }
  });

  it('docs/FORMAT.md carries the annotated dumps exactly as generated', () => {
    const format = readFileSync(resolve(repoRoot, 'docs', 'FORMAT.md'), 'utf8');
    const reading = readVector<{ readings: { annotated: string[] }[] }>('reading.json');
    const statement = readVector<{ statementAnnotated: string[]; sigStructureAnnotated: string[] }>('statement.json');
    const receipt = readVector<{ receiptAnnotated: string[] }>('receipt.json');
    const mqtt = readVector<{ statementFull: { annotated: string[] } }>('mqtt.json');
    const outbox = readVector<{ records: { annotated: string[] }[] }>('outbox.json');
    const lifecycle = readVector<{ rotation: { statementAnnotated: string[] } }>('lifecycle.json');
    const deviceBatch = readVector<{ statementOfSeq3Annotated: string[] }>('device-batch.json');
    const confirmation = readVector<{ valid: { annotated: string[] }[]; payloadAnnotated: string[] }>('confirmation.json');
    for (const [what, lines] of [
      ['reading seq 1', reading.readings[0]!.annotated],
      ['statement', statement.statementAnnotated],
      ['Sig_structure', statement.sigStructureAnnotated],
      ['receipt', receipt.receiptAnnotated],
      ['MQTT statement message', mqtt.statementFull.annotated],
      ['outbox entry', outbox.records[0]!.annotated],
      ['lifecycle rotation statement', lifecycle.rotation.statementAnnotated],
      ['device-batch statement of seq 3', deviceBatch.statementOfSeq3Annotated],
      ['confirmation', confirmation.valid[0]!.annotated],
      ['confirmation payload', confirmation.payloadAnnotated],
    ] as const) {
      expect(format.includes(lines.join('\n')), what).toBe(true);
    }
  });
});

describe('ES256 signing in the generator', () => {
  it('is RFC 6979 deterministic (RFC 6979 §A.2.5, P-256, SHA-256, message "sample")', () => {
    const x = fromHex('c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721');
    const sig = p256.sign(utf8('sample'), x, { prehash: true, lowS: false, format: 'compact' });
    expect(toHex(sig)).toBe(
      'efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716' +
        'f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8',
    );
  });
});

describe('reading, statement, batch, receipt and anchor vectors', () => {
  const keys = readVector<{ device: { publicKey: string; kid: string }; ingest: { publicKey: string; kid: string } }>('keys.json');
  const devicePub = fromHex(keys.device.publicKey);
  const ingestPub = fromHex(keys.ingest.publicKey);

  it('readings decode to their JSON view and hash to their digest', () => {
    const v = readVector<{ readings: { json: Record<string, unknown>; cbor: string; digest: string }[] }>('reading.json');
    for (const r of v.readings) {
      const reading = decodeReading(fromHex(r.cbor));
      expect(reading.seq).toBe(r.json.seq);
      expect(toHex(reading.prev)).toBe(r.json.prev);
      expect(reading.meas).toEqual(r.json.meas);
      expect(toHex(readingDigest(fromHex(r.cbor)))).toBe(r.digest);
    }
    // FORMAT.md §2.3: the instrument's time and record type travel beside the gateway time
    const it = readVector<{ instrumentTime: { json: { itime: string; rtype: string }; cbor: string; digest: string; annotated: string[] } }>('reading.json').instrumentTime;
    const withTime = decodeReading(fromHex(it.cbor));
    expect([withTime.itime, withTime.rtype]).toEqual([it.json.itime, it.json.rtype]);
    expect(toHex(readingDigest(fromHex(it.cbor)))).toBe(it.digest);
    expect(readFileSync(resolve(repoRoot, 'docs', 'FORMAT.md'), 'utf8').includes(it.annotated.join('\n'))).toBe(true);
  });

  it('the statement parses, verifies, and its leaf hash is SHA-256(0x00 || statement)', async () => {
    const v = readVector<{ statement: string; sigStructure: string; signature: string; leafHash: string; protectedHeader: string; kid: string }>(
      'statement.json',
    );
    const st = parseStatement(fromHex(v.statement));
    expect(toHex(st.protectedBytes)).toBe(v.protectedHeader);
    expect(toHex(st.toBeSigned)).toBe(v.sigStructure);
    expect(toHex(st.kid)).toBe(keys.device.kid);
    expect(await verifyStatementSignature(st, devicePub)).toBe(true);
    expect(await verifyEs256(devicePub, fromHex(v.sigStructure), fromHex(v.signature))).toBe(true);
    expect(toHex(hashLeaf(fromHex(v.statement)))).toBe(v.leafHash);
  });

  it('every inclusion proof of the five-leaf batch leads to its root; consistency proofs hold', () => {
    const v = readVector<{
      root: string;
      leaves: { leafHash: string }[];
      inclusionProofs: { treeSize: number; leafIndex: number; path: string[] }[];
      consistencyProofs: { oldSize: number; oldRoot: string; newSize: number; proof: string[] }[];
    }>('batch.json');
    v.inclusionProofs.forEach((p, i) => {
      const root = rootFromInclusionProof(p.leafIndex, p.treeSize, fromHex(v.leaves[i]!.leafHash), p.path.map(fromHex));
      expect(toHex(root)).toBe(v.root);
    });
    for (const c of v.consistencyProofs) {
      expect(() => verifyConsistency(c.oldSize, c.newSize, fromHex(c.oldRoot), fromHex(v.root), c.proof.map(fromHex))).not.toThrow();
    }
  });

  it('every receipt verifies with the ingest key over the root its proof leads to', async () => {
    const v = readVector<{ root: string; receipts: { receipt: string }[]; batch2: { root: string; receipts: { receipt: string }[] } }>('receipt.json');
    const batch = readVector<{ leaves: { leafHash: string }[] }>('batch.json');
    for (const [i, r] of v.receipts.entries()) {
      const parsed = parseReceipt(fromHex(r.receipt));
      expect(toHex(parsed.kid)).toBe(keys.ingest.kid);
      const { root, signatureValid } = await verifyReceipt(parsed, fromHex(batch.leaves[i]!.leafHash), ingestPub);
      expect(toHex(root)).toBe(v.root);
      expect(signatureValid).toBe(true);
    }
    const st = readVector<{ statements: { seq: number; statement: string }[] }>('statement.json').statements.find((s) => s.seq === 6)!;
    const parsed = parseReceipt(fromHex(v.batch2.receipts[0]!.receipt));
    const { root, signatureValid } = await verifyReceipt(parsed, hashLeaf(fromHex(st.statement)), ingestPub);
    expect(toHex(root)).toBe(v.batch2.root);
    expect(signatureValid).toBe(true);
  });

  it("core's readAnchor reads the viem-encoded Anchored log back as the vector's facts", async () => {
    const v = readVector<{
      anchors: {
        batchId: number;
        log: { address: string; topics: string[]; data: string; removed: boolean };
        ref: { chainId: number; contract: string; txHash: string; blockNumber: number; blockTime: number };
        facts: AnchorFacts;
      }[];
    }>('anchor.json');
    for (const a of v.anchors) {
      expect(a.log.topics[0]).toBe(ANCHORED_EVENT_TOPIC);
      const blockHash = `0x${'ab'.repeat(32)}`;
      const fetchDouble = (async (_url: unknown, init?: { body?: unknown }) => {
        const req = JSON.parse(String(init?.body)) as { id: number; method: string };
        const result =
          req.method === 'eth_chainId'
            ? `0x${a.ref.chainId.toString(16)}`
            : req.method === 'eth_getTransactionReceipt'
              ? { status: '0x1', blockNumber: `0x${a.ref.blockNumber.toString(16)}`, blockHash, logs: [a.log] }
              : { hash: blockHash, timestamp: `0x${a.facts.blockTime.toString(16)}` };
        return new Response(JSON.stringify({ jsonrpc: '2.0', id: req.id, result }));
      }) as typeof fetch;
      const facts = await readAnchor('http://127.0.0.1:1', a.ref, a.batchId, { fetch: fetchDouble });
      expect(facts).toEqual(a.facts);
    }
  });
});

describe('device-level batch vector', () => {
  const keys = readVector<{ device: { publicKey: string } }>('keys.json');
  const v = readVector<{
    first: number;
    count: number;
    batchRoot: string;
    batchLeafHashes: string[];
    readingDigests: string[];
    statements: { seq: number; index: number; statement: string; leafHash: string }[];
  }>('device-batch.json');

  it('every statement parses to its seq and index, leads to the batch root, and verifies with the device key', async () => {
    expect(v.statements).toHaveLength(v.count);
    for (const s of v.statements) {
      const st = parseStatement(fromHex(s.statement));
      expect(st.seq).toBe(s.seq);
      expect(st.batch).toMatchObject({ first: v.first, count: v.count, index: s.index });
      expect(toHex(st.payload)).toBe(v.readingDigests[s.index]);
      expect(toHex(hashLeaf(st.payload))).toBe(v.batchLeafHashes[s.index]);
      expect(toHex(st.batch!.root)).toBe(v.batchRoot);
      expect(toHex(hashLeaf(fromHex(s.statement)))).toBe(s.leafHash);
      expect(await verifyStatementSignature(st, fromHex(keys.device.publicKey))).toBe(true);
    }
  });
});

describe('MQTT and outbox vectors', () => {
  it('the alert notice (FORMAT.md §15.9): its MAC recomputed from the text of the spec, the MQTT payload and webhook headers checked as a receiver does', () => {
    const n = readVector<{ secret: string; t: number; body: string; mac: string; webhookHeaders: Record<string, string>; mqtt: { topic: string; payload: string } }>('alert-notice.json');
    const mac = createHmac('sha256', Buffer.from(n.secret, 'utf8')).update(`stele-alert-notice/1\n${n.t}\n${n.body}`).digest('hex');
    expect(n.mac).toBe(mac);
    expect(n.webhookHeaders['stele-signature']).toBe(`v1=${mac}`);
    const secret = new TextEncoder().encode(n.secret);
    const body = new TextEncoder().encode(n.body);
    const payload = decodeCbor(fromHex(n.mqtt.payload)) as Map<string, unknown>;
    expect([...payload.keys()]).toEqual(['t', 'mac', 'body']);
    expect(checkMqttNotice(secret, fromHex(n.mqtt.payload), n.t)).toMatchObject({ ok: true, t: n.t });
    expect(checkWebhookRequest(secret, n.webhookHeaders, body, n.t)).toMatchObject({ ok: true });
    const edited = fromHex(n.mqtt.payload);
    edited[edited.length - 3]! ^= 1;
    expect(checkMqttNotice(secret, edited, n.t)).toMatchObject({ ok: false });
    const bundleAlert = (JSON.parse(readFileSync(resolve(VECTORS_DIR, 'bundles/alert.bundle.json'), 'utf8')) as { alert: unknown }).alert;
    expect((JSON.parse(n.body) as { alert: unknown }).alert).toEqual(bundleAlert);
  });

  it('the statement envelopes carry the statement (and reading) bytes; the ack is the stored confirmation; rejects decode to their JSON', () => {
    const m = readVector<{
      statementFull: { payload: string };
      statementHashOnly: { payload: string };
      ack: { payload: string };
      reject: { json: unknown; payload: string };
    }>('mqtt.json');
    const st = readVector<{ statement: string }>('statement.json').statement;
    const reading = readVector<{ readings: { cbor: string }[] }>('reading.json').readings[0]!.cbor;
    const full = decodeCbor(fromHex(m.statementFull.payload)) as Map<string, Uint8Array>;
    expect([...full.keys()]).toEqual(['reading', 'statement']);
    expect(toHex(full.get('statement')!)).toBe(st);
    expect(toHex(full.get('reading')!)).toBe(reading);
    const hashOnly = decodeCbor(fromHex(m.statementHashOnly.payload)) as Map<string, Uint8Array>;
    expect([...hashOnly.keys()]).toEqual(['statement']);
    expect(m.ack.payload).toBe(readVector<{ valid: { cose: string }[] }>('confirmation.json').valid[0]!.cose);
    expect(Object.fromEntries(decodeCbor(fromHex(m.reject.payload)) as Map<string, unknown>)).toEqual(m.reject.json);
  });

  it('confirmations: valid ones verify under the pinned key, each invalid one fails with its wantErr, and the gateway ignores the rest', async () => {
    const c = readVector<{
      ingestPublicKey: string;
      device: string;
      valid: { json: { type: string; device: string; upTo: number; head: string; iat: number }; cose: string }[];
      invalid: { cose: string; wantErr: string }[];
      gatewayIgnores: { name: string; cose: string; wantErr: string }[];
    }>('confirmation.json');
    const expect_ = { publicKey: fromHex(c.ingestPublicKey), device: c.device };
    for (const v of c.valid) {
      const got = await checkConfirmation(fromHex(v.cose), expect_);
      expect({ type: got.type, device: got.device, upTo: got.upTo, head: toHex(got.head), iat: got.issuedAt }).toEqual(v.json);
    }
    for (const v of c.invalid) await expect(checkConfirmation(fromHex(v.cose), expect_)).rejects.toMatchObject({ code: v.wantErr });
    // the gateway holds seq 1..6 of reading.json: the head check (the outbox's part) refuses these
    const readings = readVector<{ readings: { json: { seq: number }; digest: string }[] }>('reading.json').readings;
    for (const v of c.gatewayIgnores) {
      const got = await checkConfirmation(fromHex(v.cose), expect_);
      const held = readings.find((r) => r.json.seq === got.upTo)?.digest;
      expect(held === toHex(got.head), v.name).toBe(false);
    }
  });

  it('the outbox head names the digest of reading seq 6', () => {
    const o = readVector<{ records: { key: string; value: string }[] }>('outbox.json');
    const head = decodeCbor(fromHex(o.records.find((r) => r.key === 'm!head')!.value)) as Map<string, unknown>;
    const seq6 = readVector<{ readings: { json: { seq: number }; digest: string }[] }>('reading.json').readings.find((r) => r.json.seq === 6)!;
    expect(head.get('seq')).toBe(6);
    expect(toHex(head.get('digest') as Uint8Array)).toBe(seq6.digest);
  });
});

interface Expected {
  bundle: string;
  chain: AnchorFacts[];
  expected: { state: string; codes: VerifyCode[] };
  expectedOffline: { state: string; codes: VerifyCode[] };
}

interface TrustVectors {
  authority: { fingerprint: string };
  policy: string;
  cases: { name: string; policy: string; minVersion?: number; now: string; expect: { load?: string; bundle?: string; state?: string; codes?: VerifyCode[]; trustCode?: string; skipped?: string[] } }[];
}
const trustVectors = readVector<TrustVectors>('trust.json');
/** The vector authority's policy: bundle vectors are judged under it (FORMAT.md §14), as an officer would. */
const vectorPolicy: TrustPolicy = await loadTrustPolicy(fromHex(trustVectors.policy), trustVectors.authority.fingerprint);
const NOW = Date.parse('2026-12-01T00:00:00Z');

describe.each(trustVectors.cases.map((c) => [c.name, c] as const))('trust policy vector %s', (_name, c) => {
  it(c.expect.load !== undefined ? `is refused with ${c.expect.load}` : `gives ${c.expect.state} ${(c.expect.codes ?? []).join(', ') || '(no failure)'} for bundle ${c.expect.bundle}`, async () => {
    const load = loadTrustPolicy(fromHex(c.policy), trustVectors.authority.fingerprint, c.minVersion === undefined ? {} : { minVersion: c.minVersion });
    if (c.expect.load !== undefined) {
      await expect(load).rejects.toSatisfy((e: unknown) => e instanceof TrustPolicyError && e.code === c.expect.load);
      return;
    }
    const policy = await load;
    expect(policy.skipped.map((s) => s.path)).toEqual(c.expect.skipped ?? []);
    const exp = readVector<Expected>(`bundles/${c.expect.bundle}.expected.json`);
    const bytes = new Uint8Array(readFileSync(resolve(VECTORS_DIR, 'bundles', exp.bundle)));
    const verdict = await verifyBundle(parseBundleBytes(bytes), { anchorReader: chainReader(exp.chain), trust: policy, now: Date.parse(c.now) });
    expect({ state: verdict.state, codes: codesOf(verdict) }).toEqual({ state: c.expect.state, codes: c.expect.codes });
    if (c.expect.trustCode !== undefined) expect(verdict.checks.find((k) => k.id === 'trust')!.code).toBe(c.expect.trustCode);
  });
});

const bundleNames = [...generated.keys()].filter((n) => n.endsWith('.expected.json')).map((n) => n.slice('bundles/'.length, -'.expected.json'.length));

describe.each(bundleNames)('bundle vector %s', (name) => {
  const exp = readVector<Expected>(`bundles/${name}.expected.json`);
  const bytes = new Uint8Array(readFileSync(resolve(VECTORS_DIR, 'bundles', exp.bundle)));

  // verifyBundleBytes: the door the CLI and the page use, which reads evidence sets (FORMAT.md §7.2) too.
  it(`gives ${exp.expected.state} ${exp.expected.codes.join(', ') || '(no failure)'} with the chain's facts`, async () => {
    const { verdict } = await verifyBundleBytes(bytes, { anchorReader: chainReader(exp.chain), trust: vectorPolicy, now: NOW });
    expect({ state: verdict.state, codes: codesOf(verdict) }).toEqual(exp.expected);
  });

  it(`gives ${exp.expectedOffline.state} ${exp.expectedOffline.codes.join(', ') || '(no failure)'} offline`, async () => {
    const { verdict } = await verifyBundleBytes(bytes, { trust: vectorPolicy, now: NOW });
    expect({ state: verdict.state, codes: codesOf(verdict) }).toEqual(exp.expectedOffline);
  });
});

describe('alert vectors (FORMAT.md §15, alerts.json)', () => {
  const v = readVector<{ ruleSet: unknown; readings: string[]; atIso: string; expected: { alerts: { kind: string; values: Record<string, unknown>; inputs: { corrected?: string; value?: string; o2Used?: string }[] }[] } }>('alerts.json');

  it('the engine gives exactly the expected aggregates and alerts from the JSON lines', () => {
    const readings = parseReadingLines(v.readings.join('\n'));
    expect(JSON.parse(JSON.stringify(evaluateRuleSet(parseRuleSet(v.ruleSet), readings, { at: Date.parse(v.atIso) })))).toEqual(v.expected);
  });

  it('the hourly mean follows from the listed inputs by integer arithmetic (an independent recomputation)', () => {
    const a = v.expected.alerts.find((x) => x.kind === 'emission-exceedance')!;
    // each corrected value: C × 15 / (21 − O2) rounded half to even to 6 decimals, redone in integers of 10^-6
    for (const i of a.inputs) {
      const scaled = (t: string) => BigInt(t.replace('.', '')) * 10n ** BigInt(6 - (t.split('.')[1]?.length ?? 0));
      const num = scaled(i.value!) * 15n * 10n ** 6n; // C × 15, in 10^-12
      const den = 21n * 10n ** 6n - scaled(i.o2Used!); // (21 − O2), in 10^-6
      let q = num / den;
      const r = (num % den) * 2n;
      if (r > den || (r === den && q % 2n === 1n)) q += 1n;
      expect(q.toString().replace(/(\d{6})$/, '.$1')).toBe(i.corrected);
    }
    const sum = a.inputs.reduce((s, i) => s + BigInt(i.corrected!.replace('.', '')), 0n); // 10^-6
    const k = BigInt(a.inputs.length);
    const den = k * 100n; // mean in 10^-4: sum / (k × 100)
    let q = sum / den;
    const r = (sum % den) * 2n;
    if (r > den || (r === den && q % 2n === 1n)) q += 1n;
    expect(q.toString().replace(/(\d{4})$/, '.$1')).toBe(a.values.mean);
  });
});
