/**
 * `stele gateway rotate-key` and `stele gateway reinstall` (docs/keys.md, "Lifecycle"): the gateway's two
 * lifecycle statements, written into its outbox with the agent stopped (the outbox is one process's), and sent by
 * the agent when it starts again. Ingest may be running or not: it judges them when they arrive.
 *
 * rotate-key: a rotation statement signed by the key in use announces a new key; for a software key the new key
 * takes the configured path and the old one is kept beside it as `<path>.retired-<kid prefix>`.
 *
 * reinstall: a new SD card (empty outbox, same key) resumes from the head ingest signed: the head statement and a
 * receipt for it from ingest's admin API (GET /devices/<id>/head-proof), checked against the ingest key the
 * installer pins (--ingest-key), never from the installer's word. Today that is a receipt (FORMAT.md §5); the signed
 * confirmations of ingest's acks will serve the same purpose without a batch.
 */
import { access, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { parseArgs } from 'node:util';
import { fromBase64Url, toBase64Url, equalBytes, SteleError, assertP256PublicKey, keyIdOf } from '@stele/core';
import { parseReceipt, parseStatement, verifyReceipt, verifyStatementSignature } from '@stele/core/cose';
import { isLifecycleStatement, parseLifecycleStatement, verifyLifecycleSignature } from '@stele/core/lifecycle';
import { hashLeaf } from '@stele/core/rfc9162';
import { createSoftwareKey, Pkcs11Signer } from '@stele/device';
import { join } from 'node:path';
import { loadConfig, type KeyConfig } from './config/config.ts';
import { Outbox } from './outbox.ts';
import { reinstallAgent, rotateKey } from './rotation.ts';
import { openSigner } from './run/signer.ts';

export interface LifecycleIo {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
}

export const ROTATE_USAGE = `usage: stele gateway rotate-key [--config FILE]

Stop the agent first (systemctl stop stele-gateway). Makes a new key, writes a rotation statement signed by the
current key into the outbox, and switches the config to the new key. Start the agent: it sends the rotation, then
signs with the new key.
  software   the new key goes to key.software.path; the old one stays beside it as <path>.retired-<kid>
  pkcs11     (SoftHSM, TPM via tpm2-pkcs11, secure element) the new key is made on the same token under the label
             <keyLabel>-r<UTC time>; key.pkcs11.keyLabel and keyId in the config are rewritten to it (comments
             kept); the old key stays on the token
`;

export const REINSTALL_USAGE = `usage: stele gateway reinstall [--config FILE] --ingest-url URL --ingest-key KEY

For a gateway whose outbox was lost (new SD card) but whose key is intact. Asks ingest for the head it committed
for this gateway, checks it (the head statement under this gateway's key history, a receipt signed by the ingest
key), and starts the empty outbox with a reinstall statement after it. Stop the agent first.

  --ingest-url URL   ingest's admin endpoint (its --health-port), e.g. http://10.0.0.5:9200
  --ingest-key KEY   the ingest public key (base64url, as \`stele ingest init\` printed it): pinned, not fetched
`;

function fail(io: LifecycleIo, cmd: string, err: unknown): number {
  const e = err as { code?: string; message?: string };
  io.stderr.write(`stele gateway ${cmd}: ${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}\n`);
  if (e.code === 'OUTBOX_LOCKED') io.stderr.write('  fix: stop the agent first (sudo systemctl stop stele-gateway), then run this again\n');
  return 1;
}

function args(argv: string[], options: Record<string, { type: 'string' }>, usage: string, io: LifecycleIo): Record<string, string | boolean | undefined> | number {
  try {
    const { values } = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true });
    if (values.help === true) {
      io.stdout.write(usage);
      return 0;
    }
    return values as Record<string, string | boolean | undefined>;
  } catch (err) {
    io.stderr.write(`${(err as Error).message}\n\n${usage}`);
    return 2;
  }
}

