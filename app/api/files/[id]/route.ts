import { requireApiUser } from '@/lib/auth';
import { serveFile } from '@/lib/deliveries/download';
import { route } from '@/lib/http';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

const handle = route(async (req: Request, ctx: { params: Promise<{ id: string }> }) => {
  const user = await requireApiUser();
  return serveFile(req, user, (await ctx.params).id);
});

export { handle as GET, handle as HEAD };
