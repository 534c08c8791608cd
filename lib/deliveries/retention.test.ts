/**
 * Retention and deletion in process: the job deletes deliveries past their mailbox's retention
 * (objects from the store, rows by cascade), leaves a content-free tombstone in the audit log and
 * keeps the chain intact; a handler may delete sooner, others may not.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { verifyAuditLog } from '@/lib/audit';
import { bootProcess } from '@/lib/boot';
import { db } from '@/lib/db';
import { enqueue, runJobsUntilIdle } from '@/lib/jobs';
import { createSharedMailbox, createUser, addMember } from '@/lib/mailboxes';
import { objectStore } from '@/lib/storage';
import { useFreshProcessState } from '@/lib/testing/process';
import { deleteDelivery, DeletionError, RETENTION_JOB, runRetention } from './retention';

const DAY = 86_400_000;

async function keysInStore(): Promise<string[]> {
  const keys: string[] = [];
  for await (const k of objectStore().listKeys()) keys.push(k);
  return keys.sort();
}

interface Made {
  id: string;
  reference: string;
  uploads: string[];
}

test('retention and deletion', async (t) => {
  const { dataDir } = await useFreshProcessState();
  await bootProcess({ worker: false });
  const q = await db();
  const short = await createSharedMailbox({ name: 'Short retention' }); // 30 days (the default)
  const long = await createSharedMailbox({ name: 'Long retention' });
  await q.query('UPDATE mailboxes SET retention_days = 90 WHERE id = $1', [long.id]);
  const { user: handler } = await createUser({ email: 'handler@example.org', displayName: 'Handler' });
  const { user: outsider } = await createUser({ email: 'outsider@example.org', displayName: 'Outsider' });
  await addMember(short.id, handler.id);
  const objectsDir = path.join(dataDir, 'objects');

  /** A delivery with two uploaded objects (and tus sidecars), a download and a view. */
  async function make(mailboxId: string, state: string, ageDays: number): Promise<Made> {
    const at = new Date(Date.now() - ageDays * DAY);
    const reference = `REF-${crypto.randomBytes(4).toString('hex')}`;
    const d = (
      await q.query<{ id: string }>(
        `INSERT INTO deliveries (mailbox_id, reference, sender_email, state, sender_token_hash, upload_expires_at, max_bytes, max_files,
                                 created_at, submitted_at, delivered_at)
         VALUES ($1, $2, 'sender@example.org', $3, $4, $5, 1000, 10, $5, $6, $7) RETURNING id`,
        [
          mailboxId,
          reference,
          state,
          crypto.randomBytes(32),
          at,
          ['submitted', 'delivered', 'rejected'].includes(state) ? at : null,
          state === 'delivered' ? at : null,
        ],
      )
    ).rows[0];
    const uploads: string[] = [];
    for (let i = 0; i < 2; i++) {
      const uploadId = crypto.randomBytes(16).toString('hex');
      fs.writeFileSync(path.join(objectsDir, uploadId), crypto.randomBytes(100));
      fs.writeFileSync(path.join(objectsDir, `${uploadId}.json`), '{}');
      const f = (
        await q.query<{ id: string }>(
          `INSERT INTO delivery_files (delivery_id, upload_id, ciphertext_size, state) VALUES ($1, $2, 100, 'verified') RETURNING id`,
          [d.id, uploadId],
        )
      ).rows[0];
      if (i === 0) await q.query('INSERT INTO downloads (delivery_file_id, user_id) VALUES ($1, $2)', [f.id, handler.id]);
      uploads.push(uploadId);
    }
    await q.query('INSERT INTO delivery_views (delivery_id, user_id) VALUES ($1, $2)', [d.id, handler.id]);
    return { id: d.id, reference, uploads };
  }

  const rowsOf = async (m: Made) => ({
    deliveries: (await q.query('SELECT 1 FROM deliveries WHERE id = $1', [m.id])).rows.length,
    files: (await q.query('SELECT 1 FROM delivery_files WHERE upload_id = ANY($1)', [m.uploads])).rows.length,
    downloads: (await q.query('SELECT 1 FROM downloads dl JOIN delivery_files f ON f.id = dl.delivery_file_id WHERE f.upload_id = ANY($1)', [m.uploads])).rows.length,
    views: (await q.query('SELECT 1 FROM delivery_views WHERE delivery_id = $1', [m.id])).rows.length,
  });

  await t.test('the job deletes what is past retention, objects and rows, and leaves a tombstone', async () => {
    const expired = [await make(short.id, 'delivered', 40), await make(short.id, 'rejected', 35), await make(short.id, 'abandoned', 31)];
    const kept = [
      await make(short.id, 'delivered', 10),
      await make(long.id, 'delivered', 40),
      await make(short.id, 'uploading', 40),
      await make(short.id, 'submitted', 40),
    ];
    const allKeys = await keysInStore();
    for (const m of [...expired, ...kept]) for (const u of m.uploads) assert.ok(allKeys.includes(u) && allKeys.includes(`${u}.json`));

    await enqueue(q, RETENTION_JOB, {});
    assert.equal(await runJobsUntilIdle(), 1);
    assert.equal((await q.query<{ state: string }>('SELECT state FROM jobs WHERE kind = $1', [RETENTION_JOB])).rows[0].state, 'done');

    const keys = await keysInStore();
    for (const m of expired) {
      for (const u of m.uploads) assert.ok(!keys.some((k) => k.startsWith(u)), `object ${u} and its sidecar are gone`);
      assert.deepEqual(await rowsOf(m), { deliveries: 0, files: 0, downloads: 0, views: 0 });
      const tomb = (
        await q.query<{ actor: string; target: string; detail: Record<string, unknown> }>(
          `SELECT actor, target, detail FROM audit_log WHERE action = 'delivery.deleted' AND target = $1`,
          [`delivery:${m.id}`],
        )
      ).rows;
      assert.equal(tomb.length, 1);
      assert.equal(tomb[0].actor, 'system');
      assert.equal(tomb[0].detail.reference, m.reference);
      assert.equal(tomb[0].detail.mailbox, short.id);
      assert.equal(tomb[0].detail.fileCount, 2);
      assert.equal(tomb[0].detail.downloadCount, 1);
      assert.equal(tomb[0].detail.viewCount, 1);
      assert.equal(tomb[0].detail.reason, 'retention');
      assert.ok(!JSON.stringify(tomb[0]).includes('sender@example.org'), 'no sender in the tombstone');
    }
    for (const m of kept) {
      for (const u of m.uploads) assert.ok(keys.includes(u), `object ${u} is kept`);
      assert.deepEqual(await rowsOf(m), { deliveries: 1, files: 2, downloads: 1, views: 1 });
    }
    assert.deepEqual(await runRetention(), [], 'a second run finds nothing');
    const v = await verifyAuditLog(q);
    assert.equal(v.ok, true, JSON.stringify(v));
  });

  await t.test('a retention change applies on the next run', async () => {
    const m = await make(long.id, 'delivered', 20);
    assert.equal((await runRetention()).length, 0);
    await q.query('UPDATE mailboxes SET retention_days = 14 WHERE id = $1', [long.id]);
    const deleted = await runRetention();
    assert.ok(deleted.some((d) => d.deliveryId === m.id));
    assert.equal((await rowsOf(m)).deliveries, 0);
  });

  await t.test('a handler deletes a delivery of their mailbox; others and open deliveries are refused', async () => {
    const m = await make(short.id, 'delivered', 1);
    const refused = async (p: Promise<unknown>, status: number, code: string) =>
      assert.rejects(p, (err: unknown) => err instanceof DeletionError && err.status === status && err.code === code);
    await refused(deleteDelivery(m.id, `user:${outsider.id}`), 404, 'unknown-delivery');
    await refused(deleteDelivery(m.id, 'someone'), 404, 'unknown-delivery');
    await refused(deleteDelivery(crypto.randomUUID(), `user:${handler.id}`), 404, 'unknown-delivery');
    await refused(deleteDelivery('not-a-uuid', 'system'), 404, 'unknown-delivery');
    const open = await make(short.id, 'uploading', 0);
    await refused(deleteDelivery(open.id, `user:${handler.id}`), 409, 'delivery-in-progress');
    assert.equal((await rowsOf(m)).deliveries, 1, 'nothing deleted by a refusal');

    const deleted = await deleteDelivery(m.id, `user:${handler.id}`);
    assert.deepEqual(deleted, { deliveryId: m.id, reference: m.reference, mailboxId: short.id, files: 2, downloads: 1, views: 1 });
    const keys = await keysInStore();
    for (const u of m.uploads) assert.ok(!keys.some((k) => k.startsWith(u)));
    assert.deepEqual(await rowsOf(m), { deliveries: 0, files: 0, downloads: 0, views: 0 });
    const tomb = (await q.query<{ actor: string; detail: Record<string, unknown> }>(`SELECT actor, detail FROM audit_log WHERE target = $1`, [`delivery:${m.id}`])).rows;
    assert.equal(tomb[0].actor, `user:${handler.id}`);
    assert.equal(tomb[0].detail.reason, 'handler');
    await refused(deleteDelivery(m.id, `user:${handler.id}`), 404, 'unknown-delivery');
    const v = await verifyAuditLog(q);
    assert.equal(v.ok, true, JSON.stringify(v));
  });
});
