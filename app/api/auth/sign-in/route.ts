import { requestSignInLink, safeNextPath } from '@/lib/auth';
import { readSignInRequest, seeOther } from '@/lib/auth/http';
import { HttpError, json, route } from '@/lib/http';
import { clientIp, isRateLimitError, limitSignIn, rateLimitResponse } from '@/lib/ratelimit';

export const runtime = 'nodejs';

/** The same answer whether or not the address has an account (lib/auth also evens out the timing). */
export const POST = route(async (req: Request) => {
  const input = await readSignInRequest(req);
  try {
    // Counted per address and per IP whether or not the account exists: a 429 tells nothing.
    if (typeof input.email === 'string' && input.email) await limitSignIn(clientIp(req), input.email);
    await requestSignInLink(input);
  } catch (err) {
    if (isRateLimitError(err)) {
      if (!input.form) return rateLimitResponse(err);
      return seeOther(`/signin?${new URLSearchParams({ limited: String(err.retryAfter), next: safeNextPath(input.next) })}`);
    }
    // The page's form without script: back to the form, which shows the error.
    if (input.form && err instanceof HttpError && err.code === 'invalid-email') {
      const query = new URLSearchParams({ error: input.email ? 'email-invalid' : 'email-required', next: safeNextPath(input.next) });
      return seeOther(`/signin?${query}`);
    }
    throw err;
  }
  return input.form ? seeOther('/signin?sent=1') : json({ status: 'sent' }, 202);
});
