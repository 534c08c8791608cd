import { cookies } from 'next/headers';
import { assertSameOrigin } from '@/lib/auth/http';
import { SenderCodeError, startSenderSession, verifySenderCode } from '@/lib/auth/sender-verification';
import { json, readJson, route } from '@/lib/http';
import { answerRateLimits, clientIp } from '@/lib/ratelimit';

export const runtime = 'nodejs';

/**
 * `{ slug, email, code }` → 200 `{ email, verified: true }` and the sealed sender cookie; a refused
 * code → `{ error: 'code-wrong' | 'code-expired' | 'code-used' | 'code-locked', message, attemptsLeft? }`
 * with 400, 410, 409 or 403; 429 past the per-IP limit.
 */
export const POST = route(
  answerRateLimits(async (req: Request) => {
    assertSameOrigin(req);
    try {
      const sender = await verifySenderCode(await readJson(req, 4096), { ip: clientIp(req) });
      await startSenderSession(await cookies(), sender);
      return json({ email: sender.email, verified: true });
    } catch (err) {
      if (!(err instanceof SenderCodeError)) throw err;
      const attempts = err.attemptsLeft === undefined ? {} : { attemptsLeft: err.attemptsLeft };
      return json({ error: err.code, message: err.message, ...attempts }, err.status);
    }
  }),
);
