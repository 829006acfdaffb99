/**
 * One process of a fleet (bench/src/fleet.ts): several real gateways (loadConfig + startGateway from each one's
 * gateway.yaml, each with its own LevelDB outbox, signer, MQTT publisher and ops endpoint) whose HJ 212 instruments
 * are emulated data loggers on serialport's mock binding (MockSerialLine: the gateway's SerialTransport and hj212
 * driver run unchanged over it).
 *
 *   node --import tsx bench/src/fleet-worker.ts SPEC.json      (stdin: "go" starts the instruments)
 *
 * The emulated instruments count what they send and keep the send time of each frame; a gateway numbers its
 * readings in the order it takes them, so with the instruments of one gateway spaced interval/M apart, the n-th
 * frame sent to a gateway is its seq n (the orchestrator checks the count at ingest). The latencies are from the
 * frame's send time to the moment the gateway holds a verified confirmation from ingest covering that seq:
 * `stored` (committed) and `anchored` (the anchor final on chain), polled every `pollMs`.
 *
 * stdout: JSON lines {type: 'ready'|'sent'|'result'|'error', ...}; the result's latency arrays go to SPEC.result.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { loadConfig, startGateway, type RunningGateway } from '@stele/edge-agent';
import { encodeFrame, formatHj212Time, MockSerialLine } from '@stele/hardware';

export interface FleetWorkerSpec {
  /** Gateways of this process: id and the gateway.yaml an installer would write. */
  gateways: { id: string; config: string }[];
  instrumentsPerGateway: number;
  intervalMs: number;
  durationMs: number;
  /** How long to wait, after the last frame, for every reading to be anchored. */
  drainMs: number;
  pollMs: number;
  /** Where the result (latency arrays) is written. */
  result: string;
}

export interface GatewayOutcome {
  id: string;
  /** Frames the emulated instruments wrote while the gateway's port was open. */
  sent: number;
  /** Frames written while the port was closed (lost on the line, as on a real one). */
  dropped: number;
  head: number;
  stored: number;
  anchored: number;
}

export interface FleetWorkerResult {
  pid: number;
  gateways: GatewayOutcome[];
  /** ms from frame sent to stored confirmation held by the gateway, one per reading. */
  storedMs: number[];
  /** ms from frame sent to anchored (final) confirmation held by the gateway, one per reading. */
  anchoredMs: number[];
  startMs: number;
  cpuUserMs: number;
  cpuSystemMs: number;
  maxRssBytes: number;
}

