/**
 * A small JSON state file written atomically (temp file, fsync, rename, fsync of the directory), so that a power
 * cut leaves either the old or the new state, never half of one. A file that exists but does not parse is
 * COAL_STATE_CORRUPT: resetting it silently would re-emit every result as new.
 */
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CoalError } from './errors.ts';

export async function loadJsonState<T>(path: string, check: (value: unknown) => value is T): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new CoalError('COAL_STATE_CORRUPT', 'state file is not JSON', { cause, where: { path } });
  }
  if (!check(value)) throw new CoalError('COAL_STATE_CORRUPT', 'state file has the wrong shape', { where: { path } });
  return value;
}

let counter = 0;

export async function saveJsonState(path: string, value: unknown): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${++counter}.tmp`);
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(JSON.stringify(value));
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  // fsync the directory so the rename itself survives a power cut (best effort: not every FS allows it).
  try {
    const dh = await open(dirname(path), 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch {
    /* directory fsync unsupported */
  }
}
