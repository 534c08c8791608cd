/**
 * Rate limits with rate-limiter-flexible: fixed windows per key, counted in PostgreSQL (table
 * `rate_limits`, shared by every instance) when DATABASE_URL is set, in this process's memory
 * on the embedded default (PGlite is one process anyway). If PostgreSQL fails, each instance
 * falls back to counting in memory (the library's insurance limiter) rather than refusing all.
 *
 * A refusal is a RateLimitError; route handlers turn it into a 429 with Retry-After through
 * `rateLimitResponse` or `answerRateLimits`. The limits and their environment variables are in
 * lib/config (INKAST_RATE_*).
 */
import crypto from 'node:crypto';
import net from 'node:net';
import {
  RateLimiterMemory,
  RateLimiterPostgres,
  RateLimiterRes,
  type RateLimiterAbstract,
} from 'rate-limiter-flexible';
import { config, type Config, type RateLimitSpec } from '@/lib/config';
import { db } from '@/lib/db';
import { installPeerAddress, peerAddress } from './peer';

installPeerAddress();

export type { RateLimitSpec } from '@/lib/config';

/** The limits of lib/config, plus those a module defines for itself (e.g. wrong codes per address). */
export type LimitName = keyof Config['rateLimits'] | 'codeFailuresPerAddress';

const REFUSALS: Record<LimitName, string> = {
  deliveriesPerIp: 'Too many deliveries from your network',
  uploadBytesPerIp: 'Your network has uploaded too much',
  codesPerAddress: 'Too many codes asked for this address',
  codesPerIp: 'Too many codes asked from your network',
  codeChecksPerIp: 'Too many code attempts from your network',
  codeFailuresPerAddress: 'Too many wrong codes for this address',
  signInPerAddress: 'Too many sign-in links asked for this address',
  signInPerIp: 'Too many sign-in requests from your network',
};

/** A request refused by a rate limit: answer 429 with `Retry-After: retryAfter`. */
export class RateLimitError extends Error {
  readonly status = 429 as const;
  readonly code = 'rate-limited' as const;
  constructor(
    readonly limit: LimitName,
    /** Whole seconds until the window that refused this ends. */
    readonly retryAfter: number,
  ) {
    const minutes = Math.ceil(retryAfter / 60);
    super(`${REFUSALS[limit]} right now; try again in ${minutes === 1 ? 'a minute' : `${minutes} minutes`}`);
    this.name = 'RateLimitError';
  }
}

/** Also true for a RateLimitError from another copy of this module (Next bundles per route). */
export function isRateLimitError(err: unknown): err is RateLimitError {
  return err instanceof RateLimitError || (err instanceof Error && err.name === 'RateLimitError' && 'retryAfter' in err);
}

/** The 429 answer: `{ error: 'rate-limited', message, retryAfter }` and the Retry-After header. */
export function rateLimitResponse(err: RateLimitError): Response {
  return Response.json(
    { error: err.code, message: err.message, retryAfter: err.retryAfter },
    { status: 429, headers: { 'Retry-After': String(err.retryAfter), 'Cache-Control': 'no-store' } },
  );
}

/** Wraps a route handler so that a RateLimitError becomes the 429 answer; anything else is rethrown. */
export function answerRateLimits<A extends unknown[]>(fn: (...args: A) => Promise<Response>) {
  return async (...args: A): Promise<Response> => {
    try {
      return await fn(...args);
    } catch (err) {
      if (isRateLimitError(err)) return rateLimitResponse(err);
      throw err;
    }
  };
}

// ---- the client's address ----

const MAPPED_V4 = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i;

