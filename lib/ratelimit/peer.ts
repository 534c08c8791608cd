/**
 * The TCP peer's address, for route handlers that only see a web Request. Next copies the socket
 * address into X-Forwarded-For only when the client sent none (`??=`), so without a trusted proxy
 * that header is the client's to choose. Instead, every incoming request is stamped, before Next
 * reads it, with the socket's address under a header whose name is random per process: a client
 * cannot send it, and a forged one is overwritten.
 */
import crypto from 'node:crypto';
import diagnostics from 'node:diagnostics_channel';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';

const g = globalThis as typeof globalThis & { __inkastPeerHeader?: string };

/** Subscribes once per process (Next loads this module more than once). */
export function installPeerAddress(): void {
  if (g.__inkastPeerHeader) return;
  const name = `x-inkast-peer-${crypto.randomBytes(12).toString('hex')}`;
  g.__inkastPeerHeader = name;
  // Published by node:http right before the server's 'request' event, for every request.
  diagnostics.subscribe('http.server.request.start', (message) => {
    const { request, socket } = message as { request: IncomingMessage; socket: Socket };
    const address = socket?.remoteAddress;
    if (address) request.headers[name] = address;
    else delete request.headers[name];
  });
}

/** The stamped socket address of this request, when it came through this process's HTTP server. */
export function peerAddress(headers: Headers): string | undefined {
  const name = g.__inkastPeerHeader;
  return (name && headers.get(name)) || undefined;
}
