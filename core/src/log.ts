/**
 * Structured logging shared by the gateway and ingest: a plain function, or a pino-like logger
 * (`logger.warn(fields, msg)`), so one pino instance serves every package. Default: silent.
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

/** One JSON object per line on a stream. */
export function jsonLineLogger(stream: { write(s: string): unknown }, minLevel: LogLevel = 'info'): LogFn {
  const rank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
  return (level, msg, fields) => {
    if (rank[level] < rank[minLevel]) return;
    stream.write(`${JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields })}\n`);
  };
}
