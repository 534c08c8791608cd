/**
 * The audit log through the built app (`next build` first): the administrator downloads CSV and
 * JSON exports and finds their own sign-in in them; a handler and a stranger are refused before
 * any work; a bad filter is a 400; the page filters, offers the filtered exports and checks the
 * chain. On PostgreSQL, so the test can add a handler and break the chain while the app runs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { audit } from '@/lib/audit';
import { openDb, type Db } from '@/lib/db';
import { startApp, type RunningApp } from '@/lib/testing/app';
import { signInWithEmail, startMailCatcher, type MailCatcher } from '@/lib/testing/sign-in';
import { createPostgresDatabase, postgresAdminUrl } from '@/lib/testing/targets';

const ADMIN = 'admin@example.org';
const HANDLER = 'handler@example.org';

const pgAdmin = await postgresAdminUrl();

/** The rows of the page's table, each as its HTML. */
const tableRows = (html: string) => [...html.matchAll(/<tr data-testid="audit-entry">([\s\S]*?)<\/tr>/g)].map((m) => m[1]);

describe('the audit log through the built app', { skip: pgAdmin ? false : 'needs PostgreSQL (the test changes the running app’s database)' }, () => {
  let app: RunningApp;
  let smtp: MailCatcher;
  let q: Db;
  let adminCookie: string;
  let handlerCookie: string;
  let adminId: string;

  const get = (path: string, cookie = '') => fetch(new URL(path, app.url), { headers: { cookie }, redirect: 'manual' });

  before(async () => {
    smtp = await startMailCatcher();
    const databaseUrl = await createPostgresDatabase(pgAdmin!);
    app = await startApp({ env: { DATABASE_URL: databaseUrl, SMTP_URL: smtp.url, MAIL_FROM: 'Inkast <inkast@inkast.test>', INKAST_ADMIN_EMAIL: ADMIN } });
    q = await openDb({ databaseUrl });
    await q.query(`INSERT INTO users (email, display_name, role, locale) VALUES ($1, 'Handläggare', 'handler', 'en')`, [HANDLER]);
    adminCookie = await signInWithEmail(app.url, ADMIN, () => smtp.nextLinkTo(ADMIN));
    handlerCookie = await signInWithEmail(app.url, HANDLER, () => smtp.nextLinkTo(HANDLER));
    adminId = (await q.query<{ id: string }>('SELECT id FROM users WHERE email = $1', [ADMIN])).rows[0].id;
  });

  after(async () => {
    await app?.stop();
    await q?.close();
    await smtp?.stop();
  });

  test('the administrator downloads the CSV export and finds their own sign-in in it', async () => {
    const res = await get('/api/admin/audit?format=csv', adminCookie);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/csv; charset=utf-8');
    assert.match(res.headers.get('content-disposition') ?? '', /^attachment; filename="inkast-audit-\d{4}-\d{2}-\d{2}\.csv"$/);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    const lines = (await res.text()).split('\r\n');
    assert.equal(lines[0], 'id,at,actor,actor_email,action,target,target_email,detail,hash,prev_hash');
    const signIn = lines.find((l) => l.includes(`,user:${adminId},${ADMIN},auth.signed-in,`));
    assert.ok(signIn, 'the admin’s sign-in is in the export, with their address');
    assert.match(signIn, /^\d+,\d{4}-\d{2}-\d{2}T[\d:.]+Z,/);
    assert.ok(lines.some((l) => l.includes(`,${HANDLER},auth.signed-in,`)), 'and the handler’s');
  });

  test('the JSON export parses whole, and the CSV export before it was logged', async () => {
    const res = await get('/api/admin/audit?format=json', adminCookie);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/json');
    assert.match(res.headers.get('content-disposition') ?? '', /^attachment; filename="inkast-audit-\d{4}-\d{2}-\d{2}\.json"$/);
    const entries = (await res.json()) as { id: number; actor: string; actor_email: string | null; action: string; detail: Record<string, unknown>; prev_hash: string | null; hash: string }[];
    assert.ok(entries.some((e) => e.action === 'auth.signed-in' && e.actor_email === ADMIN && e.actor === `user:${adminId}`));
    const exported = entries.find((e) => e.action === 'audit.exported' && e.actor_email === ADMIN);
    assert.deepEqual(exported?.detail, { format: 'csv' });
    assert.deepEqual(entries.map((e) => e.id), [...entries.map((e) => e.id)].sort((a, b) => a - b), 'oldest first');
    for (let i = 1; i < entries.length; i++) assert.equal(entries[i].prev_hash, entries[i - 1].hash, 'an unfiltered export is the chain itself');
  });

  test('a filtered export holds only what matches', async () => {
    const res = await get(`/api/admin/audit?format=json&action=auth.&actor=${encodeURIComponent(HANDLER)}`, adminCookie);
    const entries = (await res.json()) as { action: string; actor_email: string }[];
    assert.ok(entries.length >= 2, 'link sent, signed in');
    assert.ok(entries.every((e) => e.action.startsWith('auth.') && e.actor_email === HANDLER));
  });

  test('a handler is refused the export and the page; no session is 401', async () => {
    const exportAsHandler = await get('/api/admin/audit?format=csv', handlerCookie);
    assert.equal(exportAsHandler.status, 403);
    assert.equal(((await exportAsHandler.json()) as { error: string }).error, 'admin-only');
    assert.equal((await get('/admin/audit', handlerCookie)).status, 403);
    const anonymous = await get('/api/admin/audit?format=csv');
    assert.equal(anonymous.status, 401);
    assert.equal(((await anonymous.json()) as { error: string }).error, 'sign-in-required');
    const page = await get('/admin/audit');
    assert.equal(page.status, 307);
    assert.equal(new URL(page.headers.get('location')!, app.url).pathname, '/signin');
    const exports = (await q.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit_log WHERE action = 'audit.exported' AND actor <> $1`, [`user:${adminId}`])).rows[0].n;
    assert.equal(exports, 0, 'no refused export was logged as one');
  });

  test('an invalid filter is a 400 that says which', async () => {
    for (const query of ['actor=not-an-address', 'from=2025-13-01', 'from=2025-03-02&to=2025-03-01', 'action=DROP%20TABLE']) {
      const res = await get(`/api/admin/audit?format=csv&${query}`, adminCookie);
      assert.equal(res.status, 400, query);
      assert.equal(((await res.json()) as { error: string }).error, 'invalid-filter', query);
    }
    const format = await get('/api/admin/audit?format=xlsx', adminCookie);
    assert.equal(format.status, 400);
    const page = await get('/admin/audit?lang=en&from=yesterday', adminCookie);
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /role="alert"[^>]*>The filter cannot be used\. Check: from day\./);
    assert.match(html, /id="audit-from"[^>]*aria-invalid="true"|aria-invalid="true"[^>]*id="audit-from"/);
  });

  test('the page with a filter shows only matching entries, and exports that filter', async () => {
    const res = await get(`/admin/audit?lang=en&action=auth.signed-in&actor=${encodeURIComponent(HANDLER)}`, adminCookie);
    assert.equal(res.status, 200);
    const html = await res.text();
    const rows = tableRows(html);
    assert.equal(rows.length, 1, 'the handler signed in once');
    assert.match(rows[0], /Signed in/);
    assert.match(rows[0], /auth\.signed-in/);
    assert.match(rows[0], new RegExp(HANDLER));
    assert.match(html, /<caption>The audit log, newest first: page 1 of 1, matches: 1<\/caption>/);
    assert.match(html, new RegExp(`href="/api/admin/audit\\?actor=${encodeURIComponent(HANDLER)}&amp;action=auth.signed-in&amp;format=csv"`));
    assert.match(html, /id="audit-action"[^>]*value="auth.signed-in"|value="auth.signed-in"[^>]*id="audit-action"/, 'the filter stays in the form');

    const all = tableRows(await (await get('/admin/audit?lang=en', adminCookie)).text());
    assert.ok(all.length > rows.length);
    assert.ok(all.some((r) => r.includes('auth.sign-in-link-sent')));
  });

  test('pages keep the filter', async () => {
    for (let i = 0; i < 55; i++) await q.transaction((tx) => audit(tx, { actor: 'system', action: 'test.paged', target: `n:${i}` }));
    const one = await (await get('/admin/audit?lang=en&action=test.paged', adminCookie)).text();
    assert.equal(tableRows(one).length, 50);
    assert.match(one, /page 1 of 2, matches: 55</);
    const next = /<a href="([^"]+)" rel="next"/.exec(one)?.[1].replaceAll('&amp;', '&');
    assert.equal(next, '/admin/audit?action=test.paged&page=2');
    const two = tableRows(await (await get(`${next}&lang=en`, adminCookie)).text());
    assert.deepEqual(two.map((r) => /n:(\d+)/.exec(r)?.[1]), ['4', '3', '2', '1', '0'], 'the oldest five, newest first');
  });

  test('checking the chain: intact, then broken where it was changed', async () => {
    const intact = await (await get('/admin/audit?lang=en&verify=1', adminCookie)).text();
    const n = (await q.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_log')).rows[0].n;
    assert.match(intact, new RegExp(`role="status"[^>]*>The chain is intact: ${n} entries\\.`));
    await q.query(`UPDATE audit_log SET actor = 'system' WHERE id = 2`);
    const broken = await (await get('/admin/audit?verify=1', adminCookie)).text();
    assert.match(broken, /role="alert"[^>]*>Kedjan är bruten vid post 2: posten har ändrats efter att den skrevs\./);
  });
});
