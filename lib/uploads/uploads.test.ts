/**
 * The sender's journey through the running app (next start), with the same encoder and
 * tus-js-client as the browser: on the embedded defaults (PGlite, local objects) and, when they
 * answer, on PostgreSQL with Ceph RGW.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import * as openpgp from 'openpgp';
import { unwrapPrivateKey } from '@/lib/crypto/keys';
import { startApp, type RunningApp } from '@/lib/testing/app';
import { appDatabase, appMasterKey, appObjectStore, corruptObject, dumpDatabase, s3AppEnv, storedBytes } from '@/lib/testing/inspect';
import { createPostgresDatabase, postgresAdminUrl, s3Settings } from '@/lib/testing/targets';
import {
  bufferSource,
  openDelivery,
  pathSource,
  prepareFile,
  SenderApiError,
  submit,
  tusUpload,
  uploadFile,
  uploadIdOf,
  waitForFinalState,
  type PreparedFile,
} from './client';
import { SENDER_TOKEN_HEADER, TUS_PATH } from './index';

const MiB = 1024 * 1024;

interface Setup {
  name: string;
  env(): Promise<Record<string, string>>;
}

const setups: Setup[] = [{ name: 'PGlite + local object directory', env: async () => ({}) }];
const s3 = await s3Settings();
const pgAdmin = await postgresAdminUrl();
if (s3) {
  setups.push({
    name: `${pgAdmin ? 'PostgreSQL' : 'PGlite'} + Ceph RGW`,
    env: async () => ({ ...(await s3AppEnv(s3)), ...(pgAdmin ? { DATABASE_URL: await createPostgresDatabase(pgAdmin) } : {}) }),
  });
}

/** Markers that must never appear in clear anywhere at rest. */
function markers() {
  const id = crypto.randomBytes(6).toString('hex');
  return {
    content: `CONTENT-MARKER-${id}`,
    name: `name-marker-${id}.pdf`,
    subject: `SUBJECT-MARKER-${id}`,
    message: `MESSAGE-MARKER-${id}`,
  };
}

/** Random bytes with a plaintext marker repeated through them. */
function fileWith(marker: string, size: number): Buffer {
  const buf = crypto.randomBytes(size);
  for (let at = 0; at + marker.length < size; at += 1 * MiB) buf.write(marker, at);
  return buf;
}

function startUpload(app: RunningApp, delivery: Awaited<ReturnType<typeof openDelivery>>, file: PreparedFile, chunkSize: number) {
  let settle!: (err?: Error) => void;
  const finished = new Promise<void>((resolve, reject) => (settle = (err) => (err ? reject(err) : resolve())));
  const offsets: number[] = [];
  const upload = tusUpload(app.url, delivery, file, { chunkSize, onOffset: (o) => offsets.push(o) }, (err) => settle(err));
  upload.start();
  return { upload, finished, offsets };
}

/**
 * The server's offset once it has settled: an aborted client does not wait for its last PATCH,
 * which the server may still finish writing just after the abort.
 */
async function settledOffset(app: RunningApp, file: PreparedFile, token: string): Promise<number> {
  let last = await serverOffset(app, file, token);
  for (let i = 0; i < 50; i++) {
    await new Promise((r) => setTimeout(r, 300));
    const now = await serverOffset(app, file, token);
    if (now === last) return now;
    last = now;
  }
  throw new Error('the server offset did not settle');
}

async function serverOffset(app: RunningApp, file: PreparedFile, token: string): Promise<number> {
  const res = await fetch(new URL(file.uploadUrl!, app.url), {
    method: 'HEAD',
    headers: { 'Tus-Resumable': '1.0.0', [SENDER_TOKEN_HEADER]: token },
  });
  assert.equal(res.status, 200);
  return Number(res.headers.get('upload-offset'));
}

