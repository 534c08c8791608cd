/**
 * The delivery lifecycle in process, against the tus handler itself: abandoned uploads are
 * cleaned up (and the deletion audited), bad submissions are refused, bad manifests reject the
 * delivery and tell the sender.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { test } from 'node:test';
import { encryptManifest } from '@/lib/crypto/manifest';
import { db } from '@/lib/db';
import { runJobsUntilIdle } from '@/lib/jobs';
import { objectStore } from '@/lib/storage';
import { useFreshProcessState } from '@/lib/testing/process';
import { s3AppEnv } from '@/lib/testing/inspect';
import { s3Settings } from '@/lib/testing/targets';
import { handleTusRequest, SENDER_TOKEN_HEADER } from '@/lib/uploads';
import { bootProcess } from '@/lib/boot';
import { cancelDelivery, createDelivery, DeliveryError, expireAbandonedDeliveries, submitDelivery, type CreatedDelivery } from './index';

const s3 = await s3Settings();
const stores: { name: string; env: () => Promise<Record<string, string>> }[] = [{ name: 'local objects', env: async () => ({}) }];
if (s3) stores.push({ name: 'Ceph RGW', env: () => s3AppEnv(s3) });

function tus(method: string, path: string, d: CreatedDelivery, headers: Record<string, string> = {}, body?: Uint8Array) {
  return handleTusRequest(
    new Request(`http://localhost:3000${path}`, {
      method,
      headers: { 'Tus-Resumable': '1.0.0', [SENDER_TOKEN_HEADER]: d.senderToken, ...headers },
      body,
      duplex: 'half',
    } as RequestInit),
  );
}

/** Creates an upload of `length` bytes and writes the first `written` (random: the server cannot tell). */
async function partialUpload(d: CreatedDelivery, length: number, written: number): Promise<string> {
  const created = await tus('POST', '/api/tus', d, {
    'Upload-Length': String(length),
    'Upload-Metadata': `deliveryId ${Buffer.from(d.deliveryId).toString('base64')}`,
  });
  assert.equal(created.status, 201, await created.text());
  const location = created.headers.get('location')!;
  const patched = await tus('PATCH', location, d, { 'Upload-Offset': '0', 'Content-Type': 'application/offset+octet-stream' }, crypto.randomBytes(written));
  assert.equal(patched.status, 204, await patched.text());
  return location.split('/').pop()!;
}

async function keysInStore(): Promise<string[]> {
  const keys: string[] = [];
  for await (const k of objectStore().listKeys()) keys.push(k);
  return keys;
}

