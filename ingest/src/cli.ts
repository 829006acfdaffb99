/**
 * `stele ingest`: the ingest service as a long-running process, and the operator's commands.
 *
 *   stele ingest init --data DIR [--key FILE | --pkcs11-module LIB --token LABEL --pin-file F [--key-label L]]
 *   stele ingest run --mqtt URL --data DIR [--embedded-chain [--chain-port N] | --rpc URL --anchor-key-file F]
 *                    [--batch-ms N] [--key FILE] [--installer-keys FILE] [--issuer NAME] [--health-port N] ...
 *   stele ingest enrol FILE.enrol.cose --data DIR [--url URL]
 *   stele ingest revoke DEVICE --reason TEXT --data DIR [--url URL] [--kid KID]
 *
 * `init` makes the ingest key once and prints its key id for the trust policy; `run` never makes one (a wrong
 * --key path is INGEST_KEY_MISSING). `run` logs JSON lines (pino) on stdout, serves the local HTTP endpoint
 * (http/server.ts) when --health-port is given, writes its URL to DIR/ingest-http.json, and stops gracefully on
 * SIGTERM/SIGINT. A broker that is down at start is retried with backoff.
 *
 * `enrol` and `revoke` change the device registry. Only one process can open the store: while ingest runs they go
 * through its HTTP endpoint (--url, or the URL in DIR/ingest-http.json); otherwise they open the store with the
 * same service code (IngestService.openOffline), so there is one enrolment check and one revocation path.
 */
import { X509Certificate } from 'node:crypto';
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { EXIT_OK, parseCommand, usageError } from '@stele/command';
import { pino, type DestinationStream } from 'pino';
import { fromBase64Url, toBase64Url, assertP256PublicKey, SteleError } from '@stele/core';
import { verifyEnrolmentRequest } from '@stele/core/enrolment';
import { ANVIL_DEV_PRIVATE_KEY, connectEvmAnchorer, startAnvil, type AnvilNode } from './anchor/index.ts';
import { IngestError } from './errors.ts';
import { loadOrCreateAdminToken, readAdminToken } from './http/admin-token.ts';
import { startIngestHttp, type IngestHttp } from './http/server.ts';
import { describeIngestKey, initIngestKey, openIngestKey, type IngestSigner } from './key.ts';
import { assertPrivateFile, ensurePrivateDir, writePrivateFile } from './private-files.ts';
import { IngestService, type IngestOptions } from './service.ts';
import { AlertBook, loadRuleFiles } from './alerts.ts';
import { mqttChannel, Notifier, readNoticeSecret, webhookChannel, type AlertChannel } from './notify/index.ts';
import { toLogFn } from './log.ts';
import { isPostgresUrl } from './store/index.ts';
import { redact } from './store/postgres/postgres-store.ts';
import { statementsSubscription } from './receive/broker-client.ts';

export interface IngestIo {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  /** Stops `run` like SIGTERM does (tests). */
  signal?: AbortSignal;
}

const INIT_USAGE = `usage: stele ingest init --data DIR [--key FILE | --pkcs11-module LIB --token LABEL (--pin-file F | --pin-env NAME) [--key-label L]]

Makes the ingest key (it signs receipts and lifecycle statements) once, records where it is in DIR/ingest-key.json
and prints its key id: put that into the officers' trust policy. Refuses when DIR already has a key.

  --data DIR          the ingest data directory (created 0700)
  --key FILE          software key file to create (default DIR/keys/ingest.pem, mode 0600)
  --pkcs11-module LIB make the key on a PKCS#11 token instead (HSM, SoftHSM2, TPM via tpm2-pkcs11)
  --token LABEL       the token's label
  --pin-file F        file holding the user PIN (mode 0600)   | --pin-env NAME  variable holding it
  --key-label L       CKA_LABEL of the key (default stele-ingest)
  --backend B         what the token is: pkcs11 (default) or tpm
`;

