/**
 * Verifying an evidence set (FORMAT.md §7.2): one alert whose readings span several devices (a custody chain
 * across the sampling, preparation and lab gateways; a cold room with probes on two gateways), with one ordinary
 * bundle per device.
 *
 * Each bundle is judged by §9 exactly as if it stood alone (checks 1-8, 10 and 11 with the same options and trust
 * policy); check 9 is the set's: the alert recomputed over the verified bodies of all bundles, and every bundle's
 * seq window judged against the alert's time window (§15.8). The set's verdict has the single-bundle shape: each
 * check is the worst of the bundles' (fail, then unchecked, then pass), its failures named by device and with
 * their path inside the set, so the CLI, the page and the report render it as they render a bundle.
 */
import type { EvidenceSet } from '../bundle.ts';
import { judgeSetAlert } from './alert-check.ts';
import { ofDevice } from './messages.ts';
import type { Check, CheckId, Failure, KeySummary, Note, Summary, Text, Verdict } from './verdict.ts';
import { assemble, ORDER, runChecks, type VerifyOptions } from './verify.ts';

const inSet = (i: number, path: string | undefined): string | undefined => (path === undefined ? undefined : `$.bundles[${i}]${path.startsWith('$') ? path.slice(1) : `.${path}`}`);
const RANK: Record<Check['status'], number> = { fail: 3, unchecked: 2, pass: 1, 'not-applicable': 0 };

/** The verdict of an evidence set, and each bundle's own. */
export async function verifyEvidenceSet(set: EvidenceSet, options: VerifyOptions = {}): Promise<{ verdict: Verdict; members: Verdict[] }> {
  const runs: Awaited<ReturnType<typeof runChecks>>[] = [];
  // One bundle after another: chain look-ups share the options' deadline per bundle, and the memory of one at a time.
  for (const bundle of set.bundles) runs.push(await runChecks(bundle, options));
  const devices = set.bundles.map((b) => b.device.deviceId);
  const members = runs.map((r) => r.verdict);

  const alert = judgeSetAlert(
    set.alert,
    set.bundles.map((b, i) => ({ device: devices[i]!, window: b.window, bodies: runs[i]!.bodies })),
  );
  const checks = ORDER.map((id): Check => {
    if (id === 'alert') {
      const base = members[0]!.checks.find((c) => c.id === id)!;
      return {
        ...base,
        status: alert.status,
        sentence: alert.sentence,
        failures: [...alert.failures],
      };
    }
    return mergeCheck(id, members, devices);
  });

  const notes: Note[] = members.flatMap((v, i) => v.notes.map((n) => ({ ...n, sentence: ofDevice(devices[i]!, n.sentence) })));
  const first = members[0]!.summary;
  const anchors = new Map<string, Summary['anchors'][number]>();
  for (const v of members) for (const a of v.summary.anchors) anchors.set(`${a.batchId} ${a.root}`, anchors.get(`${a.batchId} ${a.root}`) ?? a);
  const keys: KeySummary[] = members.flatMap((v, i) => (v.summary.keys ?? []).map((k) => ({ ...k, device: devices[i]! })));
  const summary: Summary = {
    readings: sum(members.map((v) => v.summary.readings)),
    bodies: sum(members.map((v) => v.summary.bodies)),
    firstSeq: first.firstSeq,
    lastSeq: first.lastSeq,
    batches: anchors.size,
    devices: [...new Set(members.flatMap((v) => v.summary.devices))],
    keyIds: [...new Set(members.flatMap((v) => v.summary.keyIds))],
    keys,
    ingestKeyId: first.ingestKeyId,
    anchors: [...anchors.values()],
    ...(first.trust === undefined ? {} : { trust: first.trust }),
    ...(alert.summary === undefined ? {} : { alert: alert.summary }),
    members: members.map((v, i) => ({
      deviceId: devices[i]!,
      firstSeq: v.summary.firstSeq,
      lastSeq: v.summary.lastSeq,
      readings: v.summary.readings,
      bodies: v.summary.bodies,
      state: v.state,
    })),
  };
  return { verdict: assemble(checks, notes, summary), members };
}

/** One check over the bundles: the worst status; failures named by device and placed in the set. */
function mergeCheck(id: CheckId, members: readonly Verdict[], devices: readonly string[]): Check {
  const own = members.map((v) => v.checks.find((c) => c.id === id)!);
  let worst = 0;
  own.forEach((c, i) => {
    if (RANK[c.status] > RANK[own[worst]!.status]) worst = i;
  });
  const w = own[worst]!;
  const failures: Failure[] = own.flatMap((c, i) =>
    c.failures.map((f) => {
      const path = inSet(i, f.path);
      return { ...f, device: devices[i]!, ...(path === undefined ? {} : { path }) };
    }),
  );
  const same = own.every((c) => c.sentence.en === w.sentence.en);
  const sentence: Text =
    same && (w.status === 'pass' || w.status === 'not-applicable')
      ? w.sentence
      : w.status === 'pass' || w.status === 'not-applicable'
        ? {
            zh: own.map((c, i) => ofDevice(devices[i]!, c.sentence).zh).join('；'),
            en: own.map((c, i) => ofDevice(devices[i]!, c.sentence).en).join('; '),
          }
        : ofDevice(devices[worst]!, failures[0]?.sentence ?? w.sentence);
  return { ...w, sentence, failures };
}

function sum(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}
