import { cookies } from 'next/headers';
import { signOut } from '@/lib/auth';
import { assertSameOrigin, seeOther } from '@/lib/auth/http';
import { route } from '@/lib/http';

export const runtime = 'nodejs';

export const POST = route(async (req: Request) => {
  assertSameOrigin(req);
  await signOut(await cookies());
  return seeOther('/signin?signed-out=1');
});
