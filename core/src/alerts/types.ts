/**
 * Shapes of the rule engine (FORMAT.md §15): rule sets as data, the readings they run over, and what they produce
 * (aggregates and alerts). Every number in an output is decimal text (FORMAT.md §15.2), never a JSON float.
 */
import type { Reading } from '../reading.ts';

/** The rule kinds of FORMAT.md §15.3–14.6. */
export type RuleType = 'emission-hourly' | 'cold-chain' | 'coal-lab' | 'integrity';

/** Fields every rule has. `params` are the rule type's parameters (FORMAT.md §15.3–14.6), all decimals as text. */
export interface RuleBase {
  /** Unique in its rule set, e.g. `ultra-low-coal-so2`. */
  id: string;
  type: RuleType;
  /** The standard or site rule this implements, e.g. `GB 13223-2011 table 1`. */
  standard: string;
  /** The version of the rule (recorded in every alert): change it whenever a parameter changes. */
  version: string;
  /** Optional selector: only readings of these devices (all when absent). */
  devices?: string[];
  /** Optional selector: only readings of these sensors (all when absent). */
  sensors?: string[];
}

export interface PollutantLimit {
  /** HJ 212 code, e.g. `a21026` (SO2). */
  code: string;
  name?: string;
  /** Hourly limit at the reference O2, decimal text. */
  limit: string;
  /** Optional daily limit (a valid daily mean above it is an exceedance). */
  dayLimit?: string;
  /** Unit of limit and values; measurements with another `unit` are excluded. Default `mg/m³`. */
  unit?: string;
  /** Real-time early warning: a corrected real-time value above this (decimal text). Absent: no warning. */
  warnAt?: string;
}

export interface EmissionParams {
  pollutants: PollutantLimit[];
  /** Reference O2 in %, decimal text; absent: no correction (the standard has no reference O2). */
  referenceO2?: string;
  /** O2 code. Default `a19001`. */
  o2Code?: string;
  /**
   * The O2 policy as O2 approaches 21 %: a minute with O2 <= maxO2 is corrected with its O2; above it, `exclude`
   * (the minute is not valid, reason `O2_ABOVE_POLICY`) or `clamp` (corrected with maxO2). Default maxO2 `19`,
   * action `exclude`.
   */
  o2Policy?: { maxO2: string; action: 'exclude' | 'clamp' };
  /** Valid minutes for a valid hour. Default 45 (HJ 75-2017). */
  minValidMinutes?: number;
  /** Valid hours for a valid day. Default 20. */
  minValidHours?: number;
  /** Sub-field of minute records. Default `Avg`. */
  minuteKind?: string;
  /** Sub-field of real-time records for the early warning. Default `Rtd`. */
  realtimeKind?: string;
  /** Record types (reading `rtype`). Defaults: minute `2051`, real-time `2011` (HJ 212-2017 table 9). */
  minuteType?: string;
  realtimeType?: string;
  /** Fractional digits of reported values. Default 4. */
  decimals?: number;
}

export interface ColdChainParams {
  /** Which measurements are temperatures: match on code and/or kind. Default kind `temperature`. */
  match?: { code?: string; kind?: string };
  /** Product profile name, e.g. `2-8 C`, `frozen`. */
  profile: string;
  /** Lowest and highest allowed temperature in °C, decimal text (one may be absent: `at most -18`). */
  low?: string;
  high?: string;
  /** Alert when one excursion lasts longer than this, ms. Default 0 (every excursion). */
  maxContinuousMs?: number;
  /** Alert when the excursions of one probe in the window add up to more than this, ms. Default: no such alert. */
  maxCumulativeMs?: number;
  /** Alert when an excursion's peak passes these (°C, decimal text), whatever its duration. */
  peakHigh?: string;
  peakLow?: string;
  /** Excursions of fewer samples are not excursions (PROTOCOLS.md §4.3 single-point spikes). Default 1. */
  minSamples?: number;
  /** Longest gap between two samples in range, ms (GSP: 30 min storage, 5 min transport). Absent: not checked. */
  maxIntervalMs?: number;
  /** Longest gap while out of range, ms (GSP: 2 min). Absent: not checked. */
  maxIntervalOutOfRangeMs?: number;
  /** A probe with no sample for this long (also up to the evaluation time) has gone quiet, ms. Absent: not checked. */
  quietMs?: number;
  /** Alert when the MKT of a probe over the window is above this, °C decimal text. MKT is reported either way. */
  mktMax?: string;
  /** Probes that must report (`device/sensor/code`); one with no sample at all has gone quiet. */
  probes?: string[];
  decimals?: number;
}

export interface RepeatabilityTier {
  /** This tier applies while the mean of the two determinations is <= upTo (absent: no upper bound). */
  upTo?: string;
  /** Largest allowed difference between the two determinations. */
  limit: string;
}

