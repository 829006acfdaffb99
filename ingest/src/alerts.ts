/**
 * Alerts at ingest (issue #12 item 5, FORMAT.md §15): the configured rule sets run over the readings ingest has
 * stored (each already verified on arrival: signature, key, chain), and each alert can be exported as an evidence
 * bundle that proves its whole time window (FORMAT.md §15.8) and carries the alert (§15.7).
 *
 * Evaluation is on demand, at the time of evaluation, and cached until ingest commits another reading (or for
 * `reevaluateMs`). Readings are evaluated without their receive time, which no bundle carries, so that the
 * verifier gets every number again from the bundle. It reads at most
 * `maxReadingsPerDevice` of each device's latest readings (the rules' windows are hours and days; older alerts are
 * out of view). An alert bundle is checked with the verifier's own check-9 code before it is handed out, so ingest
 * never exports an alert the readings do not give again.
 */
import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AlertError, evalReading, evaluateRuleSet, parseRuleSet, type Alert, type EvalReading, type RuleSet } from '@stele/core/alerts';
import { basisTimeMs, judgeBundleAlert, judgeSetAlert } from '@stele/core/verify';
import { decodeReading, EVIDENCE_SET_FORMAT, MAX_BUNDLE_CAUGHT, MAX_SET_BUNDLES, toBase64Url, type Reading } from '@stele/core';
import { IngestError } from './errors.ts';
import { MAX_BUNDLE_WINDOW, type EvidenceBundleJson, type EvidenceSetJson, type IngestService } from './service.ts';

/** Default of `maxReadingsPerDevice`: a day of minute records and real-time records at 30 s, with room. */
export const DEFAULT_ALERT_READINGS_PER_DEVICE = 50_000;
/** Statements held ahead of a device's gap that the rules see at most (the reorder buffer is smaller). */
const MAX_HELD_IN_VIEW = 1_000;
const MAX_RULES_FILE_BYTES = 4 * 1024 * 1024;

/** The rule sets that ship with Stele (`stele alerts standards`). */
export const STANDARDS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'core', 'standards');

/**
 * Reads rule set files (FORMAT.md §15.1) into one set: rules in file order; utcOffset of the first file. A name
 * without a slash that is a shipped rule set (`ultra-low-coal`, `gsp-cold-2-8`, …) names that file.
 */
export async function loadRuleFiles(args: readonly string[]): Promise<RuleSet> {
  const sets: RuleSet[] = [];
  for (const arg of args) {
    let path = arg;
    if (!arg.includes('/')) {
      const shipped = join(STANDARDS_DIR, arg.endsWith('.json') ? arg : `${arg}.json`);
      if (await stat(shipped).then(() => true, () => false)) path = shipped;
    }
    let text: string;
    try {
      if ((await stat(path)).size > MAX_RULES_FILE_BYTES) throw new Error(`larger than ${MAX_RULES_FILE_BYTES} bytes`);
      text = await readFile(path, 'utf8');
    } catch (cause) {
      throw new IngestError('INGEST_RULES_ERROR', `rules ${path}: ${(cause as Error).message}`, { cause, where: { file: path } });
    }
    try {
      sets.push(parseRuleSet(JSON.parse(text)));
    } catch (cause) {
      throw new IngestError('INGEST_RULES_ERROR', `rules ${path}: ${(cause as Error).message}`, { cause, where: { file: path, ...(cause instanceof AlertError ? cause.where : {}) } });
    }
  }
  if (sets.length === 0) throw new IngestError('INGEST_RULES_ERROR', 'no rule set given');
  const rules = sets.flatMap((s) => s.rules);
  const ids = new Set<string>();
  for (const r of rules) {
    if (ids.has(r.id)) throw new IngestError('INGEST_RULES_ERROR', `rule id ${r.id} appears twice`, { where: { rule: r.id } });
    ids.add(r.id);
  }
  const invalidPeriods = sets.flatMap((s) => s.invalidPeriods ?? []);
  return {
    format: 'stele-rules/1',
    utcOffset: sets[0]!.utcOffset ?? '+08:00',
    rules,
    ...(invalidPeriods.length === 0 ? {} : { invalidPeriods }),
  };
}

/** What `GET /alerts` lists per alert. */
export interface AlertListItem {
  id: string;
  kind: string;
  subject: string;
  rule: string;
  standard: string;
  window: Alert['window'];
  values: Alert['values'];
  devices: string[];
  readings: number;
}

export function listItem(a: Alert): AlertListItem {
  return {
    id: a.id,
    kind: a.kind,
    subject: a.subject,
    rule: `${a.rule.id} v${a.rule.version}`,
    standard: a.rule.standard,
    window: a.window,
    values: a.values,
    devices: [...new Set(a.readings.map((r) => r.device))],
    readings: a.readings.length,
  };
}

export interface AlertBookOptions {
  maxReadingsPerDevice?: number;
  /**
   * How long an evaluation stands when no reading arrives (ms, default 30 s). The rules are evaluated at the time
   * of evaluation (FORMAT.md §15.6: a device gone silent, a gap not filled in time), so they are run again after
   * this even without new readings.
   */
  reevaluateMs?: number;
  /** The clock (ms); default Date.now. */
  now?: () => number;
}

