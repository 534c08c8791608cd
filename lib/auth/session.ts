/**
 * The handler's session: an iron-session seal in the `inkast_session` cookie. The cookie alone
 * proves nothing beyond "signed in at issuedAt": every read checks the user row, so disabling a
 * user or bumping their session_epoch ends every live session at once.
 */
import path from 'node:path';
import { sealData, unsealData } from 'iron-session';
import { config, type Config } from '@/lib/config';
import { db, type Queryable } from '@/lib/db';
import type { User } from '@/lib/mailboxes';
import { loadOrCreateKeyFile } from '@/lib/mailboxes/master-key';
import { findAuthUser, publicUser, type AuthUser } from './users';

export const SESSION_COOKIE = 'inkast_session';
/** From sign-in, however active the handler is. */
export const SESSION_ABSOLUTE_MS = 12 * 3600_000;
/** Without a request that refreshes seenAt. */
export const SESSION_IDLE_MS = 60 * 60_000;
/** seenAt is rewritten at most this often: one Set-Cookie a minute, not one per request. */
export const SEEN_REFRESH_MS = 60_000;

export interface SessionData {
  userId: string;
  epoch: number;
  /** Milliseconds since the epoch, as is seenAt. */
  issuedAt: number;
  seenAt: number;
}

export interface CookieOptions {
  httpOnly: boolean;
  secure: boolean;
  sameSite: 'lax';
  path: string;
  maxAge?: number;
}

/** What the session needs of a cookie store. Next's `cookies()` is one; in Server Components its set() throws. */
export interface CookieJar {
  get(name: string): { value: string } | undefined;
  set(name: string, value: string, options: CookieOptions): void;
}

const g = globalThis as typeof globalThis & { __inkastSessionPasswords?: WeakMap<Config, string> };

/**
 * INKAST_SESSION_SECRET, or `<dataDir>/session.secret` created with mode 0600 on first use.
 * Keyed by the Config object, so a test that swaps the configuration gets its own.
 */
export function sessionPassword(): string {
  const c = config();
  const cache = (g.__inkastSessionPasswords ??= new WeakMap());
  let password = cache.get(c);
  if (!password) {
    password = c.sessionSecret ?? loadOrCreateKeyFile(path.join(c.dataDir, 'session.secret')).toString('base64');
    cache.set(c, password);
  }
  return password;
}

/**
 * No maxAge: a browser-session cookie, gone when the browser closes (shared workstations); the
 * seal's own TTL and issuedAt bound it server-side.
 */
export function cookieOptions(overrides: Partial<CookieOptions> = {}): CookieOptions {
  return { httpOnly: true, secure: config().publicUrl.startsWith('https:'), sameSite: 'lax', path: '/', ...overrides };
}

/** Seals `data` for a cookie; the seal expires by itself after ttlMs. */
export function seal(data: object, ttlMs: number): Promise<string> {
  return sealData(data, { password: sessionPassword(), ttl: Math.max(1, Math.floor(ttlMs / 1000)) });
}

/** The sealed data, or undefined when the seal is expired, forged or under another password. */
export async function unseal(sealed: string, ttlMs: number): Promise<Record<string, unknown> | undefined> {
  try {
    const data = await unsealData<Record<string, unknown>>(sealed, { password: sessionPassword(), ttl: Math.floor(ttlMs / 1000) });
    return Object.keys(data).length ? data : undefined;
  } catch {
    return undefined; // malformed beyond what iron-session itself maps to {}
  }
}

/** Sets a cookie where cookies may be written; in a Server Component the write waits for the next route handler. */
function setWhereWritable(jar: CookieJar, name: string, value: string, options: CookieOptions): void {
  try {
    jar.set(name, value, options);
  } catch {
    // Read-only cookies (rendering a page): nothing to do, the session stays as it was.
  }
}

function writeSession(jar: CookieJar, data: SessionData): Promise<void> {
  const left = data.issuedAt + SESSION_ABSOLUTE_MS - data.seenAt;
  return seal(data, left).then((sealed) => setWhereWritable(jar, SESSION_COOKIE, sealed, cookieOptions()));
}

/** Starts a session for the user (after a link or an OpenID Connect sign-in succeeded). */
export async function startSession(jar: CookieJar, user: AuthUser, now = Date.now()): Promise<void> {
  const data: SessionData = { userId: user.id, epoch: user.session_epoch, issuedAt: now, seenAt: now };
  jar.set(SESSION_COOKIE, await seal(data, SESSION_ABSOLUTE_MS), cookieOptions());
}

export function clearSessionCookie(jar: CookieJar): void {
  setWhereWritable(jar, SESSION_COOKIE, '', cookieOptions({ maxAge: 0 }));
}

function isSessionData(d: Record<string, unknown> | undefined): d is Record<string, unknown> & SessionData {
  return (
    typeof d?.userId === 'string' &&
    Number.isSafeInteger(d.epoch) &&
    Number.isSafeInteger(d.issuedAt) &&
    Number.isSafeInteger(d.seenAt)
  );
}

/** The valid session in the jar and its user, or undefined (absent, expired, disabled, epoch moved on). */
export async function readSession(
  jar: CookieJar,
  now = Date.now(),
  q?: Queryable,
): Promise<{ data: SessionData; user: AuthUser } | undefined> {
  const sealed = jar.get(SESSION_COOKIE)?.value;
  if (!sealed) return undefined;
  const data = await unseal(sealed, SESSION_ABSOLUTE_MS);
  if (
    !isSessionData(data) ||
    now - data.issuedAt >= SESSION_ABSOLUTE_MS ||
    now - data.seenAt >= SESSION_IDLE_MS ||
    data.seenAt > now + SEEN_REFRESH_MS // from the future: not a seal we made with this clock
  ) {
    clearSessionCookie(jar);
    return undefined;
  }
  const user = await findAuthUser(q ?? (await db()), { id: data.userId });
  if (!user || user.disabled_at !== null || user.session_epoch !== data.epoch) {
    clearSessionCookie(jar);
    return undefined;
  }
  return { data, user };
}

/**
 * The signed-in user, refreshing seenAt when it is a minute old (where cookies are writable:
 * route handlers and Server Actions, not Server Components).
 */
export async function sessionUser(jar: CookieJar, now = Date.now()): Promise<User | null> {
  const session = await readSession(jar, now);
  if (!session) return null;
  if (now - session.data.seenAt >= SEEN_REFRESH_MS) await writeSession(jar, { ...session.data, seenAt: now });
  return publicUser(session.user);
}
