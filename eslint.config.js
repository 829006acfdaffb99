// ESLint (flat config) with typescript-eslint: the guardrails CI runs (`npm run lint`). See docs/developer.md
// "Lint and package boundaries".
import { builtinModules } from 'node:module';
import tseslint from 'typescript-eslint';

const NODE_MODULES = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

/** Node globals a browser does not have. */
const NODE_GLOBALS = ['process', 'Buffer', 'global', '__dirname', '__filename', 'require', 'module', 'exports', 'setImmediate', 'clearImmediate'].map((name) => ({
  name,
  message: 'core/ runs in the browser page too: no Node globals (pass what you need in, or use a web API).',
}));

/**
 * An import of another package's file (`@stele/core/verify/index.ts`) instead of its entry point
 * (`@stele/core`): the file layout becomes the public API. A warning until the boundary plan in
 * docs/developer.md lands; then an error.
 */
const DEEP_IMPORT = 'Literal[value=/^@stele\\/[^/]+\\/./]';
const DEEP_IMPORT_MESSAGE = "Import another package through its entry point (e.g. '@stele/core'), not its files: see docs/developer.md, package boundaries.";

export default tseslint.config(
  {
    ignores: ['**/node_modules/**', '**/dist/**', '.tmp/**', 'demo-out/**', 'coverage/**', 'test/vectors/**', 'docs/**'],
  },
  {
    files: ['**/*.ts', '**/*.mjs', '**/*.js'],
    extends: [tseslint.configs.base],
    rules: {
      'no-restricted-syntax': [
        'warn',
        { selector: `ImportDeclaration > ${DEEP_IMPORT}.source`, message: DEEP_IMPORT_MESSAGE },
        { selector: `ExportNamedDeclaration > ${DEEP_IMPORT}.source`, message: DEEP_IMPORT_MESSAGE },
        { selector: `ExportAllDeclaration > ${DEEP_IMPORT}.source`, message: DEEP_IMPORT_MESSAGE },
        { selector: `ImportExpression > ${DEEP_IMPORT}.source`, message: DEEP_IMPORT_MESSAGE },
      ],
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
