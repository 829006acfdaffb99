/**
 * `stele ingest run` and `stele ingest enrol`: the ingest service as a long-running process.
 *
 *   stele ingest run --mqtt URL --data DIR [--embedded-chain [--chain-port N] | --rpc URL --anchor-key-file F]
 *                    [--batch-ms N] [--key FILE] [--issuer NAME] [--health-port N] [--log-level L]
 *   stele ingest enrol FILE --data DIR [--url URL]
 *
 * `run` logs JSON lines (pino) on stdout, serves the local HTTP endpoint (http/server.ts) when --health-port is
 * given, writes its URL to DIR/ingest-http.json, and stops gracefully on SIGTERM/SIGINT (finishes what it holds,
 * acks, closes the store, stops the embedded chain). A broker that is down at start is retried with backoff.
 *
 * `enrol` registers an enrolment record (JSON, as `makeEnrolmentRecord` writes it). Only one process can open
 * the store: while ingest runs, enrol goes through its HTTP endpoint (--url, or the URL in DIR/ingest-http.json);
 * otherwise it opens the store itself.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino, type DestinationStream } from 'pino';
import { equalBytes, fromBase64Url, toBase64Url } from '@stele/core/bytes.ts';
import { assertP256PublicKey, keyIdOf } from '@stele/core/keys.ts';
import { checkDeviceId, loadOrCreateSoftwareSigner, type EnrolmentRecord } from '@stele/device';
import { ANVIL_DEV_PRIVATE_KEY, connectEvmAnchorer, startAnvil, type AnvilNode } from './anchor/index.ts';
import { IngestError } from './errors.ts';
import { loadOrCreateAdminToken, readAdminToken } from './http/admin-token.ts';
import { startIngestHttp, type IngestHttp } from './http/server.ts';
import { IngestService, type IngestOptions } from './service.ts';
import { IngestStore } from './store.ts';

export interface IngestIo {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  /** Stops `run` like SIGTERM does (tests). */
  signal?: AbortSignal;
}

const RUN_USAGE = `usage: stele ingest run --mqtt URL --data DIR [options]

  --mqtt URL              broker (mqtt:// or mqtts://), without credentials
  --mqtt-username NAME    ingest's broker user (docs/broker.md)
  --mqtt-password-file F  file holding that user's password (never on the command line)
  --mqtt-ca F             CA certificate (PEM) of an mqtts:// broker
  --mqtt-cert F           client certificate (PEM), with --mqtt-key F
  --mqtt-key F            its private key (PEM)
  --data DIR              store, keys and chain state (created when missing)
  --embedded-chain        run anvil as a child process (dev chain, state in DIR/chain)
  --chain-port N          port of the embedded chain (default: a free one)
  --rpc URL               anchor on this Ethereum JSON-RPC endpoint instead ...
  --anchor-key-file F     ... with the account whose 0x-hex private key is in F
  --batch-ms N            cut and anchor a batch every N ms (default 5000)
  --key FILE              ingest receipt key, PKCS#8 PEM (default DIR/keys/ingest.pem, created when missing)
  --issuer NAME           iss of every receipt (default stele-ingest)
  --health-port N         serve /health, /metrics, /enrol, /bundle, /frames on 127.0.0.1:N (0: a free port)
  --admin-token-file F    token for /enrol and /flush (default DIR/admin-token, made with mode 0600 when missing;
                          refused when others can read it)
  --log-level L           debug | info | warn | error (default info)
`;

const ENROL_USAGE = `usage: stele ingest enrol FILE --data DIR [--url URL] [--admin-token-file F]

  FILE        enrolment record JSON (deviceId, publicKey, kid, keyBackend, enrolledAt, site?)
  --data DIR  the ingest data directory
  --url URL   a running ingest's HTTP endpoint (default: the one in DIR/ingest-http.json, if ingest runs)
  --admin-token-file F   its admin token (default DIR/admin-token)
`;

const USAGE = `usage: stele ingest <run|enrol|trust export> [options]   (stele ingest <command> --help)\n`;

/** Entry point of `stele ingest`; returns the exit code (0 ok, 1 failure, 2 usage). */
export async function runIngest(argv: string[], io: IngestIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'run') return run(rest, io);
  if (sub === 'enrol' || sub === 'enroll') return enrol(rest, io);
  if (sub === 'trust') return (await import('./trust-export.ts')).runIngestTrust(rest, io);
  if (sub === '--help' || sub === '-h' || sub === 'help') {
    io.stdout.write(`${USAGE}\n${RUN_USAGE}\n${ENROL_USAGE}`);
    return 0;
  }
  io.stderr.write(USAGE);
  return 2;
}

