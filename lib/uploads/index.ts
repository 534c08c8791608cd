import crypto from 'node:crypto';
import { EVENTS, MemoryLocker, Server, type Upload } from '@tus/server';
import { config } from '@/lib/config';
import { authorizeUpload, DeliveryError, forgetUpload, recordUploadFinished, reserveUpload } from '@/lib/deliveries';
import { objectStore } from '@/lib/storage';

/** The public path of the tus endpoint (app/api/tus/[[...path]]/route.ts). */
export const TUS_PATH = '/api/tus';
/** The header that carries the sender token on every tus request. */
export const SENDER_TOKEN_HEADER = 'Inkast-Sender-Token';
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
  try {
    await reserveUpload(metadata.deliveryId, senderToken(req), upload.id, upload.size);
  } catch (err) {
    throw asRefusal(err);
  }
  return {};
}

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
    locker: new MemoryLocker(),
    maxSize: MAX_OBJECT_BYTES,
    allowedOrigins: [new URL(config().publicUrl).origin],
    allowedHeaders: [SENDER_TOKEN_HEADER],
    disableTerminationForFinishedUploads: true,
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

const g = globalThis as typeof globalThis & { __inkastTus?: Server };

/** Hands a web Request to the tus server (one per process). */
export async function handleTusRequest(req: Request): Promise<Response> {
  // Downloads go through the authorised, decrypting /api/files route, never through tus.
  if (req.method === 'GET') return new Response('Method Not Allowed\n', { status: 405, headers: { Allow: 'HEAD, POST, PATCH, DELETE, OPTIONS' } });
  g.__inkastTus ??= createTusServer();
  return g.__inkastTus.handleWeb(req);
}
