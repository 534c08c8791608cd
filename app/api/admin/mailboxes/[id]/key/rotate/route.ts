import { rotateMailboxKey } from '@/lib/admin';
import { adminDone, adminRoute } from '@/lib/admin/http';
import { requireMailboxById } from '@/lib/admin/mailboxes';

export const runtime = 'nodejs';

export const POST = adminRoute<{ id: string }>(async (_req, { admin, input, params }) => {
  const { id } = await requireMailboxById(params.id);
  return adminDone(input, 'key-rotated', await rotateMailboxKey(id, `user:${admin.id}`));
}, '/admin/mailboxes');
