import crypto from 'node:crypto';
import bs58 from 'bs58';
import { z } from 'zod';
import { audit } from '@/lib/audit';
import { config } from '@/lib/config';
import { generateMailboxKey, wrapPrivateKey } from '@/lib/crypto/keys';
import { db, type Queryable } from '@/lib/db';
import { masterKey, unwrapMailboxKey, type MasterKey } from './master-key';

export type Role = 'admin' | 'handler';
export type Locale = 'sv' | 'en';

export interface User {
  id: string;
  email: string;
  display_name: string;
  role: Role;
  locale: Locale;
  disabled_at: Date | null;
}

export interface Mailbox {
  id: string;
  kind: 'personal' | 'shared';
  name: string;
  functional_email: string | null;
  owner_user_id: string | null;
  filedrop_slug: string;
  filedrop_enabled: boolean;
  require_verified_sender: boolean;
  max_delivery_bytes: number;
  max_files_per_delivery: number;
  retention_days: number;
}

/** What the public filedrop page may know of a mailbox. */
export interface FiledropMailbox {
  id: string;
  name: string;
  maxDeliveryBytes: number;
  maxFiles: number;
  requireVerifiedSender: boolean;
  /** Days a delivery is kept after it arrives (lib/deliveries/retention). */
  retentionDays: number;
  publicKeys: string[];
}