export async function cmdRotateKey(argv: string[], io: LifecycleIo, configFile: (v: Record<string, unknown>) => string): Promise<number> {
  const v = args(argv, { config: { type: 'string' } }, ROTATE_USAGE, io);
  if (typeof v === 'number') return v;
  try {
    const file = configFile(v);
    const config = await loadConfig(file);
    if (config.key.backend === 'pkcs11') return await rotatePkcs11(file, config.gateway.id, config.key, join(config.gateway.dataDir, 'outbox'), io);
    const path = config.key.path;
    const old = await openSigner(config.key);
    const fresh = `${path}.new`;
    try {
      await access(fresh);
      throw new SteleError('ROTATE_IN_PROGRESS', `${fresh} exists: an earlier rotate-key stopped half-way; inspect it, remove it, and run again`);
    } catch (err) {
      if (err instanceof SteleError) throw err;
    }
    const outbox = await Outbox.open(join(config.gateway.dataDir, 'outbox'));
    try {
      const next = await createSoftwareKey(fresh);
      const taken = await rotateKey(outbox, config.gateway.id, old, next);
      // The rotation is on disk: from now on only the new key may sign. Swap the files (old kept, never deleted).
      const retired = `${path}.retired-${toBase64Url(old.keyId).slice(0, 12)}`;
      await rename(path, retired);
      await rename(fresh, path);
      io.stdout.write(
        `rotated ${config.gateway.id} at seq ${taken.seq}: old kid ${toBase64Url(old.keyId)} (kept at ${retired})\n` +
          `new kid ${toBase64Url(next.keyId)} at ${path}; start the agent to send the rotation\n`,
      );
      return 0;
    } finally {
      await outbox.close();
    }
  } catch (err) {
    return fail(io, 'rotate-key', err);
  }
}

/**
 * rotate-key for a key on a PKCS#11 token: a new key pair on the same token (never extractable), the rotation
 * signed by the old key, then the config's key.pkcs11 keyLabel/keyId rewritten to the new key (yaml Document
 * edit, comments kept, written to a temp file and renamed). The rotation is on disk before the config changes: if
 * the rewrite fails, the message gives the two values to set by hand (until then ingest would refuse the old key's
 * readings with KEY_ROTATED_ERROR, and nothing is lost: they stay in the outbox).
 */
async function rotatePkcs11(file: string, deviceId: string, key: Extract<KeyConfig, { backend: 'pkcs11' }>, outboxDir: string, io: LifecycleIo): Promise<number> {
  const old = await openSigner(key);
  const outbox = await Outbox.open(outboxDir);
  try {
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, 'Z');
    const label = `${key.keyLabel ?? 'stele-device'}-r${stamp}`;
    const next = await Pkcs11Signer.generate({ backend: key.kind, module: key.module, tokenLabel: key.token, pin: key.pin, keyLabel: label });
    try {
      const taken = await rotateKey(outbox, deviceId, old, next);
      try {
        const text = await readFile(file, 'utf8');
        const doc = parseDocument(text);
        doc.setIn(['key', 'pkcs11', 'keyLabel'], label);
        doc.setIn(['key', 'pkcs11', 'keyId'], next.tokenKeyId);
        const tmp = `${file}.rotate-${process.pid}`;
        await writeFile(tmp, String(doc), { mode: (await stat(file)).mode & 0o777 });
        await rename(tmp, file);
      } catch (cause) {
        throw new SteleError('ROTATE_CONFIG_NOT_UPDATED', `the rotation is in the outbox (seq ${taken.seq}) but ${file} could not be rewritten: set key.pkcs11.keyLabel: ${label} and keyId: ${next.tokenKeyId} by hand before starting the agent`, { cause });
      }
      io.stdout.write(
        `rotated ${deviceId} at seq ${taken.seq}: old kid ${toBase64Url(old.keyId)} (stays on token ${key.token})\n` +
          `new kid ${toBase64Url(next.keyId)}: label ${label}, id ${next.tokenKeyId}; ${file} now names it; start the agent to send the rotation\n`,
      );
      return 0;
    } finally {
      await next.close();
    }
  } finally {
    await outbox.close();
    await old.close?.();
  }
}

