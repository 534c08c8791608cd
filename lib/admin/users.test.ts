/**
 * User administration in process, on PGlite and (when it answers) PostgreSQL: inviting (user,
 * personal mailbox, mail, audit in one go), the list, roles, disabling (sessions end at once) and
 * enabling, each refusal, two administrators racing to remove each other, and the audit chain.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { test } from 'node:test';
import { verifyAuditLog } from '@/lib/audit';
import { SESSION_COOKIE, sessionUser, startSession, type CookieJar } from '@/lib/auth/session';
import { findAuthUser } from '@/lib/auth/users';
import { db } from '@/lib/db';
import { addMember, createSharedMailbox, createUser, filedropUrl, isMember, MailboxError } from '@/lib/mailboxes';
import { useFreshProcessState } from '@/lib/testing/process';
import { databaseTargets } from '@/lib/testing/targets';
import { disableUser, enableUser, inviteUser, listUsers, setUserRole, type ListedUser } from './users';
import { rejectsWithMailboxError as rejects } from '@/lib/testing/refusals';

const PUBLIC_URL = 'http://inkast.test';

/** A browser's cookie store, enough for a session. */
class Jar implements CookieJar {
  readonly values = new Map<string, string>();
  get(name: string) {
    const value = this.values.get(name);
    return value === undefined ? undefined : { value };
  }
  set(name: string, value: string, options: { maxAge?: number }) {
    if (options.maxAge === 0) this.values.delete(name);
    else this.values.set(name, value);
  }
}

async function count(sql: string, params: unknown[] = []): Promise<number> {
  return (await (await db()).query<{ n: number }>(`SELECT count(*)::int AS n FROM (${sql}) x`, params)).rows[0].n;
}

async function auditOf(userId: string) {
  return (
    await (await db()).query<{ actor: string; action: string; detail: Record<string, unknown> }>(
      `SELECT actor, action, detail FROM audit_log WHERE target = $1 ORDER BY id`,
      [`user:${userId}`],
    )
  ).rows;
}

/** A signed-in browser of the user. */
async function signedIn(userId: string): Promise<Jar> {
  const jar = new Jar();
  const user = await findAuthUser(await db(), { id: userId });
  assert.ok(user);
  await startSession(jar, user);
  return jar;
}

