/** Request and response shapes shared by the sign-in routes. */
import { HttpError, readJson } from '@/lib/http';
import { checkOrigin } from '@/lib/security';

/** A 303 to a path of this site: relative, so it holds behind any proxy; never cached, never a Referer. */
export function seeOther(location: string): Response {
  return new Response(null, {
    status: 303,
    headers: { Location: location, 'Cache-Control': 'no-store', 'Referrer-Policy': 'no-referrer' },
  });
}

/**
 * Refuses a state-changing request sent from another site. SameSite=Lax already keeps the
 * cookie off cross-site POSTs; this also stops a sibling subdomain, which counts as same-site.
 */
export function assertSameOrigin(req: Request): void {
  if (!checkOrigin(req).ok) throw new HttpError(403, 'cross-origin', 'This request must come from an Inkast page');
}

const FORM_MAX_BYTES = 4096;

/** The sign-in request, from the page's form post (no script needed) or as JSON. */
export async function readSignInRequest(req: Request): Promise<{ form: boolean; email: unknown; next: unknown }> {
  const type = req.headers.get('content-type') ?? '';
  if (!/^application\/x-www-form-urlencoded\b/i.test(type)) {
    const body = await readJson(req, FORM_MAX_BYTES);
    const fields = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
    return { form: false, email: fields.email, next: fields.next };
  }
  const reader = req.body?.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  while (reader) {
    const { value, done } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > FORM_MAX_BYTES) {
      await reader.cancel();
      throw new HttpError(413, 'body-too-large', `The request body may be at most ${FORM_MAX_BYTES} bytes`);
    }
    parts.push(value);
  }
  const fields = new URLSearchParams(Buffer.concat(parts).toString('utf8'));
  return { form: true, email: fields.get('email'), next: fields.get('next') };
}
