import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { concatBytes, fromHex, toHex, utf8 } from '../bytes.ts';
import { encodeCbor } from '../cbor.ts';
import { checkConfirmation, parseConfirmation, signConfirmation } from '../cose/index.ts';
import type { Signer } from '../signer.ts';
import {
  decodeReject,
  decodeStatementMessage,
  encodeReject,
  encodeStatementMessage,
  REJECT_MAX_BYTES,
  STATEMENT_MESSAGE_MAX_BYTES,
  WireError,
} from './index.ts';

/** The project's vectors (FORMAT.md Appendix A.6, §11.1), made by test/src/generate-vectors.ts from plain maps. */
function vector<T>(name: string): T {
  return JSON.parse(readFileSync(new URL(`../../../test/vectors/${name}`, import.meta.url), 'utf8')) as T;
}
const mqtt = vector<{
  statementFull: { payload: string };
  statementHashOnly: { payload: string };
  ack: { payload: string };
  reject: { json: { seq: number; code: string }; payload: string };
}>('mqtt.json');
const statement = fromHex(vector<{ statement: string }>('statement.json').statement);
const reading = fromHex(vector<{ readings: { cbor: string }[] }>('reading.json').readings[0]!.cbor);

function wireError(f: () => unknown): WireError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(WireError);
    return e as WireError;
  }
  throw new Error('no error thrown');
}

describe('the statement message (FORMAT.md §11, A.6)', () => {
  it('encodes the full and the hash-only vectors byte for byte and decodes them back', () => {
    expect(toHex(encodeStatementMessage({ statement, reading }))).toBe(mqtt.statementFull.payload);
    expect(toHex(encodeStatementMessage({ statement }))).toBe(mqtt.statementHashOnly.payload);
    const full = decodeStatementMessage(fromHex(mqtt.statementFull.payload));
    expect(toHex(full.statement)).toBe(toHex(statement));
    expect(toHex(full.reading!)).toBe(toHex(reading));
    const hashOnly = decodeStatementMessage(fromHex(mqtt.statementHashOnly.payload));
    expect(Object.keys(hashOnly)).toEqual(['statement']);
    expect(toHex(hashOnly.statement)).toBe(toHex(statement));
  });

  it('does not check the key order of the envelope', () => {
    const full = mqtt.statementFull.payload;
    const readingPart = 2 + 16 + 6 + 273 * 2; // "reading" and its 273 bytes, after the map head
    const swapped = fromHex(`a2${full.slice(readingPart)}${full.slice(2, readingPart)}`);
    expect(toHex(swapped)).not.toBe(mqtt.statementFull.payload);
    expect(toHex(decodeStatementMessage(swapped).reading!)).toBe(toHex(reading));
  });

  it('refuses more than its bound before decoding: WIRE_LIMIT_ERROR', () => {
    const payload = fromHex(mqtt.statementFull.payload);
    expect(wireError(() => decodeStatementMessage(payload, payload.length - 1)).code).toBe('WIRE_LIMIT_ERROR');
    expect(decodeStatementMessage(payload, payload.length).statement.length).toBe(statement.length);
    const big = encodeStatementMessage({ statement: new Uint8Array(STATEMENT_MESSAGE_MAX_BYTES) });
    expect(wireError(() => decodeStatementMessage(big))).toMatchObject({ code: 'WIRE_LIMIT_ERROR', where: { sizeBytes: big.length } });
  });

  it.each([
    ['empty', ''],
    ['not CBOR', 'ff'],
    ['a byte string, not a map', toHex(encodeCbor(statement))],
    ['an array', toHex(encodeCbor([statement]))],
    ['no statement', toHex(encodeCbor({ reading }))],
    ['statement is text', toHex(encodeCbor({ statement: 'not bytes' }))],
    ['statement is null', toHex(encodeCbor({ statement: null }))],
    ['reading is an integer', toHex(encodeCbor({ statement, reading: 1 }))],
    ['another key', toHex(encodeCbor({ statement, reading, extra: 1 }))],
    ['an integer key', toHex(encodeCbor(new Map<unknown, unknown>([['statement', statement], [1, 1]])))],
    ['a duplicate key', `a3${mqtt.statementFull.payload.slice(2)}${mqtt.statementFull.payload.slice(2, 2 + 16 + 6 + 273 * 2)}`], // "reading" twice
    ['trailing bytes', `${mqtt.statementHashOnly.payload}00`],
    ['an indefinite-length map', `bf${mqtt.statementHashOnly.payload.slice(2)}ff`],
    ['a tag around the map', `d818${mqtt.statementHashOnly.payload}`],
  ])('%s: WIRE_FORMAT_ERROR', (_name, hex) => {
    expect(wireError(() => decodeStatementMessage(fromHex(hex))).code).toBe('WIRE_FORMAT_ERROR');
  });

  it('refuses to encode what is not bytes', () => {
    expect(() => encodeStatementMessage({ statement: 'x' as unknown as Uint8Array })).toThrow(TypeError);
    expect(() => encodeStatementMessage({ statement, reading: [1] as unknown as Uint8Array })).toThrow(TypeError);
  });
});

