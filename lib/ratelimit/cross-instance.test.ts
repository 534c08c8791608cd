/**
 * Two built app instances (`next start`) on one fresh PostgreSQL database: the rate limits are
 * counted in the database, so requests alternating between A and B are refused at the shared
 * count, with Retry-After, and a client's forged X-Forwarded-For changes nothing (no trusted
 * proxy). A code asked for on one instance is confirmed on the other, and the sender cookie it
 * sets opens a verified delivery on either.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { startApp, type RunningApp } from '@/lib/testing/app';
import { createPostgresDatabase, postgresAdminUrl } from '@/lib/testing/targets';

const admin = await postgresAdminUrl();
const skip = admin ? false : 'needs a real PostgreSQL (set INKAST_TEST_DATABASE_URL, or run one on 127.0.0.1:5432)';
if (skip) console.log(`# cross-instance rate limits skipped: ${skip}`);

const DELIVERY_WINDOW_S = 15;

interface Answer {
  status: number;
  retryAfter: string | null;
  body: Record<string, unknown>;
  setCookie: string[];
}

async function post(app: RunningApp, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(`${app.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return {
    status: res.status,
    retryAfter: res.headers.get('retry-after'),
    body: text.startsWith('{') ? (JSON.parse(text) as Record<string, unknown>) : { text },
    setCookie: res.headers.getSetCookie(),
  };
}

/** A 429 as the API promises it: JSON with the same wait as the header. */
function assertRateLimited(a: Answer, maxSeconds: number): number {
  assert.equal(a.status, 429, JSON.stringify(a.body));
  const seconds = Number(a.retryAfter);
  assert.ok(Number.isInteger(seconds) && seconds >= 1 && seconds <= maxSeconds, `Retry-After: ${a.retryAfter}`);
  assert.equal(a.body.error, 'rate-limited');
  assert.equal(a.body.retryAfter, seconds);
  assert.match(String(a.body.message), /try again in/);
  return seconds;
}

