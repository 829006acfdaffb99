/**
 * Polls an instrument PC's export folder (a share mounted on the gateway, or a local folder the instrument
 * software writes to), which is how many Chinese lab instruments are read (PROTOCOLS.md §3.1).
 *
 * - New and changed files are found by listing the folder and comparing (size, mtime) with what was handled.
 * - Debounce: a file is handed over only when it has been seen unchanged on two polls at least `settleMs` apart,
 *   so a file still being written is not read half-way. With `writerRenames: true` (the writer writes a temp
 *   name and renames into place, which is atomic on one file system) a visible file is complete and is handed
 *   over on first sight; temp names (`.tmp`, `.part`, `~$…`, dot files) are never matched either way.
 * - Each content is processed once: files are keyed by SHA-256 of their bytes, so a renamed or re-copied file
 *   is not emitted again; a file rewritten with new content is.
 * - State (handled names and digests) is persisted atomically after each file, so a restart does not re-emit.
 *   At most the file being handled when the process died is offered again: handlers must be idempotent per
 *   digest (the edge agent's outbox is keyed by reading, so a duplicate shows as one more reading with the same
 *   raw digest, which a verifier can spot).
 * The clock is injectable; polls are driven by `pollOnce` (tests) or `run` (a timer loop).
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { toHex, sha256 } from '@stele/core';
import { CoalError } from './errors.ts';
import { loadJsonState, saveJsonState } from './state-file.ts';

export interface ExportFile {
  name: string;
  path: string;
  bytes: Uint8Array;
  /** SHA-256 of `bytes`. */
  sha256: Uint8Array;
  size: number;
  mtimeMs: number;
}

export interface FolderPollerOptions {
  dir: string;
  /** Where the poller keeps its state (JSON, written atomically). Put it outside `dir`. */
  stateFile: string;
  /** Which names to take. Default: `*.csv` (case-insensitive). */
  include?: RegExp;
  /** Names never taken (temp files of writers). Default: dot files, `~$…`, `*.tmp`, `*.part`, `*.partial`, `*.swp`, `*~`. */
  ignore?: RegExp;
  /** Minimum time a file must stay unchanged before it is read, ms. Default 2000. */
  settleMs?: number;
  /** The writer renames complete files into place: take a file on first sight. Default false. */
  writerRenames?: boolean;
  /** Largest file read, bytes; larger files are rejected with COAL_OVERSIZE. Default 16 MiB. */
  maxBytes?: number;
  /** Digests remembered (oldest forgotten first). Default 100 000. */
  maxRemembered?: number;
  /** Clock, ms. Default Date.now. */
  now?: () => number;
}

export interface FolderPollReport {
  /** Handed to the handler and accepted. */
  processed: string[];
  /** Same content as a file handled before (renamed, copied again, or restart): not handed over. */
  duplicates: string[];
  /** The handler threw a CoalError (bad file): recorded, not retried until the content changes. */
  rejected: { name: string; error: CoalError }[];
  /** The handler threw anything else: not recorded, offered again next poll. Polling of this round stops there. */
  failed: { name: string; error: unknown }[];
  /** Seen but not yet settled. */
  pending: string[];
}

interface FileState {
  size: number;
  mtimeMs: number;
  sha256: string;
  outcome: 'processed' | 'rejected' | 'duplicate';
}
interface PollerState {
  v: 1;
  files: Record<string, FileState>;
  digests: string[];
}

const DEFAULT_IGNORE = /^\.|^~\$|\.(tmp|part|partial|swp)$|~$/i;

function isPollerState(v: unknown): v is PollerState {
  if (v === null || typeof v !== 'object') return false;
  const s = v as Partial<PollerState>;
  return s.v === 1 && s.files !== null && typeof s.files === 'object' && Array.isArray(s.digests) && s.digests.every((d) => typeof d === 'string');
}

export class ExportFolderPoller {
  private state: PollerState | undefined;
  private digests = new Set<string>();
  private readonly pending = new Map<string, { size: number; mtimeMs: number; since: number }>();
  private busy = false;
  private readonly o: Required<FolderPollerOptions>;

  constructor(options: FolderPollerOptions) {
    if (typeof options?.dir !== 'string' || typeof options.stateFile !== 'string') throw new TypeError('options.dir and options.stateFile must be paths');
    this.o = {
      dir: options.dir,
      stateFile: options.stateFile,
      include: options.include ?? /\.csv$/i,
      ignore: options.ignore ?? DEFAULT_IGNORE,
      settleMs: options.settleMs ?? 2000,
      writerRenames: options.writerRenames ?? false,
      maxBytes: options.maxBytes ?? 16 * 1024 * 1024,
      maxRemembered: options.maxRemembered ?? 100_000,
      now: options.now ?? Date.now,
    };
    if (!(this.o.settleMs >= 0)) throw new RangeError('options.settleMs must be >= 0');
  }

  private async loaded(): Promise<PollerState> {
    if (this.state === undefined) {
      this.state = (await loadJsonState(this.o.stateFile, isPollerState)) ?? { v: 1, files: {}, digests: [] };
      this.digests = new Set(this.state.digests);
    }
    return this.state;
  }

