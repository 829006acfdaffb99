/** mqtt.js connection options from the broker config: credentials and TLS files read here, never logged. */
import { readFile } from 'node:fs/promises';
import type { IClientOptions } from 'mqtt';
import { SteleError } from '@stele/core';
import type { BrokerConfig } from '../config/config.ts';

/**
 * - `BROKER_SECRET_UNREADABLE`: the password file or a TLS file named in the config cannot be read
 *   (`where.field` says which; the content is never in a message).
 */
export class BrokerConfigError extends SteleError<'BROKER_SECRET_UNREADABLE'> {}

async function readSecret(path: string, field: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new BrokerConfigError('BROKER_SECRET_UNREADABLE', `cannot read ${field} ${path}${code === 'ENOENT' ? ' (no such file)' : code === 'EACCES' ? ' (permission denied)' : ''}`, {
      cause,
      where: { field, path },
    });
  }
}

export async function mqttOptionsFor(broker: BrokerConfig): Promise<IClientOptions> {
  const o: IClientOptions = {};
  if (broker.username !== undefined) o.username = broker.username;
  if (broker.passwordFile !== undefined) {
    // one trailing newline is not part of the password (echo > file adds one)
    o.password = (await readSecret(broker.passwordFile, 'broker.passwordFile')).toString('utf8').replace(/\r?\n$/, '');
  }
  if (broker.tls !== undefined) {
    o.rejectUnauthorized = broker.tls.rejectUnauthorized;
    if (broker.tls.ca !== undefined) o.ca = await readSecret(broker.tls.ca, 'broker.tls.ca');
    if (broker.tls.cert !== undefined) o.cert = await readSecret(broker.tls.cert, 'broker.tls.cert');
    if (broker.tls.key !== undefined) o.key = await readSecret(broker.tls.key, 'broker.tls.key');
  }
  return o;
}
