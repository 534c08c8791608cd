/** The HTTP API the filedrop page talks to (docs/CONTRACTS.md), seen from the browser. */
// The server's own answer types: type-only, so nothing of the server module reaches the bundle.
import type { CreatedDelivery, DeliveryState, DeliveryStatus } from '@/lib/deliveries';
import type { Locale } from '@/lib/i18n';

/** The header that carries the sender token on every call about a delivery, tus included. */
export const SENDER_TOKEN_HEADER = 'Inkast-Sender-Token';
export const TUS_ENDPOINT = '/api/tus';

export type { CreatedDelivery, DeliveryState, DeliveryStatus };

export const finalStates: readonly DeliveryState[] = ['delivered', 'rejected', 'abandoned'];

/** A refused or failed call: status 0 means the network, not the server. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Seconds to wait (Retry-After) when a rate limit refused the call. */
    readonly retryAfter?: number,
    /** Tries left after a wrong sender code. */
    readonly attemptsLeft?: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** Retry-After in seconds, when the answer has a usable one. */
export function retryAfterOf(value: string | null | undefined): number | undefined {
  const seconds = Number(value);
  return value && Number.isFinite(seconds) && seconds > 0 ? Math.ceil(seconds) : undefined;
}

async function call<T>(path: string, init: { method?: string; token?: string; body?: unknown } = {}): Promise<T> {
  const headers: Record<string, string> = {};
  if (init.token) headers[SENDER_TOKEN_HEADER] = init.token;
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, {
      method: init.method ?? 'GET',
      headers,
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
      cache: 'no-store',
    });
  } catch (err) {
    throw new ApiError(0, 'network', err instanceof Error ? err.message : String(err));
  }
  const body = (await res.json().catch(() => ({}))) as { error?: string; message?: string; attemptsLeft?: number };
  if (!res.ok) {
    const attemptsLeft = typeof body.attemptsLeft === 'number' ? body.attemptsLeft : undefined;
    throw new ApiError(res.status, body.error ?? 'http', body.message ?? res.statusText, retryAfterOf(res.headers.get('retry-after')), attemptsLeft);
  }
  return body as T;
}

export function createDelivery(input: { slug: string; senderEmail: string; locale: Locale }): Promise<CreatedDelivery> {
  return call('/api/deliveries', { method: 'POST', body: input });
}

/** Mails a code to the address when the mailbox asks for one; 202 either way. */
export function requestSenderCode(input: { slug: string; email: string; locale: Locale }): Promise<unknown> {
  return call('/api/senders/code', { method: 'POST', body: input });
}

/** Checks the code; on success the server sets the sender cookie that createDelivery reads. */
export function verifySenderCode(input: { slug: string; email: string; code: string }): Promise<{ email: string; verified: true }> {
  return call('/api/senders/verify', { method: 'POST', body: input });
}

export function submitDelivery(deliveryId: string, token: string, manifest: string): Promise<{ state: DeliveryState }> {
  return call(`/api/deliveries/${encodeURIComponent(deliveryId)}/submit`, { method: 'POST', token, body: { manifest } });
}

/** Cancels an unsent delivery; the server deletes what was uploaded (expiry would, later). */
export function cancelDelivery(deliveryId: string, token: string): Promise<unknown> {
  return call(`/api/deliveries/${encodeURIComponent(deliveryId)}`, { method: 'DELETE', token });
}

export function deliveryStatus(deliveryId: string, token: string): Promise<DeliveryStatus> {
  return call(`/api/deliveries/${encodeURIComponent(deliveryId)}`, { token });
}

/** Where the server stands on a tus upload (HEAD): its offset, or the refusal's status. */
export async function uploadOffset(
  uploadUrl: string,
  token: string,
): Promise<{ status: number; offset?: number; length?: number }> {
  let res: Response;
  try {
    res = await fetch(uploadUrl, {
      method: 'HEAD',
      headers: { 'Tus-Resumable': '1.0.0', [SENDER_TOKEN_HEADER]: token },
      cache: 'no-store',
    });
  } catch (err) {
    throw new ApiError(0, 'network', err instanceof Error ? err.message : String(err));
  }
  if (!res.ok) return { status: res.status };
  const offset = Number(res.headers.get('Upload-Offset'));
  const length = Number(res.headers.get('Upload-Length'));
  return { status: res.status, offset, length };
}

/** Deletes an unfinished upload on the server; a gone upload is fine. */
export async function terminateUpload(uploadUrl: string, token: string): Promise<void> {
  try {
    await fetch(uploadUrl, { method: 'DELETE', headers: { 'Tus-Resumable': '1.0.0', [SENDER_TOKEN_HEADER]: token } });
  } catch {
    // The server deletes uploads of abandoned deliveries itself; nothing is lost by giving up here.
  }
}

/** The upload id the manifest names: the last path segment of the tus upload URL. */
export function uploadIdOf(uploadUrl: string): string {
  return new URL(uploadUrl, window.location.href).pathname.split('/').pop()!;
}