  private async record(name: string, entry: FileState, remember = true): Promise<void> {
    const state = await this.loaded();
    state.files[name] = entry;
    if (remember && !this.digests.has(entry.sha256)) {
      this.digests.add(entry.sha256);
      state.digests.push(entry.sha256);
      while (state.digests.length > this.o.maxRemembered) this.digests.delete(state.digests.shift()!);
    }
    await saveJsonState(this.o.stateFile, state);
  }

  /**
   * One poll: list, debounce, read ready files (oldest mtime first) and hand each new content to `handler`.
   * Not re-entrant (a second call while one runs is a misuse: Error).
   */
  async pollOnce(handler: (file: ExportFile) => Promise<void> | void): Promise<FolderPollReport> {
    if (this.busy) throw new Error('pollOnce is already running');
    this.busy = true;
    try {
      return await this.poll(handler);
    } finally {
      this.busy = false;
    }
  }

  private async poll(handler: (file: ExportFile) => Promise<void> | void): Promise<FolderPollReport> {
    const state = await this.loaded();
    const report: FolderPollReport = { processed: [], duplicates: [], rejected: [], failed: [], pending: [] };
    const now = this.o.now();
    const entries = await readdir(this.o.dir, { withFileTypes: true });
    const present = new Set<string>();
    const ready: { name: string; size: number; mtimeMs: number }[] = [];
    for (const e of entries) {
      if (!e.isFile() || !this.o.include.test(e.name) || this.o.ignore.test(e.name)) continue;
      present.add(e.name);
      let st;
      try {
        st = await stat(join(this.o.dir, e.name));
      } catch {
        continue; // renamed or removed between readdir and stat
      }
      const known = state.files[e.name];
      if (known !== undefined && known.size === st.size && known.mtimeMs === st.mtimeMs) {
        this.pending.delete(e.name);
        continue;
      }
      const p = this.pending.get(e.name);
      if (this.o.writerRenames || (p !== undefined && p.size === st.size && p.mtimeMs === st.mtimeMs && now - p.since >= this.o.settleMs)) {
        ready.push({ name: e.name, size: st.size, mtimeMs: st.mtimeMs });
      } else {
        if (p === undefined || p.size !== st.size || p.mtimeMs !== st.mtimeMs) this.pending.set(e.name, { size: st.size, mtimeMs: st.mtimeMs, since: now });
        report.pending.push(e.name);
      }
    }
    for (const name of this.pending.keys()) if (!present.has(name)) this.pending.delete(name);
    let forgot = false;
    for (const name of Object.keys(state.files)) {
      if (!present.has(name)) {
        delete state.files[name]; // its digest stays remembered
        forgot = true;
      }
    }
    if (forgot) await saveJsonState(this.o.stateFile, state);

    ready.sort((a, b) => a.mtimeMs - b.mtimeMs || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const r of ready) {
      const path = join(this.o.dir, r.name);
      if (r.size > this.o.maxBytes) {
        const error = new CoalError('COAL_OVERSIZE', `${r.name} is ${r.size} bytes, limit ${this.o.maxBytes}`, { where: { file: r.name } });
        await this.record(r.name, { size: r.size, mtimeMs: r.mtimeMs, sha256: '', outcome: 'rejected' }, false);
        report.rejected.push({ name: r.name, error });
        continue;
      }
      let bytes: Uint8Array;
      try {
        bytes = new Uint8Array(await readFile(path));
        const after = await stat(path);
        if (after.size !== r.size || after.mtimeMs !== r.mtimeMs || bytes.length !== r.size) {
          this.pending.set(r.name, { size: after.size, mtimeMs: after.mtimeMs, since: now }); // changed while read
          report.pending.push(r.name);
          continue;
        }
      } catch {
        continue; // vanished (renamed away): it will show up under its new name
      }
      this.pending.delete(r.name);
      const digest = sha256(bytes);
      const hex = toHex(digest);
      const entry: FileState = { size: r.size, mtimeMs: r.mtimeMs, sha256: hex, outcome: 'processed' };
      if (this.digests.has(hex)) {
        await this.record(r.name, { ...entry, outcome: 'duplicate' });
        report.duplicates.push(r.name);
        continue;
      }
      try {
        await handler({ name: r.name, path, bytes, sha256: digest, size: r.size, mtimeMs: r.mtimeMs });
      } catch (error) {
        if (error instanceof CoalError) {
          await this.record(r.name, { ...entry, outcome: 'rejected' });
          report.rejected.push({ name: r.name, error });
          continue;
        }
        report.failed.push({ name: r.name, error });
        break;
      }
      await this.record(r.name, entry);
      report.processed.push(r.name);
    }
    return report;
  }

  /** Polls every `intervalMs` until the signal aborts; each report goes to `onReport`. */
  async run(handler: (file: ExportFile) => Promise<void> | void, options: { intervalMs: number; signal: AbortSignal; onReport?: (r: FolderPollReport) => void }): Promise<void> {
    const { intervalMs, signal } = options;
    if (!(intervalMs > 0)) throw new RangeError('options.intervalMs must be > 0');
    while (!signal.aborted) {
      const report = await this.pollOnce(handler);
      options.onReport?.(report);
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, intervalMs);
        function done() {
          clearTimeout(t);
          signal.removeEventListener('abort', done);
          resolve();
        }
        signal.addEventListener('abort', done, { once: true });
      });
    }
  }
}
