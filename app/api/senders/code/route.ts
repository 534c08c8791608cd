import { requestSenderCode } from '@/lib/auth/sender-verification';
import { json, readJson, route } from '@/lib/http';
import { answerRateLimits, clientIp } from '@/lib/ratelimit';

export const runtime = 'nodejs';

/**
 * `{ slug, email, locale? }` → 202 `{ status: 'sent' }`, the same answer (in the same time) whether
 * or not the link exists or its mailbox asks for codes; 400 for a malformed address, 429 past a limit.
 */
export const POST = route(
  answerRateLimits(async (req: Request) => {
    await requestSenderCode(await readJson(req, 4096), { ip: clientIp(req) });
    return json({ status: 'sent' }, 202);
  }),
);
