/**
 * The administrator's view of mailboxes and their members (app/admin/mailboxes): listing, one
 * mailbox in detail, creating a shared mailbox, adding and removing members — every change
 * audited in its own transaction — and the handler's rotation of their own filedrop link.
 */
import { z } from 'zod';
import { audit } from '@/lib/audit';
import { db } from '@/lib/db';
import { createSharedMailbox, emailSchema, findMailbox, MailboxError, type Mailbox, type User } from '@/lib/mailboxes';
import { checkActor, lockMailbox, MAX_POLICY_BYTES, rotateFiledropLink, type MailboxPolicy } from './index';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export type MemberRole = 'handler' | 'manager';

export interface AdminMailboxSummary {
  id: string;
  kind: Mailbox['kind'];
  name: string;
  functionalEmail: string | null;
  linkEnabled: boolean;
  memberCount: number;
  /** Deliveries that reached the mailbox (delivered or rejected). */
  deliveryCount: number;
}

export interface MailboxMember {
  userId: string;
  email: string;
  name: string;
  role: MemberRole;
  disabled: boolean;
}

export interface MailboxKeyInfo {
  fingerprint: string;
  active: boolean;
  createdAt: Date;
}

export interface AdminMailboxDetail {
  mailbox: Mailbox;
  members: MailboxMember[];
  /** Newest first; exactly one is active. */
  keys: MailboxKeyInfo[];
}

/** Every mailbox, shared ones first, with what an administrator checks at a glance. */
export async function listMailboxesForAdmin(): Promise<AdminMailboxSummary[]> {
  const rows = (
    await (await db()).query<{
      id: string;
      kind: Mailbox['kind'];
      name: string;
      functional_email: string | null;
      filedrop_enabled: boolean;
      member_count: number;
      delivery_count: number;
    }>(
      `SELECT m.id, m.kind, m.name, m.functional_email, m.filedrop_enabled,
         (SELECT count(*)::int FROM mailbox_members mm WHERE mm.mailbox_id = m.id) AS member_count,
         (SELECT count(*)::int FROM deliveries d WHERE d.mailbox_id = m.id AND d.state IN ('delivered', 'rejected')) AS delivery_count
       FROM mailboxes m ORDER BY m.kind = 'shared' DESC, lower(m.name), m.id`,
    )
  ).rows;
  return rows.map((r) => ({
    id: r.id,
    kind: r.kind,
    name: r.name,
    functionalEmail: r.functional_email,
    linkEnabled: r.filedrop_enabled,
    memberCount: r.member_count,
    deliveryCount: r.delivery_count,
  }));
}

/** The mailbox by id (a slug is not accepted here), or a 404 MailboxError. */
export async function requireMailboxById(id: string): Promise<Mailbox> {
  const m = UUID.test(id) ? await findMailbox(id) : undefined;
  if (!m) throw new MailboxError(404, 'unknown-mailbox', `No mailbox ${id}`);
  return m;
}

/** One mailbox with its members and key fingerprints, or null when there is no such mailbox. */
export async function mailboxDetail(id: string): Promise<AdminMailboxDetail | null> {
  if (!UUID.test(id)) return null;
  const q = await db();
  const mailbox = await findMailbox(id);
  if (!mailbox) return null;
  const members = (
    await q.query<{ user_id: string; email: string; display_name: string; role: MemberRole; disabled_at: Date | null }>(
      `SELECT mm.user_id, u.email, u.display_name, mm.role, u.disabled_at
       FROM mailbox_members mm JOIN users u ON u.id = mm.user_id
       WHERE mm.mailbox_id = $1 ORDER BY lower(u.display_name), u.email`,
      [id],
    )
  ).rows.map((r) => ({ userId: r.user_id, email: r.email, name: r.display_name, role: r.role, disabled: r.disabled_at !== null }));
  const keys = (
    await q.query<{ fingerprint: string; active: boolean; created_at: Date }>(
      'SELECT fingerprint, active, created_at FROM mailbox_keys WHERE mailbox_id = $1 ORDER BY created_at DESC, active DESC',
      [id],
    )
  ).rows.map((r) => ({ fingerprint: r.fingerprint, active: r.active, createdAt: new Date(r.created_at) }));
  return { mailbox, members, keys };
}

/** Creates a shared mailbox and records `mailbox.created` in the same transaction. */
export async function createSharedMailboxAudited(
  input: { name: string; functionalEmail?: string },
  actor: string,
): Promise<Mailbox> {
  checkActor(actor);
  return (await db()).transaction(async (tx) => {
    const mailbox = await createSharedMailbox(input, tx);
    await audit(tx, {
      actor,
      action: 'mailbox.created',
      target: `mailbox:${mailbox.id}`,
      detail: { kind: mailbox.kind, functionalEmail: mailbox.functional_email },
    });
    return mailbox;
  });
}

const memberSchema = z.object({ email: emailSchema, role: z.enum(['handler', 'manager']) });

/**
 * Makes the user with this address a member of a shared mailbox. A personal mailbox has only its
 * owner (409 `personal-mailbox`); an unknown address is 404 `unknown-user`.
 */
