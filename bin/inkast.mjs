#!/usr/bin/env node
// The `inkast` command: loads the TypeScript CLI through tsx with the project's tsconfig, so it
// works from any directory.
import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';

register({ tsconfig: fileURLToPath(new URL('../tsconfig.json', import.meta.url)) });
await import('./cli.ts');
