import { requireApiUser } from '@/lib/auth';
import { seeOther } from '@/lib/auth/http';
import { deleteDelivery, DeletionError } from '@/lib/deliveries/retention';
import { isFormPost, json, route } from '@/lib/http';

export const runtime = 'nodejs';

type Context = { params: Promise<{ id: string }> };

/**
 * A handler deletes a delivery of their mailbox now: its objects and rows go, an audit tombstone
 * stays. The delivery page's form goes back to the mailbox (or to the page with the refusal).
 */
export const POST = route(async (req: Request, ctx: Context) => {
  const user = await requireApiUser();
  const { id } = await ctx.params;
  const form = isFormPost(req);
  try {
    const deleted = await deleteDelivery(id, `user:${user.id}`);
    if (form) return seeOther(`/inbox?mailbox=${deleted.mailboxId}&done=delivery-deleted`);
    return json({ deleted: deleted.deliveryId, reference: deleted.reference, files: deleted.files });
  } catch (err) {
    if (form && err instanceof DeletionError && err.status === 409) {
      return seeOther(`/inbox/deliveries/${encodeURIComponent(id)}?error=${err.code}`);
    }
    throw err;
  }
});