export async function addMemberByEmail(mailboxId: string, email: string, role: MemberRole, actor: string): Promise<MailboxMember> {
  checkActor(actor);
  const parsed = memberSchema.safeParse({ email, role });
  if (!parsed.success) throw new MailboxError(400, 'invalid-member', z.prettifyError(parsed.error));
  const mailbox = await requireMailboxById(mailboxId);
  return (await db()).transaction(async (tx) => {
    const m = await lockMailbox(tx, mailbox.id);
    if (m.kind === 'personal') throw new MailboxError(409, 'personal-mailbox', 'A personal mailbox has only its owner as member');
    const user = (await tx.query<User>('SELECT * FROM users WHERE email = $1', [parsed.data.email])).rows[0];
    if (!user) throw new MailboxError(404, 'unknown-user', `No user ${parsed.data.email}`);
    const added = await tx.query(
      `INSERT INTO mailbox_members (mailbox_id, user_id, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING user_id`,
      [m.id, user.id, parsed.data.role],
    );
    if (!added.rows.length) throw new MailboxError(409, 'already-member', `${user.email} is a member already`);
    await audit(tx, {
      actor,
      action: 'mailbox.member-added',
      target: `mailbox:${m.id}`,
      detail: { userId: user.id, role: parsed.data.role },
    });
    return { userId: user.id, email: user.email, name: user.display_name, role: parsed.data.role, disabled: user.disabled_at !== null };
  });
}

/** Takes a member off a shared mailbox: from the next request on they cannot read its deliveries. */
export async function removeMember(mailboxId: string, userId: string, actor: string): Promise<void> {
  checkActor(actor);
  const mailbox = await requireMailboxById(mailboxId);
  await (await db()).transaction(async (tx) => {
    const m = await lockMailbox(tx, mailbox.id);
    if (m.kind === 'personal') throw new MailboxError(409, 'personal-mailbox', 'The owner of a personal mailbox cannot be removed');
    const removed = UUID.test(userId)
      ? await tx.query('DELETE FROM mailbox_members WHERE mailbox_id = $1 AND user_id = $2 RETURNING user_id', [m.id, userId])
      : { rows: [] };
    if (!removed.rows.length) throw new MailboxError(404, 'not-a-member', `User ${userId} is not a member of this mailbox`);
    await audit(tx, { actor, action: 'mailbox.member-removed', target: `mailbox:${m.id}`, detail: { userId } });
  });
}

/**
 * A handler gives their own personal mailbox a new filedrop link (the old one stops at once).
 * Any other mailbox, theirs to read or not, is 404: a handler cannot rotate a shared link.
 */
export async function rotateOwnFiledropLink(user: User, mailboxId: string): Promise<Mailbox> {
  const m = UUID.test(mailboxId) ? await findMailbox(mailboxId) : undefined;
  if (!m || m.kind !== 'personal' || m.owner_user_id !== user.id) {
    throw new MailboxError(404, 'unknown-mailbox', `No mailbox ${mailboxId}`);
  }
  return rotateFiledropLink(m.id, `user:${user.id}`);
}

const BYTES_PER_GB = 1_000_000_000;

/** A number typed into a form: empty is "not given", a Swedish decimal comma is a point. */
function formNumber(value: unknown): number | undefined {
  if (typeof value !== 'string' || !value.trim()) return undefined;
  const n = Number(value.trim().replace(',', '.'));
  return Number.isFinite(n) ? n : NaN;
}

/**
 * The policy a form post asks for (app/admin/mailboxes/[id]): an unticked checkbox is absent from
 * the post, so it means false; the largest delivery comes in GB (or bytes). The result still goes
 * through mailboxPolicySchema, which refuses what is out of range or not whole.
 */
export function policyFromForm(fields: Record<string, unknown>): MailboxPolicy {
  const gb = formNumber(fields.maxDeliveryGB);
  const bytes = gb === undefined ? formNumber(fields.maxDeliveryBytes) : Math.round(gb * BYTES_PER_GB);
  const policy: MailboxPolicy = {
    requireVerifiedSender: fields.requireVerifiedSender === 'on' || fields.requireVerifiedSender === 'true',
    maxDeliveryBytes: bytes,
    maxFilesPerDelivery: formNumber(fields.maxFiles ?? fields.maxFilesPerDelivery),
    retentionDays: formNumber(fields.retentionDays),
  };
  return Object.fromEntries(Object.entries(policy).filter(([, v]) => v !== undefined)) as MailboxPolicy;
}

/** The largest delivery a policy may allow, in GB, for the form's `max`. */
export const MAX_POLICY_GB = MAX_POLICY_BYTES / BYTES_PER_GB;

/** The name of an exported key file: `inkast-<mailbox>-keys.asc`, in plain ASCII. */
export function keyExportFileName(mailbox: Pick<Mailbox, 'id' | 'name'>): string {
  const plain = mailbox.name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 60);
  return `inkast-${plain || mailbox.id}-keys.asc`;
}