for (const store of stores) {
  test(`delivery lifecycle on ${store.name}`, async (t) => {
    await useFreshProcessState(await store.env());
    await bootProcess({ worker: false });
    const mailbox = (await (await db()).query<{ id: string; filedrop_slug: string }>('SELECT id, filedrop_slug FROM mailboxes')).rows[0];
    const slug = mailbox.filedrop_slug;
    const open = () => createDelivery({ slug, senderEmail: 'Sender@Example.org', locale: 'en' });
    const auditOf = async (deliveryId: string) =>
      (await (await db()).query('SELECT actor, action, detail FROM audit_log WHERE target = $1 ORDER BY id', [`delivery:${deliveryId}`])).rows;

    await t.test('an abandoned upload is deleted with its parts by the expiry job', async () => {
      const d = await open();
      const big = await partialUpload(d, 20 * 1024 * 1024, 9 * 1024 * 1024);
      const small = await partialUpload(d, 1000, 10);
      assert.ok((await keysInStore()).some((k) => k.startsWith(big)), 'the partial upload is stored');
      await (await db()).query(`UPDATE deliveries SET upload_expires_at = now() - interval '1 minute' WHERE id = $1`, [d.deliveryId]);
      assert.equal(await expireAbandonedDeliveries(), 1);
      const left = (await keysInStore()).filter((k) => k.startsWith(big) || k.startsWith(small));
      assert.deepEqual(left, [], 'no object, part or sidecar is left');
      const row = (await (await db()).query<{ state: string }>('SELECT state FROM deliveries WHERE id = $1', [d.deliveryId])).rows[0];
      assert.equal(row.state, 'abandoned');
      const files = await (await db()).query('SELECT 1 FROM delivery_files WHERE delivery_id = $1', [d.deliveryId]);
      assert.equal(files.rows.length, 0);
      const late = await tus('HEAD', `/api/tus/${small}`, d);
      assert.equal(late.status, 404, 'the sender cannot write to an expired delivery');
      assert.deepEqual(await auditOf(d.deliveryId), [
        { actor: 'sender:sender@example.org', action: 'delivery.created', detail: { mailbox: mailbox.id, senderVerified: false } },
        { actor: 'system', action: 'delivery.abandoned', detail: { mailbox: mailbox.id, reason: 'expired', fileCount: 2 } },
      ]);
    });

    await t.test('a file the sender removes, finished or not, is gone from storage and database', async () => {
      const d = await open();
      const unfinished = await partialUpload(d, 5000, 100);
      const finished = await partialUpload(d, 100, 100);
      for (const id of [unfinished, finished]) {
        const res = await tus('DELETE', `/api/tus/${id}`, d);
        assert.equal(res.status, 204);
      }
      await new Promise((r) => setTimeout(r, 200)); // the row goes in the termination event
      assert.deepEqual((await keysInStore()).filter((k) => k.startsWith(unfinished) || k.startsWith(finished)), []);
      const rows = await (await db()).query('SELECT 1 FROM delivery_files WHERE delivery_id = $1', [d.deliveryId]);
      assert.equal(rows.rows.length, 0);
    });

    await t.test('a cancelled delivery keeps nothing and takes no more uploads', async () => {
      const d = await open();
      const ids = [await partialUpload(d, 5000, 100), await partialUpload(d, 100, 100)];
      await assert.rejects(cancelDelivery(d.deliveryId, 'wrong-token'), (e: DeliveryError) => e.status === 404);
      await cancelDelivery(d.deliveryId, d.senderToken);
      await cancelDelivery(d.deliveryId, d.senderToken); // a retried cancel is fine
      assert.deepEqual(
        await auditOf(d.deliveryId),
        [
          { actor: 'sender:sender@example.org', action: 'delivery.created', detail: { mailbox: mailbox.id, senderVerified: false } },
          { actor: 'sender:sender@example.org', action: 'delivery.abandoned', detail: { mailbox: mailbox.id, reason: 'cancelled', fileCount: 2 } },
        ],
        'the deletion is audited once',
      );
      assert.deepEqual((await keysInStore()).filter((k) => ids.some((id) => k.startsWith(id))), []);
      const row = (await (await db()).query<{ state: string }>('SELECT state FROM deliveries WHERE id = $1', [d.deliveryId])).rows[0];
      assert.equal(row.state, 'abandoned');
      const late = await tus('POST', '/api/tus', d, {
        'Upload-Length': '10',
        'Upload-Metadata': `deliveryId ${Buffer.from(d.deliveryId).toString('base64')}`,
      });
      assert.equal(late.status, 409);
    });

    await t.test('submitting without a finished file, or twice, is refused', async () => {
      const d = await open();
      await partialUpload(d, 5000, 100);
      const manifest = { manifest: Buffer.from('x').toString('base64') };
      await assert.rejects(submitDelivery(d.deliveryId, d.senderToken, manifest), (e: DeliveryError) => e.status === 409 && e.code === 'no-files');
      await assert.rejects(submitDelivery(d.deliveryId, 'wrong-token', manifest), (e: DeliveryError) => e.status === 404);
      await assert.rejects(submitDelivery(d.deliveryId, d.senderToken, { manifest: '***' }), (e: DeliveryError) => e.status === 400);
    });

    await t.test('a finished upload whose completion was not recorded (database blip) survives submit', async () => {
      const d = await open();
      const done = await partialUpload(d, 300, 300);
      const gone = await partialUpload(d, 300, 100);
      await (await db()).query(`UPDATE delivery_files SET state = 'uploading' WHERE upload_id = $1`, [done]);
      await submitDelivery(d.deliveryId, d.senderToken, { manifest: crypto.randomBytes(100).toString('base64') });
      const rows = (await (await db()).query<{ upload_id: string; state: string }>('SELECT upload_id, state FROM delivery_files WHERE delivery_id = $1', [d.deliveryId])).rows;
      assert.deepEqual(rows, [{ upload_id: done, state: 'uploaded' }], 'the finished upload is kept, the unfinished one dropped');
      assert.equal(await objectStore().size(done), 300);
      assert.deepEqual((await keysInStore()).filter((k) => k.startsWith(gone)), []);
    });

    await t.test('a manifest that does not match the uploads rejects the delivery and tells the sender', async () => {
      const d = await open();
      const id = await partialUpload(d, 100, 100);
      const manifest = await encryptManifest(
        { version: 1, subject: 'SUBJECT-X', message: 'MESSAGE-X', files: [{ uploadId: 'not-' + id, name: 'a.pdf', type: 'application/pdf', size: 1, sha256: '0'.repeat(64) }] },
        d.publicKeys,
      );
      assert.equal(await submitDelivery(d.deliveryId, d.senderToken, { manifest: Buffer.from(manifest).toString('base64') }), 'submitted');
      await assert.rejects(submitDelivery(d.deliveryId, d.senderToken, { manifest: Buffer.from(manifest).toString('base64') }), (e: DeliveryError) => e.status === 409);
      await runJobsUntilIdle();
      const q = await db();
      const row = (await q.query<{ state: string; reject_reason: string }>('SELECT state, reject_reason FROM deliveries WHERE id = $1', [d.deliveryId])).rows[0];
      assert.deepEqual(row, { state: 'rejected', reject_reason: 'manifest-mismatch' });
      const mail = (
        await q.query<{ to_address: string; text_body: string; state: string }>(
          `SELECT to_address, text_body, state FROM outbox WHERE template = 'delivery-rejected' AND position($1 in text_body) > 0`,
          [d.reference],
        )
      ).rows;
      assert.equal(mail.length, 1);
      assert.equal(mail[0].to_address, 'sender@example.org');
      assert.ok(mail[0].text_body.includes(d.reference));
      assert.ok(!mail[0].text_body.includes('SUBJECT-X') && !mail[0].text_body.includes('a.pdf'));
      assert.deepEqual(await auditOf(d.deliveryId), [
        { actor: 'sender:sender@example.org', action: 'delivery.created', detail: { mailbox: mailbox.id, senderVerified: false } },
        { actor: 'sender:sender@example.org', action: 'delivery.submitted', detail: { fileCount: 1 } },
        { actor: 'system', action: 'delivery.rejected', detail: { reason: 'manifest-mismatch' } },
      ]);
    });

    await t.test('a manifest the mailbox key cannot read rejects the delivery', async () => {
      const d = await open();
      await partialUpload(d, 100, 100);
      await submitDelivery(d.deliveryId, d.senderToken, { manifest: crypto.randomBytes(300).toString('base64') });
      await runJobsUntilIdle();
      const row = (await (await db()).query<{ reject_reason: string }>('SELECT reject_reason FROM deliveries WHERE id = $1', [d.deliveryId])).rows[0];
      assert.equal(row.reject_reason, 'manifest-unreadable');
    });
  });
}
