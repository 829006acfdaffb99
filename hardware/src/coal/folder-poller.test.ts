import { mkdir, mkdtemp, readFile, rename, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { toHex, sha256 } from '@stele/core';
import { CoalError } from './errors.ts';
import { type ExportFile, ExportFolderPoller } from './folder-poller.ts';
import { parseRunCsv } from './run-csv.ts';

// Fixtures: small CSV files written into a fresh temp folder by each test; the clock is a variable the test moves.
const enc = (s: string) => new TextEncoder().encode(s);
const RUN = (id: string, state = 2) => `SampleID,Timestamp,State,Units,HOC\r\n${id},03/01/24 09:00:00,${state},0,24.1234\r\n`;

let dir: string;
let exportDir: string;
let stateFile: string;
let now: number;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stele-coal-'));
  exportDir = join(dir, 'export');
  await mkdir(exportDir);
  stateFile = join(dir, 'poller-state.json');
  now = 1_000_000;
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function poller(extra: Partial<ConstructorParameters<typeof ExportFolderPoller>[0]> = {}) {
  return new ExportFolderPoller({ dir: exportDir, stateFile, settleMs: 1000, now: () => now, ...extra });
}
const collect = (into: ExportFile[]) => (f: ExportFile) => {
  into.push(f);
};

describe('ExportFolderPoller', () => {
  it('hands a new file over once it has stayed unchanged for settleMs across two polls, with its digest', async () => {
    await writeFile(join(exportDir, 'a.csv'), RUN('HY1'));
    const p = poller();
    const seen: ExportFile[] = [];
    expect((await p.pollOnce(collect(seen))).pending).toEqual(['a.csv']); // first sight
    now += 500;
    expect((await p.pollOnce(collect(seen))).pending).toEqual(['a.csv']); // not settled yet
    now += 600;
    const r = await p.pollOnce(collect(seen));
    expect(r.processed).toEqual(['a.csv']);
    expect(seen).toHaveLength(1);
    expect(toHex(seen[0]!.sha256)).toBe(toHex(sha256(enc(RUN('HY1')))));
    now += 5000;
    expect((await p.pollOnce(collect(seen))).processed).toEqual([]); // processed once
  });

  it('restarts the settle time when a file keeps growing', async () => {
    const path = join(exportDir, 'grow.csv');
    await writeFile(path, 'SampleID,Timestamp');
    const p = poller();
    const seen: ExportFile[] = [];
    await p.pollOnce(collect(seen));
    now += 2000;
    await writeFile(path, RUN('HY2'));
    await utimes(path, new Date(now), new Date(now + 1)); // make the change visible even on coarse mtime
    expect((await p.pollOnce(collect(seen))).pending).toEqual(['grow.csv']);
    now += 2000;
    expect((await p.pollOnce(collect(seen))).processed).toEqual(['grow.csv']);
    expect(new TextDecoder().decode(seen[0]!.bytes)).toBe(RUN('HY2'));
  });

  it('does not re-emit after a restart (state persisted) and re-emits a file rewritten with new content', async () => {
    const path = join(exportDir, 'a.csv');
    await writeFile(path, RUN('HY1'));
    const seen: ExportFile[] = [];
    const p1 = poller({ writerRenames: true });
    expect((await p1.pollOnce(collect(seen))).processed).toEqual(['a.csv']);
    const p2 = poller({ writerRenames: true }); // a new process
    expect((await p2.pollOnce(collect(seen))).processed).toEqual([]);
    await writeFile(path, RUN('HY1-corrected'));
    await utimes(path, new Date(now + 10_000), new Date(now + 10_000));
    expect((await p2.pollOnce(collect(seen))).processed).toEqual(['a.csv']);
    expect(seen.map((f) => new TextDecoder().decode(f.bytes))).toEqual([RUN('HY1'), RUN('HY1-corrected')]);
    const state = JSON.parse(await readFile(stateFile, 'utf8')) as { v: number; digests: string[] };
    expect(state.v).toBe(1);
    expect(state.digests).toHaveLength(2);
  });

  it('is atomic-rename aware: ignores the writer temp name, takes the renamed file at once, and treats a renamed copy as a duplicate', async () => {
    const seen: ExportFile[] = [];
    const p = poller({ writerRenames: true });
    await writeFile(join(exportDir, 'b.csv.tmp'), RUN('HY3').slice(0, 10));
    await writeFile(join(exportDir, '~$b.csv'), 'lock');
    expect(await p.pollOnce(collect(seen))).toMatchObject({ processed: [], pending: [] });
    await writeFile(join(exportDir, 'b.csv.tmp'), RUN('HY3'));
    await rename(join(exportDir, 'b.csv.tmp'), join(exportDir, 'b.csv'));
    expect((await p.pollOnce(collect(seen))).processed).toEqual(['b.csv']);
    await rename(join(exportDir, 'b.csv'), join(exportDir, 'archived-b.csv'));
    const r = await p.pollOnce(collect(seen));
    expect(r.duplicates).toEqual(['archived-b.csv']);
    expect(seen).toHaveLength(1);
  });

  it('records a file the handler rejects with a CoalError and does not retry it; retries other failures', async () => {
    await writeFile(join(exportDir, 'bad.csv'), 'no,header,here\n');
    await writeFile(join(exportDir, 'good.csv'), RUN('HY4'));
    await utimes(join(exportDir, 'bad.csv'), new Date(1000), new Date(1000)); // bad is older: handled first
    const p = poller({ writerRenames: true });
    const handler = (f: ExportFile) => {
      parseRunCsv(f.bytes, undefined, { file: f.name });
    };
    const r1 = await p.pollOnce(handler);
    expect(r1.rejected.map((x) => [x.name, x.error.code])).toEqual([['bad.csv', 'COAL_BAD_HEADER']]);
    expect(r1.processed).toEqual(['good.csv']);
    expect((await p.pollOnce(handler)).rejected).toEqual([]);

    await writeFile(join(exportDir, 'c.csv'), RUN('HY5'));
    let calls = 0;
    const flaky = () => {
      calls++;
      if (calls === 1) throw new Error('outbox unavailable');
    };
    const r2 = await p.pollOnce(flaky);
    expect(r2.failed.map((x) => x.name)).toEqual(['c.csv']);
    expect((await p.pollOnce(flaky)).processed).toEqual(['c.csv']);
  });

  it('refuses a corrupt state file with COAL_STATE_CORRUPT instead of starting over', async () => {
    await writeFile(stateFile, '{"v":1,"files":');
    const err = await poller().pollOnce(() => undefined).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CoalError);
    expect((err as CoalError).code).toBe('COAL_STATE_CORRUPT');
  });

  it('rejects an oversize file with COAL_OVERSIZE without reading it', async () => {
    await writeFile(join(exportDir, 'big.csv'), 'x'.repeat(2000));
    const r = await poller({ writerRenames: true, maxBytes: 1000 }).pollOnce(() => {
      throw new Error('must not be called');
    });
    expect(r.rejected.map((x) => x.error.code)).toEqual(['COAL_OVERSIZE']);
  });
});
