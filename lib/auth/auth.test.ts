/**
 * Sessions, email links and sign-out in process, on PGlite and (when it answers) PostgreSQL.
 * The cookie flow through the built app, SMTP and OpenID Connect is in sign-in.app.test.ts.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { sealData } from 'iron-session';
import { verifyAuditLog } from '@/lib/audit';
import { db } from '@/lib/db';
import { HttpError } from '@/lib/http';
import { createUser, type User } from '@/lib/mailboxes';
import { useFreshProcessState } from '@/lib/testing/process';
import { databaseTargets } from '@/lib/testing/targets';
import { LINK_REQUEST_FLOOR_MS, MAX_OPEN_LINKS, requestSignInLink, signInWithLink } from './links';
import { safeNextPath } from './next-path';
import {
  readSession,
  SEEN_REFRESH_MS,
  SESSION_ABSOLUTE_MS,
  SESSION_COOKIE,
  SESSION_IDLE_MS,
  sessionPassword,
  sessionUser,
  type CookieJar,
  type CookieOptions,
} from './session';
import { signOut } from './sign-out';

/** A cookie store as a browser keeps it: a cookie set with maxAge 0 is gone. */
class Jar implements CookieJar {
  readonly values = new Map<string, string>();
  readonly writes: { name: string; value: string; options: CookieOptions }[] = [];
  get(name: string) {
    const value = this.values.get(name);
    return value === undefined ? undefined : { value };
  }
  set(name: string, value: string, options: CookieOptions) {
    this.writes.push({ name, value, options });
    if (options.maxAge === 0) this.values.delete(name);
    else this.values.set(name, value);
  }
  copy(): Jar {
    const jar = new Jar();
    for (const [k, v] of this.values) jar.values.set(k, v);
    return jar;
  }
}

/** What a Server Component gets from cookies(): reading works, writing throws. */
class ReadOnlyJar extends Jar {
  override set(): void {
    throw new Error('Cookies can only be modified in a Server Action or Route Handler.');
  }
}

const sha256 = (s: string) => crypto.createHash('sha256').update(s).digest();

async function latestLinkTo(address: string): Promise<URL | undefined> {
  const row = (
    await (await db()).query<{ text_body: string }>(
      `SELECT text_body FROM outbox WHERE to_address = $1 AND template = 'sign-in-link' ORDER BY created_at DESC LIMIT 1`,
      [address],
    )
  ).rows[0];
  const link = row && /https?:\/\/\S+\/auth\/verify\?\S+/.exec(row.text_body)?.[0];
  return link ? new URL(link) : undefined;
}

async function count(sql: string, params: unknown[] = []): Promise<number> {
  return (await (await db()).query<{ n: number }>(`SELECT count(*)::int AS n FROM (${sql}) x`, params)).rows[0].n;
}

/** Requests a link and returns its token, read from the rendered mail in the outbox. */
async function linkToken(address: string, next?: string): Promise<string> {
  await requestSignInLink({ email: address, next });
  const token = (await latestLinkTo(address))?.searchParams.get('token');
  assert.ok(token, `a link was mailed to ${address}`);
  return token;
}

async function signedIn(user: User): Promise<Jar> {
  const jar = new Jar();
  const result = await signInWithLink(jar, await linkToken(user.email));
  assert.ok(result.ok);
  return jar;
}

test('only a same-origin path survives as next', () => {
  assert.equal(safeNextPath('/inbox/deliveries/1?tab=files#x'), '/inbox/deliveries/1?tab=files#x');
  assert.equal(safeNextPath('/admin'), '/admin');
  for (const bad of [
    '//evil.example',
    '//evil.example/inbox',
    'https://evil.example',
    'http://evil.example/inbox',
    '/\\evil.example',
    '\\\\evil.example',
    '/\t/evil.example',
    '/\n/evil.example',
    'javascript:alert(1)',
    'inbox',
    '',
    '/signin?next=//evil.example',
    '/auth/verify?token=x',
    '/api/auth/sign-out',
    undefined,
    ['/inbox'],
  ]) {
    assert.equal(safeNextPath(bad), '/inbox', JSON.stringify(bad));
  }
  assert.equal(safeNextPath('//evil.example', '/'), '/');
});

