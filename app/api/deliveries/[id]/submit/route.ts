import { MAX_MANIFEST_BYTES, submitDelivery } from '@/lib/deliveries';
import { json, readJson, route } from '@/lib/http';
import { SENDER_TOKEN_HEADER } from '@/lib/uploads';

export const runtime = 'nodejs';

export const POST = route(async (req: Request, ctx: { params: Promise<{ id: string }> }) => {
  const { id } = await ctx.params;
  const body = await readJson(req, 2 * MAX_MANIFEST_BYTES);
  return json({ state: await submitDelivery(id, req.headers.get(SENDER_TOKEN_HEADER), body) }, 202);
});
