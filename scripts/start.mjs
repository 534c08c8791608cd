#!/usr/bin/env node
// `npm start`: builds the app when the sources are newer than the last build, then runs it in
// production mode with Inkast's own graceful shutdown (NEXT_MANUAL_SIG_HANDLE).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const next = path.join(root, 'node_modules', 'next', 'dist', 'bin', 'next');
const buildId = path.join(root, '.next', 'BUILD_ID');

function newestSource(dir, newest = 0) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name.startsWith('.') || e.name === 'data') continue;
    const p = path.join(dir, e.name);
    newest = e.isDirectory() ? newestSource(p, newest) : Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}

const built = fs.existsSync(buildId) ? fs.statSync(buildId).mtimeMs : 0;
const sources = ['app', 'lib', 'public', 'instrumentation.ts', 'next.config.ts', 'package.json']
  .map((p) => path.join(root, p))
  .filter((p) => fs.existsSync(p))
  .reduce((n, p) => (fs.statSync(p).isDirectory() ? newestSource(p, n) : Math.max(n, fs.statSync(p).mtimeMs)), 0);
if (sources > built) {
  console.log('Building Inkast (once after every change; takes a minute or two)…');
  const r = spawnSync(process.execPath, [next, 'build'], { cwd: root, stdio: 'inherit', env: { ...process.env, NEXT_TELEMETRY_DISABLED: '1' } });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
const port = process.env.PORT ?? '3000';
const child = spawn(process.execPath, [next, 'start', '-p', port], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, NODE_ENV: 'production', NEXT_MANUAL_SIG_HANDLE: 'true', NEXT_TELEMETRY_DISABLED: '1' },
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
