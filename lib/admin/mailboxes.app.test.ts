/**
 * Mailbox administration through the built app (`next build` first), signed in by emailed link:
 * a rotated or switched-off filedrop link answers exactly like one that never existed, the key
 * export is a file that opens offline with its passphrase, the admin forms come back with their
 * notice, a handler rotates their own link and no other, and a handler gets 403 everywhere here
 * with nothing changed.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import bs58 from 'bs58';
import { startApp, type RunningApp } from '@/lib/testing/app';
import { signInWithEmail, startMailCatcher, type MailCatcher } from '@/lib/testing/sign-in';
import { readExportedKeys } from './offline';

const ADMIN = 'admin@region.example';
const HANDLER = 'hanna@region.example';
const PASSPHRASE = 'korrekt häst batteri häftklammer';

describe('mailbox administration through the built app', () => {
  let smtp: MailCatcher;
  let app: RunningApp;
  let admin: string;
  let handler: string;
  let remisser: { id: string; filedropUrl: string };

  const url = (path: string) => new URL(path, app.url).href;
  const postJson = (path: string, cookie: string, body: unknown = {}) =>
    fetch(url(path), { method: 'POST', headers: { cookie, 'content-type': 'application/json' }, body: JSON.stringify(body), redirect: 'manual' });
  const postForm = (path: string, cookie: string, fields: Record<string, string>) =>
    fetch(url(path), {
      method: 'POST',
      headers: { cookie, 'content-type': 'application/x-www-form-urlencoded', origin: app.url },
      body: new URLSearchParams(fields),
      redirect: 'manual',
    });
  const get = async (path: string, cookie = '') => {
    const res = await fetch(url(path), { headers: { cookie }, redirect: 'manual' });
    // The CSP nonce is new on every answer; nothing else may differ between two equal pages.
    const nonce = /'nonce-([^']+)'/.exec(res.headers.get('content-security-policy') ?? '')?.[1];
    const html = await res.text();
    return { status: res.status, html: nonce ? html.replaceAll(nonce, '') : html };
  };
  const slugOf = (link: string) => new URL(link).pathname.replace(/^\/d\//, '');
  /** What someone holding a link sees: status and page, the slug it asked for (echoed by the router) blanked. */
  const filedropPage = async (slug: string) => {
    const page = await get(`/d/${slug}`);
    return { status: page.status, html: page.html.replaceAll(slug, '') };
  };
  const neverExisted = () => filedropPage(bs58.encode(crypto.randomBytes(16)));
  /** The slug of the filedrop link the user's inbox shows as theirs. */
  const ownSlug = async (cookie: string) => {
    const input = /<input[^>]*id="own-link"[^>]*>/.exec((await get('/inbox', cookie)).html)![0];
    return slugOf(/value="([^"]+)"/.exec(input)![1]);
  };
  const ownMailboxId = async (cookie: string) => /\/api\/mailboxes\/([0-9a-f-]{36})\/link\/rotate/.exec((await get('/inbox', cookie)).html)?.[1];

  before(async () => {
    smtp = await startMailCatcher();
    app = await startApp({ env: { INKAST_ADMIN_EMAIL: ADMIN, SMTP_URL: smtp.url, MAIL_FROM: 'Inkast <inkast@region.example>' } });
    admin = await signInWithEmail(app.url, ADMIN, () => smtp.nextLinkTo(ADMIN));
    const invited = await postJson('/api/admin/users', admin, { email: HANDLER, displayName: 'Hanna Handläggare', role: 'handler', locale: 'sv' });
    assert.equal(invited.status, 201, await invited.text());
    await smtp.nextMailTo(HANDLER, 30_000); // the invitation, before the sign-in link
    handler = await signInWithEmail(app.url, HANDLER, () => smtp.nextLinkTo(HANDLER, 30_000));
  });

  after(async () => {
    await app?.stop();
    await smtp?.stop();
  });

  test('a rotated or switched-off link answers exactly like a link that never existed', async () => {
    const created = await postJson('/api/admin/mailboxes', admin, { name: 'Remisser', functionalEmail: 'remisser@region.example' });
    assert.equal(created.status, 201);
    remisser = await created.json();
    const oldSlug = slugOf(remisser.filedropUrl);
    assert.equal((await filedropPage(oldSlug)).status, 200);

    const rotated = await postJson(`/api/admin/mailboxes/${remisser.id}/link`, admin, { action: 'rotate' });
    assert.equal(rotated.status, 200);
    const newSlug = slugOf((await rotated.json()).filedropUrl);
    assert.notEqual(newSlug, oldSlug);
    const old = await filedropPage(oldSlug);
    const never = await neverExisted();
    assert.equal(old.status, 404);
    assert.deepEqual(old, never, 'the same 404, status and page');
    const fresh = await filedropPage(newSlug);
    assert.equal(fresh.status, 200);
    assert.match(fresh.html, /Remisser/);

    assert.equal((await postJson(`/api/admin/mailboxes/${remisser.id}/link`, admin, { action: 'disable' })).status, 200);
    assert.deepEqual(await filedropPage(newSlug), await neverExisted());
    assert.equal((await postJson(`/api/admin/mailboxes/${remisser.id}/link`, admin, { action: 'enable' })).status, 200);
    assert.equal((await filedropPage(newSlug)).status, 200);
    assert.equal((await postJson(`/api/admin/mailboxes/${remisser.id}/link`, admin, { action: 'delete' })).status, 400);
    remisser.filedropUrl = url(`/d/${newSlug}`);
  });

  test('the forms come back to the page with what happened', async () => {
    const back = `/admin/mailboxes/${remisser.id}`;
    const added = await postForm(`/api/admin/mailboxes/${remisser.id}/members`, admin, { back, email: HANDLER, role: 'manager' });
    assert.equal(added.status, 303);
    assert.equal(added.headers.get('location'), `${back}?done=member-added`);
    const page = await get(`${back}?done=member-added`, admin);
    assert.equal(page.status, 200);
    assert.match(page.html, /Medlemmen är tillagd\./);
    assert.match(page.html, new RegExp(`${HANDLER}</td><td>Ansvarig</td>`));
    assert.ok(page.html.includes(remisser.filedropUrl), 'the link in full');

    const unknown = await postForm(`/api/admin/mailboxes/${remisser.id}/members`, admin, { back, email: 'nobody@region.example', role: 'handler' });
    assert.equal(unknown.headers.get('location'), `${back}?error=unknown-user`);
    assert.match((await get(`${back}?error=unknown-user`, admin)).html, /role="alert"[^>]*>Användaren finns inte/);

    const policy = await postForm(`/api/admin/mailboxes/${remisser.id}/policy`, admin, { back, maxDeliveryGB: '0,5', maxFiles: '3', retentionDays: '10' });
    assert.equal(policy.headers.get('location'), `${back}?done=policy-saved`);
    const saved = (await get(back, admin)).html;
    assert.match(saved, /id="policy-gb"[^>]*value="0,5"/);
    assert.match(saved, /id="policy-files"[^>]*value="3"/);
    assert.match(saved, /id="policy-days"[^>]*value="10"/);
    const bad = await postForm(`/api/admin/mailboxes/${remisser.id}/policy`, admin, { back, maxDeliveryGB: '1', maxFiles: '3', retentionDays: '0' });
    assert.equal(bad.headers.get('location'), `${back}?error=invalid-policy`);
    assert.match((await get(back, admin)).html, /id="policy-days"[^>]*value="10"/, 'a refused policy changes nothing');
    // The sender sees the new policy on the filedrop page, and the server holds them to it.
    const filedrop = (await filedropPage(remisser.filedropUrl.split('/').pop()!)).html;
    for (const shown of ['<dd>3</dd>', '<dd>500 MB</dd>', '<dd>10 dagar, sedan raderas filerna</dd>']) {
      assert.ok(filedrop.includes(shown), `the filedrop page shows ${shown}`);
    }
    const opened = await fetch(url('/api/deliveries'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: app.url },
      body: JSON.stringify({ slug: remisser.filedropUrl.split('/').pop(), senderEmail: 'avsandare@vard.example' }),
    });
    assert.equal(opened.status, 201, await opened.clone().text());
    const limits = (await opened.json()) as { maxBytes: number; maxFiles: number };
    assert.deepEqual({ maxBytes: limits.maxBytes, maxFiles: limits.maxFiles }, { maxBytes: 500_000_000, maxFiles: 3 });

    // A form cannot send the administrator off the admin pages.
    const away = await postForm(`/api/admin/mailboxes/${remisser.id}/key/rotate`, admin, { back: '//evil.example/admin' });
    assert.equal(away.headers.get('location'), '/admin/mailboxes?done=key-rotated');
  });

  test('the key export is a file that opens offline with its passphrase', async () => {
    const detail = (await get(`/admin/mailboxes/${remisser.id}`, admin)).html;
    const fingerprints = [...detail.matchAll(/data-testid="key-row"><th scope="row"[^>]*>([0-9a-f]+)</g)].map((m) => m[1]);
    assert.equal(fingerprints.length, 2, 'the original key and the one the form rotated');

    const res = await postJson(`/api/admin/mailboxes/${remisser.id}/key/export`, admin, { passphrase: PASSPHRASE });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-disposition'), 'attachment; filename="inkast-remisser-keys.asc"');
    assert.equal(res.headers.get('cache-control'), 'no-store');
    const keys = await readExportedKeys(await res.text(), PASSPHRASE);
    assert.deepEqual(keys.map((k) => k.getFingerprint()).sort(), [...fingerprints].sort());

    const back = `/admin/mailboxes/${remisser.id}`;
    const weak = await postForm(`/api/admin/mailboxes/${remisser.id}/key/export`, admin, { back, passphrase: 'kort', passphraseConfirmation: 'kort' });
    assert.equal(weak.status, 303);
    assert.equal(weak.headers.get('location'), `${back}?error=weak-passphrase`);
    assert.equal(weak.headers.get('content-disposition'), null);
    const mismatch = await postForm(`/api/admin/mailboxes/${remisser.id}/key/export`, admin, { back, passphrase: PASSPHRASE, passphraseConfirmation: `${PASSPHRASE}!` });
    assert.equal(mismatch.headers.get('location'), `${back}?error=passphrase-mismatch`);
    const form = await postForm(`/api/admin/mailboxes/${remisser.id}/key/export`, admin, { back, passphrase: PASSPHRASE, passphraseConfirmation: PASSPHRASE });
    assert.equal(form.status, 200);
    assert.equal((await readExportedKeys(await form.text(), PASSPHRASE)).length, 2);
    assert.equal((await postJson(`/api/admin/mailboxes/${remisser.id}/key/export`, admin, { passphrase: 'kort' })).status, 400);
  });

  test('a handler rotates their own link, and gets 404 for anyone else’s', async () => {
    const own = (await ownMailboxId(handler))!;
    const oldSlug = await ownSlug(handler);
    assert.equal((await filedropPage(oldSlug)).status, 200);

    const res = await postJson(`/api/mailboxes/${own}/link/rotate`, handler);
    assert.equal(res.status, 200);
    const newSlug = slugOf((await res.json()).filedropUrl);
    assert.deepEqual(await filedropPage(oldSlug), await neverExisted());
    assert.equal((await filedropPage(newSlug)).status, 200);
    assert.equal(await ownSlug(handler), newSlug, 'the inbox shows the new link');

    const form = await postForm(`/api/mailboxes/${own}/link/rotate`, handler, {});
    assert.equal(form.status, 303);
    assert.equal(form.headers.get('location'), `/inbox?mailbox=${own}&done=link-rotated`);
    assert.match((await get(form.headers.get('location')!, handler)).html, /Du har en ny länk\. Den gamla fungerar inte längre\./);

    const adminsOwn = (await ownMailboxId(admin))!;
    const adminSlug = await ownSlug(admin);
    for (const other of [adminsOwn, remisser.id, crypto.randomUUID(), 'not-an-id']) {
      const refused = await postJson(`/api/mailboxes/${other}/link/rotate`, handler);
      assert.equal(refused.status, 404, other);
    }
    assert.equal((await filedropPage(adminSlug)).status, 200, 'the administrator’s link still works');
    assert.equal((await filedropPage(slugOf(remisser.filedropUrl))).status, 200, 'the shared link still works');
    assert.equal((await postJson(`/api/mailboxes/${own}/link/rotate`, '')).status, 401);
  });

  test('a handler gets 403 from every admin page and route, and nothing changes', async () => {
    const before = [(await get('/admin/mailboxes', admin)).html, (await get(`/admin/mailboxes/${remisser.id}`, admin)).html];
    assert.match(before[1], /data-testid="member-row"/);

    for (const path of ['/admin/mailboxes', `/admin/mailboxes/${remisser.id}`]) {
      const page = await get(path, handler);
      assert.equal(page.status, 403, path);
      assert.match(page.html, /Ingen behörighet/);
      assert.ok(!page.html.includes(remisser.filedropUrl), 'no link on the refusal');
    }
    const handlerId = /\/members\/([0-9a-f-]{36})\/remove/.exec(before[1])![1];
    const attempts: [string, Record<string, string>][] = [
      ['/api/admin/mailboxes', { name: 'Intrång' }],
      [`/api/admin/mailboxes/${remisser.id}/members`, { email: HANDLER, role: 'handler' }],
      [`/api/admin/mailboxes/${remisser.id}/members/${handlerId}/remove`, {}],
      [`/api/admin/mailboxes/${remisser.id}/link`, { action: 'rotate' }],
      [`/api/admin/mailboxes/${remisser.id}/link`, { action: 'disable' }],
      [`/api/admin/mailboxes/${remisser.id}/policy`, { retentionDays: '1' }],
      [`/api/admin/mailboxes/${remisser.id}/key/rotate`, {}],
      [`/api/admin/mailboxes/${remisser.id}/key/export`, { passphrase: PASSPHRASE, passphraseConfirmation: PASSPHRASE }],
    ];
    for (const [path, fields] of attempts) {
      const json = await postJson(path, handler, fields);
      assert.equal(json.status, 403, path);
      assert.equal((await json.json()).error, 'admin-only');
      const form = await postForm(path, handler, { back: '/admin/mailboxes', ...fields });
      assert.equal(form.status, 403, `${path} as a form`);
      assert.equal(form.headers.get('content-disposition'), null);
    }
    const after = [(await get('/admin/mailboxes', admin)).html, (await get(`/admin/mailboxes/${remisser.id}`, admin)).html];
    assert.deepEqual(after, before, 'the list and the mailbox are as they were');
    assert.equal((await filedropPage(slugOf(remisser.filedropUrl))).status, 200);
  });
});
