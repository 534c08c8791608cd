import { z } from 'zod';
import * as openpgp from 'openpgp';
import { audit } from '@/lib/audit';
import { config } from '@/lib/config';
import { quarantineDelivery, verifyAndScan } from '@/lib/scan';
import { decryptManifest, type Manifest } from '@/lib/crypto/manifest';
import { db, type Queryable } from '@/lib/db';
import { enqueue, PermanentJobError, registerJobHandler } from '@/lib/jobs';
import { queueMail } from '@/lib/mail';
import { emailSchema, findFiledropMailbox, mailboxPrivateKeys, mailboxPublicKeys } from '@/lib/mailboxes';
import type { VerifiedSender } from '@/lib/auth/sender-verification';
import { limitDeliveryCreation } from '@/lib/ratelimit';
import { objectStore } from '@/lib/storage';
import { hashToken, newReference, newSenderToken } from './tokens';
// Loaded here so the download route's response hook is in place at boot, before any request.
import './download';

export type DeliveryState = 'uploading' | 'submitted' | 'delivered' | 'rejected' | 'abandoned';

/** Why the server refused a delivery; the sender's page and email translate the code. */
export type RejectReason = 'manifest-unreadable' | 'manifest-mismatch' | 'file-corrupt' | 'file-mismatch' | 'too-large' | 'infected';

export interface DeliveryRow {
  id: string;
  mailbox_id: string;
  reference: string;
  sender_email: string;
  sender_verified: boolean;
  sender_locale: 'sv' | 'en';
  state: DeliveryState;
  upload_expires_at: Date;
  max_bytes: number;
  max_files: number;
  manifest: Uint8Array | null;
  reject_reason: RejectReason | null;
  created_at: Date;
  submitted_at: Date | null;
  delivered_at: Date | null;
}

export interface DeliveryFileRow {
  id: string;
  delivery_id: string;
  upload_id: string;
  ciphertext_size: number;
  state: 'uploading' | 'uploaded' | 'verified' | 'rejected';
  plaintext_size: number | null;
  sha256: Uint8Array | null;
  position: number | null;
}

