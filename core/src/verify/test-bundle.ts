/**
 * Test support (not for production use): builds evidence bundles the way ingest would, from core functions and
 * an in-memory @noble P-256 signer, with knobs for each kind of tampering the verifier must catch. Exported for
 * other packages' tests (the web page, the CLI, the simulator).
 *
 * `anchorReader` of the result is a test double for the chain only: it answers with the facts of the batches
 * as built (before any tampering), like a chain that recorded the genuine roots.
 */
import { p256 } from '@noble/curves/nist.js';
import type { AnchorFacts, AnchorRef } from '../anchor/evm-reader.ts';
import { ANCHORED_EVENT_TOPIC, AnchorError } from '../anchor/evm-reader.ts';
import type { BundleBatch, BundleEntry, BundleLifecycleEntry, EvidenceBundle } from '../bundle.ts';
import { BUNDLE_FORMAT, encodeBundle, parseBundle } from '../bundle.ts';
import { toHex, utf8 } from '../bytes.ts';
import {
  encodeReceipt,
  encodeSign1,
  encodeStatementProtectedHeader,
  parseReceipt,
  sigStructure1,
  HEADER_VDP,
  signBatchRoot,
  signStatement,
  VDP_INCLUSION_PROOFS,
} from '../cose/index.ts';
import { encodeCbor } from '../cbor.ts';
import { sha256 } from '../hash.ts';
import { keyIdOf } from '../keys.ts';
import { encodeLifecycleBody, signLifecycleStatement, type LifecycleBody } from '../lifecycle/index.ts';
import type { Reading } from '../reading.ts';
import { decodeReading, encodeReading, GENESIS_PREV, readingDigest } from '../reading.ts';
import { hashLeaf, inclusionProof, rootFromLeafHashes } from '../rfc9162/index.ts';
import type { KeyBackend, Signer } from '../signer.ts';
import { completePolicyDraft, draftTrustPolicy } from '../trust/draft.ts';
import { loadTrustPolicy, signTrustPolicy, type TrustPolicy } from '../trust/policy.ts';
import type { AnchorReader } from './verify.ts';

/** A deterministic in-memory ES256 signer: secret key = SHA-256(seed) (reduced into range by noble). */
export function testSigner(seed: string, backend: KeyBackend = 'software'): Signer {
  let secretKey = sha256(utf8(`stele-test-key:${seed}`));
  // A 32-byte digest is a valid P-256 secret key except with negligible probability; re-hash until it is.
  while (!p256.utils.isValidSecretKey(secretKey)) secretKey = sha256(secretKey);
  const publicKey = p256.getPublicKey(secretKey, false);
  return {
    algorithm: 'ES256',
    keyId: keyIdOf(publicKey),
    publicKey,
    backend,
    sign: async (message) => p256.sign(message, secretKey, { prehash: true, format: 'compact' }),
  };
}

