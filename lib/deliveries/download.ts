/**
 * Serving a delivered file to a handler: authorise (membership, on every request), decrypt the
 * stored object as it streams, honour a single Range, and record the download that delivered the
 * file's last byte: a `downloads` row, the sender's receipt and an audit entry, in one transaction.
 */
import crypto from 'node:crypto';
import type { ServerResponse } from 'node:http';
import * as openpgp from 'openpgp';
import { audit } from '@/lib/audit';
import { config } from '@/lib/config';
import { logger, type Logger } from '@/lib/log';
import { openStoredObject, type ObjectSource } from '@/lib/crypto/decoder';
import { decryptManifest } from '@/lib/crypto/manifest';
import { db, type Queryable } from '@/lib/db';
import { HttpError, json } from '@/lib/http';
import { exposeNodeExchange, nodeExchange } from '@/lib/http/node-exchange';
import { queueMail } from '@/lib/mail';
import { isMember, mailboxPrivateKeys, type User } from '@/lib/mailboxes';
import { objectStore } from '@/lib/storage';

/** Who is downloading: the signed-in user (lib/auth). */
export type Downloader = Pick<User, 'id' | 'display_name'>;

/** A verified file of a delivered delivery, with what serving it and its receipt need. */
interface ServableFile {
  id: string;
  upload_id: string;
  ciphertext_size: number;
  plaintext_size: number;
  sha256: Uint8Array;
  position: number;
  delivery_id: string;
  mailbox_id: string;
  reference: string;
  sender_email: string;
  sender_locale: 'sv' | 'en';
  sent_at: Date;
  manifest: Uint8Array;
}

interface Requester {
  ip: string | null;
  userAgent: string | null;
}

/** Bytes [start, end) of the file. */
export interface ByteRange {
  start: number;
  end: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MIME_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*$/;
const MAX_USER_AGENT = 300;

/** The route's public path (app/api/files/[id]/route.ts). */
const FILES_PATH = '/api/files/';

const g = globalThis as typeof globalThis & { __inkastDownloadsLog?: Logger };
const log = () => (g.__inkastDownloadsLog ??= logger('downloads'));

// On load: lib/deliveries imports this module, so at boot, before the first request arrives.
exposeNodeExchange(FILES_PATH);

/** The file if it exists, is servable and the user may read its mailbox; the same 404 otherwise. */
async function servableFile(q: Queryable, user: Downloader, fileId: string): Promise<ServableFile> {
  const notFound = new HttpError(404, 'unknown-file', 'No such file');
  if (!UUID.test(fileId)) throw notFound;
  const file = (
    await q.query<ServableFile>(
      `SELECT f.id, f.upload_id, f.ciphertext_size, f.plaintext_size, f.sha256, f.position,
              d.id AS delivery_id, d.mailbox_id, d.reference, d.sender_email, d.sender_locale,
              coalesce(d.submitted_at, d.created_at) AS sent_at, d.manifest
         FROM delivery_files f JOIN deliveries d ON d.id = f.delivery_id
        WHERE f.id = $1 AND f.state = 'verified' AND d.state = 'delivered'`,
      [fileId],
    )
  ).rows[0];
  if (!file || !(await isMember(q, user.id, file.mailbox_id))) throw notFound;
  return file;
}

/**
 * The one range a request asks for; undefined to serve the whole file. A list of ranges is
 * ignored and the whole file served (RFC 9110 §14.2 allows it): clients resuming a download ask
 * for one range, and multipart/byteranges would buy nothing but complexity. Malformed headers,
 * other units and an If-Range that does not match our ETag are ignored the same way.
 */
export function requestedRange(headers: Headers, size: number, etag: string): ByteRange | 'unsatisfiable' | undefined {
  const header = headers.get('range');
  if (!header) return undefined;
  const ifRange = headers.get('if-range');
  // We send no Last-Modified, so only our (strong) ETag can validate a range.
  if (ifRange !== null && ifRange.trim() !== etag) return undefined;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size };
  }
  const first = Number(m[1]);
  const last = m[2] === '' ? Infinity : Number(m[2]);
  if (last < first) return undefined;
  if (first >= size) return 'unsatisfiable';
  return { start: first, end: Math.min(last + 1, size) };
}

