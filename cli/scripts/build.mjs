#!/usr/bin/env node
/**
 * `npm run build:cli`: the `stele` command as plain JavaScript in cli/dist/ (one file per lazily loaded
 * subcommand), so the bin starts without compiling TypeScript. Workspace packages are bundled; npm dependencies
 * stay external and load from node_modules. cli/dist/inputs.json lists the sources it was built from and when:
 * cli/bin/stele.mjs runs the build only while none of them is newer, else the sources through tsx.
 *
 * Plain JavaScript so it runs without tsx. Without esbuild (`npm ci --omit=dev`) it says so and exits 0: the bin
 * then runs the sources.
 */
import { copyFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const cliDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const root = join(cliDir, '..');
const outdir = join(cliDir, 'dist');

let esbuild;
try {
  esbuild = await import('esbuild');
} catch {
  process.stdout.write('build:cli: esbuild is not installed (a production install); `stele` runs from the TypeScript sources\n');
  process.exit(0);
}

const builtAtMs = Date.now();
await rm(outdir, { recursive: true, force: true });
const result = await esbuild.build({
  entryPoints: { stele: join(cliDir, 'src', 'main.ts') },
  bundle: true,
  splitting: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  outdir,
  metafile: true,
  logLevel: 'warning',
  // workspace packages (@stele/*) are bundled, every other package loads from node_modules as it is
  plugins: [
    {
      name: 'npm-packages-external',
      setup(build) {
        build.onResolve({ filter: /^[^./]/ }, (args) => (args.path.startsWith('@stele/') ? undefined : { path: args.path, external: true }));
      },
    },
  ],
});
// Files a bundled module loads beside itself at run time (new URL('./NAME', import.meta.url)): copied next to the chunks.
// The sim's clock preload (simulator/src/sim/faults.ts) is one; it runs in the gateway process, not in this bundle.
// Ingest's signature thread (ingest/src/verify/signature-thread.ts) is another.
const besides = ['simulator/src/sim/clock-hook.mjs', 'ingest/src/verify/verify-thread.mjs'];
for (const file of besides) await copyFile(join(root, file), join(outdir, basename(file)));
const inputs = [...Object.keys(result.metafile.inputs).map((p) => relative(root, join(process.cwd(), p))), ...besides];
await mkdir(outdir, { recursive: true });
await writeFile(join(outdir, 'inputs.json'), `${JSON.stringify({ builtAtMs, inputs }, null, 1)}\n`);
process.stdout.write(`build:cli: ${relative(root, outdir)}/stele.js from ${inputs.length} sources\n`);
