/**
 * A Signer whose private key lives in a PKCS#11 token: SoftHSM2 for development, a TPM 2.0 through tpm2-pkcs11,
 * a secure element through its vendor's PKCS#11 library (ATECC608: cryptoauthlib), an HSM. One class; the
 * backend is configuration (docs/keys.md).
 *
 * - The key pair is generated on the token: CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE true, CKA_EXTRACTABLE false.
 * - ES256 = CKM_ECDSA over the SHA-256 the host computes (RFC 9053 §2.1). Tokens differ in the hashing they offer
 *   (SoftHSM2 has no CKM_ECDSA_SHA256; DEPENDENCIES.md §6), plain CKM_ECDSA is the common denominator. PKCS#11
 *   v2.40 §2.3.1 gives ECDSA signatures as `r || s`, the COSE form; tokens may return high S, which Stele
 *   verifiers accept (FORMAT.md).
 * - One session per signer; every token call goes through a promise queue, so concurrent `sign()` calls never
 *   interleave on the session. Each `sign()` settles within `timeoutMs` (KEY_SIGN_TIMEOUT), queue wait included.
 * - A token that goes away (unplugged, daemon restarted) gives KEY_DEVICE_REMOVED; the next call reconnects
 *   (re-initialising the library so that its slot list is read again), with exponential backoff between failed
 *   attempts, and signing resumes when the token is back. The failed call is not retried by the signer: the
 *   caller still holds the message and decides (the agent keeps the reading unsigned in its outbox and retries).
 */
import { randomBytes } from 'node:crypto';
import { fromHex, toBase64Url, toHex, sha256, keyIdOf, ES256_SIGNATURE_LENGTH } from '@stele/core';
import type { KeyBackend, Signer } from '@stele/core';
import {
  acquireModule,
  ckrNameOf,
  ckrOf,
  ensureInitialised,
  loadBinding,
  reinitialise,
  releaseModule,
  type Attribute,
  type BindingLoader,
  type Handle,
  type LoadedModule,
  type Pkcs11Api,
} from './binding.ts';
import {
  CKA_ALWAYS_SENSITIVE,
  CKA_CLASS,
  CKA_EC_PARAMS,
  CKA_EC_POINT,
  CKA_EXTRACTABLE,
  CKA_ID,
  CKA_KEY_TYPE,
  CKA_LABEL,
  CKA_LOCAL,
  CKA_NEVER_EXTRACTABLE,
  CKA_PRIVATE,
  CKA_SENSITIVE,
  CKA_SIGN,
  CKA_TOKEN,
  CKA_VALUE,
  CKA_VERIFY,
  CKF_RW_SESSION,
  CKF_SERIAL_SESSION,
  CKK_EC,
  CKM_EC_KEY_PAIR_GEN,
  CKM_ECDSA,
  CKO_PRIVATE_KEY,
  CKO_PUBLIC_KEY,
  CKR,
  CKU_USER,
  P256_EC_PARAMS,
  SESSION_LOST_CKR,
} from './constants.ts';
import { isP256Params, pointFromEcPoint } from './ec-point.ts';
import { TokenError } from './errors.ts';
import { checkPinSource, describePinSource, readPin, type PinSource } from './pin.ts';

export type Pkcs11Backend = Extract<KeyBackend, 'pkcs11' | 'tpm' | 'secure-element'>;

/** What a PKCS#11 key is; safe to keep in a config file (it holds no secret). */
export interface Pkcs11SignerConfig {
  /** What the token is, recorded in enrolments. Default `'pkcs11'`; `'tpm'` for tpm2-pkcs11. */
  backend?: Pkcs11Backend;
  /** Path of the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so. */
  module: string;
  /** Token label (the slot id changes between runs on some libraries; the label does not). */
  tokenLabel: string;
  /** Where the user PIN is read from: `{ file: PATH }` or `{ env: NAME }`; never the PIN itself. */
  pin: PinSource;
  /** CKA_LABEL of the key pair. Default `'stele-device'`. */
  keyLabel?: string;
  /** CKA_ID of the key pair (hex). Optional: when set it selects the key; `generate` uses it (default: 16 random bytes). */
  keyId?: string;
}

