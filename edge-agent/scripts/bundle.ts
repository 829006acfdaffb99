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
    // Whitespace and syntax only, identifiers kept (stack traces name the functions). The bundle's text stays in the
    // V8 heap for as long as the process runs: unminified it is 2.0 MB of source with a few non-Latin-1 characters in
    // comments, which makes V8 hold all of it as a two-byte string (3.9 MB); minified it is 1.3 MB of ASCII
    // (docs/BENCHMARKS.md "Soak").
    minifyWhitespace: true,
    minifySyntax: true,
    // bundled CommonJS dependencies call require(): give the ESM output one
    banner: { js: "import { createRequire as __steleRequire } from 'node:module'; const require = __steleRequire(import.meta.url);" },
    logLevel: 'warning',
  });
}
