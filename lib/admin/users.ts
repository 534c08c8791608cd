/**
 * User administration: the list of users, inviting one (a user with a personal mailbox and a mail
 * telling them so), their role, switching them off and on. Every change is audited in the same
 * transaction as the change itself.
 *
 * The last enabled administrator can be neither disabled nor demoted, and nobody may do either to
 * themself. Each such change first locks every enabled administrator row, so two administrators
 * removing each other at the same moment are serialised and the second is refused.
 */
import { z } from 'zod';
import { audit } from '@/lib/audit';
import { db, type Queryable } from '@/lib/db';
import { queueMail } from '@/lib/mail';
import { createUser, emailSchema, filedropUrl, MailboxError, type Role, type User } from '@/lib/mailboxes';
import { checkActor } from './index';

export interface ListedUser extends User {
  created_at: Date;
  /** The user's personal mailbox and its filedrop slug (every user has one; null only for rows made outside createUser). */
  personal_mailbox_id: string | null;
  filedrop_slug: string | null;
  /** How many shared mailboxes the user is a member of. */
  shared_mailboxes: number;
}

// Never session_epoch: it is the sessions' business, not the administrator's.
const USER_COLUMNS = 'id, email, display_name, role, locale, disabled_at, created_at';

const LISTED_USERS = `
  SELECT u.id, u.email, u.display_name, u.role, u.locale, u.disabled_at, u.created_at,
         p.id AS personal_mailbox_id, p.filedrop_slug,
         (SELECT count(*)::int FROM mailbox_members mm JOIN mailboxes m ON m.id = mm.mailbox_id
           WHERE mm.user_id = u.id AND m.kind = 'shared') AS shared_mailboxes
    FROM users u LEFT JOIN mailboxes p ON p.owner_user_id = u.id AND p.kind = 'personal'`;

/** Every user, enabled ones first, then by name. */
export async function listUsers(): Promise<ListedUser[]> {
  return (await (await db()).query<ListedUser>(`${LISTED_USERS} ORDER BY u.disabled_at IS NOT NULL, lower(u.display_name), u.email`)).rows;
}

const userIdSchema = z.uuid();
const roleSchema = z.enum(['admin', 'handler']);

const invitationSchema = z.strictObject({
  email: emailSchema,
  displayName: z.string().trim().min(1).max(200),
  role: roleSchema.default('handler'),
  locale: z.enum(['sv', 'en']).default('sv'),
});

export type Invitation = z.input<typeof invitationSchema>;

/**
 * Creates the user with their personal mailbox and queues the mail telling them they have an
 * account (where to sign in, their filedrop link; nothing that signs anyone in). Fields as they
 * came from a form or JSON: validated here.
 */
export async function inviteUser(input: { [K in keyof Invitation]?: unknown }, actor: string): Promise<ListedUser> {
  checkActor(actor);
  const parsed = invitationSchema.safeParse(input);
  if (!parsed.success) throw new MailboxError(400, 'invalid-user', z.prettifyError(parsed.error));
  const invitation = parsed.data;
  return (await db()).transaction(async (tx) => {
    const { user, mailbox } = await createUser(invitation, tx);
    await audit(tx, { actor, action: 'user.invited', target: `user:${user.id}`, detail: { role: user.role } });
    await queueMail(tx, {
      to: user.email,
      template: 'user-invited',
      locale: user.locale,
      params: { email: user.email, filedropUrl: filedropUrl(mailbox.filedrop_slug) },
      dedupeKey: `user-invited:${user.id}`,
    });
    return (await tx.query<ListedUser>(`${LISTED_USERS} WHERE u.id = $1`, [user.id])).rows[0];
  });
}

async function lockUser(tx: Queryable, userId: string): Promise<User> {
  const user = userIdSchema.safeParse(userId).success
    ? (await tx.query<User>(`SELECT ${USER_COLUMNS} FROM users WHERE id = $1 FOR UPDATE`, [userId])).rows[0]
    : undefined;
  if (!user) throw new MailboxError(404, 'unknown-user', `No user ${userId}`);
  return user;
}

/**
 * Refuses to take `user` away from the enabled administrators when they are the acting user or
 * the last one. Locks every enabled administrator first (in id order, so racing changes queue
 * rather than deadlock); a change waiting here sees the outcome of the one before it.
 */
async function lockAdministratorsAndUser(tx: Queryable, userId: string, actor: string, what: 'disable' | 'demote'): Promise<User> {
  const admins = (
    await tx.query<{ id: string }>(`SELECT id FROM users WHERE role = 'admin' AND disabled_at IS NULL ORDER BY id FOR UPDATE`)
  ).rows.map((r) => r.id);
  const user = await lockUser(tx, userId);
  const stillAdmin = user.role === 'admin' && user.disabled_at === null;
  if (checkActor(actor) === user.id) {
    throw new MailboxError(409, 'own-account', `An administrator may not ${what} their own account`);
  }
  if (stillAdmin && admins.length <= 1) {
    throw new MailboxError(409, 'last-admin', `${user.email} is the last enabled administrator`);
  }
  return user;
}

/** A role as it came from a form, JSON or the command line, or a 400 MailboxError. */
export function parseRole(value: unknown): Role {
  const parsed = roleSchema.safeParse(value);
  if (!parsed.success) throw new MailboxError(400, 'invalid-role', 'The role is admin or handler');
  return parsed.data;
}

export async function setUserRole(userId: string, role: Role, actor: string): Promise<User> {
  checkActor(actor);
  const to = parseRole(role);
  return (await db()).transaction(async (tx) => {
    const before = to === 'handler' ? await lockAdministratorsAndUser(tx, userId, actor, 'demote') : await lockUser(tx, userId);
    if (before.role === to) return before;
    const user = (await tx.query<User>(`UPDATE users SET role = $2 WHERE id = $1 RETURNING ${USER_COLUMNS}`, [userId, to])).rows[0];
    await audit(tx, { actor, action: 'user.role-changed', target: `user:${userId}`, detail: { from: before.role, to: user.role } });
    return user;
  });
}

/** Switches the user off: they cannot sign in, and every session they have ends with its next request. */
export async function disableUser(userId: string, actor: string): Promise<User> {
  checkActor(actor);
  return (await db()).transaction(async (tx) => {
    const before = await lockAdministratorsAndUser(tx, userId, actor, 'disable');
    if (before.disabled_at !== null) return before;
    // The session check compares the epoch too, so this ends sessions even if disabled_at were cleared at once.
    const user = (
      await tx.query<User>(
        `UPDATE users SET disabled_at = now(), session_epoch = session_epoch + 1 WHERE id = $1 RETURNING ${USER_COLUMNS}`,
        [userId],
      )
    ).rows[0];
    await audit(tx, { actor, action: 'user.disabled', target: `user:${userId}` });
    return user;
  });
}

export async function enableUser(userId: string, actor: string): Promise<User> {
  checkActor(actor);
  return (await db()).transaction(async (tx) => {
    const before = await lockUser(tx, userId);
    if (before.disabled_at === null) return before;
    const user = (await tx.query<User>(`UPDATE users SET disabled_at = NULL WHERE id = $1 RETURNING ${USER_COLUMNS}`, [userId])).rows[0];
    await audit(tx, { actor, action: 'user.enabled', target: `user:${userId}` });
    return user;
  });
}
