/**
 * What a handler reads: their mailboxes, a mailbox's deliveries, one delivery. Membership is
 * checked on every call, content (subject, message, file names) is decrypted here with the
 * mailbox keys and never stored in clear, and opening a delivery is recorded and audited.
 */
import * as openpgp from 'openpgp';
import { audit } from '@/lib/audit';
import { decryptManifest, ManifestError, type Manifest } from '@/lib/crypto/manifest';
import { db, type Queryable } from '@/lib/db';
import { findMailbox, isMember, mailboxPrivateKeys, userMailboxes, type Mailbox } from '@/lib/mailboxes';
import type { RejectReason } from './index';

/** Only these reach a handler: the others are still with the sender or never arrived. */
export type VisibleState = 'delivered' | 'rejected';

export interface InboxMailbox {
  id: string;
  kind: Mailbox['kind'];
  name: string;
  /** Delivered and not yet opened by this user. */
  newCount: number;
}

/** A user who did something with a delivery, as other handlers see them. */
export interface HandlerName {
  name: string;
  email: string;
}

export interface DeliverySummary {
  id: string;
  reference: string;
  senderEmail: string;
  senderVerified: boolean;
  /** null when the manifest cannot be read (a delivery rejected for that reason). */
  subject: string | null;
  receivedAt: Date;
  fileCount: number;
  /** null when no file was verified (a rejected delivery). */
  totalBytes: number | null;
  state: VisibleState;
  rejectReason: RejectReason | null;
  downloadedBy: HandlerName[];
  viewedByMe: boolean;
}

export interface MailboxDeliveries {
  mailbox: { id: string; kind: Mailbox['kind']; name: string };
  deliveries: DeliverySummary[];
  /** 1-based, clamped to the pages there are. */
  page: number;
  pageSize: number;
  total: number;
  pageCount: number;
}

export interface FileDownload {
  by: HandlerName;
  at: Date;
}

export interface DeliveryFile {
  id: string;
  name: string;
  type: string;
  size: number;
  sha256: string;
  /** 0-based order in the delivery, as the sender listed them. */
  position: number;
  downloads: FileDownload[];
}

