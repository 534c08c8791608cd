/**
 * Cross-site request forgery: a state-changing request must come from an Inkast page.
 *
 * Browsers tell where a request comes from: `Origin` (sent on every POST, PUT, PATCH and DELETE
 * by current browsers), `Sec-Fetch-Site`, and for old ones `Referer`. A request with none of them
 * comes from no browser (an integration, curl, the Node sender): it cannot carry a victim's
 * cookies, so it is let through, and its token or session is checked as usual.
 *
 * `Origin: null` is what a browser sends for a plain form post (a navigation) from a page whose
 * Referrer-Policy is no-referrer, as every Inkast page's is. It is accepted only together with
 * `Sec-Fetch-Site: same-origin`, which no page can forge; a sandboxed frame, a data: URL or a
 * cross-site redirect sends `null` with another Sec-Fetch-Site (or none) and is refused.
 *
 * No imports beyond the platform: the proxy uses this too.
 */

/** Methods that change nothing; the check lets them through. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export type OriginVerdict =
  | { ok: true }
  | { ok: false; reason: 'foreign-origin' | 'opaque-origin' | 'cross-site' | 'foreign-referer' };

interface RequestLike {
  method: string;
  headers: { get(name: string): string | null };
}

export function isStateChanging(method: string): boolean {
  return !SAFE_METHODS.has(method.toUpperCase());
}

/**
 * Whether `req` may change state on the site whose origin is `expectedOrigin` (scheme, host and
 * port of INKAST_PUBLIC_URL). Safe methods always may.
 */
export function checkOrigin(req: RequestLike, expectedOrigin: string): OriginVerdict {
  if (!isStateChanging(req.method)) return { ok: true };
  const origin = req.headers.get('origin');
  const site = req.headers.get('sec-fetch-site');
  if (origin !== null) {
    if (origin.trim().toLowerCase() === 'null') {
      if (site !== 'same-origin') return { ok: false, reason: 'opaque-origin' };
    } else if (origin !== expectedOrigin) return { ok: false, reason: 'foreign-origin' };
  }
  // same-site is refused too: a sibling subdomain is another site for this purpose.
  if (site !== null && site !== 'same-origin' && site !== 'none') return { ok: false, reason: 'cross-site' };
  if (origin === null && site === null) {
    const referer = req.headers.get('referer');
    if (referer !== null && originOf(referer) !== expectedOrigin) return { ok: false, reason: 'foreign-referer' };
  }
  return { ok: true };
}

function originOf(url: string): string | null {
  try {
    return new URL(url).origin;
  } catch {
    return null;
  }
}

/** The 403 answer to a refused request, as the API shapes its errors. */
export function crossOriginRefusal(headers: Record<string, string> = {}): Response {
  return Response.json(
    { error: 'cross-origin', message: 'This request must come from an Inkast page' },
    { status: 403, headers: { 'Cache-Control': 'no-store', ...headers } },
  );
}