export class AlertBook {
  private cache: { readings: string; at: number; alerts: Alert[]; byDevice: Map<string, Map<number, Reading>> } | undefined;
  private running: Promise<NonNullable<AlertBook['cache']>> | undefined;
  private readonly maxPerDevice: number;
  private readonly reevaluateMs: number;
  private readonly now: () => number;

  constructor(
    private readonly service: IngestService,
    readonly rules: RuleSet,
    options: AlertBookOptions = {},
  ) {
    this.maxPerDevice = options.maxReadingsPerDevice ?? DEFAULT_ALERT_READINGS_PER_DEVICE;
    this.reevaluateMs = options.reevaluateMs ?? 30_000;
    this.now = options.now ?? Date.now;
  }

  /** Every alert the rules give over the stored readings now (evaluated again only after new readings). */
  async alerts(): Promise<Alert[]> {
    return (await this.evaluate()).alerts;
  }

  async alert(id: string): Promise<Alert> {
    const a = (await this.alerts()).find((x) => x.id === id);
    if (a === undefined) throw new IngestError('INGEST_ALERT_NOT_FOUND', 'no current alert has this id', { where: { id } });
    return a;
  }

  /**
   * The evidence of an alert (FORMAT.md §15.8): per device the alert names, its bundle from the last reading before
   * the alert's window (else seq 1) to the first reading at or after its end (else the last reading in an anchored
   * batch). One device: that bundle with the alert. Several (a custody chain across gateways): an evidence set
   * (§7.2) of their bundles with the alert once. INGEST_NOT_ANCHORED while a reading it needs is not anchored yet
   * (ask again after the next batch).
   */
  async bundle(id: string): Promise<EvidenceBundleJson | EvidenceSetJson> {
    const alert = await this.alert(id);
    const state = await this.evaluate();
    const devices = [...new Set(alert.readings.map((r) => r.device))];
    if (devices.length > MAX_SET_BUNDLES) {
      throw new IngestError('INGEST_ALERT_TOO_WIDE', `the alert's readings span ${devices.length} devices; an evidence set holds at most ${MAX_SET_BUNDLES} (FORMAT.md §7.2)`, { where: { id, devices: devices.length } });
    }
    const alertJson = JSON.parse(JSON.stringify(alert)) as unknown;
    const members: { bundle: EvidenceBundleJson; bodies: { seq: number; reading: Reading }[] }[] = [];
    for (const device of devices) {
      const head = this.service.head(device).seq;
      const named = alert.readings.filter((r) => r.device === device).map((r) => r.seq);
      // What the alert names that ingest caught and did not log (FORMAT.md §7 `caught`): the other statements of a
      // forked seq, and statements held ahead of a gap. The verifier checks their keys and signatures, proves the
      // fork or the gap, and recomputes the alert with their readings.
      const seqs = new Set(named);
      const forks = (await this.service.forks(device)).filter((f) => seqs.has(f.seq));
      const ahead = named.some((n) => n > head) ? (await this.service.heldStatements(device, head + 1, MAX_BUNDLE_CAUGHT)).filter((h) => seqs.has(h.seq)) : [];
      const caught = [...forks, ...ahead].slice(0, MAX_BUNDLE_CAUGHT);
      const readings = state.byDevice.get(device) ?? new Map<number, Reading>();
      const bundle = await this.deviceBundle(alert, device, named.filter((n) => n <= head), readings);
      const bodies: { seq: number; reading: Reading }[] = [];
      for (let s = bundle.window.firstSeq; s <= bundle.window.lastSeq; s++) {
        const r = readings.get(s);
        if (r !== undefined) bodies.push({ seq: s, reading: r });
      }
      if (caught.length > 0) {
        bundle.caught = caught.map((f) => ({ statement: toBase64Url(f.statement), ...(f.reading === undefined ? {} : { reading: toBase64Url(f.reading) }) }));
        for (const f of caught) {
          if (f.reading === undefined) continue;
          try {
            bodies.push({ seq: f.seq, reading: decodeReading(f.reading) });
          } catch {
            // not a reading body: the verifier reports it; ingest's check below then refuses the export
          }
        }
      }
      members.push({ bundle, bodies });
    }
    // The verifier's own check 9 over what is exported: ingest never hands out an alert its readings do not give.
    const judged =
      members.length === 1
        ? judgeBundleAlert(alertJson, members[0]!.bundle.window, members[0]!.bodies)
        : judgeSetAlert(alertJson, members.map((m, i) => ({ device: devices[i]!, window: m.bundle.window, bodies: m.bodies })));
    if (judged.status === 'fail') {
      throw new IngestError('INGEST_ALERT_NOT_REPRODUCIBLE', `the exported readings do not give the alert again: ${judged.failures[0]?.sentence.en ?? ''}`, {
        where: { id, windows: members.map((m) => ({ device: m.bundle.device.deviceId, ...m.bundle.window })) },
      });
    }
    if (members.length === 1) return { ...members[0]!.bundle, alert: alertJson };
    return { format: EVIDENCE_SET_FORMAT, createdAt: new Date().toISOString(), alert: alertJson, bundles: members.map((m) => m.bundle) };
  }

