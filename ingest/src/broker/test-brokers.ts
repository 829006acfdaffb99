/**
 * Brokers with Stele's access policy for tests (not exported from index): the embedded aedes with
 * aedesAccessHooks, and the Debian mosquitto started on a free 127.0.0.1 port with the shipped config and ACL
 * (ingest/broker/mosquitto/) and a password file made by mosquitto_passwd.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Aedes } from 'aedes';
import { aedesAccessHooks, BrokerAccess, type BrokerUser } from './access.ts';
import { DEFAULT_MAX_PACKET_BYTES, limitServerSocket } from './packet-limit.ts';

export interface PolicyBroker {
  kind: 'aedes' | 'mosquitto';
  url: string;
  close(): Promise<void>;
}

const TEMPLATE_DIR = resolve(fileURLToPath(import.meta.url), '..', '..', '..', 'broker', 'mosquitto');

export function hasMosquitto(): boolean {
  return spawnSync('mosquitto', ['-h']).error === undefined && spawnSync('mosquitto_passwd', ['-h']).error === undefined;
}

/** The demo's broker: aedes with the policy hooks and the packet size limit. */
export async function startPolicyAedes(users: readonly BrokerUser[], maxPacketBytes = DEFAULT_MAX_PACKET_BYTES): Promise<PolicyBroker & { access: BrokerAccess }> {
  const access = new BrokerAccess(users);
  const broker = await Aedes.createBroker({ ...aedesAccessHooks(access) });
  const server = net.createServer({ noDelay: true }, (socket) => {
    limitServerSocket(socket, maxPacketBytes);
    broker.handle(socket);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    kind: 'aedes',
    access,
    url: `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    async close() {
      await new Promise<void>((r) => broker.close(() => r()));
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/**
 * mosquitto with ingest/broker/mosquitto/stele.conf and stele.acl as shipped; users by mosquitto_passwd. Users with
 * the ingest role other than `stele-ingest` get a copy of its ACL block (a second ingest on the same broker).
 */
export async function startPolicyMosquitto(dir: string, users: readonly BrokerUser[]): Promise<PolicyBroker> {
  const port = await freePort();
  const passwordFile = join(dir, 'stele.passwd');
  await writeFile(passwordFile, '', { mode: 0o600 });
  for (const u of users) {
    const r = spawnSync('mosquitto_passwd', ['-b', passwordFile, u.username, u.password]);
    if (r.status !== 0) throw new Error(`mosquitto_passwd failed: ${r.stderr.toString()}`);
  }
  let acl = await readFile(join(TEMPLATE_DIR, 'stele.acl'), 'utf8');
  const ingestBlock = /^user stele-ingest\n(?:topic .*\n)+/m.exec(acl)?.[0];
  if (ingestBlock === undefined) throw new Error('stele.acl has no stele-ingest block');
  for (const u of users) if (u.role.kind === 'ingest' && u.username !== 'stele-ingest') acl = `${ingestBlock.replace('user stele-ingest', `user ${u.username}`)}\n${acl}`;
  const aclFile = join(dir, 'stele.acl');
  await writeFile(aclFile, acl);
  const conf = (await readFile(join(TEMPLATE_DIR, 'stele.conf'), 'utf8'))
    .replace('@PASSWORD_FILE@', passwordFile)
    .replace('@ACL_FILE@', aclFile)
    .replace('@PORT@', String(port))
    .replace('@BIND_ADDRESS@', '127.0.0.1');
  const confFile = join(dir, 'mosquitto.conf');
  // started as root, mosquitto drops to the user `mosquitto`, who cannot read the test's temp files
  await writeFile(confFile, `${conf}\nuser ${userInfo().username}\nlog_dest stderr\nlog_type error\n`);
  const proc: ChildProcess = spawn('mosquitto', ['-c', confFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const until = Date.now() + 15_000;
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect({ port, host: '127.0.0.1' });
      s.once('connect', () => (s.destroy(), r(true)));
      s.once('error', () => r(false));
    });
    if (ok) break;
    if (proc.exitCode !== null) throw new Error(`mosquitto exited: ${stderr}`);
    if (Date.now() > until) throw new Error('mosquitto did not come up');
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    kind: 'mosquitto',
    url: `mqtt://127.0.0.1:${port}`,
    async close() {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      await exited;
    },
  };
}

/** A mosquitto a test can restart on the same port (its persistence kept in `dir`), as a broker restart in production. */
export interface RestartableMosquitto {
  url: string;
  port: number;
  /** The running broker's process id (changes on restart). */
  readonly pid: number | undefined;
  /** Stops the broker (SIGTERM: it saves its persistence file) and starts it again on the same port. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The Debian mosquitto on a free 127.0.0.1 port, anonymous, MQTT 5 (shared subscriptions), persistence on in `dir`:
 * for the several-workers tests (issue #11), where a broker restart must not lose the workers' subscription.
 */
export async function startRestartableMosquitto(dir: string): Promise<RestartableMosquitto> {
  const port = await freePort();
  const confFile = join(dir, 'mosquitto.conf');
  await writeFile(
    confFile,
    [`listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence true', `persistence_location ${dir}/`, 'max_queued_messages 100000', 'max_inflight_messages 0', `user ${userInfo().username}`, 'log_dest stderr', 'log_type error', ''].join('\n'),
  );
  let proc: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const start = async () => {
    const p = spawn('mosquitto', ['-c', confFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    exited = new Promise<void>((r) => p.once('exit', () => r()));
    proc = p;
    const until = Date.now() + 15_000;
    for (;;) {
      const ok = await new Promise<boolean>((r) => {
        const s = net.connect({ port, host: '127.0.0.1' });
        s.once('connect', () => (s.destroy(), r(true)));
        s.once('error', () => r(false));
      });
      if (ok) return;
      if (p.exitCode !== null) throw new Error(`mosquitto exited: ${stderr}`);
      if (Date.now() > until) throw new Error('mosquitto did not come up');
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const stop = async () => {
    if (proc !== undefined && proc.exitCode === null) proc.kill('SIGTERM');
    await exited;
  };
  await start();
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    get pid() {
      return proc?.pid;
    },
    async restart() {
      await stop();
      await start();
    },
    close: stop,
  };
}
