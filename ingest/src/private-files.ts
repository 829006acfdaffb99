/**
 * Files that hold secrets or evidence (the store, keys, the admin token, anchor state) are created 0600 inside
 * 0700 folders, so that nobody but the service user reads or changes them.
 */
import { chmod, mkdir, open, rename, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { IngestError } from './errors.ts';

/** Creates `dir` (and parents) with mode 0700, and tightens an existing `dir` to 0700. */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
}

/** Writes `text` to `path` atomically (temp file + rename), mode 0600, in a 0700 folder. */
export async function writePrivateFile(path: string, text: string | Uint8Array): Promise<void> {
  await ensurePrivateDir(dirname(path));
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const h = await open(tmp, 'wx', 0o600);
  try {
    await h.writeFile(text);
    await h.sync();
  } finally {
    await h.close();
  }
  await rename(tmp, path);
}

/**
 * Refuses a secret file (PIN, key, token) that group or others may read: INGEST_FILE_MODE with the fix to run.
 */
export async function assertPrivateFile(path: string, what: string): Promise<void> {
  if (process.platform === 'win32') return;
  let mode: number;
  try {
    mode = (await stat(path)).mode & 0o777;
  } catch {
    return; // missing files are reported by whoever reads them
  }
  if ((mode & 0o077) !== 0) {
    throw new IngestError('INGEST_FILE_MODE', `${what} ${path} is readable by others (mode ${mode.toString(8)}): run \`chmod 600 ${path}\``, { where: { path, mode } });
  }
}