for (const target of await databaseTargets()) {
  test(`user administration on ${target.name}`, async (t) => {
    const databaseUrl = await target.freshDatabase();
    await useFreshProcessState({
      INKAST_PUBLIC_URL: PUBLIC_URL,
      INKAST_SESSION_SECRET: crypto.randomBytes(32).toString('hex'),
      ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    });
    const q = await db();
    const ada = (await createUser({ email: 'ada@example.org', displayName: 'Ada', role: 'admin' })).user;
    const asAda = `user:${ada.id}`;
    let bo: ListedUser;

    await t.test('inviting creates the user, their personal mailbox, the mail and the audit entry', async () => {
      const invited = await inviteUser({ email: ' Bo@Example.org ', displayName: ' Bo Berg ', role: 'handler', locale: 'en' }, asAda);
      bo = invited;
      assert.equal(invited.email, 'bo@example.org');
      assert.equal(invited.display_name, 'Bo Berg');
      assert.equal(invited.role, 'handler');
      assert.equal(invited.locale, 'en');
      assert.equal(invited.disabled_at, null);
      assert.ok(invited.created_at instanceof Date);
      assert.equal(invited.shared_mailboxes, 0);
      assert.ok(invited.personal_mailbox_id && invited.filedrop_slug);
      assert.ok(await isMember(q, invited.id, invited.personal_mailbox_id), 'a member of their own mailbox');
      assert.equal('session_epoch' in invited, false, 'the session epoch stays in lib/auth');

      const mail = (
        await q.query<{ to_address: string; locale: string; subject: string; text_body: string }>(
          `SELECT to_address, locale, subject, text_body FROM outbox WHERE template = 'user-invited'`,
        )
      ).rows;
      assert.equal(mail.length, 1);
      assert.equal(mail[0].to_address, 'bo@example.org');
      assert.equal(mail[0].subject, 'You have an Inkast account', 'in the language chosen for them');
      assert.ok(mail[0].text_body.includes(`${PUBLIC_URL}/signin`));
      assert.ok(mail[0].text_body.includes(filedropUrl(invited.filedrop_slug)));
      assert.equal(await count(`SELECT 1 FROM jobs WHERE kind = 'mail'`), 1, 'and its sending is queued');

      assert.deepEqual(await auditOf(invited.id), [{ actor: asAda, action: 'user.invited', detail: { role: 'handler' } }]);
    });

    await t.test('invitations refused: an existing address, invalid fields; nothing is left behind', async () => {
      const before = [await count('SELECT 1 FROM users'), await count('SELECT 1 FROM outbox'), await count('SELECT 1 FROM audit_log')];
      await rejects(inviteUser({ email: 'BO@example.org', displayName: 'Another Bo', role: 'handler', locale: 'sv' }, asAda), 409, 'user-exists');
      for (const bad of [
        { email: 'not an address', displayName: 'X', role: 'handler', locale: 'sv' },
        { email: 'x@example.org', displayName: '   ', role: 'handler', locale: 'sv' },
        { email: 'x@example.org', displayName: 'X', role: 'owner', locale: 'sv' },
        { email: 'x@example.org', displayName: 'X', role: 'handler', locale: 'de' },
        { email: 'x@example.org', displayName: 'X', role: 'handler', locale: 'sv', admin: true },
      ]) {
        await rejects(inviteUser(bad, asAda), 400, 'invalid-user');
      }
      await assert.rejects(inviteUser({ email: 'x@example.org', displayName: 'X', role: 'handler', locale: 'sv' }, 'someone'), TypeError);
      assert.deepEqual([await count('SELECT 1 FROM users'), await count('SELECT 1 FROM outbox'), await count('SELECT 1 FROM audit_log')], before);
    });

    await t.test('the list shows role, state, personal mailbox and shared memberships', async () => {
      const shared = await createSharedMailbox({ name: 'Remisser' });
      await addMember(shared.id, bo.id);
      const users = await listUsers();
      assert.deepEqual(users.map((u) => u.email), ['ada@example.org', 'bo@example.org']);
      const listedBo = users.find((u) => u.id === bo.id)!;
      assert.equal(listedBo.shared_mailboxes, 1);
      assert.equal(listedBo.filedrop_slug, bo.filedrop_slug);
      assert.equal(users.find((u) => u.id === ada.id)!.role, 'admin');
    });

    await t.test('roles: promoted and demoted, audited; the same role again changes nothing', async () => {
      const promoted = await setUserRole(bo.id, 'admin', asAda);
      assert.equal(promoted.role, 'admin');
      const demoted = await setUserRole(bo.id, 'handler', asAda);
      assert.equal(demoted.role, 'handler');
      await setUserRole(bo.id, 'handler', asAda);
      assert.deepEqual(
        (await auditOf(bo.id)).filter((e) => e.action === 'user.role-changed'),
        [
          { actor: asAda, action: 'user.role-changed', detail: { from: 'handler', to: 'admin' } },
          { actor: asAda, action: 'user.role-changed', detail: { from: 'admin', to: 'handler' } },
        ],
      );
      await rejects(setUserRole(bo.id, 'owner' as never, asAda), 400, 'invalid-role');
      await rejects(setUserRole(crypto.randomUUID(), 'admin', asAda), 404, 'unknown-user');
      await rejects(setUserRole('not-an-id', 'admin', asAda), 404, 'unknown-user');
    });

    await t.test('disabling ends every live session at once and survives enabling again', async () => {
      const browser = await signedIn(bo.id);
      assert.equal((await sessionUser(browser))?.id, bo.id);
      const disabled = await disableUser(bo.id, asAda);
      assert.ok(disabled.disabled_at instanceof Date);
      assert.equal(await sessionUser(browser), null);
      assert.equal(browser.get(SESSION_COOKIE), undefined, 'the dead cookie is cleared');
      assert.equal(await isMember(q, bo.id, bo.personal_mailbox_id!), false, 'no longer reads their mailbox');
      assert.equal((await listUsers()).at(-1)?.id, bo.id, 'disabled users come last');

      const again = await disableUser(bo.id, asAda);
      assert.deepEqual(again.disabled_at, disabled.disabled_at, 'disabling twice changes nothing');

      const oldSession = await signedIn(bo.id);
      const enabled = await enableUser(bo.id, asAda);
      assert.equal(enabled.disabled_at, null);
      await enableUser(bo.id, asAda);
      assert.ok(await isMember(q, bo.id, bo.personal_mailbox_id!));
      // The epoch moved when they were disabled, so a session from before does not come back.
      const stale = new Jar();
      stale.values.set(SESSION_COOKIE, browser.values.get(SESSION_COOKIE) ?? '');
      assert.equal(await sessionUser(stale), null);
      assert.equal((await sessionUser(oldSession))?.id, bo.id, 'a session started after enabling works');
      assert.deepEqual(
        (await auditOf(bo.id)).filter((e) => e.action === 'user.disabled' || e.action === 'user.enabled').map((e) => [e.actor, e.action]),
        [
          [asAda, 'user.disabled'],
          [asAda, 'user.enabled'],
        ],
      );
      await rejects(disableUser(crypto.randomUUID(), asAda), 404, 'unknown-user');
      await rejects(enableUser(crypto.randomUUID(), asAda), 404, 'unknown-user');
    });

    await t.test('an administrator may not disable or demote themself', async () => {
      await setUserRole(bo.id, 'admin', asAda);
      await rejects(disableUser(ada.id, asAda), 409, 'own-account');
      await rejects(setUserRole(ada.id, 'handler', asAda), 409, 'own-account');
      const row = (await listUsers()).find((u) => u.id === ada.id)!;
      assert.deepEqual([row.role, row.disabled_at], ['admin', null]);
      await setUserRole(bo.id, 'handler', asAda);
    });

    await t.test('the last enabled administrator may be neither disabled nor demoted', async () => {
      const eve = (await createUser({ email: 'eve@example.org', displayName: 'Eve', role: 'admin' })).user;
      await disableUser(eve.id, asAda);
      // Eve is an administrator, but a disabled one: Ada is the last enabled one.
      await rejects(disableUser(ada.id, 'system'), 409, 'last-admin');
      await rejects(setUserRole(ada.id, 'handler', 'system'), 409, 'last-admin');
      await rejects(disableUser(ada.id, `user:${bo.id}`), 409, 'last-admin');
      await setUserRole(eve.id, 'handler', 'system');
      assert.deepEqual(
        (await listUsers()).filter((u) => u.role === 'admin' && !u.disabled_at).map((u) => u.id),
        [ada.id],
      );
    });

    await t.test('two administrators removing each other at once: one wins, one administrator is left', async () => {
      const cy = (await createUser({ email: 'cy@example.org', displayName: 'Cy', role: 'admin' })).user;
      const outcomes = await Promise.allSettled([disableUser(cy.id, asAda), disableUser(ada.id, `user:${cy.id}`)]);
      assert.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 1, JSON.stringify(outcomes));
      const refused = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult;
      assert.ok(refused.reason instanceof MailboxError && refused.reason.code === 'last-admin', String(refused.reason));
      assert.equal(await count(`SELECT 1 FROM users WHERE role = 'admin' AND disabled_at IS NULL`), 1);

      // The same with a demotion against a disabling.
      const winner = (await listUsers()).find((u) => u.role === 'admin' && !u.disabled_at)!;
      const other = winner.id === ada.id ? cy : ada;
      await enableUser(other.id, 'system');
      const mixed = await Promise.allSettled([setUserRole(other.id, 'handler', `user:${winner.id}`), disableUser(winner.id, `user:${other.id}`)]);
      assert.equal(mixed.filter((o) => o.status === 'fulfilled').length, 1, JSON.stringify(mixed));
      assert.equal(await count(`SELECT 1 FROM users WHERE role = 'admin' AND disabled_at IS NULL`), 1);
    });

    await t.test('an invitation without role or language makes a Swedish-speaking handler', async () => {
      const invited = await inviteUser({ email: 'dag@example.org', displayName: 'Dag' }, asAda);
      assert.equal(invited.role, 'handler');
      assert.equal(invited.locale, 'sv');
    });

    await t.test('the audit chain holds after all of it', async () => {
      const v = await verifyAuditLog(q);
      assert.equal(v.ok, true, JSON.stringify(v));
    });
  });
}
