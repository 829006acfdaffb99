/** Structured logging: the shared shape lives in core (core/src/log.ts). */
export { jsonLineLogger, toLogFn, type LogFn, type LogLevel, type Logger, type PinoLike } from '@stele/core';
