import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'vitest';
import { createSoftwareKey } from '@stele/device';
import { Outbox } from './outbox.ts';
import { Publisher } from './publisher.ts';
import { acquired, startBroker, startFakeIngest, waitFor } from './test-helpers.ts';
it('bench', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'stele-bench-'));
  const signer = await createSoftwareKey(join(dir, 'k.pem'));
  const outbox = await Outbox.open(join(dir, 'db'));
  const N = 2000;
  await Promise.all(Array.from({ length: N }, (_, i) => outbox.take(acquired(i), signer, 'gw')));
  const broker = await startBroker();
  const fake = await startFakeIngest(broker.url, 'gw');
  for (const w of [64, 256]) {
    await outbox.markAcked(0);
    const o2 = outbox;
    const p = new Publisher({ mqttUrl: broker.url, deviceId: 'gw', outbox: o2, windowSize: w });
    const before = outbox.ackedUpTo();
    const t3 = performance.now();
    await p.start();
    await waitFor(() => outbox.ackedUpTo() === N, 5_000).catch((e) => { console.log(JSON.stringify(p.status()), fake.received.length, fake.committed(), outbox.head().seq); throw e; });
    console.log('window', w, 'publish+ack of backlog msg/s', ((N - before) / (performance.now() - t3)) * 1000);
    await p.stop();
    break;
  }
  await fake.stop(); await outbox.close(); await broker.close();
  await rm(dir, { recursive: true, force: true });
}, 120_000);
