/**
 * Mailboxes and members as an administrator sees them, in process on PGlite and PostgreSQL:
 * creating a shared mailbox, adding and removing members, the list and detail views, a handler
 * rotating their own link — refusals included, each change audited with the chain intact.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { test } from 'node:test';
import { verifyAuditLog } from '@/lib/audit';
import { bootProcess } from '@/lib/boot';
import { db } from '@/lib/db';
import { createDelivery } from '@/lib/deliveries';
import { createUser, findFiledropMailbox, isMember, userMailboxes } from '@/lib/mailboxes';
import { useFreshProcessState } from '@/lib/testing/process';
import { databaseTargets } from '@/lib/testing/targets';
import { rotateMailboxKey, setFiledropEnabled } from './index';
import {
  addMemberByEmail,
  createSharedMailboxAudited,
  keyExportFileName,
  listMailboxesForAdmin,
  mailboxDetail,
  policyFromForm,
  removeMember,
  rotateOwnFiledropLink,
} from './mailboxes';
import { rejectsWithMailboxError as rejects } from '@/lib/testing/refusals';

async function auditEntries(action: string) {
  return (
    await (await db()).query<{ actor: string; target: string; detail: Record<string, unknown> }>(
      'SELECT actor, target, detail FROM audit_log WHERE action = $1 ORDER BY id',
      [action],
    )
  ).rows;
}

const countRows = async (sql: string, params: unknown[] = []) =>
  (await (await db()).query<{ n: number }>(`SELECT count(*)::int AS n FROM (${sql}) x`, params)).rows[0].n;

for (const target of await databaseTargets()) {
  test(`mailbox administration on ${target.name}`, async (t) => {
    const url = await target.freshDatabase();
    await useFreshProcessState(url ? { DATABASE_URL: url } : {});
    await bootProcess({ worker: false });
    const q = await db();
    const { user: admin } = await createUser({ email: 'chef@region.se', displayName: 'Chef', role: 'admin' });
    const ADMIN = `user:${admin.id}`;
    const { user: anna, mailbox: annaBox } = await createUser({ email: 'anna@region.se', displayName: 'Anna Andersson' });
    const { user: bo, mailbox: boBox } = await createUser({ email: 'bo@region.se', displayName: 'Bo Berg' });

    let remisser: Awaited<ReturnType<typeof createSharedMailboxAudited>>;

    await t.test('creating a shared mailbox is audited in the same transaction', async () => {
      remisser = await createSharedMailboxAudited({ name: 'Remisser', functionalEmail: 'Remisser@Region.se' }, ADMIN);
      assert.equal(remisser.kind, 'shared');
      assert.equal(remisser.functional_email, 'remisser@region.se');
      assert.ok(await findFiledropMailbox(remisser.filedrop_slug), 'its filedrop link works at once');
      const [entry] = await auditEntries('mailbox.created');
      assert.deepEqual(entry, { actor: ADMIN, target: `mailbox:${remisser.id}`, detail: { kind: 'shared', functionalEmail: 'remisser@region.se' } });

      const before = await countRows('SELECT 1 FROM mailboxes');
      await rejects(createSharedMailboxAudited({ name: '  ' }, ADMIN), 400, 'invalid-mailbox');
      await rejects(createSharedMailboxAudited({ name: 'Lab', functionalEmail: 'not an address' }, ADMIN), 400, 'invalid-mailbox');
      await assert.rejects(createSharedMailboxAudited({ name: 'Lab' }, 'somebody'), TypeError);
      assert.equal(await countRows('SELECT 1 FROM mailboxes'), before, 'nothing created by a refusal');
      assert.equal((await auditEntries('mailbox.created')).length, 1);
    });

    await t.test('adding a member by address, as handler or manager', async () => {
      const added = await addMemberByEmail(remisser.id, ' ANNA@region.se ', 'handler', ADMIN);
      assert.deepEqual(added, { userId: anna.id, email: 'anna@region.se', name: 'Anna Andersson', role: 'handler', disabled: false });
      await addMemberByEmail(remisser.id, 'bo@region.se', 'manager', ADMIN);
      assert.ok(await isMember(q, anna.id, remisser.id));
      assert.deepEqual((await userMailboxes(bo.id)).map((m) => m.name), ['Bo Berg', 'Remisser'], 'Bo now handles the shared mailbox');
      assert.deepEqual(
        (await auditEntries('mailbox.member-added')).map((e) => e.detail),
        [
          { userId: anna.id, role: 'handler' },
          { userId: bo.id, role: 'manager' },
        ],
      );
    });

    await t.test('adding: refusals change nothing and are not audited', async () => {
      await rejects(addMemberByEmail(remisser.id, 'nobody@region.se', 'handler', ADMIN), 404, 'unknown-user');
      await rejects(addMemberByEmail(remisser.id, 'anna@region.se', 'handler', ADMIN), 409, 'already-member');
      await rejects(addMemberByEmail(annaBox.id, 'bo@region.se', 'handler', ADMIN), 409, 'personal-mailbox');
      await rejects(addMemberByEmail(remisser.id, 'bo@region.se', 'owner' as never, ADMIN), 400, 'invalid-member');
      await rejects(addMemberByEmail(remisser.id, 'bo', 'handler', ADMIN), 400, 'invalid-member');
      await rejects(addMemberByEmail(crypto.randomUUID(), 'bo@region.se', 'handler', ADMIN), 404, 'unknown-mailbox');
      await rejects(addMemberByEmail(remisser.filedrop_slug, 'bo@region.se', 'handler', ADMIN), 404, 'unknown-mailbox');
      assert.equal(await isMember(q, bo.id, annaBox.id), false);
      assert.equal((await auditEntries('mailbox.member-added')).length, 2);
    });

    await t.test('the detail view: members with role and state, keys with the active one', async () => {
      await q.query('UPDATE users SET disabled_at = now() WHERE id = $1', [bo.id]);
      const rotated = await rotateMailboxKey(remisser.id, ADMIN);
      const detail = (await mailboxDetail(remisser.id))!;
      assert.equal(detail.mailbox.id, remisser.id);
      assert.deepEqual(detail.members, [
        { userId: anna.id, email: 'anna@region.se', name: 'Anna Andersson', role: 'handler', disabled: false },
        { userId: bo.id, email: 'bo@region.se', name: 'Bo Berg', role: 'manager', disabled: true },
      ]);
      assert.equal(detail.keys.length, 2);
      assert.deepEqual(
        detail.keys.map((k) => [k.fingerprint, k.active]),
        [
          [rotated.fingerprint, true],
          [rotated.previousFingerprints[0], false],
        ],
      );
      assert.ok(detail.keys.every((k) => k.createdAt instanceof Date && !Number.isNaN(k.createdAt.getTime())));
      assert.equal(await mailboxDetail(crypto.randomUUID()), null);
      assert.equal(await mailboxDetail(remisser.filedrop_slug), null, 'by id only, not by slug');
      await q.query('UPDATE users SET disabled_at = NULL WHERE id = $1', [bo.id]);
    });

    await t.test('the list: every mailbox with kind, address, link state and counts', async () => {
      // Two deliveries opened; only the one that arrived counts (the verify job's outcome stood in by SQL).
      const arrived = await createDelivery({ slug: remisser.filedrop_slug, senderEmail: 'avsandare@example.se' });
      await createDelivery({ slug: remisser.filedrop_slug, senderEmail: 'avsandare@example.se' });
      await q.query(`UPDATE deliveries SET state = 'delivered', delivered_at = now() WHERE id = $1`, [arrived.deliveryId]);
      await setFiledropEnabled(remisser.id, false, ADMIN);
      const list = await listMailboxesForAdmin();
      assert.deepEqual(list[0], {
        id: remisser.id,
        kind: 'shared',
        name: 'Remisser',
        functionalEmail: 'remisser@region.se',
        linkEnabled: false,
        memberCount: 2,
        deliveryCount: 1,
      });
      const personal = list.find((m) => m.id === annaBox.id)!;
      assert.deepEqual(
        [personal.kind, personal.name, personal.functionalEmail, personal.linkEnabled, personal.memberCount, personal.deliveryCount],
        ['personal', 'Anna Andersson', null, true, 1, 0],
      );
      assert.deepEqual(list.slice(1).map((m) => m.kind), ['personal', 'personal', 'personal', 'personal'], 'shared first');
      await setFiledropEnabled(remisser.id, true, ADMIN);
    });

    await t.test('removing a member ends their access; refusals change nothing', async () => {
      await removeMember(remisser.id, bo.id, ADMIN);
      assert.equal(await isMember(q, bo.id, remisser.id), false);
      assert.deepEqual(await auditEntries('mailbox.member-removed'), [
        { actor: ADMIN, target: `mailbox:${remisser.id}`, detail: { userId: bo.id } },
      ]);
      await rejects(removeMember(remisser.id, bo.id, ADMIN), 404, 'not-a-member');
      await rejects(removeMember(remisser.id, 'not-a-uuid', ADMIN), 404, 'not-a-member');
      await rejects(removeMember(annaBox.id, anna.id, ADMIN), 409, 'personal-mailbox');
      await rejects(removeMember(crypto.randomUUID(), anna.id, ADMIN), 404, 'unknown-mailbox');
      assert.ok(await isMember(q, anna.id, annaBox.id), 'the owner stays in their personal mailbox');
      assert.equal((await auditEntries('mailbox.member-removed')).length, 1);
    });

    await t.test('a handler rotates their own link, and only that one', async () => {
      const old = annaBox.filedrop_slug;
      const rotated = await rotateOwnFiledropLink(anna, annaBox.id);
      assert.notEqual(rotated.filedrop_slug, old);
      assert.equal(await findFiledropMailbox(old), null);
      assert.equal((await findFiledropMailbox(rotated.filedrop_slug))?.id, annaBox.id);
      const entries = await auditEntries('mailbox.link-rotated');
      assert.deepEqual(entries.at(-1), { actor: `user:${anna.id}`, target: `mailbox:${annaBox.id}`, detail: {} });

      const boSlug = (await q.query<{ filedrop_slug: string }>('SELECT filedrop_slug FROM mailboxes WHERE id = $1', [boBox.id])).rows[0].filedrop_slug;
      await rejects(rotateOwnFiledropLink(anna, boBox.id), 404, 'unknown-mailbox');
      await rejects(rotateOwnFiledropLink(anna, remisser.id), 404, 'unknown-mailbox');
      await rejects(rotateOwnFiledropLink(anna, crypto.randomUUID()), 404, 'unknown-mailbox');
      await rejects(rotateOwnFiledropLink(anna, rotated.filedrop_slug), 404, 'unknown-mailbox');
      assert.ok(await findFiledropMailbox(boSlug), 'Bo’s link still works');
      assert.equal((await auditEntries('mailbox.link-rotated')).length, entries.length);
    });

    await t.test('the audit chain holds after all of it', async () => {
      const v = await verifyAuditLog(q);
      assert.equal(v.ok, true, JSON.stringify(v));
    });
  });
}

test('a policy form: strings to numbers, an unticked box is false, GB to bytes', () => {
  assert.deepEqual(policyFromForm({ requireVerifiedSender: 'on', maxDeliveryGB: '2,5', maxFiles: '20', retentionDays: '30', back: '/admin' }), {
    requireVerifiedSender: true,
    maxDeliveryBytes: 2_500_000_000,
    maxFilesPerDelivery: 20,
    retentionDays: 30,
  });
  assert.deepEqual(policyFromForm({ maxDeliveryBytes: '1000', retentionDays: '' }), { requireVerifiedSender: false, maxDeliveryBytes: 1000 });
  assert.ok(Number.isNaN(policyFromForm({ maxFiles: 'tjugo' }).maxFilesPerDelivery), 'left for the schema to refuse');
});

test('the exported key file is named after the mailbox in plain ASCII', () => {
  const id = crypto.randomUUID();
  assert.equal(keyExportFileName({ id, name: 'Remisser' }), 'inkast-remisser-keys.asc');
  assert.equal(keyExportFileName({ id, name: 'Röntgen & Lab "Syd"' }), 'inkast-rontgen-lab-syd-keys.asc');
  assert.equal(keyExportFileName({ id, name: '分' }), `inkast-${id}-keys.asc`);
});
