import { SteleError } from '@stele/core';

/** One problem found in a scenario file: `file:line:column path: message`, as the gateway config reports its own. */
export interface ScenarioIssue {
  file: string;
  line: number;
  column: number;
  /** Dotted path of the key, e.g. `timeline[2].fault` (empty for the whole document). */
  path: string;
  message: string;
}

/**
 * - `SCENARIO_UNKNOWN`: no shipped scenario has that name and no such file exists.
 * - `SCENARIO_UNREADABLE`: the file cannot be read.
 * - `SCENARIO_TOO_LARGE`: the file is over MAX_SCENARIO_BYTES; it is not parsed.
 * - `SCENARIO_INVALID`: not YAML, or a key does not match the schema; `issues` lists every problem with its path.
 * - `SIM_START_FAILED`: a part of the run (socat, ingest, a gateway) did not come up; the cause is attached.
 */
export type SimErrorCode = 'SCENARIO_UNKNOWN' | 'SCENARIO_UNREADABLE' | 'SCENARIO_TOO_LARGE' | 'SCENARIO_INVALID' | 'SIM_START_FAILED';

export class SimError extends SteleError<SimErrorCode> {
  readonly issues: readonly ScenarioIssue[];
  constructor(code: SimErrorCode, message: string, options: { cause?: unknown; where?: Record<string, unknown>; issues?: ScenarioIssue[] } = {}) {
    super(code, message, options);
    this.issues = options.issues ?? [];
  }
}

export function formatScenarioIssue(i: ScenarioIssue): string {
  return `${i.file}:${i.line}:${i.column} ${i.path === '' ? '' : `${i.path}: `}${i.message}`;
}
