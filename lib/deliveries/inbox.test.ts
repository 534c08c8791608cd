/**
 * The handler's reading of deliveries, in process: deliveries are sent for real (encrypted files
 * through the tus handler, an encrypted manifest, the verify job), then read back as handlers.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { test } from 'node:test';
import { verifyAuditLog } from '@/lib/audit';
import { bootProcess } from '@/lib/boot';
import { encryptManifest, type Manifest } from '@/lib/crypto/manifest';
import { db } from '@/lib/db';
import { runJobsUntilIdle } from '@/lib/jobs';
import { addMember, createSharedMailbox, createUser, findUserByEmail, personalMailbox } from '@/lib/mailboxes';
import { useFreshProcessState } from '@/lib/testing/process';
import { databaseTargets } from '@/lib/testing/targets';
import { handleTusRequest, SENDER_TOKEN_HEADER, TUS_PATH } from '@/lib/uploads';
import { bufferSource, prepareFile } from '@/lib/uploads/client';
import { createDelivery, submitDelivery, type CreatedDelivery } from './index';
import { deliveryForUser, inboxFor, listMailboxDeliveries } from './inbox';

interface SentFile {
  name: string;
  type: string;
  data: Buffer;
}

function tus(d: CreatedDelivery, method: string, path: string, headers: Record<string, string>, body?: Uint8Array) {
  return handleTusRequest(
    new Request(`http://localhost:3000${path}`, {
      method,
      headers: { 'Tus-Resumable': '1.0.0', [SENDER_TOKEN_HEADER]: d.senderToken, ...headers },
      body,
      duplex: 'half',
    } as RequestInit),
  );
}

/** Encrypts and uploads each file as the browser would, one PATCH per file; returns the upload id. */
async function upload(d: CreatedDelivery, file: SentFile): Promise<string> {
  const { encoder } = await prepareFile(d, bufferSource(file.name, file.data, file.type));
  const created = await tus(d, 'POST', TUS_PATH, {
    'Upload-Length': String(encoder.totalLength),
    'Upload-Metadata': `deliveryId ${Buffer.from(d.deliveryId).toString('base64')}`,
  });
  assert.equal(created.status, 201, await created.text());
  const location = created.headers.get('location')!;
  const patched = await tus(
    d,
    'PATCH',
    location,
    { 'Upload-Offset': '0', 'Content-Type': 'application/offset+octet-stream' },
    await encoder.range(0, encoder.totalLength),
  );
  assert.equal(patched.status, 204, await patched.text());
  return location.split('/').pop()!;
}

async function submitManifest(d: CreatedDelivery, manifest: Manifest): Promise<void> {
  const bytes = await encryptManifest(manifest, d.publicKeys);
  await submitDelivery(d.deliveryId, d.senderToken, { manifest: Buffer.from(bytes).toString('base64') });
  await runJobsUntilIdle();
}

/** A whole delivery to the mailbox behind `slug`, verified by the job; returns its id. */
async function send(slug: string, subject: string, message: string, files: SentFile[]): Promise<string> {
  const d = await createDelivery({ slug, senderEmail: 'avsandare@example.se', locale: 'sv' });
  const entries: Manifest['files'] = [];
  for (const f of files) {
    const uploadId = await upload(d, f);
    entries.push({ uploadId, name: f.name, type: f.type, size: f.data.length, sha256: sha256(f.data) });
  }
  await submitManifest(d, { version: 1, subject, message, files: entries });
  return d.deliveryId;
}

const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
const file = (name: string, size: number, type = 'application/pdf'): SentFile => ({ name, type, data: crypto.randomBytes(size) });

async function stateOf(deliveryId: string): Promise<string> {
  return (await (await db()).query<{ state: string }>('SELECT state FROM deliveries WHERE id = $1', [deliveryId])).rows[0].state;
}

