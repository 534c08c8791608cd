import { adminDone, adminRoute } from '@/lib/admin/http';
import { disableUser } from '@/lib/admin/users';

export const runtime = 'nodejs';

/** Disables the user; their sessions end with their next request. */
export const POST = adminRoute<{ id: string }>(async (_req, { admin, input, params }) => {
  const user = await disableUser(params.id, `user:${admin.id}`);
  return adminDone(input, 'user-disabled', { user });
}, '/admin/users');
