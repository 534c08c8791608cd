import crypto from 'node:crypto';
import { EVENTS, Server, type Locker, type Upload } from '@tus/server';
import { config } from '@/lib/config';
import { authorizeUpload, DeliveryError, forgetUpload, recordUploadFinished, removeFinishedUpload, reserveUpload } from '@/lib/deliveries';
import { exposeNodeExchange, nodeExchange, uncopiedBody } from '@/lib/http/node-exchange';
import { clientIp, isRateLimitError, limitUploadBytes } from '@/lib/ratelimit';
import { checkOrigin, tusRefusal, validateTusRequest } from '@/lib/security';
import { objectStore } from '@/lib/storage';
import { createUploadLocker, PostgresLocker } from './locker';

/** The public path of the tus endpoint (app/api/tus/[[...path]]/route.ts). */
export const TUS_PATH = '/api/tus';
/** The header that carries the sender token on every tus request. */
export const SENDER_TOKEN_HEADER = 'Inkast-Sender-Token';
// On load: lib/boot imports this module, so before the first request arrives.
exposeNodeExchange(TUS_PATH);

/** No single stored object may exceed this: 5 GB of plaintext plus the format's overhead. */
const MAX_OBJECT_BYTES = 5_100_000_000;

/** What tus sends back when a hook refuses: its status and a one-line reason. */
function refusal(status: number, body: string) {
  return { status_code: status, body: `${body}\n` };
}

function asRefusal(err: unknown) {
  if (err instanceof DeliveryError) return refusal(err.status, err.message);
  return refusal(503, 'The upload service is unavailable; try again shortly');
}

function senderToken(req: Request): string | null {
  return req.headers.get(SENDER_TOKEN_HEADER);
}

async function onUploadCreate(req: Request, upload: Upload) {
  const metadata = upload.metadata ?? {};
  const keys = Object.keys(metadata);
  // Only the delivery id travels: a file name or type in clear would defeat the encryption.
  if (keys.length !== 1 || keys[0] !== 'deliveryId' || !metadata.deliveryId) {
    throw refusal(400, 'Upload-Metadata must hold exactly one key, deliveryId');
  }
  if (upload.size === undefined || upload.size <= 0) throw refusal(400, 'Upload-Length is required and must be positive');
  // Upload bytes per client address, counted by the declared length; given back if the upload is refused.
  let quota: Awaited<ReturnType<typeof limitUploadBytes>>;
  try {
    quota = await limitUploadBytes(clientIp(req), upload.size);
  } catch (err) {
    if (!isRateLimitError(err)) throw asRefusal(err);
    retryAfter.set(req, err.retryAfter);
    throw refusal(429, err.message);
  }
  try {
    await reserveUpload(metadata.deliveryId, senderToken(req), upload.id, upload.size);
  } catch (err) {
    await quota.refund();
    throw asRefusal(err);
  }
  return {};
}

/** Seconds to wait, for a creation refused by the rate limit: tus's hook refusals carry no headers. */
const retryAfter = new WeakMap<Request, number>();

async function onIncomingRequest(req: Request, uploadId: string) {
  if (req.method === 'POST') return; // checked in onUploadCreate, which knows the delivery
  try {
    await authorizeUpload(uploadId, senderToken(req));
  } catch (err) {
    throw asRefusal(err);
  }
}

async function onUploadFinish(_req: Request, upload: Upload) {
  await recordUploadFinished(upload.id);
  return {};
}

function createTusServer(): Server {
  const server = new Server({
    path: TUS_PATH,
    datastore: objectStore().tusDataStore(),
    relativeLocation: true,
    // Shared by every instance on one PostgreSQL (advisory locks); in-process on PGlite.
    locker: (g.__inkastTusLocker = createUploadLocker({ databaseUrl: config().databaseUrl })),
    maxSize: MAX_OBJECT_BYTES,
    allowedOrigins: [new URL(config().publicUrl).origin],
    allowedHeaders: [SENDER_TOKEN_HEADER],
    namingFunction: () => crypto.randomBytes(16).toString('hex'),
    onUploadCreate,
    onIncomingRequest,
    onUploadFinish,
  });
  server.on(EVENTS.POST_TERMINATE, (_req: unknown, _res: unknown, id: string) => {
    forgetUpload(id).catch(() => {});
  });
  return server;
}

const g = globalThis as typeof globalThis & { __inkastTus?: Server; __inkastTusLocker?: Locker };

/** Releases what the upload server holds open (the lock connection): at shutdown, and in tests. */
export async function closeUploads(): Promise<void> {
  const locker = g.__inkastTusLocker;
  g.__inkastTus = undefined;
  g.__inkastTusLocker = undefined;
  if (locker instanceof PostgresLocker) await locker.close();
}

/**
 * The request with its body read straight from the socket, when this process's HTTP server took
 * it (lib/http/node-exchange): not copied chunk by chunk on its way to the store.
 */
function withUncopiedBody(req: Request): Request {
  const node = req.body && nodeExchange(req)?.request;
  return node ? new Request(req, { body: uncopiedBody(node), duplex: 'half' } as RequestInit) : req;
}

/** Hands a web Request to the tus server (one per process). */
export async function handleTusRequest(req: Request): Promise<Response> {
  // Malformed tus headers and cross-site requests are refused before any work is done.
  const verdict = validateTusRequest(req, TUS_PATH);
  if (!verdict.ok) return tusRefusal(verdict);
  if (!checkOrigin(req).ok) return tusRefusal({ ok: false, status: 403, message: 'This request must come from an Inkast page' });
  // Downloads go through the authorised, decrypting /api/files route, never through tus.
  if (req.method === 'GET') return new Response('Method Not Allowed\n', { status: 405, headers: { Allow: 'HEAD, POST, PATCH, DELETE, OPTIONS' } });
  if (req.method === 'DELETE') {
    const uploadId = new URL(req.url).pathname.split('/').pop() ?? '';
    try {
      if (await removeFinishedUpload(uploadId, senderToken(req))) return new Response(null, { status: 204, headers: { 'Tus-Resumable': '1.0.0' } });
    } catch (err) {
      const r = asRefusal(err);
      return new Response(r.body, { status: r.status_code, headers: { 'Tus-Resumable': '1.0.0' } });
    }
  }
  g.__inkastTus ??= createTusServer();
  const tusReq = withUncopiedBody(req);
  const res = await g.__inkastTus.handleWeb(tusReq);
  const wait = retryAfter.get(tusReq);
  if (res.status === 429 && wait) res.headers.set('Retry-After', String(wait));
  return res;
}
