/**
 * Where a token PIN comes from: a file (mode 0600, owned by the agent's user) or an environment variable, both
 * named in the config. The PIN itself never sits in a config file, a log line, an error message or a `where`.
 */
import { readFile, stat } from 'node:fs/promises';
import { TokenError } from './errors.ts';

export type PinSource = { file: string } | { env: string };

/** Throws TypeError unless `pin` is `{ file }` or `{ env }` (a bare PIN string is refused: it would sit in the config). */
export function checkPinSource(pin: unknown): asserts pin is PinSource {
  if (typeof pin === 'string' || typeof pin === 'number') {
    throw new TypeError('pin must name a file ({ file }) or an environment variable ({ env }), never hold the PIN itself');
  }
  if (typeof pin !== 'object' || pin === null) throw new TypeError('pin must be { file: PATH } or { env: NAME }');
  const p = pin as Record<string, unknown>;
  const keys = Object.keys(p);
  if (keys.length !== 1) throw new TypeError('pin must be { file: PATH } or { env: NAME }');
  if ('file' in p && (typeof p.file !== 'string' || p.file === '')) throw new TypeError('pin.file must be a non-empty path');
  if ('env' in p && (typeof p.env !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(p.env))) throw new TypeError('pin.env must be a variable name');
  if (!('file' in p) && !('env' in p)) throw new TypeError('pin must be { file: PATH } or { env: NAME }');
}

/** Reads the PIN (one trailing newline dropped). KEY_PIN_UNAVAILABLE when the file or variable is missing or empty. */
export async function readPin(source: PinSource, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  let pin: string | undefined;
  if ('file' in source) {
    let mode: number | undefined;
    try {
      mode = (await stat(source.file)).mode & 0o777;
    } catch {
      mode = undefined; // reported below by the read
    }
    if (mode !== undefined && process.platform !== 'win32' && (mode & 0o007) !== 0) {
      throw new TokenError('KEY_PIN_FILE_MODE', `the PIN file is open to every user of this machine (mode ${mode.toString(8)}): run \`chmod 600 ${source.file}\` (or 0640 root:stele)`, {
        where: { pinFile: source.file, mode },
      });
    }
    try {
      pin = await readFile(source.file, 'utf8');
    } catch (cause) {
      throw new TokenError('KEY_PIN_UNAVAILABLE', 'cannot read the PIN file', { cause, where: { pinFile: source.file } });
    }
    pin = pin.replace(/\r?\n$/, '');
    if (pin === '') throw new TokenError('KEY_PIN_UNAVAILABLE', 'the PIN file is empty', { where: { pinFile: source.file } });
  } else {
    pin = env[source.env];
    if (pin === undefined || pin === '') {
      throw new TokenError('KEY_PIN_UNAVAILABLE', 'the PIN environment variable is not set', { where: { pinEnv: source.env } });
    }
  }
  return pin;
}

/** Where the PIN comes from, for messages and `toJSON` (never the PIN). */
export function describePinSource(source: PinSource): string {
  return 'file' in source ? `file ${source.file}` : `env ${source.env}`;
}
