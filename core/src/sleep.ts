/**
 * The one abortable sleep (issue 10 item 2), for pacing a loop: a poll interval, a reconnect back-off. Isomorphic
 * (setTimeout only). Not for waiting on a result: wait for the event, or in tests `waitFor` from @stele/testkit.
 */

/**
 * Resolves after `ms`, or as soon as `signal` aborts. It never rejects on abort: the caller looks at the signal,
 * so a loop ends with `while (!signal.aborted)` and no try/catch. Throws RangeError for a negative or non-finite
 * `ms` (misuse).
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`ms must be a non-negative number, got ${ms}`);
  return new Promise((resolve) => {
    if (signal?.aborted === true) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
