/**
 * Sign-in by email link: a random token mailed to the user, stored only as its SHA-256, good
 * once and for 15 minutes.
 */
import crypto from 'node:crypto';
import { config } from '@/lib/config';
import { db, type Queryable } from '@/lib/db';
import { HttpError } from '@/lib/http';
import { queueMail } from '@/lib/mail';
import { emailSchema, type User } from '@/lib/mailboxes';
import { waitForFloor } from './answer-floor';
import { DEFAULT_AFTER_SIGN_IN, safeNextPath } from './next-path';
import { recordSignIn } from './record';
import { startSession, type CookieJar } from './session';
import { findAuthUser, publicUser } from './users';

export const SIGN_IN_LINK_TTL_MS = 15 * 60_000;
/** Unused, unexpired links a user may hold at once: asking again past this sends nothing (no mail bombing). */
export const MAX_OPEN_LINKS = 5;
/**
 * Every answer to a link request takes at least this long, so a known address (insert, render,
 * queue) and an unknown one (one lookup) cannot be told apart by timing.
 */
export const LINK_REQUEST_FLOOR_MS = 300;

const TOKEN_FORMAT = /^[A-Za-z0-9_-]{43}$/; // 32 random bytes, base64url

const sha256 = (token: string) => crypto.createHash('sha256').update(token).digest();

/** The address of the verify route for a token, keeping `next` when it is not the default. */
function linkUrl(token: string, next: string): string {
  const query = new URLSearchParams({ token });
  if (next !== DEFAULT_AFTER_SIGN_IN) query.set('next', next);
  return `${config().publicUrl}/auth/verify?${query}`;
}

/** Stores a new single-use link for the user (only its hash) and returns its address. */
async function issueSignInLink(tx: Queryable, userId: string, next: string): Promise<{ url: string; hash: Buffer; expiresAt: Date }> {
  const token = crypto.randomBytes(32).toString('base64url');
  const hash = sha256(token);
  const { expires_at } = (
    await tx.query<{ expires_at: Date }>(
      `INSERT INTO sign_in_links (token_hash, user_id, expires_at)
       VALUES ($1, $2, now() + $3 * interval '1 millisecond') RETURNING expires_at`,
      [hash, userId, SIGN_IN_LINK_TTL_MS],
    )
  ).rows[0];
  return { url: linkUrl(token, next), hash, expiresAt: new Date(expires_at) };
}

/**
 * The embedded default has no mail server, and the outbox page needs a signed-in administrator:
 * the person starting the app gets a sign-in link for the administrator on their terminal.
 */
export async function consoleSignInLink(userId: string): Promise<string> {
  return (await db()).transaction(async (tx) => (await issueSignInLink(tx, userId, DEFAULT_AFTER_SIGN_IN)).url);
}

/**
 * Mails a sign-in link when `email` belongs to an enabled user, and does nothing visible
 * otherwise: the caller answers the same either way. A malformed address is a 400.
 */
export async function requestSignInLink(input: { email: unknown; next?: unknown }): Promise<void> {
  const parsed = emailSchema.safeParse(input.email);
  if (!parsed.success) throw new HttpError(400, 'invalid-email', 'Give a valid email address');
  const email = parsed.data;
  const next = safeNextPath(input.next);
  const started = performance.now();
  try {
    await (await db()).transaction(async (tx) => {
      // Locked so that concurrent requests count each other's links.
      const user = await findAuthUser(tx, { email }, true);
      if (!user || user.disabled_at !== null) {
        await recordSignIn(tx, { kind: 'refused', method: 'email-link', reason: user ? 'disabled' : 'unknown-address', userId: user?.id, email });
        return;
      }
      const open = await tx.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM sign_in_links WHERE user_id = $1 AND used_at IS NULL AND expires_at > now()`,
        [user.id],
      );
      if (open.rows[0].n >= MAX_OPEN_LINKS) {
        await recordSignIn(tx, { kind: 'refused', method: 'email-link', reason: 'throttled', userId: user.id });
        return;
      }
      const { url, hash, expiresAt } = await issueSignInLink(tx, user.id, next);
      await queueMail(tx, {
        to: user.email,
        template: 'sign-in-link',
        locale: user.locale,
        params: { link: url, expiresAt },
        // The hash, not the token: dedupe keys are stored in clear in jobs and outbox.
        dedupeKey: `sign-in-link:${hash.toString('hex')}`,
      });
      await recordSignIn(tx, { kind: 'link-sent', userId: user.id });
    });
  } finally {
    await waitForFloor(started, LINK_REQUEST_FLOOR_MS);
  }
}

export type LinkProblem = 'link-invalid' | 'link-used' | 'link-expired' | 'no-access';

/**
 * Spends a link (atomically: of two requests with one token, one wins) and starts the session.
 * Using one link also spends the user's other open links.
 */
export async function signInWithLink(
  jar: CookieJar,
  token: unknown,
): Promise<{ ok: true; user: User } | { ok: false; problem: LinkProblem }> {
  const outcome = await (await db()).transaction(async (tx) => {
    const refuse = async (problem: LinkProblem, userId?: string) => {
      const reason = problem === 'no-access' ? 'disabled' : problem;
      await recordSignIn(tx, { kind: 'refused', method: 'email-link', reason, userId });
      return { ok: false as const, problem };
    };
    if (typeof token !== 'string' || !TOKEN_FORMAT.test(token)) return refuse('link-invalid');
    const hash = sha256(token);
    const claimed = await tx.query<{ user_id: string }>(
      `UPDATE sign_in_links SET used_at = now()
        WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now() RETURNING user_id`,
      [hash],
    );
    if (!claimed.rows.length) {
      const row = (
        await tx.query<{ used: boolean; user_id: string }>(
          `SELECT used_at IS NOT NULL AS used, user_id FROM sign_in_links WHERE token_hash = $1`,
          [hash],
        )
      ).rows[0];
      return refuse(!row ? 'link-invalid' : row.used ? 'link-used' : 'link-expired', row?.user_id);
    }
    const user = await findAuthUser(tx, { id: claimed.rows[0].user_id });
    if (!user || user.disabled_at !== null) return refuse('no-access', user?.id);
    await tx.query(`UPDATE sign_in_links SET used_at = now() WHERE user_id = $1 AND used_at IS NULL`, [user.id]);
    await recordSignIn(tx, { kind: 'signed-in', method: 'email-link', userId: user.id });
    return { ok: true as const, user };
  });
  if (!outcome.ok) return outcome;
  await startSession(jar, outcome.user);
  return { ok: true, user: publicUser(outcome.user) };
}
