/**
 * User administration through the built app (`next build` first), as an administrator and a
 * handler use it: the invite form without script and the mail it sends, a handler refused on
 * every user route and the page, and a disabled handler's live session ending with its next
 * request. On PostgreSQL, so the test can read the running app's database.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { verifyAuditLog } from '@/lib/audit';
import { openDb, type Db } from '@/lib/db';
import { startApp, type RunningApp } from '@/lib/testing/app';
import { signInWithEmail, startMailCatcher, type MailCatcher } from '@/lib/testing/sign-in';
import { createPostgresDatabase, postgresAdminUrl } from '@/lib/testing/targets';

const ADMIN = 'admin@example.org';
const HANDLER = 'handler@example.org';

const pgAdmin = await postgresAdminUrl();

describe('user administration through the built app', { skip: pgAdmin ? false : 'needs PostgreSQL (the test reads the running app’s database)' }, () => {
  let app: RunningApp;
  let smtp: MailCatcher;
  let q: Db;
  let adminCookie: string;
  let adminId: string;
  let handlerCookie: string;
  let handlerId: string;

  const url = (path: string) => new URL(path, app.url);
  /** A POST as the app's own page sends it: a form (with `back`) or JSON. */
  const post = (path: string, cookie: string, body?: Record<string, string>, form = false) =>
    fetch(url(path), {
      method: 'POST',
      redirect: 'manual',
      headers: {
        cookie,
        origin: app.url,
        ...(body ? { 'content-type': form ? 'application/x-www-form-urlencoded' : 'application/json' } : {}),
      },
      body: body && (form ? new URLSearchParams(body).toString() : JSON.stringify(body)),
    });
  const page = async (path: string, cookie: string) => {
    const res = await fetch(url(path), { headers: { cookie }, redirect: 'manual' });
    return { status: res.status, location: res.headers.get('location'), html: await res.text() };
  };
  /** 204 while the cookie is a live session, 401 otherwise. */
  const sessionStatus = async (cookie: string) => (await post('/api/auth/session', cookie)).status;

  before(async () => {
    smtp = await startMailCatcher();
    const databaseUrl = await createPostgresDatabase(pgAdmin!);
    app = await startApp({
      env: {
        DATABASE_URL: databaseUrl,
        SMTP_URL: smtp.url,
        MAIL_FROM: 'Inkast <inkast@inkast.test>',
        INKAST_ADMIN_EMAIL: ADMIN,
        INKAST_SESSION_SECRET: crypto.randomBytes(32).toString('hex'),
      },
    });
    q = await openDb({ databaseUrl });
    adminCookie = await signInWithEmail(app.url, ADMIN, () => smtp.nextLinkTo(ADMIN));
    adminId = (await q.query<{ id: string }>(`SELECT id FROM users WHERE email = $1`, [ADMIN])).rows[0].id;
  });

  after(async () => {
    await app?.stop();
    await q?.close();
    await smtp?.stop();
  });

  test('the invite form answers 303 back to the page, mails the user, and they can sign in', async () => {
    const shown = await page('/admin/users', adminCookie);
    assert.equal(shown.status, 200);
    const has = (html: string, pattern: RegExp) => assert.ok(pattern.test(html), `the page shows ${pattern}`);
    has(shown.html, /<caption>Alla användare, aktiva först<\/caption>/);
    has(shown.html, /<form action="\/api\/admin\/users" method="post">/);
    has(shown.html, /<label class="label" for="invite-email">E-postadress<\/label>/);

    const res = await post('/api/admin/users', adminCookie, { back: '/admin/users', email: 'Handler@Example.org', displayName: 'Hanna Handläggare', role: 'handler', locale: 'en' }, true);
    assert.equal(res.status, 303);
    assert.equal(res.headers.get('location'), '/admin/users?done=user-invited');
    const listed = await page('/admin/users?done=user-invited', adminCookie);
    has(listed.html, /role="status"[^>]*>Användaren är inbjuden/);
    has(listed.html, /<th scope="row">Hanna Handläggare<\/th>/);

    const handler = (
      await q.query<{ id: string; filedrop_slug: string }>(
        `SELECT u.id, m.filedrop_slug FROM users u JOIN mailboxes m ON m.owner_user_id = u.id WHERE u.email = $1`,
        [HANDLER],
      )
    ).rows[0];
    handlerId = handler.id;
    const mail = await smtp.nextMailTo(HANDLER);
    assert.equal(mail.subject, 'You have an Inkast account', 'in the language the administrator chose');
    assert.ok(mail.text?.includes(`${app.url}/signin`));
    assert.ok(mail.text?.includes(`${app.url}/d/${handler.filedrop_slug}`), 'with their personal filedrop link');
    assert.doesNotMatch(mail.text ?? '', /auth\/verify|token=/, 'the invitation itself signs nobody in');
    // The filedrop link in the mail is live.
    assert.equal((await fetch(url(`/d/${handler.filedrop_slug}`))).status, 200);

    handlerCookie = await signInWithEmail(app.url, HANDLER, () => smtp.nextLinkTo(HANDLER));
    assert.equal(await sessionStatus(handlerCookie), 204);

    const again = await post('/api/admin/users', adminCookie, { back: '/admin/users', email: HANDLER, displayName: 'Someone', role: 'handler', locale: 'sv' }, true);
    assert.equal(again.headers.get('location'), '/admin/users?error=user-exists');
    has((await page('/admin/users?error=user-exists', adminCookie)).html, /role="alert"[^>]*>Det finns redan en användare med den e-postadressen/);
  });

  test('a handler gets 403 on every user route and on the page, and nothing changes', async () => {
    const snapshot = async () => ({
      users: (await q.query(`SELECT id, email, role, disabled_at, session_epoch FROM users ORDER BY id`)).rows,
      audit: (await q.query(`SELECT count(*)::int AS n FROM audit_log`)).rows[0],
      outbox: (await q.query(`SELECT count(*)::int AS n FROM outbox`)).rows[0],
    });
    const before = await snapshot();
    assert.equal((await page('/admin/users', handlerCookie)).status, 403);
    const attempts: [string, Record<string, string>][] = [
      ['/api/admin/users', { email: 'intruder@example.org', displayName: 'Intruder', role: 'admin', locale: 'sv' }],
      [`/api/admin/users/${handlerId}/role`, { role: 'admin' }],
      [`/api/admin/users/${adminId}/disable`, {}],
      [`/api/admin/users/${adminId}/enable`, {}],
    ];
    for (const [path, body] of attempts) {
      assert.equal((await post(path, handlerCookie, body)).status, 403, `${path} as JSON`);
      const form = await post(path, handlerCookie, { back: '/admin/users', ...body }, true);
      assert.equal(form.status, 403, `${path} as a form`);
      assert.equal((await post(path, '', body)).status, 401, `${path} signed out`);
    }
    assert.deepEqual(await snapshot(), before);
    assert.equal(await sessionStatus(handlerCookie), 204, 'the handler is still signed in');
  });

  test('disabling a handler ends their live session with their very next request', async () => {
    assert.equal((await page('/inbox', handlerCookie)).status, 200);
    const res = await post(`/api/admin/users/${handlerId}/disable`, adminCookie, {});
    assert.equal(res.status, 200);
    const { user } = (await res.json()) as { user: { id: string; disabled_at: string | null } };
    assert.equal(user.id, handlerId);
    assert.ok(user.disabled_at);

    assert.equal(await sessionStatus(handlerCookie), 401);
    const inbox = await page('/inbox', handlerCookie);
    assert.equal(inbox.status, 307);
    assert.equal(new URL(inbox.location!, app.url).pathname, '/signin');

    const entry = (
      await q.query<{ actor: string }>(`SELECT actor FROM audit_log WHERE action = 'user.disabled' AND target = $1`, [`user:${handlerId}`])
    ).rows;
    assert.deepEqual(entry, [{ actor: `user:${adminId}` }]);

    // Nor can the administrator lock themself out; the page says why.
    const own = await post(`/api/admin/users/${adminId}/disable`, adminCookie, { back: '/admin/users' }, true);
    assert.equal(own.headers.get('location'), '/admin/users?error=own-account');
    assert.equal((await post(`/api/admin/users/${adminId}/role`, adminCookie, { role: 'handler' })).status, 409);
    assert.equal(await sessionStatus(adminCookie), 204);

    const v = await verifyAuditLog(q);
    assert.equal(v.ok, true, JSON.stringify(v));
  });
});
