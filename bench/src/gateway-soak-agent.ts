/**
 * The agent process of the soak bench (gateway-soak.ts): N simulated CEMS data loggers (HJ 212-2017 CN=2011, one
 * frame per second each, from the simulator) on mock serial ports, each read through Hj212SerialSession into one
 * GatewayAgent with its outbox (synced writes), ES256 software key, publisher and retention (keeping 10 000
 * acknowledged readings). Only what a gateway process holds: no broker, no ingest, no bench code.
 *
 *   node --import tsx bench/src/gateway-soak-agent.ts --data DIR --mqtt URL --device ID --key FILE --ingest-key B64URL [--instruments 16]
 *
 * Prints a JSON status line every 5 s; SIGTERM stops it (prints a last line with "stopped": true).
 */
import { setMaxListeners } from 'node:events';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SerialPortMock } from 'serialport';
import { fromBase64Url } from '@stele/core';
import { loadSoftwareSigner } from '@stele/device';
import { GatewayAgent, Outbox, Publisher, type Acquired } from '@stele/edge-agent';
import { Retention } from '@stele/edge-agent';
import { Hj212SerialSession, measurementsFromFrame } from '@stele/hardware';
import { CemsSimulator } from '@stele/simulator';

const { values } = parseArgs({
  options: { data: { type: 'string' }, mqtt: { type: 'string' }, device: { type: 'string' }, key: { type: 'string' }, 'ingest-key': { type: 'string' }, instruments: { type: 'string', default: '16' } },
});
const n = Number(values.instruments);
const deviceId = values.device!;
const dataDir = values.data!;

const signer = await loadSoftwareSigner(values.key!);
const outbox = await Outbox.open(join(dataDir, 'outbox'));
const publisher = new Publisher({ mqttUrl: values.mqtt!, deviceId, outbox, ingestKey: fromBase64Url(values['ingest-key']!) });
const agent = new GatewayAgent({ deviceId, signer, outbox, publisher });
const retention = new Retention({ outbox, stateFile: join(dataDir, 'retention.json'), keepForMs: 0, keepReadings: 10_000, intervalMs: 10_000 });
await retention.start();
await publisher.start();

async function* acquire(session: Hj212SerialSession, signal: AbortSignal): AsyncIterable<Acquired> {
  for await (const frame of session.readings(signal)) {
    yield { sensor: frame.parsed.header.MN ?? 'unknown', time: Date.now(), clock: { synced: false, source: 'sim' }, meas: measurementsFromFrame(frame), raw: [frame.sha256] };
  }
}

const stop = new AbortController();
setMaxListeners(n + 8, stop.signal); // one listener per instrument session
const timers: NodeJS.Timeout[] = [];
const sessions: Hj212SerialSession[] = [];
for (let i = 0; i < n; i++) {
  const path = `/dev/ttySTELE-SOAK${i}`;
  SerialPortMock.binding.createPort(path, { echo: false, record: false });
  const port = new SerialPortMock({ path, baudRate: 9600 });
  await new Promise<void>((r, j) => port.on('open', r).on('error', j));
  const sim = new CemsSimulator({ mn: `0100000000000000000000${String(i).padStart(2, '0')}`, seed: i + 1 });
  const session = new Hj212SerialSession(port);
  sessions.push(session);
  agent.addSource(`cems-${i}`, acquire(session, stop.signal));
  // 1 Hz each, staggered over the second
  timers.push(
    setTimeout(() => {
      const tick = () => port.port?.emitData(Buffer.from(sim.nextFrame(Date.now())));
      tick();
      timers.push(setInterval(tick, 1000));
    }, Math.round((1000 * i) / n)),
  );
}

const line = (extra: Record<string, unknown> = {}) => {
  const s = agent.status();
  const m = process.memoryUsage();
  const mb = (x: number) => Math.round((x / 2 ** 20) * 10) / 10;
  process.stdout.write(`${JSON.stringify({ taken: s.taken, failed: s.failed, head: s.seq, acked: s.acked, heapMb: mb(m.heapUsed), heapTotalMb: mb(m.heapTotal), externalMb: mb(m.external), rssMb: mb(m.rss), ...extra })}\n`);
};
const ticker = setInterval(line, 5000);

process.once('SIGTERM', () => {
  void (async () => {
    clearInterval(ticker);
    for (const t of timers) clearInterval(t);
    stop.abort();
    await agent.stop();
    await retention.stop();
    for (const s of sessions) await s.close();
    line({ stopped: true });
    await outbox.close();
    process.exit(0);
  })();
});
