import { describe, expect, it } from 'vitest';
import { equalBytes, utf8 } from '../bytes.ts';
import { decodeCbor, encodeCbor, Tagged } from '../cbor.ts';
import { signStatement } from '../cose/index.ts';
import { sha256 } from '../hash.ts';
import { encodeReading, GENESIS_PREV } from '../reading.ts';
import { testSigner } from '../verify/test-bundle.ts';
import {
  buildKeyTimeline,
  decodeLifecycleBody,
  encodeLifecycleBody,
  isLifecycleStatement,
  keyStatusAt,
  LIFECYCLE_CONTENT_TYPE,
  parseLifecycleStatement,
  signLifecycleStatement,
  verifyLifecycleSignature,
  type KeySpan,
  type LifecycleBody,
  type ParsedLifecycle,
} from './index.ts';

const device = testSigner('device');
const next = testSigner('next');
const ingest = testSigner('ingest');
const stranger = testSigner('stranger');
const D = 'gw-life-1';

const enrolment = (from = 1, signer = device): LifecycleBody => ({
  type: 'enrolment', device: D, kid: signer.keyId, key: signer.publicKey, backend: 'pkcs11', request: sha256(utf8('req')), from, time: 1_795_000_000_000, site: 'stack 2', installer: sha256(utf8('installer')),
});
const rotation = (to = next): LifecycleBody => ({ type: 'rotation', device: D, kid: to.keyId, key: to.publicKey, backend: 'tpm', time: 1_795_000_100_000 });
const revocation = (after: number, kid = device.keyId): LifecycleBody => ({ type: 'revocation', device: D, kid, after, reason: 'stolen', time: 1_795_000_200_000 });
const link = (seq: number) => ({ seq, prev: sha256(utf8(`prev ${seq}`)) });

describe('lifecycle statements', () => {
  it('round-trip each type: parse gives back body, kid, seq and prev, and the signature verifies', async () => {
    const cases: [LifecycleBody, typeof device, ReturnType<typeof link> | undefined][] = [
      [enrolment(), ingest, undefined],
      [rotation(), device, link(5)],
      [revocation(9), ingest, undefined],
      [{ type: 'reinstall', device: D, time: 0 }, device, link(12)],
    ];
    for (const [body, signer, l] of cases) {
      const bytes = await signLifecycleStatement(body, signer, l);
      expect(isLifecycleStatement(bytes)).toBe(true);
      const p = parseLifecycleStatement(bytes);
      expect(p.body).toEqual(body);
      expect(equalBytes(p.kid, signer.keyId)).toBe(true);
      expect(p.device).toBe(D);
      expect(p.seq).toBe(l?.seq);
      expect(equalBytes(p.digest, sha256(encodeLifecycleBody(body)))).toBe(true);
      expect(await verifyLifecycleSignature(p, signer.publicKey)).toBe(true);
      expect(await verifyLifecycleSignature(p, stranger.publicKey)).toBe(false);
    }
  });

  it('carry the body attached, under the lifecycle content type (label 3)', async () => {
    const bytes = await signLifecycleStatement(rotation(), device, link(5));
    const cose = decodeCbor(bytes, { tags: [18] }) as Tagged;
    const [prot, unprot, payload] = cose.value as [Uint8Array, Map<number, unknown>, Uint8Array];
    const h = decodeCbor(prot) as Map<number, unknown>;
    expect([...h.keys()]).toEqual([1, 3, 4, 15, -65537, -65538]);
    expect(h.get(3)).toBe(LIFECYCLE_CONTENT_TYPE);
    expect(unprot.size).toBe(0);
    expect(decodeLifecycleBody(payload)).toEqual(rotation());
  });

  it('are told apart from reading statements', async () => {
    const reading = encodeReading({ v: 1, device: D, sensor: 's', seq: 1, prev: GENESIS_PREV, time: 0, clock: { synced: false, source: 'none' }, meas: [], raw: [] });
    expect(isLifecycleStatement(await signStatement(reading, device))).toBe(false);
    expect(isLifecycleStatement(new Uint8Array([1, 2, 3]))).toBe(false);
  });

  describe('when malformed', () => {
    it('refuse seq and prev on enrolment and revocation, and require them on rotation and reinstall (misuse)', async () => {
      await expect(signLifecycleStatement(enrolment(), ingest, link(1))).rejects.toThrow(RangeError);
      await expect(signLifecycleStatement(rotation(), device)).rejects.toThrow(RangeError);
    });

    it('reject a body whose kid is not the id of its key with STATEMENT_FORMAT_ERROR', () => {
      const bad = encodeCbor({ v: 1, type: 'rotation', device: D, kid: stranger.keyId, key: next.publicKey, backend: 'tpm', time: 0 });
      expect(() => decodeLifecycleBody(bad)).toThrow(expect.objectContaining({ code: 'STATEMENT_FORMAT_ERROR' }));
    });

    it('reject unknown body keys, unknown types and a non-deterministic encoding', () => {
      const extra = encodeCbor({ v: 1, type: 'reinstall', device: D, time: 0, note: 'x' });
      const type = encodeCbor({ v: 1, type: 'rekey', device: D, time: 0 });
      const good = encodeLifecycleBody({ type: 'reinstall', device: D, time: 5 });
      // time 5 in a two-byte head instead of one: not the shortest form.
      const long = Uint8Array.from([...good.slice(0, good.length - 1), 0x18, 0x05]);
      for (const b of [extra, type, long]) expect(() => decodeLifecycleBody(b)).toThrow(expect.objectContaining({ code: 'STATEMENT_FORMAT_ERROR' }));
    });

    it('reject a statement whose body names another device than its sub', async () => {
      const body = encodeLifecycleBody({ type: 'reinstall', device: 'gw-other', time: 0 });
      const bytes = await signLifecycleStatement({ type: 'reinstall', device: D, time: 0 }, device, link(2));
      const cose = decodeCbor(bytes, { tags: [18] }) as Tagged;
      const [prot, unprot, , sig] = cose.value as [Uint8Array, Map<number, unknown>, Uint8Array, Uint8Array];
      const swapped = encodeCbor(new Tagged(18, [prot, unprot, body, sig]));
      expect(() => parseLifecycleStatement(swapped)).toThrow(expect.objectContaining({ code: 'STATEMENT_FORMAT_ERROR' }));
    });

    it('reject a reading statement with STATEMENT_FORMAT_ERROR', async () => {
      const reading = encodeReading({ v: 1, device: D, sensor: 's', seq: 1, prev: GENESIS_PREV, time: 0, clock: { synced: false, source: 'none' }, meas: [], raw: [] });
      expect(() => parseLifecycleStatement(new Uint8Array(0))).toThrow(expect.objectContaining({ code: 'STATEMENT_FORMAT_ERROR' }));
      const st = await signStatement(reading, device);
      expect(() => parseLifecycleStatement(st)).toThrow(expect.objectContaining({ code: 'STATEMENT_FORMAT_ERROR' }));
    });
  });
});

