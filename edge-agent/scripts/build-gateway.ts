/**
 * Bundles the gateway into one ESM file, dist/stele-gateway.mjs, for plain `node`. Native modules stay external
 * (they load their linux-x64/arm64 prebuilds or node-gyp builds from node_modules at run time).
 */
import { build } from 'esbuild';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const outfile = join(root, 'dist', 'stele-gateway.mjs');
await build({
  entryPoints: [join(root, 'edge-agent', 'src', 'bin-gateway.ts')],
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  outfile,
  external: ['classic-level', 'level', '@serialport/bindings-cpp', 'serialport', '@serialport/binding-mock', 'pkcs11js'],
  banner: { js: "import { createRequire as __steleRequire } from 'node:module'; const require = __steleRequire(import.meta.url);" },
  logLevel: 'warning',
});
process.stdout.write(`built ${outfile}\n`);
