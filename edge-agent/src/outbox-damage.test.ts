/**
 * Outbox damage (issue #9): a real LevelDB on disk, damaged for real between runs: CURRENT deleted, a torn log
 * tail, flipped bits in a table file, a garbage value, a missing entry. Each time the outbox either opens with
 * nothing lost (every entry read back as it was taken, the head where it was) or refuses with a named code; it
 * never hands out a seq twice.
 */
import { readdir, readFile, rm, stat, truncate, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Level } from 'level';
import { beforeAll, describe, expect, it } from 'vitest';
import { equalBytes, encodeCbor, mulberry32 } from '@stele/core';
import type { SoftwareSigner } from '@stele/device';
import { OutboxError } from './errors.ts';
import { Outbox, OUTBOX_MARKER, type OutboxEntry } from './outbox.ts';
import { acquired, createTestKey, useOutboxDir } from './test-helpers.ts';

const outboxDir = useOutboxDir('stele-outbox-damage-');
const DEVICE = 'gw-damage-1';
let signer: SoftwareSigner;

beforeAll(async () => {
  signer = await createTestKey('stele-outbox-damage-key-');
});

const dbDir = () => join(outboxDir.dir, 'db');

/** Takes n readings (signed) and closes; returns what was taken. */
async function fill(n: number): Promise<OutboxEntry[]> {
  const o = await Outbox.open(dbDir());
  for (let i = 1; i <= n; i++) await o.take(acquired(i), signer, DEVICE);
  const entries = await o.pendingFrom(1, n);
  await o.close();
  return entries;
}

async function filesOf(ext: string): Promise<string[]> {
  return (await readdir(dbDir())).filter((f) => f.endsWith(ext)).map((f) => join(dbDir(), f));
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    if (!(err instanceof OutboxError)) throw err;
    return err.code;
  }
}

/** Opens the damaged outbox: either it refuses with a code, or everything taken reads back unchanged. */
async function openAndCheck(taken: OutboxEntry[]): Promise<string> {
  let o: Outbox;
  try {
    o = await Outbox.open(dbDir());
  } catch (err) {
    if (!(err instanceof OutboxError)) throw err;
    return err.code;
  }
  try {
    // never a lower head: that would hand out taken seqs again
    expect(o.head().seq).toBe(taken.length);
    let back: OutboxEntry[];
    try {
      back = await o.pendingFrom(1, taken.length + 10);
    } catch (err) {
      if (!(err instanceof OutboxError)) throw err;
      return `read:${err.code}`;
    }
    expect(back.map((e) => e.seq)).toEqual(taken.map((e) => e.seq));
    for (const [i, e] of back.entries()) {
      expect(equalBytes(e.reading, taken[i]!.reading)).toBe(true);
      expect(equalBytes(e.statement, taken[i]!.statement)).toBe(true);
    }
    const next = await o.take(acquired(taken.length + 1), signer, DEVICE);
    expect(next.seq).toBe(taken.length + 1);
    return 'intact';
  } finally {
    await o.close();
  }
}