const RUN_USAGE = `usage: stele ingest run --mqtt URL --data DIR [options]

  --mqtt URL              broker (mqtt:// or mqtts://), without credentials
  --mqtt-username NAME    ingest's broker user (docs/broker.md)
  --mqtt-password-file F  file holding that user's password (never on the command line)
  --mqtt-ca F             CA certificate (PEM) of an mqtts:// broker
  --mqtt-cert F           client certificate (PEM), with --mqtt-key F
  --mqtt-key F            its private key (PEM)
  --data DIR              store and chain state (made by \`stele ingest init\`, which makes the key)
  --store WHERE           the store: postgres://USER@HOST:PORT/DB for PostgreSQL (several workers may share it),
                          or a directory for LevelDB (default DIR/store, LevelDB)
  --store-password-file F file holding the PostgreSQL password (mode 0600; never in the URL)
  --share GROUP           one of several workers on the MQTT 5 shared subscription $share/GROUP/...: needs
                          --store postgres://... and a broker with shared subscriptions (mosquitto, EMQX; not
                          aedes); each worker subscribes again on every connect
  --anchor-lease-ms N     a worker that stops (killed) hands its batches' anchoring to another after N ms
                          (default 15000)
  --embedded-chain        run anvil as a child process (dev chain, state in DIR/chain)
  --chain-port N          port of the embedded chain (default: a free one)
  --rpc URL               anchor on this Ethereum JSON-RPC endpoint instead ...
  --anchor-key-file F     ... with the account whose 0x-hex private key is in F (mode 0600)
  --batch-ms N            cut and anchor a batch every N ms (default 5000)
  --verify-in-flight N    signature checks handed to WebCrypto at once (default 64)
  --queue-bytes N         bytes of received messages waiting for their check, all devices together, beyond which
                          a message is shed (INGEST_QUEUE_FULL; the gateway sends it again); default 268435456
                          (256 MiB), at least 65536
  --confirmations N       an anchor is final (and goes into bundles) N blocks deep (default 1; e.g. 12 on a
                          public chain)
  --chain-block-time S    embedded chain: mine a block every S seconds (default: on each transaction)
  --chain-state-interval S embedded chain: save its state every S seconds (default 1; what a power cut loses)
  --key FILE              ingest key, PKCS#8 PEM; must exist (default: the key DIR/ingest-key.json names)
  --installer-keys FILE   installers whose countersigned enrolments are accepted: one base64url public key
                          per line, # comments (default DIR/installer-keys.txt when present)
  --issuer NAME           iss of every receipt (default stele-ingest)
  --health-port N         serve /health, /metrics and the admin API on 127.0.0.1:N (0: a free port)
  --rules FILE[,FILE…]    alert rule sets (FORMAT.md §15; a file, or a shipped name: \`stele alerts standards\`):
                          GET /alerts, /alerts/ID and /alerts/ID/bundle on the HTTP endpoint; \`stele evidence\`
  --alert-webhook URL     POST every new alert to URL (FORMAT.md §15.9), once, retried with backoff until a 2xx;
                          each delivery recorded (GET /alerts/ID/deliveries); needs --rules
  --alert-webhook-secret-file F   the webhook's HMAC-SHA256 secret (>= 32 bytes, mode 0600): Stele-Signature
  --alert-mqtt-secret-file F      also publish every new alert on stele/v1/alerts from ingest's own broker client,
                          HMAC'd with this secret (>= 32 bytes, mode 0600); needs --rules
  --admin-token-file F    token for the admin API (default DIR/admin-token, made with mode 0600 when missing;
                          refused when others can read it)
  --log-level L           debug | info | warn | error (default info)
  --worker-id NAME        this worker's name: the worker label of every /metrics series and a field of every
                          log line (default: the host name); one per worker sharing a store
`;

const ENROL_USAGE = `usage: stele ingest enrol FILE.enrol.cose --data DIR [--url URL] [--installer-keys FILE] [--admin-token-file F]

  FILE        the installer's countersigned enrolment request (\`stele gateway provision\` writes ID.enrol.cose;
              the ID.enrol.json beside it is a readable copy and is refused)
  --data DIR  the ingest data directory
  --url URL   a running ingest's HTTP endpoint (default: the one in DIR/ingest-http.json, if ingest runs)
  --installer-keys FILE   trusted installer keys when ingest does not run (default DIR/installer-keys.txt)
  --admin-token-file F    the running ingest's admin token (default DIR/admin-token)
`;

const REVOKE_USAGE = `usage: stele ingest revoke DEVICE --reason TEXT --data DIR [--url URL] [--kid KID] [--admin-token-file F]

Revokes the device's key now (a stolen gateway): every statement under it with a later seq is rejected
KEY_REVOKED_ERROR, and verifiers see the revocation (docs/keys.md, "Lifecycle").

  --reason TEXT  why (e.g. "stolen"); recorded in the signed revocation statement
  --kid KID      the key to revoke (base64url; default the key in use)
  --data DIR     the ingest data directory
  --url URL      a running ingest's HTTP endpoint (default: the one in DIR/ingest-http.json, if ingest runs)
  --admin-token-file F   the running ingest's admin token (default DIR/admin-token)
`;

const DEPLOY_USAGE = `usage: stele ingest deploy-contract --rpc URL --anchor-key-file F --data DIR

Deploys the SteleAnchor contract (docs/FORMAT.md §6) with the anchoring account and records its address in
DIR/anchor-contract.json, which \`stele ingest run --rpc\` then uses. Run once per chain; refuses when DIR already
records a contract (a second contract would start a second history).
`;

const USAGE = `usage: stele ingest <init|run|enrol|revoke|deploy-contract|trust export> [options]   (stele ingest <command> --help)\n`;

/** Entry point of \`stele ingest\`; returns the exit code (0 ok, 1 failure, 2 usage). */
export async function runIngest(argv: string[], io: IngestIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'init') return init(rest, io);
  if (sub === 'run') return run(rest, io);
  if (sub === 'enrol' || sub === 'enroll') return enrol(rest, io);
  if (sub === 'revoke') return revoke(rest, io);
  if (sub === 'deploy-contract') return deployContract(rest, io);
  if (sub === 'trust') return (await import('./trust-export.ts')).runIngestTrust(rest, io);
  if (sub === '--help' || sub === '-h' || sub === 'help') {
    io.stdout.write(`${USAGE}\n${INIT_USAGE}\n${RUN_USAGE}\n${ENROL_USAGE}\n${REVOKE_USAGE}\n${DEPLOY_USAGE}`);
    return 0;
  }
  return usageError(io, { name: 'stele ingest', usage: USAGE }, sub === undefined ? 'no command given' : `unknown command '${sub}'`);
}

type OptionSpec = Record<string, { type: 'string' | 'boolean' }>;

