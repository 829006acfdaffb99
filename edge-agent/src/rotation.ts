/**
 * Key rotation and agent reinstall on the gateway (docs/FORMAT.md §13.3, §13.4): lifecycle statements that take a
 * seq of the device's chain, written through Outbox.append so that they are atomic with the chain like a reading.
 * The publisher sends them like any entry; ingest judges them in seq order.
 *
 * Rotation: the statement is signed by the key being retired and announces the new one. The old key stays valid
 * up to and including the rotation's seq; every later reading must be signed by the new key (ingest rejects the
 * old one with KEY_ROTATED_ERROR). So the agent must switch signers for every take queued after the rotation:
 * `rotateKey` resolves once the rotation is taken, and the caller then hands the new signer to the agent.
 *
 * Reinstall: an agent that kept its key but lost its outbox (new SD card, reinstalled OS) asks ingest for the
 * device's committed head (IngestService.head, `{seq, digest}`: served to the installer by ingest's operator
 * console or HTTP API) and starts its new outbox with a reinstall statement at head.seq + 1 linked to that digest.
 * Readings the old agent had taken but not delivered are lost (the statement says so in the log); no seq is ever
 * used twice as far as ingest is concerned, and a stale copy of the old chain that turns up later is a FORK_ERROR.
 */
import { signLifecycleStatement, encodeLifecycleBody, type LifecycleBody } from '@stele/core/lifecycle';
import type { Signer } from '@stele/core';
import type { Outbox, TakeResult } from './outbox.ts';

/** The head ingest has committed for the device (IngestService.head): seq and reading digest. */
export interface ConfirmedHead {
  seq: number;
  /** 32 bytes. */
  digest: Uint8Array;
}

/**
 * Takes a rotation statement at the next seq: signed by `oldSigner` (the key in use), announcing `newSigner`'s
 * public key and backend. Serialised with takes. Returns the entry; from the next take on, sign with `newSigner`.
 * `now` (device time, ms, untrusted) defaults to Date.now.
 */
export async function rotateKey(outbox: Outbox, deviceId: string, oldSigner: Signer, newSigner: Signer, now: () => number = Date.now): Promise<TakeResult> {
  if (oldSigner.algorithm !== 'ES256' || newSigner.algorithm !== 'ES256') throw new TypeError('signers must be ES256');
  const body: LifecycleBody = { type: 'rotation', device: deviceId, kid: newSigner.keyId, key: newSigner.publicKey, backend: newSigner.backend, time: now() };
  return outbox.append(async (link) => ({ statement: await signLifecycleStatement(body, oldSigner, link), body: encodeLifecycleBody(body) }), deviceId);
}

/**
 * Starts an empty outbox (a reinstalled agent) with a reinstall statement at `confirmed.seq + 1`, linked to
 * `confirmed.digest`, signed by the device key; 1..confirmed.seq count as acknowledged. Readings taken after it
 * continue the chain. RangeError when the outbox has taken anything already.
 */
export async function reinstallAgent(outbox: Outbox, deviceId: string, signer: Signer, confirmed: ConfirmedHead, now: () => number = Date.now): Promise<TakeResult> {
  const body: LifecycleBody = { type: 'reinstall', device: deviceId, time: now() };
  return outbox.append(async (link) => ({ statement: await signLifecycleStatement(body, signer, link), body: encodeLifecycleBody(body) }), deviceId, confirmed);
}
