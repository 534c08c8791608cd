/**
 * lib/admin: what an administrator does to a mailbox after creating it — rotate or switch off its
 * filedrop link, set its policy, rotate its key pair, export its private keys for offline
 * decryption — and the instance-wide master key rotation. Every change is audited in the same
 * transaction as the change itself (lib/audit). Deletion and retention: lib/deliveries/retention.
 *
 * Master key rotation without downtime (every process accepts both keys while rows move):
 *   1. restart the app instances and workers one at a time with INKAST_MASTER_KEY=NEW and
 *      INKAST_MASTER_KEY_PREVIOUS=OLD: each unwraps under either, wraps new keys under NEW;
 *   2. `npx inkast master-key rotate` (same settings): every key still under OLD is re-wrapped
 *      under NEW in one transaction;
 *   3. remove INKAST_MASTER_KEY_PREVIOUS, restarting one at a time. Keep OLD until a backup
 *      under NEW exists.
 * The embedded default (`<dataDir>/master.key`, one process) rotates offline instead: stop the
 * app, `master-key rotate --new-key-file NEW`, put NEW in the key file, start again. Rotation is
 * idempotent: rows already under the target are left as they are, so it may be repeated.
 */
import * as openpgp from 'openpgp';
import { z } from 'zod';
import { audit } from '@/lib/audit';
import { generateMailboxKey, wrapPrivateKey } from '@/lib/crypto/keys';
import { db, type Queryable } from '@/lib/db';
import { findMailbox, MailboxError, newFiledropSlug, type Mailbox } from '@/lib/mailboxes';
import { masterKey, masterKeyById, masterKeyFrom, previousMasterKey, unwrapMailboxKey, type MasterKey } from '@/lib/mailboxes/master-key';

export { MailboxError as AdminError };

/** The mailbox by id or filedrop slug, or a 404 MailboxError. */
export async function requireMailbox(idOrSlug: string): Promise<Mailbox> {
  const m = await findMailbox(idOrSlug);
  if (!m) throw new MailboxError(404, 'unknown-mailbox', `No mailbox ${idOrSlug}`);
  return m;
}

/** The mailbox row, locked until the transaction ends, or a 404 MailboxError. */
export async function lockMailbox(tx: Queryable, mailboxId: string): Promise<Mailbox> {
  const m = (await tx.query<Mailbox>('SELECT * FROM mailboxes WHERE id = $1 FOR UPDATE', [mailboxId])).rows[0];
  if (!m) throw new MailboxError(404, 'unknown-mailbox', `No mailbox ${mailboxId}`);
  return m;
}

/** Every admin change names who made it: `user:<id>` or `system`. */
/** The acting user's id (null for `system`); anything else is a programming error. */
export function checkActor(actor: string): string | null {
  const m = /^(?:user:([0-9a-f-]{36})|system)$/i.exec(actor);
  if (!m) throw new TypeError(`admin: bad actor ${JSON.stringify(actor)}`);
  return m[1]?.toLowerCase() ?? null;
}

/**
 * Gives the mailbox a new filedrop slug. The old link stops at once and answers exactly like a
 * link that never existed. The slugs are not audited (a link is a capability).
 */
export async function rotateFiledropLink(mailboxId: string, actor: string): Promise<Mailbox> {
  checkActor(actor);
  return (await db()).transaction(async (tx) => {
    await lockMailbox(tx, mailboxId);
    const m = (
      await tx.query<Mailbox>('UPDATE mailboxes SET filedrop_slug = $2 WHERE id = $1 RETURNING *', [mailboxId, newFiledropSlug()])
    ).rows[0];
    await audit(tx, { actor, action: 'mailbox.link-rotated', target: `mailbox:${mailboxId}` });
    return m;
  });
}

/** Switches the filedrop link off (it then looks unknown) or on again, keeping the slug. */
export async function setFiledropEnabled(mailboxId: string, enabled: boolean, actor: string): Promise<Mailbox> {
  checkActor(actor);
  return (await db()).transaction(async (tx) => {
    const before = await lockMailbox(tx, mailboxId);
    const m = (
      await tx.query<Mailbox>('UPDATE mailboxes SET filedrop_enabled = $2 WHERE id = $1 RETURNING *', [mailboxId, enabled])
    ).rows[0];
    if (before.filedrop_enabled !== enabled) {
      await audit(tx, { actor, action: enabled ? 'mailbox.link-enabled' : 'mailbox.link-disabled', target: `mailbox:${mailboxId}` });
    }
    return m;
  });
}

