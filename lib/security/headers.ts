/**
 * The security headers of every response, in one place. Pure functions with no imports, so the
 * proxy (proxy.ts), the route-handler helpers (lib/http) and next.config.ts can all use them.
 *
 * Pages get a Content-Security-Policy with a fresh nonce per request (proxy.ts puts it on the
 * request too: Next reads the nonce from the request's CSP header and puts it on its own
 * scripts). JSON and file responses get a policy that allows nothing at all.
 */

/** 128 random bits, base64: a fresh one per page response. */
export function newNonce(): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return btoa(String.fromCharCode(...bytes));
}

export interface PagePolicyOptions {
  nonce: string;
  /** The site is served over https (the public URL says so): upgrade any stray http subresource. */
  https: boolean;
  /** `next dev` needs eval for its error overlay; production never does. */
  dev?: boolean;
}

/**
 * The policy of every HTML page.
 *
 * - script-src: only scripts carrying this response's nonce, and what they load ('strict-dynamic':
 *   Next's chunks). No host allowlist, so not even a same-origin file served by /api/files can be
 *   made into a script. No eval of any kind, not even WebAssembly's: the page compiles none.
 * - worker-src 'self': the encryption worker. Turbopack starts it as a classic worker from
 *   /_next/static/chunks/turbopack-worker-*.js (checked in Chromium); its hash-wasm WebAssembly
 *   runs under the worker script's own policy (static files carry none), not this one.
 * - style-src: the stylesheet from /_next/static and nonce-carrying <style> elements; no inline
 *   style attributes.
 * - connect-src 'self': the API and tus uploads only. form-action 'self', base-uri 'none',
 *   object-src 'none', frame-src 'none', frame-ancestors 'none' (no framing: clickjacking).
 */
export function pageContentSecurityPolicy({ nonce, https, dev = false }: PagePolicyOptions): string {
  const directives = [
    "default-src 'self'",
    `script-src 'nonce-${nonce}' 'strict-dynamic'${dev ? " 'unsafe-eval'" : ''}`,
    `style-src 'self' 'nonce-${nonce}'`,
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "worker-src 'self'",
    "manifest-src 'self'",
    "media-src 'none'",
    "object-src 'none'",
    "frame-src 'none'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'self'",
  ];
  if (https) directives.push('upgrade-insecure-requests');
  return directives.join('; ');
}

/** For JSON, redirects and files: nothing may load, run or frame. */
export const API_CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/** Two years, the usual HSTS age; subdomains of the portal's own host are covered too. */
export const STRICT_TRANSPORT_SECURITY = 'max-age=63072000; includeSubDomains';

/** Powerful browser features nothing in Inkast uses, switched off for the page and any frame. */
export const PERMISSIONS_POLICY = [
  'accelerometer=()',
  'autoplay=()',
  'bluetooth=()',
  'browsing-topics=()',
  'camera=()',
  'display-capture=()',
  'geolocation=()',
  'gyroscope=()',
  'hid=()',
  'idle-detection=()',
  'interest-cohort=()',
  'magnetometer=()',
  'microphone=()',
  'midi=()',
  'payment=()',
  'publickey-credentials-get=()',
  'screen-wake-lock=()',
  'serial=()',
  'usb=()',
  'xr-spatial-tracking=()',
].join(', ');

/**
 * Headers every response carries, pages and API alike. Referrer-Policy no-referrer: filedrop
 * slugs and sign-in tokens are in URLs and must never leave in a Referer.
 */
export function commonSecurityHeaders({ https }: { https: boolean }): Record<string, string> {
  const headers: Record<string, string> = {
    'Referrer-Policy': 'no-referrer',
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
    'Permissions-Policy': PERMISSIONS_POLICY,
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cross-Origin-Resource-Policy': 'same-origin',
    'X-DNS-Prefetch-Control': 'off',
    'X-Permitted-Cross-Domain-Policies': 'none',
  };
  if (https) headers['Strict-Transport-Security'] = STRICT_TRANSPORT_SECURITY;
  return headers;
}

/** What a page response carries: the common headers and the page policy with its nonce. */
export function pageSecurityHeaders(opts: PagePolicyOptions): Record<string, string> {
  return { ...commonSecurityHeaders(opts), 'Content-Security-Policy': pageContentSecurityPolicy(opts) };
}

/** What an API (JSON, redirect, file) response carries. */
export function apiSecurityHeaders({ https }: { https: boolean }): Record<string, string> {
  return { ...commonSecurityHeaders({ https }), 'Content-Security-Policy': API_CONTENT_SECURITY_POLICY };
}

/**
 * For next.config.ts `headers()`: the routes no proxy may touch (the tus endpoint, see
 * ARCHITECTURE.md) still get the API headers this way. `https` comes from INKAST_PUBLIC_URL.
 */
export function staticHeaderRules(https: boolean): { source: string; headers: { key: string; value: string }[] }[] {
  const headers = Object.entries(apiSecurityHeaders({ https })).map(([key, value]) => ({ key, value }));
  return [{ source: '/api/tus/:path*', headers }];
}
