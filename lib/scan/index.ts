/**
 * Optional malware scanning with clamd (Debian's clamav-daemon).
 *
 * When CLAMAV_SOCKET or CLAMAV_HOST is set, the verify job streams the decrypted bytes of each
 * file to clamd in the same pass that checks its tags and SHA-256 (`verifyAndScan`): plaintext
 * stays in memory, as ARCHITECTURE.md requires. An infected delivery is rejected with reason
 * 'infected' and quarantined (`quarantineDelivery`): its files are marked rejected (never
 * downloadable), its ciphertext objects are kept for the administrators, the sender and every
 * administrator are mailed, the audit log records it.
 *
 * When it is not set, nothing is scanned and nothing says it was: `verifyAndScan` reports
 * `{ scanned: false }` and no page, mail or log line claims a scan.
 *
 * clamd unreachable or failing is a ClamdError: the job fails and is retried with backoff, the
 * delivery stays 'submitted' (never delivered unscanned).
 */
import { createHash } from 'node:crypto';
import type * as openpgp from 'openpgp';
import { audit } from '@/lib/audit';
import { config } from '@/lib/config';
import { openStoredObject, type ObjectSource, type VerifiedObject } from '@/lib/crypto/decoder';
import type { Queryable } from '@/lib/db';
import { logger } from '@/lib/log';
import { queueMail } from '@/lib/mail';
import { clamdPing, openClamdStream, type ClamdStream, type ClamdTarget } from './clamd';

export { ClamdError, clamdPing, clamdScanBytes, openClamdStream, type ClamdTarget, type ClamdVerdict } from './clamd';

export interface ScanSettings {
  target: ClamdTarget;
  /** Bytes of each file sent to clamd (at most clamd's StreamMaxLength); the rest is not scanned. */
  maxBytes: number;
  timeoutMs: number;
}

export type ScanOutcome =
  | { scanned: false }
  | { scanned: true; infected: false; scannedBytes: number; partial: boolean }
  | { scanned: true; infected: true; signature: string };

export interface ScannedObject extends VerifiedObject {
  scan: ScanOutcome;
}

/** The configured scanner, or undefined: scanning is off. */
export function scanSettings(): ScanSettings | undefined {
  return config().clamav;
}

/** Whether clamd answers (for readiness checks); throws ClamdError when it does not. */
export async function checkScanner(settings = scanSettings()): Promise<'off' | 'ok'> {
  if (!settings) return 'off';
  await clamdPing(settings.target, Math.min(settings.timeoutMs, 5000));
  return 'ok';
}

const log = () => logger('scan');

/**
 * Decrypts a stored object once: every chunk authenticated, SHA-256 computed, and (when scanning
 * is on) the plaintext streamed to clamd as it is released. Decoder errors (ObjectFormatError,
 * ObjectAuthError) pass through unchanged; clamd failures throw ClamdError.
 */
export async function verifyAndScan(
  source: ObjectSource,
  privateKeys: openpgp.PrivateKey[],
  settings: ScanSettings | undefined = scanSettings(),
): Promise<ScannedObject> {
  const obj = await openStoredObject(source, privateKeys);
  const hash = createHash('sha256');
  const stream: ClamdStream | undefined = settings ? await openClamdStream(settings.target, settings.timeoutMs) : undefined;
  let sent = 0;
  try {
    for await (const piece of obj.plaintext()) {
      hash.update(piece);
      if (stream && sent < settings!.maxBytes) {
        const part = piece.subarray(0, Math.min(piece.byteLength, settings!.maxBytes - sent));
        await stream.write(part);
        sent += part.byteLength;
      }
    }
    const verified: VerifiedObject = { fileSize: obj.fileSize, name: obj.name, date: obj.date, sha256: hash.digest() };
    if (!stream) return { ...verified, scan: { scanned: false } };
    const verdict = await stream.finish();
    if (verdict.infected) return { ...verified, scan: { scanned: true, infected: true, signature: verdict.signature } };
    const partial = sent < obj.fileSize;
    if (partial) log().info({ scannedBytes: sent, fileBytes: obj.fileSize }, 'file larger than CLAMAV_MAX_BYTES: only its beginning was scanned');
    return { ...verified, scan: { scanned: true, infected: false, scannedBytes: sent, partial } };
  } catch (err) {
    stream?.abort();
    throw err;
  }
}

/** What quarantine needs of the delivery row (lib/deliveries' DeliveryRow has it). */
export interface QuarantinedDelivery {
  id: string;
  mailbox_id: string;
  reference: string;
  sender_email: string;
  submitted_at: Date | null;
  created_at: Date;
}

/**
 * Inside the transaction that rejects the delivery with reason 'infected': its files are marked
 * rejected (so nothing can ever be downloaded), every active administrator (or INKAST_ADMIN_EMAIL
 * when there is none) is mailed, the audit log records the finding. The ciphertext objects stay
 * in storage for the administrators; the sender is mailed by the rejection itself.
 */
export async function quarantineDelivery(tx: Queryable, d: QuarantinedDelivery, signature: string): Promise<void> {
  await tx.query(`UPDATE delivery_files SET state = 'rejected' WHERE delivery_id = $1`, [d.id]);
  const mailbox = (await tx.query<{ name: string }>(`SELECT name FROM mailboxes WHERE id = $1`, [d.mailbox_id])).rows[0];
  let admins = (
    await tx.query<{ email: string; locale: 'sv' | 'en' }>(
      `SELECT email, locale FROM users WHERE role = 'admin' AND disabled_at IS NULL ORDER BY email`,
    )
  ).rows;
  if (!admins.length) admins = [{ email: config().adminEmail, locale: 'sv' }];
  for (const admin of admins) {
    await queueMail(tx, {
      to: admin.email,
      template: 'delivery-rejected',
      locale: admin.locale,
      params: {
        reference: d.reference,
        sentAt: d.submitted_at ?? d.created_at,
        reason: 'infected',
        quarantine: { deliveryId: d.id, mailboxName: mailbox?.name ?? '?', senderEmail: d.sender_email, signature },
      },
      dedupeKey: `delivery-quarantined:${d.id}:${admin.email}`,
    });
  }
  await audit(tx, {
    actor: 'system',
    action: 'delivery.quarantined',
    target: `delivery:${d.id}`,
    detail: { mailbox: d.mailbox_id, signature },
  });
  log().warn({ deliveryId: d.id, mailboxId: d.mailbox_id, signature }, 'malware found: delivery rejected and quarantined');
}
