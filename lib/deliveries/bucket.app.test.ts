/**
 * What happens to a delivery's objects in the real bucket, checked from outside the app as an
 * operator would: with the S3 API and PostgreSQL. An exported mailbox key and `inkast decrypt`
 * open an object fetched straight from the bucket; a handler's deletion and the retention job
 * leave nothing of a delivery in the bucket (an S3 listing) or the database but its tombstone.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import pg from 'pg';
import { startApp, type RunningApp } from '@/lib/testing/app';
import { s3AppEnv } from '@/lib/testing/inspect';
import { signInWithEmail, startMailCatcher, type MailCatcher } from '@/lib/testing/sign-in';
import { createPostgresDatabase, postgresAdminUrl, s3Settings } from '@/lib/testing/targets';
import { bufferSource, sendDelivery, waitForFinalState, type PreparedFile } from '@/lib/uploads/client';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const ADMIN = 'admin@region.example';
const HANDLER = 'handlaggare@region.example';
const OUTSIDER = 'annan@region.example';
const PASSPHRASE = 'a passphrase kept in the safe';

const s3 = await s3Settings();
const pgAdmin = await postgresAdminUrl();

/** `inkast …` with only the given settings; resolves with the exit code and the --json answer. */
function inkast(args: string[], env: Record<string, string>): Promise<{ code: number; json: Record<string, unknown>; stderr: string }> {
  const clean = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', TMPDIR: os.tmpdir(), NODE_ENV: 'production' as const, INKAST_LOG_LEVEL: 'silent', ...env };
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(ROOT, 'bin/inkast.mjs'), ...args, '--json'], { env: clean, timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      let json: Record<string, unknown> = {};
      try {
        json = JSON.parse(stdout.trim().split('\n').pop() ?? '');
      } catch {
        // not JSON: the assertion on the exit code says why
      }
      resolve({ code, json, stderr });
    });
  });
}

const uploadIdOf = (f: PreparedFile) => new URL(f.uploadUrl!).pathname.split('/').pop()!;