for (const target of await databaseTargets()) {
  test(`sign-in on ${target.name}`, async (t) => {
    const databaseUrl = await target.freshDatabase();
    const { dataDir } = await useFreshProcessState({
      INKAST_PUBLIC_URL: 'http://inkast.test',
      ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    });
    const anna = (await createUser({ email: 'anna@example.org', displayName: 'Anna' })).user;
    const bo = (await createUser({ email: 'bo@example.org', displayName: 'Bo', locale: 'en' })).user;
    const cilla = (await createUser({ email: 'cilla@example.org', displayName: 'Cilla' })).user;
    const disabled = (await createUser({ email: 'gone@example.org', displayName: 'Gone' })).user;
    await (await db()).query(`UPDATE users SET disabled_at = now() WHERE id = $1`, [disabled.id]);

    await t.test('the session password comes from a 0600 file made on first use', () => {
      const file = path.join(dataDir, 'session.secret');
      assert.ok(!fs.existsSync(file));
      const password = sessionPassword();
      assert.ok(password.length >= 32);
      assert.equal(fs.statSync(file).mode & 0o777, 0o600);
      assert.equal(sessionPassword(), password);
    });

    await t.test('a link for a known address: the hash is stored, the token is mailed in the user’s language', async () => {
      await requestSignInLink({ email: ' Bo@Example.org ', next: '/inbox/deliveries/42' });
      const link = await latestLinkTo('bo@example.org');
      assert.ok(link);
      assert.equal(link.origin + link.pathname, 'http://inkast.test/auth/verify');
      assert.equal(link.searchParams.get('next'), '/inbox/deliveries/42');
      const token = link.searchParams.get('token')!;
      const q = await db();
      const rows = (
        await q.query<{ token_hash: Uint8Array; user_id: string; ttl: number }>(
          `SELECT token_hash, user_id, extract(epoch FROM expires_at - created_at)::int AS ttl FROM sign_in_links WHERE user_id = $1`,
          [bo.id],
        )
      ).rows;
      assert.equal(rows.length, 1);
      assert.deepEqual(Buffer.from(rows[0].token_hash), sha256(token));
      assert.ok(Math.abs(rows[0].ttl - 15 * 60) <= 1, `expires after 15 min, not ${rows[0].ttl} s`);
      const mail = (await q.query<{ locale: string; subject: string }>(`SELECT locale, subject FROM outbox WHERE to_address = $1`, [bo.email])).rows;
      assert.deepEqual(mail, [{ locale: 'en', subject: 'Sign in to Inkast' }]);
      // The token travels in the mail only: not in job payloads, dedupe keys or the audit log.
      const elsewhere = await count(
        `SELECT 1 FROM jobs WHERE payload::text LIKE $1 OR dedupe_key LIKE $1
         UNION ALL SELECT 1 FROM outbox WHERE dedupe_key LIKE $1
         UNION ALL SELECT 1 FROM audit_log WHERE detail::text LIKE $1`,
        [`%${token}%`],
      );
      assert.equal(elsewhere, 0);
    });

    await t.test('unknown, disabled and known addresses get the same answer in the same time', async () => {
      const timed = async (email: string) => {
        const started = performance.now();
        const result = await requestSignInLink({ email });
        return { result, ms: performance.now() - started };
      };
      const before = await count(`SELECT 1 FROM outbox`);
      const unknown = await timed('nobody@example.org');
      const gone = await timed(disabled.email);
      const known = await timed(cilla.email);
      assert.equal(await count(`SELECT 1 FROM outbox`), before + 1, 'only the known address got mail');
      assert.equal(await count(`SELECT 1 FROM outbox WHERE to_address IN ('nobody@example.org', 'gone@example.org')`), 0);
      assert.deepEqual([unknown.result, gone.result], [known.result, known.result]);
      for (const { ms } of [unknown, gone, known]) assert.ok(ms >= LINK_REQUEST_FLOOR_MS - 1, `answered in ${ms} ms`);
      const spread = Math.max(unknown.ms, gone.ms, known.ms) - Math.min(unknown.ms, gone.ms, known.ms);
      assert.ok(spread < 100, `the answers took ${unknown.ms}, ${gone.ms} and ${known.ms} ms`);
    });

    await t.test('a malformed address is a 400', async () => {
      for (const email of ['', 'not-an-address', 42, undefined]) {
        await assert.rejects(requestSignInLink({ email }), (err: unknown) => err instanceof HttpError && err.status === 400);
      }
    });

    await t.test(`no more than ${MAX_OPEN_LINKS} open links at once`, async () => {
      const open = () => count(`SELECT 1 FROM sign_in_links WHERE user_id = $1 AND used_at IS NULL`, [cilla.id]);
      while ((await open()) < MAX_OPEN_LINKS) await requestSignInLink({ email: cilla.email });
      const mails = await count(`SELECT 1 FROM outbox WHERE to_address = $1`, [cilla.email]);
      await requestSignInLink({ email: cilla.email });
      assert.equal(await open(), MAX_OPEN_LINKS);
      assert.equal(await count(`SELECT 1 FROM outbox WHERE to_address = $1`, [cilla.email]), mails);
      // Signing in spends them all, so the next request mails again.
      const jar = new Jar();
      const token = (await latestLinkTo(cilla.email))!.searchParams.get('token');
      assert.ok((await signInWithLink(jar, token)).ok);
      assert.equal(await open(), 0);
    });

    await t.test('a link signs in once; used, expired, unknown and disabled are refused', async () => {
      const token = await linkToken(anna.email);
      const jar = new Jar();
      const first = await signInWithLink(jar, token);
      assert.ok(first.ok);
      assert.equal(first.user.id, anna.id);
      assert.ok(!('session_epoch' in first.user), 'the epoch stays inside lib/auth');
      const written = jar.writes.find((w) => w.name === SESSION_COOKIE)!;
      assert.deepEqual(written.options, { httpOnly: true, secure: false, sameSite: 'lax', path: '/' });
      assert.equal((await sessionUser(jar))?.id, anna.id);

      const again = new Jar();
      assert.deepEqual(await signInWithLink(again, token), { ok: false, problem: 'link-used' });
      assert.equal(again.writes.length, 0, 'no cookie for a refused link');

      const old = await linkToken(anna.email);
      await (await db()).query(`UPDATE sign_in_links SET expires_at = now() - interval '1 second' WHERE token_hash = $1`, [sha256(old)]);
      assert.deepEqual(await signInWithLink(new Jar(), old), { ok: false, problem: 'link-expired' });

      assert.deepEqual(await signInWithLink(new Jar(), crypto.randomBytes(32).toString('base64url')), { ok: false, problem: 'link-invalid' });
      assert.deepEqual(await signInWithLink(new Jar(), 'short'), { ok: false, problem: 'link-invalid' });
      assert.deepEqual(await signInWithLink(new Jar(), null), { ok: false, problem: 'link-invalid' });

      const later = await linkToken(anna.email);
      await (await db()).query(`UPDATE users SET disabled_at = now() WHERE id = $1`, [anna.id]);
      try {
        assert.deepEqual(await signInWithLink(new Jar(), later), { ok: false, problem: 'no-access' });
      } finally {
        await (await db()).query(`UPDATE users SET disabled_at = NULL WHERE id = $1`, [anna.id]);
      }
    });

    await t.test('of two requests racing with one token, exactly one signs in', async () => {
      const token = await linkToken(anna.email);
      const results = await Promise.all([signInWithLink(new Jar(), token), signInWithLink(new Jar(), token), signInWithLink(new Jar(), token)]);
      assert.equal(results.filter((r) => r.ok).length, 1);
      assert.deepEqual(
        results.filter((r) => !r.ok),
        [
          { ok: false, problem: 'link-used' },
          { ok: false, problem: 'link-used' },
        ],
      );
    });

    await t.test('idle expiry after 60 minutes; seenAt is refreshed at most once a minute', async () => {
      const jar = await signedIn(anna);
      const start = (await readSession(jar))!.data;
      const writes = () => jar.writes.filter((w) => w.name === SESSION_COOKIE).length;
      const before = writes();
      assert.ok(await sessionUser(jar, start.seenAt + SEEN_REFRESH_MS - 1000));
      assert.equal(writes(), before, 'no rewrite within the minute');
      const active = start.seenAt + SESSION_IDLE_MS - 60_000;
      assert.ok(await sessionUser(jar, active), 'still valid after 59 minutes');
      assert.equal(writes(), before + 1);
      assert.equal((await readSession(jar, active))!.data.seenAt, active);
      assert.ok(await sessionUser(jar.copy(), active + SESSION_IDLE_MS - 1000), 'the refresh moved the idle limit');

      const idle = jar.copy();
      assert.equal(await sessionUser(idle, active + SESSION_IDLE_MS), null, 'idle for 60 minutes');
      assert.equal(idle.get(SESSION_COOKIE), undefined, 'the dead cookie is cleared');
    });

    await t.test('absolute expiry after 12 hours however active', async () => {
      const jar = await signedIn(anna);
      const { issuedAt } = (await readSession(jar))!.data;
      let now = issuedAt;
      while (now + 50 * 60_000 < issuedAt + SESSION_ABSOLUTE_MS) {
        now += 50 * 60_000;
        assert.ok(await sessionUser(jar, now), `active at ${(now - issuedAt) / 60_000} min`);
      }
      assert.equal(await sessionUser(jar, issuedAt + SESSION_ABSOLUTE_MS), null);
    });

    await t.test('a page (read-only cookies) still sees the user; the refresh waits for a route handler', async () => {
      const jar = await signedIn(anna);
      const { seenAt } = (await readSession(jar))!.data;
      const page = new ReadOnlyJar();
      page.values.set(SESSION_COOKIE, jar.get(SESSION_COOKIE)!.value);
      assert.equal((await sessionUser(page, seenAt + 5 * 60_000))?.id, anna.id);
      assert.equal(await sessionUser(page, seenAt + SESSION_IDLE_MS), null);
    });

    await t.test('disabling the user or bumping session_epoch ends live sessions at once', async () => {
      const q = await db();
      const jar = await signedIn(bo);
      assert.ok(await sessionUser(jar.copy()));
      await q.query(`UPDATE users SET disabled_at = now() WHERE id = $1`, [bo.id]);
      assert.equal(await sessionUser(jar.copy()), null);
      await q.query(`UPDATE users SET disabled_at = NULL WHERE id = $1`, [bo.id]);
      assert.ok(await sessionUser(jar.copy()));
      await q.query(`UPDATE users SET session_epoch = session_epoch + 1 WHERE id = $1`, [bo.id]);
      assert.equal(await sessionUser(jar.copy()), null);
    });

    await t.test('forged, tampered and foreign cookies are refused', async () => {
      const jar = await signedIn(anna);
      const seal = jar.get(SESSION_COOKIE)!.value;
      const { data } = (await readSession(jar))!;
      const tampered = new Jar();
      tampered.values.set(SESSION_COOKIE, seal.slice(0, 40) + (seal[40] === 'A' ? 'B' : 'A') + seal.slice(41));
      assert.equal(await sessionUser(tampered), null);
      const foreign = new Jar();
      foreign.values.set(SESSION_COOKIE, await sealData(data, { password: crypto.randomBytes(32).toString('hex'), ttl: 3600 }));
      assert.equal(await sessionUser(foreign), null);
      const garbage = new Jar();
      garbage.values.set(SESSION_COOKIE, 'not a seal');
      assert.equal(await sessionUser(garbage), null);
      // Sealed with the right password but for someone else's epoch or a bad shape.
      const forged = new Jar();
      forged.values.set(SESSION_COOKIE, await sealData({ ...data, epoch: data.epoch + 1 }, { password: sessionPassword(), ttl: 3600 }));
      assert.equal(await sessionUser(forged), null);
      forged.values.set(SESSION_COOKIE, await sealData({ userId: anna.id }, { password: sessionPassword(), ttl: 3600 }));
      assert.equal(await sessionUser(forged), null);
    });

    await t.test('sign-out clears the cookie and ends copies of it too', async () => {
      const jar = await signedIn(anna);
      const stolen = jar.copy();
      await signOut(jar);
      assert.equal(jar.get(SESSION_COOKIE), undefined);
      assert.equal(await sessionUser(stolen), null);
      await signOut(new Jar()); // without a session: nothing to do, no error
    });

    await t.test('every sign-in event is in the audit log, which verifies, and no token is', async () => {
      const q = await db();
      const actions = (await q.query<{ action: string; n: number }>(`SELECT action, count(*)::int AS n FROM audit_log GROUP BY action`)).rows;
      const by = Object.fromEntries(actions.map((a) => [a.action, a.n]));
      for (const action of ['auth.sign-in-link-sent', 'auth.signed-in', 'auth.sign-in-refused', 'auth.signed-out']) {
        assert.ok(by[action] > 0, `${action} recorded`);
      }
      const reasons = (
        await q.query<{ reason: string }>(`SELECT DISTINCT detail->>'reason' AS reason FROM audit_log WHERE action = 'auth.sign-in-refused'`)
      ).rows.map((r) => r.reason);
      for (const r of ['unknown-address', 'disabled', 'throttled', 'link-used', 'link-expired', 'link-invalid']) assert.ok(reasons.includes(r), r);
      const unknown = (
        await q.query<{ actor: string; detail: Record<string, unknown> }>(
          `SELECT actor, detail FROM audit_log WHERE detail->>'reason' = 'unknown-address' LIMIT 1`,
        )
      ).rows[0];
      assert.deepEqual(unknown, { actor: 'system', detail: { method: 'email-link', reason: 'unknown-address', emailDomain: 'example.org' } });
      assert.deepEqual(await verifyAuditLog(q), { ok: true, entries: await count(`SELECT 1 FROM audit_log`) });
      const tokens = (await q.query<{ text_body: string }>(`SELECT text_body FROM outbox`)).rows.map(
        (r) => /token=([A-Za-z0-9_-]+)/.exec(r.text_body)![1],
      );
      const log = JSON.stringify((await q.query(`SELECT actor, action, target, detail FROM audit_log`)).rows);
      for (const token of tokens) assert.ok(!log.includes(token));
    });
  });
}

test('the session secret from INKAST_SESSION_SECRET, and Secure cookies behind https', async () => {
  const secret = crypto.randomBytes(32).toString('hex');
  const { dataDir } = await useFreshProcessState({ INKAST_PUBLIC_URL: 'https://inkast.example', INKAST_SESSION_SECRET: secret });
  const { user } = await createUser({ email: 'dora@example.org', displayName: 'Dora' });
  assert.equal(sessionPassword(), secret);
  const jar = await signedIn(user);
  assert.equal(jar.writes.find((w) => w.name === SESSION_COOKIE)!.options.secure, true);
  assert.ok(!fs.existsSync(path.join(dataDir, 'session.secret')));
  // A cookie sealed under the secret is the app's own: that is what an operator rotating it must know.
  const data = (await readSession(jar))!.data;
  const own = new Jar();
  own.values.set(SESSION_COOKIE, await sealData(data, { password: secret, ttl: 3600 }));
  assert.equal((await sessionUser(own))?.id, user.id);
});
