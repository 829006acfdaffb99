/**
 * Waiting in tests. A test waits for the thing it needs (a condition, an event, a port), with a bound so a
 * broken build fails instead of hanging; it never sleeps a guessed time and hopes.
 */

/**
 * Resolves after `ms`, or as soon as `signal` aborts (it does not reject: the caller looks at the signal).
 * For pacing a loop, not for waiting on a result: use `waitFor` for that.
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
    await sleep(pollMs);
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