export async function cmdReinstall(argv: string[], io: LifecycleIo, configFile: (v: Record<string, unknown>) => string): Promise<number> {
  const v = args(argv, { config: { type: 'string' }, 'ingest-url': { type: 'string' }, 'ingest-key': { type: 'string' } }, REINSTALL_USAGE, io);
  if (typeof v === 'number') return v;
  const url = v['ingest-url'];
  const keyText = v['ingest-key'];
  if (typeof url !== 'string' || !/^https?:\/\//.test(url) || typeof keyText !== 'string') {
    io.stderr.write(`stele gateway reinstall: give --ingest-url URL and --ingest-key KEY\n\n${REINSTALL_USAGE}`);
    return 2;
  }
  try {
    const ingestKey = fromBase64Url(keyText);
    assertP256PublicKey(ingestKey);
    const config = await loadConfig(configFile(v));
    const signer = await openSigner(config.key);
    const outbox = await Outbox.open(join(config.gateway.dataDir, 'outbox'));
    try {
      if (outbox.head().seq !== 0) {
        throw new SteleError('REINSTALL_OUTBOX_NOT_EMPTY', `the outbox already holds seq 1..${outbox.head().seq}: reinstall is for an empty outbox (a new SD card)`);
      }
      const head = await fetchSignedHead(url, config.gateway.id, ingestKey, signer.keyId, signer.publicKey);
      const taken = await reinstallAgent(outbox, config.gateway.id, signer, head);
      io.stdout.write(`reinstalled ${config.gateway.id}: resumes after seq ${head.seq} (ingest-signed head), reinstall statement at seq ${taken.seq}\n`);
      return 0;
    } finally {
      await outbox.close();
      await signer.close?.();
    }
  } catch (err) {
    return fail(io, 'reinstall', err);
  }
}

const bad = (message: string, where?: Record<string, unknown>): never => {
  throw new SteleError('REINSTALL_HEAD_UNVERIFIED', message, where === undefined ? undefined : { where });
};

/**
 * The device's committed head as ingest signed it: the head statement, included by a receipt that verifies under
 * the pinned ingest key, naming this device; a reading statement signed by this gateway's key is also checked
 * under that key. Returns the seq and the chain digest the next statement links to.
 */
export async function fetchSignedHead(url: string, deviceId: string, ingestKey: Uint8Array, ownKid: Uint8Array, ownKey: Uint8Array): Promise<{ seq: number; digest: Uint8Array }> {
  let res: Response;
  let body: Record<string, unknown>;
  // 409 INGEST_NOT_ANCHORED: the head is not in a batch yet; ingest cuts one every batch interval.
  for (let attempt = 0; ; attempt++) {
    res = await fetch(`${url.replace(/\/$/, '')}/devices/${encodeURIComponent(deviceId)}/head-proof`);
    body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (res.status !== 409 || attempt >= 60) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  if (!res.ok) throw new SteleError(typeof body.code === 'string' ? body.code : 'REINSTALL_HEAD_UNAVAILABLE', typeof body.error === 'string' ? body.error : `HTTP ${res.status}`);
  const seq = body.seq;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) return bad('head seq is not an integer');
  if (seq === 0) return { seq: 0, digest: new Uint8Array(32) };
  if (typeof body.statement !== 'string' || typeof body.receipt !== 'string') return bad('the head comes without its statement and receipt');
  const statement = fromBase64Url(body.statement);
  const receipt = parseReceipt(fromBase64Url(body.receipt));
  if (!equalBytes(receipt.kid, keyIdOf(ingestKey))) bad('the receipt is not by the pinned ingest key');
  const { signatureValid } = await verifyReceipt(receipt, hashLeaf(statement), ingestKey);
  if (!signatureValid) bad('the receipt signature does not verify under the pinned ingest key');
  let digest: Uint8Array;
  let statementSeq: number | undefined;
  if (isLifecycleStatement(statement)) {
    const p = parseLifecycleStatement(statement);
    if (p.device !== deviceId) bad('the head statement names another device');
    if (equalBytes(p.kid, ownKid) && !(await verifyLifecycleSignature(p, ownKey))) bad('the head statement is not signed by this key');
    statementSeq = p.seq;
    digest = p.digest;
  } else {
    const p = parseStatement(statement);
    if (p.device !== deviceId) bad('the head statement names another device');
    if (p.batch !== undefined) bad('the head is part of a device-level batch: its chain digest is not signed on its own; wait for the next single reading');
    if (equalBytes(p.kid, ownKid) && !(await verifyStatementSignature(p, ownKey))) bad('the head statement is not signed by this key');
    statementSeq = p.seq;
    digest = p.payload;
  }
  if (statementSeq !== seq) bad('the head statement is not at the head seq', { seq, statementSeq });
  return { seq, digest };
}
