/**
 * The ceiling of the ingest-throughput setup (bench/src/ingest-throughput.ts `--ceiling`): a consumer that does only
 * what no ingest can skip. It subscribes to every device's statements (QoS 1, acknowledged as they arrive), decodes
 * each message and its statement, and verifies the signature with WebCrypto at most IN_FLIGHT at once; no chain
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

const [url, keysFile, inFlightArg] = process.argv.slice(2);
if (url === undefined || keysFile === undefined) throw new Error('usage: ceiling-consumer MQTT_URL KEYS_JSON IN_FLIGHT');
const keys = new Map(Object.entries(JSON.parse(readFileSync(keysFile, 'utf8')) as Record<string, string>).map(([d, k]) => [d, fromHex(k)]));
const inFlight = Number(inFlightArg ?? 64);
let verified = 0;
let failed = 0;
let running = 0;
let waiting: ParsedStatement[] = [];
let head = 0;

function start(p: ParsedStatement): void {
  running++;
  void verifyStatementSignature(p, keys.get(p.device)!).then(
    (ok) => done(ok),
    () => done(false),
  );
}

function done(ok: boolean): void {
  running--;
  if (ok) verified++;
  else failed++;
  if (head < waiting.length) {
    start(waiting[head++]!);
    if (head === waiting.length) [waiting, head] = [[], 0];
  }
}

const client = await mqtt.connectAsync(url, { clientId: `ceiling-${process.pid}`, writeCache: false } as mqtt.IClientOptions);
client.on('message', (_topic, payload) => {
  try {
    const m = decodeStatementMessage(new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength), 65_536);
    const p = parseStatement(m.statement);
    if (running < inFlight) start(p);
    else waiting.push(p);
  } catch {
    failed++;
  }
});
await client.subscribeAsync('stele/v1/+/statements', { qos: 1 });
process.stdout.write('ready\n');
setInterval(() => process.stdout.write(`${verified} ${failed}\n`), 50);