export interface Pkcs11SignerOptions {
  /** Longest a `sign()` may take, queue wait included, before KEY_SIGN_TIMEOUT. Default 10000. */
  timeoutMs?: number;
  /** First wait before reconnecting after a failed reconnect. Default 200. */
  reconnectDelayMs?: number;
  /** Longest wait between reconnect attempts (the wait doubles each failure). Default 5000. */
  reconnectMaxDelayMs?: number;
  /** Environment the `{ env }` PIN is read from. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** How pkcs11js is imported (tests). Default: `import('pkcs11js')`. */
  loadBinding?: BindingLoader;
}

/** What the token says about the private key; `valueRead` is the token's answer to reading CKA_VALUE. */
export interface KeyProtection {
  backend: KeyBackend;
  /** False only for the software key store. */
  hardware: boolean;
  sensitive: boolean | undefined;
  extractable: boolean | undefined;
  neverExtractable: boolean | undefined;
  alwaysSensitive: boolean | undefined;
  /** CKA_LOCAL: the key was generated on the token. */
  local: boolean | undefined;
  /** `'CKR_ATTRIBUTE_SENSITIVE'` (SoftHSM), `'CKR_ATTRIBUTE_TYPE_INVALID'` (tpm2-pkcs11)...; `'returned'` would be a leak. */
  valueRead: string;
}

/** The token and library, for enrolment requests and logs. */
export interface TokenDescription {
  library: string;
  libraryManufacturer: string;
  tokenLabel: string;
  tokenManufacturer: string;
  tokenModel: string;
  tokenSerial: string;
}

export const DEFAULT_KEY_LABEL = 'stele-device';
const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_RECONNECT_DELAY_MS = 200;
const DEFAULT_RECONNECT_MAX_DELAY_MS = 5_000;
const INSPECT = Symbol.for('nodejs.util.inspect.custom');

interface KeyHandles {
  session: Handle;
  privateKey: Handle;
  ckaId: Buffer;
  publicKey: Uint8Array;
}