export interface CoalLabParams {
  /** Steps every assay's chain must have. Default [`sampling`, `preparation`]. */
  requiredSteps?: string[];
  /** Largest weight change between events that keep the code, as a fraction decimal text. Default `0.01`. */
  weightTolerance?: string;
  /** Repeatability limits per parameter symbol (e.g. `Mad`, `St,ad`, `Qgr,v,ad`), tiers in increasing order. */
  repeatability?: Record<string, RepeatabilityTier[]>;
  /** The measurement (kind `id` or `run`) that names one determination, for "result changed after approval". */
  determinationCode?: string;
  decimals?: number;
}

export interface IntegrityParams {
  /** A device silent longer than this (gateway time between readings, or up to the evaluation time), ms. */
  maxSilenceMs?: number;
  /** A seq gap still open this long after the reading that revealed it, ms. Default 0. */
  gapGraceMs?: number;
  /** |gateway time − instrument time| above this on real-time records, ms (needs the rule set's utcOffset). */
  maxClockSkewMs?: number;
  /** Record types whose itime is a sampling moment (compared with the gateway time). Default [`2011`]. */
  skewTypes?: string[];
  /** Alert on readings whose clock is not synchronised. Default true. */
  unsyncedClock?: boolean;
}

export type Rule =
  | (RuleBase & { type: 'emission-hourly'; params: EmissionParams })
  | (RuleBase & { type: 'cold-chain'; params: ColdChainParams })
  | (RuleBase & { type: 'coal-lab'; params: CoalLabParams })
  | (RuleBase & { type: 'integrity'; params: IntegrityParams });

/** A period the plant marked invalid (start-up, shutdown, calibration, fault), in instrument time. */
export interface InvalidPeriod {
  device?: string;
  sensor?: string;
  /** Instrument time `YYYYMMDDhhmmss`, inclusive. */
  from: string;
  /** Instrument time `YYYYMMDDhhmmss`, exclusive. */
  to: string;
  reason: string;
}

export interface RuleSet {
  format: 'stele-rules/1';
  name?: string;
  /** Free text: sources, confidence, which values are site settings. */
  notes?: string;
  /** UTC offset of instrument times (`itime`), `±HH:MM`. Default `+08:00` (HJ 212 loggers keep China time). */
  utcOffset?: string;
  rules: Rule[];
  /** Plant-marked invalid periods (excluded from emission rules and listed). */
  invalidPeriods?: InvalidPeriod[];
}

/** One reading as the engine sees it: decoded (FORMAT.md §2) and, when it failed verification, why. */
export interface EvalReading {
  reading: Reading;
  /** SHA-256 of the reading bytes, hex (for fork and chain checks). */
  digest: string;
  /** A verification code when the reading did not verify (e.g. `SIGNATURE_ERROR`): used only by integrity rules. */
  rejected?: string;
  /** When ingest received it, ms (optional; the gap grace is measured from it when present). */
  receivedAt?: number;
}

/** A reading used or excluded, by its identity. */
export interface ReadingRef {
  device: string;
  seq: number;
}

export interface AlertWindow {
  /** ISO 8601 with offset. */
  from: string;
  to: string;
  /** `itime` (instrument time) or `time` (gateway time). */
  basis: 'itime' | 'time';
}

export interface Alert {
  /** SHA-256 hex of `rule.id`, `rule.version`, `kind`, `subject` and `window.from`, FORMAT.md §15.1. */
  id: string;
  kind: string;
  rule: Rule;
  window: AlertWindow;
  /** Who it is about: `device/sensor/code` or a device id or an assay code. */
  subject: string;
  /** The computed values (decimal text, counts as integers). */
  values: Record<string, string | number | boolean>;
  /** The inputs of the computation, one per reading used (values as text). */
  inputs: Record<string, unknown>[];
  readings: ReadingRef[];
  /** Readings in the window that were not used, with the reason. */
  excluded?: (ReadingRef & { reason: string })[];
  /** The evaluation time, ms (quiet probes, silent devices and open gaps are measured up to it). */
  evaluatedAt?: number;
  /** The rule set's UTC offset of instrument time. */
  utcOffset?: string;
  /** Emission rules: the rule set's plant-marked invalid periods (needed to recompute the alert). */
  invalidPeriods?: InvalidPeriod[];
}

/** An intermediate result printed by `stele alerts eval`: an hour, a day, a probe's MKT. */
export interface Aggregate {
  kind: string;
  ruleId: string;
  subject: string;
  window: AlertWindow;
  values: Record<string, string | number | boolean>;
}

export interface EvalResult {
  aggregates: Aggregate[];
  alerts: Alert[];
}

export interface EvalOptions {
  /** Evaluation time, ms (quiet probes, silent devices, gap grace). Default: the latest gateway time in the input. */
  at?: number;
}
