/**
 * Loading pkcs11js on demand, and one initialised PKCS#11 library per module path.
 *
 * pkcs11js compiles with node-gyp, so it is an optional dependency: `npm ci` succeeds on a machine without a
 * compiler, and only the PKCS#11 backend fails, with KEY_BACKEND_UNAVAILABLE saying what to install. The types
 * below are the part of pkcs11js that Stele uses, written out so the project type-checks without the package.
 */
import { access } from 'node:fs/promises';
import { CKF_OS_LOCKING_OK, CKR } from './constants.ts';
import { PKCS11JS_INSTALL_HINT, TokenError } from './errors.ts';

export type Handle = Buffer;
export interface Attribute {
  type: number;
  value?: Buffer | number | boolean | string | null;
}
export interface TokenInfo {
  label: string;
  manufacturerID: string;
  model: string;
  serialNumber: string;
  flags: number;
}

/** The methods of pkcs11js's `PKCS11` class used here (pkcs11js 2.1, index.d.ts). */
export interface Pkcs11Api {
  load(path: string): void;
  close(): void;
  C_Initialize(options?: { flags?: number }): void;
  C_Finalize(): void;
  C_GetInfo(): { manufacturerID: string; libraryDescription: string; libraryVersion: { major: number; minor: number } };
  C_GetSlotList(tokenPresent?: boolean): Handle[];
  C_GetTokenInfo(slot: Handle): TokenInfo;
  C_OpenSession(slot: Handle, flags: number): Handle;
  C_CloseSession(session: Handle): void;
  C_Login(session: Handle, userType: number, pin?: string): void;
  C_Logout(session: Handle): void;
  C_FindObjectsInit(session: Handle, template: Attribute[]): void;
  C_FindObjects(session: Handle, maxObjectCount: number): Handle[];
  C_FindObjectsFinal(session: Handle): void;
  C_GetAttributeValue(session: Handle, object: Handle, template: Attribute[]): Attribute[];
  C_DestroyObject(session: Handle, object: Handle): void;
  C_SignInit(session: Handle, mechanism: { mechanism: number }, key: Handle): void;
  C_SignAsync(session: Handle, inData: Buffer, outData: Buffer): Promise<Buffer>;
  C_GenerateKeyPairAsync(
    session: Handle,
    mechanism: { mechanism: number },
    publicTemplate: Attribute[],
    privateTemplate: Attribute[],
  ): Promise<{ publicKey: Handle; privateKey: Handle }>;
}

export interface Pkcs11Binding {
  PKCS11: new () => Pkcs11Api;
}

/** How the binding is loaded; tests pass a loader that fails to check KEY_BACKEND_UNAVAILABLE. */
export type BindingLoader = () => Promise<Pkcs11Binding>;

const PKCS11JS = 'pkcs11js';

/** Imports pkcs11js (a module name held in a variable: TypeScript does not resolve it, so it may be absent). */
export const importPkcs11js: BindingLoader = async () => {
  const mod = (await import(PKCS11JS)) as { default?: Pkcs11Binding } & Partial<Pkcs11Binding>;
  const binding = mod.default ?? (mod as Pkcs11Binding);
  if (typeof binding.PKCS11 !== 'function') throw new Error('pkcs11js has no PKCS11 class');
  return binding;
};

let cachedBinding: Promise<Pkcs11Binding> | undefined;

/** Loads pkcs11js once; KEY_BACKEND_UNAVAILABLE (with the install hint) when it is absent or not compiled. */
export async function loadBinding(loader?: BindingLoader): Promise<Pkcs11Binding> {
  const load = loader ?? importPkcs11js;
  const pending = loader === undefined ? (cachedBinding ??= load()) : load();
  try {
    return await pending;
  } catch (cause) {
    if (loader === undefined) cachedBinding = undefined;
    throw new TokenError('KEY_BACKEND_UNAVAILABLE', PKCS11JS_INSTALL_HINT, { cause });
  }
}

/** The CKR number of a pkcs11js error (`Pkcs11Error.code`), or undefined for anything else. */
export function ckrOf(err: unknown): number | undefined {
  if (err instanceof Error && /^CKR_/.test(err.message)) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'number') return code;
  }
  return undefined;
}

/** The CKR name of a pkcs11js error ("CKR_PIN_INCORRECT"), for `where`. */
export function ckrNameOf(err: unknown): string | undefined {
  return err instanceof Error && /^CKR_\w+$/.test(err.message) ? err.message : undefined;
}

/**
 * One PKCS#11 library, loaded and initialised once per process and path: a library keeps one global state per
 * process (dlopen shares it), so two `C_Initialize` calls from two binding objects would collide.
 * `generation` counts re-initialisations; a session opened under an older generation is dead.
 */
export interface LoadedModule {
  readonly path: string;
  readonly api: Pkcs11Api;
  generation: number;
  initialised: boolean;
  refs: number;
}

const modules = new Map<string, LoadedModule>();

/** Loads (or shares) the library at `path`; KEY_MODULE_MISSING when it is not there or does not load. */
export async function acquireModule(binding: Pkcs11Binding, path: string): Promise<LoadedModule> {
  const known = modules.get(path);
  if (known !== undefined) {
    known.refs++;
    return known;
  }
  try {
    await access(path);
  } catch (cause) {
    throw new TokenError('KEY_MODULE_MISSING', 'PKCS#11 library not found', { cause, where: { module: path } });
  }
  const again = modules.get(path); // loaded by another caller while we waited
  if (again !== undefined) {
    again.refs++;
    return again;
  }
  const api = new binding.PKCS11();
  try {
    api.load(path);
  } catch (cause) {
    throw new TokenError('KEY_MODULE_MISSING', 'PKCS#11 library does not load (not a PKCS#11 module?)', { cause, where: { module: path } });
  }
  const mod: LoadedModule = { path, api, generation: 0, initialised: false, refs: 1 };
  modules.set(path, mod);
  return mod;
}

/** C_Initialize unless done; OS locking allowed (pkcs11js runs *Async calls on libuv worker threads). */
export function ensureInitialised(mod: LoadedModule): void {
  if (mod.initialised) return;
  try {
    mod.api.C_Initialize({ flags: CKF_OS_LOCKING_OK });
  } catch (err) {
    const ckr = ckrOf(err);
    if (ckr === CKR.CANT_LOCK) mod.api.C_Initialize();
    else if (ckr !== CKR.CRYPTOKI_ALREADY_INITIALIZED) throw err;
  }
  mod.initialised = true;
}

/**
 * C_Finalize + mark for C_Initialize, once per generation: re-reading the slots is the only portable way to see a
 * token come back (SoftHSM builds its slot list in C_Initialize). Other signers on the same module see the new
 * generation and reopen their sessions.
 */
export function reinitialise(mod: LoadedModule, seenGeneration: number): void {
  if (mod.generation !== seenGeneration) return;
  try {
    mod.api.C_Finalize();
  } catch {
    // already finalised or the library is in a bad state: C_Initialize decides
  }
  mod.initialised = false;
  mod.generation++;
}

/** Drops one reference; the last one finalises and unloads the library. */
export function releaseModule(mod: LoadedModule): void {
  mod.refs--;
  if (mod.refs > 0) return;
  modules.delete(mod.path);
  try {
    if (mod.initialised) mod.api.C_Finalize();
  } catch {
    // nothing to do on the way out
  }
  try {
    mod.api.close();
  } catch {
    // idem
  }
}
