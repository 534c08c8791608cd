import { rotateFiledropLink, setFiledropEnabled } from '@/lib/admin';
import { adminDone, adminRoute, stringField } from '@/lib/admin/http';
import { requireMailboxById } from '@/lib/admin/mailboxes';
import { HttpError } from '@/lib/http';
import { filedropUrl } from '@/lib/mailboxes';

export const runtime = 'nodejs';

/** `action`: rotate (a new link; the old one stops at once), disable or enable. */
export const POST = adminRoute<{ id: string }>(async (_req, { admin, input, params }) => {
  const action = stringField(input.fields, 'action');
  if (action !== 'rotate' && action !== 'disable' && action !== 'enable') {
    throw new HttpError(400, 'invalid-input', 'action must be rotate, disable or enable');
  }
  const actor = `user:${admin.id}`;
  const { id } = await requireMailboxById(params.id);
  const m = action === 'rotate' ? await rotateFiledropLink(id, actor) : await setFiledropEnabled(id, action === 'enable', actor);
  const done = { rotate: 'link-rotated', disable: 'link-disabled', enable: 'link-enabled' }[action];
  return adminDone(input, done, { filedropUrl: filedropUrl(m.filedrop_slug), enabled: m.filedrop_enabled });
}, '/admin/mailboxes');
