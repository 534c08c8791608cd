import { adminDone, adminRoute, stringField } from '@/lib/admin/http';
import { addMemberByEmail, type MemberRole } from '@/lib/admin/mailboxes';

export const runtime = 'nodejs';

/** Adds a user, by address, to a shared mailbox as handler (the default) or manager. */
export const POST = adminRoute<{ id: string }>(async (_req, { admin, input, params }) => {
  const email = stringField(input.fields, 'email') ?? '';
  const role = (stringField(input.fields, 'role') ?? 'handler') as MemberRole;
  const member = await addMemberByEmail(params.id, email, role, `user:${admin.id}`);
  return adminDone(input, 'member-added', member, 201);
}, '/admin/mailboxes');
