/**
 * The embedded EVM dev chain: anvil (Foundry) from npm, run as a child process on 127.0.0.1
 * (design/DEPENDENCIES.md §7). Chain state lives in `stateDir`, so stop + start continues the same chain.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { gunzipSync } from 'node:zlib';
import { AnchorError } from '@stele/core/anchor';

/** anvil's default dev chain id, pinned with --chain-id so a reloaded state cannot change it. */
export const ANVIL_CHAIN_ID = 31337;
/** File (inside stateDir) anvil loads on start and dumps on exit and every `stateIntervalSec`. */
export const ANVIL_STATE_FILE = 'anvil-state.json';

export interface AnvilOptions {
  /** Directory for the chain state; created when missing. Use one node per directory. */
  stateDir: string;
  /** TCP port on 127.0.0.1. Default: 0, a free port chosen by the OS (anvil prints which). */
  port?: number;
  /** Receives every line anvil prints (stdout and stderr). Default: dropped. */
  log?: (line: string) => void;
  /** Path of the anvil binary. Default: the one from @foundry-rs/anvil's platform package. */
  binaryPath?: string;
  /** Seconds between periodic state dumps (bounds what a SIGKILL loses). Default: 1. Rounded to whole driver ticks. */
  stateIntervalSec?: number;
  /** How long to wait for the first eth_chainId answer. Default: 15000. */
  startTimeoutMs?: number;
  /** Mine a block every this many seconds (anvil --block-time), so anchors gain confirmations. Default: mine on each transaction. */
  blockTimeSec?: number;
}

export interface AnvilNode {
  rpcUrl: string;
  chainId: number;
  /** PID of the anvil process itself. */
  pid: number;
  /** Spawn to first eth_chainId answer, in ms. */
  startupMs: number;
  /**
   * Dumps the state now (from the driver's loop, so never while a block is mined) and resolves once it is on disk.
   * For a change that must survive a SIGKILL before the next periodic dump: the contract deployment on a first start.
   */
  persist(): Promise<void>;
  /** SIGTERM, then wait for exit: anvil dumps the state on the way out. Idempotent. */
  stop(): Promise<void>;
}

const PLATFORM_PACKAGES: Record<string, string> = {
  'linux-x64': '@foundry-rs/anvil-linux-amd64',
  'linux-arm64': '@foundry-rs/anvil-linux-arm64',
  'darwin-x64': '@foundry-rs/anvil-darwin-amd64',
  'darwin-arm64': '@foundry-rs/anvil-darwin-arm64',
  'win32-x64': '@foundry-rs/anvil-win32-amd64',
};

/**
 * Path of the anvil binary shipped in @foundry-rs/anvil's platform package (an optional dependency of
 * @foundry-rs/anvil, so it is looked up from there as well as from here). AnchorError ANCHOR_NODE_MISSING when
 * this platform has none or it is not installed.
 */
export function resolveAnvilBinary(): string {
  const key = `${process.platform}-${process.arch}`;
  const pkg = PLATFORM_PACKAGES[key];
  if (pkg === undefined) {
    throw new AnchorError('ANCHOR_NODE_MISSING', `no anvil build for ${key}`, { where: { platform: key } });
  }
  const exe = process.platform === 'win32' ? 'anvil.exe' : 'anvil';
  const here = createRequire(import.meta.url);
  const bases: string[] = [import.meta.url];
  try {
    bases.push(here.resolve('@foundry-rs/anvil/package.json'));
  } catch {
    // the wrapper package is optional for us; the platform package is what we run
  }
  for (const base of bases) {
    try {
      const manifest = createRequire(base).resolve(`${pkg}/package.json`);
      const binary = join(dirname(manifest), 'bin', exe);
      if (existsSync(binary)) return binary;
    } catch {
      // try the next base
    }
  }
  throw new AnchorError('ANCHOR_NODE_MISSING', `anvil is not installed: npm install @foundry-rs/anvil (needs ${pkg})`, {
    where: { package: pkg },
  });
}

