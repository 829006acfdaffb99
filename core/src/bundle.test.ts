import { describe, expect, it } from 'vitest';
import { bundleDigest, bundleToJson, parseBundle, parseBundleBytes } from './bundle.ts';
import { toHex, utf8 } from './bytes.ts';
import { FormatError } from './errors.ts';
import { sha256 } from './hash.ts';
import { buildTestBundle } from './verify/test-bundle.ts';

const built = await buildTestBundle({ count: 4 });
const json = (): Record<string, any> => JSON.parse(new TextDecoder().decode(built.bytes));

function errorOf(f: () => unknown): FormatError {
  try {
    f();
  } catch (e) {
    if (e instanceof FormatError) return e;
    throw e;
  }
  throw new Error('expected a FormatError');
}

describe('parseBundle', () => {
  it('parses the JSON form and decodes every binary field', () => {
    const b = parseBundle(json());
    expect(b).toEqual(built.bundle);
    expect(b.entries[0]!.statement).toBeInstanceOf(Uint8Array);
    expect(b.batches[0]!.root).toHaveLength(32);
    expect(bundleToJson(b)).toEqual(json());
  });

  it('does not require entries sorted by seq', () => {
    const j = json();
    j.entries.reverse();
    expect(parseBundle(j).entries.map((e) => e.seq)).toEqual([4, 3, 2, 1]);
  });

  it('accepts an EIP-55 mixed-case contract address and normalises it', () => {
    const j = json();
    j.batches[0].anchor.contract = '0x5FbDB2315678afecb367f032d93F642f64180aa3';
    expect(parseBundle(j).batches[0]!.anchor!.contract).toBe('0x5fbdb2315678afecb367f032d93f642f64180aa3');
  });

  const cases: [string, (j: Record<string, any>) => void, string][] = [
    ['not base64url', (j) => (j.entries[3].statement = 'ab+/'), '$.entries[3].statement'],
    ['padding', (j) => (j.entries[1].receipt = `${j.entries[1].receipt}==`), '$.entries[1].receipt'],
    ['a missing key', (j) => delete j.entries[2].receipt, '$.entries[2].receipt'],
    ['an unknown key', (j) => (j.entries[0].extra = 1), '$.entries[0].extra'],
    ['a wrong format', (j) => (j.format = 'stele-evidence/3'), '$.format'],
    ['a string seq', (j) => (j.entries[0].seq = '1'), '$.entries[0].seq'],
    ['a fractional batch id', (j) => (j.entries[0].batchId = 1.5), '$.entries[0].batchId'],
    ['seq 0', (j) => (j.entries[0].seq = 0), '$.entries[0].seq'],
    ['a short kid', (j) => (j.device.kid = 'AAAA'), '$.device.kid'],
    ['a compressed public key', (j) => (j.ingest.publicKey = `A${j.ingest.publicKey.slice(1)}`), '$.ingest.publicKey'],
    ['an unknown key backend', (j) => (j.device.keyBackend = 'hsm'), '$.device.keyBackend'],
    ['an upper-case root', (j) => (j.batches[0].root = j.batches[0].root.toUpperCase().replace('0X', '0x')), '$.batches[0].root'],
    ['a root without 0x', (j) => (j.batches[1].root = j.batches[1].root.slice(2)), '$.batches[1].root'],
    ['a bad tx hash', (j) => (j.batches[0].anchor.txHash = '0x12'), '$.batches[0].anchor.txHash'],
    ['a non-http rpc', (j) => (j.batches[0].anchor.rpc = 'file:///etc/passwd'), '$.batches[0].anchor.rpc'],
    ['a reversed window', (j) => (j.window = { firstSeq: 3, lastSeq: 2 }), '$.window'],
    ['an entry outside the window', (j) => (j.window.lastSeq = 3), '$.entries[3].seq'],
    ['an entry naming an unlisted batch', (j) => (j.entries[0].batchId = 9), '$.entries[0].batchId'],
    ['a batch listed twice', (j) => j.batches.push(j.batches[0]), '$.batches[2].batchId'],
    ['a bad createdAt', (j) => (j.createdAt = 'yesterday'), '$.createdAt'],
    ['entries not an array', (j) => (j.entries = {}), '$.entries'],
  ];
  for (const [what, change, path] of cases) {
    it(`rejects ${what} with BUNDLE_FORMAT_ERROR at ${path}`, () => {
      const j = json();
      change(j);
      const e = errorOf(() => parseBundle(j));
      expect(e.code).toBe('BUNDLE_FORMAT_ERROR');
      expect(e.where).toEqual({ path });
    });
  }

  it('rejects non-objects at $', () => {
    for (const v of [null, [], 'x', 3]) expect(errorOf(() => parseBundle(v)).where).toEqual({ path: '$' });
  });
});

describe('parseBundleBytes', () => {
  it('rejects truncated JSON and bad UTF-8 at $', () => {
    expect(errorOf(() => parseBundleBytes(built.bytes.subarray(0, 100))).where).toEqual({ path: '$' });
    expect(errorOf(() => parseBundleBytes(new Uint8Array([0x7b, 0xff, 0x7d]))).code).toBe('BUNDLE_FORMAT_ERROR');
  });
});

describe('bundleDigest', () => {
  it('is the lowercase hex SHA-256 of the file bytes', () => {
    expect(bundleDigest(utf8('abc'))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(bundleDigest(built.bytes)).toBe(toHex(sha256(built.bytes)));
  });
});
