/**
 * The node flags the systemd unit (edge-agent/systemd/stele-gateway.service) starts the gateway with: what the soak
 * bench and the release's emulation test run the bundle with, so that they measure what ships.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const UNIT_FILE = join(dirname(fileURLToPath(import.meta.url)), '..', 'systemd', 'stele-gateway.service');

/** The words between the node binary and the bundle on the unit's ExecStart line. */
export function unitNodeFlags(unit: string = readFileSync(UNIT_FILE, 'utf8')): string[] {
  const line = unit.split('\n').find((l) => l.startsWith('ExecStart='));
  if (line === undefined) throw new Error('stele-gateway.service: no ExecStart line');
  const words = line.slice('ExecStart='.length).trim().split(/\s+/);
  const bundle = words.findIndex((w) => w.endsWith('.mjs'));
  if (bundle < 1) throw new Error(`stele-gateway.service: ExecStart does not run node on a bundle: ${line}`);
  return words.slice(1, bundle);
}
