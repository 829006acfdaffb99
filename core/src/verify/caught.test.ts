/**
 * A bundle's `caught` (FORMAT.md §7): statements the device signed that ingest caught and did not log, a second one
 * for a seq the bundle holds or one ahead of its window after a gap. Each is checked like a reading statement; one
 * that holds proves the fork (FORK_ERROR) or the gap (SEQUENCE_GAP_ERROR), and the integrity rule's alert is
 * recomputed with its reading (check 9).
 */
import { describe, expect, it } from 'vitest';
import { evalReading, evaluateRuleSet } from '../alerts/engine.ts';
import { parseRuleSet } from '../alerts/rules.ts';
import { bundleToJson, encodeBundle, parseBundle, type EvidenceBundle } from '../bundle.ts';
import { encodeReading } from '../reading.ts';
import { buildTestBundle, cloneBundle, tamper, type TestBundle } from './test-bundle.ts';
import type { Verdict } from './verdict.ts';
import { verifyBundle, verifyBundleBytes } from './verify.ts';

const rules = parseRuleSet({ format: 'stele-rules/1', rules: [{ id: 'integrity', type: 'integrity', standard: 'test', version: '1', params: { unsyncedClock: false } }] });

/** Five readings; a second, different reading of seq 3 moved from the entries into `caught`, with the fork alert. */
async function forked(): Promise<{ b: TestBundle; bundle: EvidenceBundle }> {
  const b = await buildTestBundle({ count: 5, forks: [3], batchSizes: [6] });
  const bundle = cloneBundle(b.bundle);
  const at3 = bundle.entries.filter((e) => e.seq === 3);
  expect(at3).toHaveLength(2);
  bundle.entries = bundle.entries.filter((e) => e !== at3[1]);
  bundle.caught = [{ statement: at3[1]!.statement, reading: at3[1]!.reading! }];
  const alert = evaluateRuleSet(rules, b.readings.map((r) => evalReading(r)), { at: Date.UTC(2026, 10, 21) }).alerts.find((a) => a.kind === 'integrity-fork');
  if (alert === undefined) throw new Error('two readings of seq 3 should give a fork alert');
  bundle.alert = JSON.parse(JSON.stringify(alert)) as unknown;
  return { b, bundle };
}

const verify = (b: TestBundle, bundle: EvidenceBundle): Promise<Verdict> => verifyBundle(bundle, { anchorReader: b.anchorReader, trust: b.trust, now: Date.UTC(2026, 11, 1) });
const codes = (v: Verdict): string[] => [...new Set(v.checks.flatMap((c) => c.failures.map((f) => f.code)))].sort();
const check = (v: Verdict, id: string) => v.checks.find((c) => c.id === id)!;

