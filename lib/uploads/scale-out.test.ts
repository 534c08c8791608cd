/**
 * Fault suite, scale-out: several stateless app instances (`next start`, INKAST_WORKER=false)
 * and a separate worker process (`bin/worker.ts`) on one real PostgreSQL and one Ceph RGW
 * bucket, behind a small loopback load balancer written here. Everything on loopback, every
 * wait bounded.
 *
 * - an upload whose requests land on both instances in turn is delivered (no per-instance state)
 * - instance A is SIGKILLed in the middle of a PATCH; the client resumes through B; the delivery
 *   verifies and the stored object decrypts (openpgp.js) to the bytes sent
 * - two instances get a PATCH for the same upload at once: one wins, the other gets 409 (or 423),
 *   and the stored object stays consistent (the upload completes and decrypts byte-exact)
 * - PostgreSQL (a throwaway cluster) is stopped mid-upload: clear 503s while it is down, then
 *   the upload completes and is delivered
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import * as openpgp from 'openpgp';
import pg from 'pg';
import * as tus from 'tus-js-client';
import { unwrapPrivateKey } from '@/lib/crypto/keys';
import type { CreatedDelivery } from '@/lib/deliveries';
import { masterKeyFrom } from '@/lib/mailboxes/master-key';
import { newDataDir, startApp, type RunningApp } from '@/lib/testing/app';
import { appObjectStore, s3AppEnv } from '@/lib/testing/inspect';
import { postgresBinDir, startThrowawayPostgres } from '@/lib/testing/postgres-cluster';
import { createPostgresDatabase, postgresAdminUrl, s3Settings } from '@/lib/testing/targets';
import {
  bufferSource,
  openDelivery,
  prepareFile,
  submit,
  tusUpload,
  uploadFile,
  uploadIdOf,
  waitForFinalState,
  type PreparedFile,
} from './client';
import { SENDER_TOKEN_HEADER, TUS_PATH } from './index';
import { lockKey } from './locker';

const MiB = 1024 * 1024;
const root = path.resolve(import.meta.dirname, '..', '..');

const pgAdmin = await postgresAdminUrl();
const s3 = await s3Settings();
const skip = pgAdmin && s3 ? false : 'needs a real PostgreSQL and Ceph RGW (.ci/run starts both)';
if (skip) console.log(`# scale-out fault suite skipped: ${skip}`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(probe: () => T | Promise<T>, what: string, ms = 30_000): Promise<NonNullable<T>> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(25);
  }
}

/** Rejects when p has not settled within ms (so no await in this suite can hang it). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not done after ${ms} ms`)), ms))),
  ]);
}

/** The environment every process of one deployment shares (the same keys, database and bucket). */
async function deploymentEnv(databaseUrl: string, publicUrl?: string): Promise<Record<string, string>> {
  return {
    DATABASE_URL: databaseUrl,
    ...(await s3AppEnv(s3!)),
    INKAST_MASTER_KEY: crypto.randomBytes(32).toString('base64'),
    INKAST_SESSION_SECRET: crypto.randomBytes(32).toString('hex'),
    ...(publicUrl ? { INKAST_PUBLIC_URL: publicUrl } : {}),
    INKAST_WORKER: 'false',
  };
}

