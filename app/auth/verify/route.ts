import { cookies } from 'next/headers';
import { DEFAULT_AFTER_SIGN_IN, safeNextPath, signInWithLink } from '@/lib/auth';
import { seeOther } from '@/lib/auth/http';
import { route } from '@/lib/http';

export const runtime = 'nodejs';

/** The link in the sign-in email: spends the token once, then on to `next`. */
export const GET = route(async (req: Request) => {
  const params = new URL(req.url).searchParams;
  const next = safeNextPath(params.get('next'));
  const result = await signInWithLink(await cookies(), params.get('token'));
  if (result.ok) return seeOther(next);
  const query = new URLSearchParams({ problem: result.problem });
  if (next !== DEFAULT_AFTER_SIGN_IN) query.set('next', next);
  return seeOther(`/signin?${query}`);
});

/** Link checkers probe with HEAD; without this Next would answer it with GET and spend the link. */
export function HEAD(): Response {
  return new Response(null, { status: 200, headers: { 'Cache-Control': 'no-store' } });
}
