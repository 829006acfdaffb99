/**
 * Waiting in tests. A test waits for the thing it needs (a condition, an event, a port), with a bound so a
 * broken build fails instead of hanging; it never sleeps a guessed time and hopes.
 */

/** A pause between polls (the abortable sleep for code is `sleep` in @stele/core; this package has no dependencies). */
export const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `condition` every `pollMs` (default 5) until it holds; rejects with `timed out waiting for WHAT` after
 * `timeoutMs` (default 20 000: a bound for a loaded 2-core machine, not a timing assertion).
 */
export async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000, pollMs = 5): Promise<void> {
  if (typeof condition !== 'function') throw new TypeError('condition must be a function');
  if (typeof what !== 'string') throw new TypeError('what must be a string: waitFor(condition, what, timeoutMs)');
  const until = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what} (${timeoutMs} ms)`);
    await pause(pollMs);
  }
}

/**
 * The `code` of the error `p` rejects with, when it is an instance of `ErrorClass`; rethrows any other error and
 * throws when `p` resolves. For asserting codes, never message text.
 */
export async function codeOf(p: Promise<unknown>, ErrorClass: abstract new (...args: never[]) => { code: string }): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ErrorClass) return e.code;
    throw e;
  }
  throw new Error(`expected a ${ErrorClass.name}`);
}
