/**
 * What may reach a log line. Inkast's logs go to operators and log stores that are not cleared
 * for health data or secrets, so a log line never holds a token, a one-time code, a cookie, a
 * key, a delivery's subject or message text, a file name, or a request or mail body.
 *
 * Three layers, each enough on its own for what it covers:
 *  1. Keys: a field whose name says secret or content is replaced whatever its value.
 *  2. Values: every string is scrubbed of what looks like a token, a session seal, a PGP block,
 *     a capability URL (a filedrop slug, a `?token=` link) or a long base64 blob.
 *  3. Shapes: an Error logs its type, code and scrubbed message; a request logs its method and
 *     scrubbed path; a body, a stream or a buffer never logs at all.
 */

export const REDACTED = '[redacted]';

/** Field names (compared lower-case, without - and _) whose values never print. */
const SECRET_KEYS = new Set([
  'token',
  'code',
  'otp',
  'pin',
  'cookie',
  'cookies',
  'setcookie',
  'authorization',
  'proxyauthorization',
  'password',
  'passphrase',
  'secret',
  'key',
  'keys',
  'privatekey',
  'publickey',
  'armoredkey',
  'masterkey',
  'sessionkey',
  'messagekey',
  'seal',
  'session',
  'link',
  'slug',
  'nonce',
  'verifier',
  'codeverifier',
  'iv',
  'salt',
  'pkesk',
  'wrapped',
]);

/** Names that carry a delivery's content or a body of any kind. */
const CONTENT_KEYS = new Set([
  'subject',
  'message',
  'messagetext',
  'text',
  'textbody',
  'html',
  'htmlbody',
  'body',
  'rawbody',
  'payload',
  'content',
  'plaintext',
  'ciphertext',
  'manifest',
  'name',
  'filename',
  'filenames',
  'file',
  'files',
  'metadata',
  'uploadmetadata',
  'data',
  'chunk',
  'buffer',
]);

/** Parts of a name that make any field secret: senderToken, idToken, clientSecret, apiKey … */
const SECRET_PARTS = /(token|secret|passw|cookie|authori[sz]ation|credential|privatekey|masterkey|apikey|accesskey|signingkey|sessionid|otp)/;

function normalize(key: string): string {
  return key.toLowerCase().replace(/[-_\s]/g, '');
}

/** Whether a field of this name is never logged. */
export function isRedactedKey(key: string): boolean {
  const k = normalize(key);
  return SECRET_KEYS.has(k) || CONTENT_KEYS.has(k) || SECRET_PARTS.test(k);
}

const hasUpperAndLower = (s: string) => /[A-Z]/.test(s) && /[a-z]/.test(s);

