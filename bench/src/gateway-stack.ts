/**
 * The stack the gateway benches run against: a broker (mosquitto on a free 127.0.0.1 port with a temp config,
 * or aedes in process when asked or when mosquitto is not installed) and real ingest as a child process
 * (`stele ingest run --embedded-chain`), with its HTTP endpoint for enrolment and checks.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import type { Signer } from '@stele/core';
import { createSoftwareKey, makeEnrolmentRecord } from '@stele/device';
import { freePort, INGEST_SCRIPT, sleep, spawnChild, spawnTs, startMosquitto, type Child } from '../../test/e2e/chaos/processes.ts';

export interface BenchStack {
  broker: 'mosquitto' | 'aedes';
  mqttUrl: string;
  api: string;
  ingest: Child;
  /** Ingest's public key, for the gateway to pin (FORMAT.md §11.1). */
  ingestKey: Uint8Array;
  enrol(signer: Signer, deviceId: string): Promise<void>;
  head(deviceId: string): Promise<number>;
  stop(): Promise<void>;
}

export function hasMosquitto(): boolean {
  return spawnSync('mosquitto', ['-h']).error === undefined;
}

export interface StackOptions {
  broker?: 'mosquitto' | 'aedes';
  batchMs?: number;
  /** More `stele ingest run` arguments (e.g. `--store postgres://... --store-password-file F`). */
  ingestArgs?: string[];
  /** More mosquitto.conf lines. */
  mosquittoConfig?: string[];
  /** Node options for the ingest child before its script (e.g. `--cpu-prof --cpu-prof-dir D`). */
  nodeArgs?: string[];
  /** A postgres:// URL (a password in it goes to a 0600 file, as `--store-password-file`); default LevelDB. */
  storeUrl?: string;
}

export async function startStack(dir: string, options: StackOptions = {}): Promise<BenchStack> {
  const kind = options.broker ?? (hasMosquitto() ? 'mosquitto' : 'aedes');
  let mqttUrl: string;
  let stopBroker: () => Promise<void>;
  if (kind === 'mosquitto') {
    const m = await startMosquitto(dir, options.mosquittoConfig);
    mqttUrl = m.url;
    stopBroker = () => m.stop();
  } else {
    const broker = await Aedes.createBroker();
    const server = net.createServer({ noDelay: true }, broker.handle);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    mqttUrl = `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    stopBroker = async () => {
      await new Promise<void>((r) => broker.close(() => r()));
      await new Promise<void>((r) => server.close(() => r()));
    };
  }
  const healthPort = await freePort();
  // made here (ingest uses DIR/keys/ingest.pem when present) so the gateway can pin its public key
  await mkdir(join(dir, 'ingest', 'keys'), { recursive: true });
  const ingestKey = (await createSoftwareKey(join(dir, 'ingest', 'keys', 'ingest.pem'))).publicKey;
  const api = `http://127.0.0.1:${healthPort}`;
  const storeArgs: string[] = [];
  if (options.storeUrl !== undefined) {
    const u = new URL(options.storeUrl);
    const password = decodeURIComponent(u.password);
    u.password = '';
    storeArgs.push('--store', u.toString());
    if (password !== '') {
      await writeFile(join(dir, 'store-password'), `${password}\n`, { mode: 0o600 });
      storeArgs.push('--store-password-file', join(dir, 'store-password'));
    }
  }
  const args = [
    'run', ...storeArgs, '--mqtt', mqttUrl, '--data', join(dir, 'ingest'), '--embedded-chain', '--batch-ms', String(options.batchMs ?? 1000),
    '--health-port', String(healthPort), '--log-level', 'warn', ...(options.ingestArgs ?? []),
  ];
  const ingest = options.nodeArgs === undefined ? spawnTs(INGEST_SCRIPT, args) : spawnChild(process.execPath, [...options.nodeArgs, '--import', 'tsx', INGEST_SCRIPT, ...args]);
  const until = Date.now() + 60_000;
  while (!(await fetch(`${api}/health`).then((r) => r.ok, () => false))) {
    if (ingest.proc.exitCode !== null) throw new Error(`ingest exited: ${ingest.errTail.join(' | ')}`);
    if (Date.now() > until) throw new Error('ingest did not come up');
    await sleep(200);
  }
  return {
    broker: kind,
    mqttUrl,
    api,
    ingest,
    ingestKey,
    async enrol(signer, deviceId) {
      const token = (await readFile(join(dir, 'ingest', 'admin-token'), 'utf8')).trim();
      const res = await fetch(`${api}/enrol`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify(makeEnrolmentRecord(signer, deviceId, 'bench')),
      });
      if (!res.ok) throw new Error(`enrol failed: ${await res.text()}`);
    },
    async head(deviceId) {
      return ((await (await fetch(`${api}/devices/${encodeURIComponent(deviceId)}/head`)).json()) as { seq: number }).seq;
    },
    async stop() {
      await ingest.kill('SIGTERM');
      await stopBroker();
    },
  };
}

/** `- Machine: …` lines for a BENCHMARKS.md entry. */
export async function machineLine(): Promise<string> {
  const { availableParallelism, cpus, totalmem, loadavg } = await import('node:os');
  const { readFileSync } = await import('node:fs');
  let model = cpus()[0]?.model ?? 'unknown';
  try {
    model = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? model;
  } catch {
    // not Linux
  }
  return `${availableParallelism()} CPUs (nproc), ${model}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Node ${process.version}; load average ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`;
}