export class DeliveryError extends Error {
  constructor(
    readonly status: 400 | 401 | 404 | 409 | 410 | 413,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const CHUNK = 4 * 1024 * 1024;
/** Largest manifest accepted: a thousand files' names and digests fit many times over. */
export const MAX_MANIFEST_BYTES = 1024 * 1024;

/**
 * Ciphertext bytes a delivery may upload: the plaintext limit plus the format's overhead (a tag
 * per 4 MiB chunk and per file, headers, a PKESK per key). The exact plaintext limit is checked
 * against the manifest once it can be read.
 */
export function ciphertextAllowance(maxBytes: number, files: number, keys: number): number {
  return maxBytes + 16 * (Math.ceil(maxBytes / CHUNK) + files) + files * (1024 + 640 * keys);
}

const createSchema = z.object({
  slug: z.string().min(1).max(64),
  senderEmail: emailSchema,
  locale: z.enum(['sv', 'en']).default('sv'),
});

export interface CreatedDelivery {
  deliveryId: string;
  reference: string;
  senderToken: string;
  maxBytes: number;
  maxFiles: number;
  uploadExpiresAt: string;
  publicKeys: string[];
  /** Whether the sender address was proven by a code (lib/auth/sender-verification). */
  senderVerified: boolean;
}

/** Who opens a delivery, as the route handler knows it. */
export interface DeliveryRequestContext {
  /** The client's address (lib/ratelimit clientIp), for the per-IP limit; in-process callers may omit it. */
  ip?: string;
  /** The verified sender bound to the request's sender cookie, if any. */
  sender?: VerifiedSender | null;
}

/**
 * Opens a delivery to a mailbox's filedrop link; the token it returns authorises its uploads.
 * When the mailbox requires verified senders, only the address the sender proved for it is
 * accepted; otherwise the address is recorded as unverified (unless proven all the same).
 * Throws RateLimitError (lib/ratelimit) past the per-IP limit.
 */
export async function createDelivery(input: unknown, ctx: DeliveryRequestContext = {}): Promise<CreatedDelivery> {
  const parsed = createSchema.safeParse(input);
  if (!parsed.success) throw new DeliveryError(400, 'invalid-input', z.prettifyError(parsed.error));
  const { slug, senderEmail, locale } = parsed.data;
  if (ctx.ip !== undefined) await limitDeliveryCreation(ctx.ip);
  const mailbox = await findFiledropMailbox(slug);
  if (!mailbox) throw new DeliveryError(404, 'unknown-link', 'This filedrop link does not exist');
  const proven = ctx.sender?.mailboxId === mailbox.id ? ctx.sender : null;
  if (mailbox.requireVerifiedSender) {
    if (!proven) {
      throw new DeliveryError(401, 'sender-verification-required', 'This mailbox requires a verified sender address');
    }
    if (proven.email !== senderEmail) {
      throw new DeliveryError(409, 'sender-email-mismatch', 'Send from the email address you confirmed with the code');
    }
  }
  const senderVerified = proven?.email === senderEmail;
  const { token, hash } = newSenderToken();
  const expires = new Date(Date.now() + config().uploadTokenTtlMs);
  const row = await (await db()).transaction(async (tx) => {
    const created = (
      await tx.query<{ id: string; reference: string }>(
        `INSERT INTO deliveries (mailbox_id, reference, sender_email, sender_verified, sender_locale, sender_token_hash,
           upload_expires_at, max_bytes, max_files)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id, reference`,
        [mailbox.id, newReference(), senderEmail, senderVerified, locale, hash, expires, mailbox.maxDeliveryBytes, mailbox.maxFiles],
      )
    ).rows[0];
    await audit(tx, {
      actor: `sender:${senderEmail}`,
      action: 'delivery.created',
      target: `delivery:${created.id}`,
      detail: { mailbox: mailbox.id, senderVerified },
    });
    return created;
  });
  return {
    deliveryId: row.id,
    reference: row.reference,
    senderToken: token,
    maxBytes: mailbox.maxDeliveryBytes,
    maxFiles: mailbox.maxFiles,
    uploadExpiresAt: expires.toISOString(),
    publicKeys: mailbox.publicKeys,
    senderVerified,
  };
}

const uuidSchema = z.uuid();

/** The delivery the token belongs to; the same 404 for a wrong id and a wrong token. */
async function senderDelivery(q: Queryable, deliveryId: string, token: string | null, lock = false): Promise<DeliveryRow> {
  if (!token || !uuidSchema.safeParse(deliveryId).success) {
    throw new DeliveryError(404, 'unknown-delivery', 'No such delivery');
  }
  const row = (
    await q.query<DeliveryRow>(
      `SELECT * FROM deliveries WHERE id = $1 AND sender_token_hash = $2${lock ? ' FOR UPDATE' : ''}`,
      [deliveryId, hashToken(token)],
    )
  ).rows[0];
  if (!row) throw new DeliveryError(404, 'unknown-delivery', 'No such delivery');
  return row;
}

function assertOpenForUploads(d: DeliveryRow): void {
  if (d.state !== 'uploading') throw new DeliveryError(409, 'delivery-closed', 'This delivery accepts no more uploads');
  if (d.upload_expires_at.getTime() < Date.now()) {
    throw new DeliveryError(410, 'delivery-expired', 'The time to upload to this delivery has run out');
  }
}

/** Called before tus creates an upload: checks the token, the file count and the size allowance. */
export async function reserveUpload(
  deliveryId: string,
  token: string | null,
  uploadId: string,
  ciphertextSize: number,
): Promise<void> {
  await (await db()).transaction(async (tx) => {
    const d = await senderDelivery(tx, deliveryId, token, true);
    assertOpenForUploads(d);
    const used = (
      await tx.query<{ files: number; bytes: number }>(
        `SELECT count(*)::int AS files, coalesce(sum(ciphertext_size), 0)::bigint AS bytes
         FROM delivery_files WHERE delivery_id = $1`,
        [d.id],
      )
    ).rows[0];
    if (used.files + 1 > d.max_files) {
      throw new DeliveryError(413, 'too-many-files', `A delivery to this mailbox may hold at most ${d.max_files} files`);
    }
    const keys = (await mailboxPublicKeys(tx, d.mailbox_id)).length;
    if (used.bytes + ciphertextSize > ciphertextAllowance(d.max_bytes, used.files + 1, keys)) {
      throw new DeliveryError(413, 'too-large', `A delivery to this mailbox may hold at most ${d.max_bytes} bytes`);
    }
    await tx.query(`INSERT INTO delivery_files (delivery_id, upload_id, ciphertext_size) VALUES ($1, $2, $3)`, [
      d.id,
      uploadId,
      ciphertextSize,
    ]);
  });
}

/** Checks that the token may write to (or ask about) this upload. */
export async function authorizeUpload(uploadId: string, token: string | null): Promise<void> {
  const q = await db();
  const row = (
    await q.query<{ delivery_id: string }>(`SELECT delivery_id FROM delivery_files WHERE upload_id = $1`, [uploadId])
  ).rows[0];
  if (!row) throw new DeliveryError(404, 'unknown-upload', 'No such upload');
  assertOpenForUploads(await senderDelivery(q, row.delivery_id, token));
}

export async function recordUploadFinished(uploadId: string): Promise<void> {
  await (await db()).query(
    `UPDATE delivery_files SET state = 'uploaded', uploaded_at = now() WHERE upload_id = $1 AND state = 'uploading'`,
    [uploadId],
  );
}

/** The sender removed an unfinished file: tus terminated it; its row and leftovers go too. */
export async function forgetUpload(uploadId: string): Promise<void> {
  await objectStore().delete(uploadId);
  await (await db()).query(`DELETE FROM delivery_files WHERE upload_id = $1 AND state = 'uploading'`, [uploadId]);
}

/**
 * The sender removes a file that finished uploading before the delivery was sent. No PATCH can
 * be in flight for it, so it is deleted here (tus's S3 store cannot terminate a completed
 * upload). False when the upload is not a finished one, for tus to handle.
 */
export async function removeFinishedUpload(uploadId: string, token: string | null): Promise<boolean> {
  const q = await db();
  const row = (
    await q.query<{ state: string }>(`SELECT state FROM delivery_files WHERE upload_id = $1`, [uploadId])
  ).rows[0];
  if (row?.state !== 'uploaded') return false;
  await authorizeUpload(uploadId, token);
  const removed = await q.query(`DELETE FROM delivery_files WHERE upload_id = $1 AND state = 'uploaded'`, [uploadId]);
  if (removed.rowCount) await objectStore().delete(uploadId);
  return true;
}

const submitSchema = z.object({
  manifest: z
    .string()
    .min(1)
    .max(Math.ceil((MAX_MANIFEST_BYTES * 4) / 3) + 4)
    .regex(/^[A-Za-z0-9+/]+={0,2}$/, 'must be base64'),
});

/**
 * Closes a delivery for uploads and queues its verification. Uploads never finished (files the
 * sender removed or gave up on) are deleted here so nothing half-written stays behind.
 */
export async function submitDelivery(deliveryId: string, token: string | null, input: unknown): Promise<DeliveryState> {
  const parsed = submitSchema.safeParse(input);
  if (!parsed.success) throw new DeliveryError(400, 'invalid-input', z.prettifyError(parsed.error));
  const manifest = Buffer.from(parsed.data.manifest, 'base64');
  await recoverFinishedUploads(deliveryId, token);
  const unfinished = await (await db()).transaction(async (tx) => {
    const d = await senderDelivery(tx, deliveryId, token, true);
    assertOpenForUploads(d);
    const files = (
      await tx.query<DeliveryFileRow>(`SELECT * FROM delivery_files WHERE delivery_id = $1`, [d.id])
    ).rows;
    if (!files.some((f) => f.state === 'uploaded')) {
      throw new DeliveryError(409, 'no-files', 'Add at least one file and wait until it is uploaded');
    }
    await tx.query(`DELETE FROM delivery_files WHERE delivery_id = $1 AND state = 'uploading'`, [d.id]);
    await tx.query(
      `UPDATE deliveries SET state = 'submitted', manifest = $2, submitted_at = now() WHERE id = $1`,
      [d.id, manifest],
    );
    const fileCount = files.filter((f) => f.state === 'uploaded').length;
    await audit(tx, { actor: `sender:${d.sender_email}`, action: 'delivery.submitted', target: `delivery:${d.id}`, detail: { fileCount } });
    await enqueue(tx, 'verify-delivery', { deliveryId: d.id }, { dedupeKey: `verify-delivery:${d.id}` });
    return files.filter((f) => f.state === 'uploading').map((f) => f.upload_id);
  });
  for (const uploadId of unfinished) await objectStore().delete(uploadId);
  return 'submitted';
}

/**
 * An upload whose last PATCH landed while the database was unreachable is complete in storage
 * but still 'uploading' in its row; it is recorded now, so submitting does not delete it.
 */
async function recoverFinishedUploads(deliveryId: string, token: string | null): Promise<void> {
  const q = await db();
  const d = await senderDelivery(q, deliveryId, token);
  const pending = (
    await q.query<DeliveryFileRow>(`SELECT * FROM delivery_files WHERE delivery_id = $1 AND state = 'uploading'`, [d.id])
  ).rows;
  for (const f of pending) {
    if ((await objectStore().size(f.upload_id)) === f.ciphertext_size) await recordUploadFinished(f.upload_id);
  }
}

export interface DeliveryStatus {
  state: DeliveryState;
  reference: string;
  rejectReason: RejectReason | null;
  files: { uploadId: string; state: DeliveryFileRow['state'] }[];
}

export async function deliveryStatus(deliveryId: string, token: string | null): Promise<DeliveryStatus> {
  const q = await db();
  const d = await senderDelivery(q, deliveryId, token);
  const files = (
    await q.query<DeliveryFileRow>(`SELECT * FROM delivery_files WHERE delivery_id = $1 ORDER BY created_at`, [d.id])
  ).rows;
  return {
    state: d.state,
    reference: d.reference,
    rejectReason: d.reject_reason,
    files: files.map((f) => ({ uploadId: f.upload_id, state: f.state })),
  };
}

/** Reads a stored object through the object store, as the decoder wants it. */
function storedObject(uploadId: string, size: number) {
  const store = objectStore();
  return { size, read: (start: number, end: number) => store.readRange(uploadId, start, end) };
}

/** 'infected' (lib/scan found malware) also quarantines the delivery and tells the administrators. */
async function reject(deliveryId: string, reason: RejectReason, signature = 'unknown'): Promise<void> {
  await (await db()).transaction(async (tx) => {
    const d = (
      await tx.query<DeliveryRow>(
        `UPDATE deliveries SET state = 'rejected', reject_reason = $2 WHERE id = $1 AND state = 'submitted' RETURNING *`,
        [deliveryId, reason],
      )
    ).rows[0];
    if (!d) return;
    await audit(tx, { actor: 'system', action: 'delivery.rejected', target: `delivery:${d.id}`, detail: { reason } });
    await queueMail(tx, {
      to: d.sender_email,
      template: 'delivery-rejected',
      locale: d.sender_locale,
      params: { reference: d.reference, sentAt: d.submitted_at ?? d.created_at, reason },
      dedupeKey: `delivery-rejected:${d.id}`,
    });
    if (reason === 'infected') await quarantineDelivery(tx, d, signature);
  });
}

function sameFiles(manifest: Manifest, files: DeliveryFileRow[]): boolean {
  const listed = manifest.files.map((f) => f.uploadId).sort();
  const uploaded = files.map((f) => f.upload_id).sort();
  return listed.length === uploaded.length && listed.every((id, i) => id === uploaded[i]);
}

/**
 * The verify job: decrypts every stored object, checks every chunk tag and the final tag, and
 * compares size, name and SHA-256 with the manifest. Only then is anyone told of the delivery.
 * A storage or database error throws, so the job is retried; bad content rejects at once.
 */
export async function verifyDelivery(deliveryId: string): Promise<void> {
  const q = await db();
  const d = (await q.query<DeliveryRow>(`SELECT * FROM deliveries WHERE id = $1`, [deliveryId])).rows[0];
  if (!d || d.state !== 'submitted' || !d.manifest) return;
  const privateKeys = await Promise.all(
    (await mailboxPrivateKeys(q, d.mailbox_id)).map((armoredKey) => openpgp.readPrivateKey({ armoredKey })),
  );
  let manifest: Manifest;
  try {
    manifest = await decryptManifest(d.manifest, privateKeys);
  } catch {
    return reject(d.id, 'manifest-unreadable');
  }
  const files = (
    await q.query<DeliveryFileRow>(`SELECT * FROM delivery_files WHERE delivery_id = $1`, [d.id])
  ).rows;
  if (!sameFiles(manifest, files)) return reject(d.id, 'manifest-mismatch');
  if (manifest.files.reduce((sum, f) => sum + f.size, 0) > d.max_bytes) return reject(d.id, 'too-large');

  const checked: { uploadId: string; size: number; sha256: Buffer; position: number }[] = [];
  for (const [position, entry] of manifest.files.entries()) {
    const file = files.find((f) => f.upload_id === entry.uploadId)!;
    const size = await objectStore().size(file.upload_id);
    if (size !== file.ciphertext_size) return reject(d.id, 'file-corrupt');
    let result: Awaited<ReturnType<typeof verifyAndScan>>;
    try {
      // Decrypts once: tags, SHA-256 and (when CLAMAV_* is set) the clamd scan in one pass.
      result = await verifyAndScan(storedObject(file.upload_id, size), privateKeys);
    } catch (err) {
      if (isContentError(err)) return reject(d.id, 'file-corrupt');
      throw err;
    }
    if (result.fileSize !== entry.size || result.name !== entry.name || result.sha256.toString('hex') !== entry.sha256) {
      return reject(d.id, 'file-mismatch');
    }
    if (result.scan.scanned && result.scan.infected) return reject(d.id, 'infected', result.scan.signature);
    checked.push({ uploadId: file.upload_id, size: result.fileSize, sha256: result.sha256, position });
  }

  await q.transaction(async (tx) => {
    const done = await tx.query(
      `UPDATE deliveries SET state = 'delivered', delivered_at = now() WHERE id = $1 AND state = 'submitted'`,
      [d.id],
    );
    if (done.rowCount === 0) return;
    const totalBytes = checked.reduce((sum, f) => sum + f.size, 0);
    await audit(tx, { actor: 'system', action: 'delivery.delivered', target: `delivery:${d.id}`, detail: { fileCount: checked.length, totalBytes } });
    for (const f of checked) {
      await tx.query(
        `UPDATE delivery_files SET state = 'verified', plaintext_size = $2, sha256 = $3, position = $4 WHERE upload_id = $1`,
        [f.uploadId, f.size, f.sha256, f.position],
      );
    }
    await notifyHandlers(tx, d, checked.length, totalBytes);
  });
}

function isContentError(err: unknown): boolean {
  return err instanceof Error && (err.name === 'ObjectFormatError' || err.name === 'ObjectAuthError');
}

/** One notification per member (and the functional address), queued with the state change. */
async function notifyHandlers(tx: Queryable, d: DeliveryRow, fileCount: number, totalBytes: number): Promise<void> {
  const recipients = (
    await tx.query<{ email: string; locale: 'sv' | 'en'; mailbox_name: string }>(
      `SELECT u.email, u.locale, m.name AS mailbox_name FROM mailbox_members mm
         JOIN users u ON u.id = mm.user_id JOIN mailboxes m ON m.id = mm.mailbox_id
       WHERE mm.mailbox_id = $1 AND u.disabled_at IS NULL
       UNION
       SELECT m.functional_email, 'sv', m.name FROM mailboxes m WHERE m.id = $1 AND m.functional_email IS NOT NULL`,
      [d.mailbox_id],
    )
  ).rows;
  for (const r of recipients) {
    await queueMail(tx, {
      to: r.email,
      template: 'delivery-notification',
      locale: r.locale,
      params: {
        mailboxName: r.mailbox_name,
        senderEmail: d.sender_email,
        senderVerified: d.sender_verified,
        fileCount,
        totalBytes,
        deliveryId: d.id,
      },
      dedupeKey: `delivery-notification:${d.id}:${r.email}`,
    });
  }
}

/**
 * Gives up a delivery still open for uploads: its uploads (objects, tus sidecars, multipart
 * parts) are deleted and it is marked abandoned, which the audit log records as a deletion
 * (by the sender who cancelled, or by the system at the deadline). False when it was no longer open.
 */
async function abandon(deliveryId: string, reason: 'cancelled' | 'expired'): Promise<boolean> {
  const uploads = await (await db()).transaction(async (tx) => {
    const d = (
      await tx.query<{ mailbox_id: string; sender_email: string }>(
        `UPDATE deliveries SET state = 'abandoned', manifest = NULL WHERE id = $1 AND state = 'uploading' RETURNING mailbox_id, sender_email`,
        [deliveryId],
      )
    ).rows[0];
    if (!d) return undefined;
    const removed = (
      await tx.query<{ upload_id: string }>(`DELETE FROM delivery_files WHERE delivery_id = $1 RETURNING upload_id`, [
        deliveryId,
      ])
    ).rows.map((r) => r.upload_id);
    await audit(tx, {
      actor: reason === 'cancelled' ? `sender:${d.sender_email}` : 'system',
      action: 'delivery.abandoned',
      target: `delivery:${deliveryId}`,
      detail: { mailbox: d.mailbox_id, reason, fileCount: removed.length },
    });
    return removed;
  });
  // After the commit: a PATCH racing this sees the delivery closed, so nothing is written again.
  for (const uploadId of uploads ?? []) await objectStore().delete(uploadId);
  return uploads !== undefined;
}

/** The sender cancels: everything uploaded so far is deleted at once. */
export async function cancelDelivery(deliveryId: string, token: string | null): Promise<void> {
  const d = await senderDelivery(await db(), deliveryId, token);
  if (!(await abandon(d.id, 'cancelled')) && d.state !== 'abandoned') {
    throw new DeliveryError(409, 'delivery-closed', 'This delivery was sent already and can no longer be cancelled');
  }
}

/** Deliveries left in 'uploading' past their deadline are abandoned and their storage freed. */
export async function expireAbandonedDeliveries(): Promise<number> {
  const stale = (
    await (await db()).query<{ id: string }>(
      `SELECT id FROM deliveries WHERE state = 'uploading' AND upload_expires_at < now() ORDER BY upload_expires_at LIMIT 100`,
    )
  ).rows;
  let abandoned = 0;
  for (const { id } of stale) if (await abandon(id, 'expired')) abandoned++;
  return abandoned;
}

export function registerDeliveryJobs(): void {
  registerJobHandler('verify-delivery', async (payload: unknown) => {
    const p = z.object({ deliveryId: z.uuid() }).safeParse(payload);
    if (!p.success) throw new PermanentJobError('verify-delivery: bad payload');
    await verifyDelivery(p.data.deliveryId);
  });
  registerJobHandler('expire-abandoned-deliveries', async () => {
    await expireAbandonedDeliveries();
  });
}
