import { json } from '@/lib/http';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

/** Liveness: the process answers. Says nothing else. */
export function GET() {
  return json({ status: 'ok' });
}
