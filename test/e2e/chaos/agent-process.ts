/**
 * The gateway agent as a child process for the chaos test: Outbox + Publisher + GatewayAgent + Retention and a
 * timer source of `--rate` readings per second (no instrument: the chaos is in the process, the broker and
 * ingest, not on a serial line). Built from the library parts rather than `stele gateway run` because that
 * command was being written at the same time; the parts are the ones `stele gateway run` uses.
 *
 *   node --import tsx test/e2e/chaos/agent-process.ts --data DIR --mqtt URL --device ID --key FILE --ingest-key B64URL
 *        [--rate 50] [--stop-file F] [--frames-log F]
 *
 * --frames-log: the instrument's own count. The timer source stands for an instrument on a serial line: before
 * it hands a frame over it appends `<pid> <SHA-256 of the frame, hex>` to this file (synchronously), so the test
 * can match ingest's store against what the instrument sent, not against the gateway's outbox.
 *
 * Prints one JSON line per 250 ms on stdout: {"head", "acked", "connected", "resends"}. When --stop-file exists
 * it stops taking, waits until ingest acknowledged the whole chain, prints {"drained": true, ...} and exits 0.
 * SIGTERM stops gracefully (exit 0). SIGKILL is what the test sends; nothing here may depend on a clean exit.
 */
import { appendFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fromBase64Url, toHex, utf8, sha256 } from '@stele/core';
import { loadSoftwareSigner } from '@stele/device';
import { GatewayAgent, Outbox, Publisher, type Acquired } from '@stele/edge-agent';
import { Retention } from '@stele/edge-agent';

const { values } = parseArgs({
  options: {
    data: { type: 'string' },
    mqtt: { type: 'string' },
    device: { type: 'string' },
    key: { type: 'string' },
    'ingest-key': { type: 'string' },
    rate: { type: 'string', default: '50' },
    'stop-file': { type: 'string' },
    'frames-log': { type: 'string' },
  },
});
const framesLog = values['frames-log'];
const dataDir = values.data!;
const deviceId = values.device!;
const rate = Number(values.rate);
const stopFile = values['stop-file'];

const errors: string[] = [];
const log = (level: string, msg: string, fields: Record<string, unknown>) => {
  if (level === 'error') errors.push(`${msg} ${JSON.stringify(fields)}`);
  if (level === 'error' || level === 'warn') process.stderr.write(`${JSON.stringify({ level, msg, ...fields })}\n`);
};

const signer = await loadSoftwareSigner(values.key!);
const outbox = await Outbox.open(join(dataDir, 'outbox'));
const publisher = new Publisher({
  mqttUrl: values.mqtt!,
  deviceId,
  outbox,
  windowSize: 256,
  resendAfterMs: 3000,
  reconnectPeriodMs: 250,
  maxReconnectPeriodMs: 2000,
  connectTimeoutMs: 3000,
  ingestKey: fromBase64Url(values['ingest-key']!),
  log,
});
const agent = new GatewayAgent({ deviceId, signer, outbox, publisher, log });
// Retention under chaos: prune what ingest confirmed, keeping the newest 2000 (age rule off: the test is short).
const retention = new Retention({ outbox, stateFile: join(dataDir, 'retention.json'), keepForMs: 0, keepReadings: 2000, intervalMs: 1000, batchSize: 500, log });

let stopping = false;
async function* timerSource(): AsyncGenerator<Acquired> {
  const periodMs = 1000 / rate;
  let next = performance.now();
  let n = 0;
  while (!stopping && !(stopFile !== undefined && existsSync(stopFile))) {
    const wait = next - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    next += periodMs;
    n++;
    const frame = utf8(`##chaos pid=${process.pid} n=${n} t=${Date.now()}\r\n`);
    const digest = sha256(frame);
    if (framesLog !== undefined) appendFileSync(framesLog, `${process.pid} ${toHex(digest)}\n`);
    yield {
      sensor: 'chaos-timer',
      time: Date.now(),
      clock: { synced: false, source: 'sim' },
      meas: [{ code: 'a21026', kind: 'Rtd', value: `${(n % 100) + 0.5}`, unit: 'mg/m3', flag: 'N' }],
      raw: [digest],
    };
  }
}

await retention.start();
await publisher.start();
agent.addSource('timer', timerSource());

const line = (extra: Record<string, unknown> = {}) => {
  const s = publisher.status();
  process.stdout.write(
    `${JSON.stringify({ pid: process.pid, head: outbox.head().seq, acked: outbox.ackedUpTo(), connected: s.connected, resends: s.resends, pruned: retention.status().pruned, errors: errors.length, ...extra })}\n`,
  );
};

async function shutdown(code: number): Promise<never> {
  stopping = true;
  clearInterval(ticker);
  await agent.stop();
  await retention.stop();
  await outbox.close();
  process.exit(code);
}

const ticker = setInterval(() => {
  line();
  if (stopFile !== undefined && existsSync(stopFile) && agent.status().sources['timer']?.state !== 'running' && outbox.ackedUpTo() === outbox.head().seq) {
    line({ drained: true });
    void shutdown(0);
  }
}, 250);

process.on('SIGTERM', () => void shutdown(0));
process.on('SIGINT', () => void shutdown(0));
