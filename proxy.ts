/**
 * Next's proxy (formerly middleware), for pages: a fresh CSP nonce and the security headers on
 * every page, the cross-site check on state-changing page requests (Server Actions, form posts)
 * and a 400 for requests Next itself would answer with a 500 (a malformed percent-encoding in
 * the path, a form body that does not parse).
 *
 * It never sees a well-formed /api request: Next copies the request body for every request a
 * proxy matches and cuts it at 10 MB, which would break tus uploads (ARCHITECTURE.md). The one
 * /api pattern it matches is a path holding a '%', which no upload URL (hex ids) and no API URL
 * Inkast makes ever holds. API routes get their headers and their cross-site check from
 * `route()` in lib/http, the tus endpoint from lib/uploads.
 */
import { NextResponse, type NextRequest } from 'next/server';
import { config as appConfig } from '@/lib/config';
import { apiSecurityHeaders, newNonce, pageSecurityHeaders } from '@/lib/security/headers';
import { checkOrigin, crossOriginRefusal, isStateChanging } from '@/lib/security/origin';

function badRequest(message: string, headers: Record<string, string>): Response {
  return Response.json({ error: 'bad-request', message }, { status: 400, headers: { 'Cache-Control': 'no-store', ...headers } });
}

function decodable(pathname: string): boolean {
  try {
    decodeURIComponent(pathname);
    return true;
  } catch {
    return false;
  }
}

/** A form body Next would fail to parse (and answer 500 for). */
async function unparsableForm(request: NextRequest): Promise<boolean> {
  const type = request.headers.get('content-type') ?? '';
  if (!/^(multipart\/form-data|application\/x-www-form-urlencoded)\b/i.test(type)) return false;
  try {
    await request.clone().formData();
    return false;
  } catch {
    return true;
  }
}

export async function proxy(request: NextRequest) {
  const c = appConfig();
  const publicUrl = new URL(c.publicUrl);
  const https =
    publicUrl.protocol === 'https:' || (c.trustProxy && request.headers.get('x-forwarded-proto')?.split(',')[0].trim() === 'https');
  const { pathname } = request.nextUrl;

  if (pathname === '/api' || pathname.startsWith('/api/')) {
    // Only paths with a '%' get here (see config below).
    if (!decodable(pathname)) return badRequest('The request path is not valid percent-encoding', apiSecurityHeaders({ https }));
    return NextResponse.next();
  }

  const nonce = newNonce();
  const headers = pageSecurityHeaders({ nonce, https, dev: process.env.NODE_ENV === 'development' });
  if (!checkOrigin(request, publicUrl.origin).ok) return crossOriginRefusal(headers);
  if (!decodable(pathname)) return badRequest('The request path is not valid percent-encoding', headers);
  if (isStateChanging(request.method) && (await unparsableForm(request))) return badRequest('The form data cannot be read', headers);

  // Next reads the nonce from the request's CSP header and puts it on its own scripts.
  const requestHeaders = new Headers(request.headers);
  requestHeaders.set('content-security-policy', headers['Content-Security-Policy']);
  requestHeaders.set('x-nonce', nonce);
  const response = NextResponse.next({ request: { headers: requestHeaders } });
  for (const [k, v] of Object.entries(headers)) response.headers.set(k, v);
  return response;
}

export const config = {
  matcher: [
    // Pages and the route handlers outside /api; not the API (tus above all), static files, favicon.
    '/((?!api|_next/static|_next/image|favicon.ico).*)',
    // An /api path with a '%': Next's router answers a malformed one with a bare 500.
    '/api/(.*%.*)',
  ],
};
