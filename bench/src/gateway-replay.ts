/**
 * Replay after an outage (issue #5 acceptance): 100,000 readings buffered in the outbox reach real ingest at
 * >= 2,000 readings/s.
 *
 *   npm run bench -- gateway-replay [--count 100000] [--broker mosquitto|aedes] [--window N (default: Publisher's)]
 *
 * Setup (not timed): a broker, ingest as a child process with its embedded chain, and an outbox holding `count`
 * signed, chained readings. Building them through `Outbox.take` would cost one fsync per reading (minutes for
 * 100k), so the backlog is written straight into the outbox's LevelDB with its documented layout (outbox.ts:
 * `e!<seq>` entries, `m!head`), in batches; `Outbox.open` then checks the head against the last entry as it does
 * after any crash. Timed: from `Publisher.start()` until the outbox's acked mark reaches `count`, i.e. every
 * reading verified, chained and committed by ingest and acknowledged back.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Level } from 'level';
import { utf8, encodeCbor, sha256, encodeReading, GENESIS_PREV, readingDigest } from '@stele/core';
import { signStatement } from '@stele/core/cose';
import { createSoftwareKey } from '@stele/device';
import { Outbox, Publisher } from '@stele/edge-agent';
import { machineLine, startStack } from './gateway-stack.ts';

const DEVICE = 'gw-bench-replay';

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { count: { type: 'string', default: '100000' }, broker: { type: 'string' }, window: { type: 'string' } },
  });
  const count = Number(values.count);
  const windowSize = values.window === undefined ? undefined : Number(values.window);
  const say = (s: string) => process.stderr.write(`${s}\n`);
  const dir = await mkdtemp(join(tmpdir(), 'stele-bench-replay-'));
  const stack = await startStack(dir, values.broker === undefined ? {} : { broker: values.broker as 'mosquitto' | 'aedes' });
  try {
    const signer = await createSoftwareKey(join(dir, 'gw.pem'));
    await stack.enrol(signer, DEVICE);

    say(`building a backlog of ${count} readings`);
    const t0 = performance.now();
    const db = new Level<string, Uint8Array>(join(dir, 'outbox'), { keyEncoding: 'utf8', valueEncoding: 'view' });
    await db.open();
    let prev = GENESIS_PREV;
    let ops: { type: 'put'; key: string; value: Uint8Array }[] = [];
    const takenAt = Date.now();
    for (let seq = 1; seq <= count; seq++) {
      const frame = utf8(`##0100QN=${seq};ST=31;CN=2011;CP=&&a21026-Rtd=${(seq % 100) + 0.5}&&\r\n`);
      const reading = encodeReading({
        v: 1,
        device: DEVICE,
        sensor: 'cems-1',
        seq,
        prev,
        time: 1_790_000_000_000 + seq * 1000,
        clock: { synced: true, source: 'ntp' },
        meas: [
          { code: 'a21026', kind: 'Rtd', value: `${(seq % 100) + 0.5}`, unit: 'mg/m3', flag: 'N' },
          { code: 'a19001', kind: 'Rtd', value: '6.8', unit: '%', flag: 'N' },
        ],
        raw: [sha256(frame)],
      });
      const statement = await signStatement(reading, signer);
      prev = readingDigest(reading);
      ops.push({ type: 'put', key: `e!${String(seq).padStart(16, '0')}`, value: encodeCbor({ reading, statement, takenAt }) });
      if (ops.length === 5000 || seq === count) {
        if (seq === count) ops.push({ type: 'put', key: 'm!head', value: encodeCbor({ seq, digest: prev, device: DEVICE }) });
        await db.batch(ops, { sync: true });
        ops = [];
      }
    }
    await db.close();
    say(`backlog built in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    const outbox = await Outbox.open(join(dir, 'outbox'));
    if (outbox.head().seq !== count) throw new Error('backlog not where expected');
    const publisher = new Publisher({ mqttUrl: stack.mqttUrl, deviceId: DEVICE, outbox, ingestKey: stack.ingestKey, ...(windowSize === undefined ? {} : { windowSize }) });
    const perSecond: number[] = [];
    let last = 0;
    const start = performance.now();
    const ticker = setInterval(() => {
      const a = outbox.ackedUpTo();
      perSecond.push(a - last);
      last = a;
    }, 1000);
    await publisher.start();
    const until = Date.now() + 600_000;
    while (outbox.ackedUpTo() < count) {
      if (Date.now() > until) throw new Error(`replay stalled at ${outbox.ackedUpTo()}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    const elapsedS = (performance.now() - start) / 1000;
    clearInterval(ticker);
    const status = publisher.status();
    await publisher.stop();
    await outbox.close();
    const ingestHead = await stack.head(DEVICE);
    const rate = count / elapsedS;
    const health = (await (await fetch(`${stack.api}/health`)).json()) as { duplicates: number; rejected: Record<string, number> };
    const result = [
      `- Date: ${new Date().toISOString()}; machine: ${await machineLine()}`,
      `- Command: \`npm run bench -- gateway-replay --count ${count}${values.broker ? ` --broker ${values.broker}` : ''}${windowSize === undefined ? '' : ` --window ${windowSize}`}\` (broker: ${stack.broker}; window ${windowSize ?? 'default'})`,
      `- ${count} readings replayed in ${elapsedS.toFixed(1)} s: **${Math.round(rate).toLocaleString('en-US')} readings/s** ` +
        `(acked mark at ${count}, ingest head ${ingestHead}; resends ${status.resends}, ingest duplicates ${health.duplicates}, rejected ${JSON.stringify(health.rejected)})`,
      `- Per second (acked): min ${Math.min(...perSecond)}, median ${median(perSecond)}, max ${Math.max(...perSecond)}`,
    ].join('\n');
    process.stdout.write(`${result}\n`);
    if (rate < 2000) process.exitCode = 1;
  } finally {
    await stack.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}
