/**
 * bench/src/pin.ts: how `ingest-throughput --pin` splits the CPUs, and that a pinned process (every thread of it)
 * is held to its CPUs, read back from /proc. Skipped where taskset is missing (not Linux), except under CI=true.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { pin, splitOf } from './pin.ts';

const hasTaskset = spawnSync('taskset', ['--version']).error === undefined;

describe('bench CPU split', () => {
  it('gives the workers the last CPUs and leaves the load at least one', () => {
    expect(splitOf(2, 1)).toEqual({ worker: '1', load: '0', all: '0-1' });
    expect(splitOf(8, 3)).toEqual({ worker: '5-7', load: '0-4', all: '0-7' });
    expect(splitOf(4, 3)).toEqual({ worker: '1-3', load: '0', all: '0-3' });
    // no CPU left for the load, or no worker: not pinned
    expect(splitOf(2, 2)).toBeUndefined();
    expect(splitOf(1, 1)).toBeUndefined();
    expect(splitOf(4, 0)).toBeUndefined();
  });

  it.skipIf(!hasTaskset && process.env['CI'] !== 'true')('holds every thread of a pinned process to its CPUs', async () => {
    // a node child with threads of its own (V8's and libuv's), pinned after it started
    const child = spawn(process.execPath, ['-e', "require('node:crypto').pbkdf2Sync('x', 'y', 1, 32, 'sha256'); console.log('ready'); setTimeout(() => {}, 30000)"], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
        child.on('exit', (code) => reject(new Error(`the child exited (${code})`)));
      });
      const allowed = (tid: string) => /^Cpus_allowed_list:\s*(\S+)$/m.exec(readFileSync(`/proc/${child.pid}/task/${tid}/status`, 'utf8'))?.[1];
      pin(child.pid!, '0');
      const tids = readdirSync(`/proc/${child.pid}/task`);
      expect(tids.length).toBeGreaterThan(1);
      for (const tid of tids) expect(allowed(tid)).toBe('0');
      expect(() => pin(child.pid!, '4096')).toThrow(/taskset/);
    } finally {
      child.kill();
    }
  });
});