export interface DeliveryDetail {
  id: string;
  reference: string;
  mailbox: { id: string; name: string };
  senderEmail: string;
  senderVerified: boolean;
  receivedAt: Date;
  state: VisibleState;
  rejectReason: RejectReason | null;
  subject: string | null;
  message: string | null;
  /** The verified files; a rejected delivery has none to offer. */
  files: DeliveryFile[];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DEFAULT_PAGE_SIZE = 25;
const MAX_PAGE_SIZE = 100;

async function decryptionKeys(q: Queryable, mailboxId: string): Promise<openpgp.PrivateKey[]> {
  return Promise.all((await mailboxPrivateKeys(q, mailboxId)).map((armoredKey) => openpgp.readPrivateKey({ armoredKey })));
}

/** The manifest, or null when it cannot be read: the verifier already rejected such a delivery. */
async function readManifest(bytes: Uint8Array | null, keys: openpgp.PrivateKey[]): Promise<Manifest | null> {
  if (!bytes) return null;
  try {
    return await decryptManifest(bytes, keys);
  } catch (err) {
    if (err instanceof ManifestError) return null;
    throw err;
  }
}

/** The user's mailboxes (personal first, then shared by name) with how many deliveries are new to them. */
export async function inboxFor(userId: string): Promise<InboxMailbox[]> {
  const mailboxes = await userMailboxes(userId);
  if (!mailboxes.length) return [];
  const counts = (
    await (await db()).query<{ mailbox_id: string; new_count: number }>(
      `SELECT d.mailbox_id, count(*)::int AS new_count FROM deliveries d
       WHERE d.mailbox_id = ANY($1::uuid[]) AND d.state = 'delivered'
         AND NOT EXISTS (SELECT 1 FROM delivery_views v WHERE v.delivery_id = d.id AND v.user_id = $2)
       GROUP BY d.mailbox_id`,
      [mailboxes.map((m) => m.id), userId],
    )
  ).rows;
  const newCount = new Map(counts.map((c) => [c.mailbox_id, c.new_count]));
  return mailboxes.map((m) => ({ id: m.id, kind: m.kind, name: m.name, newCount: newCount.get(m.id) ?? 0 }));
}

/** Who fetched files of these deliveries, each person once per delivery, first download first. */
async function downloadersOf(q: Queryable, deliveryIds: string[]): Promise<Map<string, HandlerName[]>> {
  const rows = (
    await q.query<{ delivery_id: string; name: string; email: string }>(
      `SELECT f.delivery_id, u.display_name AS name, u.email, min(dl.at) AS first_at
       FROM downloads dl JOIN delivery_files f ON f.id = dl.delivery_file_id JOIN users u ON u.id = dl.user_id
       WHERE f.delivery_id = ANY($1::uuid[])
       GROUP BY f.delivery_id, u.id, u.display_name, u.email
       ORDER BY first_at`,
      [deliveryIds],
    )
  ).rows;
  const by = new Map<string, HandlerName[]>();
  for (const r of rows) by.set(r.delivery_id, [...(by.get(r.delivery_id) ?? []), { name: r.name, email: r.email }]);
  return by;
}

/**
 * One page of a mailbox's deliveries, newest first; null when the user is not a member (or the
 * mailbox does not exist: the two look the same). Only the page's subjects are decrypted.
 */
export async function listMailboxDeliveries(
  userId: string,
  mailboxId: string,
  { page = 1, pageSize = DEFAULT_PAGE_SIZE }: { page?: number; pageSize?: number } = {},
): Promise<MailboxDeliveries | null> {
  if (!UUID.test(mailboxId)) return null;
  const q = await db();
  if (!(await isMember(q, userId, mailboxId))) return null;
  const mailbox = await findMailbox(mailboxId);
  if (!mailbox) return null;

  const size = Math.min(MAX_PAGE_SIZE, Math.max(1, Math.trunc(pageSize) || DEFAULT_PAGE_SIZE));
  const total = (
    await q.query<{ total: number }>(
      `SELECT count(*)::int AS total FROM deliveries WHERE mailbox_id = $1 AND state IN ('delivered', 'rejected') AND reject_reason IS DISTINCT FROM 'infected'`,
      [mailboxId],
    )
  ).rows[0].total;
  const pageCount = Math.max(1, Math.ceil(total / size));
  const current = Math.min(pageCount, Math.max(1, Math.trunc(page) || 1));

  const rows = (
    await q.query<{
      id: string;
      reference: string;
      sender_email: string;
      sender_verified: boolean;
      state: VisibleState;
      reject_reason: RejectReason | null;
      manifest: Uint8Array | null;
      received_at: Date;
      file_count: number;
      total_bytes: number | null;
      viewed_by_me: boolean;
    }>(
      // A rejected delivery never got delivered_at: it counts from when the sender submitted it.
      `SELECT d.id, d.reference, d.sender_email, d.sender_verified, d.state, d.reject_reason, d.manifest,
         coalesce(d.delivered_at, d.submitted_at, d.created_at) AS received_at,
         (SELECT count(*)::int FROM delivery_files f WHERE f.delivery_id = d.id) AS file_count,
         (SELECT sum(f.plaintext_size)::bigint FROM delivery_files f WHERE f.delivery_id = d.id) AS total_bytes,
         EXISTS (SELECT 1 FROM delivery_views v WHERE v.delivery_id = d.id AND v.user_id = $2) AS viewed_by_me
       FROM deliveries d
       WHERE d.mailbox_id = $1 AND d.state IN ('delivered', 'rejected') AND d.reject_reason IS DISTINCT FROM 'infected'
       ORDER BY received_at DESC, d.id DESC
       LIMIT $3 OFFSET $4`,
      [mailboxId, userId, size, (current - 1) * size],
    )
  ).rows;

  const keys = rows.length ? await decryptionKeys(q, mailboxId) : [];
  const downloaders = rows.length ? await downloadersOf(q, rows.map((r) => r.id)) : new Map<string, HandlerName[]>();
  const deliveries = await Promise.all(
    rows.map(async (r) => ({
      id: r.id,
      reference: r.reference,
      senderEmail: r.sender_email,
      senderVerified: r.sender_verified,
      subject: (await readManifest(r.manifest, keys))?.subject ?? null,
      receivedAt: r.received_at,
      fileCount: r.file_count,
      totalBytes: r.total_bytes,
      state: r.state,
      rejectReason: r.reject_reason,
      downloadedBy: downloaders.get(r.id) ?? [],
      viewedByMe: r.viewed_by_me,
    })),
  );
  return {
    mailbox: { id: mailbox.id, kind: mailbox.kind, name: mailbox.name },
    deliveries,
    page: current,
    pageSize: size,
    total,
    pageCount,
  };
}

/**
 * Everything the delivery page shows, or null when the user may not see it (not a member, no
 * such delivery, or one still with the sender: all alike). Opening it records the user's view
 * and an audit entry in one transaction, before any content is returned.
 */
export async function deliveryForUser(userId: string, deliveryId: string): Promise<DeliveryDetail | null> {
  if (!UUID.test(deliveryId)) return null;
  const q = await db();
  const d = (
    await q.query<{
      id: string;
      mailbox_id: string;
      mailbox_name: string;
      reference: string;
      sender_email: string;
      sender_verified: boolean;
      state: VisibleState;
      reject_reason: RejectReason | null;
      manifest: Uint8Array | null;
      received_at: Date;
    }>(
      `SELECT d.id, d.mailbox_id, m.name AS mailbox_name, d.reference, d.sender_email, d.sender_verified, d.state,
         d.reject_reason, d.manifest, coalesce(d.delivered_at, d.submitted_at, d.created_at) AS received_at
       FROM deliveries d JOIN mailboxes m ON m.id = d.mailbox_id
       WHERE d.id = $1 AND d.state IN ('delivered', 'rejected') AND d.reject_reason IS DISTINCT FROM 'infected'`,
      [deliveryId],
    )
  ).rows[0];
  if (!d || !(await isMember(q, userId, d.mailbox_id))) return null;

  await q.transaction(async (tx) => {
    await tx.query(
      `INSERT INTO delivery_views (delivery_id, user_id) VALUES ($1, $2) ON CONFLICT (delivery_id, user_id) DO NOTHING`,
      [d.id, userId],
    );
    await audit(tx, { actor: `user:${userId}`, action: 'delivery.viewed', target: `delivery:${d.id}`, detail: { mailboxId: d.mailbox_id } });
  });

  const manifest = await readManifest(d.manifest, await decryptionKeys(q, d.mailbox_id));
  const fileRows = (
    await q.query<{ id: string; upload_id: string; plaintext_size: number; sha256: Uint8Array; position: number }>(
      `SELECT id, upload_id, plaintext_size, sha256, position FROM delivery_files
       WHERE delivery_id = $1 AND state = 'verified' ORDER BY position`,
      [d.id],
    )
  ).rows;
  const downloads = (
    await q.query<{ delivery_file_id: string; name: string; email: string; at: Date }>(
      `SELECT dl.delivery_file_id, u.display_name AS name, u.email, dl.at
       FROM downloads dl JOIN delivery_files f ON f.id = dl.delivery_file_id JOIN users u ON u.id = dl.user_id
       WHERE f.delivery_id = $1 ORDER BY dl.at`,
      [d.id],
    )
  ).rows;

  const files = fileRows.map((f) => {
    // Verification matched every verified file against the manifest: a miss is a broken invariant.
    const entry = manifest?.files.find((e) => e.uploadId === f.upload_id);
    if (!entry) throw new Error(`delivery ${d.id}: verified file ${f.id} is missing from the manifest`);
    return {
      id: f.id,
      name: entry.name,
      type: entry.type,
      size: f.plaintext_size,
      sha256: Buffer.from(f.sha256).toString('hex'),
      position: f.position,
      downloads: downloads
        .filter((dl) => dl.delivery_file_id === f.id)
        .map((dl) => ({ by: { name: dl.name, email: dl.email }, at: dl.at })),
    };
  });

  return {
    id: d.id,
    reference: d.reference,
    mailbox: { id: d.mailbox_id, name: d.mailbox_name },
    senderEmail: d.sender_email,
    senderVerified: d.sender_verified,
    receivedAt: d.received_at,
    state: d.state,
    rejectReason: d.reject_reason,
    subject: manifest?.subject ?? null,
    message: manifest?.message ?? null,
    files,
  };
}
