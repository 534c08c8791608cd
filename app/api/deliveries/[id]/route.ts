import { deliveryStatus } from '@/lib/deliveries';
import { json, route } from '@/lib/http';
import { SENDER_TOKEN_HEADER } from '@/lib/uploads';

export const runtime = 'nodejs';

export const GET = route(async (req: Request, ctx: { params: Promise<{ id: string }> }) => {
  const { id } = await ctx.params;
  return json(await deliveryStatus(id, req.headers.get(SENDER_TOKEN_HEADER)));
});