/**
 * RFC 6266 with an RFC 8187 (ex-5987) `filename*` for the real name and a plain ASCII `filename`
 * for old clients. Control characters, quotes, backslashes and path separators never pass.
 */
export function contentDisposition(name: string): string {
  const clean = name.replace(/[\u0000-\u001f\u007f/\\]/g, '_');
  const ascii = clean.replace(/[^\u0020-\u007e]/g, '_').replace(/"/g, "'");
  const encoded = encodeURIComponent(clean).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

/** Who fetched it, for the downloads row: taken when the request arrives (the socket goes with the response). */
function requester(req: Request, res: ServerResponse | undefined): Requester {
  // A client may send X-Forwarded-For itself: believed only behind a proxy that sets it.
  const forwarded = config().trustProxy ? req.headers.get('x-forwarded-for')?.split(',')[0].trim() : undefined;
  const agent = Array.from(req.headers.get('user-agent') ?? '').slice(0, MAX_USER_AGENT).join('');
  return { ip: forwarded || res?.socket?.remoteAddress || null, userAgent: agent || null };
}

function storedObject(file: ServableFile): ObjectSource {
  const store = objectStore();
  return { size: file.ciphertext_size, read: (start, end) => store.readRange(file.upload_id, start, end) };
}

/**
 * GET or HEAD of /api/files/<fileId>: 200 with the whole file, 206 with one range, 416 for a
 * range past the end, 404 for a file this user may not see (whether or not it exists).
 */
export async function serveFile(req: Request, user: Downloader, fileId: string): Promise<Response> {
  const q = await db();
  const file = await servableFile(q, user, fileId);
  // Parsing the keys costs ~0.5 ms (measured) against ~3 ms for the manifest: not worth caching
  // unwrapped private keys beyond the request.
  const privateKeys = await Promise.all(
    (await mailboxPrivateKeys(q, file.mailbox_id)).map((armoredKey) => openpgp.readPrivateKey({ armoredKey })),
  );
  const entry = (await decryptManifest(file.manifest, privateKeys)).files.find((f) => f.uploadId === file.upload_id);
  if (!entry) throw new Error('a verified file is missing from its manifest');

  const size = file.plaintext_size;
  const etag = `"${Buffer.from(file.sha256).toString('hex')}"`;
  const type = entry.type.toLowerCase();
  const headers = new Headers({
    'Content-Type': MIME_TYPE.test(type) ? type : 'application/octet-stream',
    // Always a download, never rendered in our origin: no inline HTML, no sniffing, no scripts.
    'Content-Disposition': contentDisposition(entry.name),
    'X-Content-Type-Options': 'nosniff',
    'Content-Security-Policy': "default-src 'none'; sandbox",
    'Accept-Ranges': 'bytes',
    // no-transform keeps Next's gzip off: it would drop Content-Length and break ranges.
    'Cache-Control': 'private, no-store, no-transform',
    ETag: etag,
  });

  const range = requestedRange(req.headers, size, etag);
  if (range === 'unsatisfiable') {
    return json({ error: 'range-not-satisfiable', message: `The file has ${size} bytes` }, 416, {
      'Content-Range': `bytes */${size}`,
      'Accept-Ranges': 'bytes',
    });
  }
  const { start, end } = range ?? { start: 0, end: size };
  headers.set('Content-Length', String(end - start));
  if (range) headers.set('Content-Range', `bytes ${start}-${end - 1}/${size}`);
  const res = nodeExchange(req)?.response;
  let body: ReadableStream<Uint8Array> | null = null;
  if (req.method !== 'HEAD') {
    // Opened before answering, so a missing or damaged object is a clean 500, not a cut-off body.
    const object = await openStoredObject(storedObject(file), privateKeys);
    if (object.fileSize !== size) throw new Error('the stored object does not have the verified size');
    const who = requester(req, res);
    body = plaintextStream(object.plaintext(start, end), end - start, () => {
      // A fetch counts once the file's last byte went out (a whole download or a resumed one's
      // tail): handed to the OS ('finish', never after a disconnect) or, without the Node
      // response, taken from the stream.
      if (end !== size) return;
      if (res) res.once('finish', () => void recordDownload(file, user, who));
      else void recordDownload(file, user, who);
    });
  }
  // Next drops it from the Response but keeps it on the Node response. Set last, when nothing can
  // fail any more: an error answer must not go out with the file's length.
  res?.setHeader('Content-Length', String(end - start));
  return new Response(body, { status: range ? 206 : 200, headers });
}

/**
 * A pull stream over the decoder: the next piece is decrypted only when the client has taken the
 * previous one (backpressure), and cancelling (the client went away) stops reading and decrypting.
 */
function plaintextStream(source: AsyncIterable<Buffer>, length: number, onComplete: () => void): ReadableStream<Uint8Array> {
  const pieces = source[Symbol.asyncIterator]();
  let sent = 0;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const { value, done } = await pieces.next();
          if (!done) {
            sent += value.length;
            controller.enqueue(value);
            return;
          }
          if (sent !== length) throw new Error(`the decoder ended after ${sent} of ${length} bytes`);
          controller.close();
          onComplete();
        } catch (err) {
          // Chunks are authenticated before release, so this is storage trouble or an object
          // damaged after verification: the client gets a cut-off body, never unchecked bytes.
          log().error({ err: err instanceof Error ? err.message : String(err) }, 'download stream failed');
          controller.error(err);
        }
      },
      async cancel() {
        await pieces.return?.();
      },
    },
    // One chunk ahead: the next is decrypted while Node waits for the socket to drain (measured:
    // ~1.5x the default one-piece queue; 8 MiB gained nothing more).
    new ByteLengthQueuingStrategy({ highWaterMark: 4 * 1024 * 1024 }),
  );
}

