/**
 * Vite config of the officer's verifier page (VERIFIER.md §4.1). `scripts/build.ts` runs it and then adds the
 * Content-Security-Policy with the hashes of the inlined script and style: use `npm run build:web`, not vite alone.
 */
import { defineConfig } from 'vite';
import { viteSingleFile } from 'vite-plugin-singlefile';

export default defineConfig({
  root: import.meta.dirname,
  base: './',
  logLevel: 'warn',
  plugins: [viteSingleFile({ removeViteModuleLoader: true })],
  worker: { format: 'iife' },
  build: {
    target: 'es2022',
    outDir: 'dist-vite',
    emptyOutDir: true,
    assetsInlineLimit: Number.MAX_SAFE_INTEGER,
    cssCodeSplit: false,
    modulePreload: false,
    reportCompressedSize: false,
  },
});
