/**
 * Who is signed in: sessions (./session), email links (./links), OpenID Connect (./oidc).
 * Pages call requireUser (requireAdmin), route handlers requireApiUser (requireApiAdmin); all of
 * them re-check the user on every request.
 */
import { cookies } from 'next/headers';
import { forbidden, redirect } from 'next/navigation';
import { cache } from 'react';
import { HttpError } from '@/lib/http';
import type { User } from '@/lib/mailboxes';
import { safeNextPath } from './next-path';
import { sessionUser } from './session';

export { DEFAULT_AFTER_SIGN_IN, safeNextPath } from './next-path';
export { recordSignIn, type SignInEvent, type SignInMethod, type SignInRefusal } from './record';
export {
  SESSION_ABSOLUTE_MS,
  SESSION_COOKIE,
  SESSION_IDLE_MS,
  type CookieJar,
  type SessionData,
} from './session';
export { requestSignInLink, signInWithLink, SIGN_IN_LINK_TTL_MS, type LinkProblem } from './links';
export { finishOidcSignIn, oidcEnabled, startOidcSignIn, type OidcProblem } from './oidc';
export { signOut } from './sign-out';

/**
 * The signed-in user of this request, or null (no cookie, idle or absolute expiry, user disabled,
 * session_epoch moved on). Once per request however many components ask.
 */
export const getCurrentUser = cache(async (): Promise<User | null> => sessionUser(await cookies()));

/** For pages: the user, or a redirect to the sign-in page that comes back to `nextPath`. */
export async function requireUser(nextPath?: string): Promise<User> {
  const user = await getCurrentUser();
  if (!user) redirect(nextPath ? `/signin?next=${encodeURIComponent(safeNextPath(nextPath))}` : '/signin');
  return user;
}

/** For route handlers: the user, or HttpError(401). */
export async function requireApiUser(): Promise<User> {
  const user = await getCurrentUser();
  if (!user) throw new HttpError(401, 'sign-in-required', 'Sign in first');
  return user;
}

/** For admin pages: the administrator; anyone else signed in gets the 403 page (app/forbidden.tsx). */
export async function requireAdmin(nextPath?: string): Promise<User> {
  const user = await requireUser(nextPath);
  if (user.role !== 'admin') forbidden();
  return user;
}

/** For admin route handlers: the administrator, or HttpError(401) / HttpError(403). */
export async function requireApiAdmin(): Promise<User> {
  const user = await requireApiUser();
  if (user.role !== 'admin') throw new HttpError(403, 'admin-only', 'Only an administrator may do this');
  return user;
}
