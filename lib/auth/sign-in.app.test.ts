/**
 * Signing in through the built app (`next build` first): sign-in mail over a real SMTP server on
 * loopback, the link followed as a browser would, the session cookie, sign-out, and OpenID Connect
 * against a real OpenID Provider (oidc-provider) on loopback. The app runs on PostgreSQL so the
 * test can change its database while it runs (disable a user, expire a link).
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { sealData } from 'iron-session';
import Provider from 'oidc-provider';
import { verifyAuditLog } from '@/lib/audit';
import { openDb, type Db } from '@/lib/db';
import { freePort, startApp, type RunningApp } from '@/lib/testing/app';
import { sessionCookieFrom, signInWithEmail, startMailCatcher, type MailCatcher } from '@/lib/testing/sign-in';
import { createPostgresDatabase, postgresAdminUrl } from '@/lib/testing/targets';

const ADMIN = 'admin@example.org';
const HANDLER = 'handler@example.org';
const CLIENT_ID = 'inkast';
const CLIENT_SECRET = crypto.randomBytes(24).toString('hex');

/** Who the test provider knows (account id → claims). Only admin and handler are Inkast users. */
const ACCOUNTS: Record<string, Record<string, unknown>> = {
  admin: { email: 'Admin@Example.org', email_verified: true },
  handler: { email: HANDLER, email_verified: true },
  unverified: { email: HANDLER, email_verified: false },
  stranger: { email: 'stranger@example.org', email_verified: true },
};

/** A certified OpenID Provider on loopback with one client (the app) and the dev login screens. */
async function startProvider(redirectUri: string): Promise<{ issuer: string; stop(): Promise<void> }> {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        redirect_uris: [redirectUri],
        response_types: ['code'],
        grant_types: ['authorization_code'],
      },
    ],
    claims: { openid: ['sub'], email: ['email', 'email_verified'] },
    cookies: { keys: [crypto.randomBytes(16).toString('hex')] },
    findAccount: (_ctx, id) => (ACCOUNTS[id] ? { accountId: id, claims: () => ({ sub: id, ...ACCOUNTS[id] }) } : undefined),
    features: { devInteractions: { enabled: true } },
  });
  const server = http.createServer(provider.callback());
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    issuer,
    stop: () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  };
}

/** Just enough of a browser for redirects across two origins: cookies per origin and path. */
class Browser {
  private readonly jar = new Map<string, { name: string; value: string; path: string }[]>();

  async request(url: URL, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    const cookie = (this.jar.get(url.origin) ?? [])
      .filter((c) => url.pathname.startsWith(c.path))
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
    if (cookie) headers.set('cookie', cookie);
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const header of res.headers.getSetCookie()) {
      const [pair, ...attrs] = header.split(';').map((s) => s.trim());
      const name = pair.slice(0, pair.indexOf('='));
      const value = pair.slice(pair.indexOf('=') + 1);
      const path = attrs.find((a) => /^path=/i.test(a))?.slice(5) || '/';
      const expired =
        !value ||
        attrs.some((a) => /^max-age=0$/i.test(a)) ||
        attrs.some((a) => /^expires=/i.test(a) && new Date(a.slice(8)).getTime() < Date.now());
      const kept = (this.jar.get(url.origin) ?? []).filter((c) => !(c.name === name && c.path === path));
      if (!expired) kept.push({ name, value, path });
      this.jar.set(url.origin, kept);
    }
    return res;
  }

  /** The Cookie header value for the app's session, if the browser holds one. */
  session(origin: string): string | undefined {
    const c = this.jar.get(origin)?.find((x) => x.name === 'inkast_session');
    return c && `inkast_session=${c.value}`;
  }
}

const pgAdmin = await postgresAdminUrl();

