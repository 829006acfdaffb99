/**
 * The ceiling of the ingest-throughput setup (the first row of bench/src/ingest-throughput.ts, unless `--skip-ceiling`): a consumer that does only
 * what no ingest can skip. It subscribes to every device's statements (QoS 1, acknowledged as they arrive), decodes
 * each message and its statement, and verifies the signature with WebCrypto at most IN_FLIGHT at once, on a signature thread as ingest does; no chain
 * check, no store, no confirmation, no batch. Prints "ready", then every 50 ms "<verified> <failed>".
 *
 *   node --import tsx bench/src/ceiling-consumer.ts MQTT_URL KEYS_JSON IN_FLIGHT
 *
 * KEYS_JSON: {deviceId: hex SEC1 public key}.
 */
import { readFileSync } from 'node:fs';
import mqtt from 'mqtt';
import { fromHex, parseStatement, verifyStatementSignature, type ParsedStatement } from '@stele/core';
import { decodeStatementMessage } from '@stele/core/wire';
import { InFlightLimit } from '../../ingest/src/verify/limit.ts';
import { SignatureThread } from '../../ingest/src/verify/signature-thread.ts';

const [url, keysFile, inFlightArg] = process.argv.slice(2);
if (url === undefined || keysFile === undefined) throw new Error('usage: ceiling-consumer MQTT_URL KEYS_JSON IN_FLIGHT');
const keys = new Map(Object.entries(JSON.parse(readFileSync(keysFile, 'utf8')) as Record<string, string>).map(([d, k]) => [d, fromHex(k)]));
const inFlight = Number(inFlightArg ?? 64);
// checked as ingest checks them: on a signature thread, at most IN_FLIGHT at once (STELE_CEILING_ON_MAIN=1: on
// this thread, bounded the same way)
const onMain = process.env['STELE_CEILING_ON_MAIN'] === '1';
const limit = new InFlightLimit(inFlight);
const thread = SignatureThread.create(inFlight, (level, msg) => process.stderr.write(`${level} ${msg}\n`));
let verified = 0;
let failed = 0;

function check(p: ParsedStatement): void {
  const key = keys.get(p.device)!;
  const ok = onMain ? limit.run(() => verifyStatementSignature(p, key)) : thread.verify(key, p.toBeSigned, p.signature);
  void ok.then(
    (ok) => (ok ? verified++ : failed++),
    () => failed++,
  );
}

const client = await mqtt.connectAsync(url, { clientId: `ceiling-${process.pid}`, writeCache: false } as mqtt.IClientOptions);
client.on('message', (_topic, payload) => {
  try {
    const m = decodeStatementMessage(new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength), 65_536);
    const p = parseStatement(m.statement);
    check(p);
  } catch {
    failed++;
  }
});
await client.subscribeAsync('stele/v1/+/statements', { qos: 1 });
process.stdout.write('ready\n');
setInterval(() => process.stdout.write(`${verified} ${failed}\n`), 50);
