/**
 * Scenario files for `stele sim` (YAML): the instruments and gateways of a run, a timeline of episodes and faults,
 * and the built-in assertions checked at its end. Parsed with line positions through the same small validator the
 * gateway config uses (edge-agent/src/config/schema.ts): every problem is reported at once as
 * `file:line:column path: what is expected`, under SCENARIO_INVALID. Bounded: at most MAX_SCENARIO_BYTES are read,
 * at most MAX_STEPS timeline steps, MAX_GATEWAYS gateways and MAX_INSTRUMENTS instruments per gateway.
 */
import { open } from 'node:fs/promises';
import { resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { HJ212_CRC_VARIANTS, type Hj212CrcVariant } from '@stele/hardware';
import { INVALID, duration, integer, list, object, oneOf, report, string, type Ctx, type Rule } from '@stele/edge-agent/config-schema';
import { SimError, formatScenarioIssue, type ScenarioIssue } from './errors.ts';

export const MAX_SCENARIO_BYTES = 256 * 1024;
export const MAX_STEPS = 200;
export const MAX_GATEWAYS = 8;
export const MAX_INSTRUMENTS = 8;

export const INSTRUMENT_KINDS = ['cems', 'modbus-th'] as const;
export type InstrumentKind = (typeof INSTRUMENT_KINDS)[number];

/** Episodes change what an instrument sends; faults break a part of Stele's path. */
export const EPISODES = ['exceedance', 'calibration', 'door-open', 'probe-quiet'] as const;
export const FAULTS = [
  'broker-outage',
  'gateway-power-cut',
  'ingest-power-cut',
  'outbox-tamper',
  'forged-confirmation',
  'network-partition',
  'clock-jump',
  'boot-1970',
  'slow-signer',
  'duplicate-delivery',
  'outbox-delete',
  'statement-replay',
  'key-swap',
  'disk-full',
] as const;
export type Episode = (typeof EPISODES)[number];
export type Fault = (typeof FAULTS)[number];
/** Which instrument kind each episode applies to. */
export const EPISODE_KIND: Record<Episode, InstrumentKind> = { exceedance: 'cems', calibration: 'cems', 'door-open': 'modbus-th', 'probe-quiet': 'modbus-th' };

export const ASSERTIONS = [
  'frames-reach-ingest',
  'bundles-verify',
  'anchors-final',
  'exceedance-in-evidence',
  'door-open-in-evidence',
  'tamper-detected',
  'forged-confirmation-ignored',
  'partition-survived',
  'clock-state-recorded',
  'signer-batched',
  'duplicates-stored-once',
  'gap-detected',
  'replay-ignored',
  'key-swap-rejected',
  'disk-full-refused',
] as const;
export type AssertionName = (typeof ASSERTIONS)[number];

export interface InstrumentSpec {
  id: string;
  kind: InstrumentKind;
  /** How the instrument reaches its gateway: a pseudo-terminal pair (socat), as over a null-modem cable. */
  link: 'pty';
  /** cems: time between frames; modbus-th: the gateway's poll period. */
  intervalMs: number;
  /** cems */
  mn: string;
  crc: Hj212CrcVariant;
  /** modbus-th */
  slave: number;
  family: 'xy-md02' | 'xy-md02-x100' | 'md02';
  setPointC: number;
}

export interface GatewaySpec {
  id: string;
  instruments: InstrumentSpec[];
}

export interface StepSpec {
  /** From the start of the run. */
  atMs: number;
  episode?: Episode;
  fault?: Fault;
  /** How long the episode or the outage lasts (gateway and ingest power cuts: how long they stay down). */
  forMs: number;
  instrument?: string;
  gateway: string;
  /** exceedance: the HJ 212 code scaled, and by how much. */
  channel: string;
  factor: number;
  /** door-open: the temperature the room reaches. */
  temperatureC: number;
  /** network-partition: connections reset (`drop`) or bytes held (`stall`). */
  mode: 'drop' | 'stall';
  /** clock-jump: how far the wall clock jumps, ms (negative: backwards). */
  byMs: number;
  /** slow-signer: the wait before each signature, ms. */
  latencyMs: number;
  /** `file:line` of the step, for the report. */
  where: string;
}

export interface Scenario {
  file: string;
  name: string;
  description: string;
  seconds: number;
  seed: number;
  batchMs: number;
  gateways: GatewaySpec[];
  timeline: StepSpec[];
  assertions: AssertionName[];
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const DEVICE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function number(options: { min: number; max: number }): Rule<number> {
  return (at, ctx) => {
    const v = (at.node as { value?: unknown } | undefined)?.value;
    if (typeof v === 'number' && Number.isFinite(v) && v >= options.min && v <= options.max) return v;
    return report(ctx, at, `expected a number from ${options.min} to ${options.max}, got ${v === undefined ? 'nothing' : JSON.stringify(v)}`);
  };
}

function instrumentRule(): Rule<Record<string, unknown>> {
  return object(
    {
      id: { rule: string({ pattern: NAME, expected: 'a name of letters, digits, ".", "_" or "-"' }), required: true },
      kind: { rule: oneOf(INSTRUMENT_KINDS), required: true },
      link: { rule: oneOf(['pty'] as const), default: 'pty' },
      interval: { rule: duration({ minMs: 200 }), default: 1000 },
      mn: { rule: string({ pattern: /^[0-9A-Za-z]{1,24}$/, expected: 'a data logger id (MN), up to 24 letters and digits' }) },
      crc: { rule: oneOf(HJ212_CRC_VARIANTS) },
      slave: { rule: integer({ min: 1, max: 247 }) },
      family: { rule: oneOf(['xy-md02', 'xy-md02-x100', 'md02'] as const) },
      setPoint: { rule: number({ min: -40, max: 60 }) },
    },
    {
      refine(v, f, ctx) {
        const only = v.kind === 'cems' ? ['slave', 'family', 'setPoint'] : ['mn', 'crc'];
        for (const k of only) if (v[k] !== undefined) report(ctx, f.at(k), `not an option of kind ${String(v.kind)}`);
      },
    },
  );
}

function stepRule(): Rule<Record<string, unknown>> {
  return object(
    {
      at: { rule: duration(), required: true },
      episode: { rule: oneOf(EPISODES) },
      fault: { rule: oneOf(FAULTS) },
      for: { rule: duration({ minMs: 100 }), default: 5000 },
      instrument: { rule: string({ pattern: NAME, expected: 'an instrument id of this scenario' }) },
      gateway: { rule: string({ pattern: DEVICE_ID, expected: 'a gateway id of this scenario' }) },
      channel: { rule: string({ pattern: /^[a-z][0-9]{5}$/, expected: 'an HJ 212-2017 code such as a21026' }), default: 'a21026' },
      factor: { rule: number({ min: 0.01, max: 100 }), default: 3 },
      temperature: { rule: number({ min: -40, max: 80 }), default: 12 },
      mode: { rule: oneOf(['drop', 'stall'] as const), default: 'drop' },
      by: { rule: number({ min: -366 * 86_400, max: 366 * 86_400 }), default: 3600 },
      latency: { rule: duration({ minMs: 1 }), default: 400 },
    },
    {
      refine(v, f, ctx) {
        if ((v.episode === undefined) === (v.fault === undefined)) report(ctx, f.at(v.episode === undefined ? 'episode' : 'fault'), 'expected exactly one of episode or fault');
        if (v.episode !== undefined && v.instrument === undefined) report(ctx, f.at('instrument'), `required for episode ${String(v.episode)}`);
      },
    },
  );
}

function rootRule(): Rule<Record<string, unknown>> {
  return object({
    name: { rule: string({ pattern: NAME, expected: 'the scenario name' }), required: true },
    description: { rule: string({ maxLength: 2000 }), required: true },
    seconds: { rule: integer({ min: 5, max: 3600 }), default: 30 },
    seed: { rule: integer({ min: 0, max: 2 ** 31 - 1 }), default: 1 },
    ingest: { rule: object({ batch: { rule: duration({ minMs: 100 }), default: 1000 } }), default: { batch: 1000 } },
    gateways: {
      rule: list(
        object({
          id: { rule: string({ pattern: DEVICE_ID, expected: 'a gateway (device) id of letters, digits, ".", "_" or "-"' }), required: true },
          instruments: { rule: list(instrumentRule(), { min: 1 }), required: true },
        }),
        { min: 1 },
      ),
      required: true,
    },
    timeline: { rule: list(stepRule()), default: [] },
    assertions: { rule: list(oneOf(ASSERTIONS), { min: 1 }), required: true },
  });
}

/** Parses and checks scenario text; throws SimError SCENARIO_INVALID listing every issue. */
export function parseScenario(text: string, file: string): Scenario {
  if (typeof text !== 'string') throw new TypeError('text must be a string');
  const abs = resolve(file);
  const lineCounter = new LineCounter();
  // maxAliasCount bounds the work a document of aliases can cause (a "billion laughs" file)
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const issues: ScenarioIssue[] = [];
  for (const e of doc.errors) {
    const { line, col } = lineCounter.linePos(e.pos[0]);
    issues.push({ file: abs, line, column: col, path: '', message: `YAML syntax: ${e.message.split('\n')[0]}` });
  }
  if (issues.length === 0) {
    const ctx: Ctx = { file: abs, lineCounter, issues };
    const value = rootRule()({ node: doc.contents ?? undefined, path: '', fallbackOffset: 0 }, ctx);
    if (value !== INVALID && issues.length === 0) {
      const scenario = toScenario(value, abs, doc, ctx);
      if (issues.length === 0) return scenario;
    }
  }
  issues.sort((a, b) => a.line - b.line || a.column - b.column);
  const first = issues[0] ?? { file: abs, line: 1, column: 1, path: '', message: 'empty' };
  throw new SimError('SCENARIO_INVALID', `scenario has ${issues.length} problem${issues.length === 1 ? '' : 's'}:\n${issues.map((i) => `  ${formatScenarioIssue(i)}`).join('\n')}`, {
    where: { file: first.file, line: first.line, column: first.column, path: first.path },
    issues,
  });
}

/** Reads a scenario file: SCENARIO_UNREADABLE, SCENARIO_TOO_LARGE, or as {@link parseScenario}. */
export async function loadScenario(file: string): Promise<Scenario> {
  let text: string;
  try {
    const fh = await open(file, 'r');
    try {
      const size = (await fh.stat()).size;
      if (size > MAX_SCENARIO_BYTES) throw new SimError('SCENARIO_TOO_LARGE', `the scenario file ${file} has ${size} bytes; at most ${MAX_SCENARIO_BYTES} are read`, { where: { file: resolve(file), sizeBytes: size } });
      const buf = Buffer.alloc(MAX_SCENARIO_BYTES + 1);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      if (bytesRead > MAX_SCENARIO_BYTES) throw new SimError('SCENARIO_TOO_LARGE', `the scenario file ${file} grew past ${MAX_SCENARIO_BYTES} bytes`, { where: { file: resolve(file) } });
      text = buf.subarray(0, bytesRead).toString('utf8');
    } finally {
      await fh.close();
    }
  } catch (cause) {
    if (cause instanceof SimError) throw cause;
    const code = (cause as NodeJS.ErrnoException).code;
    throw new SimError('SCENARIO_UNREADABLE', `cannot read the scenario file ${file}${code === 'ENOENT' ? ' (no such file)' : ''}`, { cause, where: { file: resolve(file) } });
  }
  return parseScenario(text, file);
}

type Doc = ReturnType<typeof parseDocument>;

function toScenario(v: Record<string, unknown>, file: string, doc: Doc, ctx: Ctx): Scenario {
  const gateways = (v.gateways as Record<string, unknown>[]).map((g, gi) => ({
    id: g.id as string,
    instruments: (g.instruments as Record<string, unknown>[]).map((ins, ii) => ({
      id: ins.id as string,
      kind: ins.kind as InstrumentKind,
      link: 'pty' as const,
      intervalMs: ins.interval as number,
      mn: (ins.mn as string | undefined) ?? `SIM${String(gi + 1).padStart(3, '0')}${String(ii + 1).padStart(3, '0')}`,
      crc: (ins.crc as Hj212CrcVariant | undefined) ?? 'hj212',
      slave: (ins.slave as number | undefined) ?? 1,
      family: (ins.family as InstrumentSpec['family'] | undefined) ?? 'xy-md02',
      setPointC: (ins.setPoint as number | undefined) ?? 4,
    })),
  }));
  const at = (path: (string | number)[], key?: string) => {
    const node = doc.getIn(path, true) as { range?: [number, number] } | undefined;
    const { line, col } = ctx.lineCounter.linePos(node?.range?.[0] ?? 0);
    return { node: key === undefined ? node : doc.getIn([...path, key], true), path: path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`)).join('').replace(/^\./, '') + (key === undefined ? '' : `.${key}`), fallbackOffset: node?.range?.[0] ?? 0, line, col };
  };
  // cross-field checks: unique ids, steps naming things that exist, episodes on the right kind, limits
  if (gateways.length > MAX_GATEWAYS) report(ctx, at(['gateways']), `at most ${MAX_GATEWAYS} gateways`);
  const gatewayIds = new Set<string>();
  const instruments = new Map<string, { gateway: string; kind: InstrumentKind }>();
  gateways.forEach((g, gi) => {
    if (gatewayIds.has(g.id)) report(ctx, at(['gateways', gi], 'id'), `duplicate gateway id ${JSON.stringify(g.id)}`);
    gatewayIds.add(g.id);
    if (g.instruments.length > MAX_INSTRUMENTS) report(ctx, at(['gateways', gi, 'instruments']), `at most ${MAX_INSTRUMENTS} instruments per gateway`);
    g.instruments.forEach((ins, ii) => {
      if (instruments.has(ins.id)) report(ctx, at(['gateways', gi, 'instruments', ii], 'id'), `duplicate instrument id ${JSON.stringify(ins.id)}`);
      instruments.set(ins.id, { gateway: g.id, kind: ins.kind });
    });
  });
  const steps = v.timeline as Record<string, unknown>[];
  if (steps.length > MAX_STEPS) report(ctx, at(['timeline']), `at most ${MAX_STEPS} steps`);
  const seconds = v.seconds as number;
  const timeline: StepSpec[] = steps.map((s, i) => {
    const stepAt = at(['timeline', i]);
    if ((s.at as number) >= seconds * 1000) report(ctx, at(['timeline', i], 'at'), `expected a time before the end of the run (seconds: ${seconds})`);
    let gateway = (s.gateway as string | undefined) ?? gateways[0]!.id;
    if (s.instrument !== undefined) {
      const ins = instruments.get(s.instrument as string);
      if (ins === undefined) report(ctx, at(['timeline', i], 'instrument'), `no instrument ${JSON.stringify(s.instrument)} in this scenario`);
      else {
        gateway = ins.gateway;
        const want = s.episode === undefined ? undefined : EPISODE_KIND[s.episode as Episode];
        if (want !== undefined && ins.kind !== want) report(ctx, at(['timeline', i], 'episode'), `episode ${String(s.episode)} needs a ${want} instrument; ${String(s.instrument)} is ${ins.kind}`);
      }
    }
    if (s.gateway !== undefined && !gatewayIds.has(s.gateway as string)) report(ctx, at(['timeline', i], 'gateway'), `no gateway ${JSON.stringify(s.gateway)} in this scenario`);
    return {
      atMs: s.at as number,
      ...(s.episode === undefined ? {} : { episode: s.episode as Episode }),
      ...(s.fault === undefined ? {} : { fault: s.fault as Fault }),
      forMs: s.for as number,
      ...(s.instrument === undefined ? {} : { instrument: s.instrument as string }),
      gateway,
      channel: s.channel as string,
      factor: s.factor as number,
      temperatureC: s.temperature as number,
      mode: s.mode as 'drop' | 'stall',
      byMs: Math.round((s.by as number) * 1000),
      latencyMs: s.latency as number,
      where: `${file}:${stepAt.line}`,
    };
  });
  timeline.sort((a, b) => a.atMs - b.atMs);
  return {
    file,
    name: v.name as string,
    description: v.description as string,
    seconds,
    seed: v.seed as number,
    batchMs: (v.ingest as { batch: number }).batch,
    gateways,
    timeline,
    assertions: [...new Set(v.assertions as AssertionName[])],
  };
}