/** Largest delivery a policy may allow: 100 GB of plaintext. */
export const MAX_POLICY_BYTES = 100_000_000_000;

export const mailboxPolicySchema = z
  .strictObject({
    requireVerifiedSender: z.boolean().optional(),
    maxDeliveryBytes: z.number().int().min(1).max(MAX_POLICY_BYTES).optional(),
    maxFilesPerDelivery: z.number().int().min(1).max(10_000).optional(),
    retentionDays: z.number().int().min(1).max(3650).optional(),
  })
  .refine((p) => Object.values(p).some((v) => v !== undefined), { message: 'Give at least one policy setting' });

export type MailboxPolicy = z.input<typeof mailboxPolicySchema>;

const POLICY_COLUMNS = {
  requireVerifiedSender: 'require_verified_sender',
  maxDeliveryBytes: 'max_delivery_bytes',
  maxFilesPerDelivery: 'max_files_per_delivery',
  retentionDays: 'retention_days',
} as const;

/**
 * Changes the settings given, leaving the others. Deliveries already open keep the limits they
 * were opened with; new ones get these.
 */
export async function setMailboxPolicy(mailboxId: string, policy: MailboxPolicy, actor: string): Promise<Mailbox> {
  checkActor(actor);
  const parsed = mailboxPolicySchema.safeParse(policy);
  if (!parsed.success) throw new MailboxError(400, 'invalid-policy', z.prettifyError(parsed.error));
  const p = parsed.data;
  const sets: string[] = [];
  const params: unknown[] = [mailboxId];
  const changed: Record<string, boolean | number> = {};
  for (const [field, column] of Object.entries(POLICY_COLUMNS) as [keyof typeof POLICY_COLUMNS, string][]) {
    const v = p[field];
    if (v === undefined) continue;
    params.push(v);
    sets.push(`${column} = $${params.length}`);
    changed[field] = v;
  }
  return (await db()).transaction(async (tx) => {
    await lockMailbox(tx, mailboxId);
    const m = (await tx.query<Mailbox>(`UPDATE mailboxes SET ${sets.join(', ')} WHERE id = $1 RETURNING *`, params)).rows[0];
    await audit(tx, { actor, action: 'mailbox.policy-changed', target: `mailbox:${mailboxId}`, detail: changed });
    return m;
  });
}

export interface RotatedKey {
  fingerprint: string;
  previousFingerprints: string[];
}

/**
 * A new active key pair for the mailbox: new deliveries are encrypted to it, the old keys stay
 * (inactive) so everything delivered before stays readable.
 */
export async function rotateMailboxKey(mailboxId: string, actor: string): Promise<RotatedKey> {
  checkActor(actor);
  const mailbox = await requireMailbox(mailboxId);
  const key = await generateMailboxKey(mailbox.name);
  const mk = masterKey();
  return (await db()).transaction(async (tx) => {
    await lockMailbox(tx, mailbox.id);
    const old = (
      await tx.query<{ fingerprint: string }>(
        'UPDATE mailbox_keys SET active = false WHERE mailbox_id = $1 AND active RETURNING fingerprint',
        [mailbox.id],
      )
    ).rows.map((r) => r.fingerprint);
    await tx.query(
      `INSERT INTO mailbox_keys (mailbox_id, fingerprint, public_key, wrapped_private_key, master_key_id, active)
       VALUES ($1, $2, $3, $4, $5, true)`,
      [mailbox.id, key.fingerprint, key.publicKey, wrapPrivateKey(mk.key, mk.id, key.privateKey), mk.id],
    );
    await audit(tx, {
      actor,
      action: 'mailbox.key-rotated',
      target: `mailbox:${mailbox.id}`,
      detail: { fingerprint: key.fingerprint, previous: old },
    });
    return { fingerprint: key.fingerprint, previousFingerprints: old };
  });
}

export interface MasterKeyRotation {
  /** The master key ids the keys were re-wrapped from. */
  from: string[];
  to: string;
  /** Keys re-wrapped now. */
  rewrapped: number;
  /** Keys already under the new master key (an earlier, repeated run). */
  alreadyUnderNew: number;
}

/**
 * Re-wraps every mailbox private key under the target master key, in one transaction: all rows
 * move or none. With `newKey` the target is that key (the offline way: the process's key, and
 * any previous one, are replaced; restart everything with the new key). Without it the target is
 * the process's current key, and the rows still under INKAST_MASTER_KEY_PREVIOUS move to it (the
 * rolling way, without downtime). A row under no key this process has stops it (nothing changes).
 */