export interface TestBundleOptions {
  /** Default `gw-test-0001`. */
  deviceId?: string;
  /** Readings with seq 1..count. Default 10. */
  count?: number;
  /** Entries per batch, in order; the last batch takes the rest. Default: two batches, [ceil(n/2), rest]. */
  batchSizes?: number[];
  /** Device time of seq 1, ms. Default 2026-11-20T06:00:00Z. */
  startTimeMs?: number;
  /** Default 60 000. */
  intervalMs?: number;
  /** Device time of a reading, overriding start + interval. */
  timeOf?: (seq: number) => number | undefined;
  /** Clock state of every reading. Default `{synced: true, source: 'sim'}`. */
  clockSynced?: boolean;
  /** Data flag of the measurement of `seq`; undefined leaves the measurement without a flag. Default: 'N' for all. */
  flagOf?: (seq: number) => string | undefined;
  /** Readings whose body is left out (hash-only). */
  hashOnly?: boolean | ((seq: number) => boolean);
  /** The enrolled device key. Default testSigner('device'). */
  deviceSigner?: Signer;
  /** The key that actually signs `seq` (default the enrolled one). */
  signerOf?: (seq: number) => Signer | undefined;
  /** A different `prev` to sign into `seq` (the real one is passed in). */
  prevOf?: (seq: number, realPrev: Uint8Array) => Uint8Array | undefined;
  /**
   * A `prev` to put in the statement header of `seq` instead of the reading's (a header that does not match its
   * body). The real chain prev is passed in, so `prevOf` + `headerPrevOf: (s, real) => real` breaks only the body.
   */
  headerPrevOf?: (seq: number, realPrev: Uint8Array) => Uint8Array | undefined;
  /** The content of reading `seq` (sensor, time, measurements, instrument time and record type), replacing the default. */
  contentOf?: (seq: number) => Partial<Pick<Reading, 'sensor' | 'time' | 'meas' | 'itime' | 'rtype'>> | undefined;
  /** Seqs that get a second, different signed reading (a fork), placed right after the first. */
  forks?: number[];
  /**
   * Runs of readings signed as device-level batches (FORMAT.md §3.1), one signature per run (by the key that
   * signs `first`). The runs must not hold forks, lifecycle statements or `headerPrevOf` seqs.
   */
  deviceBatches?: { first: number; count: number }[];
  /** Default testSigner('ingest'). */
  ingestSigner?: Signer;
  /** Default 'stele-ingest-test'. */
  issuer?: string;
  /** Window claimed; default 1..count. Entries outside it are dropped. */
  window?: { firstSeq: number; lastSeq: number };
  /** The first batch's id (default 1): bundles of several devices from one ingest have distinct batch ids. */
  firstBatchId?: number;
  /** Batches left unanchored (no `anchor`). */
  unanchored?: number[];
  /** Default 31337. */
  chainId?: number;
  /** Default 'http://127.0.0.1:8545'; null leaves `rpc` out. */
  rpc?: string | null;
  /** Block time of batch i (1-based) in seconds. Default: 60 s after the last reading of the batch. */
  blockTimeOf?: (batchId: number, lastReadingTimeMs: number) => number;
  /**
   * Carry lifecycle data (FORMAT.md §13): an enrolment statement for the device key (ingest-signed, first leaf of
   * batch 1), plus the rotations, reinstalls and revocations below. Default false (a bundle without `lifecycle`);
   * implied by any of the three lists.
   */
  lifecycle?: boolean;
  /** Seqs that are key rotations: signed by the key valid then, announcing `to`, which signs later readings. */
  rotations?: { seq: number; to: Signer }[];
  /** Seqs that are agent reinstalls (signed by the key valid then). */
  reinstalls?: number[];
  /** Revocations by ingest (last leaves of the last batch): `kid` default the enrolled device key. */
  revocations?: { after: number; kid?: Uint8Array; reason?: string }[];
  /** A signer other than the ingest key for the lifecycle statements ingest signs (a forgery). */
  lifecycleIngestSigner?: Signer;
}

export interface TestBundle {
  bundle: EvidenceBundle;
  /** The bundle file bytes (`encodeBundle`). */
  bytes: Uint8Array;
  device: Signer;
  ingest: Signer;
  /** Every reading signed, in entry order (forks included). */
  readings: Reading[];
  /** The genuine chain facts per batch id, as anchored at build time. */
  chain: Map<number, AnchorFacts>;
  /** A chain double answering from `chain` (ANCHOR_NOT_FOUND for unknown batches). */
  anchorReader: AnchorReader;
  /** A trust policy of the test authority listing this bundle's ingest key and anchor target (FORMAT.md §14). */
  trust: TrustPolicy;
}

export interface TestPolicyOptions {
  /** Default testSigner('authority'). */
  authority?: Signer;
  /** Ingest keys to list (default: the bundle's), each with optional window and state members (ISO text). */
  ingestKeys?: { signer: Signer; issuer?: string; validFrom?: string; validUntil?: string; state?: string; compromisedAt?: string }[];
  /** Anchor targets (default: chain 31337, TEST_CONTRACT, start block 0). */
  anchors?: Record<string, unknown>[];
  version?: number;
  issuedAt?: string;
  expiresAt?: string;
  /** Change the JSON before signing (raw tests: unknown kinds, extra members). */
  edit?: (policy: Record<string, unknown>) => void;
}

