/**
 * Ingest's key registry (docs/FORMAT.md §13): per device, which keys may sign which seqs, built from the lifecycle
 * statements ingest has logged. It is the state those statements define, kept so that ingest need not re-read its
 * log: one `reg!<deviceId>` row, written in the same LevelDB batch as the commit that changes it (an enrolment or
 * revocation in the device's lifecycle log, a rotation or reinstall in its chain).
 *
 * Lifecycle statements ingest signs (enrolment, revocation) are not part of a device's hash chain. They are kept
 * in a log of their own per device, committed through the store exactly like a chain, under the store device id
 * `\u0001<deviceId>` (U+0001 never occurs in a device id, FORMAT.md §2.2), so that they become Merkle leaves and
 * get batched, receipted and anchored by the same code as readings.
 */
import { toHex, decodeCbor, encodeCbor } from '@stele/core';
import { findSpan, keyStatusAt, type KeySpan, type KeyStatus } from '@stele/core/lifecycle';
import type { KeyBackend } from '@stele/core';
import { IngestError } from '../errors.ts';

/** Store device id prefix of a device's lifecycle log (U+0001: checkDeviceId forbids control characters). */
export const LIFECYCLE_LOG_PREFIX = '\u0001';

/** The store device id of `deviceId`'s lifecycle log. */
export function lifecycleLogId(deviceId: string): string {
  return `${LIFECYCLE_LOG_PREFIX}${deviceId}`;
}

/** True for a store device id that is a lifecycle log, not a device. */
export function isLifecycleLogId(storeDeviceId: string): boolean {
  return storeDeviceId.startsWith(LIFECYCLE_LOG_PREFIX);
}

/** Store key of a device's registry row. */
export function registryKey(deviceId: string): string {
  return `reg!${deviceId}`;
}

/** The registry state of one device. */
export interface DeviceKeys {
  deviceId: string;
  /** Enrolled and rotated-in keys, in the order they came. */
  keys: KeySpan[];
  /** Seqs of the device's chain that are lifecycle statements (rotation, reinstall), ascending. */
  chained: number[];
  /** Number of lifecycle statements ingest signed for the device (its lifecycle log holds entries 1..log). */
  log: number;
}

const BACKENDS: readonly KeyBackend[] = ['software', 'pkcs11', 'tpm', 'secure-element'];

/** Deterministic CBOR of a registry row. */
export function encodeDeviceKeys(state: DeviceKeys): Uint8Array {
  return encodeCbor({
    deviceId: state.deviceId,
    keys: state.keys.map((k) => {
      const o: Record<string, unknown> = { kid: k.kid, publicKey: k.publicKey, backend: k.backend, from: k.from, via: k.via };
      if (k.until !== undefined) o['until'] = k.until;
      if (k.revokedAfter !== undefined) o['revokedAfter'] = k.revokedAfter;
      return o;
    }),
    chained: state.chained,
    log: state.log,
  });
}

function bad(message: string): never {
  throw new IngestError('INGEST_STORE_ERROR', `registry row: ${message}`);
}

const uint = (v: unknown, what: string): number => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : bad(`${what} is not an integer`));
const bytes = (v: unknown, what: string): Uint8Array => (v instanceof Uint8Array ? Uint8Array.from(v) : bad(`${what} is not bytes`));

/** Reads a registry row written by {@link encodeDeviceKeys}. INGEST_STORE_ERROR when it is not one. */
export function decodeDeviceKeys(value: Uint8Array): DeviceKeys {
  const o = decodeCbor(value, { what: 'registry row' });
  if (!(o instanceof Map)) bad('not a map');
  const deviceId = o.get('deviceId');
  const keys = o.get('keys');
  const chained = o.get('chained');
  if (typeof deviceId !== 'string' || !Array.isArray(keys) || !Array.isArray(chained)) bad('missing fields');
  return {
    deviceId,
    keys: keys.map((k: unknown): KeySpan => {
      if (!(k instanceof Map)) bad('key is not a map');
      const backend = k.get('backend');
      const via = k.get('via');
      if (!(BACKENDS as readonly unknown[]).includes(backend) || (via !== 'enrolment' && via !== 'rotation' && via !== 'record')) bad('key backend or origin');
      const span: KeySpan = { kid: bytes(k.get('kid'), 'kid'), publicKey: bytes(k.get('publicKey'), 'publicKey'), backend: backend as KeyBackend, from: uint(k.get('from'), 'from'), via };
      if (k.has('until')) span.until = uint(k.get('until'), 'until');
      if (k.has('revokedAfter')) span.revokedAfter = uint(k.get('revokedAfter'), 'revokedAfter');
      return span;
    }),
    chained: chained.map((n: unknown) => uint(n, 'chained seq')),
    log: uint(o.get('log'), 'log'),
  };
}

function copyState(s: DeviceKeys): DeviceKeys {
  return { deviceId: s.deviceId, keys: s.keys.map((k) => ({ ...k })), chained: [...s.chained], log: s.log };
}

/** The key currently in use: not rotated out, not revoked (undefined when none, e.g. after a revocation). */
export function currentKey(state: DeviceKeys): KeySpan | undefined {
  return state.keys.find((k) => k.until === undefined && k.revokedAfter === undefined);
}

/**
 * In-memory registry of every device. Mutations go through drafts: take a {@link draft}, change it, write it
 * with the commit that justifies it, then {@link adopt} it; a failed commit simply drops the draft.
 */
export class KeyRegistry {
  private readonly byDevice = new Map<string, DeviceKeys>();
  /** kid hex -> device id, for every key of every device (a kid belongs to one device forever). */
  private readonly byKid = new Map<string, string>();

  /** Replaces (or adds) a device's state and indexes its kids. */
  adopt(state: DeviceKeys): void {
    const copy = copyState(state);
    this.byDevice.set(copy.deviceId, copy);
    for (const k of copy.keys) this.byKid.set(toHex(k.kid), copy.deviceId);
  }

  /** A copy of the device's state to change (undefined for a device never enrolled). */
  draft(deviceId: string): DeviceKeys | undefined {
    const s = this.byDevice.get(deviceId);
    return s === undefined ? undefined : copyState(s);
  }

  /** Read-only view of a device's state. */
  get(deviceId: string): Readonly<DeviceKeys> | undefined {
    return this.byDevice.get(deviceId);
  }

  /** Device that owns `kid` (any of its keys, past or present). */
  deviceOfKid(kid: Uint8Array): string | undefined {
    return this.byKid.get(toHex(kid));
  }

  /** The span of `kid`, wherever it is registered. */
  span(kid: Uint8Array): KeySpan | undefined {
    const device = this.deviceOfKid(kid);
    return device === undefined ? undefined : findSpan(this.byDevice.get(device)!.keys, kid);
  }

  /** Whether `kid` may sign `seq` of `deviceId` now (FORMAT.md §13.5). */
  status(deviceId: string, kid: Uint8Array, seq: number): KeyStatus {
    const state = this.byDevice.get(deviceId);
    return keyStatusAt(state === undefined ? undefined : findSpan(state.keys, kid), seq);
  }

  devices(): string[] {
    return [...this.byDevice.keys()];
  }
}
