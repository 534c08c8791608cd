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
import http from 'node:http';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AbortMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import * as openpgp from 'openpgp';
import pg from 'pg';
import { verifyStoredObject, type VerifiedObject } from '@/lib/crypto/decoder';
import { unwrapPrivateKey } from '@/lib/crypto/keys';
import { testKey } from '@/lib/crypto/testing';
import { encryptManifest, type Manifest } from '@/lib/crypto/manifest';
import type { CreatedDelivery } from '@/lib/deliveries';
import { openDb } from '@/lib/db';
import { startApp, type RunningApp } from '@/lib/testing/app';
import { appDatabase, appMasterKey, appObjectStore, s3AppEnv } from '@/lib/testing/inspect';
import { signInLinkFrom, signInWithEmail, type MailCatcher } from '@/lib/testing/sign-in';
import { createPostgresDatabase, type S3Settings } from '@/lib/testing/targets';
import { deliveryStatus, openDelivery, prepareFile, uploadFile, uploadIdOf, type FileSource, type PreparedFile } from '@/lib/uploads/client';
import { SENDER_TOKEN_HEADER } from '@/lib/uploads';
import { appServerPids } from './proc';
import { MiB, now, sleep } from './util';

export type StoreKind = 'ceph' | 'local';
export type DbKind = 'postgres' | 'pglite';

export const HANDLER = 'handlaggare@bench.example';
export const SENDER = 'avsandare@bench.example';
/** The app's job lease in the bench: long, so that `locked_until − lease` is the moment a job was claimed. */
const LEASE_MS = 3_600_000;

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
  /** More environment for the app (e.g. NODE_OPTIONS=--cpu-prof to profile it). */
  appEnv?: Record<string, string>;
}

