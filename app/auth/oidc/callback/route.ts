import { cookies } from 'next/headers';
import { DEFAULT_AFTER_SIGN_IN, finishOidcSignIn } from '@/lib/auth';
import { seeOther } from '@/lib/auth/http';
import { route } from '@/lib/http';

export const runtime = 'nodejs';

export const GET = route(async (req: Request) => {
  const result = await finishOidcSignIn(await cookies(), new URL(req.url).search);
  if (result.ok) return seeOther(result.next);
  const query = new URLSearchParams({ problem: result.problem });
  if (result.next !== DEFAULT_AFTER_SIGN_IN) query.set('next', result.next);
  return seeOther(`/signin?${query}`);
});