interface WorkerProcess {
  pid: number;
  output(): string;
  kill(): Promise<void>;
  /** SIGTERM; resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** `node --import tsx bin/worker.ts` (what `npm run worker` runs) with the deployment's env. */
async function startWorkerProcess(env: Record<string, string>): Promise<WorkerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'bin', 'worker.ts')], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', TMPDIR: process.env.TMPDIR ?? '/tmp', NODE_ENV: 'production', INKAST_DATA_DIR: newDataDir(), INKAST_LOG_LEVEL: 'warn', ...env, INKAST_WORKER: 'true' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => (child.exitCode !== null ? r(child.exitCode) : child.once('exit', (code) => r(code))));
  await until(() => {
    if (child.exitCode !== null) throw new Error(`the worker exited with ${child.exitCode}:\n${out}`);
    return out.includes('Inkast is running');
  }, 'the worker to start', 60_000).catch((err) => {
    child.kill('SIGKILL');
    throw err;
  });
  return {
    pid: child.pid!,
    output: () => out,
    async kill() {
      child.kill('SIGKILL');
      await exited;
    },
    stop() {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

interface Routed {
  method: string;
  backend: string;
  /** Upload-Offset the request carried, and the one the answer carried. */
  requestOffset?: string;
  responseOffset?: string;
  status?: number;
  /** Body bytes passed on to the backend so far. */
  forwarded: number;
}

/**
 * A loopback HTTP load balancer: each request goes to the next backend in turn (no stickiness),
 * bodies streamed both ways. A backend that cannot be reached answers 502, as nginx would.
 */
async function startBalancer() {
  let backends: string[] = [];
  let next = 0;
  const log: Routed[] = [];
  const active = new Map<string, number>();
  const sockets = new Set<net.Socket>();
  let onBody: ((entry: Routed) => void) | undefined;
  const agent = new http.Agent({ keepAlive: false });
  const server = http.createServer((req, res) => {
    if (backends.length === 0) return void res.writeHead(503, { connection: 'close' }).end('no backend\n');
    const backend = backends[next++ % backends.length];
    const entry: Routed = { method: req.method!, backend, requestOffset: req.headers['upload-offset'] as string | undefined, forwarded: 0 };
    log.push(entry);
    const key = `${req.method} ${backend}`;
    active.set(key, (active.get(key) ?? 0) + 1);
    let settled = false;
    const settle = () => {
      if (!settled) (settled = true), active.set(key, active.get(key)! - 1);
    };
    const u = new URL(backend);
    const upstream = http.request(
      { host: u.hostname, port: u.port, method: req.method, path: req.url, headers: req.headers, agent },
      (r) => {
        entry.status = r.statusCode;
        entry.responseOffset = r.headers['upload-offset'] as string | undefined;
        res.writeHead(r.statusCode!, r.headers);
        r.pipe(res);
        r.on('end', settle);
        r.on('error', () => (settle(), res.destroy()));
      },
    );
    upstream.on('error', () => {
      settle();
      entry.status ??= 502;
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain', connection: 'close' }).end('bad gateway\n');
      else res.destroy();
    });
    req.on('data', (chunk: Buffer) => {
      entry.forwarded += chunk.length;
      onBody?.(entry);
    });
    req.pipe(upstream);
    res.on('close', () => {
      settle();
      if (!res.writableFinished) upstream.destroy();
    });
  });
  server.on('connection', (s) => (sockets.add(s), s.on('close', () => sockets.delete(s))));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return {
    url,
    log,
    route(to: string[]) {
      backends = to;
    },
    /** Called as each request body chunk passes, once it has been counted in `forwarded`. */
    onBody(watch: ((entry: Routed) => void) | undefined) {
      onBody = watch;
    },
    inFlight: (method: string, backend: string) => active.get(`${method} ${backend}`) ?? 0,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Starts a tus upload of file through baseUrl; `finished` settles when it ends. */
function startUpload(baseUrl: string, delivery: CreatedDelivery, file: PreparedFile, opts: { chunkSize: number; retryDelays?: number[] }) {
  let settle!: (err?: Error) => void;
  const finished = new Promise<void>((resolve, reject) => (settle = (err) => (err ? reject(err) : resolve())));
  finished.catch(() => {});
  const upload: tus.Upload = tusUpload(baseUrl, delivery, file, { chunkSize: opts.chunkSize, retryDelays: opts.retryDelays }, settle);
  upload.start();
  return { upload, finished };
}

/** Records the ciphertext ranges the client reads from here on (what it sends next). */
function recordRanges(file: PreparedFile): number[] {
  const starts: number[] = [];
  const pieces = file.encoder.pieces.bind(file.encoder);
  file.encoder.pieces = (s: number, e: number) => (starts.push(s), pieces(s, e));
  return starts;
}

async function headOffset(baseUrl: string, file: PreparedFile, token: string): Promise<number> {
  const res = await fetch(new URL(new URL(file.uploadUrl!, 'http://x').pathname, baseUrl), {
    method: 'HEAD',
    headers: { 'Tus-Resumable': '1.0.0', [SENDER_TOKEN_HEADER]: token },
    signal: AbortSignal.timeout(15_000),
  });
  assert.equal(res.status, 200, `HEAD ${res.status}`);
  return Number(res.headers.get('upload-offset'));
}

/** Decrypts the stored object with openpgp.js (not Inkast's decoder) and the mailbox keys. */
async function decryptStored(app: RunningApp, uploadId: string): Promise<Buffer> {
  const client = new pg.Client({ connectionString: app.env.DATABASE_URL });
  await client.connect();
  const wrapped = (await client.query<{ wrapped_private_key: Buffer }>('SELECT wrapped_private_key FROM mailbox_keys')).rows;
  await client.end();
  const mk = masterKeyFrom(Buffer.from(app.env.INKAST_MASTER_KEY, 'base64'));
  const decryptionKeys = await Promise.all(
    wrapped.map((k) => openpgp.readPrivateKey({ armoredKey: unwrapPrivateKey(mk.key, mk.id, Buffer.from(k.wrapped_private_key)) })),
  );
  const store = appObjectStore(app);
  try {
    const size = (await store.size(uploadId))!;
    const parts: Buffer[] = [];
    for await (const c of await store.readRange(uploadId, 0, size)) parts.push(Buffer.from(c));
    const message = await openpgp.readMessage({ binaryMessage: Buffer.concat(parts) });
    const out = await openpgp.decrypt({ message, decryptionKeys, format: 'binary' });
    return Buffer.from(out.data as Uint8Array);
  } finally {
    await store.close();
  }
}

async function expectDelivered(baseUrl: string, delivery: CreatedDelivery, files: PreparedFile[]) {
  await submit(baseUrl, delivery, { subject: 'scale-out', message: 'm' }, files);
  const status = await waitForFinalState(baseUrl, delivery, 90_000);
  assert.equal(status.state, 'delivered', `rejected: ${status.rejectReason}`);
  assert.ok(status.files.every((f) => f.state === 'verified'));
}

/** A raw PATCH whose body we feed by hand, so that it can stall half-way like a slow link. */
function rawPatch(baseUrl: string, uploadPath: string, token: string, offset: number, length: number) {
  const u = new URL(uploadPath, baseUrl);
  const req = http.request({
    host: u.hostname,
    port: u.port,
    method: 'PATCH',
    path: u.pathname,
    headers: {
      'Tus-Resumable': '1.0.0',
      'Upload-Offset': String(offset),
      'Content-Type': 'application/offset+octet-stream',
      'Content-Length': String(length),
      [SENDER_TOKEN_HEADER]: token,
    },
  });
  const response = new Promise<{ status: number; offset: string | undefined; body: string }>((resolve, reject) => {
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, offset: res.headers['upload-offset'] as string | undefined, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
  return { req, response };
}

/** Whether some session holds the advisory lock of an upload (pg_locks splits the key in two). */
async function lockHeld(databaseUrl: string, uploadId: string): Promise<boolean> {
  const key = BigInt.asUintN(64, BigInt(lockKey(uploadId)));
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const r = await client.query(
      `SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 1`,
      [(key >> 32n).toString(), (key & 0xffffffffn).toString()],
    );
    return r.rows.length > 0;
  } finally {
    await client.end();
  }
}

test('two app instances and a worker on one PostgreSQL and one Ceph RGW bucket', { skip, timeout: 240_000 }, async (t) => {
  const lb = await startBalancer();
  t.after(() => lb.close());
  const env = await deploymentEnv(await createPostgresDatabase(pgAdmin!), lb.url);
  const running: { kill(): Promise<void> }[] = [];
  t.after(() => Promise.all(running.map((p) => p.kill())));
  // One after the other: the first creates the administrator, the second finds it.
  let a = await startApp({ env });
  running.push(a);
  const b = await startApp({ env });
  running.push(b);
  const worker = await startWorkerProcess(env);
  running.push(worker);
  assert.equal(a.slug, b.slug, 'both instances serve the same data');
  const slug = a.slug;

  await t.test('/api/ready on each instance: 200, database and storage ok, nothing about hosts or keys', async () => {
    for (const app of [a, b]) {
      const res = await fetch(`${app.url}/api/ready`, { signal: AbortSignal.timeout(15_000) });
      const text = await res.text();
      assert.equal(res.status, 200, text);
      assert.deepEqual(JSON.parse(text), { status: 'ready', checks: { database: 'ok', storage: 'ok', mail: 'skipped' } });
      for (const secret of [env.S3_BUCKET, env.S3_ENDPOINT, '127.0.0.1', '7480', env.S3_ACCESS_KEY_ID]) {
        assert.ok(!text.includes(secret), `${secret} in /api/ready`);
      }
    }
  });

  await t.test('requests of one upload spread over both instances in turn: delivered, byte-exact', async () => {
    lb.route([a.url, b.url]);
    const data = crypto.randomBytes(10 * MiB + 777);
    const delivery = await openDelivery(lb.url, { slug, senderEmail: 'round-robin@example.org' });
    const file = await prepareFile(delivery, bufferSource('rr.bin', data));
    const before = lb.log.length;
    await within(uploadFile(lb.url, delivery, file, { chunkSize: 2 * MiB }), 60_000, 'the round-robin upload');
    const patches = lb.log.slice(before).filter((r) => r.method === 'PATCH');
    assert.ok(patches.length >= 5, `${patches.length} PATCHes`);
    assert.ok(new Set(patches.map((p) => p.backend)).size === 2, 'PATCHes reached both instances');
    assert.ok(patches.every((p) => p.status === 204), `PATCH statuses ${patches.map((p) => p.status)}`);
    await expectDelivered(lb.url, delivery, [file]);
    assert.ok((await decryptStored(a, uploadIdOf(file))).equals(data), 'decrypts to the bytes sent');
  });

  await t.test('instance A killed (SIGKILL) mid-PATCH: the client resumes through B; delivered byte-exact', async () => {
    lb.route([a.url]);
    const data = crypto.randomBytes(40 * MiB + 4321);
    const delivery = await openDelivery(lb.url, { slug, senderEmail: 'failover@example.org' });
    const file = await prepareFile(delivery, bufferSource('failover.bin', data));
    let killed: Promise<void> | undefined;
    let patchInFlightAtKill = 0;
    let sentAtKill = 0;
    let ranges: number[] = [];
    // In the middle of the second PATCH: the first (16 MiB) is stored, the second is streaming to A.
    lb.onBody((entry) => {
      if (killed || entry.method !== 'PATCH' || Number(entry.requestOffset) !== 16 * MiB || entry.forwarded < 8 * MiB) return;
      sentAtKill = 16 * MiB + entry.forwarded;
      patchInFlightAtKill = lb.inFlight('PATCH', a.url);
      ranges = recordRanges(file); // what the client reads from now on is what it resends
      killed = a.kill().then(() => lb.route([b.url]));
    });
    const up = startUpload(lb.url, delivery, file, { chunkSize: 16 * MiB, retryDelays: [200, 500, 1000, 1000, 2000, 2000, 3000, 3000] });
    await within(until(() => killed !== undefined, 'the upload to reach 24 MiB'), 60_000, 'reaching 24 MiB');
    await killed;
    lb.onBody(undefined);
    assert.equal(patchInFlightAtKill, 1, 'a PATCH to A was streaming when A was killed');
    const routedBefore = lb.log.length;
    await within(up.finished, 90_000, 'the resumed upload');

    const after = lb.log.slice(routedBefore);
    assert.ok(after.every((r) => r.backend === b.url), 'after the kill only B served the upload');
    const head = after.find((r) => r.method === 'HEAD' && r.status === 200);
    assert.ok(head, 'the client asked B for the offset');
    const resumedAt = Number(head.responseOffset);
    assert.ok(resumedAt >= 16 * MiB && resumedAt <= sentAtKill, `resumed at ${resumedAt}, ${sentAtKill} sent when A died`);
    assert.equal(ranges[0], resumedAt, 'the client resumed from the offset B reported, not from 0');
    assert.equal(after.find((r) => r.method === 'PATCH')?.requestOffset, String(resumedAt));

    await expectDelivered(lb.url, delivery, [file]);
    assert.ok((await decryptStored(b, uploadIdOf(file))).equals(data), 'decrypts to the bytes sent');
  });

  // A comes back (a new process on a new port), as after a restart by the orchestrator.
  a = await startApp({ env });
  running.push(a);

  await t.test('two instances get a PATCH for the same upload at once: one wins, the other gets 409/423; the object stays consistent', async () => {
    const data = crypto.randomBytes(6 * MiB + 99);
    const delivery = await openDelivery(b.url, { slug, senderEmail: 'race@example.org' });
    const file = await prepareFile(delivery, bufferSource('race.bin', data));
    const created = await fetch(`${b.url}${TUS_PATH}`, {
      method: 'POST',
      headers: {
        'Tus-Resumable': '1.0.0',
        'Upload-Length': String(file.encoder.totalLength),
        'Upload-Metadata': `deliveryId ${Buffer.from(delivery.deliveryId).toString('base64')}`,
        [SENDER_TOKEN_HEADER]: delivery.senderToken,
      },
    });
    assert.equal(created.status, 201);
    file.uploadUrl = created.headers.get('location')!;
    const uploadPath = new URL(file.uploadUrl, 'http://x').pathname;
    const uploadId = uploadIdOf(file);
    const length = 4 * MiB;
    const body = Buffer.from(await file.encoder.range(0, length));

    // Through A: a PATCH that sends its first MiB and then stalls, holding the upload's lock.
    const slow = rawPatch(a.url, uploadPath, delivery.senderToken, 0, length);
    slow.response.catch(() => {});
    slow.req.write(body.subarray(0, 1 * MiB));
    await until(() => lockHeld(env.DATABASE_URL, uploadId), 'A to hold the lock', 15_000);
    await sleep(300);
    // Through B, at the same time: the same range in full.
    const started = Date.now();
    const fast = rawPatch(b.url, uploadPath, delivery.senderToken, 0, length);
    fast.req.end(body);
    const fromB = await within(fast.response, 45_000, 'the PATCH through B');
    // Now let the stalled PATCH send the rest of its body. Had it not yielded the upload, it would
    // write a second copy of the range (two writers): it must already have been answered.
    slow.req.end(body.subarray(1 * MiB), () => {});
    const fromA = await within(slow.response, 30_000, 'the PATCH through A');
    slow.req.destroy();
    console.log(`# concurrent PATCHes: through A ${fromA.status} (offset ${fromA.offset}), through B ${fromB.status} after ${Date.now() - started} ms`);
    const statuses = [fromA.status, fromB.status];
    assert.equal(statuses.filter((s) => s === 204).length, 1, `exactly one PATCH wins: ${statuses}`);
    assert.equal(statuses.filter((s) => s === 409 || s === 423).length, 1, `the other gets 409/423: ${statuses}`);
    const winner = fromA.status === 204 ? fromA : fromB;
    const stored = Number(winner.offset);
    // A contended lock is handed over after tus's lockDrainTimeout (3 s), well within the acquire timeout.
    assert.ok(Date.now() - started < 30_000);

    // Both instances report the same, consistent offset: what the winner said it stored.
    assert.equal(await headOffset(a.url, file, delivery.senderToken), stored);
    assert.equal(await headOffset(b.url, file, delivery.senderToken), stored);
    assert.ok(stored > 0 && stored <= length, `stored ${stored}`);

    // The upload continues from there (through either instance) and decrypts byte-exact.
    lb.route([a.url, b.url]);
    file.uploadUrl = uploadPath;
    const ranges = recordRanges(file);
    await within(uploadFile(lb.url, delivery, file, { chunkSize: 2 * MiB }), 60_000, 'completing the raced upload');
    assert.equal(ranges[0], stored);
    await expectDelivered(lb.url, delivery, [file]);
    assert.ok((await decryptStored(a, uploadId)).equals(data), 'decrypts to the bytes sent');
  });

  await t.test('SIGTERM: the worker and an instance finish what they are doing and exit 0', async () => {
    const stoppedAt = Date.now();
    assert.equal(await within(worker.stop(), 35_000, 'the worker after SIGTERM'), 0);
    assert.match(worker.output(), /SIGTERM: finishing in-flight work/);
    await within(b.stop(), 35_000, 'instance B after SIGTERM');
    assert.match(b.output(), /SIGTERM: finishing in-flight work/);
    assert.ok(Date.now() - stoppedAt < 35_000);
    // The remaining instance still serves.
    assert.equal((await fetch(`${a.url}/api/ready`, { signal: AbortSignal.timeout(15_000) })).status, 200);
  });

});

// Restarting PostgreSQL needs a server of our own: the installed binaries, never the shared cluster.
const noBinaries = postgresBinDir() ? false : 'needs the PostgreSQL server binaries (/usr/lib/postgresql/*/bin) for a throwaway cluster';
if (noBinaries && process.env.INKAST_TEST_REQUIRE_REAL === '1') throw new Error(`INKAST_TEST_REQUIRE_REAL=1 but the suite ${noBinaries}`);
if (noBinaries && !skip) console.log(`# PostgreSQL restart test skipped: ${noBinaries}`);

test('PostgreSQL restarted mid-upload: clear errors while it is down, then the upload completes', { skip: skip || noBinaries, timeout: 180_000 }, async (t) => {
  const cluster = await startThrowawayPostgres();
  t.after(() => cluster.destroy());
  const env = { ...(await deploymentEnv(await cluster.createDatabase('inkast'))), INKAST_WORKER: 'true' };
  // The app with its worker inside this time (the default role).
  const app = await startApp({ env });
  t.after(() => app.kill());

  const data = crypto.randomBytes(24 * MiB + 5);
  const delivery = await openDelivery(app.url, { slug: app.slug, senderEmail: 'pg-restart@example.org' });
  const file = await prepareFile(delivery, bufferSource('pg-restart.bin', data));
  let accepted = 0;
  let settle!: (err?: Error) => void;
  const finished = new Promise<void>((resolve, reject) => (settle = (err) => (err ? reject(err) : resolve())));
  finished.catch(() => {});
  // The client keeps retrying for ~40 s, as the browser does.
  const upload = tusUpload(app.url, delivery, file, { chunkSize: 4 * MiB, retryDelays: Array(40).fill(1000), onOffset: () => accepted++ }, settle);
  upload.start();
  await within(until(() => accepted >= 2, 'two chunks'), 60_000, 'two chunks');

  const downAt = Date.now();
  await cluster.stop();
  const probe = (p: string, init: RequestInit = {}) => fetch(`${app.url}${p}`, { ...init, signal: AbortSignal.timeout(10_000) });

  // Liveness still answers: the process is fine, only its database is gone.
  assert.equal((await probe('/api/health')).status, 200);
  // tus: a clear 503 with a reason, not a hang or a bare 500.
  const head = await probe(new URL(file.uploadUrl!, app.url).pathname, {
    method: 'HEAD',
    headers: { 'Tus-Resumable': '1.0.0', [SENDER_TOKEN_HEADER]: delivery.senderToken },
  });
  assert.equal(head.status, 503);
  const patch = await probe(new URL(file.uploadUrl!, app.url).pathname, {
    method: 'PATCH',
    headers: { 'Tus-Resumable': '1.0.0', 'Upload-Offset': '0', 'Content-Type': 'application/offset+octet-stream', [SENDER_TOKEN_HEADER]: delivery.senderToken },
    body: Buffer.alloc(16),
  });
  assert.equal(patch.status, 503);
  assert.match(await patch.text(), /unavailable; try again shortly/);
  // A new delivery: refused with a JSON error that says to try again, not left hanging.
  const create = await probe('/api/deliveries', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ slug: app.slug, senderEmail: 'x@example.org' }),
  });
  assert.ok(create.status >= 500, `POST /api/deliveries while the database is down: ${create.status}`);
  const createBody = (await create.json()) as { error: string; message: string };
  assert.ok(createBody.error && /try again/.test(createBody.message), JSON.stringify(createBody));
  console.log(`# while PostgreSQL is down: HEAD/PATCH ${head.status}/${patch.status}, POST /api/deliveries ${create.status} ${createBody.error}`);
  // Readiness names the database (a passing result is reused for at most 5 s).
  const notReady = await within(
    until(async () => {
      const r = await probe('/api/ready');
      return r.status === 503 ? ((await r.json()) as { checks: Record<string, string> }) : undefined;
    }, 'readiness to report the database', 15_000),
    20_000,
    'readiness',
  );
  assert.equal(notReady.checks.database, 'failed');
  assert.equal(notReady.checks.storage, 'ok');
  const offsetWhileDown = accepted;
  await sleep(Math.max(0, 3000 - (Date.now() - downAt)));

  await cluster.start();
  const downFor = Date.now() - downAt;
  await within(finished, 90_000, 'the upload after the restart');
  assert.ok(accepted > offsetWhileDown, 'chunks were accepted after the restart');
  await until(async () => (await probe('/api/ready')).status === 200, 'readiness after the restart', 15_000);
  await expectDelivered(app.url, delivery, [file]);
  assert.ok((await decryptStored(app, uploadIdOf(file))).equals(data), 'decrypts to the bytes sent');
  console.log(`# PostgreSQL was down for ${downFor} ms`);
});
