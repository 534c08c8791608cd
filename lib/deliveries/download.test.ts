/**
 * Downloads through the built app (next start) with a real SMTP server on loopback: byte-exact
 * whole and ranged downloads, headers, access, and one receipt to the sender per response that
 * delivered a file's last byte, across an SMTP outage too. The app runs on PostgreSQL so the test
 * can read delivery_files ids, downloads and the audit log while it runs (PGlite is the app's
 * alone), with the local object directory and, when it answers, Ceph RGW.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { ParsedMail } from 'mailparser';
import { verifyAuditLog } from '@/lib/audit';
import { computeLayout, plaintextOffsetOfFile } from '@/lib/crypto/format';
import { openDb } from '@/lib/db';
import { freePort, newDataDir, startApp } from '@/lib/testing/app';
import { appObjectStore, corruptObject, s3AppEnv } from '@/lib/testing/inspect';
import { signInLinkFrom, signInWithEmail } from '@/lib/testing/sign-in';
import { createPostgresDatabase, postgresAdminUrl, s3Settings } from '@/lib/testing/targets';
import { bufferSource, openDelivery, prepareFile, sendDelivery, uploadFile, uploadIdOf, waitForFinalState } from '@/lib/uploads/client';
import { contentDisposition, requestedRange } from './download';
import { TestSmtp } from '@/lib/testing/smtp';

const MiB = 1024 * 1024;
const CHUNK = 4 * MiB;
const root = path.resolve(import.meta.dirname, '..', '..');


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** `npx inkast … --json` with the app's environment. */
function cli(env: Record<string, string>, ...args: string[]): Record<string, string> {
  const r = spawnSync(process.execPath, [path.join(root, 'bin', 'inkast.mjs'), ...args, '--json'], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', NODE_ENV: 'production', ...env },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, `inkast ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, string>;
}

/** How many open descriptors (of processes we may inspect) point at the file. */
function openersOf(file: string): number {
  let n = 0;
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === file) n++;
      } catch {
        // closed meanwhile
      }
    }
  }
  return n;
}

/** Next 16 drops Content-Length from route handler Responses; serveFile sets it on the Node response. */
function assertLength(res: Response, n: number): void {
  assert.equal(res.headers.get('content-length'), String(n));
  assert.equal(res.headers.get('transfer-encoding'), null);
}

const sha256 = (b: Uint8Array) => crypto.createHash('sha256').update(b).digest('hex');
const isReceipt = (m: ParsedMail) => /^Kvitto:/.test(m.subject ?? '');
const isNotification = (m: ParsedMail) => /^Ny leverans/.test(m.subject ?? '');

test('Range and Content-Disposition rules', () => {
  const h = (range: string, ifRange?: string) => new Headers({ range, ...(ifRange ? { 'if-range': ifRange } : {}) });
  const etag = '"abc"';
  assert.deepEqual(requestedRange(h('bytes=0-0'), 10, etag), { start: 0, end: 1 });
  assert.deepEqual(requestedRange(h('bytes=5-'), 10, etag), { start: 5, end: 10 });
  assert.deepEqual(requestedRange(h('bytes=5-99'), 10, etag), { start: 5, end: 10 });
  assert.deepEqual(requestedRange(h('bytes=-3'), 10, etag), { start: 7, end: 10 });
  assert.deepEqual(requestedRange(h('bytes=-30'), 10, etag), { start: 0, end: 10 });
  assert.deepEqual(requestedRange(h('Bytes = 2 - 3'), 10, etag), { start: 2, end: 4 });
  assert.equal(requestedRange(h('bytes=10-'), 10, etag), 'unsatisfiable');
  assert.equal(requestedRange(h('bytes=-0'), 10, etag), 'unsatisfiable');
  assert.equal(requestedRange(h('bytes=0-'), 0, etag), 'unsatisfiable');
  for (const ignored of ['bytes=0-1,4-5', 'bytes=5-2', 'items=0-1', 'bytes=-', 'bytes=x-1', 'bytes=1.5-2']) {
    assert.equal(requestedRange(h(ignored), 10, etag), undefined, ignored);
  }
  assert.deepEqual(requestedRange(h('bytes=1-2', etag), 10, etag), { start: 1, end: 3 });
  assert.equal(requestedRange(h('bytes=1-2', '"other"'), 10, etag), undefined);
  assert.equal(requestedRange(h('bytes=1-2', 'Tue, 01 Jul 2025 10:00:00 GMT'), 10, etag), undefined);

  assert.equal(contentDisposition('a.pdf'), `attachment; filename="a.pdf"; filename*=UTF-8''a.pdf`);
  assert.equal(
    contentDisposition('Röntgen "svar" (1)*.pdf'),
    `attachment; filename="R_ntgen 'svar' (1)*.pdf"; filename*=UTF-8''R%C3%B6ntgen%20%22svar%22%20%281%29%2A.pdf`,
  );
  assert.equal(contentDisposition('../x\r\nSet-Cookie: a\\b'), `attachment; filename=".._x__Set-Cookie: a_b"; filename*=UTF-8''.._x__Set-Cookie%3A%20a_b`);
});

