/** Reconnect policy of a serial transport: exponential backoff, bounded and jittered. */
export interface BackoffPolicy {
  /** Delay before the first reconnect attempt. Default 500 ms. */
  initialDelayMs?: number;
  /** Upper bound of any delay, jitter included. Default 30 000 ms. */
  maxDelayMs?: number;
  /** Growth per attempt. Default 2. */
  factor?: number;
  /** Relative jitter: the delay is spread uniformly over ±jitter of its nominal value. Default 0.2. */
  jitter?: number;
  /** Attempts before giving up. Default Infinity (a gateway keeps trying until told to stop). */
  maxAttempts?: number;
}

export const DEFAULT_BACKOFF: Required<BackoffPolicy> = {
  initialDelayMs: 500,
  maxDelayMs: 30_000,
  factor: 2,
  jitter: 0.2,
  maxAttempts: Infinity,
};

export function resolveBackoff(policy: BackoffPolicy = {}): Required<BackoffPolicy> {
  const p = { ...DEFAULT_BACKOFF, ...policy };
  if (!(p.initialDelayMs >= 0) || !Number.isFinite(p.initialDelayMs)) throw new RangeError('reconnect.initialDelayMs must be a finite number >= 0');
  if (!(p.maxDelayMs >= p.initialDelayMs) || !Number.isFinite(p.maxDelayMs)) throw new RangeError('reconnect.maxDelayMs must be finite and >= initialDelayMs');
  if (!(p.factor >= 1)) throw new RangeError('reconnect.factor must be >= 1');
  if (!(p.jitter >= 0 && p.jitter <= 1)) throw new RangeError('reconnect.jitter must be 0..1');
  if (!(p.maxAttempts >= 1)) throw new RangeError('reconnect.maxAttempts must be >= 1');
  return p;
}

/**
 * Delay before reconnect attempt `attempt` (1-based): min(max, initial × factor^(attempt−1)), spread by ±jitter,
 * then clamped to [0, maxDelayMs]. `random` returns [0, 1) (injectable for tests).
 */
export function backoffDelayMs(attempt: number, policy: Required<BackoffPolicy>, random: () => number = Math.random): number {
  if (!Number.isInteger(attempt) || attempt < 1) throw new RangeError('attempt must be an integer >= 1');
  const nominal = Math.min(policy.maxDelayMs, policy.initialDelayMs * policy.factor ** Math.min(attempt - 1, 64));
  const spread = nominal * policy.jitter * (2 * random() - 1);
  return Math.round(Math.min(policy.maxDelayMs, Math.max(0, nominal + spread)));
}
