/**
 * Every admin route and page refuses everyone but an administrator. The routes and pages are
 * found on disk (app/api/admin/**, app/admin/**), so one added later is swept too. Each request
 * aims at real rows (a real user, a shared mailbox with a member), so a missing check would
 * change something; every admin action is audited, so "nothing changed" is read from the log.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startApp, type RunningApp } from '@/lib/testing/app';
import { signInWithEmail, startMailCatcher, type MailCatcher } from '@/lib/testing/sign-in';

const ADMIN = 'admin@region.example';
const HANDLER = 'handlaggare@region.example';
const root = path.resolve(import.meta.dirname, '..', '..');

/** Files named `name` under `dir`, as paths relative to `dir` with forward slashes. */
function filesNamed(dir: string, name: string): string[] {
  const found: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name === name) found.push(path.relative(dir, p).split(path.sep).join('/'));
    }
  };
  walk(dir);
  return found.sort();
}

interface Sweep {
  method: string;
  /** The route with its dynamic segments filled in. */
  url: string;
  file: string;
}

/** Every exported handler of every admin route file, with real ids for its segments. */
function adminRoutes(ids: Record<string, string>): Sweep[] {
  const sweep: Sweep[] = [];
  for (const file of filesNamed(path.join(root, 'app/api/admin'), 'route.ts')) {
    const source = fs.readFileSync(path.join(root, 'app/api/admin', file), 'utf8');
    const methods = [...source.matchAll(/export const (GET|HEAD|POST|PUT|PATCH|DELETE)\b/g)].map((m) => m[1]);
    assert.ok(methods.length, `${file} exports no handler`);
    const route = `/api/admin/${path.posix.dirname(file)}`.replace(/\/\.$/, '');
    const url = route.replace(/\[(\w+)\]/g, (_, segment: string) => {
      const id = segment === 'id' ? (route.startsWith('/api/admin/users/') ? ids.user : ids.mailbox) : ids[segment];
      assert.ok(id, `no id for [${segment}] in ${route}`);
      return id;
    });
    for (const method of methods) sweep.push({ method, url, file });
  }
  return sweep;
}

function adminPages(ids: Record<string, string>): string[] {
  return filesNamed(path.join(root, 'app/admin'), 'page.tsx').map((file) =>
    `/admin/${path.posix.dirname(file)}`.replace(/\/\.$/, '').replace('[id]', ids.mailbox),
  );
}

/** A body every action would accept from an administrator: the refusal must come first. */
const FORM = new URLSearchParams({
  back: '/admin',
  role: 'admin',
  action: 'disable',
  email: HANDLER,
  passphrase: 'a long enough passphrase',
  passphraseConfirm: 'a long enough passphrase',
  name: 'Inbrytning',
  displayName: 'Inbrytning',
  retentionDays: '1',
}).toString();

