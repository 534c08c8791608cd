/** Where to go after signing in: only a path on this site, never another origin. */
export const DEFAULT_AFTER_SIGN_IN = '/inbox';

const BASE = 'http://inkast.invalid';

/**
 * `value` as a same-origin path, or `fallback`. Rejects absolute and scheme-relative URLs
 * (`//evil.example`), backslashes and control characters (browsers turn `/\evil.example` and
 * `/\t/evil.example` into `//evil.example`), and the sign-in routes themselves (no loops).
 */
export function safeNextPath(value: unknown, fallback = DEFAULT_AFTER_SIGN_IN): string {
  if (typeof value !== 'string' || value.length > 2000) return fallback;
  if (!value.startsWith('/') || value.startsWith('//') || /[\\\u0000-\u001f\u007f]/.test(value)) return fallback;
  let url: URL;
  try {
    url = new URL(value, BASE);
  } catch {
    return fallback;
  }
  if (url.origin !== BASE) return fallback;
  if (/^\/(signin|auth|api\/auth)(\/|$)/.test(url.pathname)) return fallback;
  return url.pathname + url.search + url.hash;
}
