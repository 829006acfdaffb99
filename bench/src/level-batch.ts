/**
 * LevelDB batch writes through abstract-level's two forms (issue #11: why ingest's LevelDB store writes through a
 * chained batch): `db.batch(ops, { sync: true })` against `db.batch().put(...).write({ sync: true })`, the same
 * 5,000 puts of 300-byte values per batch, 20 batches each, alternated; microseconds per op, write included.
 *
 *   npx tsx bench/src/level-batch.ts
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';

const dir = await mkdtemp(join(tmpdir(), 'stele-level-batch-'));
const db = new Level<string, Uint8Array>(dir, { valueEncoding: 'view' });
await db.open();
const value = new Uint8Array(300).fill(7);
const OPS = 5000;
const BATCHES = 20;
let round = 0;
const ops = () => {
  const r = round++;
  return Array.from({ length: OPS }, (_, i) => ({ type: 'put' as const, key: `ent!gw-${i % 32}!${String(r * OPS + i).padStart(16, '0')}`, value }));
};
try {
  for (const pass of [1, 2]) {
    for (const form of ['array', 'chained'] as const) {
      let ms = 0;
      for (let b = 0; b < BATCHES; b++) {
        const batch = ops();
        const t0 = performance.now();
        if (form === 'array') await db.batch(batch, { sync: true });
        else {
          const chained = db.batch();
          for (const op of batch) chained.put(op.key, op.value);
          await chained.write({ sync: true });
        }
        ms += performance.now() - t0;
      }
      process.stdout.write(`pass ${pass}: ${form.padEnd(7)} ${((ms * 1000) / (OPS * BATCHES)).toFixed(2)} us per op\n`);
    }
  }
} finally {
  await db.close();
  await rm(dir, { recursive: true, force: true });
}