export async function rotateMasterKey(newKey: Buffer | undefined, actor: string): Promise<MasterKeyRotation> {
  checkActor(actor);
  const current = masterKey();
  let target = current;
  if (newKey) {
    if (newKey.length !== 32) throw new MailboxError(400, 'invalid-master-key', `The new master key must be 32 bytes, got ${newKey.length}`);
    target = masterKeyFrom(Buffer.from(newKey));
    if (target.id === current.id) throw new MailboxError(409, 'same-master-key', 'The new master key is the one in use');
  } else if (!previousMasterKey()) {
    throw new MailboxError(400, 'no-previous-master-key', 'Set INKAST_MASTER_KEY_PREVIOUS to the key being replaced, or give the new key');
  }
  const result = await (await db()).transaction(async (tx) => {
    const rows = (
      await tx.query<{ id: string; wrapped_private_key: Uint8Array; master_key_id: string }>(
        'SELECT id, wrapped_private_key, master_key_id FROM mailbox_keys ORDER BY created_at FOR UPDATE',
      )
    ).rows;
    const from = new Set<string>();
    let rewrapped = 0;
    let alreadyUnderNew = 0;
    for (const r of rows) {
      if (r.master_key_id === target.id) {
        alreadyUnderNew++;
        continue;
      }
      if (!masterKeyById(r.master_key_id)) {
        throw new MailboxError(409, 'unknown-master-key', `Key ${r.id} is wrapped under master key ${r.master_key_id}, which is not configured`);
      }
      const armored = unwrapMailboxKey(r.wrapped_private_key, r.master_key_id);
      await tx.query('UPDATE mailbox_keys SET wrapped_private_key = $2, master_key_id = $3 WHERE id = $1', [
        r.id,
        wrapPrivateKey(target.key, target.id, armored),
        target.id,
      ]);
      from.add(r.master_key_id);
      rewrapped++;
    }
    const rotation = { from: [...from], to: target.id, rewrapped, alreadyUnderNew };
    await audit(tx, { actor, action: 'master-key.rotated', detail: { ...rotation } });
    return rotation;
  });
  if (target !== current) (globalThis as typeof globalThis & { __inkastMasterKey?: MasterKey }).__inkastMasterKey = target;
  return result;
}

/** Shortest passphrase an exported key may be protected with. */
export const MIN_PASSPHRASE_LENGTH = 12;

export interface ExportedKey {
  /** One armored, passphrase-protected private key block per key the mailbox has had, newest first. */
  armored: string;
  fingerprints: string[];
}

/**
 * The mailbox's private keys (the active one and every rotated one), each encrypted with the
 * passphrase (openpgp.encryptKey), for `inkast decrypt` or any RFC 9580 tool offline.
 */
export async function exportMailboxKey(mailboxId: string, passphrase: string, actor: string): Promise<ExportedKey> {
  checkActor(actor);
  if (typeof passphrase !== 'string' || [...passphrase].length < MIN_PASSPHRASE_LENGTH) {
    throw new MailboxError(400, 'weak-passphrase', `The passphrase must be at least ${MIN_PASSPHRASE_LENGTH} characters`);
  }
  const mailbox = await requireMailbox(mailboxId);
  const q = await db();
  const rows = (
    await q.query<{ fingerprint: string; wrapped_private_key: Uint8Array; master_key_id: string }>(
      'SELECT fingerprint, wrapped_private_key, master_key_id FROM mailbox_keys WHERE mailbox_id = $1 ORDER BY active DESC, created_at DESC',
      [mailbox.id],
    )
  ).rows;
  const blocks: string[] = [];
  for (const r of rows) {
    if (!masterKeyById(r.master_key_id)) throw new MailboxError(409, 'unknown-master-key', `Key ${r.fingerprint} is wrapped under a master key that is not configured`);
    const privateKey = await openpgp.readPrivateKey({ armoredKey: unwrapMailboxKey(r.wrapped_private_key, r.master_key_id) });
    blocks.push((await openpgp.encryptKey({ privateKey, passphrase })).armor());
  }
  const fingerprints = rows.map((r) => r.fingerprint);
  await q.transaction((tx) =>
    audit(tx, { actor, action: 'mailbox.key-exported', target: `mailbox:${mailbox.id}`, detail: { fingerprints } }),
  );
  return { armored: blocks.join('\n'), fingerprints };
}
