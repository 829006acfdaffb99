/**
 * Soak (issue #5 acceptance): the agent with 16 simulated instruments at 1 Hz keeps its RSS under 100 MB through
 * a 10-minute run.
 *
 *   npm run bench -- gateway-soak [--minutes 10] [--instruments 16] [--broker mosquitto|aedes]
 *
 * The agent runs in this process (so process RSS is the agent's): 16 simulated CEMS data loggers (HJ 212-2017
 * CN=2011 frames from the simulator, one per second each) on mock serial ports, each read through
 * Hj212SerialSession into one GatewayAgent (outbox with synced writes, ES256 signing, publisher) and the
 * retention (keeping 10 000 acknowledged readings). Broker and ingest (with its anvil) are other processes, as
 * in a deployment, and are not counted. RSS is sampled every second; the table gives the max per minute.
 */
import { setMaxListeners } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SerialPortMock } from 'serialport';
import { createSoftwareKey } from '@stele/device';
import { GatewayAgent, Outbox, Publisher, type Acquired } from '@stele/edge-agent';
import { Retention } from '@stele/edge-agent/retention/index.ts';
import { Hj212SerialSession, measurementsFromFrame } from '@stele/hardware';
import { CemsSimulator } from '@stele/simulator/instruments/cems.ts';
import { machineLine, startStack } from './gateway-stack.ts';

const DEVICE = 'gw-bench-soak';
const MB = 1024 * 1024;

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { minutes: { type: 'string', default: '10' }, instruments: { type: 'string', default: '16' }, broker: { type: 'string' } },
  });
  const minutes = Number(values.minutes);
  const n = Number(values.instruments);
  const say = (s: string) => process.stderr.write(`${s}\n`);
  const dir = await mkdtemp(join(tmpdir(), 'stele-bench-soak-'));
  const stack = await startStack(dir, values.broker === undefined ? {} : { broker: values.broker as 'mosquitto' | 'aedes' });
  const rssAtStart = process.memoryUsage().rss;
  try {
    const signer = await createSoftwareKey(join(dir, 'gw.pem'));
    await stack.enrol(signer, DEVICE);
    const outbox = await Outbox.open(join(dir, 'outbox'));
    const publisher = new Publisher({ mqttUrl: stack.mqttUrl, deviceId: DEVICE, outbox });
    const agent = new GatewayAgent({ deviceId: DEVICE, signer, outbox, publisher });
    const retention = new Retention({ outbox, stateFile: join(dir, 'retention.json'), keepForMs: 0, keepReadings: 10_000, intervalMs: 10_000 });
    await retention.start();
    await publisher.start();

    const stop = new AbortController();
    setMaxListeners(n + 8, stop.signal); // one listener per instrument session
    const instruments: { sim: CemsSimulator; port: SerialPortMock; session: Hj212SerialSession }[] = [];
    for (let i = 0; i < n; i++) {
      const path = `/dev/ttySTELE-SOAK${i}`;
      SerialPortMock.binding.createPort(path, { echo: false, record: false });
      const port = new SerialPortMock({ path, baudRate: 9600 });
      await new Promise<void>((r, j) => port.on('open', r).on('error', j));
      const mn = `0100000000000000000000${String(i).padStart(2, '0')}`;
      const session = new Hj212SerialSession(port);
      instruments.push({ sim: new CemsSimulator({ mn, seed: i + 1 }), port, session });
      agent.addSource(`cems-${i}`, acquire(session, stop.signal));
    }
    // 1 Hz each, staggered over the second
    const timers = instruments.map((inst, i) =>
      setTimeout(() => {
        const tick = () => inst.port.port?.emitData(Buffer.from(inst.sim.nextFrame(Date.now())));
        tick();
        timers[i] = setInterval(tick, 1000);
      }, Math.round((1000 * i) / n)),
    );

    const samples: { rss: number; heap: number }[] = [];
    const perMinute: { minute: number; maxRssMb: number; maxHeapMb: number; taken: number; acked: number }[] = [];
    const started = Date.now();
    let minuteMax = 0;
    let minuteHeap = 0;
    for (let s = 1; s <= minutes * 60; s++) {
      await new Promise((r) => setTimeout(r, Math.max(0, started + s * 1000 - Date.now())));
      const m = process.memoryUsage();
      samples.push({ rss: m.rss, heap: m.heapUsed });
      minuteMax = Math.max(minuteMax, m.rss);
      minuteHeap = Math.max(minuteHeap, m.heapUsed);
      if (s % 60 === 0) {
        const row = { minute: s / 60, maxRssMb: minuteMax / MB, maxHeapMb: minuteHeap / MB, taken: outbox.head().seq, acked: outbox.ackedUpTo() };
        perMinute.push(row);
        say(`minute ${row.minute}: max RSS ${row.maxRssMb.toFixed(1)} MB, max heap ${row.maxHeapMb.toFixed(1)} MB, taken ${row.taken}, acked ${row.acked}`);
        minuteMax = 0;
        minuteHeap = 0;
      }
    }
    stop.abort();
    for (const t of timers) clearInterval(t);
    const status = agent.status();
    await agent.stop();
    await retention.stop();
    for (const i of instruments) await i.session.close();
    const taken = outbox.head().seq;
    const acked = outbox.ackedUpTo();
    await outbox.close();
    const maxRss = Math.max(...samples.map((x) => x.rss)) / MB;
    const table = [
      '| minute | max RSS (MB) | max heap used (MB) | readings taken | acked by ingest |',
      '|---:|---:|---:|---:|---:|',
      ...perMinute.map((r) => `| ${r.minute} | ${r.maxRssMb.toFixed(1)} | ${r.maxHeapMb.toFixed(1)} | ${r.taken} | ${r.acked} |`),
    ].join('\n');
    process.stdout.write(
      [
        `- Date: ${new Date().toISOString()}; machine: ${await machineLine()}`,
        `- Command: \`npm run bench -- gateway-soak --minutes ${minutes} --instruments ${n}\` (broker: ${stack.broker}; agent in the bench process, run by tsx)`,
        `- ${n} instruments at 1 Hz for ${minutes} min: ${taken} readings taken, ${acked} acknowledged by ingest, ${status.failed} failed takes; ` +
          `RSS ${(rssAtStart / MB).toFixed(1)} MB before the agent started, **max ${maxRss.toFixed(1)} MB** (limit 100 MB: ${maxRss < 100 ? 'PASS' : 'FAIL'})`,
        '',
        table,
        '',
      ].join('\n'),
    );
    if (maxRss >= 100) process.exitCode = 1;
  } finally {
    await stack.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

async function* acquire(session: Hj212SerialSession, signal: AbortSignal): AsyncIterable<Acquired> {
  for await (const frame of session.readings(signal)) {
    yield {
      sensor: frame.parsed.header.MN ?? 'unknown',
      time: Date.now(),
      clock: { synced: false, source: 'sim' },
      meas: measurementsFromFrame(frame),
      raw: [frame.sha256],
    };
  }
}
