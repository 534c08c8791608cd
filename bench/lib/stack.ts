/**
 * The real stack a benchmark runs against: the built app in production mode (`next start`, via
 * lib/testing/app), on Ceph RGW or the local object directory, with PostgreSQL or PGlite; a
 * handler signed in through a real SMTP server on loopback. And the operations measured on it:
 * the full upload path (encoder + tus-js-client, lib/uploads/client), the decrypting download,
 * the verify job, and the raw store operations they are compared with.
 */
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import {
  AbortMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import pg from 'pg';
import { unwrapPrivateKey } from '@/lib/crypto/keys';
import { testKey } from '@/lib/crypto/testing';
import { encryptManifest, type Manifest } from '@/lib/crypto/manifest';
import { openDb } from '@/lib/db';
import { s3ClientConfig } from '@/lib/storage';
import { startApp, type RunningApp } from '@/lib/testing/app';
import { appDatabase, appMasterKey, appObjectStoreSettings, s3AppEnv } from '@/lib/testing/inspect';
import { signInLinkFrom, signInWithEmail, type MailCatcher } from '@/lib/testing/sign-in';
import { createPostgresDatabase, type S3Settings } from '@/lib/testing/targets';
import { deliveryStatus } from '@/lib/uploads/client';
import { SENDER_TOKEN_HEADER } from '@/lib/uploads';
import type { BareThreads } from '../tools/bare-verify';
import type { SentFile } from '../tools/client';
import { startClient, type Client } from './client';
import { appServerPids } from './proc';
import { MiB, now, sleep } from './util';

export type StoreKind = 'ceph' | 'local';
export type DbKind = 'postgres' | 'pglite';

export const HANDLER = 'handlaggare@bench.example';
export const SENDER = 'avsandare@bench.example';
/** The app's job lease in the bench: long, so that `locked_until − lease` is the moment a job was claimed. */
const LEASE_MS = 3_600_000;
const PROFILE_HOOK = path.resolve(import.meta.dirname, '..', 'tools', 'cpu-profile-hook.cjs');

export interface TestFile {
  path: string;
  name: string;
  size: number;
  sha256: string;
}

export interface Stack {
  store: StoreKind;
  db: DbKind;
  app: RunningApp;
  /** The app server's pid (for RSS and CPU). */
  pid: number;
  /** The process the sender, the handler and the raw store client run in (bench/tools/client.ts). */
  client: Client;
  /** The handler's session cookie. */
  cookie: string;
  /** The environment the app was started with (kept for restarts). */
  env: Record<string, string>;
  s3?: S3Client;
  bucket?: string;
  databaseUrl?: string;
  pg?: pg.Pool;
}

export interface StackOptions {
  store: StoreKind;
  db: DbKind;
  smtp: MailCatcher;
  s3Settings?: S3Settings;
  postgresAdminUrl?: string;
  /** Profile the app server and the client process into this directory (bench/tools/cpu-profile-hook.cjs). */
  profileDir?: string;
}

async function launch(env: Record<string, string>, dataDir?: string): Promise<{ app: RunningApp; pid: number }> {
  const before = new Set(appServerPids());
  const app = await startApp({ env, dataDir });
  const started = appServerPids().filter((p) => !before.has(p));
  if (started.length !== 1) throw new Error(`expected one new next-server process, found ${started.length}`);
  return { app, pid: started[0] };
}

/** The next sign-in link mailed to the handler, skipping the delivery notifications that also arrive. */
async function nextSignInLink(smtp: MailCatcher): Promise<string> {
  for (;;) {
    const mail = await smtp.nextMailTo(HANDLER, 30_000);
    try {
      return signInLinkFrom(mail);
    } catch {
      // a notification or receipt: not the one
    }
  }
}

export async function startStack(opts: StackOptions): Promise<Stack> {
  const env: Record<string, string> = {
    INKAST_ADMIN_EMAIL: HANDLER,
    SMTP_URL: opts.smtp.url,
    INKAST_LOG_LEVEL: 'warn',
    INKAST_JOB_LEASE_MS: String(LEASE_MS),
    // The bench sends far more than one sender would: no per-address limits.
    INKAST_RATE_DELIVERIES_PER_IP: 'off',
    INKAST_RATE_UPLOAD_BYTES_PER_IP: 'off',
    INKAST_RATE_SIGN_IN_PER_ADDRESS: 'off',
    INKAST_RATE_SIGN_IN_PER_IP: 'off',
    ...(opts.profileDir && { NODE_OPTIONS: `--require ${PROFILE_HOOK}`, INKAST_BENCH_PROFILE_DIR: opts.profileDir }),
  };
  if (opts.store === 'ceph') {
    if (!opts.s3Settings) throw new Error('no S3 server answers: start Ceph (scripts/ceph-rgw-start.sh) or use --stores local');
    Object.assign(env, await s3AppEnv(opts.s3Settings));
  }
  let databaseUrl: string | undefined;
  if (opts.db === 'postgres') {
    if (!opts.postgresAdminUrl) throw new Error('PostgreSQL does not answer: start it or use --db pglite');
    databaseUrl = await createPostgresDatabase(opts.postgresAdminUrl);
    env.DATABASE_URL = databaseUrl;
  }
  const client = await startClient(opts.profileDir ? { hook: PROFILE_HOOK, dir: opts.profileDir } : undefined);
  const { app, pid } = await launch(env).catch(async (err: unknown) => {
    await client.stop();
    throw err;
  });
  const stack: Stack = { store: opts.store, db: opts.db, app, pid, client, cookie: '', env, databaseUrl };
  running.add(stack);
  try {
    const store = appObjectStoreSettings(app);
    if (store.kind === 's3') {
      stack.s3 = new S3Client(s3ClientConfig(store));
      stack.bucket = store.bucket;
    }
    if (databaseUrl) {
      stack.pg = new pg.Pool({ connectionString: databaseUrl, max: 4 });
    }
    stack.cookie = await signInWithEmail(app.url, HANDLER, () => nextSignInLink(opts.smtp));
    return stack;
  } catch (err) {
    await destroyStack(stack, { postgresAdminUrl: opts.postgresAdminUrl });
    throw err;
  }
}

const running = new Set<Stack>();

/** On Ctrl-C: the app servers this run started are killed by pid, not left behind. */
export function killRunningApps(): void {
  for (const s of running) {
    try {
      process.kill(s.pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
}

/** Stops the app and starts it again on the same data, database and bucket: a clean heap (envOverride: this start only). */
export async function restartStack(
  stack: Stack,
  smtp: MailCatcher,
  envOverride: Record<string, string> = {},
  started: (app: RunningApp) => void = () => {},
): Promise<void> {
  await stack.app.stop();
  const { app, pid } = await launch({ ...stack.env, ...envOverride }, stack.app.dataDir);
  stack.app = app;
  stack.pid = pid;
  started(app);
  stack.cookie = await signInWithEmail(app.url, HANDLER, () => nextSignInLink(smtp));
}

/** Stops the app and removes what it stored (bucket, database, data directory) unless `keep`. */
export async function destroyStack(stack: Stack, opts: { keep?: boolean; postgresAdminUrl?: string } = {}): Promise<void> {
  await stack.app.stop().catch(() => {});
  await stack.client.stop();
  running.delete(stack);
  await stack.pg?.end().catch(() => {});
  if (opts.keep) return;
  if (stack.s3 && stack.bucket) {
    await emptyBucket(stack.s3, stack.bucket).catch(() => {});
    await stack.s3.send(new DeleteBucketCommand({ Bucket: stack.bucket })).catch(() => {});
    stack.s3.destroy();
  }
  if (stack.databaseUrl && opts.postgresAdminUrl) {
    const admin = new pg.Client({ connectionString: opts.postgresAdminUrl });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${new URL(stack.databaseUrl).pathname.slice(1)} WITH (FORCE)`).catch(() => {});
    await admin.end();
  }
  fs.rmSync(stack.app.dataDir, { recursive: true, force: true });
}

async function emptyBucket(s3: S3Client, bucket: string): Promise<void> {
  for (;;) {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
    const keys = (page.Contents ?? []).map((o) => o.Key!).filter(Boolean);
    if (!keys.length) break;
    await Promise.all(keys.map((Key) => s3.send(new DeleteObjectCommand({ Bucket: bucket, Key }))));
  }
  const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  for (const u of uploads.Uploads ?? []) {
    await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key!, UploadId: u.UploadId! })).catch(() => {});
  }
}

// ---- test files ----

/** Random bytes (AES-CTR keystream: fast, incompressible), written for real, with their SHA-256. */
export async function makeTestFile(dir: string, name: string, size: number): Promise<TestFile> {
  const file = path.join(dir, name);
  const cipher = crypto.createCipheriv('aes-128-ctr', crypto.randomBytes(16), crypto.randomBytes(16));
  const hash = crypto.createHash('sha256');
  const zeros = Buffer.alloc(8 * MiB);
  const fh = await fsp.open(file, 'w');
  try {
    for (let written = 0; written < size; ) {
      const n = Math.min(zeros.length, size - written);
      const bytes = cipher.update(zeros.subarray(0, n));
      hash.update(bytes);
      for (let off = 0; off < bytes.length; ) off += (await fh.write(bytes, off, bytes.length - off)).bytesWritten;
      written += n;
    }
  } finally {
    await fh.close();
  }
  return { path: file, name, size, sha256: hash.digest('hex') };
}

// ---- the full path ----

/** A file sent through the full path, and the test file it came from. */
export interface Sent extends SentFile {
  file: TestFile;
}

/** Opens a delivery and uploads one file through the encoder and tus-js-client, as a sender does (in the client process). */
export async function sendFile(stack: Stack, file: TestFile, chunkSize?: number): Promise<Sent> {
  const sent = await stack.client.run('send', { appUrl: stack.app.url, slug: stack.app.slug, senderEmail: SENDER, file, chunkSize });
  return { ...sent, file };
}

/** Hands in the manifest (the file's SHA-256 known from generating it; lib/uploads/client's submit re-reads the file). */
export async function submitSent(stack: Stack, sent: Sent): Promise<void> {
  const manifest: Manifest = {
    version: 1,
    subject: 'Benchmark',
    message: '',
    files: [{ uploadId: sent.uploadId, name: sent.file.name, type: 'application/octet-stream', size: sent.file.size, sha256: sent.file.sha256 }],
  };
  const bytes = await encryptManifest(manifest, sent.delivery.publicKeys);
  const res = await fetch(`${stack.app.url}/api/deliveries/${sent.delivery.deliveryId}/submit`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', [SENDER_TOKEN_HEADER]: sent.delivery.senderToken },
    body: JSON.stringify({ manifest: Buffer.from(bytes).toString('base64') }),
  });
  if (!res.ok) throw new Error(`submit answered ${res.status}: ${await res.text()}`);
}

export interface Verified {
  /** Hand-in answered → the sender's status poll (50 ms) saw 'delivered': includes the worker's pickup (polls every 1 s). */
  pollSeconds: number;
  /** The verify job from its claim to delivered_at (PostgreSQL only: read from the jobs and deliveries rows). */
  jobSeconds?: number;
}

/** Submits and waits until the verify job has delivered the delivery; times the job. */
export async function submitAndVerify(stack: Stack, sent: Sent, timeoutMs = 30 * 60_000): Promise<Verified> {
  const deliveryId = sent.delivery.deliveryId;
  await submitSent(stack, sent);
  const t0 = now();
  let claimedAt: number | undefined;
  const until = Date.now() + timeoutMs;
  // With PostgreSQL the jobs row is read every 20 ms (not the app); the app's status every 250 ms.
  // Without it the status poll is the clock: every 50 ms.
  let lastStatus = 0;
  for (;;) {
    if (stack.pg && claimedAt === undefined) {
      const r = await stack.pg.query<{ state: string; claimed: Date | null }>(
        `SELECT state, locked_until - $2::double precision * interval '1 millisecond' AS claimed
           FROM jobs WHERE kind = 'verify-delivery' AND payload->>'deliveryId' = $1`,
        [deliveryId, LEASE_MS],
      );
      if (r.rows[0]?.state === 'running' && r.rows[0].claimed) claimedAt = r.rows[0].claimed.getTime();
      if (r.rows[0]?.state === 'done' || r.rows[0]?.state === 'failed') claimedAt = NaN; // ran between two polls
    }
    if (!stack.pg || now() - lastStatus >= 250) {
      lastStatus = now();
      const status = await deliveryStatus(stack.app.url, sent.delivery);
      if (status.state === 'rejected') throw new Error(`delivery rejected: ${status.rejectReason}`);
      if (status.state === 'delivered') break;
      if (Date.now() > until) throw new Error(`delivery still ${status.state} after ${timeoutMs} ms`);
    }
    await sleep(stack.pg ? 20 : 50);
  }
  const pollSeconds = (now() - t0) / 1000;
  let jobSeconds: number | undefined;
  if (stack.pg) {
    const d = await stack.pg.query<{ delivered_at: Date }>(`SELECT delivered_at FROM deliveries WHERE id = $1`, [deliveryId]);
    if (claimedAt !== undefined && Number.isFinite(claimedAt)) jobSeconds = (d.rows[0].delivered_at.getTime() - claimedAt) / 1000;
  }
  return { pollSeconds, jobSeconds };
}

/** The handler's file ids of a delivery, as its page links them. */
export async function fileIdsOf(stack: Stack, deliveryId: string): Promise<string[]> {
  const res = await fetch(`${stack.app.url}/inbox/deliveries/${deliveryId}`, { headers: { cookie: stack.cookie } });
  if (!res.ok) throw new Error(`the delivery page answered ${res.status}`);
  return [...new Set([...(await res.text()).matchAll(/\/api\/files\/([0-9a-f-]{36})/g)].map((m) => m[1]))];
}

/** GET /api/files/<id> as the signed-in handler: the decrypting download (in the client process). */
export function download(stack: Stack, fileId: string): Promise<{ bytes: number; seconds: number }> {
  return stack.client.run('download', { appUrl: stack.app.url, cookie: stack.cookie, fileId });
}

// ---- the raw store ----

function localObject(stack: Stack, key: string): string {
  return path.join(stack.app.dataDir, 'objects', key);
}

/** The same bytes written straight to the store (in the client process): @aws-sdk/lib-storage into the bucket, or a stream copy into the object directory. */
export function rawWrite(stack: Stack, file: TestFile, key: string, opts: { partSize: number; queueSize: number }): Promise<{ seconds: number }> {
  return stack.client.run('rawWrite', { store: appObjectStoreSettings(stack.app), file, key, ...opts });
}

/** A plain GET of an object (its ciphertext), no decryption (in the client process). */
export function rawRead(stack: Stack, key: string): Promise<{ bytes: number; seconds: number }> {
  return stack.client.run('rawRead', { store: appObjectStoreSettings(stack.app), key });
}

export async function rawDelete(stack: Stack, key: string): Promise<void> {
  if (stack.s3) await stack.s3.send(new DeleteObjectCommand({ Bucket: stack.bucket!, Key: key }));
  else await fsp.rm(localObject(stack, key), { force: true });
}

// ---- verification outside the app ----

/** The mailbox private keys, armored, read as an auditor would (PGlite: only while the app is stopped). */
export async function privateKeysOf(stack: Stack): Promise<string[]> {
  const db = stack.databaseUrl ? await openDb({ databaseUrl: stack.databaseUrl }) : await appDatabase(stack.app);
  try {
    const mk = appMasterKey(stack.app);
    const rows = (await db.query<{ wrapped_private_key: Uint8Array }>(`SELECT wrapped_private_key FROM mailbox_keys`)).rows;
    return rows.map((r) => unwrapPrivateKey(mk.key, mk.id, Buffer.from(r.wrapped_private_key)));
  } finally {
    await db.close();
  }
}

/** lib/crypto/decoder's verifyStoredObject over the app's object store, in the client process: the verify pass without the app. */
export function verifyInProcess(stack: Stack, key: string, size: number, armoredKeys: string[]): Promise<{ seconds: number; sha256: string }> {
  return stack.client.run('verify', { store: appObjectStoreSettings(stack.app), key, size, armoredKeys });
}

/** The bare verifier (bench/tools/bare-verify.ts) over the object, in the client process: the least any verification does. */
export function bareVerify(stack: Stack, key: string, threads: BareThreads): Promise<{ bytes: number; seconds: number }> {
  return stack.client.run('bareVerify', { store: appObjectStoreSettings(stack.app), key, threads });
}

// ---- yardstick servers: a bare tus server, a bare relay ----

/** A bench tool server (bench/tools/<script>) in its own process. */
export interface ToolServer {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/** Spawns bench/tools/<script>, which prints "listening <port>" when ready. */
async function startToolServer(script: string, extraEnv: Record<string, string>): Promise<ToolServer> {
  const root = path.resolve(import.meta.dirname, '..', '..');
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', NODE_ENV: 'production', ...extraEnv };
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'bench', 'tools', script)], {
    cwd: root,
    env: env as NodeJS.ProcessEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stderr!.on('data', (d) => (out += d));
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /listening (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}: ${out}`)));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid!,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** bench/tools/bare-tus.ts in its own process, on the stack's bucket or a directory beside its objects. */
export function startBareTus(stack: Stack): Promise<ToolServer> {
  const env: Record<string, string> = {};
  for (const k of ['S3_ENDPOINT', 'S3_BUCKET', 'S3_REGION', 'S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY']) if (stack.env[k]) env[k] = stack.env[k];
  if (!stack.s3) env.BARE_TUS_DIRECTORY = path.join(stack.app.dataDir, 'bare-objects');
  return startToolServer('bare-tus.ts', env);
}

/** bench/tools/relay.ts in its own process, on the stack's store, writing as the raw client does. */
export function startRelay(stack: Stack, raw: { partSize: number; queueSize: number }): Promise<ToolServer> {
  return startToolServer('relay.ts', {
    RELAY_STORE: JSON.stringify(appObjectStoreSettings(stack.app)),
    RELAY_PART_SIZE: String(raw.partSize),
    RELAY_QUEUE: String(raw.queueSize),
  });
}

/** The file's bytes (with `encrypt`, bare-encrypted on the way) through the bare relay into the store, under `key` (in the client process). */
export function relayWrite(stack: Stack, relay: ToolServer, file: TestFile, key: string, encrypt = false): Promise<{ seconds: number }> {
  return stack.client.run('relayWrite', { relayUrl: relay.url, file, key, encrypt });
}

/** An object (its ciphertext) streamed through the bare relay (in the client process). */
export function relayRead(stack: Stack, relay: ToolServer, key: string): Promise<{ bytes: number; seconds: number }> {
  return stack.client.run('relayRead', { relayUrl: relay.url, key });
}

let benchKey: Promise<string> | undefined;

/** The same client (encoder + tus-js-client, same chunk size) against the bare tus server. */
export async function sendBare(stack: Stack, bare: ToolServer, file: TestFile, chunkSize?: number): Promise<SentFile> {
  benchKey ??= testKey('Bench').then((k) => k.publicKey);
  return stack.client.run('sendBare', { bareUrl: bare.url, publicKey: await benchKey, file, chunkSize });
}

/** Removes what the bare server stored for an upload (object and tus sidecars). */
export async function bareDelete(stack: Stack, uploadId: string): Promise<void> {
  if (stack.s3) {
    for (const Key of [uploadId, `${uploadId}.info`, `${uploadId}.part`]) await stack.s3.send(new DeleteObjectCommand({ Bucket: stack.bucket!, Key })).catch(() => {});
  } else {
    for (const f of [uploadId, `${uploadId}.json`]) await fsp.rm(path.join(stack.app.dataDir, 'bare-objects', f), { force: true });
  }
}