describe('outbox damage', () => {
  it('writes a marker when created and never recreates an outbox whose CURRENT was deleted (OUTBOX_MISSING)', async () => {
    await fill(5);
    expect((await stat(join(dbDir(), OUTBOX_MARKER))).mode & 0o777).toBe(0o600);
    expect((await stat(dbDir())).mode & 0o777).toBe(0o700);
    await unlink(join(dbDir(), 'CURRENT'));
    expect(await codeOf(Outbox.open(dbDir()))).toBe('OUTBOX_MISSING');
    // refused again (nothing was created by the refused open), and the files are still there for the evidence
    expect(await codeOf(Outbox.open(dbDir()))).toBe('OUTBOX_MISSING');
    expect((await filesOf('.log')).length + (await filesOf('.ldb')).length).toBeGreaterThan(0);
  });

  it('refuses an outbox whose LevelDB files are all gone but whose marker is left (OUTBOX_MISSING)', async () => {
    await fill(3);
    for (const f of await readdir(dbDir())) if (f !== OUTBOX_MARKER) await rm(join(dbDir(), f), { recursive: true });
    expect(await codeOf(Outbox.open(dbDir()))).toBe('OUTBOX_MISSING');
  });

  it('creates only when asked: create false on an empty folder is OUTBOX_MISSING', async () => {
    expect(await codeOf(Outbox.open(dbDir(), { create: false }))).toBe('OUTBOX_MISSING');
  });

  it('refuses a torn log tail that lost synced takes (OUTBOX_ROLLED_BACK), so that no seq is reused', async () => {
    const taken = await fill(10);
    const [log] = await filesOf('.log');
    const size = (await stat(log!)).size;
    // cut into the last take's record (an entry is a few hundred bytes)
    await truncate(log!, size - 40);
    expect(await codeOf(Outbox.open(dbDir()))).toBe('OUTBOX_ROLLED_BACK');
    // a store of its own would say head 9: the refusal is what keeps seq 10 from being taken again
    const raw = new Level<string, Uint8Array>(dbDir(), { keyEncoding: 'utf8', valueEncoding: 'view', createIfMissing: false });
    await raw.open();
    expect((await raw.keys({ gte: 'e!', lt: 'e"' }).all()).length).toBe(taken.length - 1);
    await raw.close();
  });

  it('recovers with nothing lost when the torn tail is only the unsynced acked mark', async () => {
    const o = await Outbox.open(dbDir());
    for (let i = 1; i <= 6; i++) await o.take(acquired(i), signer, DEVICE);
    const taken = await o.pendingFrom(1, 6);
    await o.markAcked(4);
    await o.close();
    const [log] = await filesOf('.log');
    await truncate(log!, (await stat(log!)).size - 3);
    const again = await Outbox.open(dbDir());
    try {
      expect(again.head().seq).toBe(6);
      expect(again.ackedUpTo()).toBe(0); // the mark is lost: those readings are sent again (ingest acks duplicates)
      expect((await again.pendingFrom(1, 10)).map((e) => e.statement)).toEqual(taken.map((e) => e.statement));
      expect((await again.take(acquired(7), signer, DEVICE)).seq).toBe(7);
    } finally {
      await again.close();
    }
  });

  it('detects flipped bits in a table file: refuses with a code or reads everything back unchanged, never a lower head', async () => {
    const rand = mulberry32(90210);
    const outcomes: string[] = [];
    for (let trial = 0; trial < 6; trial++) {
      await rm(dbDir(), { recursive: true, force: true });
      const taken = await fill(12);
      // a reopen turns the log into a level-0 table file
      await (await Outbox.open(dbDir())).close();
      const [table] = await filesOf('.ldb');
      expect(table).toBeDefined();
      const bytes = new Uint8Array(await readFile(table!));
      // a bit in the data blocks (the table's index and footer are its last bytes)
      const at = Math.floor(rand() * (bytes.length - 200));
      bytes[at]! ^= 1 << Math.floor(rand() * 8);
      await writeFile(table!, bytes);
      const outcome = await openAndCheck(taken);
      outcomes.push(outcome);
      expect(['intact', 'OUTBOX_CORRUPT', 'OUTBOX_GAP', 'read:OUTBOX_CORRUPT', 'read:OUTBOX_GAP']).toContain(outcome);
    }
    // most flips land in values: at least some of them must have been caught, not returned as altered data
    expect(outcomes.filter((o) => o !== 'intact').length).toBeGreaterThan(0);
  });

  it('refuses a garbage value in an unacknowledged entry (OUTBOX_CORRUPT), and a substituted reading', async () => {
    const taken = await fill(8);
    let raw = new Level<string, Uint8Array>(dbDir(), { keyEncoding: 'utf8', valueEncoding: 'view' });
    await raw.put('e!0000000000000005', new Uint8Array([0xa3, 0x01, 0xff, 0x00, 0x13, 0x37]));
    await raw.close();
    expect(await codeOf(Outbox.open(dbDir()))).toBe('OUTBOX_CORRUPT');
    // a well-formed value whose reading is another seq's (what a confused repair tool might write): no sum, so
    // only the statement check can catch it
    raw = new Level<string, Uint8Array>(dbDir(), { keyEncoding: 'utf8', valueEncoding: 'view' });
    await raw.put('e!0000000000000005', encodeCbor({ reading: taken[5]!.reading, statement: taken[4]!.statement, takenAt: 1 }));
    await raw.close();
    expect(await codeOf(Outbox.open(dbDir()))).toBe('OUTBOX_CORRUPT');
  });

  it('reports a garbage value in an acknowledged (retained) entry when it is read back, with OUTBOX_CORRUPT', async () => {
    const o = await Outbox.open(dbDir());
    for (let i = 1; i <= 6; i++) await o.take(acquired(i), signer, DEVICE);
    await o.markAcked(6);
    await o.close();
    const raw = new Level<string, Uint8Array>(dbDir(), { keyEncoding: 'utf8', valueEncoding: 'view' });
    const value = await raw.get('e!0000000000000002');
    value![value!.length - 12]! ^= 0x10;
    await raw.put('e!0000000000000002', value!);
    await raw.close();
    const again = await Outbox.open(dbDir());
    try {
      expect(again.head().seq).toBe(6);
      expect(await codeOf(again.pendingFrom(1, 10))).toBe('OUTBOX_CORRUPT');
    } finally {
      await again.close();
    }
  });

  it('refuses a missing unacknowledged entry (OUTBOX_GAP)', async () => {
    await fill(8);
    const raw = new Level<string, Uint8Array>(dbDir(), { keyEncoding: 'utf8', valueEncoding: 'view' });
    await raw.del('e!0000000000000004');
    await raw.close();
    expect(await codeOf(Outbox.open(dbDir()))).toBe('OUTBOX_GAP');
  });

  it('refuses a marker that is not one (OUTBOX_CORRUPT) and heals a mark behind the head', async () => {
    await fill(3);
    const marker = join(dbDir(), OUTBOX_MARKER);
    const good = await readFile(marker);
    await writeFile(marker, 'not a marker');
    expect(await codeOf(Outbox.open(dbDir()))).toBe('OUTBOX_CORRUPT');
    // a torn slot: the other slot still holds the seq before (a cut between the take and its mark): opens
    const torn = new Uint8Array(good);
    torn[8 + (3 % 2) * 16 + 15]! ^= 1;
    await writeFile(marker, torn);
    const o = await Outbox.open(dbDir());
    expect(o.head().seq).toBe(3);
    await o.close();
  });
});
