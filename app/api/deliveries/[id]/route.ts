import { cancelDelivery, deliveryStatus } from '@/lib/deliveries';
import { json, route } from '@/lib/http';
import { SENDER_TOKEN_HEADER } from '@/lib/uploads';

export const runtime = 'nodejs';

type Context = { params: Promise<{ id: string }> };

export const GET = route(async (req: Request, ctx: Context) => {
  const { id } = await ctx.params;
  return json(await deliveryStatus(id, req.headers.get(SENDER_TOKEN_HEADER)));
});

/** The sender cancels an unsent delivery; what was uploaded is deleted. */
export const DELETE = route(async (req: Request, ctx: Context) => {
  const { id } = await ctx.params;
  await cancelDelivery(id, req.headers.get(SENDER_TOKEN_HEADER));
  return new Response(null, { status: 204, headers: { 'Cache-Control': 'no-store' } });
});
