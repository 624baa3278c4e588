// typescript-eslint with type information, so floating promises are caught; workflow code (and the contract it
// imports) runs in Temporal's deterministic sandbox and may not import Node built-ins or adapters.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = builtinModules.flatMap((m) => [m, `node:${m}`]);

export default tseslint.config(
  { ignores: ['node_modules/', '.tools/', '.venv/', '.data/', 'lib/', 'coverage/', '**/*.js', '**/*.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
      // Activities must return promises even when they do not await (Temporal's typing).
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    // contract/codec.ts is the payload codec: it runs outside the sandbox (node:crypto) and is never re-exported.
    files: ['workflows/**/*.ts', 'contract/**/*.ts'],
    ignores: ['contract/codec.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({
            name,
            message: 'workflow code runs in the Temporal sandbox: no Node built-ins.',
          })),
          patterns: [
            {
              group: ['**/activities', '**/activities/*', '**/activities/**'],
              message: 'workflows import activity types only (import type).',
              allowTypeImports: true,
            },
            { group: ['@aws-sdk/*', 'mysql2', 'mysql2/*', 'ssh2'], message: 'adapters belong in activities/.' },
          ],
        },
      ],
    },
  },
  {
    // Tests build raw (untyped) documents on purpose, to feed validators bad input.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/unbound-method': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
);
