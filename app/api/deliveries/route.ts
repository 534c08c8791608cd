import { senderFromRequest } from '@/lib/auth/sender-verification';
import { createDelivery } from '@/lib/deliveries';
import { json, readJson, route } from '@/lib/http';
import { answerRateLimits, clientIp } from '@/lib/ratelimit';

export const runtime = 'nodejs';

/** The sender cookie (a code-verified address) and the client's address go with the request. */
export const POST = route(
  answerRateLimits(async (req: Request) =>
    json(await createDelivery(await readJson(req), { ip: clientIp(req), sender: await senderFromRequest(req) }), 201),
  ),
);