describe('admin routes and pages refuse non-administrators', () => {
  let smtp: MailCatcher;
  let app: RunningApp;
  let adminCookie: string;
  let handlerCookie: string;
  const ids: Record<string, string> = {};

  const call = (s: Sweep, cookie?: string) =>
    fetch(`${app.url}${s.url}`, {
      method: s.method,
      redirect: 'manual',
      headers: {
        origin: app.url,
        ...(cookie ? { cookie } : {}),
        ...(s.method === 'GET' || s.method === 'HEAD' ? {} : { 'content-type': 'application/x-www-form-urlencoded' }),
      },
      body: s.method === 'GET' || s.method === 'HEAD' ? undefined : FORM,
    });

  const asAdmin = (url: string, body?: unknown) =>
    fetch(`${app.url}${url}`, {
      method: body ? 'POST' : 'GET',
      headers: { origin: app.url, cookie: adminCookie, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });

  /** The audit entries after `afterId` that are not sign-ins or the admin's own exports. */
  async function actionsAfter(afterId: number): Promise<{ id: number; action: string }[]> {
    const res = await asAdmin('/api/admin/audit?format=json');
    assert.equal(res.status, 200);
    const entries = (await res.json()) as { id: number | string; action: string }[];
    return entries
      .map((e) => ({ id: Number(e.id), action: e.action }))
      .filter((e) => e.id > afterId && !e.action.startsWith('auth.') && e.action !== 'audit.exported');
  }

  before(async () => {
    smtp = await startMailCatcher();
    app = await startApp({ env: { INKAST_ADMIN_EMAIL: ADMIN, SMTP_URL: smtp.url, MAIL_FROM: 'Inkast <inkast@region.example>' } });
    adminCookie = await signInWithEmail(app.url, ADMIN, () => smtp.nextLinkTo(ADMIN));
    const invited = await asAdmin('/api/admin/users', { email: HANDLER, displayName: 'Hanna Handläggare', role: 'handler' });
    assert.equal(invited.status, 201, await invited.clone().text());
    ids.user = ((await invited.json()) as { user: { id: string } }).user.id;
    ids.userId = ids.user;
    const created = await asAdmin('/api/admin/mailboxes', { name: 'Remisser', functionalEmail: 'remisser@region.example' });
    assert.equal(created.status, 201, await created.clone().text());
    ids.mailbox = ((await created.json()) as { id: string }).id;
    const added = await asAdmin(`/api/admin/mailboxes/${ids.mailbox}/members`, { email: HANDLER, role: 'handler' });
    assert.equal(added.status, 201, await added.clone().text());
    await smtp.nextMailTo(HANDLER); // the invitation
    handlerCookie = await signInWithEmail(app.url, HANDLER, () => smtp.nextLinkTo(HANDLER));
  });

  after(async () => {
    await app?.stop();
    await smtp?.stop();
  });

  test('the sweep covers every kind of admin operation', () => {
    const urls = adminRoutes(ids).map((s) => `${s.method} ${s.url.replace(ids.mailbox, ':mailbox').replace(ids.user, ':user')}`);
    for (const expected of [
      'POST /api/admin/users',
      'POST /api/admin/users/:user/disable',
      'POST /api/admin/users/:user/role',
      'POST /api/admin/mailboxes',
      'POST /api/admin/mailboxes/:mailbox/members',
      'POST /api/admin/mailboxes/:mailbox/link',
      'POST /api/admin/mailboxes/:mailbox/policy',
      'POST /api/admin/mailboxes/:mailbox/key/rotate',
      'POST /api/admin/mailboxes/:mailbox/key/export',
      'GET /api/admin/audit',
    ]) {
      assert.ok(urls.includes(expected), `${expected} among ${urls.join(', ')}`);
    }
    const pages = adminPages(ids);
    for (const expected of ['/admin', '/admin/users', '/admin/mailboxes', `/admin/mailboxes/${ids.mailbox}`, '/admin/audit', '/admin/outbox']) {
      assert.ok(pages.includes(expected), `${expected} among ${pages.join(', ')}`);
    }
  });

  test('a handler gets 403 from every admin route, and nothing changes', async () => {
    const [{ id: mark }] = (await actionsAfter(0)).slice(-1);
    for (const s of adminRoutes(ids)) {
      const res = await call(s, handlerCookie);
      assert.equal(res.status, 403, `${s.method} ${s.url} (${s.file})`);
      if (s.method !== 'HEAD') assert.equal(((await res.json()) as { error: string }).error, 'admin-only', s.url);
    }
    assert.deepEqual(await actionsAfter(mark), [], 'no admin action was carried out');
    // The handler is still a member, still a handler, still signed in.
    const session = await fetch(`${app.url}/api/auth/session`, { method: 'POST', headers: { origin: app.url, cookie: handlerCookie } });
    assert.equal(session.status, 204);
    const inbox = await (await fetch(`${app.url}/inbox`, { headers: { cookie: handlerCookie } })).text();
    assert.ok(inbox.includes('Remisser'), 'the handler still sees the shared mailbox');
  });

  test('without a session every admin route answers 401', async () => {
    for (const s of adminRoutes(ids)) {
      const res = await call(s);
      assert.equal(res.status, 401, `${s.method} ${s.url}`);
    }
  });

  test('a handler gets the 403 page on every admin page; without a session they go to sign in', async () => {
    for (const p of adminPages(ids)) {
      const res = await fetch(`${app.url}${p}`, { headers: { cookie: handlerCookie }, redirect: 'manual' });
      assert.equal(res.status, 403, p);
      const html = await res.text();
      assert.ok(html.includes('Ingen behörighet'), `${p} says access is denied`);
      assert.ok(!html.includes('Remisser'), `${p} shows nothing of the administration`);
      const anonymous = await fetch(`${app.url}${p}`, { redirect: 'manual' });
      assert.ok([303, 307].includes(anonymous.status), `${p}: ${anonymous.status}`);
      assert.equal(new URL(anonymous.headers.get('location')!, app.url).pathname, '/signin', p);
    }
  });

  test('the administrator gets the pages', async () => {
    for (const p of adminPages(ids).filter((p) => p !== '/admin')) {
      const res = await fetch(`${app.url}${p}`, { headers: { cookie: adminCookie }, redirect: 'manual' });
      assert.equal(res.status, 200, p);
    }
  });
});