/** Starts anvil on 127.0.0.1 with its state in `options.stateDir` and waits until it answers eth_chainId. */
export async function startAnvil(options: AnvilOptions): Promise<AnvilNode> {
  const { stateDir } = options;
  if (typeof stateDir !== 'string' || stateDir === '') throw new TypeError('stateDir must be a directory path');
  const port = options.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError('port must be 0..65535');
  const stateIntervalSec = options.stateIntervalSec ?? 1;
  if (!(stateIntervalSec > 0)) throw new RangeError('stateIntervalSec must be > 0');
  const startTimeoutMs = options.startTimeoutMs ?? 15_000;
  const log = options.log ?? (() => {});
  const binary = options.binaryPath ?? resolveAnvilBinary();
  if (!existsSync(binary)) {
    throw new AnchorError('ANCHOR_NODE_MISSING', `no anvil binary at ${binary}`, { where: { binary } });
  }

  mkdirSync(stateDir, { recursive: true });
  const statePath = join(stateDir, ANVIL_STATE_FILE);
  prepareStateFile(statePath, log);

  const args = [
    '--host', '127.0.0.1',
    '--port', String(port),
    '--chain-id', String(ANVIL_CHAIN_ID),
    // anvil mines nothing by itself: the driver below mines and dumps from one loop, so a dump never runs while a
    // block is being mined. (anvil's own --state-interval dump reads its block list and its accounts under separate
    // locks: a block mined in between left a state whose contract storage recorded an anchor in a block that, after
    // a SIGKILL and reload, no longer held its log; seen once in CI's power-cut run.) --dump-state only covers a
    // graceful exit (SIGTERM after the driver stopped).
    '--no-mining',
    ...(existsSync(statePath) ? ['--load-state', statePath] : []),
    '--dump-state', statePath,
  ];
  const t0 = performance.now();
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });

  // Never outlive the parent: SIGTERM on a normal exit of this process, and a watchdog for the cases where no
  // 'exit' handler runs (SIGKILL, an unhandled signal): it waits for EOF on a pipe only we hold, then kills.
  const onParentExit = (): void => {
    child.kill('SIGTERM');
  };
  process.once('exit', onParentExit);
  const watchdog = startWatchdog(child);

  const tail: string[] = [];
  let resolveListening: (p: number) => void = () => {};
  const listening = new Promise<number>((resolve) => {
    resolveListening = resolve;
  });
  const onLine = (line: string): void => {
    tail.push(line);
    if (tail.length > 20) tail.shift();
    log(line);
    const m = /Listening on 127\.0\.0\.1:(\d+)/.exec(line);
    if (m !== null) resolveListening(Number(m[1]));
  };
  if (child.stdout !== null) createInterface({ input: child.stdout }).on('line', onLine);
  if (child.stderr !== null) createInterface({ input: child.stderr }).on('line', onLine);

  const cleanup = (): void => {
    process.removeListener('exit', onParentExit);
    watchdog?.kill('SIGKILL');
  };
  void exited.then(cleanup);

  let driver: Driver | undefined;
  void exited.then(() => driver?.halt());
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await driver?.halt();
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      cleanup();
    })();
    return stopping;
  };

  try {
    const spawnError = new Promise<never>((_, reject) => {
      child.once('error', (cause) => {
        reject(new AnchorError('ANCHOR_NODE_ERROR', `cannot run ${binary}`, { cause, where: { binary } }));
      });
    });
    const earlyExit = exited.then(({ code, signal }) => {
      throw new AnchorError('ANCHOR_NODE_ERROR', `anvil exited during start (code ${code}, signal ${signal}): ${tail.join(' | ')}`, {
        where: { code, signal, stateDir },
      });
    });
    const deadline = Date.now() + startTimeoutMs;
    const timeout = new Promise<never>((_, reject) => {
      const timer = setTimeout(
        () => reject(new AnchorError('ANCHOR_NODE_ERROR', `anvil did not start within ${startTimeoutMs} ms`, { where: { stateDir } })),
        startTimeoutMs,
      );
      void exited.finally(() => clearTimeout(timer));
      void listening.finally(() => clearTimeout(timer));
    });
    const boundPort = await Promise.race([listening, spawnError, earlyExit, timeout]);
    const rpcUrl = `http://127.0.0.1:${boundPort}`;
    const chainId = await Promise.race([waitForChainId(rpcUrl, deadline), spawnError, earlyExit]);
    if (chainId !== ANVIL_CHAIN_ID) {
      throw new AnchorError('ANCHOR_NODE_ERROR', `anvil serves chain ${chainId}, expected ${ANVIL_CHAIN_ID}`, { where: { chainId } });
    }
    if (child.pid === undefined) throw new AnchorError('ANCHOR_NODE_ERROR', 'anvil has no pid');
    driver = startDriver(rpcUrl, statePath, options.blockTimeSec, stateIntervalSec, log);
    const started = driver;
    return { rpcUrl, chainId, pid: child.pid, startupMs: performance.now() - t0, persist: () => started.persist(), stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

interface Driver {
  /** Stops the loop after its current step; resolves once no mine or dump is in flight. */
  halt(): Promise<void>;
  /** Asks the loop for a dump at its next step; resolves once written, rejects with what failed (or a halt). */
  persist(): Promise<void>;
}

/** Driver tick in automine mode: how often the transaction pool is looked at. */
const AUTOMINE_TICK_MS = 50;

/**
 * Mines and dumps anvil's state from one loop, one step at a time. With `blockTimeSec` a block is mined every that
 * many seconds (empty or not, as anvil --block-time does, so anchors gain confirmations); without it, a block is
 * mined as soon as the pool holds a transaction (anvil's automine, within one tick). Every `stateIntervalSec` the
 * state is taken with anvil_dumpState (gzipped JSON, the format --load-state reads once unzipped) and written to
 * `statePath` atomically: a temporary file, fsync, rename. Errors (anvil gone, killed) end nothing: the loop keeps
 * trying until halted, and the caller's exit handling reports a dead node.
 */
function startDriver(rpcUrl: string, statePath: string, blockTimeSec: number | undefined, stateIntervalSec: number, log: (line: string) => void): Driver {
  const tickMs = blockTimeSec === undefined ? AUTOMINE_TICK_MS : Math.max(1, Math.round(blockTimeSec * 1000));
  const dumpEvery = Math.max(1, Math.round((stateIntervalSec * 1000) / tickMs));
  let halted = false;
  let wake: (() => void) | undefined;
  const call = async (method: string): Promise<unknown> => {
    const response = await fetch(rpcUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params: [] }),
      signal: AbortSignal.timeout(10_000),
    });
    const body = (await response.json()) as { result?: unknown; error?: { message?: string } };
    if (body.error !== undefined) throw new Error(`${method}: ${body.error.message ?? 'error'}`);
    return body.result;
  };
  let lastError = '';
  /** Callers of persist() waiting for the next dump. */
  let waiting: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  const loop = (async () => {
    for (let tick = 1; !halted; tick++) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, tickMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      if (halted) break;
      try {
        if (blockTimeSec !== undefined) {
          await call('evm_mine');
        } else {
          const pool = (await call('txpool_status')) as { pending?: string } | undefined;
          if (pool?.pending !== undefined && Number.parseInt(pool.pending, 16) > 0) await call('evm_mine');
        }
        const asked = waiting;
        if (tick % dumpEvery === 0 || asked.length > 0) {
          waiting = [];
          try {
            const dump = await call('anvil_dumpState');
            if (typeof dump !== 'string' || !dump.startsWith('0x')) throw new Error('anvil_dumpState answered no hex');
            writeAtomically(statePath, gunzipSync(Buffer.from(dump.slice(2), 'hex')));
          } catch (e) {
            for (const w of asked) w.reject(e);
            throw e;
          }
          for (const w of asked) w.resolve();
        }
        lastError = '';
      } catch (e) {
        const message = e instanceof Error ? e.message : String(e);
        if (message !== lastError) log(`stele: chain driver: ${message}`);
        lastError = message;
      }
    }
  })();
  return {
    halt: async () => {
      halted = true;
      wake?.();
      await loop;
      for (const w of waiting.splice(0)) w.reject(new Error('the chain driver stopped before the state was dumped'));
    },
    persist: () =>
      new Promise<void>((resolve, reject) => {
        if (halted) return reject(new Error('the chain driver is stopped'));
        waiting.push({ resolve, reject });
        wake?.();
      }),
  };
}

