import { adminDone, adminRoute } from '@/lib/admin/http';
import { removeMember } from '@/lib/admin/mailboxes';

export const runtime = 'nodejs';

export const POST = adminRoute<{ id: string; userId: string }>(async (_req, { admin, input, params }) => {
  await removeMember(params.id, params.userId, `user:${admin.id}`);
  return adminDone(input, 'member-removed', { removed: params.userId });
}, '/admin/mailboxes');
