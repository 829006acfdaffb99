/**
 * ES256 signature checks on a thread of their own (verify-thread.mjs), so that the event loop that receives, orders
 * and stores statements does not also submit every WebCrypto job: measured on the 2-core machine, the main thread
 * of ingest was off the CPU for a third of its busy time, most of it inside `subtle.verify` (each job wakes a
 * thread-pool thread, which then takes the core from the thread that woke it). The checks of one turn of the event
 * loop go over in one message (their bytes packed in one transferred buffer); the thread keeps at most
 * `maxInFlight` WebCrypto checks running. Should the thread fail, the checks run on the calling thread again (core's
 * verifyEs256, same answers), and the failure is logged.
 */
import { Worker } from 'node:worker_threads';
import { verifyEs256 } from '@stele/core';
import type { LogFn } from '../log.ts';
import { InFlightLimit } from './limit.ts';

interface Job {
  publicKey: Uint8Array;
  signature: Uint8Array;
  message: Uint8Array;
  resolve: (ok: boolean) => void;
  reject: (e: unknown) => void;
}

const P256_SEC1 = 65;
const SIGNATURE = 64;
/** Jobs sent in one message at most, and bytes of one message at most beyond its first job (a statement's protected
 * header may make its Sig_structure up to a message's 64 KiB: 4,096 such would be a 256 MiB buffer). */
const MAX_BATCH = 4096;
const MAX_BATCH_BYTES = 1 << 20;

export class SignatureThread {
  #worker: Worker | undefined;
  /** Closed or failed: no thread any more. */
  #ended = false;
  #nextId = 1;
  #pending = new Map<number, Job[]>();
  #queued: Job[] = [];
  #flushing = false;
  /** After the thread failed: checks on this thread, bounded as on the other. */
  #fallback: InFlightLimit | undefined;

  private constructor(
    private readonly maxInFlight: number,
    private readonly log: LogFn,
    private readonly script: URL,
  ) {}

  /**
   * The checks of one service; the thread starts with the first check (at most `maxInFlight` at once on it).
   * `script` is the thread's code (tests give one that fails).
   */
  static create(maxInFlight: number, log: LogFn, script = new URL('./verify-thread.mjs', import.meta.url)): SignatureThread {
    return new SignatureThread(maxInFlight, log, script);
  }

  #start(): void {
    const worker = new Worker(this.script, { workerData: { maxInFlight: this.maxInFlight } });
    worker.unref();
    worker.on('message', (m: { id: number; results: Uint8Array }) => this.#answer(m));
    worker.on('error', (e) => this.#fail(e));
    worker.on('exit', (code) => {
      if (this.#worker === worker) this.#fail(new Error(`the signature thread exited (${code})`));
    });
    this.#worker = worker;
  }

  /** Same contract as core's verifyEs256 for a validated key: true when `signature` over `message` verifies. */
  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean> {
    if (this.#worker === undefined && !this.#ended) this.#start();
    if (this.#ended || publicKey.length !== P256_SEC1 || signature.length !== SIGNATURE) {
      // no thread (failed or closed), or not the shapes the thread takes: core judges it (false or KEY_FORMAT_ERROR)
      this.#fallback ??= new InFlightLimit(this.maxInFlight);
      return this.#fallback.run(() => verifyEs256(publicKey, message, signature));
    }
    return new Promise<boolean>((resolve, reject) => {
      this.#queued.push({ publicKey, signature, message, resolve, reject });
      if (!this.#flushing) {
        this.#flushing = true;
        queueMicrotask(() => this.#flush());
      }
    });
  }

  /** Sends what was queued in this turn, packed in one buffer. */
  #flush(): void {
    this.#flushing = false;
    while (this.#queued.length > 0) {
      let n = 0;
      for (let bytes = 0; n < Math.min(MAX_BATCH, this.#queued.length) && (n === 0 || bytes + this.#queued[n]!.message.length <= MAX_BATCH_BYTES); n++) {
        bytes += this.#queued[n]!.message.length;
      }
      const jobs = this.#queued.splice(0, n);
      const worker = this.#worker;
      if (worker === undefined) {
        this.#checkHere(jobs);
        continue;
      }
      let size = 0;
      for (const j of jobs) size += P256_SEC1 + SIGNATURE + 4 + j.message.length;
      const bytes = new Uint8Array(size);
      const view = new DataView(bytes.buffer);
      let at = 0;
      for (const j of jobs) {
        bytes.set(j.publicKey, at);
        bytes.set(j.signature, at + P256_SEC1);
        view.setUint32(at + P256_SEC1 + SIGNATURE, j.message.length);
        bytes.set(j.message, at + P256_SEC1 + SIGNATURE + 4);
        at += P256_SEC1 + SIGNATURE + 4 + j.message.length;
      }
      const id = this.#nextId++;
      this.#pending.set(id, jobs);
      worker.postMessage({ id, count: jobs.length, bytes: bytes.buffer }, [bytes.buffer]);
    }
  }

  #answer({ id, results }: { id: number; results: Uint8Array }): void {
    const jobs = this.#pending.get(id);
    if (jobs === undefined) return;
    this.#pending.delete(id);
    for (const [i, j] of jobs.entries()) j.resolve(results[i] === 1);
  }

  /** The thread is gone: what it held is checked here, and so is everything after. */
  #fail(e: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#worker = undefined;
    this.log('error', 'the signature thread failed: checking signatures on the main thread', { err: e instanceof Error ? e.message : String(e) });
    this.#checkHere(this.#takePending());
  }

  /** Stops the thread; checks asked after run on the calling thread. */
  async close(): Promise<void> {
    const worker = this.#worker;
    this.#ended = true;
    this.#worker = undefined;
    if (worker === undefined) return;
    const held = this.#takePending();
    await worker.terminate();
    this.#checkHere(held);
  }

  /** The checks sent to the thread and not answered, taken back. */
  #takePending(): Job[] {
    const held = [...this.#pending.values()].flat();
    this.#pending.clear();
    return held;
  }

  /** Checks `jobs` on this thread (the thread is gone), each answering its caller. */
  #checkHere(jobs: readonly Job[]): void {
    for (const j of jobs) this.verify(j.publicKey, j.message, j.signature).then(j.resolve, j.reject);
  }
}
