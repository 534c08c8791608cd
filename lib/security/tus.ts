/**
 * The schema of a tus request, checked before any work (no database, no storage, no lock): the
 * tus endpoint calls `validateTusRequest` first and answers a refusal at once.
 *
 * It accepts exactly what the filedrop page and lib/uploads/client.ts send (tus 1.0.0 core and
 * creation, lengths known up front, one metadata key `deliveryId`) and nothing else: no deferred
 * length, no concatenation, no method override, upload ids as the server names them.
 */

/** tus protocol version spoken here. */
export const TUS_VERSION = '1.0.0';
/** Largest Upload-Length: 5 GB of plaintext plus the format's overhead (as lib/uploads' maxSize). */
export const TUS_MAX_UPLOAD_LENGTH = 5_100_000_000;
/** Upload ids are 16 random bytes in hex (lib/uploads' namingFunction). */
const UPLOAD_ID = /^[0-9a-f]{32}$/;
/** A sender token: 32 random bytes, base64url (lib/deliveries/tokens.ts). */
const SENDER_TOKEN = /^[A-Za-z0-9_-]{43}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** A non-negative decimal integer without sign, spaces or leading zeros, at most 16 digits. */
const INTEGER = /^(0|[1-9][0-9]{0,15})$/;
const OFFSET_CONTENT_TYPE = 'application/offset+octet-stream';
const METADATA_MAX = 256;

export type TusVerdict = { ok: true } | { ok: false; status: number; message: string };

const refuse = (status: number, message: string): TusVerdict => ({ ok: false, status, message });
const OK: TusVerdict = { ok: true };

interface RequestLike {
  method: string;
  url: string;
  headers: { get(name: string): string | null };
}

function header(req: RequestLike, name: string): string | null {
  return req.headers.get(name);
}

function integerHeader(req: RequestLike, name: string): number | null | 'invalid' {
  const raw = header(req, name);
  if (raw === null) return null;
  if (!INTEGER.test(raw)) return 'invalid';
  const n = Number(raw);
  return Number.isSafeInteger(n) ? n : 'invalid';
}

/** `deliveryId <base64 of a UUID>` and nothing else. */
function validMetadata(raw: string): boolean {
  if (raw.length > METADATA_MAX) return false;
  const m = /^deliveryId ([A-Za-z0-9+/]+={0,2})$/.exec(raw);
  if (!m || m[1].length % 4 !== 0) return false;
  return UUID.test(Buffer.from(m[1], 'base64').toString('latin1'));
}

/**
 * Checks method, path, protocol version, token shape and the tus headers of one request.
 * `basePath` is the endpoint's public path (lib/uploads' TUS_PATH).
 */
export function validateTusRequest(req: RequestLike, basePath = '/api/tus'): TusVerdict {
  const method = req.method.toUpperCase();
  let pathname: string;
  try {
    pathname = new URL(req.url, 'http://localhost').pathname;
  } catch {
    return refuse(400, 'Malformed request URL');
  }
  const rest = pathname === basePath || pathname === `${basePath}/` ? '' : pathname.startsWith(`${basePath}/`) ? pathname.slice(basePath.length + 1) : null;
  if (rest === null) return refuse(404, 'Not found');
  if (rest !== '' && !UPLOAD_ID.test(rest)) return refuse(404, 'No such upload');

  if (method === 'OPTIONS') return OK; // a CORS preflight carries none of the tus headers
  if (!['HEAD', 'POST', 'PATCH', 'DELETE'].includes(method)) return refuse(405, 'Method not allowed');
  if (header(req, 'x-http-method-override') !== null) return refuse(400, 'X-HTTP-Method-Override is not accepted');
  if (method === 'POST' ? rest !== '' : rest === '') return refuse(method === 'POST' ? 405 : 404, 'Not found');

  // The tus spec: an unsupported version is 412, and the server must not process the request.
  if (header(req, 'tus-resumable') !== TUS_VERSION) return refuse(412, `Tus-Resumable must be ${TUS_VERSION}`);
  const token = header(req, 'inkast-sender-token');
  // The same 404 as for a wrong token (lib/deliveries): no oracle for what is malformed.
  if (token === null || !SENDER_TOKEN.test(token)) return refuse(404, 'No such delivery');
  for (const name of ['upload-defer-length', 'upload-concat']) {
    if (header(req, name) !== null) return refuse(400, `${name} is not supported`);
  }

  const contentLength = integerHeader(req, 'content-length');
  if (contentLength === 'invalid') return refuse(400, 'Content-Length must be a non-negative integer');
  const contentType = header(req, 'content-type');

  if (method === 'POST') {
    const length = integerHeader(req, 'upload-length');
    if (length === null || length === 'invalid' || length === 0) {
      return refuse(400, 'Upload-Length is required and must be a positive integer');
    }
    if (length > TUS_MAX_UPLOAD_LENGTH) return refuse(413, `Upload-Length may be at most ${TUS_MAX_UPLOAD_LENGTH}`);
    const metadata = header(req, 'upload-metadata');
    if (metadata === null || !validMetadata(metadata)) {
      return refuse(400, 'Upload-Metadata must hold exactly one key, deliveryId, with a delivery id');
    }
    if (header(req, 'upload-offset') !== null) return refuse(400, 'Upload-Offset is not allowed when creating an upload');
    // Creation with upload: the body is upload data and must say so.
    if ((contentLength ?? 0) > 0 || contentType !== null) {
      if (contentType !== OFFSET_CONTENT_TYPE) return refuse(415, `Content-Type must be ${OFFSET_CONTENT_TYPE}`);
      if (contentLength !== null && contentLength > length) return refuse(413, 'The body is longer than Upload-Length');
    }
    return OK;
  }

  if (method === 'PATCH') {
    if (contentType !== OFFSET_CONTENT_TYPE) return refuse(415, `Content-Type must be ${OFFSET_CONTENT_TYPE}`);
    const offset = integerHeader(req, 'upload-offset');
    if (offset === null || offset === 'invalid') return refuse(400, 'Upload-Offset is required and must be a non-negative integer');
    if (offset >= TUS_MAX_UPLOAD_LENGTH) return refuse(400, 'Upload-Offset is beyond any upload');
    if (contentLength !== null && offset + contentLength > TUS_MAX_UPLOAD_LENGTH) return refuse(413, 'The body is too long');
    if (header(req, 'upload-length') !== null) return refuse(400, 'Upload-Length is set when the upload is created');
    if (header(req, 'upload-metadata') !== null) return refuse(400, 'Upload-Metadata is set when the upload is created');
    return OK;
  }

  // HEAD and DELETE carry no body and no upload headers.
  if ((contentLength ?? 0) > 0) return refuse(400, `${method} takes no body`);
  for (const name of ['upload-offset', 'upload-length', 'upload-metadata']) {
    if (header(req, name) !== null) return refuse(400, `${name} is not allowed on ${method}`);
  }
  return OK;
}

/** The refusal as the tus endpoint answers it: plain text, as @tus/server does, never cached. */
export function tusRefusal(verdict: Extract<TusVerdict, { ok: false }>, extraHeaders: Record<string, string> = {}): Response {
  const headers: Record<string, string> = {
    'Content-Type': 'text/plain; charset=utf-8',
    'Cache-Control': 'no-store',
    'Tus-Resumable': TUS_VERSION,
    ...extraHeaders,
  };
  if (verdict.status === 412) headers['Tus-Version'] = TUS_VERSION;
  if (verdict.status === 405) headers.Allow = 'HEAD, POST, PATCH, DELETE, OPTIONS';
  return new Response(`${verdict.message}\n`, { status: verdict.status, headers });
}