/** The parsed arguments, or undefined after a usage error (printed, exit 2). `--help` comes back as `values.help`. */
function parse(argv: string[], options: OptionSpec, io: IngestIo, usage: string): { values: Record<string, string | boolean | undefined>; positionals: string[] } | undefined {
  const name = /^usage: (stele ingest \S+)/.exec(usage)?.[1] ?? 'stele ingest';
  // the help text is printed by the caller, which knows which usage to print
  const parsed = parseCommand(argv, { name, usage, options, positionals: true }, { stdout: { write: () => undefined }, stderr: io.stderr });
  if (parsed === EXIT_OK) return { values: { help: true }, positionals: [] };
  if (typeof parsed === 'number') return undefined;
  return { values: parsed.values as Record<string, string | boolean | undefined>, positionals: parsed.positionals };
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
      confirmations: { type: 'string' },
      'chain-block-time': { type: 'string' },
      'chain-state-interval': { type: 'string' },
      key: { type: 'string' },
      'installer-keys': { type: 'string' },
      issuer: { type: 'string' },
      'health-port': { type: 'string' },
      'log-level': { type: 'string' },
      'mqtt-username': { type: 'string' },
      'mqtt-password-file': { type: 'string' },
      'mqtt-ca': { type: 'string' },
      'mqtt-cert': { type: 'string' },
      'mqtt-key': { type: 'string' },
      'admin-token-file': { type: 'string' },
      rules: { type: 'string' },
      'alert-webhook': { type: 'string' },
      'alert-webhook-secret-file': { type: 'string' },
      'alert-mqtt-secret-file': { type: 'string' },
      store: { type: 'string' },
      'store-password-file': { type: 'string' },
      share: { type: 'string' },
      'anchor-lease-ms': { type: 'string' },
      'worker-id': { type: 'string' },
      'verify-in-flight': { type: 'string' },
      'queue-bytes': { type: 'string' },
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
  let verifyInFlight: number | undefined;
  let queueBytes: number | undefined;
  let healthPort: number | undefined;
  let chainPort: number | undefined;
  let confirmations: number | undefined;
  let blockTimeSec: number | undefined;
  let stateIntervalSec: number | undefined;
  let anchorLeaseMs: number | undefined;
  try {
    if (mqttUrl === undefined || !/^mqtts?:\/\//.test(mqttUrl)) throw new RangeError('--mqtt mqtt://HOST:PORT is required');
    if (/^mqtts?:\/\/[^/]*@/.test(mqttUrl)) throw new RangeError('--mqtt must not carry credentials: use --mqtt-username and --mqtt-password-file');
    if ((v['mqtt-cert'] === undefined) !== (v['mqtt-key'] === undefined)) throw new RangeError('--mqtt-cert and --mqtt-key go together');
    if (v['mqtt-password-file'] !== undefined && v['mqtt-username'] === undefined) throw new RangeError('--mqtt-password-file needs --mqtt-username');
    if (dataDir === undefined) throw new RangeError('--data DIR is required');
    if ((v['alert-webhook'] === undefined) !== (v['alert-webhook-secret-file'] === undefined)) throw new RangeError('--alert-webhook and --alert-webhook-secret-file go together');
    if ((v['alert-webhook'] !== undefined || v['alert-mqtt-secret-file'] !== undefined) && v['rules'] === undefined) throw new RangeError('alert notification needs --rules FILE');
    checkStoreOption(v['store'] as string | undefined, v['store-password-file'] as string | undefined);
    if (v['share'] !== undefined) statementsSubscription(v['share'] as string);
    if (embedded === (rpc !== undefined)) throw new RangeError('give either --embedded-chain or --rpc URL with --anchor-key-file F');
    if (rpc !== undefined && anchorKeyFile === undefined) throw new RangeError('--rpc needs --anchor-key-file F');
    batchMs = positiveInt(v['batch-ms'] as string | undefined, '--batch-ms');
    verifyInFlight = positiveInt(v['verify-in-flight'] as string | undefined, '--verify-in-flight');
    if (verifyInFlight !== undefined && verifyInFlight > 65_536) throw new RangeError('--verify-in-flight must be at most 65536');
    // at least one message of the largest size (64 KiB), else such a statement would be shed however often it is sent
    queueBytes = positiveInt(v['queue-bytes'] as string | undefined, '--queue-bytes', 65_536);
    healthPort = positiveInt(v['health-port'] as string | undefined, '--health-port', 0);
    chainPort = positiveInt(v['chain-port'] as string | undefined, '--chain-port', 0);
    confirmations = positiveInt(v['confirmations'] as string | undefined, '--confirmations');
    blockTimeSec = positiveInt(v['chain-block-time'] as string | undefined, '--chain-block-time');
    stateIntervalSec = positiveInt(v['chain-state-interval'] as string | undefined, '--chain-state-interval');
    anchorLeaseMs = positiveInt(v['anchor-lease-ms'] as string | undefined, '--anchor-lease-ms', 500);
    const level = (v['log-level'] as string | undefined) ?? 'info';
    if (!['debug', 'info', 'warn', 'error'].includes(level)) throw new RangeError('--log-level must be debug, info, warn or error');
    v['log-level'] = level;
    const worker = (v['worker-id'] as string | undefined) ?? hostname();
    if (!/^[A-Za-z0-9._:-]{1,64}$/.test(worker)) throw new RangeError('--worker-id must be 1..64 of A-Z a-z 0-9 . _ : -');
    v['worker-id'] = worker;
  } catch (err) {
    io.stderr.write(`stele ingest run: ${(err as Error).message}\n\n${RUN_USAGE}`);
    return 2;
  }

  if (v['share'] !== undefined && !isPostgresUrl((v['store'] as string | undefined) ?? '')) {
    // Checked before anything starts; the service checks it again (IngestService.start).
    io.stderr.write(`stele ingest run: INGEST_SHARE_NEEDS_SHARED_STORE: --share runs several workers on one store: give --store postgres://... (LevelDB belongs to one process)\n`);
    return 2;
  }
  const logger = pino({ level: v['log-level'] as string, base: { svc: 'stele-ingest', worker: v['worker-id'] as string, pid: process.pid } }, io.stdout as DestinationStream);
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
  let notifier: Notifier | undefined;
  let closeKey: IngestSigner | undefined;
  const httpFile = join(dataDir, 'ingest-http.json');
  const channels: AlertChannel[] = [];
  try {
    // The store and the chain state are evidence: 0700 folders (the files inside are then out of others' reach).
    await ensurePrivateDir(dataDir);
    const store = await storeLocation(v['store'] as string | undefined, v['store-password-file'] as string | undefined);
    if (store === undefined) await ensurePrivateDir(join(dataDir, 'store'));
    await recordStore(dataDir, v['store'] as string | undefined, v['store-password-file'] as string | undefined);
    if (embedded) await ensurePrivateDir(join(dataDir, 'chain'));
    const rules = typeof v['rules'] === 'string' ? await loadRuleFiles((v['rules']).split(',').filter((x) => x !== '')) : undefined;
    if (rules !== undefined && healthPort === undefined) throw new RangeError('--rules needs --health-port: alerts are served on the HTTP endpoint');
    if (typeof v['alert-webhook'] === 'string') {
      const secret = await readNoticeSecret(v['alert-webhook-secret-file'] as string, 'the webhook secret file');
      channels.push(webhookChannel({ url: v['alert-webhook'], secret }));
    }
    if (typeof v['alert-mqtt-secret-file'] === 'string') {
      const secret = await readNoticeSecret(v['alert-mqtt-secret-file'], 'the MQTT alert secret file');
      channels.push(await mqttChannel({ mqttUrl, broker: brokerCredentials(v), secret, log: toLogFn(logger) }));
    }
    const signer = await openIngestKey(dataDir, v['key'] as string | undefined);
    closeKey = signer;
    const trustedInstallers = await readInstallerKeys(dataDir, v['installer-keys'] as string | undefined);
    logger.info({ kid: toBase64Url(signer.keyId), backend: signer.backend, trustedInstallers: trustedInstallers.length }, 'ingest key');
    let anchorer;
    if (embedded) {
      chain = await startAnvil({
        stateDir: join(dataDir, 'chain'),
        port: chainPort ?? 0,
        log: (line) => logger.debug({ anvil: line }, 'anvil'),
        ...(blockTimeSec === undefined ? {} : { blockTimeSec }),
        ...(stateIntervalSec === undefined ? {} : { stateIntervalSec }),
      });
      // The dev chain ingest runs itself: its contract is deployed on its first start only (no state file yet); a
      // state file whose contract is gone is ANCHOR_CONTRACT_MISSING, never a new deployment. The chain's state is
      // dumped before the state file names the contract (a power cut right after the first start loses neither).
      const node = chain;
      anchorer = await connectEvmAnchorer({ rpcUrl: chain.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY, stateFile: join(dataDir, 'chain', 'anchor-contract.json'), afterDeploy: () => node.persist() });
      logger.info({ rpcUrl: chain.rpcUrl, chainId: chain.chainId, contract: anchorer.contract, anvilPid: chain.pid }, 'embedded chain up');
    } else {
      await assertPrivateFile(anchorKeyFile!, 'the anchor key file');
      const key = (await readFile(anchorKeyFile!, 'utf8')).trim();
      if (!/^0x[0-9a-fA-F]{64}$/.test(key)) throw new RangeError(`${anchorKeyFile} must hold a 0x-hex private key (64 hex digits)`);
      anchorer = await connectEvmAnchorer({ rpcUrl: rpc!, privateKey: key as `0x${string}`, stateFile: join(dataDir, 'anchor-contract.json'), deploy: 'never' });
      logger.info({ rpcUrl: rpc, chainId: anchorer.chainId, contract: anchorer.contract }, 'chain connected');
    }
    // A broker that is down at start is normal after a power cut: retry with backoff until it answers.
    for (let delayMs = 500; ; delayMs = Math.min(delayMs * 2, 10_000)) {
      try {
        service = await IngestService.start({
          mqttUrl,
          dataDir: join(dataDir, 'store'),
          ...(store === undefined ? {} : { store }),
          signer,
          issuer: (v['issuer'] as string | undefined) ?? 'stele-ingest',
          anchorer,
          trustedInstallers,
          ...(confirmations === undefined ? {} : { anchorConfirmations: confirmations }),
          ...(batchMs === undefined ? {} : { batchIntervalMs: batchMs }),
          ...(verifyInFlight === undefined ? {} : { maxVerifyInFlight: verifyInFlight }),
          ...(queueBytes === undefined ? {} : { maxQueuedBytes: queueBytes }),
          broker: brokerCredentials(v),
          ...(v['share'] === undefined ? {} : { shareGroup: v['share'] as string }),
          // Anchor leases are held by this process: the worker id plus the pid, so two workers sharing a host name never share a lease.
          workerName: `${v['worker-id'] as string}:${process.pid}`,
          ...(anchorLeaseMs === undefined ? {} : { anchorLeaseMs }),
          log: logger,
        });
        break;
      } catch (err) {
        if (stop.signal.aborted) throw err;
        const code = (err as { code?: string }).code;
        // a store held by another process is not going to go away by waiting
        if ((err as { cause?: { code?: string } }).cause?.code === 'LEVEL_LOCKED' || code === 'LEVEL_DATABASE_NOT_OPEN' || code === 'INGEST_BROKER_SECRET') throw err;
        // a broker without shared subscriptions, or a store of one worker's own, will not change by waiting either
        if (code === 'INGEST_SHARE_UNSUPPORTED' || code === 'INGEST_SHARE_NEEDS_SHARED_STORE' || code === 'INGEST_BROKER_REFUSED') throw err;
        logger.warn({ err: (err as Error).message, code, retryInMs: delayMs }, 'cannot start ingest (broker down?); retrying');
        await Promise.race([new Promise((r) => setTimeout(r, delayMs)), stopped]);
        if (stop.signal.aborted) return 0;
      }
    }
    if (healthPort !== undefined) {
      const adminToken = await loadOrCreateAdminToken((v['admin-token-file'] as string | undefined) ?? join(dataDir, 'admin-token'));
      const book = rules === undefined ? undefined : new AlertBook(service, rules);
      httpServer = await startIngestHttp({ service, port: healthPort, adminToken, log: logger, workerId: v['worker-id'] as string, ...(book === undefined ? {} : { alerts: book }) });
      if (book !== undefined && channels.length > 0) {
        notifier = new Notifier({ alerts: () => book.alerts(), store: service.alertDeliveryStore(), channels, issuer: (v['issuer'] as string | undefined) ?? 'stele-ingest', log: toLogFn(logger) });
        notifier.start();
        logger.info({ channels: channels.map((c) => c.name) }, 'alert notification on');
      }
      await writePrivateFile(httpFile, `${JSON.stringify({ url: httpServer.url, pid: process.pid })}\n`);
      logger.info({ url: httpServer.url, port: httpServer.port }, 'http listening');
    }
    logger.info({ mqttUrl, dataDir, store: store === undefined ? join(dataDir, 'store') : redact(store) }, 'ingest running');
    await stopped;
    return 0;
  } catch (err) {
    logger.error({ err: (err as Error).message, code: (err as { code?: string }).code }, 'ingest failed');
    io.stderr.write(`stele ingest run: ${(err as { code?: string }).code ? `${(err as { code?: string }).code}: ` : ''}${(err as Error).message}\n`);
    return 1;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    await notifier?.stop();
    if (notifier === undefined) for (const c of channels) await c.close();
    await httpServer?.close();
    if (httpServer !== undefined) await rm(httpFile, { force: true });
    await service?.stop().catch((err: unknown) => logger.error({ err: (err as Error).message }, 'stop failed'));
    await chain?.stop();
    await closeKey?.close?.().catch(() => undefined);
    logger.info({}, 'ingest stopped');
    logger.flush();
  }
}

/** --store and --store-password-file: a PostgreSQL URL carries no password (it would show in process lists). */
function checkStoreOption(store: string | undefined, passwordFile: string | undefined): void {
  if (store === undefined) {
    if (passwordFile !== undefined) throw new RangeError('--store-password-file needs --store postgres://...');
    return;
  }
  if (store === '') throw new RangeError('--store must be a postgres:// URL or a directory');
  if (isPostgresUrl(store)) {
    let url: URL;
    try {
      url = new URL(store);
    } catch {
      throw new RangeError('--store is not a valid postgres:// URL');
    }
    if (url.password !== '') throw new RangeError('--store must not carry a password: use --store-password-file');
  } else if (passwordFile !== undefined) throw new RangeError('--store-password-file goes with a postgres:// store');
}

/**
 * DIR/ingest-store.json: where `run` keeps its store when not DIR/store ({store, passwordFile?}, never the
 * password), so that `enrol` and `revoke` with ingest stopped open the same store. Removed for the default.
 */
async function recordStore(dataDir: string, store: string | undefined, passwordFile: string | undefined): Promise<void> {
  const file = join(dataDir, 'ingest-store.json');
  if (store === undefined) await rm(file, { force: true });
  else await writePrivateFile(file, `${JSON.stringify({ store, ...(passwordFile === undefined ? {} : { passwordFile }) })}\n`);
}

async function readRecordedStore(dataDir: string): Promise<{ store: string; passwordFile?: string } | undefined> {
  let text: string;
  try {
    text = await readFile(join(dataDir, 'ingest-store.json'), 'utf8');
  } catch {
    return undefined;
  }
  const o = JSON.parse(text) as { store?: unknown; passwordFile?: unknown };
  if (typeof o.store !== 'string' || (o.passwordFile !== undefined && typeof o.passwordFile !== 'string')) {
    throw new IngestError('INGEST_USAGE', `${join(dataDir, 'ingest-store.json')} is not {store, passwordFile?}`);
  }
  return { store: o.store, ...(typeof o.passwordFile === 'string' ? { passwordFile: o.passwordFile } : {}) };
}

/** The store to open: undefined for the default (DIR/store), else the directory or the URL with its password. */
async function storeLocation(store: string | undefined, passwordFile: string | undefined): Promise<string | undefined> {
  if (store === undefined || !isPostgresUrl(store) || passwordFile === undefined) return store;
  await assertPrivateFile(passwordFile, 'the store password file');
  const url = new URL(store);
  url.password = encodeURIComponent((await readFile(passwordFile, 'utf8')).replace(/\r?\n$/, ''));
  return url.toString();
}

function errorLine(cmd: string, err: unknown): string {
  const e = err as { code?: string; message?: string; cause?: { code?: string } };
  if (e.cause?.code === 'LEVEL_LOCKED') return `stele ingest ${cmd}: the store is held by a running ingest; give --url http://127.0.0.1:PORT (its --health-port)\n`;
  return `stele ingest ${cmd}: ${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}\n`;
}

/**
 * Installer keys the operator trusts (one base64url SEC1 P-256 point per line, `#` comments): from `file`, or
 * DIR/installer-keys.txt when present, else none (every countersigned enrolment is then refused).
 */
export async function readInstallerKeys(dataDir: string | undefined, file: string | undefined): Promise<Uint8Array[]> {
  const path = file ?? (dataDir === undefined ? undefined : join(dataDir, 'installer-keys.txt'));
  if (path === undefined) return [];
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    if (file === undefined && (cause as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new IngestError('INGEST_USAGE', `cannot read the installer keys ${path}`, { cause, where: { path } });
  }
  const keys: Uint8Array[] = [];
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') continue;
    try {
      const key = fromBase64Url(line.split(/\s+/)[0]!);
      assertP256PublicKey(key);
      keys.push(key);
    } catch (cause) {
      throw new IngestError('INGEST_USAGE', `${path}:${i + 1}: not a base64url P-256 public key`, { cause, where: { path, line: i + 1 } });
    }
  }
  return keys;
}

/** The running ingest's HTTP endpoint: --url, else DIR/ingest-http.json (undefined when ingest does not run). */
export async function ingestUrl(dataDir: string | undefined, given: string | undefined): Promise<string | undefined> {
  if (given !== undefined) return given.replace(/\/$/, '');
  if (dataDir === undefined) return undefined;
  try {
    const url = (JSON.parse(await readFile(join(dataDir, 'ingest-http.json'), 'utf8')) as { url?: string }).url;
    return typeof url === 'string' ? url.replace(/\/$/, '') : undefined;
  } catch {
    return undefined; // ingest does not run (or runs without its HTTP endpoint)
  }
}

/**
 * Calls the running ingest's admin API. Undefined when nobody answers at a URL taken from ingest-http.json (left
 * behind by an ingest that was killed: the store is then free); an explicit --url that does not answer throws.
 */
async function callAdmin(url: string, path: string, init: RequestInit, explicit: boolean, tokenFile: string | undefined): Promise<Record<string, unknown> | undefined> {
  if (tokenFile === undefined) throw new RangeError('give --admin-token-file F (the running ingest needs its admin token)');
  const token = await readAdminToken(tokenFile);
  let res: Response;
  try {
    res = await fetch(`${url}${path}`, { ...init, headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${token}` } });
  } catch (err) {
    if (explicit) throw err;
    return undefined;
  }
  const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (!res.ok) throw new IngestError((typeof body.code === 'string' ? body.code : 'INGEST_USAGE') as 'INGEST_USAGE', typeof body.error === 'string' ? body.error : `HTTP ${res.status}`);
  return body;
}

/** The admin token file: --admin-token-file, else DIR/admin-token. */
function tokenFileOf(values: Record<string, unknown>, dataDir: string | undefined): string | undefined {
  const given = values['admin-token-file'];
  return typeof given === 'string' ? given : dataDir === undefined ? undefined : join(dataDir, 'admin-token');
}

/** Runs `work` on the store with the service's own code, when ingest does not run. */
async function withOfflineService<T>(dataDir: string, installerKeys: string | undefined, work: (s: IngestService) => Promise<T>): Promise<T> {
  const signer = await openIngestKey(dataDir);
  // The store `run` last used (DIR/ingest-store.json): a PostgreSQL deployment must not enrol into DIR/store.
  const recorded = await readRecordedStore(dataDir);
  const store = recorded === undefined ? undefined : await storeLocation(recorded.store, recorded.passwordFile);
  const service = await IngestService.openOffline({
    dataDir: join(dataDir, 'store'),
    ...(store === undefined ? {} : { store }),
    signer,
    issuer: 'stele-ingest',
    trustedInstallers: await readInstallerKeys(dataDir, installerKeys),
  });
  try {
    return await work(service);
  } finally {
    await service.stop();
    await signer.close?.().catch(() => undefined);
  }
}

async function init(argv: string[], io: IngestIo): Promise<number> {
  const args = parse(
    argv,
    {
      data: { type: 'string' },
      key: { type: 'string' },
      'pkcs11-module': { type: 'string' },
      token: { type: 'string' },
      'pin-file': { type: 'string' },
      'pin-env': { type: 'string' },
      'key-label': { type: 'string' },
      backend: { type: 'string' },
    },
    io,
    INIT_USAGE,
  );
  if (args === undefined) return 2;
  const v = args.values;
  if (v['help'] === true) {
    io.stdout.write(INIT_USAGE);
    return 0;
  }
  const dataDir = v['data'] as string | undefined;
  const module = v['pkcs11-module'] as string | undefined;
  if (dataDir === undefined || args.positionals.length > 0 || (module !== undefined && v['key'] !== undefined)) {
    io.stderr.write(`stele ingest init: give --data DIR, and either --key FILE or --pkcs11-module LIB\n\n${INIT_USAGE}`);
    return 2;
  }
  let pkcs11;
  if (module !== undefined) {
    const token = v['token'] as string | undefined;
    const pinFile = v['pin-file'] as string | undefined;
    const pinEnv = v['pin-env'] as string | undefined;
    const backend = (v['backend'] as string | undefined) ?? 'pkcs11';
    if (token === undefined || (pinFile === undefined) === (pinEnv === undefined) || (backend !== 'pkcs11' && backend !== 'tpm')) {
      io.stderr.write(`stele ingest init: --pkcs11-module needs --token and one of --pin-file / --pin-env (--backend pkcs11|tpm)\n\n${INIT_USAGE}`);
      return 2;
    }
    pkcs11 = {
      backend: backend as 'pkcs11' | 'tpm',
      module,
      tokenLabel: token,
      pin: pinFile !== undefined ? { file: pinFile } : { env: pinEnv! },
      ...(v['key-label'] === undefined ? {} : { keyLabel: v['key-label'] as string }),
    };
  }
  try {
    if (pkcs11 !== undefined && 'file' in pkcs11.pin) await assertPrivateFile(pkcs11.pin.file, 'the PIN file');
    const signer = await initIngestKey(dataDir, {
      ...(v['key'] === undefined ? {} : { keyFile: v['key'] as string }),
      ...(pkcs11 === undefined ? {} : { pkcs11 }),
    });
    io.stdout.write(describeIngestKey(signer));
    io.stdout.write(`recorded in ${join(dataDir, 'ingest-key.json')}; put the key id into the officers' trust policy\n`);
    await signer.close?.();
    return 0;
  } catch (err) {
    io.stderr.write(errorLine('init', err));
    return 1;
  }
}

async function enrol(argv: string[], io: IngestIo): Promise<number> {
  const args = parse(argv, { data: { type: 'string' }, url: { type: 'string' }, 'installer-keys': { type: 'string' }, 'admin-token-file': { type: 'string' } }, io, ENROL_USAGE);
  if (args === undefined) return 2;
  if (args.values['help'] === true) {
    io.stdout.write(ENROL_USAGE);
    return 0;
  }
  const file = args.positionals[0];
  const dataDir = args.values['data'] as string | undefined;
  const given = args.values['url'] as string | undefined;
  if (file === undefined || args.positionals.length > 1 || (dataDir === undefined && given === undefined)) {
    io.stderr.write(`stele ingest enrol: give one FILE and --data DIR (or --url URL)\n\n${ENROL_USAGE}`);
    return 2;
  }
  let bytes: Uint8Array;
  try {
    const size = (await stat(file)).size;
    if (size > 64 * 1024) throw new IngestError('INGEST_USAGE', `${file} is ${size} bytes: not an enrolment request`);
    bytes = new Uint8Array(await readFile(file));
  } catch (err) {
    io.stderr.write(`stele ingest enrol: cannot read ${file}: ${(err as Error).message}\n`);
    return 1;
  }
  // The readable copy beside the request is not signed: refuse it and name the file that is.
  if (file.endsWith('.json') || bytes[0] === 0x7b) {
    const cose = file.endsWith('.enrol.json') ? `${file.slice(0, -'.json'.length)}.cose` : 'the ID.enrol.cose file beside it';
    io.stderr.write(`stele ingest enrol: INGEST_USAGE: ${file} is the readable copy (not signed); enrol ${cose} instead\n`);
    return 1;
  }
  try {
    const url = await ingestUrl(dataDir, given);
    let result: { deviceId: string; kid: string; installerKid: string } | undefined;
    if (url !== undefined) {
      const body = await callAdmin(url, '/enrol', { method: 'POST', headers: { 'content-type': 'application/cose' }, body: Buffer.from(bytes) }, given !== undefined, tokenFileOf(args.values, dataDir));
      if (body !== undefined) result = { deviceId: String(body.enrolled), kid: String(body.kid), installerKid: String(body.installerKid) };
    }
    if (result === undefined) {
      const r = await withOfflineService(dataDir!, args.values['installer-keys'] as string | undefined, (s) => s.enrolRequest(bytes));
      result = { deviceId: r.record.deviceId, kid: r.record.kid, installerKid: r.installerKid };
    }
    io.stdout.write(`enrolled ${result.deviceId} (kid ${result.kid}, countersigned by installer ${result.installerKid})\n`);
    io.stdout.write(`${await describeAttestation(bytes)}\n`);
    return 0;
  } catch (err) {
    io.stderr.write(errorLine('enrol', err));
    const cause = (err as { cause?: unknown }).cause;
    if (cause instanceof SteleError && cause.code === 'ENROLMENT_INSTALLER_UNTRUSTED') {
      io.stderr.write(`  fix: if you trust installer ${String(cause.where?.['installerKid'])}, add its public key (from the .enrol.json, installer.publicKey) to DIR/installer-keys.txt (or --installer-keys) and restart ingest\n`);
    }
    return 1;
  }
}

/** One line on the request's attestation (ingest checked it; the root is for verifiers under the policy, FORMAT.md §14.5). */
async function describeAttestation(bytes: Uint8Array): Promise<string> {
  const att = (await verifyEnrolmentRequest(bytes)).request.attestation;
  if (att.kind === 'tpm2-certify') {
    const issuer = new X509Certificate(Buffer.from(att.ekCertificate.der, 'base64url')).issuer.replace(/\n/g, ', ');
    return `attestation: TPM2_Certify of the key by an attestation key under the TPM's endorsement key, checked; EK certificate issued by ${issuer} (verifiers count the key as attested when their trust policy lists that CA, or a CA above it, in attestationRoots)`;
  }
  if (att.kind === 'tpm-ek-certificate') return `attestation: EK certificate only, the key is not certified, so it is declared (${att.note})`;
  return `attestation: none (${att.reason}): the key backend is declared, not attested`;
}

async function revoke(argv: string[], io: IngestIo): Promise<number> {
  const args = parse(argv, { data: { type: 'string' }, url: { type: 'string' }, reason: { type: 'string' }, kid: { type: 'string' }, 'admin-token-file': { type: 'string' } }, io, REVOKE_USAGE);
  if (args === undefined) return 2;
  if (args.values['help'] === true) {
    io.stdout.write(REVOKE_USAGE);
    return 0;
  }
  const device = args.positionals[0];
  const dataDir = args.values['data'] as string | undefined;
  const given = args.values['url'] as string | undefined;
  const reason = args.values['reason'] as string | undefined;
  const kidText = args.values['kid'] as string | undefined;
  if (device === undefined || args.positionals.length > 1 || reason === undefined || reason.trim() === '' || reason.length > 256 || (dataDir === undefined && given === undefined)) {
    io.stderr.write(`stele ingest revoke: give one DEVICE, --reason TEXT (1..256 characters) and --data DIR (or --url URL)\n\n${REVOKE_USAGE}`);
    return 2;
  }
  try {
    let kid: Uint8Array | undefined;
    if (kidText !== undefined) {
      kid = fromBase64Url(kidText);
      if (kid.length !== 32) throw new IngestError('INGEST_USAGE', '--kid is not a 32-byte key id (base64url)');
    }
    const url = await ingestUrl(dataDir, given);
    let result: { kid: string; after: number } | undefined;
    if (url !== undefined) {
      const body = await callAdmin(
        url,
        `/devices/${encodeURIComponent(device)}/revoke`,
        { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ reason, ...(kidText === undefined ? {} : { kid: kidText }) }) },
        given !== undefined,
        tokenFileOf(args.values, dataDir),
      );
      if (body !== undefined) result = { kid: String(body.kid), after: Number(body.after) };
    }
    if (result === undefined) {
      const r = await withOfflineService(dataDir!, undefined, (s) => s.revoke(device, { reason, ...(kid === undefined ? {} : { kid }) }));
      result = { kid: toBase64Url(r.kid), after: r.after };
    }
    io.stdout.write(`revoked ${device} key ${result.kid}: statements after seq ${result.after} are rejected (KEY_REVOKED_ERROR)\n`);
    return 0;
  } catch (err) {
    io.stderr.write(errorLine('revoke', err));
    return 1;
  }
}

async function deployContract(argv: string[], io: IngestIo): Promise<number> {
  const args = parse(argv, { rpc: { type: 'string' }, 'anchor-key-file': { type: 'string' }, data: { type: 'string' } }, io, DEPLOY_USAGE);
  if (args === undefined) return 2;
  if (args.values['help'] === true) {
    io.stdout.write(DEPLOY_USAGE);
    return 0;
  }
  const rpc = args.values['rpc'] as string | undefined;
  const keyFile = args.values['anchor-key-file'] as string | undefined;
  const dataDir = args.values['data'] as string | undefined;
  if (rpc === undefined || !/^https?:\/\//.test(rpc) || keyFile === undefined || dataDir === undefined) {
    io.stderr.write(`stele ingest deploy-contract: give --rpc URL, --anchor-key-file F and --data DIR\n\n${DEPLOY_USAGE}`);
    return 2;
  }
  try {
    await ensurePrivateDir(dataDir);
    const stateFile = join(dataDir, 'anchor-contract.json');
    const exists = await stat(stateFile).then(() => true, () => false);
    if (exists) throw new IngestError('INGEST_USAGE', `${stateFile} already records a contract; remove it only if you mean to start a new anchor history`);
    await assertPrivateFile(keyFile, 'the anchor key file');
    const key = (await readFile(keyFile, 'utf8')).trim();
    if (!/^0x[0-9a-fA-F]{64}$/.test(key)) throw new RangeError(`${keyFile} must hold a 0x-hex private key (64 hex digits)`);
    const anchorer = await connectEvmAnchorer({ rpcUrl: rpc, privateKey: key as `0x${string}`, stateFile, deploy: 'if-no-state' });
    io.stdout.write(`deployed SteleAnchor at ${anchorer.contract} on chain ${anchorer.chainId} (owner ${anchorer.owner}); recorded in ${stateFile}\n`);
    return 0;
  } catch (err) {
    io.stderr.write(errorLine('deploy-contract', err));
    return 1;
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
export { runEvidence } from './evidence-cli.ts';
