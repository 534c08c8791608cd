#!/usr/bin/env node
// Runs every *.test.ts beside the code with node's test runner (Node 20 has no --test globs).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const roots = process.argv.slice(2).length ? process.argv.slice(2) : ['lib', 'app', 'bin', 'scripts', 'e2e'];
const files = [];
const walk = (dir) => {
  if (!fs.existsSync(dir)) return;
  if (fs.statSync(dir).isFile()) return void (dir.endsWith('.test.ts') && files.push(dir));
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name.startsWith('.')) continue;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p);
    else if (e.name.endsWith('.test.ts') || e.name.endsWith('.test.tsx')) files.push(p);
  }
};
roots.forEach(walk);
files.sort();
const r = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=spec', ...files],
  { stdio: 'inherit' },
);
process.exit(r.status ?? 1);