describe('signing in through the built app', { skip: pgAdmin ? false : 'needs PostgreSQL (the test changes the running app’s database)' }, () => {
  let app: RunningApp;
  let smtp: MailCatcher;
  let idp: { issuer: string; stop(): Promise<void> };
  let q: Db;
  const secret = crypto.randomBytes(32).toString('hex');

  const url = (path: string) => new URL(path, app.url);
  const ask = (email: string, next?: string) =>
    fetch(url('/api/auth/sign-in'), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, next }),
    });
  const follow = (link: string, init: RequestInit = {}) => fetch(link, { redirect: 'manual', ...init });
  /** 204 while the cookie is a live session, 401 otherwise. */
  const sessionStatus = async (cookie: string) =>
    (await fetch(url('/api/auth/session'), { method: 'POST', headers: { cookie } })).status;
  const location = (res: Response) => url(res.headers.get('location') ?? '');
  const userRow = async (email: string) =>
    (await q.query<{ id: string; session_epoch: number }>(`SELECT id, session_epoch FROM users WHERE email = $1`, [email])).rows[0];
  const page = async (path: string, cookie = '') => {
    const res = await fetch(url(path), { headers: { cookie }, redirect: 'manual' });
    return { status: res.status, html: await res.text(), res };
  };

  before(async () => {
    smtp = await startMailCatcher();
    const port = await freePort();
    idp = await startProvider(`http://127.0.0.1:${port}/auth/oidc/callback`);
    const databaseUrl = await createPostgresDatabase(pgAdmin!);
    app = await startApp({
      port,
      env: {
        DATABASE_URL: databaseUrl,
        SMTP_URL: smtp.url,
        MAIL_FROM: 'Inkast <inkast@inkast.test>',
        INKAST_ADMIN_EMAIL: ADMIN,
        INKAST_SESSION_SECRET: secret,
        OIDC_ISSUER: idp.issuer,
        OIDC_CLIENT_ID: CLIENT_ID,
        OIDC_CLIENT_SECRET: CLIENT_SECRET,
      },
    });
    q = await openDb({ databaseUrl });
    await q.query(`INSERT INTO users (email, display_name, role, locale) VALUES ($1, 'Handläggare', 'handler', 'en')`, [HANDLER]);
  });

  after(async () => {
    await app?.stop();
    await q?.close();
    await smtp?.stop();
    await idp?.stop();
  });

  test('the link arrives by SMTP, signs in once, and the cookie is the session', async () => {
    const res = await ask(ADMIN);
    assert.equal(res.status, 202);
    const mail = await smtp.nextMailTo(ADMIN);
    assert.equal(mail.subject, 'Logga in i Inkast', 'in the user’s language (Swedish)');
    const link = /https?:\/\/\S+\/auth\/verify\?[^\s<>"]+/.exec(mail.text ?? '')![0];
    assert.equal(new URL(link).origin, app.url);

    // A link checker's HEAD does not spend it.
    assert.equal((await follow(link, { method: 'HEAD' })).status, 200);

    const first = await follow(link);
    assert.equal(first.status, 303);
    assert.equal(location(first).href, url('/inbox').href);
    const setCookie = first.headers.getSetCookie().find((c) => c.startsWith('inkast_session='))!;
    assert.match(setCookie, /; HttpOnly/i);
    assert.match(setCookie, /; SameSite=Lax/i);
    assert.match(setCookie, /; Path=\/(;|$)/);
    assert.doesNotMatch(setCookie, /; Secure/i, 'plain http here; Secure follows an https INKAST_PUBLIC_URL');
    assert.doesNotMatch(setCookie, /Max-Age|Expires/i, 'a browser-session cookie');
    const cookie = sessionCookieFrom(first)!;
    assert.equal(await sessionStatus(cookie), 204);
    assert.equal(await sessionStatus('inkast_session=forged'), 401);
    assert.equal((await fetch(url('/api/auth/session'), { method: 'POST' })).status, 401);

    const second = await follow(link);
    assert.equal(second.status, 303);
    assert.equal(location(second).pathname + location(second).search, '/signin?problem=link-used');
    assert.equal(sessionCookieFrom(second), undefined);
    const shown = await page('/signin?problem=link-used');
    assert.match(shown.html, /Länken har redan använts/);
    assert.match(shown.html, /action="\/api\/auth\/sign-in"/, 'with a way to ask for a new link');
    const english = await page('/signin?problem=link-used', 'lang=en');
    assert.match(english.html, /This link has already been used/);
    assert.match(english.html, /<html lang="en"/);

    // Signed in already, the sign-in page sends the handler straight on.
    const again = await page('/signin?next=%2Finbox%2Fx', cookie);
    assert.equal(again.status, 307);
    assert.equal(location(again.res).pathname, '/inbox/x');
  });

  test('an expired link is refused with a clear page', async () => {
    await ask(ADMIN);
    const link = await smtp.nextLinkTo(ADMIN);
    await q.query(`UPDATE sign_in_links SET expires_at = now() - interval '1 second' WHERE used_at IS NULL`);
    const res = await follow(link);
    assert.equal(location(res).pathname + location(res).search, '/signin?problem=link-expired');
    assert.equal(sessionCookieFrom(res), undefined);
    assert.match((await page('/signin?problem=link-expired')).html, /Länken gäller inte längre/);
  });

  test('an unknown address gets the same answer and no email', async () => {
    const timed = async (email: string) => {
      const started = performance.now();
      const res = await ask(email);
      return { status: res.status, body: await res.text(), ms: performance.now() - started };
    };
    const unknown = await timed('nobody@example.org');
    const known = await timed(HANDLER);
    assert.deepEqual([unknown.status, unknown.body], [known.status, known.body]);
    assert.ok(unknown.ms >= 300 && known.ms >= 300, `${unknown.ms} and ${known.ms} ms`);
    assert.ok(Math.abs(unknown.ms - known.ms) < 150, `${unknown.ms} vs ${known.ms} ms`);
    const mail = await smtp.nextMailTo(HANDLER);
    assert.equal(mail.subject, 'Sign in to Inkast', 'in the user’s language (English)');
    assert.deepEqual(smtp.mailsTo('nobody@example.org'), []);
    const rows = await q.query(`SELECT 1 FROM outbox WHERE to_address = 'nobody@example.org'`);
    assert.equal(rows.rows.length, 0);
    // The handler's link is spent by signing in, so later tests start without open links.
    assert.ok(sessionCookieFrom(await follow(mail.text!.match(/https?:\/\/\S+\/auth\/verify\?[^\s<>"]+/)![0])));
  });

  test('the page’s form works without script and confirms without naming the address', async () => {
    const res = await fetch(url('/api/auth/sign-in'), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ email: 'nobody@example.org', next: '/inbox' }),
      redirect: 'manual',
    });
    assert.equal(res.status, 303);
    assert.equal(res.headers.get('location'), '/signin?sent=1');
    const sent = await page('/signin?sent=1');
    assert.match(sent.html, /<h1>Kontrollera din e-post<\/h1>/);
    const bad = await fetch(url('/api/auth/sign-in'), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ email: 'not an address' }),
      redirect: 'manual',
    });
    assert.equal(bad.headers.get('location'), '/signin?error=email-invalid&next=%2Finbox');
    const shown = await page('/signin?error=email-invalid');
    assert.match(shown.html, /aria-invalid="true"/);
    assert.match(shown.html, /Skriv e-postadressen på formen namn@exempel\.se\./);
    assert.equal((await ask('not an address')).status, 400);
  });

  test('next: only a path on this site, asked for or appended to the link', async () => {
    for (const evil of ['//evil.example', 'https://evil.example', '/\\evil.example']) {
      await ask(ADMIN, evil);
      const link = await smtp.nextLinkTo(ADMIN);
      assert.equal(new URL(link).searchParams.get('next'), null, `${evil} is not carried in the link`);
      const res = await follow(link);
      assert.equal(location(res).href, url('/inbox').href, evil);
    }
    await ask(ADMIN, '/inbox/deliveries/7?tab=files');
    const link = await smtp.nextLinkTo(ADMIN);
    assert.equal(location(await follow(link)).href, url('/inbox/deliveries/7?tab=files').href);
    // Someone editing the link in the mail gets no further.
    for (const evil of ['//evil.example', 'https://evil.example']) {
      await ask(ADMIN);
      const tampered = new URL(await smtp.nextLinkTo(ADMIN));
      tampered.searchParams.set('next', evil);
      const res = await follow(tampered.href);
      assert.ok(sessionCookieFrom(res));
      assert.equal(location(res).href, url('/inbox').href, evil);
    }
  });

  test('sign-out ends the session, copies of the cookie included', async () => {
    const cookie = await signInWithEmail(app.url, ADMIN, () => smtp.nextLinkTo(ADMIN));
    assert.equal(await sessionStatus(cookie), 204);
    const foreign = await fetch(url('/api/auth/sign-out'), {
      method: 'POST',
      headers: { cookie, origin: 'https://evil.example' },
      redirect: 'manual',
    });
    assert.equal(foreign.status, 403);
    assert.equal(await sessionStatus(cookie), 204, 'a cross-site sign-out is refused');
    const res = await fetch(url('/api/auth/sign-out'), { method: 'POST', headers: { cookie, origin: app.url }, redirect: 'manual' });
    assert.equal(res.status, 303);
    assert.equal(res.headers.get('location'), '/signin?signed-out=1');
    assert.ok(res.headers.getSetCookie().some((c) => /^inkast_session=;/.test(c) && /Max-Age=0|Expires=Thu, 01 Jan 1970/i.test(c)));
    assert.equal(await sessionStatus(cookie), 401);
    assert.match((await page('/signin?signed-out=1')).html, /Du är utloggad\./);
  });

  test('disabling the user ends a live session at once', async () => {
    const cookie = await signInWithEmail(app.url, HANDLER, () => smtp.nextLinkTo(HANDLER));
    assert.equal(await sessionStatus(cookie), 204);
    await q.query(`UPDATE users SET disabled_at = now() WHERE email = $1`, [HANDLER]);
    try {
      assert.equal(await sessionStatus(cookie), 401);
      // And a disabled user gets no link either.
      assert.equal((await ask(HANDLER)).status, 202);
      const links = await q.query(`SELECT 1 FROM sign_in_links l JOIN users u ON u.id = l.user_id WHERE u.email = $1 AND l.used_at IS NULL`, [HANDLER]);
      assert.equal(links.rows.length, 0);
    } finally {
      await q.query(`UPDATE users SET disabled_at = NULL, session_epoch = session_epoch + 1 WHERE email = $1`, [HANDLER]);
    }
  });

  test('idle for 60 minutes or signed in 12 hours ago: the session is over', async () => {
    const { id, session_epoch } = await userRow(ADMIN);
    const now = Date.now();
    const forge = async (issuedAt: number, seenAt: number) =>
      `inkast_session=${await sealData({ userId: id, epoch: session_epoch, issuedAt, seenAt }, { password: secret, ttl: 12 * 3600 })}`;
    assert.equal(await sessionStatus(await forge(now - 2 * 3600_000, now - 61 * 60_000)), 401, 'idle 61 minutes');
    const active = await forge(now - 2 * 3600_000, now - 59 * 60_000);
    const refreshed = await fetch(url('/api/auth/session'), { method: 'POST', headers: { cookie: active } });
    assert.equal(refreshed.status, 204, 'idle 59 minutes');
    assert.ok(sessionCookieFrom(refreshed), 'seenAt was refreshed');
    assert.equal(await sessionStatus(await forge(now - 12 * 3600_000 - 60_000, now - 60_000)), 401, 'signed in 12 h ago');
  });

  test('OpenID Connect: a known user signs in through the provider; others are turned away', async () => {
    assert.match((await page('/signin')).html, /href="\/auth\/oidc\/start\?next=%2Finbox"/, 'the sign-in page offers it');

    /** Runs the whole flow as `account` and returns the app's answer to the callback. */
    const through = async (account: string, browser = new Browser(), next = '/inbox/from-oidc') => {
      let at = url(`/auth/oidc/start?next=${encodeURIComponent(next)}`);
      let res = await browser.request(at);
      for (let hop = 0; hop < 20; hop++) {
        if (at.origin === app.url && at.pathname === '/auth/oidc/callback') return { res, browser };
        if (res.status >= 300 && res.status < 400) {
          at = new URL(res.headers.get('location')!, at);
          res = await browser.request(at);
          continue;
        }
        const html = await res.text();
        assert.equal(res.status, 200, `${at} answered ${res.status}: ${html.slice(0, 500)}`);
        const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1];
        const prompt = /name="prompt" value="(\w+)"/.exec(html)?.[1];
        assert.ok(action && prompt, `a login or consent form at ${at}`);
        at = new URL(action, at);
        res = await browser.request(at, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams(prompt === 'login' ? { prompt, login: account, password: 'any' } : { prompt }),
        });
      }
      throw new Error('the flow did not come back to the app');
    };

    const ok = await through('admin');
    assert.equal(ok.res.status, 303);
    assert.equal(location(ok.res).href, url('/inbox/from-oidc').href);
    const cookie = ok.browser.session(app.url);
    assert.ok(cookie, 'a session cookie');
    assert.equal(await sessionStatus(cookie), 204);

    const stranger = await through('stranger');
    assert.equal(location(stranger.res).pathname + location(stranger.res).search, '/signin?problem=no-access&next=%2Finbox%2Ffrom-oidc');
    assert.equal(stranger.browser.session(app.url), undefined);
    assert.match((await page('/signin?problem=no-access')).html, /Du har inte tillgång till Inkast/);

    const unverified = await through('unverified');
    assert.equal(new URL(location(unverified.res)).searchParams.get('problem'), 'oidc-unverified');
    assert.equal(unverified.browser.session(app.url), undefined);

    await q.query(`UPDATE users SET disabled_at = now() WHERE email = $1`, [HANDLER]);
    try {
      const disabled = await through('handler');
      assert.equal(new URL(location(disabled.res)).searchParams.get('problem'), 'no-access');
      assert.equal(disabled.browser.session(app.url), undefined);
    } finally {
      await q.query(`UPDATE users SET disabled_at = NULL WHERE email = $1`, [HANDLER]);
    }
    assert.ok((await through('handler')).browser.session(app.url), 'enabled again, the handler gets in');

    // A callback without the flow cookie of the browser that started (login CSRF, another tab): refused.
    const started = new Browser();
    const res = await started.request(url('/auth/oidc/start'));
    const authorize = new URL(res.headers.get('location')!);
    assert.equal(authorize.origin, idp.issuer);
    assert.equal(authorize.searchParams.get('code_challenge_method'), 'S256');
    assert.ok(authorize.searchParams.get('state') && authorize.searchParams.get('nonce'));
    const forged = await fetch(url(`/auth/oidc/callback?code=x&state=${authorize.searchParams.get('state')}&iss=${encodeURIComponent(idp.issuer)}`), {
      redirect: 'manual',
    });
    assert.equal(location(forged).search, '?problem=oidc-failed');
    assert.equal(sessionCookieFrom(forged), undefined);
  });

  test('every sign-in is in the audit log, which verifies, without tokens', async () => {
    const actions = (await q.query<{ action: string; reason: string | null }>(`SELECT action, detail->>'reason' AS reason FROM audit_log`)).rows;
    const seen = new Set(actions.map((a) => (a.reason ? `${a.action}:${a.reason}` : a.action)));
    for (const expected of [
      'auth.sign-in-link-sent',
      'auth.signed-in',
      'auth.signed-out',
      'auth.sign-in-refused:link-used',
      'auth.sign-in-refused:link-expired',
      'auth.sign-in-refused:unknown-address',
      'auth.sign-in-refused:disabled',
      'auth.sign-in-refused:unknown-user',
      'auth.sign-in-refused:email-unverified',
      'auth.sign-in-refused:oidc-error',
    ]) {
      assert.ok(seen.has(expected), `${expected} recorded`);
    }
    const methods = (await q.query<{ method: string }>(`SELECT DISTINCT detail->>'method' AS method FROM audit_log WHERE action = 'auth.signed-in'`)).rows;
    assert.deepEqual(methods.map((m) => m.method).sort(), ['email-link', 'oidc']);
    assert.equal((await verifyAuditLog(q)).ok, true);
    const log = JSON.stringify((await q.query(`SELECT * FROM audit_log`)).rows);
    for (const mail of smtp.received) {
      const token = /token=([A-Za-z0-9_-]+)/.exec(mail.text ?? '')?.[1];
      if (token) assert.ok(!log.includes(token));
    }
    assert.ok(!log.includes(CLIENT_SECRET));
  });
});
