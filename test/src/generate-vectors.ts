/**
 * Generates the worked examples of docs/FORMAT.md into test/vectors/ (`npm run vectors`). Deterministic: fixed
 * private keys (below, hex), fixed times, and ES256 signatures made with @noble/curves `p256.sign`, which derives
 * the nonce by RFC 6979 (deterministic, `extraEntropy: false` is noble's default; vectors.test.ts checks it against
 * RFC 6979 §A.2.5) and returns low-S. node:crypto is never used to sign: its ECDSA nonces are random.
 *
 * `generateVectors()` returns every file (path relative to test/vectors/ -> UTF-8 contents); vectors.test.ts
 * compares it with the checked-in files byte for byte. test/vectors/SOURCE.md says how each file was made.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { evalReading, evaluateRuleSet, parseRuleSet, readingJsonView, type Alert, type EvalReading } from '@stele/core/alerts';
import { mqttNotice, noticeBody, noticeMac, webhookHeaders } from '@stele/ingest';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { p256 } from '@noble/curves/nist.js';
import { encodeAbiParameters, encodeEventTopics, encodeFunctionData, type Abi, type Hex } from 'viem';
import {
  BUNDLE_FORMAT,
  EVIDENCE_SET_FORMAT,
  evidenceSetToJson,
  type EvidenceSet,
  bundleDigest,
  completePolicyDraft,
  consistencyProof,
  draftTrustPolicy,
  encodeSign1,
  signTrustPolicy,
  TRUST_POLICY_CONTENT_TYPE,
  decodeReading,
  encodeBundle,
  bundleToJson,
  encodeCbor,
  encodeLifecycleBody,
  encodeReading,
  encodeReceipt,
  encodeStatementProtectedHeader,
  fromHex,
  GENESIS_PREV,
  hashLeaf,
  inclusionProof,
  keyIdOf,
  parseReceipt,
  readingDigest,
  rootFromLeafHashes,
  sha256,
  sigStructure1,
  signBatchedStatements,
  signBatchRoot,
  signConfirmation,
  signLifecycleStatement,
  decodeSign1,
  signStatement,
  toBase64Url,
  fromBase64Url,
  toHex,
  utf8,
  type AnchorFacts,
  type AnchorRef,
  type BundleBatch,
  type BundleEntry,
  type EvidenceBundle,
  type InclusionProof,
  type LifecycleBody,
  type Reading,
  type Signer,
  type VerdictState,
  type VerifyCode,
} from '@stele/core';
import { signEnrolmentRequest, type EnrolmentRequest } from '@stele/core/enrolment';
import artifact from '../../ingest/contracts/SteleAnchor.json' with { type: 'json' };
import { encodeDeterministic } from '@stele/core/cose';

// ---------------------------------------------------------------------------------------------------------------
// Fixed inputs. These keys are public test keys: never use them for anything else.

/** Device (gateway) signing key, P-256 scalar, big-endian hex. */
export const DEVICE_SECRET_KEY_HEX = 'f338af5a0e163d8a3d9abe83f1cb7e9bb69fbb2ce30398fa2896b6d5f9509358';
/** Ingest receipt key, P-256 scalar, big-endian hex. */
export const INGEST_SECRET_KEY_HEX = '37196203ada786dde9f1bcf95f6a5dde7b2cf165a658c5e30c5698677013c464';
/** The key the device rotates to in the lifecycle vectors: SHA-256("stele vector rotated device key"). */
export const ROTATED_SECRET_KEY_HEX = '0102d8f19b459bdeaceee5d65316a2f01ba9f2289778321df902a8ea1cb29339';
/** A key ingest never enrolled (lifecycle vectors): SHA-256("stele vector stranger key"). */
export const STRANGER_SECRET_KEY_HEX = 'e9dde174c5b0fcd731186cb056d43625170dbb2e3d9f2f0b9092015771d8ff82';

/** The installer who countersigns the vector enrolment request (FORMAT.md §13.2, §13.6): SHA-256("stele vector installer key"). */
export const INSTALLER_SECRET_KEY_HEX = '572515a24b9deb1fc8702d0d3eff1c6de046f633cf3b46efcb8a11e898f07281';

/** The authority that signs the vector trust policy (FORMAT.md §14): SHA-256("stele vector authority key"). */
export const AUTHORITY_SECRET_KEY_HEX = '68af089c3ba0780f8c5baafe579bd2bc1a19e96fd3eb3d243186712062e00e77';
/** An ingest key the policy of the untrusted-key case lists instead: SHA-256("stele vector other ingest key"). */
export const OTHER_INGEST_SECRET_KEY_HEX = 'f6e63e871245eaf7a3b1a32ee58c550f6d3b24eec6216f3723f11d95b357f1ad';

const DEVICE_ID = 'gw-0001';
const SENSOR = '88888880000001';
const ISSUER = 'stele-ingest-vectors';
/** Device time of seq 1: 2026-11-20T06:00:00Z; one reading a minute. */
const START_MS = Date.UTC(2026, 10, 20, 6, 0, 0);
const INTERVAL_MS = 60_000;
const COUNT = 6;
/** Batch 1 = seq 1..5 (the five-leaf tree of batch.json), batch 2 = seq 6 (a one-leaf tree). */
const BATCH_SIZES = [5, 1];
const CHAIN_ID = 31337;
/** What anvil gives the first contract deployed by its first dev account (nonce 0). */
const CONTRACT = '0x5fbdb2315678afecb367f032d93f642f64180aa3';
const RPC = 'http://127.0.0.1:8545';

// ---------------------------------------------------------------------------------------------------------------