const emit = (o: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(o)}\n`);

/** A CN=2011 real-time upload of a stack monitor (SO2, NOx, O2), 2017 codes, HJ 212 CRC. */
function frame(mn: string, n: number, at: number): Uint8Array {
  const so2 = (20 + ((n * 7) % 13) * 0.5).toFixed(1);
  const nox = (35 + ((n * 5) % 11) * 0.5).toFixed(1);
  const o2 = (8.5 + ((n * 3) % 7) * 0.1).toFixed(1);
  return encodeFrame({
    header: { QN: formatHj212Time(at, true), ST: '31', CN: '2011', PW: '123456', MN: mn, Flag: 4 },
    cp: { params: { DataTime: formatHj212Time(at, false) }, items: { a21026: { Rtd: so2, Flag: 'N' }, a21002: { Rtd: nox, Flag: 'N' }, a19001: { Rtd: o2, Flag: 'N' } } },
    crc: 'hj212',
  });
}

interface Running {
  id: string;
  gw: RunningGateway;
  lines: MockSerialLine[];
  sendTimes: number[];
  dropped: number;
  stored: number;
  anchored: number;
}

async function main(specFile: string): Promise<void> {
  const spec = JSON.parse(await readFile(specFile, 'utf8')) as FleetWorkerSpec;
  const running: Running[] = [];
  const storedMs: number[] = [];
  const anchoredMs: number[] = [];
  let maxRss = process.memoryUsage().rss;
  for (const g of spec.gateways) {
    const config = await loadConfig(g.config);
    const lines = new Map(config.instruments.map((c) => [c.port, new MockSerialLine(c.port)]));
    const gw = await startGateway(config, {
      bindingFor: (c) => lines.get(c.port)?.binding,
      clock: { probe: async () => ({ synced: true, via: 'fleet bench' }) },
      healthPort: 0,
    });
    running.push({ id: g.id, gw, lines: [...lines.values()], sendTimes: [], dropped: 0, stored: 0, anchored: 0 });
  }
  const openBy = Date.now() + 60_000;
  while (running.some((r) => r.lines.some((l) => !l.isOpen))) {
    if (Date.now() > openBy) throw new Error('instrument ports did not open within 60 s');
    await new Promise((r) => setTimeout(r, 50));
  }
  emit({ type: 'ready', pid: process.pid, gateways: running.length });
  await new Promise<void>((resolve) => {
    const rl = createInterface({ input: process.stdin });
    rl.on('line', (l) => {
      if (l.trim() === 'go') {
        rl.close();
        resolve();
      }
    });
  });

  const cpu0 = process.cpuUsage();
  const startMs = Date.now();
  const M = spec.instrumentsPerGateway;
  let sending = true;
  // Gateways spread evenly over the interval; the instruments of one gateway interval/M apart.
  running.forEach((r, gi) => {
    const base = (gi / running.length) * (spec.intervalMs / M);
    r.lines.forEach((line, ii) => {
      let n = 0;
      const mn = `${r.id}-${ii}`.slice(-24);
      const tick = () => {
        if (!sending) return;
        const at = Date.now();
        if (line.device.write(frame(mn, n++, at))) r.sendTimes.push(at);
        else r.dropped++;
        const next = startMs + base + ii * (spec.intervalMs / M) + n * spec.intervalMs - Date.now();
        setTimeout(tick, Math.max(0, next));
      };
      setTimeout(tick, base + ii * (spec.intervalMs / M));
    });
  });

  const poll = () => {
    const now = Date.now();
    for (const r of running) {
      const s = r.gw.status();
      const acked = Math.min(s.outbox.acked, r.sendTimes.length);
      const anchored = Math.min(s.agent?.publisher?.anchoredUpTo ?? 0, r.sendTimes.length);
      for (let k = r.stored; k < acked; k++) storedMs.push(now - r.sendTimes[k]!);
      for (let k = r.anchored; k < anchored; k++) anchoredMs.push(now - r.sendTimes[k]!);
      r.stored = Math.max(r.stored, acked);
      r.anchored = Math.max(r.anchored, anchored);
    }
    maxRss = Math.max(maxRss, process.memoryUsage().rss);
  };
  const poller = setInterval(poll, spec.pollMs);

  await new Promise((r) => setTimeout(r, spec.durationMs));
  sending = false;
  const sent = running.reduce((a, r) => a + r.sendTimes.length, 0);
  emit({ type: 'sent', sent });
  const drainBy = Date.now() + spec.drainMs;
  while (Date.now() < drainBy && running.some((r) => r.anchored < r.sendTimes.length || r.gw.status().outbox.head < r.sendTimes.length)) {
    await new Promise((r) => setTimeout(r, spec.pollMs));
  }
  poll();
  clearInterval(poller);
  const cpu = process.cpuUsage(cpu0);
  const gateways: GatewayOutcome[] = running.map((r) => ({ id: r.id, sent: r.sendTimes.length, dropped: r.dropped, head: r.gw.status().outbox.head, stored: r.stored, anchored: r.anchored }));
  const result: FleetWorkerResult = { pid: process.pid, gateways, storedMs, anchoredMs, startMs, cpuUserMs: cpu.user / 1000, cpuSystemMs: cpu.system / 1000, maxRssBytes: maxRss };
  await writeFile(spec.result, JSON.stringify(result));
  emit({ type: 'result', file: spec.result });
  await Promise.all(running.map((r) => r.gw.stop('fleet bench done')));
}

main(process.argv[2] ?? '').then(
  () => setTimeout(() => process.exit(0), 500).unref(),
  (err: unknown) => {
    emit({ type: 'error', message: err instanceof Error ? err.message : String(err) });
    process.exit(1);
  },
);