/** Writes `bytes` to `path` so that a reader (or a SIGKILL) sees the old file or the new one, never a torn one. */
function writeAtomically(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, bytes);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/** Polls eth_chainId until it answers (anvil prints "Listening" once bound, so this is usually the first try). */
async function waitForChainId(rpcUrl: string, deadline: number): Promise<number> {
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(rpcUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
        signal: AbortSignal.timeout(Math.max(1, deadline - Date.now())),
      });
      const body = (await response.json()) as { result?: unknown };
      if (typeof body.result === 'string') return Number.parseInt(body.result, 16);
      lastError = new Error(`eth_chainId answered ${JSON.stringify(body)}`);
    } catch (e) {
      lastError = e;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new AnchorError('ANCHOR_NODE_ERROR', `anvil at ${rpcUrl} did not answer eth_chainId`, { cause: lastError, where: { rpcUrl } });
}

/**
 * anvil writes its state file in place (not write-then-rename), so a SIGKILL in the middle of a dump can leave a
 * truncated file, and anvil refuses to start on it. Keep the last file that parsed as `.bak` and fall back to it.
 */
function prepareStateFile(statePath: string, log: (line: string) => void): void {
  const backup = `${statePath}.bak`;
  if (!existsSync(statePath)) return;
  try {
    JSON.parse(readFileSync(statePath, 'utf8'));
    copyFileSync(statePath, backup);
  } catch {
    const aside = `${statePath}.corrupt-${Date.now()}`;
    renameSync(statePath, aside);
    if (existsSync(backup)) {
      copyFileSync(backup, statePath);
      log(`stele: ${statePath} was unreadable (moved to ${aside}); restored the state of the previous start`);
    } else {
      log(`stele: ${statePath} was unreadable (moved to ${aside}); starting a new chain`);
    }
  }
}

/** A `sh` that kills anvil when its stdin (a pipe held only by this process) closes, i.e. when we die. */
function startWatchdog(child: ChildProcess): ChildProcess | undefined {
  if (process.platform === 'win32' || child.pid === undefined) return undefined;
  const watchdog = spawn('sh', ['-c', 'read _ignored; kill -TERM "$1" 2>/dev/null', 'stele-anvil-watchdog', String(child.pid)], {
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  watchdog.on('error', () => {}); // no sh: the 'exit' handler still covers normal exits
  watchdog.stdin?.on('error', () => {});
  watchdog.unref();
  (watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  return watchdog;
}
