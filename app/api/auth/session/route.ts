import { requireApiUser } from '@/lib/auth';
import { assertSameOrigin } from '@/lib/auth/http';
import { route } from '@/lib/http';

export const runtime = 'nodejs';

/** Keeps a session alive while the handler is active on a page (pages cannot write cookies): 204 or 401. */
export const POST = route(async (req: Request) => {
  assertSameOrigin(req);
  await requireApiUser();
  return new Response(null, { status: 204, headers: { 'Cache-Control': 'no-store' } });
});