describe('the bucket and the database, seen from outside the app', { skip: !s3 || !pgAdmin ? 'needs PostgreSQL and an S3 server' : false }, () => {
  let smtp: MailCatcher;
  let app: RunningApp;
  let sql: pg.Client;
  let bucket: S3Client;
  let work: string;
  let admin: string;
  let handler: string;
  let outsider: string;
  let mailbox: { id: string; slug: string };

  const post = (p: string, cookie: string, body: unknown) =>
    fetch(`${app.url}${p}`, {
      method: 'POST',
      headers: { origin: app.url, cookie, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  /** The object keys in the app's bucket: the ciphertexts and tus's sidecars. */
  async function bucketKeys(): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await bucket.send(new ListObjectsV2Command({ Bucket: app.env.S3_BUCKET, ContinuationToken: token }));
      keys.push(...(page.Contents ?? []).map((o) => o.Key!));
      token = page.NextContinuationToken;
    } while (token);
    return keys;
  }

  async function deliver(name: string, bytes: Buffer) {
    const sent = await sendDelivery(app.url, {
      slug: mailbox.slug,
      senderEmail: 'avsandare@vardcentral.example',
      subject: 'Remiss',
      message: 'Hej',
      files: [bufferSource(name, bytes, 'application/pdf')],
    });
    assert.equal((await waitForFinalState(app.url, sent.delivery)).state, 'delivered');
    return { id: sent.delivery.deliveryId, reference: sent.delivery.reference, uploadId: uploadIdOf(sent.files[0]) };
  }

  /** What is left of a delivery in the database: its rows, and its audit entries. */
  async function leftOf(deliveryId: string) {
    const count = async (sqlText: string) => Number((await sql.query(sqlText, [deliveryId])).rows[0].n);
    return {
      deliveries: await count('SELECT count(*) AS n FROM deliveries WHERE id = $1'),
      files: await count('SELECT count(*) AS n FROM delivery_files WHERE delivery_id = $1'),
      tombstones: (await sql.query(`SELECT actor, detail FROM audit_log WHERE action = 'delivery.deleted' AND target = $1`, [`delivery:${deliveryId}`])).rows,
    };
  }

  before(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'inkast-bucket-'));
    smtp = await startMailCatcher();
    const databaseUrl = await createPostgresDatabase(pgAdmin!);
    app = await startApp({
      env: { ...(await s3AppEnv(s3!)), DATABASE_URL: databaseUrl, INKAST_ADMIN_EMAIL: ADMIN, SMTP_URL: smtp.url, MAIL_FROM: 'Inkast <inkast@region.example>' },
    });
    sql = new pg.Client({ connectionString: databaseUrl });
    await sql.connect();
    bucket = new S3Client({
      endpoint: s3!.endpoint,
      region: s3!.region,
      forcePathStyle: true,
      credentials: { accessKeyId: s3!.accessKeyId, secretAccessKey: s3!.secretAccessKey },
    });
    admin = await signInWithEmail(app.url, ADMIN, () => smtp.nextLinkTo(ADMIN));
    for (const email of [HANDLER, OUTSIDER]) {
      const invited = await post('/api/admin/users', admin, { email, displayName: email.split('@')[0] });
      assert.equal(invited.status, 201, await invited.clone().text());
      await smtp.nextMailTo(email);
    }
    const created = await post('/api/admin/mailboxes', admin, { name: 'Remisser', functionalEmail: 'remisser@region.example' });
    assert.equal(created.status, 201, await created.clone().text());
    const m = (await created.json()) as { id: string; filedropUrl: string };
    mailbox = { id: m.id, slug: m.filedropUrl.split('/').pop()! };
    assert.equal((await post(`/api/admin/mailboxes/${m.id}/members`, admin, { email: HANDLER })).status, 201);
    handler = await signInWithEmail(app.url, HANDLER, () => smtp.nextLinkTo(HANDLER));
    outsider = await signInWithEmail(app.url, OUTSIDER, () => smtp.nextLinkTo(OUTSIDER));
  });

  after(async () => {
    await sql?.end();
    bucket?.destroy();
    await app?.stop();
    await smtp?.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  test('an exported key and `inkast decrypt` turn an object fetched from the bucket into the file sent', async () => {
    const original = crypto.randomBytes(2 * 1024 * 1024 + 77);
    const name = 'remiss röntgen 2026 – Åsa.pdf';
    const d = await deliver(name, original);

    const exported = await post(`/api/admin/mailboxes/${mailbox.id}/key/export`, admin, { passphrase: PASSPHRASE });
    assert.equal(exported.status, 200, await exported.clone().text());
    const keyFile = path.join(work, 'remisser.asc');
    fs.writeFileSync(keyFile, await exported.text());
    const passFile = path.join(work, 'passphrase');
    fs.writeFileSync(passFile, `${PASSPHRASE}\n`);

    // Straight from the bucket, as after a disaster with only the bucket copy and the key file left.
    const object = await bucket.send(new GetObjectCommand({ Bucket: app.env.S3_BUCKET, Key: d.uploadId }));
    const objectFile = path.join(work, 'object.bin');
    fs.writeFileSync(objectFile, Buffer.from(await object.Body!.transformToByteArray()));
    assert.ok(!fs.readFileSync(objectFile).includes(original.subarray(0, 64)), 'the bucket holds ciphertext');

    const outDir = path.join(work, 'out');
    // No database and no data directory: the offline path needs neither.
    const r = await inkast(['decrypt', '--key', keyFile, '--passphrase-file', passFile, '--object', objectFile, '--out', outDir], {
      INKAST_DATA_DIR: path.join(work, 'nowhere'),
      DATABASE_URL: 'postgres://127.0.0.1:9/none',
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.name, name);
    assert.deepEqual(fs.readFileSync(path.join(outDir, name)), original);
  });

  test('a handler deletes a delivery: gone from the bucket and the database, its tombstone stays', async () => {
    const d = await deliver('journal.pdf', crypto.randomBytes(300_000));
    assert.ok((await bucketKeys()).some((k) => k.startsWith(d.uploadId)), 'stored before');

    const refused = await post(`/api/inbox/deliveries/${d.id}/delete`, outsider, {});
    assert.equal(refused.status, 404, 'someone outside the mailbox learns nothing and deletes nothing');
    assert.equal((await leftOf(d.id)).deliveries, 1);

    const page = await (await fetch(`${app.url}/inbox/deliveries/${d.id}`, { headers: { cookie: handler } })).text();
    assert.ok(page.includes('Radera leveransen'), 'the delivery page offers the deletion');
    const deleted = await fetch(`${app.url}/api/inbox/deliveries/${d.id}/delete`, {
      method: 'POST',
      redirect: 'manual',
      headers: { origin: app.url, cookie: handler, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'confirm=on',
    });
    assert.equal(deleted.status, 303);
    assert.equal(deleted.headers.get('location'), `/inbox?mailbox=${mailbox.id}&done=delivery-deleted`);

    assert.deepEqual((await bucketKeys()).filter((k) => k.startsWith(d.uploadId)), [], 'no object, part or sidecar left');
    const left = await leftOf(d.id);
    assert.deepEqual({ deliveries: left.deliveries, files: left.files }, { deliveries: 0, files: 0 });
    assert.equal(left.tombstones.length, 1);
    assert.match(String(left.tombstones[0].actor), /^user:/);
    assert.equal(left.tombstones[0].detail.reference, d.reference);
    assert.ok(!JSON.stringify(left.tombstones).includes('journal'), 'the tombstone holds no file name');
    assert.equal((await fetch(`${app.url}/inbox/deliveries/${d.id}`, { headers: { cookie: handler } })).status, 404);
  });

  test('retention: after the job the objects are gone from the bucket and the rows with them; the tombstone remains', async () => {
    const kept = await deliver('kept.pdf', crypto.randomBytes(100_000));
    const old = await deliver('old.pdf', crypto.randomBytes(100_000));
    assert.equal((await post(`/api/admin/mailboxes/${mailbox.id}/policy`, admin, { retentionDays: 7 })).status, 200);
    await sql.query(`UPDATE deliveries SET delivered_at = now() - interval '8 days' WHERE id = $1`, [old.id]);

    // The job as an operator runs it, beside the running app (PostgreSQL is shared).
    const run = await inkast(['retention', 'run'], { ...app.env });
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual((run.json.deleted as { deliveryId: string }[]).map((x) => x.deliveryId), [old.id]);

    const keys = await bucketKeys();
    assert.deepEqual(keys.filter((k) => k.startsWith(old.uploadId)), [], 'the old delivery is gone from the bucket');
    assert.ok(keys.includes(kept.uploadId), 'a delivery within retention stays');
    const left = await leftOf(old.id);
    assert.deepEqual({ deliveries: left.deliveries, files: left.files }, { deliveries: 0, files: 0 });
    assert.deepEqual(left.tombstones.map((t) => t.actor), ['system']);
    assert.equal((await leftOf(kept.id)).deliveries, 1);

    const verified = await inkast(['audit', 'verify'], { ...app.env });
    assert.equal(verified.code, 0, verified.stderr);
    assert.equal(verified.json.ok, true);
  });
});