describe('keyStatusAt', () => {
  const span: KeySpan = { kid: device.keyId, publicKey: device.publicKey, backend: 'software', from: 3, until: 10, revokedAfter: 20, via: 'enrolment' };
  it('is UNKNOWN_KEY_ERROR without a span or before its start', () => {
    expect(keyStatusAt(undefined, 1)).toBe('UNKNOWN_KEY_ERROR');
    expect(keyStatusAt(span, 2)).toBe('UNKNOWN_KEY_ERROR');
  });
  it('is valid from its start up to and including the rotation seq', () => {
    expect(keyStatusAt(span, 3)).toBe('valid');
    expect(keyStatusAt(span, 10)).toBe('valid');
  });
  it('is KEY_ROTATED_ERROR after the rotation seq and KEY_REVOKED_ERROR after the revocation', () => {
    expect(keyStatusAt(span, 11)).toBe('KEY_ROTATED_ERROR');
    expect(keyStatusAt({ ...span, revokedAfter: 7 }, 8)).toBe('KEY_REVOKED_ERROR');
    expect(keyStatusAt({ ...span, revokedAfter: 7 }, 7)).toBe('valid');
  });
});

describe('buildKeyTimeline', () => {
  const parse = async (body: LifecycleBody, signer: typeof device, l?: ReturnType<typeof link>): Promise<ParsedLifecycle> =>
    parseLifecycleStatement(await signLifecycleStatement(body, signer, l));

  it('starts the enrolled key at `from`, hands over at a rotation, and applies a revocation to the rotated-in key', async () => {
    const t = await buildKeyTimeline(D, ingest.publicKey, [
      await parse(enrolment(), ingest),
      await parse(rotation(), device, link(5)),
      await parse(revocation(8, next.keyId), ingest),
    ]);
    expect(t.problems).toEqual([]);
    expect(t.applied).toEqual([true, true, true]);
    expect(t.spans.map((s) => [s.via, s.from, s.until, s.revokedAfter])).toEqual([
      ['enrolment', 1, 5, undefined],
      ['rotation', 6, undefined, 8],
    ]);
  });

  it('refuses an enrolment not signed by the ingest key, and a rotation by a key not valid at its seq', async () => {
    const t = await buildKeyTimeline(D, ingest.publicKey, [
      await parse(enrolment(), stranger),
      await parse(enrolment(), ingest),
      await parse(revocation(3), ingest),
      await parse(rotation(), device, link(5)),
    ]);
    expect(t.problems.map((p) => [p.index, p.code, p.reason])).toEqual([
      [0, 'UNKNOWN_KEY_ERROR', 'not-ingest-key'],
      [3, 'KEY_REVOKED_ERROR', 'signer-not-valid'],
    ]);
    expect(t.spans).toHaveLength(1);
  });

  it('refuses a rotation whose signature does not verify, and one announcing a key already in use', async () => {
    const good = await parse(rotation(), device, link(5));
    const forged: ParsedLifecycle = { ...good, signature: (await parse(rotation(), device, link(6))).signature };
    const t = await buildKeyTimeline(D, ingest.publicKey, [await parse(enrolment(), ingest), forged, await parse(rotation(device), device, link(7))]);
    expect(t.problems.map((p) => [p.index, p.code, p.reason])).toEqual([
      [1, 'SIGNATURE_ERROR', 'bad-signature'],
      [2, 'UNKNOWN_KEY_ERROR', 'key-reused'],
    ]);
  });

  it('skips statements that did not parse and reports statements of another device', async () => {
    const other = parseLifecycleStatement(
      await signLifecycleStatement({ ...enrolment(), device: 'gw-other' } as LifecycleBody, ingest),
    );
    const t = await buildKeyTimeline(D, ingest.publicKey, [undefined, other]);
    expect(t.problems.map((p) => p.reason)).toEqual(['other-device']);
    expect(t.spans).toEqual([]);
  });
});
