/**
 * Alert notices (FORMAT.md §15.9): what ingest sends on each notification channel, and how a receiver checks it.
 * The body is the alert (§15.7) wrapped with its issuer; each attempt is authenticated with an HMAC-SHA256 over a
 * timestamp and the body under a secret shared with the receivers of that channel (a webhook's secret, the MQTT
 * channel's secret), so a receiver acts only on notices from its ingest and can refuse stale replays.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { decodeCbor, encodeCbor, utf8 } from '@stele/core';
import type { Alert } from '@stele/core/alerts';
import { IngestError } from '../errors.ts';
import { assertPrivateFile } from '../private-files.ts';

export const NOTICE_FORMAT = 'stele-alert-notice/1';
/** A secret shorter than this is refused (HMAC-SHA256 keys: 32 bytes carry its full strength). */
export const MIN_SECRET_BYTES = 32;
const MAX_SECRET_BYTES = 4096;
/** Default age beyond which a receiver refuses a notice (replay window): 5 minutes. */
export const DEFAULT_NOTICE_TOLERANCE_MS = 5 * 60_000;
/** Largest MQTT notice payload a receiver reads (an alert names at most a day of minute readings, with room). */
export const MAX_NOTICE_BYTES = 1024 * 1024;

/** The body of a notice: UTF-8 JSON `{"format", "issuer", "alert"}`, fixed when the notice is queued. */
export function noticeBody(alert: Alert, issuer: string): Uint8Array {
  return utf8(JSON.stringify({ format: NOTICE_FORMAT, issuer, alert }));
}

/** HMAC-SHA256(secret, "stele-alert-notice/1" LF t LF body), t the decimal ms of the attempt. */
export function noticeMac(secret: Uint8Array, t: number, body: Uint8Array): Uint8Array {
  if (!Number.isSafeInteger(t) || t < 0) throw new RangeError('t must be a non-negative integer (ms)');
  const h = createHmac('sha256', secret);
  h.update(`${NOTICE_FORMAT}\n${t}\n`);
  h.update(body);
  return new Uint8Array(h.digest());
}

/** The webhook's headers for one attempt at time `t`. */
export function webhookHeaders(secret: Uint8Array, t: number, body: Uint8Array, alertId: string): Record<string, string> {
  return {
    'content-type': 'application/json',
    'stele-alert-id': alertId,
    'stele-timestamp': String(t),
    'stele-signature': `v1=${Buffer.from(noticeMac(secret, t, body)).toString('hex')}`,
  };
}

/** The MQTT payload of one attempt: deterministic CBOR `{"body": bstr, "mac": bstr(32), "t": uint}`. */
export function mqttNotice(secret: Uint8Array, t: number, body: Uint8Array): Uint8Array {
  return encodeCbor({ body, mac: noticeMac(secret, t, body), t });
}

export type NoticeCheck = { ok: true; body: Uint8Array; t: number; notice: { format: string; issuer: string; alert: Alert } } | { ok: false; reason: 'format' | 'mac' | 'stale' };

/** A receiver's check: the MAC in constant time, then the age (|now - t| <= toleranceMs), then the body's shape. */
export function checkNotice(secret: Uint8Array, t: number, mac: Uint8Array, body: Uint8Array, nowMs: number, toleranceMs = DEFAULT_NOTICE_TOLERANCE_MS): NoticeCheck {
  if (!Number.isSafeInteger(t) || t < 0 || mac.length !== 32) return { ok: false, reason: 'format' };
  if (!timingSafeEqual(noticeMac(secret, t, body), mac)) return { ok: false, reason: 'mac' };
  if (Math.abs(nowMs - t) > toleranceMs) return { ok: false, reason: 'stale' };
  let notice: unknown;
  try {
    notice = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    return { ok: false, reason: 'format' };
  }
  const n = notice as { format?: unknown; issuer?: unknown; alert?: { id?: unknown } };
  if (n === null || typeof n !== 'object' || n.format !== NOTICE_FORMAT || typeof n.issuer !== 'string' || typeof n.alert?.id !== 'string') return { ok: false, reason: 'format' };
  return { ok: true, body, t, notice: notice as { format: string; issuer: string; alert: Alert } };
}

/** A webhook receiver's check of one request (headers as Node gives them, lowercase). */
export function checkWebhookRequest(secret: Uint8Array, headers: Record<string, string | string[] | undefined>, body: Uint8Array, nowMs: number, toleranceMs?: number): NoticeCheck {
  const t = headers['stele-timestamp'];
  const sig = headers['stele-signature'];
  if (typeof t !== 'string' || !/^\d{1,16}$/.test(t) || typeof sig !== 'string' || !/^v1=[0-9a-f]{64}$/.test(sig)) return { ok: false, reason: 'format' };
  return checkNotice(secret, Number(t), new Uint8Array(Buffer.from(sig.slice(3), 'hex')), body, nowMs, toleranceMs);
}

/** An MQTT subscriber's check of one payload on the alerts topic. */
export function checkMqttNotice(secret: Uint8Array, payload: Uint8Array, nowMs: number, toleranceMs?: number): NoticeCheck {
  if (payload.length > MAX_NOTICE_BYTES) return { ok: false, reason: 'format' };
  let m: unknown;
  try {
    m = decodeCbor(payload, { what: 'alert notice' });
  } catch {
    return { ok: false, reason: 'format' };
  }
  if (!(m instanceof Map) || m.size !== 3) return { ok: false, reason: 'format' };
  const body = m.get('body');
  const mac = m.get('mac');
  const t = m.get('t');
  if (!(body instanceof Uint8Array) || !(mac instanceof Uint8Array) || typeof t !== 'number') return { ok: false, reason: 'format' };
  return checkNotice(secret, t, mac, body, nowMs, toleranceMs);
}

/** Reads a channel's secret file: not readable by group or others (INGEST_FILE_MODE), one trailing newline dropped, 32..4096 bytes. */
export async function readNoticeSecret(path: string, what: string): Promise<Uint8Array> {
  await assertPrivateFile(path, what); // INGEST_FILE_MODE when others can read it
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch (cause) {
    throw new IngestError('INGEST_NOTIFY_SECRET', `cannot read ${what} ${path}`, { cause, where: { file: path } });
  }
  let end = bytes.length;
  if (end > 0 && bytes[end - 1] === 0x0a) end--;
  if (end > 0 && bytes[end - 1] === 0x0d) end--;
  if (end < MIN_SECRET_BYTES || end > MAX_SECRET_BYTES) {
    throw new IngestError('INGEST_NOTIFY_SECRET', `${what} ${path} must hold ${MIN_SECRET_BYTES} to ${MAX_SECRET_BYTES} bytes (e.g. openssl rand -hex 32)`, { where: { file: path } });
  }
  return bytes.slice(0, end);
}
