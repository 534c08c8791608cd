/**
 * Retention: deliveries are deleted once their mailbox's retention_days have passed — delivered
 * ones counted from delivery, rejected ones from submission, abandoned ones from creation — and a
 * handler may delete one sooner. Deleting removes the stored objects (with tus's sidecars) and the
 * rows (files, downloads and views go by cascade), and leaves only an audit tombstone naming the
 * reference, the mailbox and counts: no sender, no name, no content.
 *
 * Objects go first, rows after: a failure in between leaves the row, and the next run (deletion is
 * idempotent in the store) finishes the job. Deliveries still uploading or being verified are
 * never deleted here (the expiry job and the verifier own them).
 */
import { audit } from '@/lib/audit';
import { db, type Queryable } from '@/lib/db';
import { registerJobHandler } from '@/lib/jobs';
import { objectStore } from '@/lib/storage';

export const RETENTION_JOB = 'delete-expired-deliveries';
/** Deliveries deleted per run; a longer backlog continues in the next period. */
const BATCH = 200;

export class DeletionError extends Error {
  constructor(
    readonly status: 403 | 404 | 409,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface DeletedDelivery {
  deliveryId: string;
  reference: string;
  mailboxId: string;
  files: number;
  downloads: number;
  views: number;
}

const DELETABLE = ['delivered', 'rejected', 'abandoned'];

/**
 * Deletes one delivery and its objects. `actor` is `system` (retention) or `user:<id>`, who must
 * be an enabled member of the delivery's mailbox. Refused (409) while it is uploading or submitted.
 */
export async function deleteDelivery(
  deliveryId: string,
  actor: string,
  reason: 'retention' | 'handler' = actor === 'system' ? 'retention' : 'handler',
): Promise<DeletedDelivery> {
  const q = await db();
  if (!/^[0-9a-f-]{36}$/i.test(deliveryId)) throw new DeletionError(404, 'unknown-delivery', 'No such delivery');
  const d = (
    await q.query<{ id: string; mailbox_id: string; state: string }>('SELECT id, mailbox_id, state FROM deliveries WHERE id = $1', [
      deliveryId,
    ])
  ).rows[0];
  if (!d) throw new DeletionError(404, 'unknown-delivery', 'No such delivery');
  if (actor !== 'system') {
    const userId = /^user:([0-9a-f-]{36})$/i.exec(actor)?.[1];
    const member =
      userId &&
      (
        await q.query(
          `SELECT 1 FROM mailbox_members mm JOIN users u ON u.id = mm.user_id
           WHERE mm.user_id = $1 AND mm.mailbox_id = $2 AND u.disabled_at IS NULL`,
          [userId, d.mailbox_id],
        )
      ).rows.length > 0;
    // Same answer as an unknown delivery: a non-member learns nothing of it.
    if (!member) throw new DeletionError(404, 'unknown-delivery', 'No such delivery');
  }
  if (!DELETABLE.includes(d.state)) {
    throw new DeletionError(409, 'delivery-in-progress', `The delivery is ${d.state}; it can be deleted once it is delivered or rejected`);
  }
  const uploads = (
    await q.query<{ upload_id: string }>('SELECT upload_id FROM delivery_files WHERE delivery_id = $1', [deliveryId])
  ).rows.map((r) => r.upload_id);
  const store = objectStore();
  for (const uploadId of uploads) await store.delete(uploadId);
  return q.transaction(async (tx: Queryable) => {
    const counts = (
      await tx.query<{ reference: string; mailbox_id: string; state: string; files: number; downloads: number; views: number }>(
        `SELECT d.reference, d.mailbox_id, d.state,
                (SELECT count(*)::int FROM delivery_files f WHERE f.delivery_id = d.id) AS files,
                (SELECT count(*)::int FROM downloads dl JOIN delivery_files f ON f.id = dl.delivery_file_id WHERE f.delivery_id = d.id) AS downloads,
                (SELECT count(*)::int FROM delivery_views v WHERE v.delivery_id = d.id) AS views
           FROM deliveries d WHERE d.id = $1 FOR UPDATE OF d`,
        [deliveryId],
      )
    ).rows[0];
    if (!counts) throw new DeletionError(404, 'unknown-delivery', 'No such delivery');
    if (!DELETABLE.includes(counts.state)) throw new DeletionError(409, 'delivery-in-progress', `The delivery is ${counts.state}`);
    // Files added after the objects went (none should be: the delivery is closed) are deleted too.
    const late = (
      await tx.query<{ upload_id: string }>('SELECT upload_id FROM delivery_files WHERE delivery_id = $1', [deliveryId])
    ).rows.filter((r) => !uploads.includes(r.upload_id));
    for (const r of late) await store.delete(r.upload_id);
    await tx.query('DELETE FROM deliveries WHERE id = $1', [deliveryId]);
    const deleted: DeletedDelivery = {
      deliveryId,
      reference: counts.reference,
      mailboxId: counts.mailbox_id,
      files: Number(counts.files),
      downloads: Number(counts.downloads),
      views: Number(counts.views),
    };
    await audit(tx, {
      actor,
      action: 'delivery.deleted',
      target: `delivery:${deliveryId}`,
      detail: {
        reference: deleted.reference,
        mailbox: deleted.mailboxId,
        state: counts.state,
        reason,
        fileCount: deleted.files,
        downloadCount: deleted.downloads,
        viewCount: deleted.views,
      },
    });
    return deleted;
  });
}

/** The deliveries past their mailbox's retention at `now`, oldest first. */
export async function expiredDeliveries(now = new Date(), limit = BATCH): Promise<string[]> {
  return (
    await (await db()).query<{ id: string }>(
      `SELECT d.id FROM deliveries d JOIN mailboxes m ON m.id = d.mailbox_id
        WHERE CASE d.state
                WHEN 'delivered' THEN coalesce(d.delivered_at, d.submitted_at, d.created_at)
                WHEN 'rejected' THEN coalesce(d.submitted_at, d.created_at)
                WHEN 'abandoned' THEN d.created_at
              END < $1::timestamptz - make_interval(days => m.retention_days)
        ORDER BY d.created_at LIMIT ${Number(limit)}`,
      [now],
    )
  ).rows.map((r) => r.id);
}

/** One retention run: deletes what has expired at `now`; returns what was deleted. */
export async function runRetention(now = new Date()): Promise<DeletedDelivery[]> {
  const deleted: DeletedDelivery[] = [];
  for (const id of await expiredDeliveries(now)) {
    try {
      deleted.push(await deleteDelivery(id, 'system', 'retention'));
    } catch (err) {
      // Gone meanwhile (a handler deleted it): nothing left to do.
      if (!(err instanceof DeletionError && err.status === 404)) throw err;
    }
  }
  return deleted;
}

export function registerRetentionJob(): void {
  registerJobHandler(RETENTION_JOB, async () => {
    await runRetention();
  });
}
