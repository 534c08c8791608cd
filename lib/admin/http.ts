/**
 * The shape of every admin action route (app/api/admin/**): the caller must be a signed-in
 * administrator before anything is read; the input comes from a page's form post (no script
 * needed) or as JSON; a form post is answered with a 303 back to its page, carrying `?done=` or
 * `?error=` for the page's notice, a JSON call with JSON.
 */
import { requireApiAdmin } from '@/lib/auth';
import { safeNextPath } from '@/lib/auth/next-path';
import { seeOther } from '@/lib/auth/http';
import { DeliveryError } from '@/lib/deliveries';
import { errorResponse, HttpError, isFormPost, json, readBody, readJson, route } from '@/lib/http';
import { MailboxError, type User } from '@/lib/mailboxes';

const FORM_MAX_BYTES = 16 * 1024;

export interface AdminInput {
  /** Whether it came from a form post (answer with a redirect) or as JSON. */
  form: boolean;
  /** The fields: strings from a form, any JSON value from JSON. Validate before use. */
  fields: Record<string, unknown>;
  /** The admin page to go back to after a form post (its hidden `back` field), same-site only. */
  back: string;
}

export async function readAdminInput(req: Request, fallbackBack = '/admin'): Promise<AdminInput> {
  if (isFormPost(req)) {
    const params = new URLSearchParams((await readBody(req, FORM_MAX_BYTES)).toString('utf8'));
    const fields: Record<string, unknown> = {};
    for (const [k, v] of params) fields[k] = v;
    return { form: true, fields, back: adminBack(params.get('back'), fallbackBack) };
  }
  if (req.method === 'GET' || req.method === 'HEAD') {
    return { form: false, fields: {}, back: fallbackBack };
  }
  const body = await readJson(req, FORM_MAX_BYTES);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new HttpError(400, 'invalid-input', 'Send a JSON object');
  }
  return { form: false, fields: body as Record<string, unknown>, back: fallbackBack };
}

/** Only a path under /admin: a form cannot send an administrator elsewhere. */
function adminBack(value: unknown, fallback: string): string {
  const path = safeNextPath(value, fallback);
  return /^\/admin(\/|\?|$)/.test(path) ? path : fallback;
}

/** `path` with `?done=`/`?error=` replacing any earlier notice. */
export function withNotice(path: string, notice: { done?: string; error?: string }): string {
  const url = new URL(path, 'http://inkast.invalid');
  url.searchParams.delete('done');
  url.searchParams.delete('error');
  for (const [k, v] of Object.entries(notice)) if (v) url.searchParams.set(k, v);
  return url.pathname + url.search + url.hash;
}

/** The answer to a successful action: back to the page for a form, else `body` as JSON. */
export function adminDone(input: AdminInput, done: string, body: unknown, status = 200, back = input.back): Response {
  return input.form ? seeOther(withNotice(back, { done })) : json(body, status);
}

export interface AdminContext<P> {
  admin: User;
  input: AdminInput;
  params: P;
}

/**
 * An admin action route. Non-administrators get 403 (401 when not signed in) before the body is
 * read; an expected refusal on a form post goes back to the page as `?error=<code>`.
 */
export function adminRoute<P = Record<string, never>>(
  fn: (req: Request, ctx: AdminContext<P>) => Promise<Response>,
  fallbackBack = '/admin',
) {
  return route(async (req: Request, ctx?: { params: Promise<P> }) => {
    const admin = await requireApiAdmin();
    const params = ctx ? await ctx.params : ({} as P);
    const input = await readAdminInput(req, fallbackBack);
    try {
      return await fn(req, { admin, input, params });
    } catch (err) {
      const expected = err instanceof HttpError || err instanceof MailboxError || err instanceof DeliveryError;
      if (input.form && expected && err.status < 500) return seeOther(withNotice(input.back, { error: err.code }));
      return errorResponse(err);
    }
  });
}

/** A string field, trimmed; undefined when absent or empty. */
export function stringField(fields: Record<string, unknown>, name: string): string | undefined {
  const v = fields[name];
  if (typeof v !== 'string') return undefined;
  return v.trim() || undefined;
}
