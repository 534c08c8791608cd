/** What every route handler shares: reading a bounded JSON body and shaping errors. */
import { DeliveryError } from '@/lib/deliveries';
import { MailboxError } from '@/lib/mailboxes';

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
  return Response.json(body, { status, headers: { ...noStore, ...headers } });
}

/** Reads a JSON body of at most maxBytes; a clear 413/415/400 otherwise. */
export async function readJson(req: Request, maxBytes = 16 * 1024): Promise<unknown> {
  const type = req.headers.get('content-type') ?? '';
  if (!/^application\/json\b/i.test(type)) throw new HttpError(415, 'unsupported-media-type', 'Send application/json');
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
  try {
    return JSON.parse(Buffer.concat(parts).toString('utf8'));
  } catch {
    throw new HttpError(400, 'invalid-json', 'The request body is not valid JSON');
  }
}

/** Turns a thrown error into the JSON answer; anything unexpected is a 500 that says nothing more. */
export function errorResponse(err: unknown): Response {
  if (err instanceof HttpError || err instanceof DeliveryError || err instanceof MailboxError) {
    return json({ error: err.code, message: err.message }, err.status);
  }
  console.error('unexpected error in route handler:', err instanceof Error ? err.name : typeof err);
  return json({ error: 'internal', message: 'Something went wrong on our side; nothing was lost, try again' }, 500);
}

/** Wraps a route handler so every failure is shaped by errorResponse. */
export function route<A extends unknown[]>(fn: (...args: A) => Promise<Response>) {
  return async (...args: A): Promise<Response> => {
    try {
      return await fn(...args);
    } catch (err) {
      return errorResponse(err);
    }
  };
}