describe('rate limits shared by two app instances', { skip }, () => {
  let a: RunningApp;
  let b: RunningApp;
  let sql: pg.Client;
  let slug: string;
  const both = () => [a, b];

  before(async () => {
    const databaseUrl = await createPostgresDatabase(admin!);
    const env = {
      DATABASE_URL: databaseUrl,
      INKAST_MASTER_KEY: crypto.randomBytes(32).toString('base64'),
      INKAST_SESSION_SECRET: crypto.randomBytes(32).toString('hex'),
      INKAST_ADMIN_EMAIL: 'admin@example.org',
      INKAST_WORKER: 'false',
      INKAST_RATE_DELIVERIES_PER_IP: `4/${DELIVERY_WINDOW_S}s`,
      INKAST_RATE_UPLOAD_BYTES_PER_IP: '3MB/1h',
      INKAST_RATE_CODES_PER_ADDRESS: '3/1h',
      INKAST_RATE_CODES_PER_IP: '100/1h',
      INKAST_RATE_CODE_CHECKS_PER_IP: '100/1h',
    };
    // One after the other: the first creates the administrator and its mailbox.
    a = await startApp({ env });
    b = await startApp({ env });
    assert.equal(a.slug, b.slug);
    slug = a.slug;
    sql = new pg.Client({ connectionString: databaseUrl });
    await sql.connect();
  });

  after(async () => {
    await sql?.end();
    for (const app of [a, b]) {
      await app?.stop();
      if (app) fs.rmSync(app.dataDir, { recursive: true, force: true });
    }
  });

  let opened: { deliveryId: string; senderToken: string } | undefined;
  let deliveryWait = 0;

  test('deliveries per IP: alternating A and B, the fifth is refused on both, whatever X-Forwarded-For claims', async () => {
    for (let i = 0; i < 4; i++) {
      const app = both()[i % 2];
      // A different forged client address each time: without a trusted proxy it must not count.
      const r = await post(app, '/api/deliveries', { slug, senderEmail: `sender${i}@example.org` }, { 'x-forwarded-for': `203.0.113.${i + 1}` });
      assert.equal(r.status, 201, `request ${i + 1} on ${app === a ? 'A' : 'B'}: ${JSON.stringify(r.body)}`);
      opened ??= r.body as { deliveryId: string; senderToken: string };
    }
    deliveryWait = assertRateLimited(await post(a, '/api/deliveries', { slug, senderEmail: 'sender5@example.org' }, { 'x-forwarded-for': '203.0.113.99' }), DELIVERY_WINDOW_S);
    assertRateLimited(await post(b, '/api/deliveries', { slug, senderEmail: 'sender6@example.org' }), DELIVERY_WINDOW_S);
    const rows = (await sql.query(`SELECT count(*)::int AS n FROM deliveries`)).rows[0].n;
    assert.equal(rows, 4, 'the refused requests opened nothing');
    // Counted for the TCP peer the instances saw (not one 'unknown' bucket, not the forged addresses).
    const key = (ip: string) => `deliveriesPerIp:${crypto.createHash('sha256').update(ip).digest('base64url').slice(0, 32)}`;
    const keys = (await sql.query<{ key: string }>(`SELECT key FROM rate_limits WHERE key LIKE 'deliveriesPerIp:%'`)).rows.map((r) => r.key);
    assert.deepEqual(keys, [key('127.0.0.1')]);
  });

  test('upload bytes per IP: counted by Upload-Length across both instances', async () => {
    assert.ok(opened);
    const create = async (app: RunningApp, length: number) => {
      const res = await fetch(`${app.url}/api/tus`, {
        method: 'POST',
        headers: {
          'Tus-Resumable': '1.0.0',
          'Upload-Length': String(length),
          'Upload-Metadata': `deliveryId ${Buffer.from(opened!.deliveryId).toString('base64')}`,
          'Inkast-Sender-Token': opened!.senderToken,
        },
      });
      return { status: res.status, retryAfter: res.headers.get('retry-after'), text: await res.text() };
    };
    assert.equal((await create(a, 1_400_000)).status, 201);
    assert.equal((await create(b, 1_400_000)).status, 201);
    const refused = await create(a, 1_400_000);
    assert.equal(refused.status, 429, refused.text);
    const seconds = Number(refused.retryAfter);
    assert.ok(seconds > 3500 && seconds <= 3600, `Retry-After: ${refused.retryAfter}`);
    assert.match(refused.text, /uploaded too much/);
    assert.equal((await create(b, 1_400_000)).status, 429);
    // The refused ones were not counted: what is left still fits.
    assert.equal((await create(b, 200_000)).status, 201);
  });

  test('codes per address: alternating A and B, the fourth is refused; the answer never says whether a code went out', async () => {
    await sql.query(`UPDATE mailboxes SET require_verified_sender = true WHERE filedrop_slug = $1`, [slug]);
    for (let i = 0; i < 3; i++) {
      const r = await post(both()[i % 2], '/api/senders/code', { slug, email: 'Many.Codes@example.org', locale: 'en' });
      assert.equal(r.status, 202);
      assert.deepEqual(r.body, { status: 'sent' });
    }
    assertRateLimited(await post(b, '/api/senders/code', { slug, email: 'many.codes@example.org' }), 3600);
    assertRateLimited(await post(a, '/api/senders/code', { slug: 'JxF12TrwUP45BeS8TJ7ZdJ', email: 'many.codes@example.org' }), 3600);
    // Unknown link, same 202 as a real one.
    const unknown = await post(a, '/api/senders/code', { slug: 'JxF12TrwUP45BeS8TJ7ZdJ', email: 'someone@example.org' });
    assert.equal(unknown.status, 202);
    assert.deepEqual(unknown.body, { status: 'sent' });
    const mails = (await sql.query(`SELECT to_address FROM outbox WHERE template = 'sender-code'`)).rows.map((r) => r.to_address);
    assert.deepEqual(mails, ['many.codes@example.org', 'many.codes@example.org', 'many.codes@example.org']);
  });

  test('after Retry-After the window is open again: a code asked on B, confirmed on A, sends a verified delivery through B', async () => {
    await new Promise((r) => setTimeout(r, deliveryWait * 1000 + 500));
    const email = 'lakare@region.example';
    assert.equal((await post(b, '/api/senders/code', { slug, email, locale: 'sv' })).status, 202);
    const mail = (
      await sql.query<{ text_body: string }>(
        `SELECT text_body FROM outbox WHERE to_address = $1 AND template = 'sender-code' ORDER BY created_at DESC LIMIT 1`,
        [email],
      )
    ).rows[0];
    const code = /^Kod: (\d{6})$/m.exec(mail.text_body)![1];

    const wrongCode = String((Number(code) + 1) % 1_000_000).padStart(6, '0');
    const wrong = await post(b, '/api/senders/verify', { slug, email, code: wrongCode });
    assert.equal(wrong.status, 400);
    assert.equal(wrong.body.error, 'code-wrong');
    assert.equal(wrong.body.attemptsLeft, 4);

    const ok = await post(a, '/api/senders/verify', { slug, email, code });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.deepEqual(ok.body, { email, verified: true });
    const cookie = ok.setCookie.find((c) => c.startsWith('inkast_sender='));
    assert.ok(cookie, 'the sender cookie is set');
    assert.match(cookie, /HttpOnly/i);
    assert.match(cookie, /SameSite=Lax/i);
    const jar = cookie.split(';')[0];

    const again = await post(b, '/api/senders/verify', { slug, email, code });
    assert.equal(again.status, 409);
    assert.equal(again.body.error, 'code-used');

    const without = await post(b, '/api/deliveries', { slug, senderEmail: email });
    assert.equal(without.status, 401);
    assert.equal(without.body.error, 'sender-verification-required');
    const otherAddress = await post(b, '/api/deliveries', { slug, senderEmail: 'someone.else@region.example' }, { cookie: jar });
    assert.equal(otherAddress.status, 409);
    assert.equal(otherAddress.body.error, 'sender-email-mismatch');
    const made = await post(b, '/api/deliveries', { slug, senderEmail: email, locale: 'sv' }, { cookie: jar });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    assert.equal(made.body.senderVerified, true);
    const row = (await sql.query(`SELECT sender_email, sender_verified FROM deliveries WHERE id = $1`, [made.body.deliveryId])).rows[0];
    assert.deepEqual(row, { sender_email: email, sender_verified: true });
  });
});