/** A signed policy file of the test authority (bytes), its loaded form and the pinned fingerprint (hex). */
export async function buildTestPolicy(ingest: Signer, issuer: string, o: TestPolicyOptions = {}): Promise<{ bytes: Uint8Array; policy: TrustPolicy; fingerprint: string; authority: Signer }> {
  const authority = o.authority ?? testSigner('authority');
  const draft = draftTrustPolicy({ ingest: { publicKey: ingest.publicKey, issuer, validFrom: '2026-01-01T00:00:00Z' }, anchors: [{ chainId: 31337, contract: TEST_CONTRACT, startBlock: 0 }] });
  if (o.ingestKeys !== undefined) {
    draft.ingestKeys = o.ingestKeys.map((k) => {
      const entry = (draftTrustPolicy({ ingest: { publicKey: k.signer.publicKey, issuer: k.issuer ?? issuer, validFrom: k.validFrom ?? '2026-01-01T00:00:00Z' }, anchors: [] }).ingestKeys as Record<string, unknown>[])[0]!;
      if (k.validUntil !== undefined) entry.validUntil = k.validUntil;
      if (k.state !== undefined) entry.state = k.state;
      if (k.compromisedAt !== undefined) entry.compromisedAt = k.compromisedAt;
      return entry;
    });
  }
  if (o.anchors !== undefined) draft.anchors = o.anchors;
  let json = completePolicyDraft(draft, {
    authorityName: 'Test authority',
    authorityPublicKey: authority.publicKey,
    version: o.version ?? 1,
    issuedAt: o.issuedAt ?? '2026-01-01T00:00:00Z',
    expiresAt: o.expiresAt ?? '2099-01-01T00:00:00Z',
  });
  if (o.edit !== undefined) {
    const obj = JSON.parse(new TextDecoder().decode(json)) as Record<string, unknown>;
    o.edit(obj);
    json = new TextEncoder().encode(`${JSON.stringify(obj, null, 2)}\n`);
  }
  const bytes = await signTrustPolicy(json, authority);
  const fingerprint = toHex(authority.keyId);
  return { bytes, policy: await loadTrustPolicy(bytes, fingerprint), fingerprint, authority };
}

export const TEST_CONTRACT = '0x5fbdb2315678afecb367f032d93f642f64180aa3';
const DEFAULT_START_MS = Date.UTC(2026, 10, 20, 6, 0, 0);