async function until(cond: () => boolean, what: string, ms = 30_000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

for (const setup of setups) {
  test(`sender's journey on ${setup.name}`, async (t) => {
    const env = await setup.env();
    let app = await startApp({ env });
    t.after(() => app.kill());
    const mark = markers();
    const sent: { uploadId: string; name: string; bytes: Buffer }[] = [];

    await t.test('a multi-chunk file from disk and a small one from memory arrive verified', async () => {
      const big = fileWith(mark.content, 9 * MiB + 123);
      const small = fileWith(mark.content, 5000);
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'inkast-sender-'));
      t.after(() => fs.rm(dir, { recursive: true, force: true }));
      await fs.writeFile(path.join(dir, 'big.bin'), big);
      const onDisk = await pathSource(path.join(dir, 'big.bin'), mark.name);
      t.after(() => onDisk.close());
      const delivery = await openDelivery(app.url, { slug: app.slug, senderEmail: 'sender@example.org' });
      const files = [await prepareFile(delivery, onDisk), await prepareFile(delivery, bufferSource('b.txt', small, 'text/plain'))];
      for (const f of files) await uploadFile(app.url, delivery, f, { chunkSize: 4 * MiB });
      await submit(app.url, delivery, { subject: mark.subject, message: mark.message }, files);
      const status = await waitForFinalState(app.url, delivery);
      assert.equal(status.state, 'delivered', `rejected: ${status.rejectReason}`);
      assert.deepEqual(status.files.map((f) => f.state), ['verified', 'verified']);
      sent.push({ uploadId: uploadIdOf(files[0]), name: mark.name, bytes: big }, { uploadId: uploadIdOf(files[1]), name: 'b.txt', bytes: small });
    });

    await t.test('an interrupted upload resumes from the server offset', async () => {
      const data = fileWith(mark.content, 6 * MiB);
      const delivery = await openDelivery(app.url, { slug: app.slug, senderEmail: 'sender@example.org' });
      const file = await prepareFile(delivery, bufferSource('resume.bin', data));
      const first = startUpload(app, delivery, file, 1 * MiB);
      await until(() => first.offsets.length >= 2, 'two chunks');
      await first.upload.abort();
      const offset = await settledOffset(app, file, delivery.senderToken);
      assert.ok(offset >= 2 * MiB && offset < file.encoder.totalLength, `server offset ${offset}`);

      const requested: number[] = [];
      const pieces = file.encoder.pieces.bind(file.encoder);
      file.encoder.pieces = (s: number, e: number) => (requested.push(s), pieces(s, e));
      const second = startUpload(app, delivery, file, 1 * MiB);
      await second.finished;
      assert.equal(requested[0], offset, 'the resumed upload starts at the server offset, not at 0');
      await submit(app.url, delivery, { subject: 's', message: 'm' }, [file]);
      assert.equal((await waitForFinalState(app.url, delivery)).state, 'delivered');
      sent.push({ uploadId: uploadIdOf(file), name: 'resume.bin', bytes: data });
    });

    await t.test('uploads without a valid token are refused and nothing is stored', async () => {
      const delivery = await openDelivery(app.url, { slug: app.slug, senderEmail: 'sender@example.org' });
      const create = (token: string, extra: Record<string, string> = {}) =>
        fetch(`${app.url}${TUS_PATH}`, {
          method: 'POST',
          headers: {
            'Tus-Resumable': '1.0.0',
            'Upload-Length': '1000',
            'Upload-Metadata': `deliveryId ${Buffer.from(delivery.deliveryId).toString('base64')}`,
            [SENDER_TOKEN_HEADER]: token,
            ...extra,
          },
        });
      assert.equal((await create('not-the-token')).status, 404);
      const noToken = await fetch(`${app.url}${TUS_PATH}`, {
        method: 'POST',
        headers: { 'Tus-Resumable': '1.0.0', 'Upload-Length': '1000', 'Upload-Metadata': `deliveryId ${Buffer.from(delivery.deliveryId).toString('base64')}` },
      });
      assert.equal(noToken.status, 404);
      const named = await create(delivery.senderToken, {
        'Upload-Metadata': `deliveryId ${Buffer.from(delivery.deliveryId).toString('base64')},filename ${Buffer.from('x.pdf').toString('base64')}`,
      });
      assert.equal(named.status, 400, 'a file name in clear is refused');

      // A PATCH to someone else's upload with this delivery's token is refused too.
      const other = await openDelivery(app.url, { slug: app.slug, senderEmail: 'other@example.org' });
      const file = await prepareFile(other, bufferSource('x.bin', crypto.randomBytes(1000)));
      const started = startUpload(app, other, file, 400);
      await until(() => started.offsets.length >= 1, 'one chunk');
      await started.upload.abort();
      const before = await settledOffset(app, file, other.senderToken);
      const patch = await fetch(new URL(file.uploadUrl!, app.url), {
        method: 'PATCH',
        headers: { 'Tus-Resumable': '1.0.0', 'Upload-Offset': String(before), 'Content-Type': 'application/offset+octet-stream', [SENDER_TOKEN_HEADER]: delivery.senderToken },
        body: Buffer.alloc(10),
      });
      assert.equal(patch.status, 404);
      assert.equal(await serverOffset(app, file, other.senderToken), before, 'the refused PATCH wrote nothing');
    });

    await t.test('uploads over the delivery limit are refused with 413', async () => {
      const delivery = await openDelivery(app.url, { slug: app.slug, senderEmail: 'sender@example.org' });
      const create = (length: number) =>
        fetch(`${app.url}${TUS_PATH}`, {
          method: 'POST',
          headers: {
            'Tus-Resumable': '1.0.0',
            'Upload-Length': String(length),
            'Upload-Metadata': `deliveryId ${Buffer.from(delivery.deliveryId).toString('base64')}`,
            [SENDER_TOKEN_HEADER]: delivery.senderToken,
          },
        });
      assert.equal((await create(6_000_000_000)).status, 413, 'one object over 5 GB');
      assert.equal((await create(3_000_000_000)).status, 201);
      assert.equal((await create(3_000_000_000)).status, 413, 'together over the 5 GB delivery limit');
    });

    await t.test('a byte flipped in the stored object makes verification reject the delivery', async () => {
      const delivery = await openDelivery(app.url, { slug: app.slug, senderEmail: 'sender@example.org' });
      const file = await prepareFile(delivery, bufferSource('flip.bin', crypto.randomBytes(3 * MiB)));
      await uploadFile(app.url, delivery, file, { chunkSize: 4 * MiB });
      await corruptObject(app, uploadIdOf(file), Math.floor(file.encoder.totalLength / 2));
      await submit(app.url, delivery, { subject: 's', message: 'm' }, [file]);
      const status = await waitForFinalState(app.url, delivery);
      assert.equal(status.state, 'rejected');
      assert.equal(status.rejectReason, 'file-corrupt');
    });

    await t.test('an upload resumes after the server process is killed and restarted', async () => {
      const data = fileWith(mark.content, 5 * MiB);
      const delivery = await openDelivery(app.url, { slug: app.slug, senderEmail: 'sender@example.org' });
      const file = await prepareFile(delivery, bufferSource('restart.bin', data));
      const first = startUpload(app, delivery, file, 1 * MiB);
      first.finished.catch(() => {});
      await until(() => first.offsets.length >= 2, 'two chunks');
      await first.upload.abort();
      await app.kill();
      app = await startApp({ env, dataDir: app.dataDir, port: app.port });
      const offset = await serverOffset(app, file, delivery.senderToken);
      assert.ok(offset >= 2 * MiB, `offset after restart ${offset}`);
      const requested: number[] = [];
      const pieces = file.encoder.pieces.bind(file.encoder);
      file.encoder.pieces = (s: number, e: number) => (requested.push(s), pieces(s, e));
      await startUpload(app, delivery, file, 1 * MiB).finished;
      assert.equal(requested[0], offset);
      await submit(app.url, delivery, { subject: 's', message: 'm' }, [file]);
      assert.equal((await waitForFinalState(app.url, delivery)).state, 'delivered');
      sent.push({ uploadId: uploadIdOf(file), name: 'restart.bin', bytes: data });
    });

    await t.test('a bad request gets a clear error, not a crash', async () => {
      const res = await fetch(`${app.url}/api/deliveries`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"slug":' });
      assert.equal(res.status, 400);
      assert.equal(((await res.json()) as { error: string }).error, 'invalid-json');
      const unknown = await openDelivery(app.url, { slug: 'JxF12TrwUP45BeS8TJ7ZdJ', senderEmail: 'a@example.org' }).catch((e) => e);
      assert.ok(unknown instanceof SenderApiError && unknown.status === 404);
      const badEmail = await openDelivery(app.url, { slug: app.slug, senderEmail: 'not an address' }).catch((e) => e);
      assert.ok(badEmail instanceof SenderApiError && badEmail.status === 400);
    });

    await app.stop();

    await t.test('the stored objects decrypt with the mailbox key to the bytes and names sent (openpgp.js)', async () => {
      const db = await appDatabase(app);
      try {
        const mk = appMasterKey(app);
        const keys = (await db.query<{ wrapped_private_key: Uint8Array }>('SELECT wrapped_private_key FROM mailbox_keys')).rows;
        const privateKeys = await Promise.all(
          keys.map((k) => openpgp.readPrivateKey({ armoredKey: unwrapPrivateKey(mk.key, mk.id, Buffer.from(k.wrapped_private_key)) })),
        );
        const store = appObjectStore(app);
        for (const s of sent) {
          const size = (await store.size(s.uploadId))!;
          const parts: Buffer[] = [];
          for await (const c of await store.readRange(s.uploadId, 0, size)) parts.push(Buffer.from(c));
          const message = await openpgp.readMessage({ binaryMessage: Buffer.concat(parts) });
          const out = await openpgp.decrypt({ message, decryptionKeys: privateKeys, format: 'binary' });
          assert.ok(Buffer.from(out.data as Uint8Array).equals(s.bytes), `${s.name} decrypts byte-exact`);
          assert.equal(out.filename, s.name);
        }
      } finally {
        await db.close();
      }
    });

    await t.test('no plaintext at rest: database dump and stored objects hold no marker', async () => {
      const db = await appDatabase(app);
      const dump = await dumpDatabase(db).finally(() => db.close());
      assert.ok(dump.includes('sender@example.org'), 'the dump is real (the sender address is kept in clear by design)');
      const store = appObjectStore(app);
      let objects = 0;
      for await (const { key, bytes } of storedBytes(store)) {
        objects++;
        for (const m of Object.values(mark)) assert.ok(!bytes.includes(m), `${m} found in stored object ${key}`);
      }
      assert.ok(objects >= sent.length, `scanned ${objects} objects`);
      for (const m of Object.values(mark)) assert.ok(!dump.includes(m), `${m} found in the database dump`);
    });
  });
}
