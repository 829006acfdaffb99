/**
 * The node flags a systemd unit starts its bundle with: the gateway's (edge-agent/systemd/stele-gateway.service),
 * what the soak bench and the release's emulation test run the bundle with, and ingest's
 * (ingest/systemd/stele-ingest.service), what the ingest-throughput bench runs ingest with, so that they measure what
 * ships.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const UNIT_FILE = join(dirname(fileURLToPath(import.meta.url)), '..', 'systemd', 'stele-gateway.service');

export const INGEST_UNIT_FILE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'ingest', 'systemd', 'stele-ingest.service');

/** The words between the node binary and the bundle on the unit's ExecStart line (`name` names it in errors). */
export function unitNodeFlags(unit: string = readFileSync(UNIT_FILE, 'utf8'), name = 'stele-gateway.service'): string[] {
  const line = unit.split('\n').find((l) => l.startsWith('ExecStart='));
  if (line === undefined) throw new Error(`${name}: no ExecStart line`);
  const words = line.slice('ExecStart='.length).trim().split(/\s+/);
  const bundle = words.findIndex((w) => w.endsWith('.mjs'));
  if (bundle < 1) throw new Error(`${name}: ExecStart does not run node on a bundle: ${line}`);
  return words.slice(1, bundle);
}