/** The first four groups of an IPv6 address: one /64 is one subscriber, so it is one key. */
function ipv6Prefix(ip: string): string {
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  const groups = (part: string | undefined) => (part ? part.split(':') : []);
  const size = (gs: string[]) => gs.reduce((n, g) => n + (g.includes('.') ? 2 : 1), 0);
  const h = groups(head);
  const t = groups(tail);
  const full = [...h, ...Array<string>(tail === undefined ? 0 : 8 - size(h) - size(t)).fill('0'), ...t];
  return `${full
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}

/** An address as a limit key, or undefined when it is not an IP address (ports and brackets allowed). */
export function normaliseIp(value: string | null | undefined): string | undefined {
  if (!value) return undefined;
  let ip = value.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(ip);
  if (bracketed) ip = bracketed[1];
  else if (/^\d{1,3}(?:\.\d{1,3}){3}:\d+$/.test(ip)) ip = ip.slice(0, ip.lastIndexOf(':'));
  ip = ip.replace(/%.*$/, ''); // an IPv6 zone
  const mapped = MAPPED_V4.exec(ip);
  if (mapped) ip = mapped[1];
  const kind = net.isIP(ip);
  if (kind === 4) return ip;
  if (kind === 6) return ipv6Prefix(ip.toLowerCase());
  return undefined;
}

/**
 * Who is asking, for the per-IP limits: the first X-Forwarded-For entry when INKAST_TRUST_PROXY
 * is set (the proxy must overwrite the header, not append to what the client sent), else the TCP
 * peer's address, else 'unknown' (one bucket for all who cannot be told apart).
 */
export function clientIp(source: Request | Headers): string {
  const headers = 'headers' in source ? source.headers : source;
  if (config().trustProxy) {
    const forwarded = normaliseIp(headers.get('x-forwarded-for')?.split(',')[0]);
    if (forwarded) return forwarded;
  }
  return normaliseIp(peerAddress(headers)) ?? 'unknown';
}

// ---- the limiters ----

/** What the store adapter hands rate-limiter-flexible: a pg-like `query({ text, values })` on lib/db. */
const storeClient = {
  async query(q: { text: string; values?: unknown[] }) {
    try {
      const r = await (await db()).query(q.text, q.values);
      return { rows: r.rows, rowCount: r.rowCount };
    } catch (err) {
      warnStoreDown(err);
      throw err;
    }
  },
};

let warnedAt = 0;
/** Said at most once a minute: while PostgreSQL fails, each instance counts on its own. */
function warnStoreDown(err: unknown): void {
  if (Date.now() - warnedAt < 60_000) return;
  warnedAt = Date.now();
  console.error(`rate limits: PostgreSQL failed (${err instanceof Error ? err.message : String(err)}); counting in this process meanwhile`);
}

const g = globalThis as typeof globalThis & { __inkastRateLimiters?: WeakMap<Config, Map<string, RateLimiterAbstract>> };

/** One limiter per name and spec, per Config (a test that swaps the configuration gets fresh ones). */
function limiter(name: LimitName, spec: RateLimitSpec): RateLimiterAbstract {
  const c = config();
  const all = (g.__inkastRateLimiters ??= new WeakMap());
  let mine = all.get(c);
  if (!mine) all.set(c, (mine = new Map()));
  const id = `${name}:${spec.points}/${spec.durationMs}`;
  let found = mine.get(id);
  if (!found) {
    const options = { keyPrefix: name, points: spec.points, duration: spec.durationMs / 1000 };
    found = c.databaseUrl
      ? new RateLimiterPostgres({
          ...options,
          storeClient,
          storeType: 'pool',
          tableName: 'rate_limits', // created by migration 005_senders
          tableCreated: true,
          insuranceLimiter: new RateLimiterMemory(options),
        })
      : new RateLimiterMemory(options);
    mine.set(id, found);
  }
  return found;
}

/** Keys are hashed: the table holds no email address, and every key fits its column. */
function hashKey(key: string): string {
  return crypto.createHash('sha256').update(key).digest('base64url').slice(0, 32);
}

/**
 * Counts `points` against `key` under the limit; throws RateLimitError when the window is full.
 * A refused attempt is not counted (a refused 5 GB upload must not use up the day).
 */
export async function consume(
  name: LimitName,
  spec: RateLimitSpec | null,
  key: string,
  points = 1,
): Promise<{ remaining: number }> {
  if (!spec) return { remaining: Infinity };
  const l = limiter(name, spec);
  const k = hashKey(key);
  try {
    return { remaining: (await l.consume(k, points)).remainingPoints };
  } catch (res) {
    if (!(res instanceof RateLimiterRes)) throw res;
    await l.reward(k, points).catch(() => {});
    throw new RateLimitError(name, Math.max(1, Math.ceil(res.msBeforeNext / 1000)));
  }
}

/** Gives back points counted for something that then did not happen. */
export async function refund(name: LimitName, spec: RateLimitSpec | null, key: string, points = 1): Promise<void> {
  if (!spec) return;
  await limiter(name, spec)
    .reward(hashKey(key), points)
    .catch(() => {});
}

/** Forgets the key's count (e.g. wrong codes, once a new code is sent). */
export async function resetLimit(name: LimitName, spec: RateLimitSpec | null, key: string): Promise<void> {
  if (!spec) return;
  await limiter(name, spec)
    .delete(hashKey(key))
    .catch(() => {});
}

/** Whether the key's window is full, without counting anything. */
export async function limitReached(name: LimitName, spec: RateLimitSpec | null, key: string): Promise<boolean> {
  if (!spec) return false;
  const res = await limiter(name, spec).get(hashKey(key));
  return res !== null && res.consumedPoints >= spec.points;
}

/** Counts against several limits; all are counted, the longest wait is the answer. */
async function consumeAll(checks: [LimitName, RateLimitSpec | null, string][]): Promise<void> {
  const results = await Promise.allSettled(checks.map(([name, spec, key]) => consume(name, spec, key)));
  const refused = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
  const other = refused.find((e) => !isRateLimitError(e));
  if (other) throw other;
  if (refused.length) throw (refused as RateLimitError[]).reduce((a, b) => (b.retryAfter > a.retryAfter ? b : a));
}

const normaliseEmail = (email: string) => email.trim().toLowerCase();

// ---- what the modules call ----

/** Before a delivery is opened (lib/deliveries createDelivery). */
export async function limitDeliveryCreation(ip: string): Promise<void> {
  await consume('deliveriesPerIp', config().rateLimits.deliveriesPerIp, ip);
}

/** Before a tus upload is created, by its Upload-Length; `refund` undoes it if the upload is then refused. */
export async function limitUploadBytes(ip: string, bytes: number): Promise<{ refund(): Promise<void> }> {
  const spec = config().rateLimits.uploadBytesPerIp;
  await consume('uploadBytesPerIp', spec, ip, bytes);
  return { refund: () => refund('uploadBytesPerIp', spec, ip, bytes) };
}

/** Before a sender code is mailed: per address (across mailboxes) and per IP. */
export function limitCodeRequest(ip: string, email: string): Promise<void> {
  const r = config().rateLimits;
  return consumeAll([
    ['codesPerIp', r.codesPerIp, ip],
    ['codesPerAddress', r.codesPerAddress, normaliseEmail(email)],
  ]);
}

/** Before a sender code is checked: per IP (wrong codes per address are lib/auth's own count). */
export async function limitCodeCheck(ip: string): Promise<void> {
  await consume('codeChecksPerIp', config().rateLimits.codeChecksPerIp, ip);
}

/**
 * Before a sign-in link is mailed (lib/auth): per address and per IP. Counted whether or not the
 * address has an account, so a 429 says nothing about that. Throws RateLimitError.
 */
export function limitSignIn(ip: string, email: string): Promise<void> {
  const r = config().rateLimits;
  return consumeAll([
    ['signInPerIp', r.signInPerIp, ip],
    ['signInPerAddress', r.signInPerAddress, normaliseEmail(email)],
  ]);
}