/** Builds a complete, valid (unless told otherwise) evidence bundle. */
export async function buildTestBundle(options: TestBundleOptions = {}): Promise<TestBundle> {
  const deviceId = options.deviceId ?? 'gw-test-0001';
  const count = options.count ?? 10;
  const start = options.startTimeMs ?? DEFAULT_START_MS;
  const interval = options.intervalMs ?? 60_000;
  const device = options.deviceSigner ?? testSigner('device');
  const ingest = options.ingestSigner ?? testSigner('ingest');
  const issuer = options.issuer ?? 'stele-ingest-test';
  const window = options.window ?? { firstSeq: 1, lastSeq: count };
  const forks = new Set(options.forks ?? []);
  const hashOnly = (seq: number): boolean =>
    typeof options.hashOnly === 'function' ? options.hashOnly(seq) : options.hashOnly === true;

  const withLifecycle = options.lifecycle === true || options.rotations !== undefined || options.reinstalls !== undefined || options.revocations !== undefined;
  const lifecycleSigner = options.lifecycleIngestSigner ?? ingest;
  const readings: Reading[] = [];
  /** Leaves in log order: readings and chained lifecycle statements (`reading` undefined, `lifecycle` true). */
  const signed: { seq: number; reading?: Uint8Array; statement: Uint8Array; time: number; lifecycle?: boolean }[] = [];
  let prev: Uint8Array = GENESIS_PREV;
  let current = device;
  let lastTime = start;
  for (let seq = 1; seq <= count; seq++) {
    const rotation = options.rotations?.find((r) => r.seq === seq);
    if (rotation !== undefined || options.reinstalls?.includes(seq) === true) {
      const body: LifecycleBody =
        rotation !== undefined
          ? { type: 'rotation', device: deviceId, kid: rotation.to.keyId, key: rotation.to.publicKey, backend: rotation.to.backend, time: lastTime }
          : { type: 'reinstall', device: deviceId, time: lastTime };
      const statement = await signLifecycleStatement(body, options.signerOf?.(seq) ?? current, { seq, prev });
      signed.push({ seq, statement, time: lastTime, lifecycle: true });
      prev = sha256(encodeLifecycleBody(body));
      if (rotation !== undefined) current = rotation.to;
      continue;
    }
    const variants = forks.has(seq) ? 2 : 1;
    let digest: Uint8Array = prev;
    for (let v = 0; v < variants; v++) {
      const time = options.timeOf?.(seq) ?? start + (seq - 1) * interval;
      const flag = options.flagOf === undefined ? 'N' : options.flagOf(seq);
      const value = (30 + ((seq * 7) % 50) / 10 + v).toFixed(1); // a fork differs in its value
      const reading: Reading = {
        v: 1,
        device: deviceId,
        sensor: '88888880000001',
        seq,
        prev: options.prevOf?.(seq, prev) ?? prev,
        time,
        clock: { synced: options.clockSynced ?? true, source: 'sim' },
        meas: [{ code: 'a21026', kind: 'Rtd', value, unit: 'mg/m3', ...(flag === undefined ? {} : { flag }) }],
        raw: [sha256(utf8(`frame ${seq} ${v}`))],
        ...options.contentOf?.(seq),
      };
      const bytes = encodeReading(reading);
      const signer = options.signerOf?.(seq) ?? current;
      const headerPrev = options.headerPrevOf?.(seq, prev);
      const statement = headerPrev === undefined ? await signStatement(bytes, signer) : await signWithHeader(bytes, reading, headerPrev, signer);
      readings.push(reading);
      signed.push({ seq, reading: bytes, statement, time });
      if (v === 0) digest = readingDigest(bytes);
      lastTime = time;
    }
    prev = digest;
  }

  for (const run of options.deviceBatches ?? []) {
    const members = signed.filter((s) => s.lifecycle !== true && s.seq >= run.first && s.seq < run.first + run.count);
    const statements = await signDeviceBatch(members.map((m) => m.reading!), options.signerOf?.(run.first) ?? device);
    members.forEach((m, i) => (m.statement = statements[i]!));
  }

  // Lifecycle statements ingest signs: the enrolment first, revocations last (log order).
  const enrolment: typeof signed = [];
  const revocations: typeof signed = [];
  if (withLifecycle) {
    const enrolledAt = start - 86_400_000;
    enrolment.push({
      seq: 0,
      time: enrolledAt,
      lifecycle: true,
      statement: await signLifecycleStatement(
        { type: 'enrolment', device: deviceId, kid: device.keyId, key: device.publicKey, backend: device.backend, request: sha256(utf8('request')), from: 1, time: enrolledAt, site: 'test site', installer: sha256(utf8('installer')) },
        lifecycleSigner,
      ),
    });
    for (const r of options.revocations ?? []) {
      revocations.push({
        seq: 0,
        time: lastTime,
        lifecycle: true,
        statement: await signLifecycleStatement(
          { type: 'revocation', device: deviceId, kid: r.kid ?? device.keyId, after: r.after, reason: r.reason ?? 'stolen', time: lastTime },
          lifecycleSigner,
        ),
      });
    }
  }

  // Chained lifecycle statements outside the window still travel (they say which key is valid when).
  const inWindow = [...enrolment, ...signed.filter((s) => s.lifecycle === true || (s.seq >= window.firstSeq && s.seq <= window.lastSeq)), ...revocations];
  const lifecycle: BundleLifecycleEntry[] = [];
  const sizes = options.batchSizes ?? [Math.ceil(inWindow.length / 2)];
  const entries: BundleEntry[] = [];
  const batches: BundleBatch[] = [];
  const chain = new Map<number, AnchorFacts>();
  let offset = 0;
  const firstBatchId = options.firstBatchId ?? 1;
  for (let batchId = firstBatchId; offset < inWindow.length; batchId++) {
    const nth = batchId - firstBatchId + 1;
    const size = nth <= sizes.length ? Math.min(sizes[nth - 1]!, inWindow.length - offset) : inWindow.length - offset;
    const members = inWindow.slice(offset, offset + size);
    offset += size;
    const leafHashes = members.map((m) => hashLeaf(m.statement));
    const root = rootFromLeafHashes(leafHashes);
    const lastTime = Math.max(...members.map((m) => m.time));
    const blockTime = options.blockTimeOf?.(batchId, lastTime) ?? Math.floor(lastTime / 1000) + 60;
    const { protectedBytes, signature } = await signBatchRoot(
      root,
      { kid: ingest.keyId, issuer, issuedAt: blockTime - 5, batchId },
      ingest,
    );
    members.forEach((m, leafIndex) => {
      const receipt = encodeReceipt(protectedBytes, signature, {
        treeSize: size,
        leafIndex,
        path: inclusionProof(leafHashes, leafIndex),
      });
      // Plain Uint8Array copies: encoders may hand back Node Buffers, which compare unequal to parsed bytes.
      if (m.lifecycle === true) {
        lifecycle.push({ batchId, statement: Uint8Array.from(m.statement), receipt: Uint8Array.from(receipt) });
        return;
      }
      const entry: BundleEntry = { seq: m.seq, batchId, statement: Uint8Array.from(m.statement), receipt: Uint8Array.from(receipt) };
      if (!hashOnly(m.seq) && m.reading !== undefined) entry.reading = Uint8Array.from(m.reading);
      entries.push(entry);
    });
    const batch: BundleBatch = { batchId, size, root };
    if (!(options.unanchored ?? []).includes(batchId)) {
      const ref: AnchorRef = {
        chainId: options.chainId ?? 31337,
        contract: TEST_CONTRACT,
        txHash: `0x${toHex(sha256(utf8(`tx ${batchId}`)))}`,
        blockNumber: 10 + batchId,
        blockTime,
      };
      const rpc = options.rpc === undefined ? 'http://127.0.0.1:8545' : options.rpc;
      if (rpc !== null) ref.rpc = rpc;
      batch.anchor = ref;
      chain.set(batchId, {
        chainId: ref.chainId,
        contract: ref.contract,
        batchId,
        root: `0x${toHex(root)}`,
        size,
        blockNumber: ref.blockNumber,
        blockTime,
      });
    }
    batches.push(batch);
  }

  const bundle: EvidenceBundle = {
    format: BUNDLE_FORMAT,
    createdAt: new Date(start + count * interval + 3_600_000).toISOString(),
    device: {
      deviceId,
      publicKey: device.publicKey,
      kid: device.keyId,
      keyBackend: device.backend,
      enrolledAt: new Date(start - 86_400_000).toISOString(),
      site: 'test site',
    },
    ingest: { issuer, publicKey: ingest.publicKey, kid: ingest.keyId },
    window,
    entries,
    batches,
  };
  if (withLifecycle) bundle.lifecycle = lifecycle;
  const { policy: trust } = await buildTestPolicy(ingest, issuer, options.chainId !== undefined && options.chainId !== 31337 ? { anchors: [{ kind: 'evm', chainId: options.chainId, contract: TEST_CONTRACT, startBlock: 0 }] } : {});
  return { bundle, bytes: encodeBundle(bundle), device, ingest, readings, chain, anchorReader: chainReader(chain), trust };
}