export class MailboxError extends Error {
  constructor(
    readonly status: 400 | 404 | 409,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export const emailSchema = z
  .string()
  .trim()
  .max(254)
  .pipe(z.email())
  .transform((e) => e.toLowerCase());

/** A filedrop slug: 128 random bits in base58 (no look-alike characters, safe in a URL). */
export function newFiledropSlug(): string {
  return bs58.encode(crypto.randomBytes(16));
}

export function filedropUrl(slug: string): string {
  return `${config().publicUrl}/d/${slug}`;
}

/** Creates the mailbox's key pair and stores the private key wrapped under the master key. */
async function createMailboxKey(q: Queryable, mailboxId: string, name: string, mk: MasterKey): Promise<void> {
  const key = await generateMailboxKey(name);
  await q.query(
    `INSERT INTO mailbox_keys (mailbox_id, fingerprint, public_key, wrapped_private_key, master_key_id)
     VALUES ($1, $2, $3, $4, $5)`,
    [mailboxId, key.fingerprint, key.publicKey, wrapPrivateKey(mk.key, mk.id, key.privateKey), mk.id],
  );
}

const newUserSchema = z.object({
  email: emailSchema,
  displayName: z.string().trim().min(1).max(200),
  role: z.enum(['admin', 'handler']).default('handler'),
  locale: z.enum(['sv', 'en']).default('sv'),
});

/** Creates a user with a personal mailbox (key pair, filedrop link) of which they are the member. */
export async function createUser(
  input: z.input<typeof newUserSchema>,
  q?: Queryable,
): Promise<{ user: User; mailbox: Mailbox }> {
  const parsed = newUserSchema.safeParse(input);
  if (!parsed.success) throw new MailboxError(400, 'invalid-user', z.prettifyError(parsed.error));
  const u = parsed.data;
  const run = async (tx: Queryable) => {
    const exists = await tx.query('SELECT 1 FROM users WHERE email = $1', [u.email]);
    if (exists.rows.length) throw new MailboxError(409, 'user-exists', `A user with the address ${u.email} exists already`);
    const user = (
      await tx.query<User>(
        `INSERT INTO users (email, display_name, role, locale) VALUES ($1, $2, $3, $4) RETURNING *`,
        [u.email, u.displayName, u.role, u.locale],
      )
    ).rows[0];
    const mailbox = (
      await tx.query<Mailbox>(
        `INSERT INTO mailboxes (kind, name, owner_user_id, filedrop_slug) VALUES ('personal', $1, $2, $3) RETURNING *`,
        [u.displayName, user.id, newFiledropSlug()],
      )
    ).rows[0];
    await tx.query(`INSERT INTO mailbox_members (mailbox_id, user_id) VALUES ($1, $2)`, [mailbox.id, user.id]);
    await createMailboxKey(tx, mailbox.id, u.displayName, masterKey());
    return { user, mailbox };
  };
  return q ? run(q) : (await db()).transaction(run);
}

const newSharedMailboxSchema = z.object({
  name: z.string().trim().min(1).max(200),
  functionalEmail: emailSchema.optional(),
});

/**
 * Creates a shared (functional) mailbox such as "remisser@…", with its key pair and filedrop link;
 * in `q`'s transaction when given (so the caller can audit it in the same one).
 */
export async function createSharedMailbox(input: z.input<typeof newSharedMailboxSchema>, q?: Queryable): Promise<Mailbox> {
  const parsed = newSharedMailboxSchema.safeParse(input);
  if (!parsed.success) throw new MailboxError(400, 'invalid-mailbox', z.prettifyError(parsed.error));
  const m = parsed.data;
  const run = async (tx: Queryable) => {
    const mailbox = (
      await tx.query<Mailbox>(
        `INSERT INTO mailboxes (kind, name, functional_email, filedrop_slug) VALUES ('shared', $1, $2, $3) RETURNING *`,
        [m.name, m.functionalEmail ?? null, newFiledropSlug()],
      )
    ).rows[0];
    await createMailboxKey(tx, mailbox.id, m.name, masterKey());
    return mailbox;
  };
  return q ? run(q) : (await db()).transaction(run);
}

export async function addMember(mailboxId: string, userId: string): Promise<void> {
  await (await db()).query(
    `INSERT INTO mailbox_members (mailbox_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
    [mailboxId, userId],
  );
}

export async function findUserByEmail(email: string): Promise<User | undefined> {
  return (await (await db()).query<User>('SELECT * FROM users WHERE email = $1', [email.toLowerCase()])).rows[0];
}

export async function personalMailbox(userId: string): Promise<Mailbox | undefined> {
  return (
    await (await db()).query<Mailbox>(`SELECT * FROM mailboxes WHERE owner_user_id = $1 AND kind = 'personal'`, [userId])
  ).rows[0];
}

export async function findMailbox(idOrSlug: string): Promise<Mailbox | undefined> {
  const isUuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(idOrSlug);
  return (
    await (await db()).query<Mailbox>(
      isUuid ? 'SELECT * FROM mailboxes WHERE id = $1' : 'SELECT * FROM mailboxes WHERE filedrop_slug = $1',
      [idOrSlug],
    )
  ).rows[0];
}

export async function listMailboxes(): Promise<Mailbox[]> {
  return (await (await db()).query<Mailbox>('SELECT * FROM mailboxes ORDER BY kind, name')).rows;
}

/** The mailbox behind an enabled filedrop link, or null: unknown and disabled links look the same. */
export async function findFiledropMailbox(slug: string): Promise<FiledropMailbox | null> {
  if (!/^[1-9A-HJ-NP-Za-km-z]{16,30}$/.test(slug)) return null;
  const q = await db();
  const m = (
    await q.query<Mailbox>(`SELECT * FROM mailboxes WHERE filedrop_slug = $1 AND filedrop_enabled`, [slug])
  ).rows[0];
  if (!m) return null;
  return {
    id: m.id,
    name: m.name,
    maxDeliveryBytes: m.max_delivery_bytes,
    maxFiles: m.max_files_per_delivery,
    requireVerifiedSender: m.require_verified_sender,
    retentionDays: m.retention_days,
    publicKeys: await mailboxPublicKeys(q, m.id),
  };
}

/** The keys new deliveries are encrypted to: the mailbox's active key. */
export async function mailboxPublicKeys(q: Queryable, mailboxId: string): Promise<string[]> {
  return (
    await q.query<{ public_key: string }>(`SELECT public_key FROM mailbox_keys WHERE mailbox_id = $1 AND active`, [
      mailboxId,
    ])
  ).rows.map((r) => r.public_key);
}

/** Every private key the mailbox ever had (old deliveries stay readable after rotation), unwrapped. */
export async function mailboxPrivateKeys(q: Queryable, mailboxId: string): Promise<string[]> {
  const rows = (
    await q.query<{ wrapped_private_key: Uint8Array; master_key_id: string }>(
      `SELECT wrapped_private_key, master_key_id FROM mailbox_keys WHERE mailbox_id = $1 ORDER BY created_at DESC`,
      [mailboxId],
    )
  ).rows;
  return rows.map((r) => unwrapMailboxKey(r.wrapped_private_key, r.master_key_id));
}

/**
 * On the first start (no users at all) creates the administrator with a personal mailbox, so a
 * newcomer has a filedrop link to try at once. Returns it, or undefined when users exist.
 */
export async function ensureFirstAdmin(): Promise<{ user: User; mailbox: Mailbox } | undefined> {
  const q = await db();
  return q.transaction(async (tx) => {
    // Serialises instances starting together on one database.
    await tx.query('SELECT pg_advisory_xact_lock(7411002)');
    const any = await tx.query('SELECT 1 FROM users LIMIT 1');
    if (any.rows.length) return undefined;
    const created = await createUser({ email: config().adminEmail, displayName: 'Administrator', role: 'admin' }, tx);
    await audit(tx, { actor: 'system', action: 'user.created', target: `user:${created.user.id}`, detail: { role: 'admin', firstStart: true } });
    return created;
  });
}

export async function findUser(userId: string): Promise<User | undefined> {
  if (!/^[0-9a-f-]{36}$/i.test(userId)) return undefined;
  return (await (await db()).query<User>('SELECT * FROM users WHERE id = $1', [userId])).rows[0];
}

/** The mailboxes a user handles: their personal one first, then shared ones by name. */
export async function userMailboxes(userId: string): Promise<Mailbox[]> {
  return (
    await (await db()).query<Mailbox>(
      `SELECT m.* FROM mailboxes m JOIN mailbox_members mm ON mm.mailbox_id = m.id
       WHERE mm.user_id = $1 ORDER BY m.kind = 'personal' DESC, m.name`,
      [userId],
    )
  ).rows;
}

/** Whether the user may read the mailbox's deliveries: an enabled member, checked on every request. */
export async function isMember(q: Queryable, userId: string, mailboxId: string): Promise<boolean> {
  const r = await q.query(
    `SELECT 1 FROM mailbox_members mm JOIN users u ON u.id = mm.user_id
     WHERE mm.user_id = $1 AND mm.mailbox_id = $2 AND u.disabled_at IS NULL`,
    [userId, mailboxId],
  );
  return r.rows.length > 0;
}
