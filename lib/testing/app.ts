/**
 * Starts the built app (`next start`, production mode) as a child process for integration and
 * browser tests, on a free loopback port with its own data directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..', '..');

export interface RunningApp {
  url: string;
  port: number;
  dataDir: string;
  /** The first-start administrator's filedrop slug. */
  slug: string;
  env: Record<string, string>;
  /** Everything the process printed, stdout and stderr. */
  output(): string;
  stop(): Promise<void>;
  kill(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

export function newDataDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'inkast-test-'));
}

function waitForExit(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
  });
}

export interface StartOptions {
  env?: Record<string, string>;
  dataDir?: string;
  port?: number;
}

export async function startApp(opts: StartOptions = {}): Promise<RunningApp> {
  if (!fs.existsSync(path.join(root, process.env.INKAST_NEXT_DIST_DIR || '.next', 'BUILD_ID'))) {
    throw new Error('The app is not built: run `npm run build` (npm test does it first)');
  }
  const port = opts.port ?? (await freePort());
  const dataDir = opts.dataDir ?? newDataDir();
  const url = `http://127.0.0.1:${port}`;
  const env: Record<string, string> = {
    INKAST_DATA_DIR: dataDir,
    INKAST_PUBLIC_URL: url,
    INKAST_LOG_LEVEL: 'warn',
    ...opts.env,
  };
  const child = spawn(process.execPath, [path.join(root, 'node_modules', 'next', 'dist', 'bin', 'next'), 'start', '-p', String(port), '-H', '127.0.0.1'], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', TMPDIR: os.tmpdir(), NODE_ENV: 'production', NEXT_MANUAL_SIG_HANDLE: 'true', NEXT_TELEMETRY_DISABLED: '1', ...(process.env.INKAST_NEXT_DIST_DIR ? { INKAST_NEXT_DIST_DIR: process.env.INKAST_NEXT_DIST_DIR } : {}), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = waitForExit(child);

  const deadline = Date.now() + 60_000;
  let slug: string | undefined;
  for (;;) {
    slug = /\/d\/([1-9A-HJ-NP-Za-km-z]+)/.exec(out)?.[1];
    if (slug) {
      const ok = await fetch(`${url}/api/health`).then((r) => r.ok, () => false);
      if (ok) break;
    }
    if (child.exitCode !== null) throw new Error(`the app exited with ${child.exitCode}:\n${out}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the app did not start within 60 s:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    port,
    dataDir,
    slug,
    env,
    output: () => out,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
    async kill() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}