/**
 * FORMAT.md §3.1 by hand, without signBatchedStatements' link checks, so that a test can sign a batch whose chain is
 * broken inside (as a compromised device key could). For an unbroken run the bytes equal signBatchedStatements'.
 */
async function signDeviceBatch(readingBytes: Uint8Array[], signer: Signer): Promise<Uint8Array[]> {
  const readings = readingBytes.map((b) => decodeReading(b));
  const first = readings[0]!;
  const protectedBytes = encodeStatementProtectedHeader({ kid: signer.keyId, device: first.device, seq: first.seq, prev: first.prev, batchSize: readings.length });
  const digests = readingBytes.map((b) => sha256(b));
  const leaves = digests.map((d) => hashLeaf(d));
  const signature = await signer.sign(sigStructure1(protectedBytes, rootFromLeafHashes(leaves)));
  return digests.map((payload, i) => {
    const proof = encodeCbor([readings.length, i, inclusionProof(leaves, i)]);
    const unprotectedHeader = new Map<number, unknown>([[HEADER_VDP, new Map<number, unknown>([[VDP_INCLUSION_PROOFS, [proof]]])]]);
    return encodeSign1({ protectedBytes, unprotectedHeader, payload, signature });
  });
}

async function signWithHeader(bytes: Uint8Array, reading: Reading, prev: Uint8Array, signer: Signer): Promise<Uint8Array> {
  const protectedBytes = encodeStatementProtectedHeader({ kid: signer.keyId, device: reading.device, seq: reading.seq, prev });
  const payload = readingDigest(bytes);
  const signature = await signer.sign(sigStructure1(protectedBytes, payload));
  return encodeSign1({ protectedBytes, unprotectedHeader: new Map(), payload, signature });
}

