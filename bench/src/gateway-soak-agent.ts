/**
 * The agent process of the soak bench (gateway-soak.ts): N simulated CEMS data loggers (HJ 212-2017 CN=2011, one
 * frame per second each, from the simulator) on mock serial lines, read by the gateway as `stele gateway run` reads
 * them: a gateway.yaml with N hj212 instruments (written here into DIR, as an installer would) run by startGateway
 * (config, ES256 software key, outbox with synced writes, publisher, drivers, SerialTransport, retention keeping
 * 10 000 acknowledged readings). Only the serial ports are serialport's mock binding instead of USB adapters (the
 * bundled build cannot be handed a mock binding from another process). No broker, no ingest, no bench code.
 *
 *   node --import tsx bench/src/gateway-soak-agent.ts --data DIR --mqtt URL --device ID --key FILE --ingest-key B64URL [--instruments 16]
 *
 * Prints a JSON status line every 5 s (readings, outbox, memory, CPU seconds); SIGTERM stops it (prints a last
 * line with "stopped": true).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig, startGateway } from '@stele/edge-agent';
import { MockSerialLine } from '@stele/hardware';
import { CemsSimulator, hj212Instrument, softwareGatewayYaml } from '@stele/simulator';

const { values } = parseArgs({
  options: { data: { type: 'string' }, mqtt: { type: 'string' }, device: { type: 'string' }, key: { type: 'string' }, 'ingest-key': { type: 'string' }, instruments: { type: 'string', default: '16' } },
});
const n = Number(values.instruments);
const deviceId = values.device!;
const dataDir = values.data!;

const lines = Array.from({ length: n }, (_, i) => new MockSerialLine(`/dev/serial/by-id/usb-STELE_SOAK_CEMS${i}-if00-port0`));
await mkdir(dataDir, { recursive: true, mode: 0o700 });
const configFile = join(dataDir, 'gateway.yaml');
await writeFile(
  configFile,
  softwareGatewayYaml({
    comment: 'soak bench gateway: what an installer writes to /etc/stele/gateway.yaml',
    id: deviceId,
    dataDir,
    keyFile: values.key!,
    broker: { url: values.mqtt! },
    ingestKey: values['ingest-key']!,
    retention: { keepAcked: '0s', keepReadings: 10_000 },
    instruments: lines.map((l, i) => hj212Instrument(`cems-${i}`, l.path)),
  }),
);
const byPath = new Map(lines.map((l) => [l.path, l]));
const gateway = await startGateway(await loadConfig(configFile), {
  bindingFor: (c) => byPath.get(c.port)?.binding,
  clock: { probe: async () => ({ synced: false, via: 'soak (no time source)' }) },
  healthPort: 0,
});

const timers: NodeJS.Timeout[] = [];
for (let i = 0; i < n; i++) {
  const sim = new CemsSimulator({ mn: `0100000000000000000000${String(i).padStart(2, '0')}`, seed: i + 1 });
  const device = lines[i]!.device;
  // 1 Hz each, staggered over the second
  timers.push(
    setTimeout(() => {
      const tick = () => device.write(sim.nextFrame(Date.now()));
      tick();
      timers.push(setInterval(tick, 1000));
    }, Math.round((1000 * i) / n)),
  );
}

const cpuSeconds = () => {
  const c = process.cpuUsage();
  return Math.round((c.user + c.system) / 1e4) / 100;
};
const line = (extra: Record<string, unknown> = {}) => {
  const s = gateway.status();
  const m = process.memoryUsage();
  const mb = (x: number) => Math.round((x / 2 ** 20) * 10) / 10;
  process.stdout.write(`${JSON.stringify({ taken: s.taken, failed: s.failed, head: s.outbox.head, acked: s.outbox.acked, heapMb: mb(m.heapUsed), heapTotalMb: mb(m.heapTotal), externalMb: mb(m.external), rssMb: mb(m.rss), cpuS: cpuSeconds(), ...extra })}\n`);
};
const ticker = setInterval(line, 5000);

process.once('SIGTERM', () => {
  void (async () => {
    clearInterval(ticker);
    for (const t of timers) clearInterval(t);
    await gateway.stop('soak done');
    line({ stopped: true });
    process.exit(0);
  })();
});
