import { SteleError } from '@stele/core';

/**
 * Codes ingest puts on a rejected statement (counted in `stats().rejected`, logged, and published on
 * `stele/v1/<device>/rejects`). The verification-style names are shared with the verifier's checks.
 */
export type RejectCode =
  | 'INGEST_OVERSIZE' // MQTT payload larger than `maxMessageBytes`
  | 'INGEST_MALFORMED' // the envelope is not the CBOR map of FORMAT.md §11
  | 'STATEMENT_FORMAT_ERROR' // the statement is not a Stele COSE_Sign1 (FORMAT.md §3)
  | 'READING_FORMAT_ERROR' // the reading body is not a valid reading (FORMAT.md §2)
  | 'UNKNOWN_KEY_ERROR' // kid not enrolled, or enrolled for another device than the statement/topic names, or not valid yet at that seq
  | 'KEY_REVOKED_ERROR' // kid revoked by ingest and seq after the revocation point (FORMAT.md §13.5)
  | 'KEY_ROTATED_ERROR' // kid rotated out and seq after the rotation statement's seq (FORMAT.md §13.5)
  | 'LIFECYCLE_ERROR' // a well-formed lifecycle statement ingest does not accept from a device (FORMAT.md §13.4)
  | 'SIGNATURE_ERROR' // ES256 signature does not verify under the enrolled key
  | 'DIGEST_MISMATCH_ERROR' // the reading body does not hash to the statement payload
  | 'HEADER_MISMATCH_ERROR' // reading device/seq/prev differ from the statement's protected header
  | 'FORK_ERROR' // a second, different statement for a seq already taken
  | 'CHAIN_LINK_ERROR' // prev is not the digest of the committed reading seq - 1
  | 'INGEST_QUEUE_FULL' // the receive queue of the device (or of all devices) is full: shed, resent later by the gateway
  | 'INGEST_REORDER_FULL'; // seq ahead of the head and the per-device reorder buffer is full (resend later)

/** Errors ingest raises to its callers (enrolment, export). */
export type IngestErrorCode =
  | 'INGEST_NOT_ANCHORED' // exportBundle: an entry of the window is not in an anchored batch yet
  | 'INGEST_NOT_FOUND' // exportBundle: an entry of the window has not been committed
  | 'INGEST_UNKNOWN_DEVICE' // exportBundle: no such enrolled device
  | 'INGEST_ENROL_ERROR' // enrol: the record is malformed (bad key, kid not the key's id, bad device id)
  | 'INGEST_ENROL_CONFLICT' // enrol: device id or kid already enrolled with another key / device
  | 'INGEST_REVOKE_ERROR' // revoke: no such key for the device, or nothing left to revoke
  | 'INGEST_STORE_ERROR' // the store holds something it cannot read
  | 'INGEST_STORE_CONFLICT' // commit: another writer got there first (a different statement at a seq, or the head moved)
  | 'INGEST_STORE_UNAVAILABLE' // the store cannot be opened or reached (PostgreSQL down, wrong URL or credentials)
  | 'INGEST_STOPPED' // the service was stopped
  | 'INGEST_KEY_MISSING' // run/enrol/revoke: no ingest key where named (make one with `stele ingest init`)
  | 'INGEST_KEY_EXISTS' // init: the data directory already has an ingest key
  | 'INGEST_FILE_MODE' // a secret file (PIN, key, installer list) is readable by others: chmod 600 it
  | 'INGEST_USAGE' // a command was given the wrong input (e.g. the readable .enrol.json instead of the .enrol.cose)
  | 'INGEST_ADMIN_TOKEN_ERROR' // the admin token file is missing, readable by others, too large or too short
  | 'INGEST_SHARE_UNSUPPORTED' // run --share: the broker has no MQTT 5 shared subscriptions (aedes); mosquitto or EMQX have them
  | 'INGEST_SHARE_NEEDS_SHARED_STORE' // run --share: several workers need one shared store (PostgreSQL), not a worker's own LevelDB
  | 'INGEST_BROKER_REFUSED' // start: the broker refused ingest's subscription (ACL, or a filter it does not support)
  | 'INGEST_BROKER_SECRET' // start: a broker password, CA, certificate or key file cannot be read (never its content)
  | 'INGEST_RULES_ERROR' // run --rules: a rule set file that cannot be read or is not a FORMAT.md §15 rule set
  | 'INGEST_NO_RULES' // alerts: ingest runs without rules (`stele ingest run --rules FILE`)
  | 'INGEST_ALERT_NOT_FOUND' // alerts: no current alert with this id
  | 'INGEST_ALERT_TOO_WIDE' // alert evidence: the alert's readings span more devices than an evidence set holds (FORMAT.md §7.2)
  | 'INGEST_ALERT_NOT_REPRODUCIBLE' // alert bundle: the exported readings do not give the alert again (FORMAT.md §15.7)
  | 'INGEST_NOTIFY_SECRET' // run --alert-*-secret-file: the secret file is missing, readable by others or too short
  | 'INGEST_NOTIFY_FAILED' // a notification attempt failed (receiver down, non-2xx, broker not connected); retried
  | 'INGEST_WINDOW_TOO_LARGE'; // exportBundle: more seqs asked for than the documented maximum (MAX_BUNDLE_WINDOW)

export class IngestError extends SteleError<IngestErrorCode> {}