/** A chain double: answers with `facts` per batch id; unknown batch -> AnchorError ANCHOR_NOT_FOUND. */
export function chainReader(facts: ReadonlyMap<number, AnchorFacts>): AnchorReader {
  return async (_ref, batchId) => {
    const f = facts.get(batchId);
    if (f === undefined) throw new AnchorError('ANCHOR_NOT_FOUND', `test chain: no anchor for batch ${batchId}`);
    return { ...f };
  };
}

/** A chain double that cannot be reached: always AnchorError ANCHOR_RPC_ERROR. */
export const unreachableReader: AnchorReader = async (_ref, _batchId, url) => {
  throw new AnchorError('ANCHOR_RPC_ERROR', `test chain: cannot reach ${url ?? 'the node'}`, { where: { url } });
};

/** A deep copy of a bundle (byte arrays copied), for tampering without touching the original. */
export function cloneBundle(bundle: EvidenceBundle): EvidenceBundle {
  return structuredClone(bundle);
}

/** A copy of `bytes` with byte `index` (negative: from the end) XOR 0x01. */
export function flipByte(bytes: Uint8Array, index: number): Uint8Array {
  const out = bytes.slice();
  const i = index < 0 ? out.length + index : index;
  out[i] = out[i]! ^ 0x01;
  return out;
}

/**
 * Tampering helpers on encoded COSE objects. COSE_Sign1 ends with its signature (RFC 9052 §4.2), so flipping the
 * last byte changes exactly one signature byte of a statement or receipt.
 */
export const tamper = {
  signatureByte: (cose: Uint8Array): Uint8Array => flipByte(cose, -1),
  /** Re-encodes a receipt with one byte of proof node `node` changed. */
  proofNode: (receipt: Uint8Array, node = 0): Uint8Array => {
    const r = parseReceipt(receipt);
    const path = r.proof.path.map((p, i) => (i === node ? flipByte(p, 0) : p));
    return encodeReceipt(r.protectedBytes, r.signature, { ...r.proof, path });
  },
};

/**
 * A pure Ethereum JSON-RPC double for `readAnchor` (eth_chainId, eth_getTransactionReceipt, eth_getBlockByNumber),
 * answering from the genuine anchors of a built bundle. Serve it over node:http in tests that exercise the real
 * reader end to end (the CLI); `chainId` defaults to the anchors' chain.
 */
