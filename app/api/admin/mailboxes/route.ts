import { createSharedMailboxAudited } from '@/lib/admin/mailboxes';
import { adminDone, adminRoute, stringField } from '@/lib/admin/http';
import { filedropUrl } from '@/lib/mailboxes';

export const runtime = 'nodejs';

/** Creates a shared mailbox; a form goes on to the new mailbox's page. */
export const POST = adminRoute(async (_req, { admin, input }) => {
  const name = stringField(input.fields, 'name') ?? '';
  const functionalEmail = stringField(input.fields, 'functionalEmail');
  const m = await createSharedMailboxAudited({ name, functionalEmail }, `user:${admin.id}`);
  return adminDone(
    input,
    'mailbox-created',
    { id: m.id, name: m.name, functionalEmail: m.functional_email, filedropUrl: filedropUrl(m.filedrop_slug) },
    201,
    `/admin/mailboxes/${m.id}`,
  );
}, '/admin/mailboxes');
