export { Retention, type RetentionOptions, type RetentionStatus } from './retention.ts';