export class Pkcs11Signer implements Signer {
  readonly algorithm = 'ES256' as const;
  readonly backend: Pkcs11Backend;
  readonly keyId: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly #mod: LoadedModule;
  readonly #config: Pkcs11SignerConfig;
  readonly #timeoutMs: number;
  readonly #reconnectDelayMs: number;
  readonly #reconnectMaxDelayMs: number;
  readonly #env: NodeJS.ProcessEnv;
  readonly #ckaId: Buffer;
  #session: Handle | undefined;
  #privateKey: Handle | undefined;
  /** Library generation the session belongs to (see binding.ts `reinitialise`). */
  #generation: number;
  #retryAt = 0;
  #delayMs: number;
  #tail: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(mod: LoadedModule, config: Pkcs11SignerConfig, options: Pkcs11SignerOptions, handles: KeyHandles, generation: number) {
    this.#mod = mod;
    this.#config = config;
    this.backend = config.backend ?? 'pkcs11';
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#reconnectDelayMs = options.reconnectDelayMs ?? DEFAULT_RECONNECT_DELAY_MS;
    this.#reconnectMaxDelayMs = options.reconnectMaxDelayMs ?? DEFAULT_RECONNECT_MAX_DELAY_MS;
    this.#delayMs = this.#reconnectDelayMs;
    this.#env = options.env ?? process.env;
    this.#ckaId = handles.ckaId;
    this.#session = handles.session;
    this.#privateKey = handles.privateKey;
    this.#generation = generation;
    this.publicKey = handles.publicKey;
    this.keyId = keyIdOf(this.publicKey);
  }

  /**
   * Opens the existing key named by `keyId` or `keyLabel` on the token. Errors: KEY_BACKEND_UNAVAILABLE,
   * KEY_MODULE_MISSING, KEY_TOKEN_MISSING, KEY_PIN_UNAVAILABLE, KEY_PIN_INCORRECT, KEY_PIN_LOCKED, KEY_NOT_FOUND,
   * KEY_AMBIGUOUS, KEY_TOKEN_ERROR.
   */
  static async open(config: Pkcs11SignerConfig, options: Pkcs11SignerOptions = {}): Promise<Pkcs11Signer> {
    return Pkcs11Signer.#withLoggedInSession(config, options, (mod, session, generation) => {
      const handles = findKey(mod.api, session, config, undefined);
      return new Pkcs11Signer(mod, config, options, handles, generation);
    });
  }

  /**
   * Checks config and options, acquires the module and opens a logged-in session for `make`. When `make` fails the
   * session is closed; when anything fails the module is released and the error mapped (KEY_* codes).
   */
  static async #withLoggedInSession(
    config: Pkcs11SignerConfig,
    options: Pkcs11SignerOptions,
    make: (mod: LoadedModule, session: Handle, generation: number) => Pkcs11Signer | Promise<Pkcs11Signer>,
  ): Promise<Pkcs11Signer> {
    checkConfig(config);
    checkOptions(options);
    const binding = await loadBinding(options.loadBinding);
    const mod = await acquireModule(binding, config.module);
    try {
      ensureInitialisedMapped(mod, false);
      const generation = mod.generation;
      const session = await openLoggedInSession(mod.api, config, options.env ?? process.env, false);
      try {
        return await make(mod, session, generation);
      } catch (err) {
        closeQuietly(mod.api, session);
        throw err;
      }
    } catch (err) {
      releaseModule(mod);
      throw mapError(err, false);
    }
  }

  /**
   * Generates a new P-256 key pair on the token (never exported: sensitive, not extractable) under `keyLabel`.
   * Refuses with KEY_EXISTS when a private key already has that label. Other errors as {@link Pkcs11Signer.open}.
   */
  static async generate(config: Pkcs11SignerConfig, options: Pkcs11SignerOptions = {}): Promise<Pkcs11Signer> {
    return Pkcs11Signer.#withLoggedInSession(config, options, async (mod, session, generation) => {
      const api = mod.api;
      const label = config.keyLabel ?? DEFAULT_KEY_LABEL;
      if (findObjects(api, session, [{ type: CKA_CLASS, value: CKO_PRIVATE_KEY }, { type: CKA_LABEL, value: label }]).length > 0) {
        throw new TokenError('KEY_EXISTS', 'a private key with this label is already on the token', { where: { keyLabel: label } });
      }
      const id = config.keyId !== undefined ? Buffer.from(fromHex(config.keyId)) : randomBytes(16);
      const common: Attribute[] = [
        { type: CKA_TOKEN, value: true },
        { type: CKA_ID, value: id },
        { type: CKA_LABEL, value: label },
      ];
      const pair = await api.C_GenerateKeyPairAsync(
        session,
        { mechanism: CKM_EC_KEY_PAIR_GEN },
        [...common, { type: CKA_VERIFY, value: true }, { type: CKA_EC_PARAMS, value: Buffer.from(P256_EC_PARAMS) }],
        [
          ...common,
          { type: CKA_PRIVATE, value: true },
          { type: CKA_SIGN, value: true },
          { type: CKA_SENSITIVE, value: true },
          { type: CKA_EXTRACTABLE, value: false },
        ],
      );
      const publicKey = readPublicPoint(api, session, pair.publicKey);
      return new Pkcs11Signer(mod, config, options, { session, privateKey: pair.privateKey, ckaId: id, publicKey }, generation);
    });
  }

  /** ES256 over SHA-256(message): the host hashes, the token signs the digest with CKM_ECDSA; 64-byte `r || s`. */
  sign(message: Uint8Array): Promise<Uint8Array> {
    if (!(message instanceof Uint8Array)) return Promise.reject(new TypeError('message must be a Uint8Array'));
    const digest = Buffer.from(sha256(message));
    return this.#withTimeout(this.#enqueue(() => this.#signDigest(digest)), 'sign');
  }

  /** Asks the token how the private key is protected (and tries to read CKA_VALUE, which must fail). */
  describeKeyProtection(): Promise<KeyProtection> {
    return this.#withTimeout(
      this.#enqueue(async () => {
        const { session, privateKey } = await this.#ready();
        const api = this.#mod.api;
        const flag = (type: number): boolean | undefined => {
          try {
            const value = api.C_GetAttributeValue(session, privateKey, [{ type }])[0]?.value;
            return Buffer.isBuffer(value) ? value[0] === 1 : typeof value === 'boolean' ? value : undefined;
          } catch {
            return undefined;
          }
        };
        let valueRead = 'returned';
        try {
          api.C_GetAttributeValue(session, privateKey, [{ type: CKA_VALUE }]);
        } catch (err) {
          valueRead = ckrNameOf(err) ?? 'error';
        }
        return {
          backend: this.backend,
          hardware: true,
          sensitive: flag(CKA_SENSITIVE),
          extractable: flag(CKA_EXTRACTABLE),
          neverExtractable: flag(CKA_NEVER_EXTRACTABLE),
          alwaysSensitive: flag(CKA_ALWAYS_SENSITIVE),
          local: flag(CKA_LOCAL),
          valueRead,
        };
      }),
      'describeKeyProtection',
    );
  }

  /** Library and token identity (manufacturer, model, serial), for the enrolment request. */
  describeToken(): Promise<TokenDescription> {
    return this.#withTimeout(
      this.#enqueue(async () => {
        await this.#ready();
        const api = this.#mod.api;
        const info = api.C_GetInfo();
        const slot = findSlot(api, this.#config.tokenLabel);
        if (slot === undefined) throw new TokenError('KEY_DEVICE_REMOVED', 'token is gone', { where: { tokenLabel: this.#config.tokenLabel } });
        const t = api.C_GetTokenInfo(slot);
        return {
          library: `${clean(info.libraryDescription)} ${info.libraryVersion.major}.${info.libraryVersion.minor}`,
          libraryManufacturer: clean(info.manufacturerID),
          tokenLabel: clean(t.label),
          tokenManufacturer: clean(t.manufacturerID),
          tokenModel: clean(t.model),
          tokenSerial: clean(t.serialNumber),
        };
      }),
      'describeToken',
    );
  }

  /** Closes the session and releases the library (finalised when its last user closes). Idempotent. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    return this.#enqueueAlways(async () => {
      this.#dropSession();
      releaseModule(this.#mod);
    });
  }

  /** The key's CKA_ID (hex), to put in the config so the same key is found again. */
  get tokenKeyId(): string {
    return toHex(this.#ckaId);
  }

  toJSON(): { backend: Pkcs11Backend; kid: string; module: string; tokenLabel: string; keyLabel: string; pin: string } {
    return {
      backend: this.backend,
      kid: toBase64Url(this.keyId),
      module: this.#config.module,
      tokenLabel: this.#config.tokenLabel,
      keyLabel: this.#config.keyLabel ?? DEFAULT_KEY_LABEL,
      pin: describePinSource(this.#config.pin),
    };
  }

  toString(): string {
    return `Pkcs11Signer(${this.backend}, token=${this.#config.tokenLabel}, kid=${toBase64Url(this.keyId)})`;
  }

  [INSPECT](): string {
    return this.toString();
  }

  // ---- internals ----

  #enqueue<T>(job: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new TokenError('KEY_SIGNER_CLOSED', 'signer is closed'));
    return this.#enqueueAlways(job);
  }

  #enqueueAlways<T>(job: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(job);
    this.#tail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** Settles within timeoutMs. A timed-out token call keeps the queue until it returns: the session is never shared. */
  #withTimeout<T>(job: Promise<T>, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new TokenError('KEY_SIGN_TIMEOUT', `${what}: no answer from the token within ${this.#timeoutMs} ms`, { where: { timeoutMs: this.#timeoutMs } }));
      }, this.#timeoutMs);
      job.then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
  }

  async #signDigest(digest: Buffer): Promise<Uint8Array> {
    if (this.#closed) throw new TokenError('KEY_SIGNER_CLOSED', 'signer is closed');
    let handles = await this.#ready();
    try {
      return await this.#rawSign(handles, digest);
    } catch (err) {
      const ckr = ckrOf(err);
      if (ckr === undefined || !SESSION_LOST_CKR.has(ckr)) throw mapError(err, true);
      // The session or the key vanished: reconnect at once (the token may be fine, e.g. after another signer
      // re-initialised the library) and sign once more; if the token is gone, this throws KEY_DEVICE_REMOVED.
      this.#dropSession();
      handles = await this.#reconnect(true);
    }
    try {
      return await this.#rawSign(handles, digest);
    } catch (err) {
      const ckr = ckrOf(err);
      if (ckr !== undefined && SESSION_LOST_CKR.has(ckr)) {
        this.#dropSession();
        this.#backOff();
        throw new TokenError('KEY_DEVICE_REMOVED', 'token went away during signing', { cause: err, where: { ckr: ckrNameOf(err) } });
      }
      throw mapError(err, true);
    }
  }

  async #rawSign(handles: { session: Handle; privateKey: Handle }, digest: Buffer): Promise<Uint8Array> {
    const api = this.#mod.api;
    api.C_SignInit(handles.session, { mechanism: CKM_ECDSA }, handles.privateKey);
    const sig = await api.C_SignAsync(handles.session, digest, Buffer.alloc(ES256_SIGNATURE_LENGTH));
    if (sig.length !== ES256_SIGNATURE_LENGTH) {
      throw new TokenError('KEY_TOKEN_ERROR', 'token returned a signature that is not 64 bytes (r || s)', { where: { length: sig.length } });
    }
    return new Uint8Array(sig);
  }

  /** The live session and key, reconnecting first when the session is gone or from an older library generation. */
  async #ready(): Promise<{ session: Handle; privateKey: Handle }> {
    const session = this.#session;
    const privateKey = this.#privateKey;
    if (session !== undefined && privateKey !== undefined && this.#generation === this.#mod.generation && this.#mod.initialised) {
      return { session, privateKey };
    }
    this.#dropSession();
    return this.#reconnect(false);
  }

  async #reconnect(immediate: boolean): Promise<{ session: Handle; privateKey: Handle }> {
    const now = Date.now();
    if (!immediate && now < this.#retryAt) {
      throw new TokenError('KEY_DEVICE_REMOVED', 'token unavailable; waiting before the next reconnect', { where: { retryInMs: this.#retryAt - now } });
    }
    const mod = this.#mod;
    try {
      // Re-read the slots: a token that came back is only seen after C_Initialize on some libraries (SoftHSM2).
      reinitialise(mod, this.#generation);
      ensureInitialisedMapped(mod, true);
      const generation = mod.generation;
      const session = await openLoggedInSession(mod.api, this.#config, this.#env, true);
      let handles: KeyHandles;
      try {
        handles = findKey(mod.api, session, this.#config, this.#ckaId);
      } catch (err) {
        closeQuietly(mod.api, session);
        throw err;
      }
      if (toHex(handles.publicKey) !== toHex(this.publicKey)) {
        closeQuietly(mod.api, session);
        throw new TokenError('KEY_MISMATCH', 'the key found after reconnecting is not the key this signer started with', {
          where: { tokenLabel: this.#config.tokenLabel },
        });
      }
      this.#session = session;
      this.#privateKey = handles.privateKey;
      this.#generation = generation;
      this.#retryAt = 0;
      this.#delayMs = this.#reconnectDelayMs;
      return { session, privateKey: handles.privateKey };
    } catch (err) {
      this.#generation = mod.generation; // the next attempt re-initialises again
      this.#backOff();
      throw mapError(err, true);
    }
  }

  #backOff(): void {
    this.#retryAt = Date.now() + this.#delayMs;
    this.#delayMs = Math.min(this.#delayMs * 2, this.#reconnectMaxDelayMs);
  }

  #dropSession(): void {
    const session = this.#session;
    this.#session = undefined;
    this.#privateKey = undefined;
    if (session !== undefined && this.#generation === this.#mod.generation && this.#mod.initialised) closeQuietly(this.#mod.api, session);
  }
}

/** PIN hashes the token refused, per module and token: the same wrong PIN is never tried twice (tokens lock out). */
const refusedPins = new Set<string>();
/**
 * The PIN hash that logged in, per module and token. PKCS#11 login state is per token and process, so a second
 * C_Login answers CKR_USER_ALREADY_LOGGED_IN whatever the PIN: without this check a wrong PIN would "work"
 * while another signer of the process is logged in.
 */
const acceptedPins = new Map<string, string>();

function tokenKey(config: Pkcs11SignerConfig): string {
  return `${config.module}\u0000${config.tokenLabel}`;
}

function pinKey(config: Pkcs11SignerConfig, pin: string): string {
  return `${tokenKey(config)}\u0000${toHex(sha256(new TextEncoder().encode(pin)))}`;
}

async function openLoggedInSession(api: Pkcs11Api, config: Pkcs11SignerConfig, env: NodeJS.ProcessEnv, reconnecting: boolean): Promise<Handle> {
  const slot = findSlot(api, config.tokenLabel);
  if (slot === undefined) {
    throw reconnecting
      ? new TokenError('KEY_DEVICE_REMOVED', 'token is not present', { where: { tokenLabel: config.tokenLabel } })
      : new TokenError('KEY_TOKEN_MISSING', 'no token with this label', { where: { tokenLabel: config.tokenLabel, module: config.module } });
  }
  const pin = await readPin(config.pin, env);
  const key = pinKey(config, pin);
  if (refusedPins.has(key)) {
    throw new TokenError('KEY_PIN_INCORRECT', 'the token already refused this PIN; not trying it again (fix the PIN source)', {
      where: { tokenLabel: config.tokenLabel, pin: describePinSource(config.pin) },
    });
  }
  const session = api.C_OpenSession(slot, CKF_RW_SESSION | CKF_SERIAL_SESSION);
  try {
    api.C_Login(session, CKU_USER, pin);
    acceptedPins.set(tokenKey(config), key);
  } catch (err) {
    const ckr = ckrOf(err);
    if (ckr === CKR.USER_ALREADY_LOGGED_IN) {
      const accepted = acceptedPins.get(tokenKey(config));
      if (accepted === undefined || accepted === key) return session;
      closeQuietly(api, session);
      throw new TokenError('KEY_PIN_INCORRECT', 'this PIN is not the one the token accepted', {
        where: { tokenLabel: config.tokenLabel, pin: describePinSource(config.pin) },
      });
    }
    closeQuietly(api, session);
    if (ckr === CKR.PIN_INCORRECT || ckr === CKR.PIN_INVALID || ckr === CKR.PIN_LEN_RANGE) refusedPins.add(key);
    throw err;
  }
  return session;
}

function findSlot(api: Pkcs11Api, label: string): Handle | undefined {
  for (const slot of api.C_GetSlotList(true)) {
    try {
      if (api.C_GetTokenInfo(slot).label.trim() === label) return slot;
    } catch {
      // a slot whose token went away between the two calls
    }
  }
  return undefined;
}

function findObjects(api: Pkcs11Api, session: Handle, template: Attribute[]): Handle[] {
  api.C_FindObjectsInit(session, template);
  try {
    const found: Handle[] = [];
    for (;;) {
      const batch = api.C_FindObjects(session, 16);
      found.push(...batch);
      if (batch.length < 16 || found.length > 1024) return found;
    }
  } finally {
    api.C_FindObjectsFinal(session);
  }
}

function readAttribute(api: Pkcs11Api, session: Handle, object: Handle, type: number): Buffer | undefined {
  try {
    const value = api.C_GetAttributeValue(session, object, [{ type }])[0]?.value;
    return Buffer.isBuffer(value) ? value : undefined;
  } catch (err) {
    const ckr = ckrOf(err);
    if (ckr === CKR.ATTRIBUTE_TYPE_INVALID || ckr === CKR.ATTRIBUTE_SENSITIVE) return undefined;
    throw err;
  }
}

function readPublicPoint(api: Pkcs11Api, session: Handle, object: Handle): Uint8Array {
  const params = readAttribute(api, session, object, CKA_EC_PARAMS);
  if (params !== undefined && !isP256Params(params)) throw new TokenError('KEY_TOKEN_ERROR', 'the key is not a P-256 key', { where: { ecParams: toHex(params) } });
  const point = readAttribute(api, session, object, CKA_EC_POINT);
  if (point === undefined) throw new TokenError('KEY_NOT_FOUND', 'the key has no CKA_EC_POINT');
  return pointFromEcPoint(point);
}

/** The private key (by CKA_ID when known, else by `keyId` / `keyLabel`) and its public point. */
function findKey(api: Pkcs11Api, session: Handle, config: Pkcs11SignerConfig, ckaId: Buffer | undefined): KeyHandles {
  const id = ckaId ?? (config.keyId !== undefined ? Buffer.from(fromHex(config.keyId)) : undefined);
  const label = config.keyLabel ?? DEFAULT_KEY_LABEL;
  const selector: Attribute[] = id !== undefined ? [{ type: CKA_ID, value: id }] : [{ type: CKA_LABEL, value: label }];
  const privates = findObjects(api, session, [{ type: CKA_CLASS, value: CKO_PRIVATE_KEY }, { type: CKA_KEY_TYPE, value: CKK_EC }, ...selector]);
  const where = id !== undefined ? { keyId: toHex(id) } : { keyLabel: label };
  if (privates.length === 0) throw new TokenError('KEY_NOT_FOUND', 'no EC private key with this id/label on the token', { where });
  if (privates.length > 1) throw new TokenError('KEY_AMBIGUOUS', 'several private keys match; set keyId in the config', { where });
  const privateKey = privates[0]!;
  const foundId = readAttribute(api, session, privateKey, CKA_ID) ?? id ?? Buffer.alloc(0);
  // The public point is on the public key object with the same CKA_ID; some tokens also expose it on the private key.
  const publics = foundId.length > 0 ? findObjects(api, session, [{ type: CKA_CLASS, value: CKO_PUBLIC_KEY }, { type: CKA_ID, value: foundId }]) : [];
  const publicObject = publics[0] ?? privateKey;
  return { session, privateKey, ckaId: Buffer.from(foundId), publicKey: readPublicPoint(api, session, publicObject) };
}

/** CK_UTF8CHAR fields are blank-padded (and some libraries pad with NULs). */
function clean(text: string): string {
  return text.replace(/[\s\u0000]+$/, '');
}

function closeQuietly(api: Pkcs11Api, session: Handle): void {
  try {
    api.C_CloseSession(session);
  } catch {
    // the session is gone already
  }
}

function ensureInitialisedMapped(mod: LoadedModule, reconnecting: boolean): void {
  try {
    ensureInitialised(mod);
  } catch (err) {
    throw mapError(err, reconnecting);
  }
}

/** A pkcs11js error as a TokenError (TokenErrors pass through). `reconnecting`: the token was there before. */
function mapError(err: unknown, reconnecting: boolean): Error {
  if (err instanceof TokenError || err instanceof TypeError || err instanceof RangeError) return err;
  const ckr = ckrOf(err);
  const where = { ckr: ckrNameOf(err) };
  if (ckr === CKR.PIN_INCORRECT || ckr === CKR.PIN_INVALID || ckr === CKR.PIN_LEN_RANGE) {
    return new TokenError('KEY_PIN_INCORRECT', 'the token refused the PIN', { cause: err, where });
  }
  if (ckr === CKR.PIN_LOCKED || ckr === CKR.PIN_EXPIRED) {
    return new TokenError('KEY_PIN_LOCKED', 'the user PIN is locked (reset it with the SO PIN)', { cause: err, where });
  }
  if (ckr !== undefined && SESSION_LOST_CKR.has(ckr)) {
    if (reconnecting) return new TokenError('KEY_DEVICE_REMOVED', 'token is not reachable', { cause: err, where });
    if (ckr === CKR.TOKEN_NOT_PRESENT || ckr === CKR.DEVICE_REMOVED || ckr === CKR.TOKEN_NOT_RECOGNIZED) {
      return new TokenError('KEY_TOKEN_MISSING', 'token is not present', { cause: err, where });
    }
  }
  return new TokenError('KEY_TOKEN_ERROR', `PKCS#11 call failed${where.ckr ? ` (${where.ckr})` : ''}`, { cause: err, where });
}

function checkConfig(config: Pkcs11SignerConfig): void {
  if (typeof config !== 'object' || config === null) throw new TypeError('config must be an object');
  if (typeof config.module !== 'string' || config.module === '') throw new TypeError('config.module must be the path of a PKCS#11 library');
  if (typeof config.tokenLabel !== 'string' || config.tokenLabel === '' || config.tokenLabel.length > 32) {
    throw new TypeError('config.tokenLabel must be 1..32 characters (CK_TOKEN_INFO.label)');
  }
  checkPinSource(config.pin);
  if (config.backend !== undefined && !['pkcs11', 'tpm', 'secure-element'].includes(config.backend)) {
    throw new TypeError("config.backend must be 'pkcs11', 'tpm' or 'secure-element'");
  }
  if (config.keyLabel !== undefined && (typeof config.keyLabel !== 'string' || config.keyLabel === '')) throw new TypeError('config.keyLabel must be a non-empty string');
  if (config.keyId !== undefined && (typeof config.keyId !== 'string' || !/^(?:[0-9a-f]{2}){1,64}$/i.test(config.keyId))) {
    throw new TypeError('config.keyId must be hex (1..64 bytes)');
  }
}

function checkOptions(options: Pkcs11SignerOptions): void {
  for (const name of ['timeoutMs', 'reconnectDelayMs', 'reconnectMaxDelayMs'] as const) {
    const v = options[name];
    if (v !== undefined && (!Number.isFinite(v) || v <= 0)) throw new RangeError(`${name} must be a positive number`);
  }
}
