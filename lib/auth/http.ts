/** Request and response shapes shared by the sign-in routes. */
import { HttpError, isFormPost, readBody, readJson } from '@/lib/http';
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
  if (!isFormPost(req)) {
    const body = await readJson(req, FORM_MAX_BYTES);
    const fields = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
    return { form: false, email: fields.email, next: fields.next };
  }
  const fields = new URLSearchParams((await readBody(req, FORM_MAX_BYTES)).toString('utf8'));
  return { form: true, email: fields.get('email'), next: fields.get('next') };
}
