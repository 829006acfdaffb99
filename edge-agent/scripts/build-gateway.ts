/** `npm run build:gateway`: the gateway as dist/stele-gateway.mjs for plain `node` (what the systemd unit runs). */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleForNode } from './bundle.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const outfile = join(root, 'dist', 'stele-gateway.mjs');
await bundleForNode(join(root, 'edge-agent', 'src', 'bin-gateway.ts'), outfile);
process.stdout.write(`built ${outfile}\n`);