function s3Client(env: Record<string, string>): S3Client {
  return new S3Client({
    endpoint: env.S3_ENDPOINT,
    region: env.S3_REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: env.S3_ACCESS_KEY_ID, secretAccessKey: env.S3_SECRET_ACCESS_KEY },
    // Ceph 16 refuses aws-chunked trailing checksums (TESTING.md): the same setting as the app's.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
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
    ...opts.appEnv,
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
  const { app, pid } = await launch(env);
  const stack: Stack = { store: opts.store, db: opts.db, app, pid, cookie: '', env, databaseUrl };
  running.add(stack);
  try {
    if (opts.store === 'ceph') {
      stack.s3 = s3Client(env);
      stack.bucket = env.S3_BUCKET;
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

/** A file read straight from disk (lib/uploads/client's pathSource, with a close). */
async function openSource(file: TestFile): Promise<FileSource & { close(): Promise<void> }> {
  const handle = await fsp.open(file.path, 'r');
  return {
    name: file.name,
    type: 'application/octet-stream',
    size: file.size,
    async read(start, end) {
      const buf = Buffer.allocUnsafe(end - start);
      for (let off = 0; off < buf.length; ) {
        const { bytesRead } = await handle.read(buf, off, buf.length - off, start + off);
        if (bytesRead === 0) throw new Error(`${file.path} ended early`);
        off += bytesRead;
      }
      return buf;
    },
    close: () => handle.close(),
  };
}

// ---- the full path ----

export interface Sent {
  delivery: CreatedDelivery;
  prepared: PreparedFile;
  file: TestFile;
  uploadId: string;
  /** Ciphertext bytes stored. */
  objectSize: number;
  /** From the tus creation to the last PATCH accepted. */
  seconds: number;
}

/** Opens a delivery and uploads one file through the encoder and tus-js-client, as a sender does. */
export async function sendFile(stack: Stack, file: TestFile, chunkSize?: number): Promise<Sent> {
  const delivery = await openDelivery(stack.app.url, { slug: stack.app.slug, senderEmail: SENDER, locale: 'sv' });
  const source = await openSource(file);
  try {
    const prepared = await prepareFile(delivery, source);
    const t0 = now();
    await uploadFile(stack.app.url, delivery, prepared, { chunkSize, retryDelays: [0, 1000, 3000] });
    const seconds = (now() - t0) / 1000;
    return { delivery, prepared, file, uploadId: uploadIdOf(prepared), objectSize: prepared.encoder.totalLength, seconds };
  } finally {
    await source.close();
  }
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

/** Reads a stream to its end, counting bytes. */
async function drain(stream: AsyncIterable<Uint8Array>): Promise<number> {
  let n = 0;
  for await (const chunk of stream) n += chunk.length;
  return n;
}

/** GET /api/files/<id> as the signed-in handler: the decrypting download. */
export async function download(stack: Stack, fileId: string): Promise<{ bytes: number; seconds: number }> {
  const t0 = now();
  const bytes = await new Promise<number>((resolve, reject) => {
    const req = http.get(`${stack.app.url}/api/files/${fileId}`, { headers: { cookie: stack.cookie } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return reject(new Error(`download answered ${res.statusCode}`));
      }
      drain(res).then(resolve, reject);
    });
    req.on('error', reject);
  });
  return { bytes, seconds: (now() - t0) / 1000 };
}

// ---- the raw store ----

function localObject(stack: Stack, key: string): string {
  return path.join(stack.app.dataDir, 'objects', key);
}

/** The same bytes written straight to the store: @aws-sdk/lib-storage into the bucket, or a stream copy into the object directory. */
export async function rawWrite(
  stack: Stack,
  file: TestFile,
  key: string,
  opts: { partSize: number; queueSize: number },
): Promise<{ seconds: number }> {
  const body = fs.createReadStream(file.path, { highWaterMark: MiB });
  const t0 = now();
  if (stack.s3) {
    await new Upload({
      client: stack.s3,
      params: { Bucket: stack.bucket!, Key: key, Body: body },
      partSize: opts.partSize,
      queueSize: opts.queueSize,
    }).done();
  } else {
    await pipeline(body, fs.createWriteStream(localObject(stack, key)));
  }
  return { seconds: (now() - t0) / 1000 };
}

/** A plain GET of an object (its ciphertext), no decryption. */
export async function rawRead(stack: Stack, key: string): Promise<{ bytes: number; seconds: number }> {
  const t0 = now();
  let bytes: number;
  if (stack.s3) {
    const r = await stack.s3.send(new GetObjectCommand({ Bucket: stack.bucket!, Key: key }));
    bytes = await drain(r.Body as Readable);
  } else {
    bytes = await drain(fs.createReadStream(localObject(stack, key), { highWaterMark: MiB }));
  }
  return { bytes, seconds: (now() - t0) / 1000 };
}

export async function rawDelete(stack: Stack, key: string): Promise<void> {
  if (stack.s3) await stack.s3.send(new DeleteObjectCommand({ Bucket: stack.bucket!, Key: key }));
  else await fsp.rm(localObject(stack, key), { force: true });
}

// ---- verification outside the app ----

/** The mailbox private keys, read as an auditor would (PGlite: only while the app is stopped). */
export async function privateKeysOf(stack: Stack): Promise<openpgp.PrivateKey[]> {
  const db = stack.databaseUrl ? await openDb({ databaseUrl: stack.databaseUrl }) : await appDatabase(stack.app);
  try {
    const mk = appMasterKey(stack.app);
    const rows = (await db.query<{ wrapped_private_key: Uint8Array }>(`SELECT wrapped_private_key FROM mailbox_keys`)).rows;
    return Promise.all(
      rows.map((r) => openpgp.readPrivateKey({ armoredKey: unwrapPrivateKey(mk.key, mk.id, Buffer.from(r.wrapped_private_key)) })),
    );
  } finally {
    await db.close();
  }
}

/** lib/crypto/decoder's verifyStoredObject in this process, over the app's object store: the verify pass without the app. */
export async function verifyInProcess(
  stack: Stack,
  key: string,
  size: number,
  keys: openpgp.PrivateKey[],
): Promise<{ seconds: number; result: VerifiedObject }> {
  const store = appObjectStore(stack.app);
  try {
    const t0 = now();
    const result = await verifyStoredObject({ size, read: (s, e) => store.readRange(key, s, e) }, keys);
    return { seconds: (now() - t0) / 1000, result };
  } finally {
    await store.close();
  }
}

// ---- a bare tus server, for what hosting tus in Next costs ----

export interface BareTus {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/** bench/tools/bare-tus.ts in its own process, on the stack's bucket or a directory beside its objects. */
export async function startBareTus(stack: Stack): Promise<BareTus> {
  const root = path.resolve(import.meta.dirname, '..', '..');
  const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', NODE_ENV: 'production' };
  for (const k of ['S3_ENDPOINT', 'S3_BUCKET', 'S3_REGION', 'S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY']) if (stack.env[k]) env[k] = stack.env[k];
  if (!stack.s3) env.BARE_TUS_DIRECTORY = path.join(stack.app.dataDir, 'bare-objects');
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'bench', 'tools', 'bare-tus.ts')], {
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
    child.once('exit', (code) => reject(new Error(`bare tus exited with ${code}: ${out}`)));
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

let benchKey: Promise<string> | undefined;

/** The same client (encoder + tus-js-client, same chunk size) against the bare tus server. */
export async function sendBare(bare: BareTus, file: TestFile, chunkSize?: number): Promise<{ seconds: number; uploadId: string }> {
  benchKey ??= testKey('Bench').then((k) => k.publicKey);
  const delivery = { deliveryId: 'bench', senderToken: 'bench', publicKeys: [await benchKey] } as CreatedDelivery;
  const source = await openSource(file);
  try {
    const prepared = await prepareFile(delivery, source);
    const t0 = now();
    await uploadFile(bare.url, delivery, prepared, { chunkSize, retryDelays: [0, 1000, 3000] });
    return { seconds: (now() - t0) / 1000, uploadId: uploadIdOf(prepared) };
  } finally {
    await source.close();
  }
}

/** Removes what the bare server stored for an upload (object and tus sidecars). */
export async function bareDelete(stack: Stack, uploadId: string): Promise<void> {
  if (stack.s3) {
    for (const Key of [uploadId, `${uploadId}.info`, `${uploadId}.part`]) await stack.s3.send(new DeleteObjectCommand({ Bucket: stack.bucket!, Key })).catch(() => {});
  } else {
    for (const f of [uploadId, `${uploadId}.json`]) await fsp.rm(path.join(stack.app.dataDir, 'bare-objects', f), { force: true });
  }
}
