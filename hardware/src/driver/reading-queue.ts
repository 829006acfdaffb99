/**
 * A bounded-by-the-caller queue with one async reader: items are pushed synchronously by a decoder, read with
 * `drain()` until the signal aborts or the queue ends (then the queued items first, then the end's failure if
 * any). Callers own the overflow policy and decide when to wake the reader.
 */
export class ReadingQueue<T> {
  private readonly items: T[] = [];
  private wakeReader: (() => void) | undefined;
  private done = false;
  private failure: Error | undefined;

  get length(): number {
    return this.items.length;
  }

  /** True once end() was called. */
  get ended(): boolean {
    return this.done;
  }

  /** Queues an item; does not wake the reader (call wake()). */
  push(item: T): void {
    this.items.push(item);
  }

  /** Removes and returns the oldest item. */
  shift(): T | undefined {
    return this.items.shift();
  }

  /** Lets a waiting reader look at the queue again. */
  wake(): void {
    this.wakeReader?.();
  }

  /** Marks the end: drain() yields what is queued, then returns (or throws `failure`). Does not wake the reader. */
  end(failure: Error | undefined): void {
    this.done = true;
    this.failure = failure;
  }

  async *drain(signal?: AbortSignal): AsyncGenerator<T, void, undefined> {
    const onAbort = () => this.wakeReader?.();
    signal?.addEventListener('abort', onAbort);
    try {
      for (;;) {
        if (signal?.aborted === true) return;
        const next = this.items.shift();
        if (next !== undefined) {
          yield next;
          continue;
        }
        if (this.done) {
          if (this.failure !== undefined) throw this.failure;
          return;
        }
        await new Promise<void>((resolve) => {
          this.wakeReader = resolve;
        });
        this.wakeReader = undefined;
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }
}
