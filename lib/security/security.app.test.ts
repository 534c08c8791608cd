/**
 * The security headers and the cross-site check on the built app (`next build` first):
 *  - every page type (public, filedrop, 404, sign-in, inbox, a delivery, admin) and every kind of
 *    API answer carries its headers, pages a fresh CSP nonce that every script in the HTML has;
 *  - cross-origin POST, DELETE and Server Action requests are refused (403) and change nothing,
 *    with and without the victim's session cookie;
 *  - in Chromium, pages work under the CSP with no violation: the filedrop page encrypts in its
 *    worker (hash-wasm, WebCrypto) and delivers, the language switch (a Server Action) works,
 *    the signed-in inbox renders.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { startApp, type RunningApp } from '@/lib/testing/app';
import { signInLinkFrom, signInWithEmail, startMailCatcher, type MailCatcher } from '@/lib/testing/sign-in';
import { bufferSource, openDelivery, sendDelivery, waitForFinalState } from '@/lib/uploads/client';
import { chromiumMissing, launchChromium } from '../../e2e/chromium';

const ADMIN = 'admin@example.org';
const EVIL = 'https://evil.example';
/** The rate limits are another test's subject: off here. */
const NO_RATE_LIMITS = Object.fromEntries(
  ['DELIVERIES_PER_IP', 'UPLOAD_BYTES_PER_IP', 'CODES_PER_ADDRESS', 'CODES_PER_IP', 'CODE_CHECKS_PER_IP', 'SIGN_IN_PER_ADDRESS', 'SIGN_IN_PER_IP'].map(
    (n) => [`INKAST_RATE_${n}`, 'off'],
  ),
);

/** The next sign-in link mailed to `address`, passing over other mail (delivery notifications). */
export async function nextSignInLink(smtp: MailCatcher, address: string): Promise<string> {
  for (;;) {
    const mail = await smtp.nextMailTo(address, 30_000);
    try {
      return signInLinkFrom(mail);
    } catch {
      // not a sign-in mail
    }
  }
}

function cspNonce(res: Response): string {
  const csp = res.headers.get('content-security-policy') ?? '';
  const m = /script-src 'nonce-([A-Za-z0-9+/=]+)'/.exec(csp);
  assert.ok(m, `no script nonce in CSP: ${csp}`);
  return m[1];
}

function assertCommonHeaders(res: Response, what: string) {
  const h = res.headers;
  assert.equal(h.get('referrer-policy'), 'no-referrer', what);
  assert.equal(h.get('x-content-type-options'), 'nosniff', what);
  assert.equal(h.get('x-frame-options'), 'DENY', what);
  assert.match(h.get('permissions-policy') ?? '', /camera=\(\)/, what);
  assert.match(h.get('content-security-policy') ?? '', /frame-ancestors 'none'/, what);
  assert.equal(h.get('x-powered-by'), null, what);
}

