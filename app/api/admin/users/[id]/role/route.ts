import { adminDone, adminRoute, stringField } from '@/lib/admin/http';
import { parseRole, setUserRole } from '@/lib/admin/users';

export const runtime = 'nodejs';

/** Sets the user's role: { role: 'admin' | 'handler' }. */
export const POST = adminRoute<{ id: string }>(async (_req, { admin, input, params }) => {
  const user = await setUserRole(params.id, parseRole(stringField(input.fields, 'role')), `user:${admin.id}`);
  return adminDone(input, 'role-changed', { user });
}, '/admin/users');