const SCRUBBERS: [RegExp, string | ((match: string, ...groups: string[]) => string)][] = [
  // Armored OpenPGP blocks (keys, messages).
  [/-----BEGIN PGP[\s\S]*?(-----END PGP[^-]*-----|$)/g, '[redacted-pgp]'],
  // iron-session seals.
  [/Fe26\.2\*[^\s;,"'<>]*/g, '[redacted-seal]'],
  // Authorization schemes.
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi, '$1 [redacted]'],
  // Filedrop links and sign-in / OIDC links: the path capability and every query value.
  [/\/d\/[^\s/?#"'<>]+/g, '/d/[slug]'],
  [/([?&][^=&#\s"'<>]*=)[^&#\s"'<>]*/g, '$1[redacted]'],
  // A token: 32 random bytes in base64url is 43 characters, mixed case.
  [/(?<![A-Za-z0-9_+/-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_+/=-])/g, (m) => (hasUpperAndLower(m) ? '[redacted-token]' : m)],
  // Any other long random-looking run of base64: mixed case and digits. Hex ids, SHA-256 digests
  // and file paths in stack traces stay readable.
  [/[A-Za-z0-9+/_-]{40,}={0,2}/g, (m) => (hasUpperAndLower(m) && /[0-9].*[0-9].*[0-9]/.test(m) ? '[redacted-base64]' : m)],
];

/** A string as it may appear in a log line. */
export function scrubString(value: string, max = 2000): string {
  let s = value.length > max * 4 ? value.slice(0, max * 4) : value;
  for (const [re, replacement] of SCRUBBERS) s = s.replace(re, replacement as string);
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

/** A URL or path: no query, no fragment, capabilities in the path replaced. */
export function scrubUrl(value: string): string {
  let path = value;
  try {
    const u = new URL(value, 'http://x');
    path = /^[a-z][a-z0-9+.-]*:/i.test(value) ? `${u.origin}${u.pathname}` : u.pathname;
    if (u.search) path += '?[redacted]';
  } catch {
    path = value.split(/[?#]/)[0];
  }
  return scrubString(path, 500);
}

const URL_KEYS = new Set(['url', 'href', 'path', 'pathname', 'location', 'referer', 'referrer', 'origin', 'uri', 'endpoint']);

interface ErrorShape {
  type: string;
  code?: string;
  status?: number;
  message: string;
  stack?: string;
  cause?: unknown;
}

/** An error: its type, code and scrubbed message (and stack); never its other properties. */
export function serializeError(err: unknown, depth = 0): ErrorShape | string {
  if (!(err instanceof Error)) return typeof err === 'string' ? scrubString(err, 500) : typeof err;
  const out: ErrorShape = { type: err.name || err.constructor?.name || 'Error', message: scrubString(err.message ?? '', 500) };
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && /^[A-Za-z0-9_.-]{1,40}$/.test(code)) out.code = code;
  const status = (err as { status?: unknown; statusCode?: unknown }).status ?? (err as { statusCode?: unknown }).statusCode;
  if (typeof status === 'number') out.status = status;
  if (err.stack) {
    // The first frames only; the header line repeats the message, so it is scrubbed as one.
    out.stack = scrubString(err.stack.split('\n').slice(0, 12).join('\n'), 3000);
  }
  if (err.cause !== undefined && depth < 2) out.cause = serializeError(err.cause, depth + 1);
  return out;
}

function isRequestLike(v: object): v is { method: string; url: string } {
  return typeof (v as { method?: unknown }).method === 'string' && typeof (v as { url?: unknown }).url === 'string' && 'headers' in v;
}

/** A request (web Request or Node IncomingMessage): method and scrubbed path, nothing else. */
export function serializeRequest(req: { method: string; url: string }): { method: string; path: string } {
  return { method: req.method, path: scrubUrl(req.url) };
}

const MAX_DEPTH = 6;
const MAX_KEYS = 50;
const MAX_ITEMS = 50;

/** A copy of `value` that may be logged. Cycles, depth and size are bounded. */
export function sanitize(value: unknown, depth = 0, seen = new WeakSet<object>()): unknown {
  if (value === null || value === undefined) return value;
  switch (typeof value) {
    case 'string':
      return scrubString(value);
    case 'number':
    case 'boolean':
      return value;
    case 'bigint':
      return value.toString();
    case 'function':
    case 'symbol':
      return undefined;
  }
  const obj = value as object;
  if (obj instanceof Error) return serializeError(obj);
  if (obj instanceof Date) return Number.isNaN(obj.getTime()) ? 'Invalid Date' : obj.toISOString();
  if (obj instanceof URL) return scrubUrl(obj.href);
  // Bytes and streams are content or keys: their size at most.
  if (ArrayBuffer.isView(obj) || obj instanceof ArrayBuffer) return `[${(obj as ArrayBuffer).byteLength} bytes]`;
  if (typeof (obj as { pipe?: unknown }).pipe === 'function' || typeof (obj as { getReader?: unknown }).getReader === 'function') {
    return '[stream]';
  }
  if (typeof Headers !== 'undefined' && obj instanceof Headers) return '[headers]';
  if (isRequestLike(obj)) return serializeRequest(obj);
  if (seen.has(obj)) return '[circular]';
  if (depth >= MAX_DEPTH) return '[deep]';
  seen.add(obj);
  if (Array.isArray(obj)) {
    const items = obj.slice(0, MAX_ITEMS).map((v) => sanitize(v, depth + 1, seen));
    if (obj.length > MAX_ITEMS) items.push(`[${obj.length - MAX_ITEMS} more]`);
    return items;
  }
  if (obj instanceof Map || obj instanceof Set) return `[${obj.constructor.name} of ${obj.size}]`;
  const out: Record<string, unknown> = {};
  let n = 0;
  for (const [k, v] of Object.entries(obj)) {
    if (n++ >= MAX_KEYS) {
      out['…'] = 'more keys';
      break;
    }
    if (k === 'err' || k === 'error') out[k] = serializeError(v);
    else if (k === 'req' || k === 'request') out[k] = v && typeof v === 'object' && isRequestLike(v) ? serializeRequest(v) : REDACTED;
    else if (k === 'headers') out[k] = REDACTED;
    else if (isRedactedKey(k)) out[k] = REDACTED;
    else if (URL_KEYS.has(normalize(k)) && typeof v === 'string') out[k] = scrubUrl(v);
    else out[k] = sanitize(v, depth + 1, seen);
  }
  return out;
}