const RECORD_ATTEMPTS = 4;

/**
 * The downloads row, the receipt to the sender and the audit entry, in one transaction. Its id is
 * chosen here, so retrying after an unclear failure (a commit whose answer was lost) cannot record
 * it twice; the outbox then sends the mail once.
 */
async function recordDownload(file: ServableFile, user: Downloader, who: Requester): Promise<void> {
  const downloadId = crypto.randomUUID();
  for (let attempt = 1; ; attempt++) {
    try {
      await (await db()).transaction(async (tx) => {
        const row = (
          await tx.query<{ at: Date }>(
            `INSERT INTO downloads (id, delivery_file_id, user_id, ip, user_agent) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO NOTHING RETURNING at`,
            [downloadId, file.id, user.id, who.ip, who.userAgent],
          )
        ).rows[0];
        if (!row) return;
        await queueMail(tx, {
          to: file.sender_email,
          template: 'download-receipt',
          locale: file.sender_locale,
          params: {
            reference: file.reference,
            sentAt: file.sent_at,
            fileNumber: file.position + 1,
            fileBytes: file.plaintext_size,
            sha256: Buffer.from(file.sha256).toString('hex'),
            downloadedBy: user.display_name,
            downloadedAt: row.at,
          },
          dedupeKey: `download-receipt:${downloadId}`,
        });
        await audit(tx, {
          actor: `user:${user.id}`,
          action: 'file.downloaded',
          target: `file:${file.id}`,
          detail: { downloadId, deliveryId: file.delivery_id },
        });
      });
      return;
    } catch (err) {
      const fields = { downloadId, fileId: file.id, attempt, err: err instanceof Error ? err.message : String(err) };
      if (attempt === RECORD_ATTEMPTS) return log().error(fields, 'download served but not recorded: no receipt');
      log().warn(fields, 'could not record a download; retrying');
      await new Promise((r) => setTimeout(r, 500 * 2 ** attempt));
    }
  }
}
