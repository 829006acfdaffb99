/**
 * Test helper: the shared HJ 212 fixtures (../shared/domain/fixtures/hj212/), read in place, never copied.
 * `hj212FixtureDir()` is undefined when ../shared is absent (tests then skip with SHARED_SKIP_REASON).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sharedDir } from '@stele/testkit';

export interface Hj212FixtureRecord {
  id: string;
  /** The frame without its CR LF. */
  packet: string;
  expected: unknown;
  expected_strict_verdict?: 'accept' | 'reject';
}

export function hj212FixtureDir(): string | undefined {
  const dir = sharedDir();
  return dir === undefined ? undefined : join(dir, 'domain', 'fixtures', 'hj212');
}

/** Records of a .jsonl fixture; standard_examples' `computed_frame` is returned as `packet`. */
export function loadHj212Fixture(dir: string, name: string): Hj212FixtureRecord[] {
  return readFileSync(join(dir, name), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const r = JSON.parse(l) as Record<string, unknown>;
      const packet = (r.packet ?? r.computed_frame) as string;
      return { ...r, packet } as Hj212FixtureRecord;
    });
}

/** The bytes on the wire: packet + CR LF. */
export const wire = (packet: string): Uint8Array => new TextEncoder().encode(`${packet}\r\n`);
