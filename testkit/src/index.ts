export { captureIo, TextSink, type CapturedStream } from './io.ts';
export { freePort, waitForPort } from './net.ts';
export { repoRoot, sharedDir, SHARED_SKIP_REASON } from './shared.ts';
export { codeOf, waitFor } from './wait.ts';
