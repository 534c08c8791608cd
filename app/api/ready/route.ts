import { parseCheckNames, readiness } from '@/lib/health';
import { json } from '@/lib/http';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

/**
 * Readiness: 200 `{ status: 'ready', checks }` when the database, the object store and (when
 * SMTP_URL is set) the mail server answer, else 503 naming the check that failed. Unauthenticated
 * and cheap (results reused for a few seconds); says nothing about hosts, users or errors.
 * `?checks=database,storage` asks for a subset.
 */
export async function GET(req: Request) {
  const names = parseCheckNames(new URL(req.url).searchParams.get('checks'));
  if (!names) return json({ error: 'unknown-check', message: 'checks may name database, storage and mail' }, 400);
  const result = await readiness(names);
  return json(result, result.status === 'ready' ? 200 : 503);
}