/** An ES256 Signer over a fixed scalar: RFC 6979 nonces, low-S, `r || s`. */
export function fixedSigner(secretKeyHex: string): Signer {
  const secretKey = fromHex(secretKeyHex);
  const publicKey = p256.getPublicKey(secretKey, false);
  return {
    algorithm: 'ES256',
    keyId: keyIdOf(publicKey),
    publicKey,
    backend: 'software',
    sign: async (message) => p256.sign(message, secretKey, { prehash: true, format: 'compact' }),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// A small CBOR annotator (RFC 8949 §3) for the hex dumps of FORMAT.md. Handles what Stele encodes: definite
// lengths, integers, byte and text strings, arrays, maps, tags, false/true/null. A schema names map labels and
// array positions, and marks byte strings that hold CBOR (`bstr .cbor`), which are then annotated inside.

interface Schema {
  /** Shown before the item's description. */
  name?: string;
  /** Map: schema per encoded key (hex). */
  keys?: Record<string, Schema>;
  /** Array: schema per position. */
  items?: Schema[];
  /** Tag: schema of the tagged item. */
  tagged?: Schema;
  /** Byte string holding CBOR: schema of its content. */
  embedded?: Schema;
}

const COMMENT_COLUMN = 40;

function annotateCbor(bytes: Uint8Array, schema: Schema = {}, options: { elideBytesOver?: number } = {}): string[] {
  const lines: string[] = [];
  const line = (depth: number, hex: string, comment?: string): void => {
    const left = `${'   '.repeat(depth)}${hex}`;
    lines.push(comment === undefined ? left : `${left.padEnd(Math.max(COMMENT_COLUMN, left.length + 2))}# ${comment}`);
  };
  const run = (buf: Uint8Array, depth0: number, schema0: Schema): void => {
    let pos = 0;
    const head = (): { major: number; arg: number; headHex: string } => {
      const start = pos;
      const ib = buf[pos++]!;
      const major = ib >> 5;
      const ai = ib & 31;
      let arg = ai;
      if (ai >= 24) {
        const n = ai === 24 ? 1 : ai === 25 ? 2 : ai === 26 ? 4 : 8;
        arg = 0;
        for (let i = 0; i < n; i++) arg = arg * 256 + buf[pos++]!;
      }
      return { major, arg, headHex: toHex(buf.subarray(start, pos)) };
    };
    const dumpBytes = (depth: number, content: Uint8Array): void => {
      const hex = toHex(content);
      for (let i = 0; i < hex.length; i += 64) line(depth, hex.slice(i, i + 64));
    };
    const item = (depth: number, sc: Schema | undefined, keyName?: string): void => {
      const { major, arg, headHex } = head();
      const pre = sc?.name === undefined ? '' : `${sc.name}: `;
      const post = keyName === undefined ? '' : ` = ${keyName}`;
      switch (major) {
        case 0:
          line(depth, headHex, `${pre}unsigned(${arg})${post}`);
          break;
        case 1:
          line(depth, headHex, `${pre}negative(${-1 - arg})${post}`);
          break;
        case 2: {
          const content = buf.subarray(pos, pos + arg);
          pos += arg;
          if (sc?.embedded !== undefined) {
            line(depth, headHex, `${pre}bytes(${arg}), holding:`);
            run(content, depth + 1, sc.embedded);
          } else if (arg <= 8) {
            line(depth, `${headHex} ${toHex(content)}`.trimEnd(), `${pre}bytes(${arg})`);
          } else if (options.elideBytesOver !== undefined && arg > options.elideBytesOver) {
            line(depth, headHex, `${pre}bytes(${arg})`);
            line(depth + 1, `${toHex(content.subarray(0, 8))}…`, `(${arg} bytes)`);
          } else {
            line(depth, headHex, `${pre}bytes(${arg})`);
            dumpBytes(depth + 1, content);
          }
          break;
        }
        case 3: {
          const content = buf.subarray(pos, pos + arg);
          pos += arg;
          const text = JSON.stringify(new TextDecoder().decode(content));
          if (arg <= 12) line(depth, `${headHex} ${toHex(content)}`, `${pre}text(${arg}) ${text}`);
          else {
            line(depth, headHex, `${pre}text(${arg}) ${text}`);
            dumpBytes(depth + 1, content);
          }
          break;
        }
        case 4:
          line(depth, headHex, `${pre}array(${arg})`);
          for (let i = 0; i < arg; i++) item(depth + 1, sc?.items?.[i]);
          break;
        case 5:
          line(depth, headHex, `${pre}map(${arg})`);
          for (let i = 0; i < arg; i++) {
            const keyHex = toHex(buf.subarray(pos, pos + keyLength(buf, pos)));
            const valueSchema = sc?.keys?.[keyHex];
            item(depth + 1, undefined, valueSchema?.name);
            if (valueSchema === undefined) item(depth + 1, undefined);
            else {
              const { name: _name, ...inner } = valueSchema;
              item(depth + 1, inner);
            }
          }
          break;
        case 6:
          line(depth, headHex, `${pre}tag(${arg})`);
          item(depth + 1, sc?.tagged);
          break;
        case 7:
          line(depth, headHex, `${pre}${arg === 20 ? 'false' : arg === 21 ? 'true' : arg === 22 ? 'null' : `simple(${arg})`}`);
          break;
        default:
          throw new Error('unreachable');
      }
    };
    item(depth0, schema0);
    if (pos !== buf.length) throw new Error('annotateCbor: trailing bytes');
  };
  run(bytes, 0, schema);
  return lines;
}

/** Length of the encoded map key at `pos` (keys in Stele are integers or text strings). */
function keyLength(buf: Uint8Array, pos: number): number {
  const ib = buf[pos]!;
  const ai = ib & 31;
  const n = ai < 24 ? 0 : ai === 24 ? 1 : ai === 25 ? 2 : ai === 26 ? 4 : 8;
  let arg = ai;
  if (n > 0) {
    arg = 0;
    for (let i = 0; i < n; i++) arg = arg * 256 + buf[pos + 1 + i]!;
  }
  const major = ib >> 5;
  return 1 + n + (major === 2 || major === 3 ? arg : 0);
}

const CWT_SCHEMA: Schema = { keys: { '01': { name: 'iss' }, '02': { name: 'sub' }, '06': { name: 'iat' } } };
/** Labels of Stele's COSE headers, keyed by the encoded label (hex). */
const HEADER_SCHEMA: Schema = {
  keys: {
    '01': { name: 'alg' },
    '03': { name: 'content type' },
    '04': { name: 'kid' },
    '0f': { name: 'CWT claims', ...CWT_SCHEMA },
    '190102': { name: 'payload_hash_alg' },
    '190103': { name: 'preimage_content_type' },
    '19018b': { name: 'vds' },
    '19018c': { name: 'vdp', keys: { '20': { name: 'inclusion proofs', items: [{ embedded: { items: [{ name: 'tree_size' }, { name: 'leaf_index' }, { name: 'path' }] } }] } } },
    '3a00010000': { name: 'stele seq' },
    '3a00010001': { name: 'stele prev' },
    '3a00010002': { name: 'stele batch id' },
    '3a00010003': { name: 'stele batch size' },
  },
};
const SIGN1_SCHEMA: Schema = {
  tagged: {
    name: 'COSE_Sign1',
    items: [{ name: 'protected', embedded: HEADER_SCHEMA }, { name: 'unprotected', ...HEADER_SCHEMA }, { name: 'payload' }, { name: 'signature' }],
  },
};
const SIG_STRUCTURE_SCHEMA: Schema = {
  name: 'Sig_structure',
  items: [{ name: 'context' }, { name: 'body_protected', embedded: HEADER_SCHEMA }, { name: 'external_aad' }, { name: 'payload' }],
};
const PROOF_SCHEMA: Schema = { items: [{ name: 'tree_size' }, { name: 'leaf_index' }, { name: 'path' }] };

// ---------------------------------------------------------------------------------------------------------------
// JSON helpers.

const hex = (b: Uint8Array): string => toHex(b);
const hex0x = (b: Uint8Array): string => `0x${toHex(b)}`;
const json = (value: unknown): string => `${JSON.stringify(value, null, 2)}\n`;

function readingView(r: Reading): Record<string, unknown> {
  const out: Record<string, unknown> = {
    v: r.v,
    device: r.device,
    sensor: r.sensor,
    seq: r.seq,
    prev: hex(r.prev),
    time: r.time,
    clock: { synced: r.clock.synced, source: r.clock.source },
    meas: r.meas.map((m) => ({ ...m })),
    raw: r.raw.map(hex),
  };
  if (r.anchor !== undefined) out.anchor = hex(r.anchor);
  if (r.itime !== undefined) out.itime = r.itime;
  if (r.rtype !== undefined) out.rtype = r.rtype;
  return out;
}

function proofView(p: InclusionProof): Record<string, unknown> {
  return { treeSize: p.treeSize, leafIndex: p.leafIndex, path: p.path.map(hex) };
}

// ---------------------------------------------------------------------------------------------------------------
// The chain of readings, the batches, the receipts and the anchors that every file below is cut from.

interface Signed {
  reading: Reading;
  readingBytes: Uint8Array;
  statement: Uint8Array;
}

interface Batch {
  batchId: number;
  members: Signed[];
  leafHashes: Uint8Array[];
  root: Uint8Array;
  issuedAt: number;
  protectedBytes: Uint8Array;
  signature: Uint8Array;
  receipts: Uint8Array[];
  proofs: InclusionProof[];
  ref: AnchorRef;
  facts: AnchorFacts;
}

function measurementsOf(seq: number, variant: number): Reading['meas'] {
  // Values as an HJ 212 logger prints them (text, never re-formatted): SO2 and NOx, real-time values.
  const so2 = (31 + ((seq * 7) % 10) / 10 + variant * 10).toFixed(1);
  const nox = (52 + ((seq * 3) % 10) / 10).toFixed(2);
  return [
    { code: 'a21026', kind: 'Rtd', value: so2, unit: 'mg/m3', flag: 'N' },
    { code: 'a21002', kind: 'Rtd', value: nox, unit: 'mg/m3', flag: 'N' },
  ];
}

function makeReading(seq: number, prev: Uint8Array, variant: number, anchor?: Uint8Array): Reading {
  const time = START_MS + (seq - 1) * INTERVAL_MS;
  const reading: Reading = {
    v: 1,
    device: DEVICE_ID,
    sensor: SENSOR,
    seq,
    prev,
    time,
    clock: { synced: true, source: 'ntp' },
    meas: measurementsOf(seq, variant),
    // Stand-in for SHA-256 of the instrument frame: the frame text is not part of the vectors.
    raw: [sha256(utf8(`hj212 frame of seq ${seq}${variant === 0 ? '' : ` variant ${variant}`}`))],
  };
  if (anchor !== undefined) reading.anchor = anchor;
  return reading;
}

async function signReading(reading: Reading, device: Signer): Promise<Signed> {
  const readingBytes = encodeReading(reading);
  return { reading, readingBytes, statement: await signStatement(readingBytes, device) };
}

/** Block number and time of batch `batchId`: anvil-like blocks, 60 s after the batch's last reading. */
function blockOf(batchId: number, members: Signed[]): { blockNumber: number; blockTime: number } {
  const last = Math.max(...members.map((m) => m.reading.time));
  return { blockNumber: 1 + batchId, blockTime: Math.floor(last / 1000) + 60 };
}

async function makeBatch(
  batchId: number,
  members: Signed[],
  ingest: Signer,
  block: { blockNumber: number; blockTime: number } = blockOf(batchId, members),
): Promise<Batch> {
  const leafHashes = members.map((m) => hashLeaf(m.statement));
  const root = rootFromLeafHashes(leafHashes);
  const { blockNumber, blockTime } = block;
  const issuedAt = blockTime - 5; // ingest signs, then anchors
  const { protectedBytes, signature } = await signBatchRoot(root, { kid: ingest.keyId, issuer: ISSUER, issuedAt, batchId }, ingest);
  const proofs = members.map((_, leafIndex) => ({ treeSize: members.length, leafIndex, path: inclusionProof(leafHashes, leafIndex) }));
  const receipts = proofs.map((p) => encodeReceipt(protectedBytes, signature, p));
  // Synthetic transaction hash: the vectors do not include a signed EVM transaction.
  const txHash = hex0x(sha256(utf8(`stele vector anchor tx of batch ${batchId}`)));
  const ref: AnchorRef = { chainId: CHAIN_ID, contract: CONTRACT, txHash, blockNumber, blockTime, rpc: RPC };
  const facts: AnchorFacts = { chainId: CHAIN_ID, contract: CONTRACT, batchId, root: hex0x(root), size: members.length, blockNumber, blockTime };
  return { batchId, members, leafHashes, root, issuedAt, protectedBytes, signature, receipts, proofs, ref, facts };
}

interface World {
  device: Signer;
  ingest: Signer;
  signed: Signed[];
  batches: Batch[];
}

async function buildWorld(): Promise<World> {
  const device = fixedSigner(DEVICE_SECRET_KEY_HEX);
  const ingest = fixedSigner(INGEST_SECRET_KEY_HEX);
  const signed: Signed[] = [];
  const batches: Batch[] = [];
  let prev = GENESIS_PREV;
  let offset = 0;
  for (const [i, size] of BATCH_SIZES.entries()) {
    const members: Signed[] = [];
    for (let k = 0; k < size; k++) {
      const seq = signed.length + 1;
      // The gateway puts the last anchored root it has seen into the reading (FORMAT.md §2): seq 6 saw batch 1.
      const anchor = batches.at(-1)?.root;
      const s = await signReading(makeReading(seq, prev, 0, anchor), device);
      signed.push(s);
      members.push(s);
      prev = readingDigest(s.readingBytes);
    }
    batches.push(await makeBatch(i + 1, members, ingest));
    offset += size;
  }
  if (offset !== COUNT) throw new Error('batch sizes do not add up');
  return { device, ingest, signed, batches };
}

// ---------------------------------------------------------------------------------------------------------------
// Files.

function keysFile(w: World): unknown {
  const key = (secretHex: string, s: Signer) => ({
    secretKey: secretHex,
    publicKey: hex(s.publicKey),
    publicKeyB64url: toBase64Url(s.publicKey),
    kid: hex(s.keyId),
    kidB64url: toBase64Url(s.keyId),
  });
  return {
    description: 'The two P-256 keys of every vector (public test keys). kid = SHA-256(65-byte SEC1 uncompressed point), FORMAT.md §1.',
    device: { deviceId: DEVICE_ID, ...key(DEVICE_SECRET_KEY_HEX, w.device) },
    ingest: { issuer: ISSUER, ...key(INGEST_SECRET_KEY_HEX, w.ingest) },
  };
}

function readingFile(w: World): unknown {
  const entry = (s: Signed) => ({
    json: readingView(s.reading),
    timeIso: new Date(s.reading.time).toISOString(),
    cbor: hex(s.readingBytes),
    digest: hex(readingDigest(s.readingBytes)),
    annotated: annotateCbor(s.readingBytes),
  });
  return {
    description:
      'Readings (FORMAT.md §2): the JSON view (bytes as hex), the deterministic CBOR and the reading digest SHA-256(cbor). ' +
      'seq 1 starts the chain (prev = 32 zero bytes); seq 6 carries the optional "anchor" (the root of batch 1).',
    readings: [entry(w.signed[0]!), entry(w.signed[5]!)],
    instrumentTime: (() => {
      // FORMAT.md §2.3: an HJ 212 minute record (CN 2051) of the interval starting 14:00 logger time, taken by the
      // gateway at 06:01:02.250Z. Not part of the chain above (seq 1 of another device).
      const reading: Reading = {
        v: 1,
        device: 'gw-0002',
        sensor: SENSOR,
        seq: 1,
        prev: GENESIS_PREV,
        time: START_MS + 62_250,
        clock: { synced: true, source: 'ntp' },
        meas: [
          { code: 'a21026', kind: 'Avg', value: '31.4', unit: 'mg/m3', flag: 'N' },
          { code: 'a19001', kind: 'Avg', value: '7.2', unit: '%', flag: 'N' },
        ],
        raw: [sha256(utf8('hj212 minute frame 20261120140000'))],
        itime: '20261120140000',
        rtype: '2051',
      };
      const readingBytes = encodeReading(reading);
      return {
        json: readingView(reading),
        timeIso: new Date(reading.time).toISOString(),
        cbor: hex(readingBytes),
        digest: hex(readingDigest(readingBytes)),
        annotated: annotateCbor(readingBytes),
      };
    })(),
  };
}

function statementFile(w: World): unknown {
  const s = w.signed[0]!;
  const protectedBytes = encodeStatementProtectedHeader({ kid: w.device.keyId, device: DEVICE_ID, seq: 1, prev: s.reading.prev });
  const payload = readingDigest(s.readingBytes);
  const toBeSigned = sigStructure1(protectedBytes, payload);
  const signature = s.statement.subarray(s.statement.length - 64);
  return {
    description:
      'The signed statement of reading seq 1 (FORMAT.md §3): protected header, Sig_structure, ES256 signature (RFC 6979, low-S), ' +
      'the tagged COSE_Sign1 and its Merkle leaf hash SHA-256(0x00 || statement).',
    seq: 1,
    kid: hex(w.device.keyId),
    protectedHeader: hex(protectedBytes),
    protectedHeaderAnnotated: annotateCbor(protectedBytes, HEADER_SCHEMA),
    payload: hex(payload),
    sigStructure: hex(toBeSigned),
    sigStructureAnnotated: annotateCbor(toBeSigned, SIG_STRUCTURE_SCHEMA),
    sigStructureSha256: hex(sha256(toBeSigned)),
    signature: hex(signature),
    statement: hex(s.statement),
    statementB64url: toBase64Url(s.statement),
    statementAnnotated: annotateCbor(s.statement, SIGN1_SCHEMA),
    leafHash: hex(hashLeaf(s.statement)),
    statements: w.signed.map((x) => ({ seq: x.reading.seq, statement: hex(x.statement) })),
  };
}

function batchFile(w: World): unknown {
  const b = w.batches[0]!;
  return {
    description:
      'Batch 1: an RFC 9162 tree over the statements of seq 1..5 (FORMAT.md §4). Leaf i = SHA-256(0x00 || statement i); ' +
      'interior = SHA-256(0x01 || left || right). Inclusion paths are leaf-up (RFC 9162 §2.1.3.1); consistency proofs from each smaller size to 5.',
    batchId: b.batchId,
    treeSize: b.members.length,
    leaves: b.members.map((m, i) => ({ leafIndex: i, seq: m.reading.seq, statement: hex(m.statement), leafHash: hex(b.leafHashes[i]!) })),
    nodes: {
      'h(0,1)': hex(rootFromLeafHashes(b.leafHashes.slice(0, 2))),
      'h(2,3)': hex(rootFromLeafHashes(b.leafHashes.slice(2, 4))),
      'h(0..3)': hex(rootFromLeafHashes(b.leafHashes.slice(0, 4))),
    },
    root: hex(b.root),
    inclusionProofs: b.proofs.map(proofView),
    consistencyProofs: [1, 2, 3, 4].map((oldSize) => ({
      oldSize,
      oldRoot: hex(rootFromLeafHashes(b.leafHashes.slice(0, oldSize))),
      newSize: b.members.length,
      proof: consistencyProof(b.leafHashes, oldSize).map(hex),
    })),
  };
}

function receiptFile(w: World): unknown {
  const b = w.batches[0]!;
  const toBeSigned = sigStructure1(b.protectedBytes, b.root);
  const receiptOf = (batch: Batch, i: number) => {
    const r = batch.receipts[i]!;
    const parsed = parseReceipt(r);
    const proofBytes = innerProofBytes(r, parsed.proof);
    return {
      batchId: batch.batchId,
      leafIndex: i,
      seq: batch.members[i]!.reading.seq,
      proof: proofView(parsed.proof),
      proofBytes: hex(proofBytes),
      proofAnnotated: annotateCbor(proofBytes, PROOF_SCHEMA),
      receipt: hex(r),
      receiptB64url: toBase64Url(r),
    };
  };
  return {
    description:
      'Receipts of batch 1 (FORMAT.md §5): one ES256 signature by the ingest key over Sig_structure(protected, root); ' +
      'one receipt per leaf with its inclusion proof in the unprotected header and a detached payload (nil). Batch 2 (one leaf, empty path) follows.',
    issuer: ISSUER,
    issuedAt: b.issuedAt,
    batchId: b.batchId,
    root: hex(b.root),
    protectedHeader: hex(b.protectedBytes),
    protectedHeaderAnnotated: annotateCbor(b.protectedBytes, HEADER_SCHEMA),
    sigStructure: hex(toBeSigned),
    signature: hex(b.signature),
    receipts: b.receipts.map((_, i) => receiptOf(b, i)),
    receiptAnnotated: annotateCbor(b.receipts[2]!, SIGN1_SCHEMA),
    batch2: {
      issuedAt: w.batches[1]!.issuedAt,
      root: hex(w.batches[1]!.root),
      protectedHeader: hex(w.batches[1]!.protectedBytes),
      signature: hex(w.batches[1]!.signature),
      receipts: [receiptOf(w.batches[1]!, 0)],
    },
  };
}

/** The inclusion proof bstr inside a receipt's vdp (cross-checked against a fresh deterministic encoding). */
function innerProofBytes(receipt: Uint8Array, p: InclusionProof): Uint8Array {
  const found = extractProofBytes(receipt);
  if (toHex(found) !== toHex(encodeCbor([p.treeSize, p.leafIndex, p.path]))) throw new Error('inner proof is not deterministic');
  return found;
}

function extractProofBytes(receipt: Uint8Array): Uint8Array {
  // d2 84 <protected bstr> a1 19018c a1 20 81 <proof bstr> f6 5840 <sig>
  let pos = 2;
  const readHead = (): { major: number; arg: number } => {
    const ib = receipt[pos++]!;
    const ai = ib & 31;
    let arg = ai;
    if (ai >= 24) {
      const n = ai === 24 ? 1 : ai === 25 ? 2 : ai === 26 ? 4 : 8;
      arg = 0;
      for (let i = 0; i < n; i++) arg = arg * 256 + receipt[pos++]!;
    }
    return { major: ib >> 5, arg };
  };
  const prot = readHead();
  pos += prot.arg; // protected bstr content
  readHead(); // map(1)
  readHead(); // 396
  readHead(); // map(1)
  readHead(); // -1
  readHead(); // array(1)
  const proof = readHead();
  return receipt.slice(pos, pos + proof.arg);
}

/** iat of the confirmation vectors: 60 s after the device time of seq 6. */
const CONFIRMATION_IAT = Math.floor(START_MS / 1000) + 5 * 60 + 60;

function mqttFile(w: World, ack: Uint8Array): unknown {
  const s = w.signed[0]!;
  const full = encodeCbor({ statement: s.statement, reading: s.readingBytes });
  const hashOnly = encodeCbor({ statement: s.statement });
  const reject = encodeCbor({ seq: 4, code: 'FORK_ERROR' });
  const topic = (leaf: string) => `stele/v1/${DEVICE_ID}/${leaf}`;
  return {
    description:
      'MQTT messages (FORMAT.md §11) of device gw-0001: the statement envelope of seq 1 in full and hash-only mode, a confirmation ' +
      '(the `stored` one of confirmation.json, FORMAT.md §11.1) and a reject. Statement envelopes and rejects are deterministic CBOR maps with text keys.',
    statementFull: { topic: topic('statements'), qos: 1, payload: hex(full), annotated: annotateCbor(full, {}, { elideBytesOver: 64 }) },
    statementHashOnly: { topic: topic('statements'), qos: 1, payload: hex(hashOnly) },
    ack: { topic: topic('acks'), qos: 1, payload: hex(ack) },
    reject: { topic: topic('rejects'), qos: 1, json: { seq: 4, code: 'FORK_ERROR' }, payload: hex(reject), annotated: annotateCbor(reject) },
  };
}

/**
 * Confirmations (FORMAT.md §11.1) from the vectors' ingest key to gw-0001, and forgeries a gateway must ignore
 * with the code it must count. The gateway of these vectors pins the ingest key and holds seq 1..6 of reading.json.
 */
async function confirmationFile(w: World): Promise<{ file: unknown; stored: Uint8Array }> {
  const head = (seq: number) => readingDigest(w.signed[seq - 1]!.readingBytes);
  const stored = await signConfirmation({ type: 'stored', device: DEVICE_ID, upTo: 5, head: head(5), issuedAt: CONFIRMATION_IAT }, w.ingest);
  const anchored = await signConfirmation({ type: 'anchored', device: DEVICE_ID, upTo: 6, head: head(6), issuedAt: CONFIRMATION_IAT + 5 }, w.ingest);
  const stranger = fixedSigner(STRANGER_SECRET_KEY_HEX);
  const cose = decodeSign1(stored);
  const resign = async (payload: Uint8Array) => encodeSign1({ ...cose, payload, signature: await w.ingest.sign(sigStructure1(cose.protectedBytes, payload)) });
  const payloadWith = (edit: (m: Map<string, unknown>) => void) => {
    const m = new Map<string, unknown>([['v', 1], ['iat', CONFIRMATION_IAT], ['head', head(5)], ['type', 'stored'], ['upTo', 5], ['device', DEVICE_ID]]);
    edit(m);
    return encodeCbor(m);
  };
  const highS = (sig: Uint8Array) => {
    const n = p256.Point.Fn.ORDER;
    let s = 0n;
    for (const b of sig.subarray(32)) s = (s << 8n) | BigInt(b);
    let t = n - s;
    const out = sig.slice();
    for (let i = 63; i >= 32; i--) {
      out[i] = Number(t & 0xffn);
      t >>= 8n;
    }
    return out;
  };
  const invalid: { name: string; description: string; bytes: Uint8Array; wantErr: string }[] = [
    { name: 'unsigned-ack', description: 'the v1 unsigned ack {"upTo": 2^53-1} from an anonymous client', bytes: encodeCbor({ upTo: Number.MAX_SAFE_INTEGER }), wantErr: 'CONFIRMATION_FORMAT_ERROR' },
    { name: 'other-key', description: 'the same confirmation signed by another key (a second ingest on the broker)', bytes: await signConfirmation({ type: 'stored', device: DEVICE_ID, upTo: 5, head: head(5), issuedAt: CONFIRMATION_IAT }, stranger), wantErr: 'CONFIRMATION_KEY_ERROR' },
    { name: 'bad-signature', description: 'the pinned kid with the last signature byte XOR 0x01', bytes: encodeSign1({ ...cose, signature: cose.signature.map((b, i) => (i === 63 ? b ^ 1 : b)) }), wantErr: 'CONFIRMATION_SIGNATURE_ERROR' },
    { name: 'other-device', description: 'signed by the pinned key for device gw-0002', bytes: await signConfirmation({ type: 'stored', device: 'gw-0002', upTo: 5, head: head(5), issuedAt: CONFIRMATION_IAT }, w.ingest), wantErr: 'CONFIRMATION_DEVICE_ERROR' },
    { name: 'extra-key', description: 'a seventh payload key "x" (signed by the pinned key)', bytes: await resign(payloadWith((m) => m.set('x', 0))), wantErr: 'CONFIRMATION_FORMAT_ERROR' },
    { name: 'upto-zero', description: 'upTo 0 (signed by the pinned key)', bytes: await resign(payloadWith((m) => m.set('upTo', 0))), wantErr: 'CONFIRMATION_FORMAT_ERROR' },
  ];
  const gatewayIgnores = [
    { name: 'head-not-held', description: 'a valid confirmation of seq 5 whose head is the digest of seq 4: the gateway holds another chain', bytes: await signConfirmation({ type: 'stored', device: DEVICE_ID, upTo: 5, head: head(4), issuedAt: CONFIRMATION_IAT }, w.ingest), wantErr: 'PUBLISH_CONFIRMATION_HEAD' },
    { name: 'beyond-head', description: 'a valid confirmation of seq 7, above the gateway head 6', bytes: await signConfirmation({ type: 'stored', device: DEVICE_ID, upTo: 7, head: head(6), issuedAt: CONFIRMATION_IAT }, w.ingest), wantErr: 'PUBLISH_CONFIRMATION_HEAD' },
  ];
  return {
    stored,
    file: {
      description:
        'Confirmations (FORMAT.md §11.1) on stele/v1/gw-0001/acks, signed by the ingest key of bundle.json (secret key INGEST_SECRET_KEY_HEX of ' +
        'test/src/generate-vectors.ts). The gateway pins ingestPublicKey and holds seq 1..6 of reading.json. `valid` must verify; `invalid` must be ' +
        'rejected by the confirmation check with wantErr; `gatewayIgnores` verify but name a head the gateway does not hold at upTo.',
      ingestPublicKey: hex(w.ingest.publicKey),
      ingestKid: hex(w.ingest.keyId),
      device: DEVICE_ID,
      valid: [
        { name: 'stored', json: { type: 'stored', device: DEVICE_ID, upTo: 5, head: hex(head(5)), iat: CONFIRMATION_IAT }, cose: hex(stored), annotated: annotateCbor(stored) },
        { name: 'anchored', json: { type: 'anchored', device: DEVICE_ID, upTo: 6, head: hex(head(6)), iat: CONFIRMATION_IAT + 5 }, cose: hex(anchored) },
        { name: 'stored-high-s', description: 'the stored confirmation with s replaced by n - s: still valid (FORMAT.md §0)', json: { type: 'stored', device: DEVICE_ID, upTo: 5, head: hex(head(5)), iat: CONFIRMATION_IAT }, cose: hex(encodeSign1({ ...cose, signature: highS(cose.signature) })) },
      ],
      payloadAnnotated: annotateCbor(cose.payload!),
      sigStructure: hex(sigStructure1(cose.protectedBytes, cose.payload!)),
      invalid: invalid.map((v) => ({ name: v.name, description: v.description, cose: hex(v.bytes), wantErr: v.wantErr })),
      gatewayIgnores: gatewayIgnores.map((v) => ({ name: v.name, description: v.description, cose: hex(v.bytes), wantErr: v.wantErr })),
    },
  };
}

function outboxFile(w: World): unknown {
  const takenAt = (seq: number) => START_MS + (seq - 1) * INTERVAL_MS + 250;
  const entryKey = (seq: number) => `e!${String(seq).padStart(16, '0')}`;
  const s1 = w.signed[0]!;
  const entry1 = encodeCbor({ reading: s1.readingBytes, statement: s1.statement, takenAt: takenAt(1) });
  const last = w.signed[COUNT - 1]!;
  const head = encodeCbor({ seq: COUNT, digest: readingDigest(last.readingBytes), device: DEVICE_ID });
  const acked = encodeCbor({ upTo: 5 });
  return {
    description:
      'Gateway outbox records (FORMAT.md §12) after taking seq 1..6 with ingest having acknowledged 1..5: LevelDB keys (UTF-8) and values (deterministic CBOR). ' +
      'takenAt is the gateway clock, here 250 ms after the device time.',
    records: [
      { key: entryKey(1), value: hex(entry1), annotated: annotateCbor(entry1, {}, { elideBytesOver: 64 }) },
      { key: 'm!head', value: hex(head), annotated: annotateCbor(head) },
      { key: 'm!acked', value: hex(acked), annotated: annotateCbor(acked) },
    ],
  };
}

const ABI = artifact.abi as Abi;

function anchorFile(w: World): unknown {
  const logOf = (b: Batch) => {
    const topics = encodeEventTopics({ abi: ABI, eventName: 'Anchored', args: { batchId: BigInt(b.batchId), root: hex0x(b.root) as Hex } });
    const data = encodeAbiParameters(
      [
        { name: 'size', type: 'uint64' },
        { name: 'timestamp', type: 'uint64' },
      ],
      [BigInt(b.facts.size), BigInt(b.facts.blockTime)],
    );
    return {
      batchId: b.batchId,
      root: hex0x(b.root),
      size: b.facts.size,
      timestamp: b.facts.blockTime,
      calldata: encodeFunctionData({ abi: ABI, functionName: 'anchor', args: [BigInt(b.batchId), hex0x(b.root) as Hex, BigInt(b.facts.size)] }),
      log: { address: CONTRACT, topics, data, removed: false },
      anchorsReturnData: encodeAbiParameters(
        [
          { name: 'root', type: 'bytes32' },
          { name: 'size', type: 'uint64' },
          { name: 'blockNumber', type: 'uint64' },
          { name: 'timestamp', type: 'uint64' },
        ],
        [hex0x(b.root) as Hex, BigInt(b.facts.size), BigInt(b.facts.blockNumber), BigInt(b.facts.blockTime)],
      ),
      ref: b.ref,
      facts: b.facts,
    };
  };
  return {
    description:
      'The Anchored logs of batches 1 and 2 as SteleAnchor emits them (FORMAT.md §6), ABI-encoded with viem from ' +
      'ingest/contracts/SteleAnchor.json; the calldata of anchor(batchId, root, size); the eth_call return data of anchors(batchId); ' +
      'the bundle anchor reference and the facts a chain reader returns. Transaction hashes are synthetic.',
    eventSignature: 'Anchored(uint64,bytes32,uint64,uint64)',
    chainId: CHAIN_ID,
    contract: CONTRACT,
    anchors: w.batches.map(logOf),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Evidence bundles.

interface BundleCase {
  name: string;
  description: string;
  bundle: EvidenceBundle;
  chain: AnchorFacts[];
  /** With an anchor reader answering `chain`. */
  expected: { state: VerdictState; codes: VerifyCode[] };
  /** Without any chain access. */
  expectedOffline: { state: VerdictState; codes: VerifyCode[] };
  /** Written in the compact form (FORMAT.md §7.1), then `edit`ed as JSON (a change only that form can carry). */
  form?: 2;
  edit?: (json: Record<string, any>) => void;
}

function flipByte(bytes: Uint8Array, index: number): Uint8Array {
  const out = bytes.slice();
  const i = index < 0 ? out.length + index : index;
  out[i] = out[i]! ^ 0x01;
  return out;
}

function baseBundle(w: World): EvidenceBundle {
  const entries: BundleEntry[] = [];
  const batches: BundleBatch[] = [];
  for (const b of w.batches) {
    b.members.forEach((m, i) => {
      entries.push({ seq: m.reading.seq, batchId: b.batchId, reading: m.readingBytes.slice(), statement: m.statement.slice(), receipt: b.receipts[i]!.slice() });
    });
    batches.push({ batchId: b.batchId, size: b.members.length, root: b.root.slice(), anchor: { ...b.ref } });
  }
  return {
    format: BUNDLE_FORMAT,
    createdAt: '2026-11-20T08:00:00.000Z',
    device: {
      deviceId: DEVICE_ID,
      publicKey: w.device.publicKey,
      kid: w.device.keyId,
      keyBackend: 'software',
      enrolledAt: '2026-11-19T06:00:00.000Z',
      site: 'Example plant, stack 1',
    },
    ingest: { issuer: ISSUER, publicKey: w.ingest.publicKey, kid: w.ingest.keyId },
    window: { firstSeq: 1, lastSeq: COUNT },
    entries,
    batches,
  };
}

async function bundleCases(w: World): Promise<BundleCase[]> {
  const chain = w.batches.map((b) => b.facts);
  const base = (): EvidenceBundle => structuredClone(baseBundle(w));
  const entryOf = (bundle: EvidenceBundle, seq: number): BundleEntry => bundle.entries.find((e) => e.seq === seq)!;
  const ok = { state: 'verified' as const, codes: [] };
  const partial = { state: 'partial' as const, codes: [] };
  const failed = (...codes: VerifyCode[]) => ({ state: 'failed' as const, codes });
  const cases: BundleCase[] = [];

  cases.push({
    name: 'valid',
    description: 'Six readings in two batches (5 + 1), both anchored; every check passes. Offline the anchor (and so the time bound) stays unchecked.',
    bundle: base(),
    chain,
    expected: ok,
    expectedOffline: partial,
  });

  {
    const bundle = base();
    delete entryOf(bundle, 2).reading;
    delete entryOf(bundle, 3).reading;
    cases.push({
      name: 'hash-only',
      description: 'The valid bundle without the reading bodies of seq 2 and 3 (hash-only evidence): still verified, with a "hash-only" note.',
      bundle,
      chain,
      expected: ok,
      expectedOffline: partial,
    });
  }

  {
    const bundle = base();
    const e = entryOf(bundle, 2);
    const r = decodeReading(e.reading!);
    r.meas[0]!.value = '12.0';
    e.reading = encodeReading(r);
    cases.push({
      name: 'tampered-value',
      description: 'The SO2 value of reading seq 2 changed and the reading re-encoded: its digest is no longer the signed payload.',
      bundle,
      chain,
      expected: failed('DIGEST_MISMATCH_ERROR'),
      expectedOffline: failed('DIGEST_MISMATCH_ERROR'),
    });
  }

  {
    const bundle = base();
    const e = entryOf(bundle, 3);
    e.statement = flipByte(e.statement, -1);
    cases.push({
      name: 'tampered-statement-signature',
      description:
        'The last byte of the statement of seq 3 (its signature) XOR 0x01. The signature fails, and the changed statement is a ' +
        'different Merkle leaf, so its proof no longer leads to the signed root (decision table: INCLUSION_PROOF_ERROR, receipt passes).',
      bundle,
      chain,
      expected: failed('SIGNATURE_ERROR', 'INCLUSION_PROOF_ERROR'),
      expectedOffline: failed('SIGNATURE_ERROR', 'INCLUSION_PROOF_ERROR'),
    });
  }

  {
    const bundle = base();
    const e = entryOf(bundle, 3);
    e.receipt = flipByte(e.receipt, -1);
    cases.push({
      name: 'tampered-receipt-signature',
      description: 'The last byte of the receipt of seq 3 (the ingest signature) XOR 0x01: the proof still leads to the recorded root, the signature fails.',
      bundle,
      chain,
      expected: failed('RECEIPT_SIGNATURE_ERROR'),
      expectedOffline: failed('RECEIPT_SIGNATURE_ERROR'),
    });
  }

  {
    const bundle = base();
    const e = entryOf(bundle, 2);
    const r = parseReceipt(e.receipt);
    const path = r.proof.path.map((p, i) => (i === 0 ? flipByte(p, 0) : p));
    e.receipt = encodeReceipt(r.protectedBytes, r.signature, { ...r.proof, path });
    cases.push({
      name: 'tampered-proof-node',
      description: 'The first byte of proof node 0 in the receipt of seq 2 XOR 0x01 (receipt re-encoded): the proof leads to another root.',
      bundle,
      chain,
      expected: failed('INCLUSION_PROOF_ERROR'),
      expectedOffline: failed('INCLUSION_PROOF_ERROR'),
    });
  }

  {
    const bundle = base();
    bundle.batches[0]!.root = flipByte(bundle.batches[0]!.root, 31);
    cases.push({
      name: 'tampered-root',
      description:
        'The last byte of batches[0].root XOR 0x01: every receipt still verifies over its own computed root, which is not the recorded one ' +
        '(ANCHOR_MISMATCH_ERROR offline); the chain holds the genuine root (a second ANCHOR_MISMATCH_ERROR with a reader).',
      bundle,
      chain,
      expected: failed('ANCHOR_MISMATCH_ERROR'),
      expectedOffline: failed('ANCHOR_MISMATCH_ERROR'),
    });
  }

  {
    const bundle = base();
    bundle.entries = bundle.entries.filter((e) => e.seq !== 4);
    cases.push({
      name: 'removed-reading',
      description: 'The entry of seq 4 removed; the window still claims 1..6.',
      bundle,
      chain,
      expected: failed('SEQUENCE_GAP_ERROR'),
      expectedOffline: failed('SEQUENCE_GAP_ERROR'),
    });
  }

  {
    // The device signs a second, different reading for seq 4 (same prev); a third batch holds it, anchored.
    const original = w.signed[3]!;
    const fork = await signReading(makeReading(4, original.reading.prev, 1), w.device);
    // Anchored after batch 2: block 4, one minute after batch 2's block.
    const forkBatch = await makeBatch(3, [fork], w.ingest, { blockNumber: 4, blockTime: w.batches[1]!.facts.blockTime + 60 });
    const bundle = base();
    const at = bundle.entries.findIndex((e) => e.seq === 4) + 1;
    bundle.entries.splice(at, 0, {
      seq: 4,
      batchId: 3,
      reading: fork.readingBytes.slice(),
      statement: fork.statement.slice(),
      receipt: forkBatch.receipts[0]!.slice(),
    });
    bundle.batches.push({ batchId: 3, size: 1, root: forkBatch.root.slice(), anchor: { ...forkBatch.ref } });
    cases.push({
      name: 'fork',
      description:
        'A second, different signed reading for seq 4 (same prev, another SO2 value), in a third batch of its own, anchored: ' +
        'every signature, proof and anchor holds, but two readings carry seq 4.',
      bundle,
      chain: [...chain, forkBatch.facts],
      expected: failed('FORK_ERROR'),
      expectedOffline: failed('FORK_ERROR'),
    });
    // The same second reading as ingest catches it (§11 step 7): not logged, carried in `caught` with the fork alert.
    const caught = base();
    caught.caught = [{ statement: fork.statement.slice(), reading: fork.readingBytes.slice() }];
    const rule = { id: 'integrity', type: 'integrity' as const, standard: 'Stele integrity', version: '1', params: { unsyncedClock: false } };
    const evals = [...w.signed.map((x) => evalReading(x.reading)), evalReading(fork.reading)];
    const alert = evaluateRuleSet(parseRuleSet({ format: 'stele-rules/1', utcOffset: '+08:00', rules: [rule] }), evals, { at: START_MS + 3_600_000 }).alerts.find((a) => a.kind === 'integrity-fork');
    caught.alert = JSON.parse(JSON.stringify(alert)) as unknown;
    cases.push({
      name: 'fork-caught',
      description:
        'The second reading of seq 4 of `fork` as ingest catches it: not logged, in `caught` (§7), with the integrity-fork alert; ' +
        'its signature and body hold, so the device forked (FORK_ERROR) and check 9 recomputes the alert from both readings.',
      bundle: caught,
      chain,
      expected: failed('FORK_ERROR'),
      expectedOffline: failed('FORK_ERROR'),
    });
    // A gap ingest caught: seqs 4 and 5 never arrived, seq 6 was held ahead of them; the window ends at the head, 3.
    const gap = base();
    const six = gap.entries.find((e) => e.seq === 6)!;
    gap.window = { firstSeq: 1, lastSeq: 3 };
    gap.entries = gap.entries.filter((e) => e.seq <= 3);
    gap.caught = [{ statement: six.statement.slice(), reading: six.reading!.slice() }];
    const seen = w.signed.filter((x) => x.reading.seq <= 3 || x.reading.seq === 6).map((x) => evalReading(x.reading));
    const gapAlert = evaluateRuleSet(parseRuleSet({ format: 'stele-rules/1', utcOffset: '+08:00', rules: [rule] }), seen, { at: START_MS + 3_600_000 }).alerts.find((a) => a.kind === 'integrity-seq-gap');
    gap.alert = JSON.parse(JSON.stringify(gapAlert)) as unknown;
    cases.push({
      name: 'gap-caught',
      description:
        'Seqs 4 and 5 never reached ingest, which held seq 6 ahead of them: the window is 1..3 and seq 6 is in `caught` (§7) with the ' +
        'integrity-seq-gap alert; its signature and body hold, so seqs 4-5 are proven missing (SEQUENCE_GAP_ERROR) and check 9 recomputes the alert.',
      bundle: gap,
      chain,
      expected: failed('SEQUENCE_GAP_ERROR'),
      expectedOffline: failed('SEQUENCE_GAP_ERROR'),
    });
  }
  return cases;
}

// ---------------------------------------------------------------------------------------------------------------
// Device lifecycle (FORMAT.md §13): the same device and times, six seqs in two batches, seq 4 a key rotation.
//   batch 1: the enrolment statement (ingest key), readings 1..3 (device key), the rotation at seq 4 (device key)
//   batch 2: readings 5..6 (the rotated-in key)
// Variants re-sign what they change and rebuild the batches, so every signature, proof and anchor holds and only
// the key judgement (check 2) fails.

const LIFECYCLE_SIGN1_SCHEMA: Schema = {
  tagged: {
    name: 'COSE_Sign1',
    items: [{ name: 'protected', embedded: HEADER_SCHEMA }, { name: 'unprotected', ...HEADER_SCHEMA }, { name: 'payload (body)', embedded: {} }, { name: 'signature' }],
  },
};

interface LifecycleWorld {
  rotated: Signer;
  enrolment: Uint8Array;
  rotation: Uint8Array;
  rotationBody: LifecycleBody;
  bundle: EvidenceBundle;
  chain: AnchorFacts[];
}

type LifecycleVariant = 'rotated' | 'rotated-out-key' | 'revoked-key' | 'unknown-key' | 'enrolment-request' | 'edited-request';

/**
 * The enrolment request file of the vector device (FORMAT.md §13.2): software key, attestation `none`, signed by
 * the device key and countersigned by the vector installer; deterministic (RFC 6979 signatures, fixed fields).
 */
async function vectorEnrolmentRequest(w: World, enrolledAt: number): Promise<{ file: Uint8Array; installer: Signer }> {
  const installer = fixedSigner(INSTALLER_SECRET_KEY_HEX);
  const request: EnrolmentRequest = {
    version: 1,
    deviceId: DEVICE_ID,
    publicKey: toBase64Url(w.device.publicKey),
    kid: toBase64Url(w.device.keyId),
    keyBackend: 'software',
    keyStore: { store: 'software', note: 'PKCS#8 file on the gateway: the key can be copied' },
    attestation: { kind: 'none', reason: 'the software backend offers no attestation' },
    gateway: { hostname: 'gw-0001', serial: { source: '/etc/machine-id', value: 'vector' }, macs: [{ iface: 'eth0', mac: '02:00:00:00:00:01' }] },
    site: 'stack 2',
    instruments: [{ id: 'cems-1', kind: 'hj212' }],
    installer: { name: 'vector installer', publicKey: toBase64Url(installer.publicKey), kid: toBase64Url(installer.keyId) },
    createdAt: new Date(enrolledAt - 3_600_000).toISOString(),
  };
  return { file: await signEnrolmentRequest(request, w.device, installer), installer };
}

/** Batch of arbitrary statements (readings or lifecycle), anchored at `block`. */
async function statementBatch(batchId: number, statements: Uint8Array[], ingest: Signer, block: { blockNumber: number; blockTime: number }) {
  const leafHashes = statements.map((st) => hashLeaf(st));
  const root = rootFromLeafHashes(leafHashes);
  const { protectedBytes, signature } = await signBatchRoot(root, { kid: ingest.keyId, issuer: ISSUER, issuedAt: block.blockTime - 5, batchId }, ingest);
  const receipts = statements.map((_, leafIndex) => encodeReceipt(protectedBytes, signature, { treeSize: statements.length, leafIndex, path: inclusionProof(leafHashes, leafIndex) }));
  const txHash = hex0x(sha256(utf8(`stele vector lifecycle anchor tx of batch ${batchId}`)));
  const ref: AnchorRef = { chainId: CHAIN_ID, contract: CONTRACT, txHash, blockNumber: block.blockNumber, blockTime: block.blockTime, rpc: RPC };
  const facts: AnchorFacts = { chainId: CHAIN_ID, contract: CONTRACT, batchId, root: hex0x(root), size: statements.length, blockNumber: block.blockNumber, blockTime: block.blockTime };
  return { root, receipts, ref, facts };
}

async function lifecycleWorld(w: World, variant: LifecycleVariant): Promise<LifecycleWorld> {
  const rotated = fixedSigner(ROTATED_SECRET_KEY_HEX);
  const stranger = fixedSigner(STRANGER_SECRET_KEY_HEX);
  const enrolledAt = START_MS - 86_400_000;
  const withRequest = variant === 'enrolment-request' || variant === 'edited-request';
  const requestFile = withRequest ? await vectorEnrolmentRequest(w, enrolledAt) : undefined;
  const enrolment = await signLifecycleStatement(
    {
      type: 'enrolment', device: DEVICE_ID, kid: w.device.keyId, key: w.device.publicKey, backend: 'software',
      request: requestFile === undefined ? sha256(utf8('stele vector enrolment request')) : sha256(requestFile.file),
      from: 1, time: enrolledAt, site: 'stack 2',
      installer: requestFile === undefined ? sha256(utf8('stele vector installer')) : requestFile.installer.keyId,
    },
    w.ingest,
  );
  const signerOf = (seq: number): Signer => {
    if (variant === 'unknown-key' && seq === 2) return stranger;
    if (variant === 'rotated-out-key' && seq === 6) return w.device;
    return seq < 4 ? w.device : rotated;
  };
  const readings: Signed[] = [];
  let prev = GENESIS_PREV;
  let rotation: Uint8Array = new Uint8Array();
  const rotationBody: LifecycleBody = { type: 'rotation', device: DEVICE_ID, kid: rotated.keyId, key: rotated.publicKey, backend: 'software', time: START_MS + 3 * INTERVAL_MS };
  for (let seq = 1; seq <= COUNT; seq++) {
    if (seq === 4) {
      rotation = await signLifecycleStatement(rotationBody, w.device, { seq, prev });
      prev = sha256(encodeLifecycleBody(rotationBody));
      continue;
    }
    const signed = await signReading(makeReading(seq, prev, 0), signerOf(seq));
    readings.push(signed);
    prev = readingDigest(signed.readingBytes);
  }
  const first = [enrolment, ...readings.slice(0, 3).map((r) => r.statement), rotation];
  const second = readings.slice(3).map((r) => r.statement);
  let revocation: Uint8Array | undefined;
  if (variant === 'revoked-key') {
    // Ingest revoked the rotated-in key after seq 5 had been committed: seq 6 came too late.
    revocation = await signLifecycleStatement({ type: 'revocation', device: DEVICE_ID, kid: rotated.keyId, after: 5, reason: 'stolen', time: START_MS + 5 * INTERVAL_MS }, w.ingest);
    second.push(revocation);
  }
  const b1 = await statementBatch(1, first, w.ingest, { blockNumber: 2, blockTime: Math.floor((START_MS + 3 * INTERVAL_MS) / 1000) + 60 });
  const b2 = await statementBatch(2, second, w.ingest, { blockNumber: 3, blockTime: Math.floor((START_MS + 5 * INTERVAL_MS) / 1000) + 60 });
  const entries: BundleEntry[] = readings.map((r, i) => {
    const [batchId, receipt] = i < 3 ? [1, b1.receipts[i + 1]!] : [2, b2.receipts[i - 3]!];
    return { seq: r.reading.seq, batchId, reading: r.readingBytes.slice(), statement: r.statement.slice(), receipt: receipt.slice() };
  });
  const request: Uint8Array | undefined = requestFile?.file.slice();
  if (variant === 'edited-request' && request !== undefined) request[request.length - 1] = request[request.length - 1]! ^ 0x01; // one bit of the installer's signature
  const lifecycle: EvidenceBundle['lifecycle'] & object = [
    { batchId: 1, statement: enrolment.slice(), receipt: b1.receipts[0]!.slice(), ...(request === undefined ? {} : { request }) },
    { batchId: 1, statement: rotation.slice(), receipt: b1.receipts[4]!.slice() },
  ];
  if (revocation !== undefined) lifecycle.push({ batchId: 2, statement: revocation.slice(), receipt: b2.receipts[2]!.slice() });
  const bundle: EvidenceBundle = {
    ...baseBundle(w),
    entries,
    lifecycle,
    batches: [
      { batchId: 1, size: first.length, root: b1.root, anchor: b1.ref },
      { batchId: 2, size: second.length, root: b2.root, anchor: b2.ref },
    ],
  };
  return { rotated, enrolment, rotation, rotationBody, bundle, chain: [b1.facts, b2.facts] };
}

function lifecycleFile(w: World, lw: LifecycleWorld): unknown {
  const describe = (bytes: Uint8Array) => ({
    statement: hex(bytes),
    statementB64url: toBase64Url(bytes),
    statementAnnotated: annotateCbor(bytes, LIFECYCLE_SIGN1_SCHEMA),
    leafHash: hex(hashLeaf(bytes)),
  });
  return {
    description:
      'Device lifecycle statements (FORMAT.md §13): the enrolment of the device key (signed by the ingest key, no seq) and the ' +
      'rotation at seq 4 to the rotated key (signed by the device key being retired, chained: seq 4, prev = digest of reading 3). ' +
      'The rotation body digest is what reading 5 carries in prev.',
    rotatedKey: { secretKey: ROTATED_SECRET_KEY_HEX, publicKey: hex(lw.rotated.publicKey), kid: hex(lw.rotated.keyId) },
    enrolment: describe(lw.enrolment),
    rotation: { ...describe(lw.rotation), body: hex(encodeLifecycleBody(lw.rotationBody)), bodyDigest: hex(sha256(encodeLifecycleBody(lw.rotationBody))) },
    deviceKid: hex(w.device.keyId),
  };
}

async function lifecycleCases(w: World): Promise<BundleCase[]> {
  const failed = (...codes: VerifyCode[]) => ({ state: 'failed' as const, codes });
  const specs: { variant: LifecycleVariant; description: string; codes: VerifyCode[] }[] = [
    {
      variant: 'rotated',
      description: 'Lifecycle data: enrolment, readings 1-3 under the device key, a key rotation at seq 4, readings 5-6 under the rotated key. Every check passes.',
      codes: [],
    },
    {
      variant: 'rotated-out-key',
      description: 'As `lifecycle-rotated`, but reading 6 is signed by the old device key, which the rotation retired at seq 4.',
      codes: ['KEY_ROTATED_ERROR'],
    },
    {
      variant: 'revoked-key',
      description: 'As `lifecycle-rotated`, plus a revocation of the rotated key after seq 5 (signed by ingest, in batch 2): reading 6 is under a revoked key.',
      codes: ['KEY_REVOKED_ERROR'],
    },
    {
      variant: 'enrolment-request',
      description: 'As `lifecycle-rotated`, with the enrolment request file (FORMAT.md §13.6) beside the enrolment statement, whose `request` is its SHA-256. Every check passes; the software key is declared, not attested.',
      codes: [],
    },
    {
      variant: 'edited-request',
      description: 'As `lifecycle-enrolment-request`, but one bit of the request file is flipped: it no longer hashes to the `request` ingest signed.',
      codes: ['DEVICE_RECORD_MISMATCH_ERROR'],
    },
    {
      variant: 'unknown-key',
      description: 'As `lifecycle-rotated`, but reading 2 is signed by a key never enrolled (its signature also fails under the enrolled key).',
      codes: ['UNKNOWN_KEY_ERROR', 'SIGNATURE_ERROR'],
    },
  ];
  const out: BundleCase[] = [];
  for (const spec of specs) {
    const lw = await lifecycleWorld(w, spec.variant);
    const ok = spec.codes.length === 0;
    out.push({
      name: `lifecycle-${spec.variant}`,
      description: spec.description,
      bundle: lw.bundle,
      chain: lw.chain,
      expected: ok ? { state: 'verified', codes: [] } : failed(...spec.codes),
      expectedOffline: ok ? { state: 'partial', codes: [] } : failed(...spec.codes),
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Device-level batches (FORMAT.md §3.1): readings 1..5 of the same chain signed with ONE device signature.

const DEVICE_BATCH_COUNT = 5;

/** The readings of seq 1..5 signed as one device-level batch; seq 6 alone; ingest batches 1..5 and 6 as before. */
async function deviceBatchWorld(w: World): Promise<{ signed: Signed[]; batches: Batch[] }> {
  const readings = w.signed.slice(0, DEVICE_BATCH_COUNT);
  const statements = await signBatchedStatements(readings.map((s) => s.readingBytes), w.device);
  const signed = [...readings.map((s, i) => ({ ...s, statement: statements[i]! })), w.signed[DEVICE_BATCH_COUNT]!];
  // The readings are the base world's (seq 6 names batch 1's root there): same times, same blocks.
  const batches = [
    await makeBatch(1, signed.slice(0, DEVICE_BATCH_COUNT), w.ingest, blockOf(1, w.batches[0]!.members)),
    await makeBatch(2, signed.slice(DEVICE_BATCH_COUNT), w.ingest, blockOf(2, w.batches[1]!.members)),
  ];
  return { signed, batches };
}

function deviceBatchFile(w: World, dw: { signed: Signed[] }): unknown {
  const members = dw.signed.slice(0, DEVICE_BATCH_COUNT);
  const first = members[0]!.reading;
  const protectedBytes = encodeStatementProtectedHeader({ kid: w.device.keyId, device: DEVICE_ID, seq: first.seq, prev: first.prev, batchSize: DEVICE_BATCH_COUNT });
  const digests = members.map((m) => readingDigest(m.readingBytes));
  const leaves = digests.map((d) => hashLeaf(d));
  const root = rootFromLeafHashes(leaves);
  const toBeSigned = sigStructure1(protectedBytes, root);
  const shown = members[2]!;
  return {
    description:
      'A device-level batch (FORMAT.md §3.1): readings seq 1..5 (those of reading.json) signed with ONE ES256 signature by the device key ' +
      '(RFC 6979, low-S) over the RFC 9162 root of their digests (leaf i = SHA-256(0x00 || digest of seq 1 + i)). Each reading keeps its own ' +
      'statement: payload = its digest, the shared batch protected header (labels 395 = 1 and -65540 = K added to those of §3, seq and prev of ' +
      'the first reading), its inclusion proof [K, i, path] in the unprotected header under 396 / -1, and the shared signature.',
    first: first.seq,
    count: DEVICE_BATCH_COUNT,
    kid: hex(w.device.keyId),
    protectedHeader: hex(protectedBytes),
    protectedHeaderAnnotated: annotateCbor(protectedBytes, HEADER_SCHEMA),
    readingDigests: digests.map(hex),
    batchLeafHashes: leaves.map(hex),
    batchRoot: hex(root),
    sigStructure: hex(toBeSigned),
    sigStructureSha256: hex(sha256(toBeSigned)),
    signature: hex(shown.statement.subarray(shown.statement.length - 64)),
    statements: members.map((m, i) => ({
      seq: m.reading.seq,
      index: i,
      path: inclusionProof(leaves, i).map(hex),
      statement: hex(m.statement),
      leafHash: hex(hashLeaf(m.statement)),
    })),
    statementOfSeq3Annotated: annotateCbor(shown.statement, SIGN1_SCHEMA),
  };
}

async function deviceBatchCases(w: World, dw: { signed: Signed[]; batches: Batch[] }): Promise<BundleCase[]> {
  const chain = dw.batches.map((b) => b.facts);
  const bundleOf = (): EvidenceBundle => structuredClone(baseBundle({ ...w, signed: dw.signed, batches: dw.batches }));
  const entryOf = (bundle: EvidenceBundle, seq: number): BundleEntry => bundle.entries.find((e) => e.seq === seq)!;
  const hashOnly = bundleOf();
  for (const seq of [2, 3, 4, 5]) delete entryOf(hashOnly, seq).reading;
  const tampered = bundleOf();
  const three = entryOf(tampered, 3);
  three.statement = flipByte(three.statement, -1);
  return [
    {
      name: 'device-batch',
      description: 'The six readings with seq 1..5 signed as one device-level batch (device-batch.json) and seq 6 alone, in ingest batches 1..5 and 6: every check passes.',
      bundle: bundleOf(),
      chain,
      expected: { state: 'verified', codes: [] },
      expectedOffline: { state: 'partial', codes: [] },
    },
    {
      name: 'device-batch-hash-only',
      description: 'As `device-batch` without the bodies of seq 2..5: inside the device batch the signed tree order is the chain link; verified.',
      bundle: hashOnly,
      chain,
      expected: { state: 'verified', codes: [] },
      expectedOffline: { state: 'partial', codes: [] },
    },
    {
      name: 'device-batch-tampered-signature',
      description: 'As `device-batch`, last byte of the (shared) device signature in the statement of seq 3 XOR 0x01: its signature fails, and the changed statement is no longer the ingest leaf.',
      bundle: tampered,
      chain,
      expected: { state: 'failed', codes: ['SIGNATURE_ERROR', 'INCLUSION_PROOF_ERROR'] },
      expectedOffline: { state: 'failed', codes: ['SIGNATURE_ERROR', 'INCLUSION_PROOF_ERROR'] },
    },
  ];
}

// ---------------------------------------------------------------------------------------------------------------

/**
 * FORMAT.md §15: a rule set, readings (JSON lines of the §2 reading shape) and everything the engine computes
 * from them at a fixed evaluation time. One hour of HJ 212 minute records (SO2 and O2 with varied decimals, two
 * minutes flagged C, one with O2 above the policy limit) and a probe with a 2-sample excursion.
 */
function alertsFile(): unknown {
  const ruleSet = {
    format: 'stele-rules/1',
    name: 'vectors',
    utcOffset: '+08:00',
    rules: [
      { id: 'so2-ultra-low', type: 'emission-hourly', standard: 'ultra-low', version: '2015-12-11', params: { pollutants: [{ code: 'a21026', limit: '35', unit: 'mg/m³' }], referenceO2: '6', o2Policy: { maxO2: '19', action: 'exclude' } } },
      { id: 'cold-2-8', type: 'cold-chain', standard: 'GSP', version: '1', params: { profile: '2-8 C', low: '2', high: '8', maxContinuousMs: 300_000 } },
    ],
  };
  const minute = (i: number) => {
    const so2 = `${30 + ((i * 7) % 13)}.${(i * 3) % 10}`;
    const o2 = i === 30 ? '19.5' : `${8 + ((i * 5) % 7)}.${(i * 7) % 10}`;
    const d = new Date(Date.UTC(2026, 10, 20, 14, i));
    const itime = `${d.toISOString().slice(0, 10).replace(/-/g, '')}${d.toISOString().slice(11, 16).replace(':', '')}00`;
    return { sensor: 'MN-0001', time: START_MS + (i + 1) * 60_000 + 250, clock: { synced: true, source: 'ntp' }, itime, rtype: '2051', raw: [sha256(utf8(`minute ${i}`))],
      meas: [{ code: 'a21026', kind: 'Avg', value: so2, unit: 'mg/m3', flag: i === 12 || i === 13 ? 'C' : 'N' }, { code: 'a19001', kind: 'Avg', value: o2, unit: '%', flag: 'N' }] };
  };
  const probe = ['5.1', '6.0', '8.4', '8.9', '7.5', '5.0'].map((v, i) => ({ sensor: 'room-1', time: START_MS + i * 300_000, clock: { synced: true, source: 'ntp' }, raw: [], meas: [{ code: '28-0316a2795cff', kind: 'temperature', value: v, unit: '°C' }] }));
  const lines: string[] = [];
  const evals: EvalReading[] = [];
  for (const [device, items] of [['gw-cems', Array.from({ length: 50 }, (_, i) => minute(i))], ['gw-cold', probe]] as const) {
    let prev = GENESIS_PREV;
    items.forEach((it, i) => {
      const e = evalReading({ v: 1, device, seq: i + 1, prev, ...(it as Omit<Reading, 'v' | 'device' | 'seq' | 'prev'>) });
      prev = fromHex(e.digest);
      evals.push(e);
      lines.push(JSON.stringify(readingJsonView(e.reading)));
    });
  }
  const at = START_MS + 3_600_000;
  return {
    description:
      'FORMAT.md §15: `stele alerts eval --rules <ruleSet> --readings <readings, one per line> --at <atIso>` prints `expected` with --json. ' +
      'Minute values are decimal text with varied digits; corrected values are rounded half to even to 6 decimals, means to 4; exceedance compares exact values.',
    ruleSet,
    readings: lines,
    atIso: new Date(at).toISOString(),
    expected: evaluateRuleSet(parseRuleSet(ruleSet), evals, { at }),
  };
}

/**
 * FORMAT.md §15.7, §15.8: a bundle carrying an alert. The probe of alerts.json (samples every 5 minutes: 5.1, 6.0,
 * 8.4, 8.9, 7.5, 5.0 °C) as six readings of the vector device in one anchored batch; the alert is the 10-minute
 * excursion of the 2-8 °C rule (maxContinuousMs 5 min), evaluated one hour after the first sample.
 */
async function alertCases(w: World): Promise<BundleCase[]> {
  const rule = { id: 'cold-2-8', type: 'cold-chain' as const, standard: 'GSP', version: '1', params: { profile: '2-8 C', low: '2', high: '8', maxContinuousMs: 300_000 } };
  const signed: Signed[] = [];
  let prev = GENESIS_PREV;
  for (const [i, value] of ['5.1', '6.0', '8.4', '8.9', '7.5', '5.0'].entries()) {
    const reading: Reading = {
      v: 1, device: DEVICE_ID, sensor: 'room-1', seq: i + 1, prev, time: START_MS + i * 300_000, clock: { synced: true, source: 'ntp' },
      meas: [{ code: '28-0316a2795cff', kind: 'temperature', value, unit: '°C' }], raw: [sha256(utf8(`w1_slave of sample ${i + 1}`))],
    };
    const s = await signReading(reading, w.device);
    signed.push(s);
    prev = readingDigest(s.readingBytes);
  }
  const batch = await makeBatch(1, signed, w.ingest);
  const result = evaluateRuleSet(parseRuleSet({ format: 'stele-rules/1', utcOffset: '+08:00', rules: [rule] }), signed.map((s) => evalReading(s.reading)), { at: START_MS + 3_600_000 });
  const alert = JSON.parse(JSON.stringify(result.alerts.find((a) => a.kind === 'cold-chain-excursion'))) as Record<string, unknown> & { values: Record<string, unknown> };
  const base = (): EvidenceBundle => ({ ...structuredClone(baseBundle({ ...w, signed, batches: [batch] })), alert: structuredClone(alert) });
  const failed = (...codes: VerifyCode[]) => ({ state: 'failed' as const, codes });
  const removed = base();
  removed.entries = removed.entries.filter((e) => e.seq !== 4);
  const altered = base();
  const e3 = altered.entries.find((e) => e.seq === 3)!;
  const r3 = decodeReading(e3.reading!);
  r3.meas[0]!.value = '7.9';
  e3.reading = encodeReading(r3);
  const edited = base();
  (edited.alert as { values: Record<string, unknown> }).values.continuousMs = 240_000;
  return [
    {
      name: 'alert',
      description: 'Six probe samples with a cold-chain excursion alert (§15.7): check 9 recomputes it from the readings and the window 1..6 covers the excursion (seq 1 to a sample after it); verified.',
      bundle: base(),
      chain: [batch.facts],
      expected: { state: 'verified', codes: [] },
      expectedOffline: { state: 'partial', codes: [] },
    },
    {
      name: 'alert-removed-reading',
      description: 'As `alert` without the entry of seq 4 (a sample of the excursion): the completeness code; the alert cannot be recomputed (unchecked).',
      bundle: removed,
      chain: [batch.facts],
      expected: failed('SEQUENCE_GAP_ERROR'),
      expectedOffline: failed('SEQUENCE_GAP_ERROR'),
    },
    {
      name: 'alert-tampered-value',
      description: 'As `alert` with the temperature of seq 3 changed to 7.9 and the reading re-encoded: the digest code (the altered body is not used for check 9).',
      bundle: altered,
      chain: [batch.facts],
      expected: failed('DIGEST_MISMATCH_ERROR'),
      expectedOffline: failed('DIGEST_MISMATCH_ERROR'),
    },
    {
      name: 'alert-edited-value',
      description: "As `alert` with the alert's `values.continuousMs` edited from 600000 to 240000 (under the 5-minute limit): ALERT_MISMATCH_ERROR.",
      bundle: edited,
      chain: [batch.facts],
      expected: failed('ALERT_MISMATCH_ERROR'),
      expectedOffline: failed('ALERT_MISMATCH_ERROR'),
    },
  ];
}

/** One alert's evidence across two devices (FORMAT.md §7.2). */
interface SetCase {
  name: string;
  description: string;
  set: EvidenceSet;
  chain: AnchorFacts[];
  expected: { state: VerdictState; codes: VerifyCode[] };
  expectedOffline: { state: VerdictState; codes: VerifyCode[] };
}

/** The second device of the evidence set vectors (a lab gateway): a public test key like the others. */
export const LAB_SECRET_KEY_HEX = 'a5b1d3c9e7f20468ace13579bdf02468ace13579bdf02468ace13579bdf0246a';
const LAB_DEVICE_ID = 'gw-lab-0001';

/**
 * FORMAT.md §7.2: a custody break across two gateways. The vector device records the sampling of S1 and its
 * hand-over to wang (then a plain reading two hours later); the lab gateway records the preparation of P1 from S1
 * by sun, who does not hold the sample (then a plain reading). The coal-lab rule gives CUSTODY_HOLDER_MISMATCH
 * naming a reading of each device. Batch 1 holds the first device's readings, batch 2 the lab's.
 */
async function setCases(w: World): Promise<SetCase[]> {
  const lab = fixedSigner(LAB_SECRET_KEY_HEX);
  const at = (h: number): string => `2026-11-20T${String(14 + h).padStart(2, '0')}:00:00+08:00`;
  const custody = (f: Record<string, string>): Reading['meas'] =>
    Object.entries(f).map(([code, value]) => ({ code, kind: 'custody', value, ...(code === 'weight' ? { unit: 'g' } : {}) }));
  const chainOf = async (device: string, signer: Signer, start: number, metas: Reading['meas'][]): Promise<Signed[]> => {
    const out: Signed[] = [];
    let prev = GENESIS_PREV;
    for (const [i, meas] of metas.entries()) {
      const reading: Reading = { v: 1, device, sensor: 'custody', seq: i + 1, prev, time: start + i * 3_600_000, clock: { synced: true, source: 'ntp' }, meas, raw: [] };
      const signed = await signReading(reading, signer);
      out.push(signed);
      prev = readingDigest(signed.readingBytes);
    }
    return out;
  };
  const closing = [{ code: 'temp', kind: 'Rtd', value: '20.0', unit: '°C', flag: 'N' }];
  const yardSigned = await chainOf(DEVICE_ID, w.device, START_MS, [
    custody({ step: 'sampling', at: at(0), by: 'li', code: 'S1', batch: 'B1', weight: '1000' }),
    custody({ step: 'handover', at: at(1), by: 'li', to: 'wang', code: 'S1', weight: '995' }),
    closing,
  ]);
  const labSigned = await chainOf(LAB_DEVICE_ID, lab, START_MS + 2 * 3_600_000, [custody({ step: 'preparation', at: at(2), by: 'sun', code: 'P1', fromCode: 'S1', weight: '100' }), closing]);
  const yardBatch = await makeBatch(1, yardSigned, w.ingest);
  const labBatch = await makeBatch(2, labSigned, w.ingest);
  const rule = { id: 'coal-custody', type: 'coal-lab' as const, standard: 'GB/T 474-2008', version: '1', params: {} };
  const result = evaluateRuleSet(parseRuleSet({ format: 'stele-rules/1', utcOffset: '+08:00', rules: [rule] }), [...yardSigned, ...labSigned].map((x) => evalReading(x.reading)), { at: START_MS + 6 * 3_600_000 });
  const alert = JSON.parse(JSON.stringify(result.alerts.find((a) => a.subject === 'P1'))) as Record<string, unknown> & { values: Record<string, unknown> };
  const yardBundle = baseBundle({ ...w, signed: yardSigned, batches: [yardBatch] });
  yardBundle.window = { firstSeq: 1, lastSeq: yardSigned.length };
  const labBundle = baseBundle({ ...w, device: lab, signed: labSigned, batches: [labBatch] });
  labBundle.device = { ...labBundle.device, deviceId: LAB_DEVICE_ID, site: 'Example plant, coal lab' };
  labBundle.window = { firstSeq: 1, lastSeq: labSigned.length };
  const base = (): EvidenceSet => ({ format: EVIDENCE_SET_FORMAT, createdAt: '2026-11-20T23:00:00.000Z', alert: structuredClone(alert), bundles: [structuredClone(yardBundle), structuredClone(labBundle)] });
  const chain = [yardBatch.facts, labBatch.facts];
  const removed = base();
  removed.bundles[1]!.entries = removed.bundles[1]!.entries.filter((e) => e.seq !== 1);
  const edited = base();
  (edited.alert as { values: Record<string, unknown> }).values.by = 'wang';
  return [
    {
      name: 'set-custody',
      description: "An evidence set (§7.2): a custody hand-over on gw-0001 and the preparation by someone else on gw-lab-0001; check 9 recomputes the coal-custody-break over both devices' readings and both windows cover it; verified.",
      set: base(),
      chain,
      expected: { state: 'verified', codes: [] },
      expectedOffline: { state: 'partial', codes: [] },
    },
    {
      name: 'set-custody-removed-reading',
      description: "As `set-custody` without the lab's seq 1 (the preparation): the completeness code in the lab's bundle; the alert cannot be recomputed (unchecked).",
      set: removed,
      chain,
      expected: { state: 'failed', codes: ['SEQUENCE_GAP_ERROR'] },
      expectedOffline: { state: 'failed', codes: ['SEQUENCE_GAP_ERROR'] },
    },
    {
      name: 'set-custody-edited-value',
      description: "As `set-custody` with the alert's `values.by` edited from sun to wang: ALERT_MISMATCH_ERROR.",
      set: edited,
      chain,
      expected: { state: 'failed', codes: ['ALERT_MISMATCH_ERROR'] },
      expectedOffline: { state: 'failed', codes: ['ALERT_MISMATCH_ERROR'] },
    },
  ];
}

/** Every vector file: path relative to test/vectors/ -> contents. Deterministic. */
export async function generateVectors(): Promise<Map<string, string>> {
  const w = await buildWorld();
  const files = new Map<string, string>();
  files.set('keys.json', json(keysFile(w)));
  files.set('reading.json', json(readingFile(w)));
  files.set('statement.json', json(statementFile(w)));
  files.set('batch.json', json(batchFile(w)));
  files.set('receipt.json', json(receiptFile(w)));
  files.set('anchor.json', json(anchorFile(w)));
  const confirmations = await confirmationFile(w);
  files.set('confirmation.json', json(confirmations.file));
  files.set('mqtt.json', json(mqttFile(w, confirmations.stored)));
  files.set('outbox.json', json(outboxFile(w)));
  files.set('lifecycle.json', json(lifecycleFile(w, await lifecycleWorld(w, 'rotated'))));
  const dw = await deviceBatchWorld(w);
  files.set('device-batch.json', json(deviceBatchFile(w, dw)));
  files.set('alerts.json', json(alertsFile()));
  files.set('trust.json', json(await trustFile(w)));
  const v1Cases = [...(await bundleCases(w)), ...(await lifecycleCases(w)), ...(await deviceBatchCases(w, dw)), ...(await alertCases(w))];
  for (const c of [...v1Cases, ...compactCases(w, dw, v1Cases)]) {
    let bytes: Uint8Array;
    if (c.form === 2) {
      const obj = bundleToJson(c.bundle, { form: 2 });
      c.edit?.(obj);
      bytes = new TextEncoder().encode(`${JSON.stringify(obj, null, 2)}\n`);
    } else bytes = encodeBundle(c.bundle);
    files.set(`bundles/${c.name}.bundle.json`, new TextDecoder().decode(bytes));
    files.set(
      `bundles/${c.name}.expected.json`,
      json({
        description: c.description,
        bundle: `${c.name}.bundle.json`,
        bundleSha256: bundleDigest(bytes),
        chain: c.chain,
        expected: c.expected,
        expectedOffline: c.expectedOffline,
      }),
    );
  }
  for (const c of await setCases(w)) {
    const bytes = new TextEncoder().encode(`${JSON.stringify(evidenceSetToJson(c.set, { form: 1 }), null, 2)}\n`);
    files.set(`bundles/${c.name}.bundle.json`, new TextDecoder().decode(bytes));
    files.set(
      `bundles/${c.name}.expected.json`,
      json({ description: c.description, bundle: `${c.name}.bundle.json`, bundleSha256: bundleDigest(bytes), chain: c.chain, expected: c.expected, expectedOffline: c.expectedOffline }),
    );
  }
  files.set('alert-notice.json', json(alertNoticeFile(JSON.parse(files.get('bundles/alert.bundle.json')!) as { alert: Alert })));
  return files;
}

/** FORMAT.md §15.9: the notice of the `alert` bundle's alert, as the webhook and the MQTT channel send it at one t. */
function alertNoticeFile(bundle: { alert: Alert }): unknown {
  const secret = utf8('stele-alert-notice-vector-secret-0123456789');
  const t = 1_764_720_000_000;
  const body = noticeBody(bundle.alert, 'stele-ingest');
  const payload = mqttNotice(secret, t, body);
  return {
    description:
      'FORMAT.md §15.9: the notice of the alert of bundles/alert.bundle.json (issuer stele-ingest) at t, under the secret (its UTF-8 bytes). ' +
      'mac = HMAC-SHA256(secret, "stele-alert-notice/1" LF t LF body); the webhook sends body with these headers, MQTT sends payload on stele/v1/alerts.',
    secret: 'stele-alert-notice-vector-secret-0123456789',
    t,
    body: new TextDecoder().decode(body),
    mac: hex(noticeMac(secret, t, body)),
    webhookHeaders: webhookHeaders(secret, t, body, bundle.alert.id),
    mqtt: { topic: 'stele/v1/alerts', qos: 1, payload: hex(payload), annotated: annotateCbor(payload, {}, { elideBytesOver: 64 }) },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Compact bundles (FORMAT.md §7.1, `stele-evidence/2`).

/** The v1 cases that ingest could have written compactly, as `v2-<name>`, and the changes only the compact form carries. */
function compactCases(w: World, dw: { signed: Signed[]; batches: Batch[] }, v1Cases: BundleCase[]): BundleCase[] {
  const cases: BundleCase[] = [];
  const flipB64 = (text: string, index: number): string => toBase64Url(flipByte(fromBase64Url(text), index));
  for (const c of v1Cases) {
    try {
      bundleToJson(c.bundle, { form: 2 });
    } catch {
      continue; // e.g. tampered-proof-node: receipts that do not describe one tree have no compact form
    }
    cases.push({ ...c, name: `v2-${c.name}`, description: `\`${c.name}\` in the compact form: the same verdict. ${c.description}`, form: 2 });
  }
  const chain = w.batches.map((b) => b.facts);
  const part = structuredClone(baseBundle(w));
  part.window = { firstSeq: 2, lastSeq: 4 };
  part.entries = part.entries.filter((e) => e.seq >= 2 && e.seq <= 4);
  part.batches = part.batches.filter((b) => b.batchId === 1);
  const ok = { state: 'verified' as const, codes: [] };
  const partial = { state: 'partial' as const, codes: [] };
  cases.push({
    name: 'v2-part-of-batch',
    description: 'Seq 2..4 only, leaves 1..3 of the five of batch 1: the batch carries nodes [leaf 0, leaf 4] for the leaves the bundle does not hold; verified.',
    bundle: part, chain: chain.slice(0, 1), expected: ok, expectedOffline: partial, form: 2,
  });
  cases.push({
    name: 'v2-tampered-node',
    description: '`v2-part-of-batch` with the first byte of batch 1\'s first node XOR 0x01: every rebuilt proof leads to another root.',
    bundle: part, chain: chain.slice(0, 1),
    expected: { state: 'failed', codes: ['INCLUSION_PROOF_ERROR'] }, expectedOffline: { state: 'failed', codes: ['INCLUSION_PROOF_ERROR'] }, form: 2,
    edit: (j) => { j.batches[0].nodes[0] = flipB64(j.batches[0].nodes[0], 0); },
  });
  cases.push({
    name: 'v2-tampered-receipt-signature',
    description: '`v2-valid` with the last byte of batch 1\'s receipt signature XOR 0x01.',
    bundle: structuredClone(baseBundle(w)), chain,
    expected: { state: 'failed', codes: ['RECEIPT_SIGNATURE_ERROR'] }, expectedOffline: { state: 'failed', codes: ['RECEIPT_SIGNATURE_ERROR'] }, form: 2,
    edit: (j) => { j.batches[0].receipt.signature = flipB64(j.batches[0].receipt.signature, -1); },
  });
  cases.push({
    name: 'v2-tampered-statement-signature',
    description: '`v2-valid` with the last byte of the statement of seq 3 XOR 0x01: as `tampered-statement-signature`.',
    bundle: structuredClone(baseBundle(w)), chain,
    expected: { state: 'failed', codes: ['SIGNATURE_ERROR', 'INCLUSION_PROOF_ERROR'] }, expectedOffline: { state: 'failed', codes: ['SIGNATURE_ERROR', 'INCLUSION_PROOF_ERROR'] }, form: 2,
    edit: (j) => { const e = j.entries.find((x: { seq: number }) => x.seq === 3); e.statement = flipB64(e.statement, -1); },
  });
  const device = structuredClone(baseBundle({ ...w, signed: dw.signed, batches: dw.batches }));
  const dchain = dw.batches.map((b) => b.facts);
  cases.push({
    name: 'v2-tampered-device-signature',
    description: '`v2-device-batch` with the last byte of the device-level batch signature XOR 0x01: all five statements fail, and none is the ingest leaf any more.',
    bundle: device, chain: dchain,
    expected: { state: 'failed', codes: ['SIGNATURE_ERROR', 'INCLUSION_PROOF_ERROR'] }, expectedOffline: { state: 'failed', codes: ['SIGNATURE_ERROR', 'INCLUSION_PROOF_ERROR'] }, form: 2,
    edit: (j) => { j.deviceBatches[0].signature = flipB64(j.deviceBatches[0].signature, -1); },
  });
  cases.push({
    name: 'v2-tampered-digest',
    description: '`v2-device-batch` with the first byte of the digest of seq 3 XOR 0x01: the body no longer hashes to it, the device batch root moves (all five signatures fail), and the changed statements are not the ingest leaves, and the body of seq 4 no longer links to seq 3.',
    bundle: device, chain: dchain,
    expected: { state: 'failed', codes: ['SIGNATURE_ERROR', 'DIGEST_MISMATCH_ERROR', 'CHAIN_LINK_ERROR', 'INCLUSION_PROOF_ERROR'] }, expectedOffline: { state: 'failed', codes: ['SIGNATURE_ERROR', 'DIGEST_MISMATCH_ERROR', 'CHAIN_LINK_ERROR', 'INCLUSION_PROOF_ERROR'] }, form: 2,
    edit: (j) => { const e = j.entries.find((x: { seq: number }) => x.seq === 3); e.digest = flipB64(e.digest, 0); },
  });
  return cases;
}

// ---------------------------------------------------------------------------------------------------------------
// Trust policy (FORMAT.md §14).

/** The policy JSON of the vectors: the vector ingest key and the anchor target of the bundles, then `edit`. */
function vectorPolicyJson(w: World, edit: (p: Record<string, unknown>) => void = () => undefined, authority = fixedSigner(AUTHORITY_SECRET_KEY_HEX)): Uint8Array {
  const draft = draftTrustPolicy({
    ingest: { publicKey: w.ingest.publicKey, issuer: ISSUER, validFrom: '2026-01-01T00:00:00Z' },
    anchors: [{ chainId: CHAIN_ID, contract: CONTRACT, startBlock: 0, endpoints: [{ operator: 'vector chain', url: 'http://127.0.0.1:8545' }], quorum: 1 }],
  });
  const json = completePolicyDraft(draft, { authorityName: 'Vector authority', authorityPublicKey: authority.publicKey, version: 2, issuedAt: '2026-11-01T00:00:00Z', expiresAt: '2027-11-01T00:00:00Z' });
  const obj = JSON.parse(new TextDecoder().decode(json)) as Record<string, unknown>;
  edit(obj);
  return new TextEncoder().encode(`${JSON.stringify(obj, null, 2)}\n`);
}

/** Signs policy bytes as they are (no payload check): for vectors a careful signer would refuse. */
async function signPolicyRaw(payload: Uint8Array, signer: Signer): Promise<Uint8Array> {
  const protectedBytes = encodeDeterministic(new Map<number, unknown>([[1, -7], [3, TRUST_POLICY_CONTENT_TYPE], [4, signer.keyId]]));
  return encodeSign1({ protectedBytes, unprotectedHeader: new Map(), payload, signature: await signer.sign(sigStructure1(protectedBytes, payload)) });
}

async function trustFile(w: World): Promise<Record<string, unknown>> {
  const authority = fixedSigner(AUTHORITY_SECRET_KEY_HEX);
  const payload = vectorPolicyJson(w);
  const policy = await signTrustPolicy(payload, authority);
  const keyOf = (k: Signer) => ({ alg: 'ES256', publicKey: toBase64Url(k.publicKey), kid: toBase64Url(k.keyId) });
  const edits: { name: string; description: string; edit?: (p: Record<string, unknown>) => void; raw?: (p: string) => string; authority?: Signer; minVersion?: number; now?: string; expect: Record<string, unknown> }[] = [
    { name: 'valid', description: 'The policy above: valid.bundle.json verifies with the chain facts of its expected file.', expect: { bundle: 'valid', state: 'verified', codes: [] } },
    {
      name: 'untrusted-key',
      description: 'Lists another ingest key under the same issuer: the bundle fails with UNTRUSTED_INGEST_KEY_ERROR.',
      edit: (p) => ((p.ingestKeys as Record<string, unknown>[])[0] = { ...keyOf(fixedSigner(OTHER_INGEST_SECRET_KEY_HEX)), issuer: ISSUER, validFrom: '2026-01-01T00:00:00Z', state: 'active' }),
      expect: { bundle: 'valid', state: 'failed', codes: ['UNTRUSTED_INGEST_KEY_ERROR'] },
    },
    {
      name: 'key-outside-window',
      description: 'The ingest key retired on 2026-11-01, before the bundle\'s batches were anchored (2026-11-20): INGEST_KEY_WINDOW_ERROR per batch.',
      edit: (p) => Object.assign((p.ingestKeys as Record<string, unknown>[])[0]!, { validUntil: '2026-11-01T00:00:00Z', state: 'retired' }),
      expect: { bundle: 'valid', state: 'failed', codes: ['INGEST_KEY_WINDOW_ERROR'] },
    },
    {
      name: 'untrusted-anchor',
      description: 'Lists another contract on the same chain: UNTRUSTED_ANCHOR_ERROR per batch.',
      edit: (p) => ((p.anchors as Record<string, unknown>[])[0]!.contract = `0x${'11'.repeat(20)}`),
      expect: { bundle: 'valid', state: 'failed', codes: ['UNTRUSTED_ANCHOR_ERROR'] },
    },
    {
      name: 'expired',
      description: 'The valid policy read on 2028-01-01, after its expiresAt: the verdict is partial, check 11 open with TRUST_POLICY_EXPIRED.',
      now: '2028-01-01T00:00:00Z',
      expect: { bundle: 'valid', state: 'partial', codes: [], trustCode: 'TRUST_POLICY_EXPIRED' },
    },
    { name: 'rolled-back', description: 'Version 2 offered to a verifier that already accepted version 3: POLICY_ROLLBACK_ERROR.', minVersion: 3, expect: { load: 'POLICY_ROLLBACK_ERROR' } },
    {
      name: 'unknown-kind',
      description: 'An extra anchor target of kind "chainmaker": that entry alone is unusable (skipped), the bundle verifies.',
      edit: (p) => (p.anchors as unknown[]).push({ kind: 'chainmaker', chainId: 'chain1', contract: 'stele_anchor' }),
      expect: { bundle: 'valid', state: 'verified', codes: [], skipped: ['$.anchors[1]'] },
    },
    { name: 'duplicate-names', description: 'A second "version" member, signed by the authority: POLICY_FORMAT_ERROR (duplicate names are refused).', raw: (t) => t.replace('"version": 2,', '"version": 2,\n  "version": 9,'), expect: { load: 'POLICY_FORMAT_ERROR' } },
    { name: 'other-authority', description: 'The valid policy signed by another key naming itself as authority: POLICY_AUTHORITY_ERROR against the pinned fingerprint.', authority: fixedSigner(OTHER_INGEST_SECRET_KEY_HEX), expect: { load: 'POLICY_AUTHORITY_ERROR' } },
  ];
  const cases = [];
  for (const e of edits) {
    const signer = e.authority ?? authority;
    let bytes = vectorPolicyJson(w, e.edit, signer);
    if (e.raw !== undefined) bytes = new TextEncoder().encode(e.raw(new TextDecoder().decode(bytes)));
    const cose = e.raw !== undefined ? await signPolicyRaw(bytes, signer) : await signTrustPolicy(bytes, signer);
    cases.push({ name: e.name, description: e.description, policy: toHex(cose), ...(e.minVersion !== undefined ? { minVersion: e.minVersion } : {}), now: e.now ?? '2026-12-01T00:00:00Z', expect: e.expect });
  }
  return {
    description:
      'Trust policy vectors (FORMAT.md §14): the authority key, the signed policy (a tagged COSE_Sign1 whose payload is the exact policy JSON) and ' +
      'cases, each a signed policy (hex) with the verifier clock `now`, and either the error loading it must give (`load`) or the verdict of ' +
      '`bundles/valid.bundle.json` under it with the chain facts of `bundles/valid.expected.json`.',
    authority: { secretKey: AUTHORITY_SECRET_KEY_HEX, publicKey: toBase64Url(authority.publicKey), fingerprint: toHex(authority.keyId) },
    contentType: TRUST_POLICY_CONTENT_TYPE,
    payload: new TextDecoder().decode(payload),
    protectedHeader: toHex(encodeDeterministic(new Map<number, unknown>([[1, -7], [3, TRUST_POLICY_CONTENT_TYPE], [4, authority.keyId]]))),
    policy: toHex(policy),
    policySha256: toHex(sha256(policy)),
    cases,
  };
}

/** test/vectors/ of this checkout. */
export const VECTORS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'vectors');

async function main(): Promise<void> {
  const files = await generateVectors();
  for (const [name, contents] of files) {
    const path = resolve(VECTORS_DIR, name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, contents);
  }
  process.stdout.write(`wrote ${files.size} files to ${VECTORS_DIR}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  });
}
