// The signature thread of ingest (signature-thread.ts): checks batches of ES256 signatures with WebCrypto, at most
// `maxInFlight` at once, off the event loop that receives, orders and stores. Plain JavaScript that needs nothing
// but Node (it runs the same from the sources and from cli/dist, where the CLI build copies it).
//
// A batch arrives as { id, count, bytes } where `bytes` (transferred) holds `count` jobs, each
//   public key (65 bytes, SEC1 uncompressed) | signature (64 bytes, r || s) | message length (4, big-endian) | message
// and is answered with { id, results } where results[i] is 1 when job i verified, else 0 (a key WebCrypto refuses
// and a signature it cannot read are 0 too: the caller validated keys at enrolment and reports 0 as a bad signature).
import { parentPort, workerData } from 'node:worker_threads';

const subtle = globalThis.crypto.subtle;
const maxInFlight = workerData.maxInFlight;
const ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' };
const IMPORT = { name: 'ECDSA', namedCurve: 'P-256' };
const KEYS_KEPT = 4096;
/** Imported keys by their SEC1 bytes (as latin1 text); cleared when full. */
const keys = new Map();

function keyOf(bytes) {
  const name = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
  let key = keys.get(name);
  if (key === undefined) {
    if (keys.size >= KEYS_KEPT) keys.clear();
    key = subtle.importKey('raw', bytes.slice(), IMPORT, false, ['verify']);
    keys.set(name, key);
    key.catch(() => keys.delete(name));
  }
  return key;
}

let running = 0;
/** Jobs waiting for a slot, oldest first from `head` (a queue without shifting the array each time). */
let waiting = [];
let head = 0;

function start(job) {
  running++;
  keyOf(job.key)
    .then((key) => subtle.verify(ALGORITHM, key, job.signature, job.message))
    .then(
      (ok) => job.done(ok),
      () => job.done(false),
    )
    .finally(() => {
      running--;
      if (head < waiting.length) {
        const next = waiting[head];
        waiting[head++] = undefined;
        if (head === waiting.length) {
          waiting = [];
          head = 0;
        }
        start(next);
      }
    });
}

parentPort.on('message', ({ id, count, bytes }) => {
  const view = new DataView(bytes);
  const all = new Uint8Array(bytes);
  const results = new Uint8Array(count);
  let left = count;
  if (left === 0) {
    parentPort.postMessage({ id, results }, [results.buffer]);
    return;
  }
  let at = 0;
  for (let i = 0; i < count; i++) {
    const key = all.subarray(at, at + 65);
    const signature = all.subarray(at + 65, at + 129);
    const length = view.getUint32(at + 129);
    const message = all.subarray(at + 133, at + 133 + length);
    at += 133 + length;
    const job = {
      key,
      signature,
      message,
      done(ok) {
        results[i] = ok ? 1 : 0;
        if (--left === 0) parentPort.postMessage({ id, results }, [results.buffer]);
      },
    };
    if (running < maxInFlight) start(job);
    else waiting.push(job);
  }
});
