import { rotateOwnFiledropLink } from '@/lib/admin/mailboxes';
import { requireApiUser } from '@/lib/auth';
import { seeOther } from '@/lib/auth/http';
import { isFormPost, json, route } from '@/lib/http';
import { filedropUrl } from '@/lib/mailboxes';

export const runtime = 'nodejs';

/** A handler's new link for their own personal mailbox (the inbox's form, or JSON). */
export const POST = route(async (req: Request, ctx: { params: Promise<{ id: string }> }) => {
  const user = await requireApiUser();
  const m = await rotateOwnFiledropLink(user, (await ctx.params).id);
  if (isFormPost(req)) {
    return seeOther(`/inbox?mailbox=${m.id}&done=link-rotated`);
  }
  return json({ filedropUrl: filedropUrl(m.filedrop_slug) });
});