for (const target of await databaseTargets()) {
  test(`the handler's inbox on ${target.name}`, async (t) => {
    const url = await target.freshDatabase();
    await useFreshProcessState(url ? { DATABASE_URL: url } : {});
    await bootProcess({ worker: false });
    const q = await db();

    const admin = (await findUserByEmail('admin@inkast.localhost'))!;
    const adminBox = (await personalMailbox(admin.id))!;
    const { user: anna } = await createUser({ email: 'anna@region.se', displayName: 'Anna Andersson' });
    const { user: bo } = await createUser({ email: 'bo@region.se', displayName: 'Bo Berg' });
    const { user: outsider } = await createUser({ email: 'eva@annan.se', displayName: 'Eva Ek' });
    const shared = await createSharedMailbox({ name: 'Remisser', functionalEmail: 'remisser@region.se' });
    await addMember(shared.id, anna.id);
    await addMember(shared.id, bo.id);

    const subjects = ['Remiss 1', 'Remiss 2', 'Remiss 3', 'Remiss 4', 'Remiss 5'];
    const sharedIds: string[] = [];
    for (const s of subjects) sharedIds.push(await send(shared.filedrop_slug, s, `Meddelande om ${s}`, [file(`${s}.pdf`, 1000)]));
    for (const id of sharedIds) assert.equal(await stateOf(id), 'delivered');

    const files = [file('röntgen <bild>.dcm', 70_000, 'application/dicom'), file('labbsvar.txt', 300, 'text/plain')];
    const personalId = await send(adminBox.filedrop_slug, 'Journalkopia', 'Hej!\nSe bifogade filer.\n<b>inte fetstil</b>', files);

    await t.test('the inbox lists the user’s own mailboxes, personal first, with what is new to them', async () => {
      assert.deepEqual(await inboxFor(anna.id), [
        { id: (await personalMailbox(anna.id))!.id, kind: 'personal', name: 'Anna Andersson', newCount: 0 },
        { id: shared.id, kind: 'shared', name: 'Remisser', newCount: 5 },
      ]);
      assert.deepEqual(
        (await inboxFor(admin.id)).map((m) => [m.name, m.newCount]),
        [['Administrator', 1]],
      );
      assert.deepEqual((await inboxFor(outsider.id)).map((m) => m.kind), ['personal']);
    });

    await t.test('deliveries come newest first, a page at a time, with decrypted subjects', async () => {
      const first = (await listMailboxDeliveries(anna.id, shared.id, { page: 1, pageSize: 2 }))!;
      assert.deepEqual(first.mailbox, { id: shared.id, kind: 'shared', name: 'Remisser' });
      assert.deepEqual([first.total, first.pageCount, first.page, first.pageSize], [5, 3, 1, 2]);
      assert.deepEqual(first.deliveries.map((d) => d.subject), ['Remiss 5', 'Remiss 4']);
      const second = (await listMailboxDeliveries(anna.id, shared.id, { page: 2, pageSize: 2 }))!;
      assert.deepEqual(second.deliveries.map((d) => d.subject), ['Remiss 3', 'Remiss 2']);
      const beyond = (await listMailboxDeliveries(anna.id, shared.id, { page: 99, pageSize: 2 }))!;
      assert.equal(beyond.page, 3, 'a page past the end shows the last one');
      assert.deepEqual(beyond.deliveries.map((d) => d.subject), ['Remiss 1']);
      const all = (await listMailboxDeliveries(anna.id, shared.id))!.deliveries;
      const times = all.map((d) => d.receivedAt.getTime());
      assert.deepEqual(times, [...times].sort((a, b) => b - a));

      const [newest] = first.deliveries;
      assert.equal(newest.id, sharedIds[4]);
      assert.match(newest.reference, /^IK-/);
      assert.deepEqual(
        { ...newest, id: undefined, reference: undefined, receivedAt: undefined },
        {
          id: undefined,
          reference: undefined,
          receivedAt: undefined,
          senderEmail: 'avsandare@example.se',
          senderVerified: false,
          subject: 'Remiss 5',
          fileCount: 1,
          totalBytes: 1000,
          state: 'delivered',
          rejectReason: null,
          downloadedBy: [],
          viewedByMe: false,
        },
      );
    });

    await t.test('membership is checked on every call: outsiders, removed and disabled members get nothing', async () => {
      assert.equal(await listMailboxDeliveries(outsider.id, shared.id), null);
      assert.equal(await listMailboxDeliveries(outsider.id, adminBox.id), null);
      assert.equal(await deliveryForUser(outsider.id, sharedIds[0]), null);
      assert.equal(await deliveryForUser(anna.id, personalId), null, 'a personal mailbox is its owner’s alone');

      await q.query('DELETE FROM mailbox_members WHERE mailbox_id = $1 AND user_id = $2', [shared.id, bo.id]);
      assert.equal(await listMailboxDeliveries(bo.id, shared.id), null);
      assert.equal(await deliveryForUser(bo.id, sharedIds[0]), null);
      await addMember(shared.id, bo.id);
      assert.notEqual(await listMailboxDeliveries(bo.id, shared.id), null);

      await q.query('UPDATE users SET disabled_at = now() WHERE id = $1', [bo.id]);
      assert.equal(await listMailboxDeliveries(bo.id, shared.id), null);
      assert.equal(await deliveryForUser(bo.id, sharedIds[0]), null);
      await q.query('UPDATE users SET disabled_at = NULL WHERE id = $1', [bo.id]);

      const views = await q.query('SELECT 1 FROM delivery_views WHERE user_id IN ($1, $2, $3)', [outsider.id, anna.id, bo.id]);
      assert.equal(views.rows.length, 0, 'a refused read records no view');
      for (const bad of ['', 'x', '../etc', `${sharedIds[0]}x`]) {
        assert.equal(await deliveryForUser(anna.id, bad), null);
        assert.equal(await listMailboxDeliveries(anna.id, bad), null);
      }
    });

    await t.test('the delivery page gets subject, message and files, and the view is recorded and audited', async () => {
      const d = (await deliveryForUser(admin.id, personalId))!;
      assert.equal(d.subject, 'Journalkopia');
      assert.equal(d.message, 'Hej!\nSe bifogade filer.\n<b>inte fetstil</b>');
      assert.deepEqual(d.mailbox, { id: adminBox.id, name: 'Administrator' });
      assert.equal(d.state, 'delivered');
      assert.deepEqual(
        d.files.map((f) => ({ name: f.name, type: f.type, size: f.size, sha256: f.sha256, position: f.position, downloads: f.downloads })),
        files.map((f, position) => ({ name: f.name, type: f.type, size: f.data.length, sha256: sha256(f.data), position, downloads: [] })),
      );

      assert.deepEqual((await inboxFor(admin.id)).map((m) => m.newCount), [0]);
      await deliveryForUser(admin.id, personalId); // a second look is audited again, the view kept once
      const views = await q.query('SELECT 1 FROM delivery_views WHERE delivery_id = $1', [personalId]);
      assert.equal(views.rows.length, 1);
      const entries = (
        await q.query<{ actor: string; target: string; detail: unknown }>(
          `SELECT actor, target, detail FROM audit_log WHERE action = 'delivery.viewed' ORDER BY id`,
        )
      ).rows;
      assert.deepEqual(entries, [
        { actor: `user:${admin.id}`, target: `delivery:${personalId}`, detail: { mailboxId: adminBox.id } },
        { actor: `user:${admin.id}`, target: `delivery:${personalId}`, detail: { mailboxId: adminBox.id } },
      ]);
      // The delivery's whole trail, from the sender's start to the handler's looks.
      const trail = (
        await q.query<{ actor: string; action: string }>(`SELECT actor, action FROM audit_log WHERE target = $1 ORDER BY id`, [`delivery:${personalId}`])
      ).rows;
      assert.deepEqual(
        trail.map((e) => e.action),
        ['delivery.created', 'delivery.submitted', 'delivery.delivered', 'delivery.viewed', 'delivery.viewed'],
      );
      assert.match(trail[0].actor, /^sender:/);
      assert.equal(trail[2].actor, 'system');
      const all = Number((await q.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_log')).rows[0].n);
      assert.deepEqual(await verifyAuditLog(q), { ok: true, entries: all });
    });

    await t.test('a view is per handler: one member opening a shared delivery leaves it new for the others', async () => {
      await deliveryForUser(anna.id, sharedIds[2]);
      assert.equal((await inboxFor(anna.id))[1].newCount, 4);
      assert.equal((await inboxFor(bo.id))[1].newCount, 5);
      const page = (await listMailboxDeliveries(anna.id, shared.id))!;
      assert.deepEqual(
        page.deliveries.filter((d) => d.viewedByMe).map((d) => d.id),
        [sharedIds[2]],
      );
    });

    await t.test('downloads show who fetched which file and when, in the list and on the delivery', async () => {
      const d = (await deliveryForUser(admin.id, personalId))!;
      const [first, second] = d.files;
      await q.query(`INSERT INTO downloads (delivery_file_id, user_id, at) VALUES ($1, $2, now() - interval '1 hour')`, [first.id, admin.id]);
      await q.query(`INSERT INTO downloads (delivery_file_id, user_id, at) VALUES ($1, $2, now())`, [first.id, admin.id]);
      await q.query(`INSERT INTO downloads (delivery_file_id, user_id, at) VALUES ($1, $2, now())`, [second.id, admin.id]);

      const again = (await deliveryForUser(admin.id, personalId))!;
      assert.deepEqual(again.files[0].downloads.map((dl) => dl.by), [
        { name: 'Administrator', email: 'admin@inkast.localhost' },
        { name: 'Administrator', email: 'admin@inkast.localhost' },
      ]);
      assert.ok(again.files[0].downloads[0].at < again.files[0].downloads[1].at);
      assert.equal(again.files[1].downloads.length, 1);
      const listed = (await listMailboxDeliveries(admin.id, adminBox.id))!.deliveries[0];
      assert.deepEqual(listed.downloadedBy, [{ name: 'Administrator', email: 'admin@inkast.localhost' }], 'each person once');
      assert.equal(listed.totalBytes, files[0].data.length + files[1].data.length);
      assert.equal(listed.fileCount, 2);
    });

    await t.test('a rejected delivery is listed marked, without files; one still uploading is not shown at all', async () => {
      const d = await createDelivery({ slug: shared.filedrop_slug, senderEmail: 'avsandare@example.se' });
      const uploaded = file('fel.pdf', 500);
      const uploadId = await upload(d, uploaded);
      await submitManifest(d, {
        version: 1,
        subject: 'Fel fil',
        message: '',
        files: [{ uploadId: `${uploadId}-other`, name: 'fel.pdf', type: 'application/pdf', size: 500, sha256: sha256(uploaded.data) }],
      });
      assert.equal(await stateOf(d.deliveryId), 'rejected');
      const open = await createDelivery({ slug: shared.filedrop_slug, senderEmail: 'avsandare@example.se' });
      await upload(open, file('halv.pdf', 100));

      const page = (await listMailboxDeliveries(anna.id, shared.id))!;
      assert.equal(page.total, 6);
      const rejected = page.deliveries[0];
      assert.deepEqual(
        [rejected.id, rejected.state, rejected.rejectReason, rejected.subject, rejected.totalBytes],
        [d.deliveryId, 'rejected', 'manifest-mismatch', 'Fel fil', null],
      );
      assert.ok(!page.deliveries.some((x) => x.id === open.deliveryId));
      assert.equal((await inboxFor(anna.id))[1].newCount, 4, 'a rejected delivery is not new mail');

      const detail = (await deliveryForUser(anna.id, d.deliveryId))!;
      assert.deepEqual([detail.state, detail.rejectReason, detail.files], ['rejected', 'manifest-mismatch', []]);
      assert.equal(await deliveryForUser(anna.id, open.deliveryId), null);
    });
  });
}