describe('the reject (FORMAT.md §11, A.6)', () => {
  it('encodes the vector byte for byte and decodes it back', () => {
    expect(toHex(encodeReject(mqtt.reject.json))).toBe(mqtt.reject.payload);
    expect(decodeReject(fromHex(mqtt.reject.payload))).toEqual(mqtt.reject.json);
  });

  it('takes seq 0 (unparsed), the largest seq and a 64-byte code, the largest reject', () => {
    expect(decodeReject(encodeReject({ seq: 0, code: 'INGEST_MALFORMED' }))).toEqual({ seq: 0, code: 'INGEST_MALFORMED' });
    const largest = encodeReject({ seq: Number.MAX_SAFE_INTEGER, code: 'X'.repeat(64) });
    expect(largest.length).toBeLessThanOrEqual(REJECT_MAX_BYTES);
    expect(decodeReject(largest)).toEqual({ seq: Number.MAX_SAFE_INTEGER, code: 'X'.repeat(64) });
  });

  it('refuses more than REJECT_MAX_BYTES before decoding: WIRE_LIMIT_ERROR', () => {
    const padded = concatBytes(fromHex(mqtt.reject.payload), new Uint8Array(REJECT_MAX_BYTES));
    expect(wireError(() => decodeReject(padded)).code).toBe('WIRE_LIMIT_ERROR');
  });

  const code = 'FORK_ERROR';
  it.each([
    ['empty', ''],
    ['not CBOR', 'ff'],
    ['not a map', toHex(encodeCbor([4, code]))],
    ['no seq', toHex(encodeCbor({ code }))],
    ['no code', toHex(encodeCbor({ seq: 4 }))],
    ['seq is text', toHex(encodeCbor({ seq: '4', code }))],
    ['seq is negative', toHex(encodeCbor({ seq: -1, code }))],
    ['seq is above 2^53 - 1', toHex(encodeCbor({ seq: 2n ** 53n, code }))],
    ['code is bytes', toHex(encodeCbor({ seq: 4, code: utf8(code) }))],
    ['code is empty', toHex(encodeCbor({ seq: 4, code: '' }))],
    ['code is 65 bytes', toHex(encodeCbor({ seq: 4, code: 'X'.repeat(65) }))],
    ['code is 22 characters but 66 bytes', toHex(encodeCbor({ seq: 4, code: '€'.repeat(22) }))],
    ['another key', toHex(encodeCbor({ seq: 4, code, detail: 'x' }))],
    ['a duplicate key', `a3${mqtt.reject.payload.slice(2)}6373657104`],
    ['trailing bytes', `${mqtt.reject.payload}00`],
    ['a non-shortest integer', `a2637365711804${mqtt.reject.payload.slice(12)}`],
  ])('%s: WIRE_FORMAT_ERROR', (_name, hex) => {
    expect(wireError(() => decodeReject(fromHex(hex))).code).toBe('WIRE_FORMAT_ERROR');
  });

  it('refuses to encode a seq or code out of range', () => {
    expect(() => encodeReject({ seq: -1, code })).toThrow(RangeError);
    expect(() => encodeReject({ seq: 1.5, code })).toThrow(RangeError);
    expect(() => encodeReject({ seq: 4, code: '' })).toThrow(RangeError);
    expect(() => encodeReject({ seq: 4, code: '€'.repeat(22) })).toThrow(RangeError);
  });
});

describe('the ack (FORMAT.md §11.1): the confirmation codec of @stele/core/cose', () => {
  it('the ack vector decodes, verifies under the pinned key, and encodes back byte for byte', async () => {
    const bytes = fromHex(mqtt.ack.payload);
    const c = parseConfirmation(bytes);
    const pinned = fromHex(vector<{ ingestPublicKey: string }>('confirmation.json').ingestPublicKey);
    await expect(checkConfirmation(bytes, { publicKey: pinned, device: c.device })).resolves.toMatchObject({ type: 'stored', upTo: 5 });
    // The encoder, given the vector's signature back (the secret key is not needed to check the layout).
    const replay: Signer = { algorithm: 'ES256', keyId: c.kid, publicKey: pinned, backend: 'software', sign: async () => c.signature };
    const again = await signConfirmation({ type: c.type, device: c.device, upTo: c.upTo, head: c.head, issuedAt: c.issuedAt }, replay);
    expect(toHex(again)).toBe(mqtt.ack.payload);
  });
});