type OptionSpec = Record<string, { type: 'string' | 'boolean' }>;

function parse(argv: string[], options: OptionSpec, io: IngestIo, usage: string): { values: Record<string, string | boolean | undefined>; positionals: string[] } | undefined {
  try {
    const r = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
    return { values: r.values as Record<string, string | boolean | undefined>, positionals: r.positionals };
  } catch (err) {
    io.stderr.write(`stele ingest: ${(err as Error).message}\n\n${usage}`);
    return undefined;
  }
}

function positiveInt(value: string | undefined, name: string, min = 1): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min) throw new RangeError(`${name} must be an integer >= ${min}`);
  return n;
}

async function run(argv: string[], io: IngestIo): Promise<number> {
  const args = parse(
    argv,
    {
      mqtt: { type: 'string' },
      data: { type: 'string' },
      'embedded-chain': { type: 'boolean' },
      'chain-port': { type: 'string' },
      rpc: { type: 'string' },
      'anchor-key-file': { type: 'string' },
      'batch-ms': { type: 'string' },
      key: { type: 'string' },
      issuer: { type: 'string' },
      'health-port': { type: 'string' },
      'log-level': { type: 'string' },
      'mqtt-username': { type: 'string' },
      'mqtt-password-file': { type: 'string' },
      'mqtt-ca': { type: 'string' },
      'mqtt-cert': { type: 'string' },
      'mqtt-key': { type: 'string' },
      'admin-token-file': { type: 'string' },
    },
    io,
    RUN_USAGE,
  );
  if (args === undefined) return 2;
  const v = args.values as Record<string, string | boolean | undefined>;
  if (v['help'] === true) {
    io.stdout.write(RUN_USAGE);
    return 0;
  }
  const mqttUrl = v['mqtt'] as string | undefined;
  const dataDir = v['data'] as string | undefined;
  const embedded = v['embedded-chain'] === true;
  const rpc = v['rpc'] as string | undefined;
  const anchorKeyFile = v['anchor-key-file'] as string | undefined;
  let batchMs: number | undefined;
  let healthPort: number | undefined;
  let chainPort: number | undefined;
  try {
    if (mqttUrl === undefined || !/^mqtts?:\/\//.test(mqttUrl)) throw new RangeError('--mqtt mqtt://HOST:PORT is required');
    if (/^mqtts?:\/\/[^/]*@/.test(mqttUrl)) throw new RangeError('--mqtt must not carry credentials: use --mqtt-username and --mqtt-password-file');
    if ((v['mqtt-cert'] === undefined) !== (v['mqtt-key'] === undefined)) throw new RangeError('--mqtt-cert and --mqtt-key go together');
    if (v['mqtt-password-file'] !== undefined && v['mqtt-username'] === undefined) throw new RangeError('--mqtt-password-file needs --mqtt-username');
    if (dataDir === undefined) throw new RangeError('--data DIR is required');
    if (embedded === (rpc !== undefined)) throw new RangeError('give either --embedded-chain or --rpc URL with --anchor-key-file F');
    if (rpc !== undefined && anchorKeyFile === undefined) throw new RangeError('--rpc needs --anchor-key-file F');
    batchMs = positiveInt(v['batch-ms'] as string | undefined, '--batch-ms');
    healthPort = positiveInt(v['health-port'] as string | undefined, '--health-port', 0);
    chainPort = positiveInt(v['chain-port'] as string | undefined, '--chain-port', 0);
    const level = (v['log-level'] as string | undefined) ?? 'info';
    if (!['debug', 'info', 'warn', 'error'].includes(level)) throw new RangeError('--log-level must be debug, info, warn or error');
    v['log-level'] = level;
  } catch (err) {
    io.stderr.write(`stele ingest run: ${(err as Error).message}\n\n${RUN_USAGE}`);
    return 2;
  }

  const logger = pino({ level: v['log-level'] as string, base: { svc: 'stele-ingest', pid: process.pid } }, io.stdout as DestinationStream);
  const stop = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    logger.info({ signal: sig }, 'stopping');
    stop.abort();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  io.signal?.addEventListener('abort', () => stop.abort(), { once: true });
  const stopped = new Promise<void>((resolve) => stop.signal.addEventListener('abort', () => resolve(), { once: true }));

  let chain: AnvilNode | undefined;
  let service: IngestService | undefined;
  let httpServer: IngestHttp | undefined;
  const httpFile = join(dataDir, 'ingest-http.json');
  try {
    await mkdir(join(dataDir, 'keys'), { recursive: true });
    const signer = await loadOrCreateSoftwareSigner((v['key'] as string | undefined) ?? join(dataDir, 'keys', 'ingest.pem'));
    let anchorer;
    if (embedded) {
      chain = await startAnvil({ stateDir: join(dataDir, 'chain'), port: chainPort ?? 0, log: (line) => logger.debug({ anvil: line }, 'anvil') });
      anchorer = await connectEvmAnchorer({ rpcUrl: chain.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY, stateFile: join(dataDir, 'chain', 'anchor-contract.json') });
      logger.info({ rpcUrl: chain.rpcUrl, chainId: chain.chainId, contract: anchorer.contract }, 'embedded chain up');
    } else {
      const key = (await readFile(anchorKeyFile!, 'utf8')).trim();
      if (!/^0x[0-9a-fA-F]{64}$/.test(key)) throw new RangeError(`${anchorKeyFile} must hold a 0x-hex private key (64 hex digits)`);
      anchorer = await connectEvmAnchorer({ rpcUrl: rpc!, privateKey: key as `0x${string}`, stateFile: join(dataDir, 'anchor-contract.json') });
      logger.info({ rpcUrl: rpc, chainId: anchorer.chainId, contract: anchorer.contract }, 'chain connected');
    }
    // A broker that is down at start is normal after a power cut: retry with backoff until it answers.
    for (let delayMs = 500; ; delayMs = Math.min(delayMs * 2, 10_000)) {
      try {
        service = await IngestService.start({
          mqttUrl,
          dataDir: join(dataDir, 'store'),
          signer,
          issuer: (v['issuer'] as string | undefined) ?? 'stele-ingest',
          anchorer,
          ...(batchMs === undefined ? {} : { batchIntervalMs: batchMs }),
          broker: brokerCredentials(v),
          log: logger,
        });
        break;
      } catch (err) {
        if (stop.signal.aborted) throw err;
        const code = (err as { code?: string }).code;
        // a store held by another process is not going to go away by waiting
        if ((err as { cause?: { code?: string } }).cause?.code === 'LEVEL_LOCKED' || code === 'LEVEL_DATABASE_NOT_OPEN' || code === 'INGEST_BROKER_SECRET') throw err;
        logger.warn({ err: (err as Error).message, code, retryInMs: delayMs }, 'cannot start ingest (broker down?); retrying');
        await Promise.race([new Promise((r) => setTimeout(r, delayMs)), stopped]);
        if (stop.signal.aborted) return 0;
      }
    }
    if (healthPort !== undefined) {
      const adminToken = await loadOrCreateAdminToken((v['admin-token-file'] as string | undefined) ?? join(dataDir, 'admin-token'));
      httpServer = await startIngestHttp({ service, port: healthPort, adminToken, log: logger });
      await writeFile(httpFile, `${JSON.stringify({ url: httpServer.url, pid: process.pid })}\n`);
      logger.info({ url: httpServer.url, port: httpServer.port }, 'http listening');
    }
    logger.info({ mqttUrl, dataDir }, 'ingest running');
    await stopped;
    return 0;
  } catch (err) {
    logger.error({ err: (err as Error).message, code: (err as { code?: string }).code }, 'ingest failed');
    io.stderr.write(`stele ingest run: ${(err as { code?: string }).code ? `${(err as { code?: string }).code}: ` : ''}${(err as Error).message}\n`);
    return 1;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    await httpServer?.close();
    if (httpServer !== undefined) await rm(httpFile, { force: true });
    await service?.stop().catch((err: unknown) => logger.error({ err: (err as Error).message }, 'stop failed'));
    await chain?.stop();
    logger.info({}, 'ingest stopped');
    logger.flush();
  }
}

async function enrol(argv: string[], io: IngestIo): Promise<number> {
  const args = parse(argv, { data: { type: 'string' }, url: { type: 'string' }, 'admin-token-file': { type: 'string' } }, io, ENROL_USAGE);
  if (args === undefined) return 2;
  if (args.values['help'] === true) {
    io.stdout.write(ENROL_USAGE);
    return 0;
  }
  const file = args.positionals[0];
  const dataDir = args.values['data'] as string | undefined;
  if (file === undefined || args.positionals.length > 1 || (dataDir === undefined && args.values['url'] === undefined)) {
    io.stderr.write(`stele ingest enrol: give one FILE and --data DIR (or --url URL)\n\n${ENROL_USAGE}`);
    return 2;
  }
  let text: string;
  let record: EnrolmentRecord;
  try {
    text = await readFile(file, 'utf8');
    record = JSON.parse(text) as EnrolmentRecord;
  } catch (err) {
    io.stderr.write(`stele ingest enrol: cannot read ${file}: ${(err as Error).message}\n`);
    return 1;
  }
  const given = args.values['url'] as string | undefined;
  let url = given;
  if (url === undefined && dataDir !== undefined) {
    try {
      url = (JSON.parse(await readFile(join(dataDir, 'ingest-http.json'), 'utf8')) as { url?: string }).url;
    } catch {
      // ingest does not run (or runs without its HTTP endpoint): open the store
    }
  }
  try {
    let done = false;
    if (url !== undefined) {
      let res: Response | undefined;
      const tokenFile = (args.values['admin-token-file'] as string | undefined) ?? (dataDir === undefined ? undefined : join(dataDir, 'admin-token'));
      if (tokenFile === undefined) throw new RangeError('give --admin-token-file F (the running ingest needs its admin token)');
      const token = await readAdminToken(tokenFile);
      try {
        res = await fetch(`${url.replace(/\/$/, '')}/enrol`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: text });
      } catch (err) {
        // a URL left behind by an ingest that was killed: nobody answers, so the store is free
        if (given !== undefined || dataDir === undefined) throw err;
      }
      if (res !== undefined) {
        const body = (await res.json()) as { code?: string; error?: string };
        if (!res.ok) throw new IngestError((body.code ?? 'INGEST_ENROL_ERROR') as 'INGEST_ENROL_ERROR', body.error ?? `HTTP ${res.status}`);
        done = true;
      }
    }
    if (!done) await enrolInStore(join(dataDir!, 'store'), record);
  } catch (err) {
    const code = (err as { code?: string }).code;
    const locked = (err as { cause?: { code?: string } }).cause?.code === 'LEVEL_LOCKED';
    io.stderr.write(
      locked
        ? `stele ingest enrol: the store is held by a running ingest; give --url http://127.0.0.1:PORT (its --health-port)\n`
        : `stele ingest enrol: ${code ? `${code}: ` : ''}${(err as Error).message}\n`,
    );
    return 1;
  }
  io.stdout.write(`enrolled ${record.deviceId} (kid ${record.kid})\n`);
  return 0;
}