export function answerJsonRpc(built: Pick<TestBundle, 'bundle' | 'chain'>, request: unknown): unknown {
  const req = request as { id?: unknown; method?: unknown; params?: unknown[] };
  const reply = (result: unknown): unknown => ({ jsonrpc: '2.0', id: req.id, result });
  const anchored = built.bundle.batches.flatMap((b) => {
    const facts = built.chain.get(b.batchId);
    return b.anchor !== undefined && facts !== undefined ? [{ ref: b.anchor, facts }] : [];
  });
  const word = (n: number): string => n.toString(16).padStart(64, '0');
  const blockHash = (n: number): string => `0x${toHex(sha256(utf8(`block ${n}`)))}`;
  switch (req.method) {
    case 'eth_chainId':
      return reply(`0x${(anchored[0]?.facts.chainId ?? 31337).toString(16)}`);
    case 'eth_getTransactionReceipt': {
      const a = anchored.find((x) => x.ref.txHash === String(req.params?.[0]).toLowerCase());
      if (a === undefined) return reply(null);
      return reply({
        status: '0x1',
        transactionHash: a.ref.txHash,
        blockNumber: `0x${a.facts.blockNumber.toString(16)}`,
        blockHash: blockHash(a.facts.blockNumber),
        logs: [
          {
            address: a.facts.contract,
            topics: [ANCHORED_EVENT_TOPIC, `0x${word(a.facts.batchId)}`, a.facts.root],
            data: `0x${word(a.facts.size)}${word(a.facts.blockTime)}`,
            removed: false,
          },
        ],
      });
    }
    case 'eth_getBlockByNumber': {
      const n = Number.parseInt(String(req.params?.[0]).slice(2), 16);
      const a = anchored.find((x) => x.facts.blockNumber === n);
      if (a === undefined) return reply(null);
      return reply({ number: `0x${n.toString(16)}`, hash: blockHash(n), timestamp: `0x${a.facts.blockTime.toString(16)}` });
    }
    default:
      return { jsonrpc: '2.0', id: req.id, error: { code: -32601, message: 'method not found' } };
  }
}

/**
 * For tests of other components (ingest, gateway, chaos) that check their bundles verify: a policy of the test
 * authority trusting exactly the ingest key, issuer and anchor targets the bundle names. Never what a verifier
 * does (that would take trust from the artefact, FORMAT.md §14); the trust check itself is tested with
 * `buildTestPolicy` against bundles made elsewhere.
 */
export async function policyTrustingBundle(bundle: EvidenceBundle | Record<string, unknown>): Promise<TrustPolicy> {
  return (await policyFileTrustingBundle(bundle)).policy;
}

/** As {@link policyTrustingBundle}, with the signed file and the authority fingerprint (hex) for CLI tests. */
export async function policyFileTrustingBundle(bundle: EvidenceBundle | Record<string, unknown>): Promise<{ bytes: Uint8Array; fingerprint: string; policy: TrustPolicy }> {
  const b = (bundle as { ingest: { publicKey: unknown } }).ingest.publicKey instanceof Uint8Array ? (bundle as EvidenceBundle) : parseBundle(bundle);
  const ingest: Signer = { algorithm: 'ES256', keyId: keyIdOf(b.ingest.publicKey), publicKey: b.ingest.publicKey, backend: 'software', sign: async () => new Uint8Array(64) };
  const targets = [...new Map(b.batches.filter((x) => x.anchor !== undefined).map((x) => [`${x.anchor!.chainId}|${x.anchor!.contract}`, x.anchor!])).values()];
  return buildTestPolicy(ingest, b.ingest.issuer, {
    ingestKeys: [{ signer: ingest, validFrom: '2020-01-01T00:00:00Z' }],
    anchors: targets.map((t) => ({ kind: 'evm', chainId: t.chainId, contract: t.contract, startBlock: 0 })),
  });
}
