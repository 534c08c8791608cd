import { adminDone, adminRoute, stringField } from '@/lib/admin/http';
import { inviteUser } from '@/lib/admin/users';

export const runtime = 'nodejs';

/** Invites a user: the form on /admin/users, or JSON; answers 201 with the user. */
export const POST = adminRoute(async (_req, { admin, input }) => {
  const f = input.fields;
  const user = await inviteUser(
    { email: stringField(f, 'email'), displayName: stringField(f, 'displayName'), role: stringField(f, 'role'), locale: stringField(f, 'locale') },
    `user:${admin.id}`,
  );
  return adminDone(input, 'user-invited', { user }, 201);
}, '/admin/users');
