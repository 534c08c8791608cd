/**
 * The Node request and response behind a route handler's web Request, for the two routes that
 * need what Next's adapter loses: a download's Content-Length (Next 16 drops it from every route
 * handler's Response and sends the body chunked: no size, no progress bar, a HEAD that says
 * nothing) and an upload's body as the socket delivered it (Next hands route handlers an undici
 * stream that copies every chunk: a GiB copied, and collected, per GiB uploaded).
 *
 * As lib/ratelimit/peer.ts does for the socket address, node:http's diagnostics channel hands us
 * each request before Next sees it; a request for an exposed path gets a header, secret per
 * process, naming its exchange. Once per process: Next loads modules twice.
 */
import crypto from 'node:crypto';
import diagnostics from 'node:diagnostics_channel';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { finished } from 'node:stream';

export interface NodeExchange {
  request: IncomingMessage;
  response: ServerResponse;
}

interface Hook {
  header: string;
  /** Exposed path prefixes: a handful, checked on every request. */
  paths: string[];
  exchanges: Map<string, NodeExchange>;
}

const g = globalThis as typeof globalThis & { __inkastNodeExchanges?: Hook };

function hook(): Hook {
  if (!g.__inkastNodeExchanges) {
    const h: Hook = { header: `x-inkast-exchange-${crypto.randomBytes(12).toString('hex')}`, paths: [], exchanges: new Map() };
    // Published by node:http right before the server's 'request' event, for every request.
    diagnostics.subscribe('http.server.request.start', (message) => {
      const { request, response } = message as NodeExchange;
      delete request.headers[h.header];
      const url = request.url ?? '';
      if (!h.paths.some((p) => url.startsWith(p))) return;
      const id = crypto.randomUUID();
      request.headers[h.header] = id;
      h.exchanges.set(id, { request, response });
      response.once('close', () => h.exchanges.delete(id));
    });
    g.__inkastNodeExchanges = h;
  }
  return g.__inkastNodeExchanges;
}

/** Route handlers under this path may reach their Node request and response. Call at module load: requests before are not seen. */
export function exposeNodeExchange(pathPrefix: string): void {
  const { paths } = hook();
  if (!paths.includes(pathPrefix)) paths.push(pathPrefix);
}

/** The Node request and response of this request, when it came through this process's HTTP server on an exposed path. */
export function nodeExchange(req: Request): NodeExchange | undefined {
  const h = hook();
  const id = req.headers.get(h.header);
  return id ? h.exchanges.get(id) : undefined;
}

/**
 * A Node request's body as a web stream of the very buffers the socket delivered, one ahead of
 * the reader (backpressure pauses the request, and with it the client). Node's Readable.toWeb and
 * undici copy each chunk so that a pooled buffer is never transferred; HTTP bodies arrive in
 * buffers of their own, and the one reader here (tus, through Readable.fromWeb) transfers nothing.
 * Cancelling destroys the request, as theirs do.
 */
export function uncopiedBody(request: IncomingMessage): ReadableStream<Uint8Array> {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let settled = false;
  request.pause();
  request.on('data', (chunk: Buffer) => {
    controller.enqueue(chunk);
    if ((controller.desiredSize ?? 0) <= 0) request.pause();
  });
  // An aborted upload ends with ERR_STREAM_PREMATURE_CLOSE, which the reader sees as an error.
  finished(request, (err) => {
    if (settled) return;
    settled = true;
    if (err) controller.error(err);
    else controller.close();
  });
  return new ReadableStream<Uint8Array>(
    {
      start(c) {
        controller = c;
      },
      pull() {
        request.resume();
      },
      cancel(reason) {
        settled = true;
        request.destroy(reason instanceof Error ? reason : undefined);
      },
    },
    { highWaterMark: 1, size: () => 1 },
  );
}