/** A page: its policy, and every script and style element in its HTML carries the nonce. */
async function assertPage(res: Response, what: string): Promise<string> {
  assertCommonHeaders(res, what);
  const nonce = cspNonce(res);
  const csp = res.headers.get('content-security-policy')!;
  assert.ok(!/'unsafe-inline'|'unsafe-eval'/.test(csp), `${what}: ${csp}`);
  const html = await res.text();
  const scripts = html.match(/<script\b[^>]*>/g) ?? [];
  assert.ok(scripts.length > 0, `${what}: no scripts at all?`);
  for (const tag of [...scripts, ...(html.match(/<style\b[^>]*>/g) ?? [])]) {
    assert.ok(tag.includes(`nonce="${nonce}"`), `${what}: ${tag} lacks the nonce`);
  }
  assert.ok(!/<[a-z][^>]*\son[a-z]+=/i.test(html), `${what}: an inline event handler`);
  assert.ok(!/<[a-z][^>]*\sstyle="/i.test(html), `${what}: an inline style attribute (blocked by style-src)`);
  return html;
}

describe('security headers and cross-site requests on the built app', () => {
  let smtp: MailCatcher;
  let app: RunningApp;
  let cookie: string;
  let deliveryId: string;
  const url = (p: string) => `${app.url}${p}`;

  before(async () => {
    smtp = await startMailCatcher();
    app = await startApp({ env: { INKAST_ADMIN_EMAIL: ADMIN, SMTP_URL: smtp.url, ...NO_RATE_LIMITS } });
    cookie = await signInWithEmail(app.url, ADMIN, () => nextSignInLink(smtp, ADMIN));
    const { delivery } = await sendDelivery(app.url, {
      slug: app.slug,
      senderEmail: 'sender@example.org',
      subject: 's',
      message: 'm',
      files: [bufferSource('a.txt', Buffer.from('hello'))],
    });
    assert.equal((await waitForFinalState(app.url, delivery)).state, 'delivered');
    deliveryId = delivery.deliveryId;
  });

  after(async () => {
    await app?.stop();
    await smtp?.stop();
  });

  test('every page type: CSP with a fresh nonce on every script, and the common headers', async () => {
    // One mailbox's admin page: the first link on the list of mailboxes.
    const list = await (await fetch(url('/admin/mailboxes'), { headers: { cookie } })).text();
    const mailboxPage = /href="(\/admin\/mailboxes\/[0-9a-f-]{36})"/.exec(list)?.[1];
    assert.ok(mailboxPage, 'the mailbox list links to a mailbox');
    const pages: [string, string, number, boolean][] = [
      ['landing', '/', 200, false],
      ['filedrop', `/d/${app.slug}`, 200, false],
      ['filedrop in English', `/d/${app.slug}?lang=en`, 200, false],
      ['unknown filedrop link (404)', '/d/doesNotExist1234567', 404, false],
      ['unknown page (404)', '/no/such/page', 404, false],
      ['sign-in', '/signin', 200, false],
      ['sign-in with a problem', '/signin?problem=link-expired', 200, false],
      ['landing, signed in', '/', 200, true],
      ['inbox', '/inbox', 200, true],
      ['a delivery', `/inbox/deliveries/${deliveryId}`, 200, true],
      ['admin outbox', '/admin/outbox', 200, true],
      ['admin users', '/admin/users', 200, true],
      ['admin mailboxes', '/admin/mailboxes', 200, true],
      ['admin mailbox', mailboxPage, 200, true],
      ['admin audit log', '/admin/audit', 200, true],
    ];
    const nonces = new Set<string>();
    for (const [what, p, status, signedIn] of pages) {
      const res = await fetch(url(p), { headers: signedIn ? { cookie } : {}, redirect: 'manual' });
      assert.equal(res.status, status, `${what} ${p}`);
      assert.equal(res.headers.get('strict-transport-security'), null, 'no HSTS over plain http');
      await assertPage(res, what);
      nonces.add(cspNonce(res));
    }
    // A second request of one page gets another nonce.
    nonces.add(cspNonce(await fetch(url('/'))));
    assert.equal(nonces.size, pages.length + 1, 'a nonce is never reused');
  });

  test('without a session every handler page sends to sign-in and every handler API refuses', async () => {
    const forged = { cookie: 'inkast_session=Fe26.2**forged**value' };
    for (const headers of [{}, forged]) {
      for (const p of ['/inbox', `/inbox?mailbox=${crypto.randomUUID()}`, `/inbox/deliveries/${deliveryId}`, '/admin/outbox']) {
        const res = await fetch(url(p), { headers, redirect: 'manual' });
        assert.ok([303, 307].includes(res.status), `${p}: ${res.status}`);
        assert.equal(new URL(res.headers.get('location')!, app.url).pathname, '/signin', p);
      }
      for (const [method, p] of [['GET', `/api/files/${crypto.randomUUID()}`], ['HEAD', `/api/files/${crypto.randomUUID()}`], ['POST', '/api/auth/session']]) {
        const res = await fetch(url(p), { method, headers: { ...headers, origin: app.url }, redirect: 'manual' });
        assert.equal(res.status, 401, `${method} ${p}`);
      }
    }
  });

  test('redirects and route handlers outside /api carry the headers too', async () => {
    const signedOut = await fetch(url('/inbox'), { redirect: 'manual' });
    assert.ok([303, 307].includes(signedOut.status));
    assertCommonHeaders(signedOut, 'signed-out inbox redirect');
    const verify = await fetch(url('/auth/verify?token=nonsense'), { redirect: 'manual' });
    assert.equal(verify.status, 303);
    assertCommonHeaders(verify, '/auth/verify');
  });

  test('API answers: nothing may load or frame, never cached, and files keep their sandbox', async () => {
    const answers: [string, Promise<Response>][] = [
      ['health', fetch(url('/api/health'))],
      ['JSON error', fetch(url('/api/deliveries'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' })],
      ['401', fetch(url('/api/files/00000000-0000-4000-8000-000000000000'))],
      ['404 with session', fetch(url('/api/files/00000000-0000-4000-8000-000000000000'), { headers: { cookie } })],
      ['sign-out redirect', fetch(url('/api/auth/sign-out'), { method: 'POST', redirect: 'manual' })],
    ];
    for (const [what, p] of answers) {
      const res = await p;
      assertCommonHeaders(res, what);
      assert.match(res.headers.get('content-security-policy') ?? '', /^default-src 'none'/, what);
      assert.match(res.headers.get('cache-control') ?? '', /no-store/, what);
    }
  });

  test('cross-origin POSTs are refused (403) and change nothing', async () => {
    const json = { 'content-type': 'application/json' };
    const openBody = JSON.stringify({ slug: app.slug, senderEmail: 'csrf@example.org' });
    const refused: [string, string, RequestInit][] = [
      ['open a delivery from another site', '/api/deliveries', { method: 'POST', headers: { ...json, origin: EVIL }, body: openBody }],
      ['… with Origin null', '/api/deliveries', { method: 'POST', headers: { ...json, origin: 'null' }, body: openBody }],
      ['… by fetch metadata alone', '/api/deliveries', { method: 'POST', headers: { ...json, 'sec-fetch-site': 'cross-site' }, body: openBody }],
      ['… by Referer alone', '/api/deliveries', { method: 'POST', headers: { ...json, referer: `${EVIL}/x` }, body: openBody }],
      ['… from a sibling site', '/api/deliveries', { method: 'POST', headers: { ...json, origin: 'http://127.0.0.2', 'sec-fetch-site': 'same-site' }, body: openBody }],
      [
        'a sign-in form post from another site',
        '/api/auth/sign-in',
        { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: EVIL }, body: `email=${encodeURIComponent(ADMIN)}` },
      ],
      ['sign the victim out', '/api/auth/sign-out', { method: 'POST', headers: { origin: EVIL, cookie } }],
      ['a Server Action from another site', '/', { method: 'POST', headers: { origin: EVIL, 'next-action': 'x', cookie }, body: 'lang=en' }],
      ['a form post to a page', `/d/${app.slug}`, { method: 'POST', headers: { origin: EVIL, 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=b' }],
    ];
    const mailsBefore = smtp.received.length;
    for (const [what, p, init] of refused) {
      const res = await fetch(url(p), { ...init, redirect: 'manual' });
      assert.equal(res.status, 403, `${what}: ${res.status}`);
      assert.deepEqual(await res.json(), { error: 'cross-origin', message: 'This request must come from an Inkast page' });
      assertCommonHeaders(res, what);
    }
    // The session still works: sign-out did not happen.
    assert.equal((await fetch(url('/api/auth/session'), { method: 'POST', headers: { cookie } })).status, 204);
    // No sign-in mail went out.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(smtp.received.length, mailsBefore);

    // A cross-origin DELETE of someone's delivery, even with the right token, changes nothing.
    const victim = await openDelivery(app.url, { slug: app.slug, senderEmail: 'victim@example.org' });
    const del = await fetch(url(`/api/deliveries/${victim.deliveryId}`), {
      method: 'DELETE',
      headers: { origin: EVIL, 'Inkast-Sender-Token': victim.senderToken },
    });
    assert.equal(del.status, 403);
    const status = await fetch(url(`/api/deliveries/${victim.deliveryId}`), { headers: { 'Inkast-Sender-Token': victim.senderToken } });
    assert.equal(((await status.json()) as { state: string }).state, 'uploading');
  });

  test('same-origin requests and clients without a browser go through', async () => {
    const body = JSON.stringify({ slug: app.slug, senderEmail: 'ok@example.org' });
    for (const headers of [
      { origin: app.url, 'sec-fetch-site': 'same-origin' },
      // A form post from one of our pages (Referrer-Policy no-referrer makes its Origin null).
      { origin: 'null', 'sec-fetch-site': 'same-origin' },
      { referer: `${app.url}/d/${app.slug}` },
      {},
    ] as Record<string, string>[]) {
      const res = await fetch(url('/api/deliveries'), { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
      assert.equal(res.status, 201, JSON.stringify(headers));
    }
  });

  test('tus: a cross-origin creation is refused', async () => {
    const d = await openDelivery(app.url, { slug: app.slug, senderEmail: 'tus@example.org' });
    const res = await fetch(url('/api/tus'), {
      method: 'POST',
      headers: {
        origin: EVIL,
        'Tus-Resumable': '1.0.0',
        'Upload-Length': '100',
        'Upload-Metadata': `deliveryId ${Buffer.from(d.deliveryId).toString('base64')}`,
        'Inkast-Sender-Token': d.senderToken,
      },
    });
    assert.equal(res.status, 403);
  });

  test('HSTS and upgrade-insecure-requests when the public URL is https', async () => {
    const https = await startApp({ env: { INKAST_PUBLIC_URL: 'https://inkast.example.se', ...NO_RATE_LIMITS } });
    try {
      for (const p of ['/', '/api/health']) {
        const res = await fetch(`${https.url}${p}`);
        assert.match(res.headers.get('strict-transport-security') ?? '', /^max-age=63072000; includeSubDomains$/, p);
      }
      assert.match((await fetch(`${https.url}/`)).headers.get('content-security-policy') ?? '', /upgrade-insecure-requests/);
      // The origin that may change state is the public one, not the address the request came to.
      const post = (origin: string) =>
        fetch(`${https.url}/api/deliveries`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', origin },
          body: JSON.stringify({ slug: https.slug, senderEmail: 'a@example.org' }),
        });
      assert.equal((await post(https.url)).status, 403);
      assert.equal((await post('https://inkast.example.se')).status, 201);
    } finally {
      await https.stop();
    }
  });
});

const noChromium = chromiumMissing();

describe('pages under the CSP in Chromium', { skip: noChromium }, () => {
  let smtp: MailCatcher;
  let app: RunningApp;
  let browser: Browser;
  let dir: string;
  const violations: string[] = [];

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inkast-csp-'));
    smtp = await startMailCatcher();
    app = await startApp({ env: { INKAST_ADMIN_EMAIL: ADMIN, SMTP_URL: smtp.url, ...NO_RATE_LIMITS } });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await app?.stop();
    await smtp?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A page that records every CSP violation: console reports and securitypolicyviolation events. */
  async function watchedPage(context: Awaited<ReturnType<Browser['newContext']>>): Promise<Page> {
    await context.addInitScript(() => {
      (window as unknown as { __csp: string[] }).__csp = [];
      document.addEventListener('securitypolicyviolation', (e) => {
        (window as unknown as { __csp: string[] }).__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
      });
    });
    const page = await context.newPage();
    page.on('console', (msg) => {
      if (/Content Security Policy|Refused to/i.test(msg.text())) violations.push(`${page.url()}: ${msg.text()}`);
    });
    page.on('pageerror', (err) => violations.push(`${page.url()}: page error ${err.message}`));
    return page;
  }

  async function collect(page: Page) {
    const seen = await page.evaluate(() => (window as unknown as { __csp?: string[] }).__csp ?? []);
    for (const v of seen) violations.push(`${page.url()}: ${v}`);
  }

  test('the filedrop page sends a file (worker, WebAssembly, tus) with no CSP violation', { timeout: 180_000 }, async (t) => {
    const file = path.join(dir, 'remiss.bin');
    fs.writeFileSync(file, crypto.randomBytes(5 * 1024 * 1024 + 7));
    const context = await browser.newContext();
    const page = await watchedPage(context);
    const workers: string[] = [];
    page.on('worker', (w) => workers.push(w.url()));
    await page.goto(`${app.url}/d/${app.slug}?lang=en`);
    await page.waitForURL((u) => !u.searchParams.has('lang'));
    await page.getByLabel('Your email address').fill('sender@example.org');
    await page.getByLabel('Subject').fill('CSP check');
    await page.locator('#files').setInputFiles(file);
    await page.getByRole('button', { name: 'Encrypt and send' }).click();
    const state = page.locator('[data-testid=delivery-state][data-state=delivered], [data-testid=delivery-state][data-state=rejected]');
    await state.waitFor({ timeout: 120_000 });
    assert.equal(await state.getAttribute('data-state'), 'delivered');
    assert.ok(workers.length > 0, 'the encryption ran in a worker');
    t.diagnostic(`worker scripts: ${workers.join(', ')}`);
    await collect(page);
    await context.close();
    assert.deepEqual(violations, []);
  });

  test('the language switch (a Server Action), the sign-in form, inbox, a delivery and the outbox: no violation', { timeout: 120_000 }, async () => {
    const { delivery } = await sendDelivery(app.url, {
      slug: app.slug,
      senderEmail: 'sender@example.org',
      subject: 'Inbox CSP',
      message: 'hello',
      files: [bufferSource('x.txt', Buffer.from('x'))],
    });
    await waitForFinalState(app.url, delivery);
    const context = await browser.newContext();
    const page = await watchedPage(context);

    await page.goto(`${app.url}/`);
    const html = await page.content();
    assert.match(html, /lang="sv"/);
    await page.getByRole('button', { name: /English/i }).click();
    await page.waitForFunction(() => document.documentElement.lang === 'en', null, { timeout: 15_000 });
    await collect(page);

    // The sign-in form is a plain form post: under Referrer-Policy no-referrer the browser sends
    // `Origin: null` with `Sec-Fetch-Site: same-origin`, which the cross-site check must let through.
    await page.goto(`${app.url}/inbox`);
    await page.waitForURL((u) => u.pathname === '/signin');
    await page.getByLabel('Email address').fill(ADMIN);
    await page.getByRole('button', { name: 'Send sign-in link' }).click();
    await page.getByRole('heading', { name: 'Check your email' }).waitFor();
    await collect(page);
    await page.goto(await nextSignInLink(smtp, ADMIN));
    await page.waitForURL((u) => u.pathname === '/inbox');
    await page.goto(`${app.url}/admin/mailboxes`);
    const mailboxPage = await page.locator('a[href^="/admin/mailboxes/"]').first().getAttribute('href');
    const adminPages = ['/admin/users', '/admin/mailboxes', mailboxPage!, '/admin/audit', '/admin/outbox'];
    for (const p of ['/inbox', `/inbox/deliveries/${delivery.deliveryId}`, ...adminPages]) {
      const res = await page.goto(`${app.url}${p}`);
      assert.equal(res?.status(), 200, p);
      await page.waitForLoadState('networkidle');
      await collect(page);
    }
    await context.close();
    assert.deepEqual(violations, []);
  });

  test('the sign-out form works from a no-referrer page', async () => {
    const context = await browser.newContext();
    const page = await watchedPage(context);
    const cookie = await signInWithEmail(app.url, ADMIN, () => nextSignInLink(smtp, ADMIN));
    const [name, value] = cookie.split(/=(.*)/s);
    await context.addCookies([{ name, value, url: app.url }]);
    await page.goto(`${app.url}/inbox?lang=en`);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL((u) => u.pathname === '/signin', { timeout: 10_000 });
    assert.equal((await fetch(`${app.url}/api/auth/session`, { method: 'POST', headers: { cookie } })).status, 401);
    await context.close();
  });
});

