/**
 * The admin token of ingest's HTTP API (docs/ingest-api.md): a random secret in a file of mode 0600 (or stricter)
 * that every state-changing request carries as `Authorization: Bearer <token>`. Loopback is not trusted: any local
 * process and any web page the operator opens can reach 127.0.0.1.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { open, stat, writeFile } from 'node:fs/promises';
import { IngestError } from '../errors.ts';

/** A token file is at most this large (it holds one line). */
const MAX_TOKEN_FILE_BYTES = 1024;
const MIN_TOKEN_LENGTH = 32;

/**
 * Reads the token from `path`, creating the file (mode 0600, 32 random bytes as base64url) when it is missing.
 * INGEST_ADMIN_TOKEN_ERROR when the file is readable by group or others, too large, or holds a short token.
 */
export async function loadOrCreateAdminToken(path: string): Promise<string> {
  try {
    await writeFile(path, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new IngestError('INGEST_ADMIN_TOKEN_ERROR', `cannot create the admin token file ${path}`, { cause: e, where: { path } });
  }
  return readAdminToken(path);
}

/** Reads an existing token file with the same checks (what `stele ingest enrol` sends). */
export async function readAdminToken(path: string): Promise<string> {
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    throw new IngestError('INGEST_ADMIN_TOKEN_ERROR', `cannot read the admin token file ${path}`, { cause: e, where: { path } });
  }
  if (!st.isFile()) throw new IngestError('INGEST_ADMIN_TOKEN_ERROR', `the admin token ${path} is not a file`, { where: { path } });
  if ((st.mode & 0o077) !== 0) {
    throw new IngestError('INGEST_ADMIN_TOKEN_ERROR', `the admin token file ${path} is readable by others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`, { where: { path } });
  }
  if (st.size > MAX_TOKEN_FILE_BYTES) throw new IngestError('INGEST_ADMIN_TOKEN_ERROR', `the admin token file ${path} is larger than ${MAX_TOKEN_FILE_BYTES} bytes`, { where: { path } });
  const fh = await open(path, 'r');
  let text: string;
  try {
    const buf = Buffer.alloc(MAX_TOKEN_FILE_BYTES + 1);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    text = buf.subarray(0, bytesRead).toString('utf8').trim();
  } finally {
    await fh.close();
  }
  if (text.length < MIN_TOKEN_LENGTH || /\s/.test(text)) throw new IngestError('INGEST_ADMIN_TOKEN_ERROR', `the admin token in ${path} must be one word of at least ${MIN_TOKEN_LENGTH} characters`, { where: { path } });
  return text;
}

/** Constant-time check of an `Authorization` header against the token. */
export function checkBearer(header: string | undefined, token: string): boolean {
  if (header === undefined || !header.startsWith('Bearer ')) return false;
  const got = Buffer.from(header.slice('Bearer '.length).trim());
  const want = Buffer.from(token);
  return got.length === want.length && timingSafeEqual(got, want);
}
