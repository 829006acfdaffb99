// ESLint (flat config) with typescript-eslint: the guardrails CI runs (`npm run lint`). See docs/developer.md
// "Lint and package boundaries".
import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import tseslint from 'typescript-eslint';

const NODE_MODULES = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

/** Node globals a browser does not have. */
const NODE_GLOBALS = ['process', 'Buffer', 'global', '__dirname', '__filename', 'require', 'module', 'exports', 'setImmediate', 'clearImmediate'].map((name) => ({
  name,
  message: 'core/ runs in the browser page too: no Node globals (pass what you need in, or use a web API).',
}));

/**
 * An import of another package's file (`@stele/core/verify/index.ts`) instead of one of its entry points (the keys
 * of its package.json `exports`: `@stele/core`, `@stele/core/verify`, …): the file layout would become the public
 * API. An error; `node scripts/rewrite-imports.mjs` moves such imports onto the entry points.
 */
const root = dirname(fileURLToPath(import.meta.url));
const ENTRY_POINTS = new Set();
const PACKAGES = new Set();
for (const ws of JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).workspaces) {
  const pkg = JSON.parse(readFileSync(join(root, ws, 'package.json'), 'utf8'));
  PACKAGES.add(pkg.name);
  for (const key of Object.keys(pkg.exports ?? {})) ENTRY_POINTS.add(key === '.' ? pkg.name : `${pkg.name}/${key.slice(2)}`);
}
const noDeepImports = {
  meta: { type: 'problem', schema: [], messages: { deep: "'{{ spec }}' is a file of {{ pkg }}, not an entry point: import it through one of {{ entries }} (node scripts/rewrite-imports.mjs does it; see docs/developer.md, package boundaries)." } },
  create(context) {
    const check = (source) => {
      if (!source || source.type !== 'Literal' || typeof source.value !== 'string') return;
      const m = /^(@stele\/[^/]+)\/./.exec(source.value);
      if (!m || !PACKAGES.has(m[1]) || ENTRY_POINTS.has(source.value)) return;
      const entries = [...ENTRY_POINTS].filter((e) => e === m[1] || e.startsWith(`${m[1]}/`)).join(', ');
      context.report({ node: source, messageId: 'deep', data: { spec: source.value, pkg: m[1], entries } });
    };
    return {
      ImportDeclaration: (node) => check(node.source),
      ExportNamedDeclaration: (node) => check(node.source),
      ExportAllDeclaration: (node) => check(node.source),
      ImportExpression: (node) => check(node.source),
      TSImportType: (node) => check(node.argument?.literal ?? node.argument),
    };
  },
};

export default tseslint.config(
  {
    ignores: ['**/node_modules/**', '**/dist/**', '.tmp/**', 'demo-out/**', 'coverage/**', 'test/vectors/**', 'docs/**'],
  },
  {
    files: ['**/*.ts', '**/*.mjs', '**/*.js'],
    extends: [tseslint.configs.base],
    plugins: { stele: { rules: { 'no-deep-imports': noDeepImports } } },
    rules: {
      'stele/no-deep-imports': 'error',
      'no-debugger': 'error',
      'no-dupe-keys': 'error',
      'no-self-compare': 'error',
      'no-unsafe-finally': 'error',
      'no-unreachable': 'error',
      'no-cond-assign': 'error',
      'no-constant-binary-expression': 'error',
      '@typescript-eslint/no-unused-expressions': 'off',
      eqeqeq: ['error', 'always', { null: 'ignore' }],
    },
  },
  {
    // core/ is isomorphic: the browser page runs the same code (tests excepted: they run under Node).
    files: ['core/src/**/*.ts'],
    ignores: ['core/src/**/*.test.ts', 'core/src/**/test-helpers.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: NODE_MODULES.map((name) => ({ name, message: 'core/ runs in the browser page too: no Node modules.' })),
          patterns: [{ group: ['node:*'], message: 'core/ runs in the browser page too: no Node modules.' }],
        },
      ],
      'no-restricted-globals': ['error', ...NODE_GLOBALS],
    },
  },
);
