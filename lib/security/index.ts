/**
 * Web security in one module: response headers (./headers), the cross-site request check
 * (./origin), the tus request schema (./tus). The helpers here bind them to the configuration.
 */
import { config } from '@/lib/config';
import { apiSecurityHeaders } from './headers';
import { checkOrigin as checkOriginAgainst, crossOriginRefusal, type OriginVerdict } from './origin';

export * from './headers';
export { crossOriginRefusal, isStateChanging, type OriginVerdict } from './origin';
export { TUS_MAX_UPLOAD_LENGTH, TUS_VERSION, tusRefusal, validateTusRequest, type TusVerdict } from './tus';

/** The origin (scheme://host:port) of INKAST_PUBLIC_URL: the only one allowed to change state. */
export function publicOrigin(): string {
  return new URL(config().publicUrl).origin;
}

/** Served over https (INKAST_PUBLIC_URL says so, or a trusted proxy does): send HSTS. */
export function servedOverHttps(req?: { headers: { get(name: string): string | null } }): boolean {
  if (config().publicUrl.startsWith('https:')) return true;
  return Boolean(config().trustProxy && req?.headers.get('x-forwarded-proto')?.split(',')[0].trim() === 'https');
}

/**
 * The cross-site request check against this instance's public origin: `{ ok: true }` for safe
 * methods and for requests from an Inkast page (or from no browser at all), else why not.
 *
 * Call it before any work in every handler of a state-changing request that does not go through
 * `route()` from lib/http (which calls it already), e.g. first thing in the tus hooks:
 *   `if (!checkOrigin(req).ok) throw refusal(403, 'This request must come from an Inkast page')`.
 */
export function checkOrigin(req: { method: string; headers: { get(name: string): string | null } }): OriginVerdict {
  return checkOriginAgainst(req, publicOrigin());
}

/** `checkOrigin` as a ready answer: the 403 response to return, or null to go on. */
export function refuseCrossOrigin(req: { method: string; headers: { get(name: string): string | null } }): Response | null {
  return checkOrigin(req).ok ? null : crossOriginRefusal(apiSecurityHeaders({ https: servedOverHttps(req) }));
}
