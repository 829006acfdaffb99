/**
 * Structured logging: a plain function, or a pino-like logger (`logger.warn(fields, msg)`). Default: silent.
 * Same shape as ingest's, so one pino instance serves both.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFn = (level: LogLevel, msg: string, fields: Record<string, unknown>) => void;
export interface PinoLike {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}
export type Logger = LogFn | PinoLike;

export function toLogFn(log: Logger | undefined): LogFn {
  if (log === undefined) return () => {};
  if (typeof log === 'function') return log;
  return (level, msg, fields) => log[level](fields, msg);
}