  /**
   * One device's bundle of an alert's evidence (without the alert): the seq window that covers its time window
   * around `seqs`, the logged seqs the alert names (none: the window ends at the head, before what was caught).
   */
  private async deviceBundle(alert: Alert, device: string, seqs: readonly number[], readings: Map<number, Reading>): Promise<EvidenceBundleJson> {
    if (seqs.length === 0) seqs = [this.service.head(device).seq];
    const min = Math.min(...seqs);
    const max = Math.max(...seqs);
    const off = alert.utcOffset ?? '+08:00';
    const from = Date.parse(alert.window.from);
    const to = Date.parse(alert.window.to);
    const at = (r: Reading): number => basisTimeMs(r, alert.window.basis, off);
    let first = 1;
    for (let s = min - 1; s >= 1 && min - s <= MAX_BUNDLE_WINDOW; s--) {
      const r = readings.get(s);
      if (r !== undefined && at(r) < from) {
        first = s;
        break;
      }
    }
    const head = this.service.head(device).seq;
    let last = max;
    for (let s = max + 1; s <= head && s - first < MAX_BUNDLE_WINDOW; s++) {
      const r = readings.get(s);
      last = s;
      if (r !== undefined && at(r) >= to) break;
    }
    // Only what is in an anchored batch can go into a bundle: end at the last such entry (at least `max`).
    const rows = await this.service.storedReadings(device, max, Math.min(last, max + MAX_BUNDLE_WINDOW - 1));
    for (const row of rows) if (row.seq > max && !row.inBatch) {
      last = row.seq - 1;
      break;
    }
    try {
      return await this.service.exportBundle(device, first, last);
    } catch (err) {
      // The end reading may be in a batch that is not anchored yet: fall back to the alert's own readings' end.
      if (err instanceof IngestError && err.code === 'INGEST_NOT_ANCHORED' && last > max) return this.service.exportBundle(device, first, max);
      throw err;
    }
  }

  private evaluate(): Promise<NonNullable<AlertBook['cache']>> {
    // forks and held statements are not committed readings: count them too, so a new fork or a new hold is seen
    const stats = this.service.stats();
    const count = `${stats.readings} ${stats.rejected['FORK_ERROR'] ?? 0} ${stats.buffered}`;
    if (this.cache !== undefined && this.cache.readings === count && this.now() - this.cache.at < this.reevaluateMs) return Promise.resolve(this.cache);
    this.running ??= this.run(count).finally(() => (this.running = undefined));
    return this.running;
  }

  private async run(count: string): Promise<NonNullable<AlertBook['cache']>> {
    const evals: EvalReading[] = [];
    const byDevice = new Map<string, Map<number, Reading>>();
    for (const device of this.service.deviceIds().sort()) {
      const head = this.service.head(device).seq;
      const map = new Map<number, Reading>();
      byDevice.set(device, map);
      for (let first = Math.max(1, head - this.maxPerDevice + 1); first <= head; first += MAX_BUNDLE_WINDOW) {
        for (const row of await this.service.storedReadings(device, first, Math.min(head, first + MAX_BUNDLE_WINDOW - 1))) {
          if (row.reading === undefined) continue; // hash-only or a lifecycle statement: nothing to compute on
          let reading: Reading;
          try {
            reading = decodeReading(row.reading);
          } catch {
            continue; // not a reading body (a chained lifecycle statement's seq)
          }
          map.set(row.seq, reading);
          // no receivedAt: an alert must be recomputable from its bundle, which holds the reading, not when it came
          evals.push(evalReading(reading));
        }
      }
      // Statements held ahead of a gap (checked: key and signature, FORMAT.md §11 step 7): the rules see their
      // readings, so a gap that is not filled in time is an `integrity-seq-gap` alert (§15.6).
      for (const h of await this.service.heldStatements(device, head + 1, MAX_HELD_IN_VIEW)) {
        if (h.reading === undefined) continue;
        try {
          evals.push(evalReading(decodeReading(h.reading)));
        } catch {
          continue; // not a reading body
        }
      }
      // Forks ingest caught (FORMAT.md §11 step 7: a second statement, signature checked, for a committed seq): the
      // integrity rules see both readings of the seq and give `integrity-fork` (§15.6). Only those in view.
      for (const fork of await this.service.forks(device)) {
        if (fork.reading === undefined || fork.seq < head - this.maxPerDevice + 1) continue;
        try {
          evals.push(evalReading(decodeReading(fork.reading)));
        } catch {
          continue; // not a reading body
        }
      }
    }
    // At the time of evaluation, not of the last reading: silence and unfilled gaps are judged against now.
    const at = this.now();
    const alerts = evaluateRuleSet(this.rules, evals, { at }).alerts;
    this.cache = { readings: count, at, alerts, byDevice };
    return this.cache;
  }
}
