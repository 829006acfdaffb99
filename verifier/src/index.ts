export { EXIT_FAILED, EXIT_PARTIAL, EXIT_USAGE, EXIT_VERIFIED, exitCodeOf, runVerify, type VerifyIo } from './cli.ts';
export { formatVerdict, type FormatOptions, type Lang } from './format.ts';
export { runAlerts, STANDARDS_DIR, type AlertsIo } from './alerts-cli.ts';
export { pemSigner, runTrust } from './trust-cli.ts';
