import { adminDone, adminRoute } from '@/lib/admin/http';
import { enableUser } from '@/lib/admin/users';

export const runtime = 'nodejs';

export const POST = adminRoute<{ id: string }>(async (_req, { admin, input, params }) => {
  const user = await enableUser(params.id, `user:${admin.id}`);
  return adminDone(input, 'user-enabled', { user });
}, '/admin/users');
