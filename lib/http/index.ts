/**
 * What every route handler shares: reading a bounded JSON body, shaping errors, the security
 * headers of an API answer and the cross-site check of a state-changing request.
 */
import { DeliveryError } from '@/lib/deliveries';
import { DeletionError } from '@/lib/deliveries/retention';
import { logger } from '@/lib/log';
import { MailboxError } from '@/lib/mailboxes';
import { apiSecurityHeaders, checkOrigin, crossOriginRefusal, servedOverHttps } from '@/lib/security';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const noStore = { 'Cache-Control': 'no-store' };

export function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return Response.json(body, { status, headers: { ...noStore, ...apiSecurityHeaders({ https: servedOverHttps() }), ...headers } });
}

/**
 * The API security headers (lib/security) on a response, where it does not set its own (a file
 * download keeps its sandboxing policy). Immutable headers (Response.redirect) get a copy.
 */
export function withSecurityHeaders(res: Response, req?: Request): Response {
  const wanted = Object.entries(apiSecurityHeaders({ https: servedOverHttps(req) })).filter(([k]) => !res.headers.has(k));
  if (!wanted.length) return res;
  try {
    for (const [k, v] of wanted) res.headers.set(k, v);
    return res;
  } catch {
    const headers = new Headers(res.headers);
    for (const [k, v] of wanted) headers.set(k, v);
    return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
  }
}

/** Whether the request is a page's plain form post (answered with a redirect, not JSON). */
export function isFormPost(req: Request): boolean {
  return /^application\/x-www-form-urlencoded\b/i.test(req.headers.get('content-type') ?? '');
}

/** Reads a body of at most maxBytes, stopping at the first byte over it (413). */
export async function readBody(req: Request, maxBytes: number): Promise<Buffer> {
  const declared = Number(req.headers.get('content-length') ?? '0');
  if (declared > maxBytes) throw new HttpError(413, 'body-too-large', `The request body may be at most ${maxBytes} bytes`);
  const reader = req.body?.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  while (reader) {
    const { value, done } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      throw new HttpError(413, 'body-too-large', `The request body may be at most ${maxBytes} bytes`);
    }
    parts.push(value);
  }
  return Buffer.concat(parts);
}

/** Reads a JSON body of at most maxBytes; a clear 413/415/400 otherwise. */
export async function readJson(req: Request, maxBytes = 16 * 1024): Promise<unknown> {
  const type = req.headers.get('content-type') ?? '';
  if (!/^application\/json\b/i.test(type)) throw new HttpError(415, 'unsupported-media-type', 'Send application/json');
  const body = await readBody(req, maxBytes);
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError(400, 'invalid-json', 'The request body is not valid JSON');
  }
}

/** Turns a thrown error into the JSON answer; anything unexpected is a 500 that says nothing more. */
export function errorResponse(err: unknown): Response {
  if (err instanceof HttpError || err instanceof DeliveryError || err instanceof DeletionError || err instanceof MailboxError) {
    return json({ error: err.code, message: err.message }, err.status);
  }
  logger('http').error({ err }, 'unexpected error in route handler');
  return json({ error: 'internal', message: 'Something went wrong on our side; nothing was lost, try again' }, 500);
}

/**
 * Wraps a route handler: a state-changing request from another site is refused (403) before any
 * work, every failure is shaped by errorResponse, every answer carries the security headers.
 */
export function route<A extends unknown[]>(fn: (...args: A) => Promise<Response>) {
  return async (...args: A): Promise<Response> => {
    const req = args[0] instanceof Request ? args[0] : undefined;
    const started = performance.now();
    const verdict = req ? checkOrigin(req) : { ok: true as const };
    if (req && !verdict.ok) {
      // The logger prints the method and the path without its query, never headers or body.
      logger('http').warn({ req, reason: verdict.reason }, 'cross-origin request refused');
      return crossOriginRefusal(apiSecurityHeaders({ https: servedOverHttps(req) }));
    }
    let res: Response;
    try {
      res = await fn(...args);
    } catch (err) {
      res = errorResponse(err);
    }
    if (req) logger('http').debug({ req, status: res.status, ms: Math.round(performance.now() - started) }, 'request');
    return withSecurityHeaders(res, req);
  };
}
