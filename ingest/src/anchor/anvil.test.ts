import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { codeOf } from '@stele/testkit';
import { AnchorError, readAnchor } from '@stele/core/anchor';
import { ANVIL_STATE_FILE, startAnvil, type AnvilNode } from './anvil.ts';
import { ANVIL_DEV_PRIVATE_KEY, connectEvmAnchorer } from './evm-anchorer.ts';

/** The code of the AnchorError `p` rejects with. */
const anchorCodeOf = (p: Promise<unknown>) => codeOf(p, AnchorError);

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const FIXTURE = fileURLToPath(new URL('./anvil-child-fixture.ts', import.meta.url));

/** Alive and not a zombie (a reparented child may wait for a reaper in a container). */
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    if (existsSync('/proc/self/stat')) return false;
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `condition` every 20 ms, at most `tries` times. */
async function eventually(condition: () => boolean, tries = 250): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (condition()) return true;
    await sleep(20);
  }
  return condition();
}

describe('startAnvil', () => {
  const dirs: string[] = [];
  const nodes: AnvilNode[] = [];
  const tempDir = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'stele-anvil-'));
    dirs.push(d);
    return d;
  };
  const start = async (stateDir: string, log?: (line: string) => void): Promise<AnvilNode> => {
    const node = await startAnvil(log === undefined ? { stateDir } : { stateDir, log });
    nodes.push(node);
    return node;
  };

  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('answers on 127.0.0.1 with chain id 31337 and stops on stop()', async () => {
    const node = await start(tempDir());
    expect(node.rpcUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(node.chainId).toBe(31337);
    expect(isAlive(node.pid)).toBe(true);
    await node.stop();
    await node.stop(); // idempotent
    expect(isAlive(node.pid)).toBe(false);
  });

  it('rejects with ANCHOR_NODE_MISSING when the binary is not there', async () => {
    expect(await anchorCodeOf(startAnvil({ stateDir: tempDir(), binaryPath: '/nonexistent/anvil' }))).toBe('ANCHOR_NODE_MISSING');
  });

  describe('when stopped and started again with the same stateDir', () => {
    it('keeps the contract and the anchor readable', async () => {
      const dir = tempDir();
      const stateFile = join(dir, 'anchorer.json');
      const node1 = await start(join(dir, 'chain'));
      const anchorer1 = await connectEvmAnchorer({ rpcUrl: node1.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY, stateFile });
      const ref = await anchorer1.anchor(7, new Uint8Array(32).fill(7), 70);
      const before = await readAnchor(node1.rpcUrl, ref, 7);
      await node1.stop();

      const node2 = await start(join(dir, 'chain'));
      expect(await readAnchor(node2.rpcUrl, ref, 7)).toEqual(before);
      const anchorer2 = await connectEvmAnchorer({ rpcUrl: node2.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY, stateFile });
      expect(anchorer2.contract).toBe(anchorer1.contract);
      expect(await anchorer2.anchor(7, new Uint8Array(32).fill(7), 70)).toEqual(ref);
      const next = await anchorer2.anchor(8, new Uint8Array(32).fill(8), 80);
      expect(next.blockNumber).toBeGreaterThan(ref.blockNumber);
    });

    it('keeps the anchor after a SIGKILL once the periodic dump has run', async () => {
      const dir = tempDir();
      const chainDir = join(dir, 'chain');
      const node1 = await start(chainDir);
      const anchorer = await connectEvmAnchorer({ rpcUrl: node1.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY, stateFile: join(dir, 'a.json') });
      const ref = await anchorer.anchor(1, new Uint8Array(32).fill(1), 10);
      // Wait for a complete periodic dump (--state-interval 1) that holds the tx, then kill at once: the next dump
      // is about a second away, so the kill does not land in the middle of one.
      const dumped = await eventually(() => {
        try {
          return JSON.stringify(JSON.parse(readFileSync(join(chainDir, ANVIL_STATE_FILE), 'utf8'))).includes(ref.txHash.slice(2));
        } catch {
          return false; // not there yet, or caught mid-write
        }
      });
      expect(dumped).toBe(true);
      process.kill(node1.pid, 'SIGKILL');
      await node1.stop();

      const node2 = await start(chainDir);
      const facts = await readAnchor(node2.rpcUrl, ref, 1);
      expect(facts.size).toBe(10);
    });

    it('keeps a contract deployed on the first start through a SIGKILL before any periodic dump (persist() after the deploy)', async () => {
      const dir = tempDir();
      const chainDir = join(dir, 'chain');
      const stateFile = join(dir, 'a.json');
      // a periodic dump an hour away: only persist() can have written the state the second start loads
      const node1 = await startAnvil({ stateDir: chainDir, stateIntervalSec: 3600 });
      nodes.push(node1);
      const anchorer1 = await connectEvmAnchorer({ rpcUrl: node1.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY, stateFile, afterDeploy: () => node1.persist() });
      process.kill(node1.pid, 'SIGKILL');
      await node1.stop();

      const node2 = await start(chainDir);
      const anchorer2 = await connectEvmAnchorer({ rpcUrl: node2.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY, stateFile, deploy: 'never' });
      expect(anchorer2.contract).toBe(anchorer1.contract);
      await expect(node2.persist()).resolves.toBeUndefined();
      await node2.stop();
      await expect(node2.persist()).rejects.toThrow(/stopped/);
    });

    it('never reloads contract storage ahead of its blocks: each anchor it reports after a SIGKILL has its log', async () => {
      // Blocks and dumps every 100 ms while anchors stream in, SIGKILLed at 4 different moments: whatever survives
      // must be whole (the contract's record of a batch names a block that holds its Anchored log).
      const dir = tempDir();
      const chainDir = join(dir, 'chain');
      const stateFile = join(dir, 'a.json');
      let batchId = 0;
      for (let round = 0; round < 4; round++) {
        const node = await startAnvil({ stateDir: chainDir, blockTimeSec: 0.1, stateIntervalSec: 0.1 });
        nodes.push(node);
        const anchorer = await connectEvmAnchorer({ rpcUrl: node.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY, stateFile });
        for (let id = 1; id <= batchId; id++) {
          const root = new Uint8Array(32).fill(id);
          // anchor() of an existing batch looks it up through the contract's record and its log; a record without
          // its log is ANCHOR_NOT_FOUND, which this test exists to rule out.
          await anchorer.anchor(id, root, id);
        }
        // One anchor after another until the kill (an anchor() in flight then is left behind: its node is gone).
        let killed = false;
        void (async () => {
          while (!killed) {
            batchId++;
            await anchorer.anchor(batchId, new Uint8Array(32).fill(batchId), batchId);
          }
        })().catch(() => undefined);
        await sleep(300 + round * 200);
        killed = true;
        process.kill(node.pid, 'SIGKILL');
        await node.stop();
      }
      expect(batchId).toBeGreaterThan(4);
    }, 60_000);

    it('falls back to the state of the previous start when the state file is truncated', async () => {
      const dir = tempDir();
      const chainDir = join(dir, 'chain');
      const node1 = await start(chainDir);
      const anchorer = await connectEvmAnchorer({ rpcUrl: node1.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY, stateFile: join(dir, 'a.json') });
      const ref = await anchorer.anchor(3, new Uint8Array(32).fill(3), 30);
      await node1.stop();
      const node2 = await start(chainDir); // this start keeps the good file as .bak
      await node2.stop();
      const statePath = join(chainDir, ANVIL_STATE_FILE);
      writeFileSync(statePath, readFileSync(statePath, 'utf8').slice(0, 100)); // as if killed mid-dump

      const lines: string[] = [];
      const node3 = await start(chainDir, (line) => lines.push(line));
      expect(lines.some((l) => l.includes('restored'))).toBe(true);
      expect((await readAnchor(node3.rpcUrl, ref, 3)).size).toBe(30);
    });
  });

  describe('when the parent process goes away without stop()', () => {
    for (const mode of ['exit', 'wait'] as const) {
      it(mode === 'exit' ? 'stops anvil when the parent exits' : 'stops anvil when the parent is SIGKILLed', async () => {
        const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, tempDir(), mode], {
          cwd: REPO_ROOT,
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        const exited = new Promise<void>((r) => child.once('exit', () => r()));
        const firstLine = await new Promise<string>((resolve, reject) => {
          let buf = '';
          child.stdout.on('data', (d: Buffer) => {
            buf += d.toString();
            const nl = buf.indexOf('\n');
            if (nl >= 0) resolve(buf.slice(0, nl));
          });
          child.once('exit', () => reject(new Error('fixture exited before printing')));
        });
        const { pid } = JSON.parse(firstLine) as { pid: number };
        try {
          if (mode === 'wait') {
            expect(isAlive(pid)).toBe(true);
            child.kill('SIGKILL');
          }
          await exited;
          expect(await eventually(() => !isAlive(pid))).toBe(true);
        } finally {
          if (isAlive(pid)) process.kill(pid, 'SIGKILL');
          child.kill('SIGKILL');
        }
      });
    }
  });
});