const pgAdmin = await postgresAdminUrl();
const s3 = await s3Settings();
const stores: { name: string; env(): Promise<Record<string, string>> }[] = [{ name: 'local objects', env: async () => ({}) }];
if (s3) stores.push({ name: 'Ceph RGW', env: () => s3AppEnv(s3) });

for (const store of stores) {
  test(`downloads and receipts through the running app, on PostgreSQL and ${store.name}`, { skip: !pgAdmin && 'needs PostgreSQL', timeout: 900_000 }, async (t) => {
    const smtp = await TestSmtp.start();
    const dataDir = newDataDir();
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const admin = 'admin@example.org';
    const databaseUrl = await createPostgresDatabase(pgAdmin!);
    const env = {
      ...(await store.env()),
      DATABASE_URL: databaseUrl,
      SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
      MAIL_FROM: 'Inkast <inkast@inkast.test>',
      INKAST_ADMIN_EMAIL: admin,
    };
    // The first start makes the admin; these users and the shared mailbox come from the CLI.
    const cliEnv = { ...env, INKAST_DATA_DIR: dataDir, INKAST_PUBLIC_URL: url, INKAST_LOG_LEVEL: 'warn' };
    cli(cliEnv, 'user', 'create', '--email', 'outsider@example.org', '--name', 'Utomstående');
    cli(cliEnv, 'user', 'create', '--email', 'colleague@example.org', '--name', 'Kollega');
    const shared = cli(cliEnv, 'mailbox', 'create', '--name', 'Remisser');
    cli(cliEnv, 'mailbox', 'add-member', '--mailbox', shared.mailboxId, '--email', admin);
    cli(cliEnv, 'mailbox', 'add-member', '--mailbox', shared.mailboxId, '--email', 'colleague@example.org');
    const sharedSlug = new URL(shared.filedropUrl).pathname.split('/').pop()!;

    const app = await startApp({ env, dataDir, port });
    const db = await openDb({ databaseUrl });
    t.after(async () => {
      await app.kill();
      await db.close();
      await smtp.stop();
    });

    const mark = crypto.randomBytes(5).toString('hex');
    const content = { subject: `SUBJECT-${mark}`, message: `MESSAGE-${mark}` };
    const fileName = `Röntgensvar "akut" ${mark}.pdf`;
    const delivered: { deliveryId: string; shared: boolean }[] = [];
    /** Responses that carried a file's last byte, per sender: each must give one receipt. */
    const lastByteServed = new Map<string, number>();
    const served = (sender: string) => lastByteServed.set(sender, (lastByteServed.get(sender) ?? 0) + 1);

    /** One file, one delivery, from its own sender address so its receipts can be told apart. */
    async function deliver(sender: string, bytes: Buffer, opts: { name?: string; type?: string; slug?: string } = {}) {
      const { delivery, files } = await sendDelivery(
        app.url,
        {
          slug: opts.slug ?? app.slug,
          senderEmail: sender,
          ...content,
          files: [bufferSource(opts.name ?? fileName, bytes, opts.type ?? 'application/pdf')],
        },
        { chunkSize: 32 * MiB },
      );
      const status = await waitForFinalState(app.url, delivery);
      assert.equal(status.state, 'delivered', `rejected: ${status.rejectReason}`);
      delivered.push({ deliveryId: delivery.deliveryId, shared: Boolean(opts.slug) });
      const uploadId = uploadIdOf(files[0]);
      const row = (await db.query<{ id: string }>('SELECT id FROM delivery_files WHERE upload_id = $1', [uploadId])).rows[0];
      return { fileId: row.id, uploadId, reference: delivery.reference, bytes, sha256: sha256(bytes) };
    }

    async function signIn(email: string): Promise<string> {
      const links = () => smtp.to(email).filter((m) => /^(Logga in|Sign in)/.test(m.subject ?? ''));
      const before = links().length;
      return signInWithEmail(app.url, email, async () => {
        await until(() => links().length > before, `the sign-in mail to ${email}`);
        return signInLinkFrom(links().at(-1)!);
      });
    }

    const adminCookie = await signIn(admin);
    const fetchFile = (fileId: string, init: { method?: string; headers?: Record<string, string>; cookie?: string | null; signal?: AbortSignal } = {}) =>
      fetch(`${app.url}/api/files/${fileId}`, {
        method: init.method ?? 'GET',
        headers: { ...(init.cookie === null ? {} : { cookie: init.cookie ?? adminCookie }), ...init.headers },
        signal: init.signal,
      });
    const body = async (res: Response) => Buffer.from(await res.arrayBuffer());
    const receipts = (sender: string) => smtp.to(sender).filter(isReceipt);
    const downloadsOf = async (fileId: string) =>
      (await db.query<{ ip: string | null; user_agent: string | null }>('SELECT ip, user_agent FROM downloads WHERE delivery_file_id = $1', [fileId])).rows;

    /** Waits for the receipts the served responses call for, then a little longer: none may follow. */
    async function expectReceipts(sender: string, n: number) {
      await until(() => receipts(sender).length >= n, `${n} receipts to ${sender}`, 60_000);
      await sleep(2000);
      assert.equal(receipts(sender).length, n, `receipts to ${sender}`);
      assert.equal(new Set(receipts(sender).map((m) => m.messageId)).size, n, 'each receipt arrives once');
    }

    const s1 = 'sender1@example.org';
    const f1 = await deliver(s1, crypto.randomBytes(2 * CHUNK + 12_345));

    await t.test('a whole download is byte-exact, with the headers of an attachment', async () => {
      const res = await fetchFile(f1.fileId, { headers: { 'accept-encoding': 'gzip, br' } });
      assert.equal(res.status, 200);
      assert.ok((await body(res)).equals(f1.bytes), 'byte-exact');
      served(s1);
      const h = res.headers;
      assert.equal(h.get('content-type'), 'application/pdf');
      assert.equal(h.get('content-disposition'), contentDisposition(fileName));
      assert.match(h.get('content-disposition')!, /^attachment; filename="R_ntgensvar 'akut' [0-9a-f]+\.pdf"; filename\*=UTF-8''R%C3%B6ntgensvar%20%22akut%22%20/);
      assert.equal(h.get('x-content-type-options'), 'nosniff');
      assert.equal(h.get('accept-ranges'), 'bytes');
      assert.equal(h.get('cache-control'), 'private, no-store, no-transform');
      assertLength(res, f1.bytes.length);
      assert.equal(h.get('etag'), `"${f1.sha256}"`);
      assert.equal(h.get('content-encoding'), null);
    });

    await t.test('HEAD answers the headers only and sends no receipt', async () => {
      const res = await fetchFile(f1.fileId, { method: 'HEAD' });
      assert.equal(res.status, 200);
      assertLength(res, f1.bytes.length);
      assert.equal(res.headers.get('etag'), `"${f1.sha256}"`);
      assert.equal((await body(res)).length, 0);
      const ranged = await fetchFile(f1.fileId, { method: 'HEAD', headers: { range: 'bytes=10-19' } });
      assert.equal(ranged.status, 206);
      assert.equal(ranged.headers.get('content-range'), `bytes 10-19/${f1.bytes.length}`);
      assertLength(ranged, 10);
    });

    await t.test('N complete downloads give N receipts, each once, with no content in them', async () => {
      const longAgent = `Agent/${'x'.repeat(400)}`;
      const variants: Record<string, string>[] = [{ 'x-forwarded-for': '203.0.113.7, 10.0.0.1', 'user-agent': longAgent }, {}];
      for (const headers of variants) {
        const res = await fetchFile(f1.fileId, { headers });
        assert.ok((await body(res)).equals(f1.bytes));
        served(s1);
      }
      await expectReceipts(s1, 3);
      for (const m of receipts(s1)) {
        const text = `${m.subject}\n${m.text}\n${m.html}`;
        assert.ok(text.includes(f1.reference), 'the reference is in the receipt');
        assert.ok(text.includes(f1.sha256.slice(0, 16).replace(/(.{4})(?=.)/g, '$1 ')), 'the SHA-256 prefix is in the receipt');
        assert.ok(text.includes('Administrator'), 'who downloaded');
        for (const secret of [mark, 'Röntgensvar', content.subject, content.message]) assert.ok(!text.includes(secret), `${secret} leaked into a receipt`);
      }
      const rows = await downloadsOf(f1.fileId);
      assert.equal(rows.length, 3);
      // Without INKAST_TRUST_PROXY a client's own X-Forwarded-For is not believed: the socket's address.
      assert.deepEqual(rows.map((r) => r.ip), ['127.0.0.1', '127.0.0.1', '127.0.0.1']);
      assert.equal(rows.filter((r) => r.user_agent === longAgent.slice(0, 300)).length, 1, 'the user agent, cut to 300 characters');
    });

    await t.test('a download resumed with Range counts once', async () => {
      const s2 = 'sender2@example.org';
      const f = await deliver(s2, crypto.randomBytes(2 * CHUNK + 1));
      const half = Math.floor(f.bytes.length / 2);
      const first = await fetchFile(f.fileId, { headers: { range: `bytes=0-${half - 1}` } });
      assert.equal(first.status, 206);
      assert.equal(first.headers.get('content-range'), `bytes 0-${half - 1}/${f.bytes.length}`);
      const head = await body(first);
      await sleep(1500);
      assert.equal(receipts(s2).length, 0, 'the first half is no download yet');
      const rest = await fetchFile(f.fileId, { headers: { range: `bytes=${half}-`, 'if-range': `"${f.sha256}"` } });
      assert.equal(rest.status, 206);
      assert.equal(rest.headers.get('content-range'), `bytes ${half}-${f.bytes.length - 1}/${f.bytes.length}`);
      assert.ok(Buffer.concat([head, await body(rest)]).equals(f.bytes), 'the halves make the file');
      served(s2);
      await expectReceipts(s2, 1);
      assert.equal((await downloadsOf(f.fileId)).length, 1);
    });

    await t.test('a download aborted midway stops reading and sends no receipt', async () => {
      const s3 = 'sender3@example.org';
      const f = await deliver(s3, crypto.randomBytes(64 * MiB));
      // On the local store the server's open descriptor shows it reading; S3 has none to watch.
      const local = !app.env.S3_BUCKET;
      const object = path.join(dataDir, 'objects', f.uploadId);
      const abort = new AbortController();
      const res = await fetchFile(f.fileId, { signal: abort.signal });
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      let got = 0;
      while (got < 6 * MiB) got += (await reader.read()).value!.length;
      if (local) await until(() => openersOf(object) > 0, 'the server reading the object');
      abort.abort();
      if (local) await until(() => openersOf(object) === 0, 'the server to stop reading the object', 10_000);
      await sleep(2000);
      assert.equal(receipts(s3).length, 0);
      assert.equal((await downloadsOf(f.fileId)).length, 0);
    });

    await t.test('ranges are byte-exact at chunk boundaries; 416 past the end', async () => {
      const s4 = 'sender4@example.org';
      const f = await deliver(s4, crypto.randomBytes(2 * CHUNK + 5000));
      const size = f.bytes.length;
      // Where the encrypted chunks really split the file: the literal packet header comes first.
      const layout = computeLayout({ pkeskLength: 100, nameLength: Buffer.byteLength(fileName), fileSize: size });
      const split = CHUNK - plaintextOffsetOfFile(layout, 0);
      const points = [CHUNK, split, 2 * CHUNK, split + CHUNK];
      for (const p of points) {
        for (const [a, b] of [[p - 1, p - 1], [p, p], [p + 1, p + 1], [p - 1, p + 1], [p - 2, p], [p, size - 2], [0, p - 1]]) {
          const res = await fetchFile(f.fileId, { headers: { range: `bytes=${a}-${b}` } });
          assert.equal(res.status, 206, `${a}-${b}`);
          assert.equal(res.headers.get('content-range'), `bytes ${a}-${b}/${size}`);
          assertLength(res, b - a + 1);
          assert.ok((await body(res)).equals(f.bytes.subarray(a, b + 1)), `bytes ${a}-${b}`);
        }
      }
      // Random ranges anywhere in the file (stopping short of the last byte: none is a download).
      for (let i = 0; i < 20; i++) {
        const a = crypto.randomInt(0, size - 2);
        const b = crypto.randomInt(a, size - 1);
        const res = await fetchFile(f.fileId, { headers: { range: `bytes=${a}-${b}` } });
        assert.equal(res.status, 206, `${a}-${b}`);
        assert.ok((await body(res)).equals(f.bytes.subarray(a, b + 1)), `random range bytes ${a}-${b}`);
      }
      await sleep(1500);
      assert.equal(receipts(s4).length, 0, 'no range that stops short of the end is a download');

      const suffix = await fetchFile(f.fileId, { headers: { range: 'bytes=-100' } });
      assert.equal(suffix.status, 206);
      assert.equal(suffix.headers.get('content-range'), `bytes ${size - 100}-${size - 1}/${size}`);
      assert.ok((await body(suffix)).equals(f.bytes.subarray(size - 100)));
      served(s4);
      const pastEnd = await fetchFile(f.fileId, { headers: { range: `bytes=${split}-${size + 1000}` } });
      assert.equal(pastEnd.status, 206);
      assert.ok((await body(pastEnd)).equals(f.bytes.subarray(split)));
      served(s4);

      for (const range of [`bytes=${size}-`, `bytes=${size + 10}-${size + 20}`, 'bytes=-0']) {
        const res = await fetchFile(f.fileId, { headers: { range } });
        assert.equal(res.status, 416, range);
        assert.equal(res.headers.get('content-range'), `bytes */${size}`);
        await body(res);
      }
      // Several ranges, or an If-Range that no longer matches: the whole file, as 200.
      const ignored: Record<string, string>[] = [{ range: 'bytes=0-1,5-6' }, { range: 'bytes=0-1', 'if-range': '"stale"' }];
      for (const headers of ignored) {
        const res = await fetchFile(f.fileId, { headers });
        assert.equal(res.status, 200);
        assert.equal(res.headers.get('content-range'), null);
        assert.ok((await body(res)).equals(f.bytes));
        served(s4);
      }
      await expectReceipts(s4, lastByteServed.get(s4)!);
    });

    await t.test('a damaged object: a chunk that fails is never sent, a bad end is a 500; no receipt', async () => {
      const s8 = 'sender8@example.org';
      const f = await deliver(s8, crypto.randomBytes(3 * CHUNK));
      const ciphertext = (await appObjectStore(app).size(f.uploadId))!;
      await corruptObject(app, f.uploadId, Math.floor(ciphertext / 2)); // inside the second chunk
      const res = await fetchFile(f.fileId);
      assert.equal(res.status, 200, 'the first chunk still authenticates');
      const got: Buffer[] = [];
      const reader = res.body!.getReader();
      await assert.rejects(async () => {
        for (let r = await reader.read(); !r.done; r = await reader.read()) got.push(Buffer.from(r.value));
      }, 'the body is cut off, not completed');
      const prefix = Buffer.concat(got);
      assert.ok(prefix.length < CHUNK, `only the first chunk's bytes went out (${prefix.length})`);
      assert.ok(prefix.equals(f.bytes.subarray(0, prefix.length)), 'and they are right');

      await corruptObject(app, f.uploadId, ciphertext - 1); // the final tag: opening fails
      const broken = await fetchFile(f.fileId);
      assert.equal(broken.status, 500);
      assert.equal(((await broken.json()) as { error: string }).error, 'internal', 'a JSON answer, framed by its own length');
      await sleep(1500);
      assert.equal(receipts(s8).length, 0);
      assert.equal((await downloadsOf(f.fileId)).length, 0);
    });

    await t.test('text and HTML files are served as attachments, sandboxed and uncompressed', async () => {
      const s5 = 'sender5@example.org';
      for (const [name, type] of [['labbsvar.txt', 'text/plain'], ['sida.html', 'text/html'], ['okänd', '']]) {
        const f = await deliver(s5, Buffer.from(`<script>alert(1)</script>\n`.repeat(20_000)), { name, type });
        const res = await fetchFile(f.fileId, { headers: { 'accept-encoding': 'gzip, deflate, br' } });
        assert.equal(res.headers.get('content-type'), type || 'application/octet-stream');
        assert.match(res.headers.get('content-disposition')!, /^attachment; /);
        assert.equal(res.headers.get('content-security-policy'), "default-src 'none'; sandbox");
        assert.equal(res.headers.get('content-encoding'), null, 'not compressed');
        assertLength(res, f.bytes.length);
        assert.ok((await body(res)).equals(f.bytes));
        served(s5);
      }
      await expectReceipts(s5, 3);
    });

    await t.test('a user who is not a member gets 404, as for a file that does not exist; no session gets 401', async () => {
      const outsider = await signIn('outsider@example.org');
      const notFound = await fetchFile(f1.fileId, { cookie: outsider });
      assert.equal(notFound.status, 404);
      const notFoundBody = await notFound.text();
      assert.equal((await fetchFile(f1.fileId, { cookie: outsider, method: 'HEAD' })).status, 404);
      const missing = await fetchFile(crypto.randomUUID());
      assert.equal(missing.status, 404);
      assert.equal(await missing.text(), notFoundBody, 'the same answer: nothing tells them apart');
      assert.equal((await fetchFile('not-a-uuid')).status, 404);

      // A file uploaded to a delivery that was never submitted is nobody's to download yet.
      const open = await openDelivery(app.url, { slug: app.slug, senderEmail: 'sender1@example.org' });
      const pending = await prepareFile(open, bufferSource('x.bin', crypto.randomBytes(1000)));
      await uploadFile(app.url, open, pending);
      const pendingId = (await db.query<{ id: string }>('SELECT id FROM delivery_files WHERE upload_id = $1', [uploadIdOf(pending)])).rows[0].id;
      assert.equal((await fetchFile(pendingId)).status, 404);

      assert.equal((await fetchFile(f1.fileId, { cookie: null })).status, 401);
      assert.equal((await fetchFile(f1.fileId, { cookie: 'inkast_session=forged' })).status, 401);
      assert.equal((await fetchFile(f1.fileId, { cookie: null, method: 'HEAD' })).status, 401);
    });

    await t.test('every member of a shared mailbox may download; each was notified once', async () => {
      const s7 = 'sender7@example.org';
      const f = await deliver(s7, crypto.randomBytes(300_000), { slug: sharedSlug });
      const colleague = await signIn('colleague@example.org');
      for (const cookie of [adminCookie, colleague]) {
        const res = await fetchFile(f.fileId, { cookie });
        assert.equal(res.status, 200);
        assert.ok((await body(res)).equals(f.bytes));
        served(s7);
      }
      assert.equal((await fetchFile(f.fileId, { cookie: await signIn('outsider@example.org') })).status, 404);
      await expectReceipts(s7, 2);
      assert.ok(receipts(s7).some((m) => m.text?.includes('Kollega')));
    });

    await t.test('receipts queued while SMTP is down arrive once it is back, none twice', async () => {
      const s6 = 'sender6@example.org';
      const f = await deliver(s6, crypto.randomBytes(1 * MiB));
      await smtp.stop();
      for (let i = 0; i < 4; i++) {
        assert.ok((await body(await fetchFile(f.fileId))).equals(f.bytes));
        served(s6);
      }
      // Every receipt was tried against the stopped server and failed, so they wait in the queue.
      await until(
        async () =>
          (
            await db.query<{ n: number }>(
              `SELECT count(*)::int AS n FROM outbox WHERE to_address = $1 AND state = 'queued' AND attempts > 0 AND last_error IS NOT NULL`,
              [s6],
            )
          ).rows[0].n === 4,
        'four failed receipt attempts',
      );
      assert.equal(receipts(s6).length, 0);
      await smtp.resume();
      await expectReceipts(s6, 4);
    });

    await t.test('each delivery notified each member once', async () => {
      await sleep(1000);
      const notified = (email: string, deliveryId: string) => smtp.to(email).filter((m) => isNotification(m) && m.text?.includes(deliveryId)).length;
      for (const d of delivered) {
        assert.equal(notified(admin, d.deliveryId), 1, `admin, delivery ${d.deliveryId}`);
        assert.equal(notified('colleague@example.org', d.deliveryId), d.shared ? 1 : 0, `colleague, delivery ${d.deliveryId}`);
        assert.equal(notified('outsider@example.org', d.deliveryId), 0);
      }
    });

    await t.test('downloads, receipts and the audit log agree, and the chain verifies', async () => {
      const expected = [...lastByteServed.values()].reduce((a, b) => a + b, 0);
      const downloads = (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM downloads')).rows[0].n;
      assert.equal(downloads, expected);
      assert.equal(smtp.received.filter(isReceipt).length, expected);
      const audited = (
        await db.query<{ actor: string; target: string; detail: Record<string, string> }>(
          `SELECT actor, target, detail FROM audit_log WHERE action = 'file.downloaded'`,
        )
      ).rows;
      assert.equal(audited.length, expected);
      const ids = (await db.query<{ id: string }>('SELECT id FROM downloads')).rows.map((r) => r.id).sort();
      assert.deepEqual(audited.map((a) => a.detail.downloadId).sort(), ids);
      assert.ok(audited.every((a) => a.actor.startsWith('user:') && a.target.startsWith('file:')));
      const log = JSON.stringify((await db.query('SELECT * FROM audit_log')).rows);
      assert.ok(!log.includes(mark), 'no content in the audit log');
      const verified = await verifyAuditLog(db);
      assert.ok(verified.ok && verified.entries >= expected, JSON.stringify(verified));
    });
  });
}
