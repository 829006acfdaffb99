/**
 * One ESM file for plain `node`, native modules left external (they load their prebuilds or node-gyp builds from
 * node_modules at run time). Used by `npm run build:gateway` and by the soak bench, which measures what ships.
 */
import { build } from 'esbuild';

export const NATIVE_EXTERNALS = ['classic-level', 'level', '@serialport/bindings-cpp', 'serialport', '@serialport/binding-mock', 'pkcs11js'];

/** `define`: compile-time constants (esbuild's define), e.g. a release's version. */
export async function bundleForNode(entry: string, outfile: string, options: { define?: Record<string, string> } = {}): Promise<void> {
  await build({
    ...(options.define === undefined ? {} : { define: options.define }),
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile,
    external: NATIVE_EXTERNALS,
    // bundled CommonJS dependencies call require(): give the ESM output one
    banner: { js: "import { createRequire as __steleRequire } from 'node:module'; const require = __steleRequire(import.meta.url);" },
    logLevel: 'warning',
  });
}