/** The checks of IngestService.enrol, against a store opened directly (ingest not running). */
async function enrolInStore(storeDir: string, record: EnrolmentRecord): Promise<void> {
  let publicKey: Uint8Array;
  let kid: Uint8Array;
  try {
    checkDeviceId(record.deviceId);
    publicKey = fromBase64Url(record.publicKey);
    assertP256PublicKey(publicKey);
    kid = fromBase64Url(record.kid);
  } catch (cause) {
    throw new IngestError('INGEST_ENROL_ERROR', 'enrolment record is malformed (device id, public key or kid)', { cause });
  }
  if (!equalBytes(kid, keyIdOf(publicKey))) throw new IngestError('INGEST_ENROL_ERROR', 'enrolment kid is not the key id of its public key');
  if (typeof record.keyBackend !== 'string' || typeof record.enrolledAt !== 'string') {
    throw new IngestError('INGEST_ENROL_ERROR', 'enrolment record lacks keyBackend or enrolledAt');
  }
  const store = await IngestStore.open(storeDir);
  try {
    const devices = await store.listDevices();
    const known = devices.find((d) => d.record.deviceId === record.deviceId);
    if (known !== undefined) {
      if (equalBytes(known.publicKey, publicKey)) return;
      throw new IngestError('INGEST_ENROL_CONFLICT', 'device already enrolled with another key', { where: { deviceId: record.deviceId } });
    }
    const byKid = devices.find((d) => toBase64Url(d.kid) === toBase64Url(kid));
    if (byKid !== undefined) {
      throw new IngestError('INGEST_ENROL_CONFLICT', 'key already enrolled for another device', { where: { deviceId: record.deviceId, other: byKid.record.deviceId } });
    }
    await store.putDevice({ record, publicKey, kid });
  } finally {
    await store.close();
  }
}

/** `--mqtt-*` options as IngestOptions.broker (paths only: the files are read by the service, never logged). */
function brokerCredentials(v: Record<string, string | boolean | undefined>): NonNullable<IngestOptions['broker']> {
  const b: NonNullable<IngestOptions['broker']> = {};
  const str = (k: string) => (typeof v[k] === 'string' ? (v[k] as string) : undefined);
  const username = str('mqtt-username');
  if (username !== undefined) b.username = username;
  const passwordFile = str('mqtt-password-file');
  if (passwordFile !== undefined) b.passwordFile = passwordFile;
  const ca = str('mqtt-ca');
  if (ca !== undefined) b.ca = ca;
  const cert = str('mqtt-cert');
  if (cert !== undefined) b.cert = cert;
  const key = str('mqtt-key');
  if (key !== undefined) b.key = key;
  return b;
}
