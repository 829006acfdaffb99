import { SteleError } from '@stele/core';

/** One problem found in a config file, with where it is. `line` and `column` are 1-based. */
export interface ConfigIssue {
  file: string;
  line: number;
  column: number;
  /** Dotted path of the field, e.g. `instruments[1].baud` (empty for the whole document). */
  path: string;
  /** What is wrong and what is expected, e.g. `expected an integer from 1200 to 921600, got "96OO"`. */
  message: string;
}

/**
 * - `CONFIG_INVALID`: the file is not valid YAML, or a field does not match the schema. `where` is the first
 *   issue's `{file, line, column, path}`; `issues` lists every problem found (they are all reported at once).
 * - `CONFIG_UNREADABLE`: the file cannot be read (missing, permissions); the cause is attached.
 * - `CONFIG_TOO_LARGE`: the file is larger than MAX_CONFIG_BYTES (1 MiB); it is not read.
 */
export type ConfigErrorCode = 'CONFIG_INVALID' | 'CONFIG_UNREADABLE' | 'CONFIG_TOO_LARGE';

export class ConfigError extends SteleError<ConfigErrorCode> {
  readonly issues: readonly ConfigIssue[];

  constructor(code: ConfigErrorCode, message: string, options: { cause?: unknown; where?: Record<string, unknown>; issues?: ConfigIssue[] } = {}) {
    super(code, message, options);
    this.issues = options.issues ?? [];
  }
}

/** `file:line:column path: message`, the form editors and terminals link. */
export function formatIssue(issue: ConfigIssue): string {
  return `${issue.file}:${issue.line}:${issue.column} ${issue.path === '' ? '' : `${issue.path}: `}${issue.message}`;
}
