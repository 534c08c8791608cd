import { cookies } from 'next/headers';
import { startOidcSignIn } from '@/lib/auth';
import { seeOther } from '@/lib/auth/http';
import { route } from '@/lib/http';

export const runtime = 'nodejs';

/** The sign-in page's button: off to the OpenID Provider (404 when none is configured). */
export const GET = route(async (req: Request) => {
  const started = await startOidcSignIn(await cookies(), new URL(req.url).searchParams.get('next'));
  if (!started.ok) return seeOther(`/signin?problem=${started.problem}`);
  return new Response(null, { status: 303, headers: { Location: started.location, 'Cache-Control': 'no-store' } });
});
