/**
 * At most `max` signature checks handed to WebCrypto at once (ingest's `maxVerifyInFlight`, `--verify-in-flight`).
 * Without a bound every statement received is verified at once (32 gateways' windows: thousands of jobs queued on
 * the thread pool), which costs the event loop more per check and holds every parsed statement meanwhile; the
 * issue #11 benchmark compares ingest with the raw verify rate at the same number in flight.
 */
export class InFlightLimit {
  #running = 0;
  #queue: (() => void)[] = [];
  #head = 0;

  constructor(readonly max: number) {
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError('max must be a positive integer');
  }

  /** Runs `work` once fewer than `max` others run; resolves or rejects as it does. */
  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.#running >= this.max) await new Promise<void>((resolve) => this.#queue.push(resolve));
    else this.#running++;
    try {
      return await work();
    } finally {
      this.#next();
    }
  }

  /** Hands the slot to the next waiter (the slot stays taken), or frees it. */
  #next(): void {
    if (this.#head < this.#queue.length) {
      const wake = this.#queue[this.#head]!;
      this.#queue[this.#head++] = undefined as unknown as () => void;
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#head = 0;
      }
      wake();
    } else this.#running--;
  }

  /** Checks running now. */
  get running(): number {
    return this.#running;
  }

  /** Checks waiting for a slot. */
  get waiting(): number {
    return this.#queue.length - this.#head;
  }
}