describe('forks ingest caught, in a bundle', () => {
  it('a signed second reading of a seq is a proven fork: FORK_ERROR, and the fork alert is recomputed from both readings', async () => {
    const { b, bundle } = await forked();
    const v = await verify(b, bundle);
    expect(v.state).toBe('failed');
    expect(codes(v)).toEqual(['FORK_ERROR']);
    expect(check(v, 'completeness').failures[0]).toMatchObject({ code: 'FORK_ERROR', seq: 3, path: '$.caught[0]' });
    expect(check(v, 'completeness').failures[0]!.sentence.en).toMatch(/ingest caught and did not log/);
    expect(check(v, 'alert').status).toBe('pass');
    expect(v.summary.alert).toMatchObject({ kind: 'integrity-fork', values: { seq: 3, readings: 2 } });
  });

  it('reads and writes `caught` in both forms, with the same verdict', async () => {
    const { b, bundle } = await forked();
    const v1 = await verifyBundleBytes(encodeBundle(bundle, { form: 1 }), { anchorReader: b.anchorReader, trust: b.trust, now: Date.UTC(2026, 11, 1) });
    const v2 = await verifyBundleBytes(encodeBundle(bundle, { form: 2 }), { anchorReader: b.anchorReader, trust: b.trust, now: Date.UTC(2026, 11, 1) });
    expect(codes(v2.verdict)).toEqual(codes(v1.verdict));
    expect(v2.bundle?.caught).toHaveLength(1);
    expect(parseBundle(bundleToJson(bundle, { form: 2 })).caught![0]!.statement).toEqual(bundle.caught![0]!.statement);
  });

  it('a forged fork statement is a signature failure, not a fork; an altered fork body a digest failure', async () => {
    const { b, bundle } = await forked();
    const forged = cloneBundle(bundle);
    forged.caught![0]!.statement = tamper.signatureByte(forged.caught![0]!.statement);
    const v = await verify(b, forged);
    expect(codes(v)).toEqual(['SIGNATURE_ERROR']);
    expect(check(v, 'signatures').failures[0]).toMatchObject({ seq: 3, path: '$.caught[0].statement' });

    const altered = cloneBundle(bundle);
    const r = b.readings.filter((x) => x.seq === 3)[1]!;
    altered.caught![0]!.reading = encodeReading({ ...r, meas: [{ ...r.meas[0]!, value: '1.0' }] });
    const v2 = await verify(b, altered);
    expect(codes(v2)).toEqual(['DIGEST_MISMATCH_ERROR', 'FORK_ERROR']);
    // a failure at seq 3 takes both readings of the seq out of check 9: the alert cannot be recomputed
    expect(check(v2, 'alert').status).toBe('unchecked');
  });

  it('a fork item that is no fork (the logged statement again, or a seq outside the window) is BUNDLE_FORMAT_ERROR', async () => {
    const { b, bundle } = await forked();
    const same = cloneBundle(bundle);
    same.caught = [{ statement: same.entries.find((e) => e.seq === 3)!.statement }];
    const v = await verify(b, same);
    expect(check(v, 'format').failures[0]).toMatchObject({ code: 'BUNDLE_FORMAT_ERROR', path: '$.caught[0].statement' });
    const outside = cloneBundle(bundle);
    outside.window = { firstSeq: 4, lastSeq: 5 };
    outside.entries = outside.entries.filter((e) => e.seq >= 4);
    delete outside.alert;
    const v2 = await verify(b, outside);
    expect(check(v2, 'format').failures[0]).toMatchObject({ code: 'BUNDLE_FORMAT_ERROR', path: '$.caught[0].statement' });
  });

  it('a signed reading ahead of the window after seqs ingest never received proves the gap, and the gap alert is recomputed', async () => {
    const b = await buildTestBundle({ count: 8, batchSizes: [9] });
    const bundle = cloneBundle(b.bundle);
    const ahead = bundle.entries.find((e) => e.seq === 8)!;
    bundle.window = { firstSeq: 1, lastSeq: 5 };
    bundle.entries = bundle.entries.filter((e) => e.seq <= 5);
    bundle.caught = [{ statement: ahead.statement, reading: ahead.reading! }];
    const seen = b.readings.filter((r) => r.seq <= 5 || r.seq === 8).map((r) => evalReading(r));
    const alert = evaluateRuleSet(rules, seen, { at: Date.UTC(2026, 10, 21) }).alerts.find((a) => a.kind === 'integrity-seq-gap');
    expect(alert?.values).toMatchObject({ firstMissing: 6, lastMissing: 7 });
    bundle.alert = JSON.parse(JSON.stringify(alert)) as unknown;
    const v = await verify(b, bundle);
    expect(codes(v)).toEqual(['SEQUENCE_GAP_ERROR']);
    expect(check(v, 'completeness').failures[0]).toMatchObject({ seq: 6, expected: '6-7', actual: 'never received', path: '$.caught[0]' });
    expect(check(v, 'completeness').failures[0]!.sentence.en).toMatch(/^Readings 6–7 were never received by ingest: the device signed reading 8/);
    expect(check(v, 'alert').status).toBe('pass');

    // right after the window, with no seq missing between: not evidence of anything
    const next = cloneBundle(bundle);
    next.caught = [{ statement: bundle.entries.find((e) => e.seq === 5)!.statement }];
    next.window = { firstSeq: 1, lastSeq: 4 };
    next.entries = next.entries.filter((e) => e.seq <= 4);
    delete next.alert;
    expect(check(await verify(b, next), 'format').failures[0]).toMatchObject({ code: 'BUNDLE_FORMAT_ERROR', path: '$.caught[0].statement' });
  });
});
